//! The memory of published aggregates: each release's population, as
//! (subject number, tag) pairs sorted by subject. A tag is the keyed BLAKE3
//! of what the subject contributed (the query's shape, its cell, its summed
//! value) under the subject's own random salt, kept in its scope: once the
//! subject is erased, its tags cannot be matched to any value.

use strongroom::SubjectId;

use crate::codec::{Reader, Writer, write_count};
use crate::error::Result;

/// A subject's contribution to a release: (subject, tag).
pub(crate) type Contribution = (u64, [u8; 16]);

const RELEASE_VERSION: u8 = 1;

/// The contribution of subject `s` placed at `placed` in a table of `shape`.
pub(crate) fn contribution(
    s: SubjectId,
    salt: &[u8; 32],
    shape: &str,
    placed: (usize, usize, i64),
) -> Contribution {
    let mut hasher = blake3::Hasher::new_keyed(salt);
    hasher.update(shape.as_bytes()).update(&[0]);
    hasher.update(&(placed.0 as u64).to_le_bytes());
    hasher.update(&(placed.1 as u64).to_le_bytes());
    hasher.update(&placed.2.to_le_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    (s.0, tag)
}

/// Format: `version u8 = 1 | count u32 | (subject u64 | tag [16]) × count`.
pub(crate) fn encode(population: &[Contribution]) -> Vec<u8> {
    let mut w = Writer::new(RELEASE_VERSION);
    write_count(&mut w, population.len());
    for (s, tag) in population {
        w.u64(*s);
        for b in tag {
            w.u8(*b);
        }
    }
    w.finish()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Contribution>> {
    let mut r = Reader::new(bytes, "aggregate release", RELEASE_VERSION)?;
    let n = r.count(24)?;
    let population: Vec<Contribution> = (0..n)
        .map(|_| Ok((r.u64()?, r.array::<16>()?)))
        .collect::<Result<_>>()?;
    // `differs_by` walks two populations in order.
    if population.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(r.corrupt("subjects out of order"));
    }
    r.end()?;
    Ok(population)
}

/// How many subjects contribute differently to two populations (both
/// sorted): present in one only, or with another tag.
pub(crate) fn differs_by(a: &[Contribution], b: &[Contribution]) -> usize {
    let (mut i, mut j, mut differ) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => (differ, i) = (differ + 1, i + 1),
            std::cmp::Ordering::Greater => (differ, j) = (differ + 1, j + 1),
            std::cmp::Ordering::Equal => {
                differ += usize::from(a[i].1 != b[j].1);
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    differ + (a.len() - i) + (b.len() - j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populations_differ_by_the_subjects_added_removed_or_moved() {
        let a = vec![(1, [1; 16]), (2, [2; 16]), (3, [3; 16])];
        assert_eq!(differs_by(&a, &a), 0);
        assert_eq!(differs_by(&a, &a[..2]), 1);
        assert_eq!(
            differs_by(
                &a,
                &[(1, [1; 16]), (2, [9; 16]), (3, [3; 16]), (4, [4; 16])]
            ),
            2
        );
        assert_eq!(differs_by(&[], &a), 3);
        let bytes = encode(&a);
        assert_eq!(decode(&bytes).unwrap(), a);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
