//! Anchors: the chain's head (sequence number and hash) kept outside the database, so that whoever owns the
//! database cannot rewrite the trail, cut its end, or fake a prune without it showing. `reflex audit anchor`
//! prints one for a cron job to keep elsewhere; `reflex audit verify --anchor FILE` checks the chain against
//! every one of them.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::chain::Mark;

/// One anchor: the head as it was at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The head's sequence number.
    pub seq: i64,
    /// The head entry's hash.
    pub hash: String,
    /// When it was taken.
    pub at: OffsetDateTime,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.format(&Rfc3339).map_err(|_| fmt::Error)?;
        write!(f, "{} {} {at}", self.seq, self.hash)
    }
}

impl Anchor {
    /// Reads a file of anchors, one `SEQ HASH TIME` per line (blank lines and `#` comments ignored).
    pub fn parse_all(text: &str) -> Result<Vec<Self>, String> {
        text.lines()
            .enumerate()
            .map(|(n, line)| (n + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .map(|(n, line)| {
                Self::parse(line)
                    .ok_or_else(|| format!("line {n} is not SEQ HASH RFC3339-TIME: {line:?}"))
            })
            .collect()
    }

    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let seq = parts.next()?.parse().ok()?;
        let hash = parts.next()?;
        let at = OffsetDateTime::parse(parts.next()?, &Rfc3339).ok()?;
        let well_formed = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (well_formed && parts.next().is_none()).then(|| Self {
            seq,
            hash: hash.to_owned(),
            at,
        })
    }
}

/// Why the chain does not match an anchor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The entry the anchor names has another hash: the chain was rewritten from there on.
    #[error("entry {seq} differs from the anchor taken at {at}: the chain was rewritten")]
    Rewritten {
        /// The anchored entry.
        seq: i64,
        /// When the anchor was taken.
        at: String,
    },
    /// The anchor names an entry past the head: entries were cut from the end and the head moved back.
    #[error(
        "the anchor taken at {at} names entry {seq}, past the head {head}: entries were removed from the end"
    )]
    Cut {
        /// The anchored entry.
        seq: i64,
        /// The stored head.
        head: i64,
        /// When the anchor was taken.
        at: String,
    },
    /// The anchored entry is gone behind the checkpoint, though no prune may remove entries that young.
    #[error(
        "entry {seq}, anchored at {at}, is gone behind the checkpoint {checkpoint}, though no prune removes entries \
         younger than {min_days} days: entries were removed and the checkpoint edited"
    )]
    FakedPrune {
        /// The anchored entry.
        seq: i64,
        /// The stored checkpoint.
        checkpoint: i64,
        /// When the anchor was taken.
        at: String,
        /// The fewest days a prune keeps.
        min_days: u32,
    },
}

/// What checking the anchors found: how many were checked against an entry, and how many lie behind a
/// legitimate prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Anchors whose entry (or the checkpoint) matched.
    pub matched: usize,
    /// Anchors older than anything a prune keeps, whose entries were pruned.
    pub pruned: usize,
}

/// Checks `anchors` against the chain between `checkpoint` and `head`, `hash_of` giving an entry's hash. An
/// anchor behind the checkpoint is accepted only when it is older than `min_days` before `now` (what a prune
/// may have removed).
pub fn check(
    anchors: &[Anchor],
    checkpoint: &Mark,
    head: &Mark,
    hash_of: impl Fn(i64) -> Option<String>,
    now: OffsetDateTime,
    min_days: u32,
) -> Result<Checked, Mismatch> {
    let mut checked = Checked {
        matched: 0,
        pruned: 0,
    };
    for anchor in anchors {
        let at = anchor.at.format(&Rfc3339).unwrap_or_default();
        if anchor.seq > head.seq {
            return Err(Mismatch::Cut {
                seq: anchor.seq,
                head: head.seq,
                at,
            });
        }
        if anchor.seq < checkpoint.seq {
            if anchor.at > now - time::Duration::days(i64::from(min_days)) {
                return Err(Mismatch::FakedPrune {
                    seq: anchor.seq,
                    checkpoint: checkpoint.seq,
                    at,
                    min_days,
                });
            }
            checked.pruned += 1;
            continue;
        }
        let stored = if anchor.seq == checkpoint.seq {
            Some(checkpoint.hash.clone())
        } else {
            hash_of(anchor.seq)
        };
        if stored.as_deref() != Some(anchor.hash.as_str()) {
            return Err(Mismatch::Rewritten {
                seq: anchor.seq,
                at,
            });
        }
        checked.matched += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: i64) -> String {
        format!("{n:064x}")
    }

    fn anchor(seq: i64, days_ago: i64) -> Anchor {
        Anchor {
            seq,
            hash: hash(seq),
            at: now() - time::Duration::days(days_ago),
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-02 12:00 UTC)
    }

    fn mark(seq: i64) -> Mark {
        Mark {
            seq,
            hash: hash(seq),
        }
    }

    #[test]
    fn anchors_read_back_as_printed() {
        let one = anchor(42, 0);
        let text = format!("# kept by cron\n{one}\n\n");
        assert_eq!(Anchor::parse_all(&text).unwrap(), [one]);
        assert!(Anchor::parse_all("42 nothex 2026-12-02T12:00:00Z").is_err());
        assert!(Anchor::parse_all(&format!("42 {}", hash(1))).is_err());
    }

    #[test]
    fn a_chain_matching_its_anchors_passes_and_a_legitimate_prune_is_allowed() {
        let entries = |seq: i64| (10..=20).contains(&seq).then(|| hash(seq));
        let anchors = [anchor(3, 100), anchor(10, 50), anchor(15, 2), anchor(20, 0)];
        let checked = check(&anchors, &mark(10), &mark(20), entries, now(), 3).unwrap();
        assert_eq!(
            checked,
            Checked {
                matched: 3,
                pruned: 1
            }
        );
    }

    #[test]
    fn a_rewrite_a_cut_end_and_a_faked_prune_are_found() {
        let entries = |seq: i64| (10..=20).contains(&seq).then(|| hash(seq));
        let changed = |seq: i64| entries(seq).map(|h| if seq >= 15 { hash(seq + 1000) } else { h });
        assert!(matches!(
            check(&[anchor(16, 1)], &mark(10), &mark(20), changed, now(), 3),
            Err(Mismatch::Rewritten { seq: 16, .. })
        ));
        assert!(matches!(
            check(&[anchor(25, 0)], &mark(10), &mark(20), entries, now(), 3),
            Err(Mismatch::Cut {
                seq: 25,
                head: 20,
                ..
            })
        ));
        // Entry 5, anchored a day ago, is gone behind checkpoint 10: no prune keeps fewer than 3 days.
        assert!(matches!(
            check(&[anchor(5, 1)], &mark(10), &mark(20), entries, now(), 3),
            Err(Mismatch::FakedPrune {
                seq: 5,
                checkpoint: 10,
                ..
            })
        ));
    }
}
