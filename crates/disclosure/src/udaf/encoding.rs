//! How a person set travels between partial and final aggregation: a serialized roaring
//! bitmap, or members tagged with a leading zero byte.

use super::*;

/// A set as the aggregate returns it: a serialized roaring bitmap, or, tagged with a leading
/// byte 0, members as little-endian u32 (what one row makes, cheaply, when the partial
/// aggregation hands rows on without grouping them).
pub fn decode_set(bytes: &[u8]) -> Result<RoaringBitmap> {
    if bytes.is_empty() {
        return Ok(RoaringBitmap::new());
    }
    match tagged_members(bytes) {
        Some(members) => Ok(members.collect()),
        None => RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("person set: {e}"))),
    }
}

/// The members of a set in the tagged form, without building a bitmap (None: a serialized
/// bitmap).
pub(crate) fn tagged_members(bytes: &[u8]) -> Option<impl Iterator<Item = u32> + '_> {
    match bytes.split_first() {
        Some((&MEMBERS_TAG, members)) => Some(
            members
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default())),
        ),
        _ => None,
    }
}

/// Appends members in the tagged form [`decode_set`] reads, as one value of `out`; `scratch`
/// is reused from value to value (a value a group, and groups may be a million).
pub(crate) fn append_tagged(
    out: &mut BinaryBuilder,
    scratch: &mut Vec<u8>,
    members: impl IntoIterator<Item = u32>,
) {
    scratch.clear();
    scratch.push(MEMBERS_TAG);
    for m in members {
        scratch.extend_from_slice(&m.to_le_bytes());
    }
    out.append_value(&scratch);
}

/// A roaring bitmap's serialization starts with a cookie (12346 or 12347, little-endian), never
/// with a zero byte.
pub(crate) const MEMBERS_TAG: u8 = 0;

pub fn encode_set(set: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.serialized_size());
    // Writing to a Vec cannot fail.
    let _ = set.serialize_into(&mut out);
    out
}

/// Ascending members, each once, in roaring's portable serialization (what [`encode_set`]
/// writes for the same set): a cookie and the container count, each container's key and
/// cardinality less one, their offsets, then each container, an array of its members' low
/// halves up to 4,096 members and a bitmap of 65,536 bits beyond.
pub(crate) fn serialize_sorted(members: &[u32]) -> Vec<u8> {
    const NO_RUN_CONTAINERS: u32 = 12346;
    const ARRAY_LIMIT: usize = 4096;
    let containers: Vec<&[u32]> = members.chunk_by(|a, b| a >> 16 == b >> 16).collect();
    let sizes: Vec<usize> = containers
        .iter()
        .map(|c| {
            if c.len() <= ARRAY_LIMIT {
                2 * c.len()
            } else {
                8192
            }
        })
        .collect();
    let header = 8 + 8 * containers.len();
    let mut out = Vec::with_capacity(header + sizes.iter().sum::<usize>());
    out.extend_from_slice(&NO_RUN_CONTAINERS.to_le_bytes());
    out.extend_from_slice(&(containers.len() as u32).to_le_bytes());
    for c in &containers {
        out.extend_from_slice(&((c[0] >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&((c.len() - 1) as u16).to_le_bytes());
    }
    let mut offset = header;
    for size in &sizes {
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += size;
    }
    for c in &containers {
        if c.len() <= ARRAY_LIMIT {
            c.iter()
                .for_each(|m| out.extend_from_slice(&(*m as u16).to_le_bytes()));
        } else {
            let mut bits = [0u64; 1024];
            for &m in *c {
                let low = m & 0xffff;
                bits[(low >> 6) as usize] |= 1 << (low & 63);
            }
            bits.iter()
                .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        }
    }
    out
}

/// A bitmap of ascending members, each once: written in the portable form and read back,
/// which costs less than roaring's own push a member.
pub(crate) fn bitmap_of(sorted: &[u32]) -> RoaringBitmap {
    RoaringBitmap::deserialize_from(&serialize_sorted(sorted)[..])
        .unwrap_or_else(|_| sorted.iter().copied().collect())
}

/// The members of two ascending runs, ascending and each once.
pub(crate) fn merge_ascending(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = vec![0; a.len() + b.len()];
    let (mut i, mut j, mut n) = (0, 0, 0);
    // Without a branch on which run is ahead: runs of two fiscal years interleave member by
    // member, and such a branch would be mispredicted about every other member.
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out[n] = x.min(y);
        n += 1;
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.truncate(n);
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
