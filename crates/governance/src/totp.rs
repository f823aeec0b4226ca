//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA-1, 30-second steps, six
//! digits, the parameters every authenticator app takes from an `otpauth://` address.

use hmac_sha1::{KeyInit, Mac};

type HmacSha1 = hmac_sha1::Hmac<sha1::Sha1>;

pub(crate) const STEP_SECONDS: u64 = 30;
const DIGITS: u32 = 6;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The code of `secret` at time step `step`, with `digits` digits.
fn code_at(secret: &[u8], step: u64, digits: u32) -> u32 {
    let mut mac = HmacSha1::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The step a code shown now belongs to, if it is one of `secret`'s codes within one step of
/// `now_step` (clocks drift) and later than `last_step` (a code is never accepted twice).
pub(crate) fn accepted_step(
    secret: &[u8],
    code: &str,
    now_step: u64,
    last_step: u64,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shown: u32 = code.parse().ok()?;
    [now_step.saturating_sub(1), now_step, now_step + 1]
        .into_iter()
        .filter(|step| *step > last_step)
        .find(|step| code_at(secret, *step, DIGITS) == shown)
}

pub(crate) fn now_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / STEP_SECONDS
}

/// The current code of a base32 secret (what an authenticator app shows; for tests and for
/// the enrolment page's own check).
pub fn current_code(secret_base32: &str) -> Option<String> {
    let secret = base32_decode(secret_base32)?;
    Some(format!("{:06}", code_at(&secret, now_step(), DIGITS)))
}

pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let value = BASE32.iter().position(|x| *x == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B, SHA-1 (eight digits there; six are the same value mod 10^6).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(
                code_at(secret, time / STEP_SECONDS, 8),
                expected,
                "T = {time}"
            );
        }
    }

    #[test]
    fn codes_are_single_use_and_within_one_step() {
        let secret = b"12345678901234567890";
        let code = format!("{:06}", code_at(secret, 1000, 6));
        assert_eq!(accepted_step(secret, &code, 1000, 0), Some(1000));
        assert_eq!(accepted_step(secret, &code, 1001, 0), Some(1000));
        assert_eq!(
            accepted_step(secret, &code, 1002, 0),
            None,
            "two steps late"
        );
        assert_eq!(accepted_step(secret, &code, 1000, 1000), None, "replayed");
        assert_eq!(accepted_step(secret, "12345", 1000, 0), None);
        assert_eq!(accepted_step(secret, "abcdef", 1000, 0), None);
    }

    #[test]
    fn base32_round_trip() {
        let bytes: Vec<u8> = (0u8..20).collect();
        assert_eq!(base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
