//! Keyed-hash identifiers: HMAC-SHA256 under a purpose key, over normalised fields joined by
//! the ASCII unit separator (0x1F, which no normalised field contains), shown as 64 hex digits.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256, compress256};

use crate::keys::{CustodianKey, Purpose};

/// The identifiers of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// 保険者番号, 記号, 番号, 生年月日, 性別.
    Id1,
    /// カナ氏名, 生年月日, 性別.
    Id2,
    /// The person's oldest 個人単位被保険者番号 (保険者番号, 記号, 番号, 枝番).
    Id5,
    /// 研究用ID: カナ氏名, 性別, 生年月日, 承諾番号.
    ResearchId,
}

impl IdKind {
    pub fn purpose(self) -> Purpose {
        match self {
            IdKind::Id1 => Purpose::Id1,
            IdKind::Id2 => Purpose::Id2,
            IdKind::Id5 => Purpose::Id5,
            IdKind::ResearchId => Purpose::ResearchId,
        }
    }
}

/// HMAC-SHA256 (RFC 2104) with the key schedule done once: the inner and outer states after
/// the padded key block are kept, so an identifier over an input of up to 55 bytes costs
/// exactly two SHA-256 compressions (SHA-NI where the CPU has it), with no allocation.
#[derive(Clone)]
pub struct IdHasher {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdHasher(..)")
    }
}

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const BLOCK: usize = 64;

impl IdHasher {
    pub fn new(key: &CustodianKey, kind: IdKind) -> Self {
        Self::from_key_bytes(key.derive(kind.purpose()).as_ref())
    }

    pub fn from_key_bytes(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut padded = block;
            padded.iter_mut().for_each(|b| *b ^= byte);
            let mut state = IV;
            compress256(&mut state, &[*GenericArray::from_slice(&padded)]);
            state
        };
        Self {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC over the fields joined by 0x1F.
    #[inline]
    pub fn hash(&self, fields: &[&[u8]]) -> [u8; 32] {
        let len: usize =
            fields.iter().map(|f| f.len()).sum::<usize>() + fields.len().saturating_sub(1);
        let mut state = self.inner;
        if len < BLOCK - 8 {
            // The common case: message, 0x80 and the length fit one block on the stack.
            let mut block = [0u8; BLOCK];
            write_joined(&mut block, fields);
            pad_and_compress(&mut state, &mut block, len);
        } else {
            let mut buf = vec![0u8; (len + 9).div_ceil(BLOCK) * BLOCK];
            write_joined(&mut buf, fields);
            pad_and_compress(&mut state, &mut buf, len);
        }
        // The outer message is the inner digest: written straight from the state words.
        let mut outer_block = [0u8; BLOCK];
        for (chunk, word) in outer_block[..32].chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        let mut outer = self.outer;
        pad_and_compress(&mut outer, &mut outer_block, 32);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(outer) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

fn write_joined(buf: &mut [u8], fields: &[&[u8]]) {
    let mut at = 0;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            buf[at] = 0x1f;
            at += 1;
        }
        buf[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
}

/// Pads `buf[..len]` (already written; the rest zeroed) as the continuation of a message whose
/// first block (the padded key) went into `state`, and compresses it into `state`.
#[inline]
fn pad_and_compress(state: &mut [u32; 8], buf: &mut [u8], len: usize) {
    let n = buf.len();
    buf[len] = 0x80;
    let bits = ((BLOCK + len) as u64) * 8;
    buf[n - 8..].copy_from_slice(&bits.to_be_bytes());
    for block in buf.chunks_exact(BLOCK) {
        compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two hex digits per byte value, looked up once per byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    t
};

/// Lower-case hex of a 32-byte digest.
pub fn hex32(bytes: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    write_hex32(bytes, &mut out);
    String::from_utf8(out.to_vec()).unwrap_or_else(|_| unreachable!("hex digits are ASCII"))
}

/// Lower-case hex into a caller's buffer (no allocation on the hot path).
pub fn write_hex32(bytes: &[u8; 32], out: &mut [u8; 64]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        hex32(&IdHasher::from_key_bytes(key).hash(&[data]))
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 4231, HMAC-SHA-256 test cases 1, 2, 3, 4, 6 and 7 (case 5 is truncated output).
    #[test]
    fn rfc4231_known_answers() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hmac_hex(&key, &data), expected);
        }
    }

    #[test]
    fn fields_are_separated_unambiguously() {
        let h = IdHasher::from_key_bytes(&[1; 32]);
        assert_ne!(h.hash(&[b"12", b"3"]), h.hash(&[b"1", b"23"]));
        assert_eq!(h.hash(&[b"12", b"3"]), h.hash(&[b"12\x1f3"]));
    }

    #[test]
    fn purpose_keys_separate_identifiers() {
        let key = CustodianKey::from_bytes([3; 32]);
        let input: [&[u8]; 1] = [b"same input"];
        assert_ne!(
            IdHasher::new(&key, IdKind::Id1).hash(&input),
            IdHasher::new(&key, IdKind::Id2).hash(&input)
        );
    }
}
