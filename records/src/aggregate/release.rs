//! The memory of published aggregates. Each release is kept as its record
//! type, the fields it used (rows, columns, sum), and its population: every
//! subject counted, with a tag per field of what it contributed there. A
//! tag is the keyed BLAKE3 of the field's name and the subject's value under
//! the subject's own random salt, kept in its scope: once the subject is
//! erased, its tags cannot be matched to any value.
//!
//! Two releases differ by a subject when it is counted in one only, or when
//! a field both used holds another value for it. Comparing per field (not
//! per query) is what stops a differencing attack that changes the query's
//! shape: a count by year, then a count by year and house (whose row totals
//! are counts by year) over one more subject, differ by that subject.

use strongroom::SubjectId;

use crate::codec::{Reader, Writer, write_count};
use crate::error::Result;

/// A tag: what a subject contributed in one field.
pub(crate) type Tag = [u8; 16];

/// A published aggregate's population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Release {
    pub(crate) record_type: String,
    /// The fields used, in query order (rows, columns, sum).
    pub(crate) fields: Vec<String>,
    /// (subject, a tag per field), by subject ascending.
    pub(crate) population: Vec<(u64, Vec<Tag>)>,
}

const RELEASE_VERSION: u8 = 1;

/// The tag of subject value `value` in field `field`, under `salt`.
pub(crate) fn tag(salt: &[u8; 32], field: &str, value: &[u8]) -> Tag {
    let mut hasher = blake3::Hasher::new_keyed(salt);
    hasher.update(field.as_bytes()).update(&[0]).update(value);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    tag
}

impl Release {
    /// Format: `version u8 = 1 | record_type | count u32 | field × count |
    /// count u32 | (subject u64 | tag [16] × fields) × count`, subjects
    /// ascending.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(RELEASE_VERSION);
        w.str(&self.record_type);
        write_count(&mut w, self.fields.len());
        for f in &self.fields {
            w.str(f);
        }
        write_count(&mut w, self.population.len());
        for (s, tags) in &self.population {
            debug_assert_eq!(tags.len(), self.fields.len());
            w.u64(*s);
            for b in tags.iter().flatten() {
                w.u8(*b);
            }
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Release> {
        let mut r = Reader::new(bytes, "aggregate release", RELEASE_VERSION)?;
        let record_type = r.string()?;
        let n = r.count(4)?;
        let fields = (0..n).map(|_| r.string()).collect::<Result<Vec<_>>>()?;
        let n = r.count(8 + 16 * fields.len())?;
        let mut population: Vec<(u64, Vec<Tag>)> = Vec::with_capacity(n);
        for _ in 0..n {
            let s = r.u64()?;
            let tags = (0..fields.len())
                .map(|_| r.array::<16>())
                .collect::<Result<_>>()?;
            // `differs_by` walks two populations in order.
            if population.last().is_some_and(|(last, _)| *last >= s) {
                return Err(r.corrupt("subjects out of order"));
            }
            population.push((s, tags));
        }
        r.end()?;
        Ok(Release {
            record_type,
            fields,
            population,
        })
    }

    /// Whether `other` is this release again: same type and fields, same
    /// contributions.
    pub(crate) fn same_as(&self, other: &Release) -> bool {
        self == other
    }

    /// How many subjects contribute differently to the two releases:
    /// counted in one only, or holding another value in a field both used.
    pub(crate) fn differs_by(&self, other: &Release) -> usize {
        // (position here, position there) of each field both used.
        let common: Vec<(usize, usize)> = if self.record_type == other.record_type {
            self.fields
                .iter()
                .enumerate()
                .filter_map(|(i, f)| other.fields.iter().position(|g| g == f).map(|j| (i, j)))
                .collect()
        } else {
            Vec::new()
        };
        let (a, b) = (&self.population, &other.population);
        let (mut i, mut j, mut differ) = (0, 0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => (differ, i) = (differ + 1, i + 1),
                std::cmp::Ordering::Greater => (differ, j) = (differ + 1, j + 1),
                std::cmp::Ordering::Equal => {
                    let moved = common.iter().any(|&(x, y)| a[i].1[x] != b[j].1[y]);
                    differ += usize::from(moved);
                    (i, j) = (i + 1, j + 1);
                }
            }
        }
        differ + (a.len() - i) + (b.len() - j)
    }
}

/// A subject's entry in a release being built.
pub(crate) fn entry(s: SubjectId, salt: &[u8; 32], values: &[(&str, Vec<u8>)]) -> (u64, Vec<Tag>) {
    (s.0, values.iter().map(|(f, v)| tag(salt, f, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(fields: &[&str], population: &[(u64, &[u8])]) -> Release {
        Release {
            record_type: "profile".into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            population: population
                .iter()
                .map(|(s, vals)| (*s, vals.iter().map(|v| [*v; 16]).collect()))
                .collect(),
        }
    }

    #[test]
    fn releases_differ_by_subjects_added_removed_or_moved_in_a_shared_field() {
        let by_year = release(&["year"], &[(1, &[1]), (2, &[2]), (3, &[3])]);
        assert_eq!(by_year.differs_by(&by_year), 0);
        let fewer = release(&["year"], &[(1, &[1]), (2, &[2])]);
        assert_eq!(by_year.differs_by(&fewer), 1);
        let moved = release(&["year"], &[(1, &[1]), (2, &[9]), (3, &[3]), (4, &[4])]);
        assert_eq!(by_year.differs_by(&moved), 2);
        // Another shape sharing the field: compared on it.
        let by_year_house = release(
            &["year", "house"],
            &[(1, &[1, 7]), (2, &[2, 7]), (3, &[3, 8]), (4, &[4, 8])],
        );
        assert_eq!(by_year.differs_by(&by_year_house), 1);
        // No field shared: compared on who is counted only.
        let by_house = release(&["house"], &[(1, &[7]), (2, &[7]), (3, &[8])]);
        assert_eq!(by_year.differs_by(&by_house), 0);
        assert!(!by_year.same_as(&by_house));
        let bytes = by_year_house.encode();
        assert_eq!(Release::decode(&bytes).unwrap(), by_year_house);
        for cut in 0..bytes.len() {
            assert!(Release::decode(&bytes[..cut]).is_err());
        }
    }
}
