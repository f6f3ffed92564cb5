//! The tamper-evident chain over the audit trail. Every version of a record (an intent, then its outcome) is
//! appended as an entry of its own, never rewritten; each entry stores the hash of the entry before it and its
//! own hash over that and its canonical content. Editing an entry breaks its own hash, removing one leaves a
//! gap in the sequence numbers, moving one breaks the link to the entry before it. Pruning removes a prefix of
//! the chain and keeps the last removed entry's hash as the checkpoint the rest follows. A chain that was never
//! pruned starts from the checkpoint (0, 64 zeros) its migration writes.

use aws_lc_rs::digest;

use super::rows::StoredRow;

/// The hash of an entry with this content, following the entry whose hash is `previous`.
pub fn link(previous: &str, row: &StoredRow) -> String {
    link_canonical(previous, &row.canonical())
}

/// `link` of an entry whose canonical content (`StoredRow::canonical`) is already known.
pub fn link_canonical(previous: &str, canonical: &str) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(previous.as_bytes());
    context.update(b"\n");
    context.update(canonical.as_bytes());
    crate::hex::encode(context.finish().as_ref())
}

/// One stored entry, as verification reads it back and `reflex audit export` writes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Its place in the chain.
    pub seq: i64,
    /// The hash it claims the entry before it has.
    pub prev_hash: String,
    /// Its own hash.
    pub hash: String,
    /// Its content.
    #[serde(flatten)]
    pub row: StoredRow,
}

/// Where a chain ends, or where its verified part starts after a prune: a sequence number and that entry's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The sequence number (0 for the start of a chain that was never pruned).
    pub seq: i64,
    /// The hash of the entry at `seq` (`GENESIS` at 0).
    pub hash: String,
}

/// The first place where the stored chain is not what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The entry's content (or its hashes) differs from what was hashed when it was written.
    #[error("entry {seq} (record {id}) was changed: its content no longer matches its hash")]
    Changed {
        /// The entry's sequence number.
        seq: i64,
        /// The record it is a version of.
        id: String,
    },
    /// Entries are missing between two that are still there.
    #[error(
        "entries {from}..={to} were removed: the chain jumps from entry {} to entry {} (record {id})",
        from - 1,
        to + 1
    )]
    Removed {
        /// The first missing sequence number.
        from: i64,
        /// The last missing sequence number.
        to: i64,
        /// The record of the entry after the gap.
        id: String,
    },
    /// The entry does not follow the one before it: entries were moved or swapped.
    #[error(
        "entry {seq} (record {id}) is out of place: it was written after another entry than the one now before it"
    )]
    Reordered {
        /// The entry's sequence number.
        seq: i64,
        /// The record it is a version of.
        id: String,
    },
    /// The newest entries are gone: the chain ends before the head the store recorded.
    #[error(
        "the newest entries were removed: the chain ends at entry {last} but was written up to entry {head}"
    )]
    Truncated {
        /// The last entry present.
        last: i64,
        /// The last entry written.
        head: i64,
    },
    /// The chain goes past, or ends elsewhere than, the head the store recorded: entries were added or the
    /// chain rewritten by hand.
    #[error(
        "the chain ends at entry {last}, not at the head entry {head} the store recorded writing"
    )]
    Forged {
        /// The last entry present.
        last: i64,
        /// The last entry written.
        head: i64,
    },
}

/// Walks a chain entry by entry (entries in sequence order), from its checkpoint.
#[derive(Debug)]
pub struct Verifier {
    last: Mark,
    entries: u64,
}

impl Verifier {
    /// Starts after `checkpoint` (`Mark::genesis()` for a chain never pruned).
    pub fn new(checkpoint: Mark) -> Self {
        Self {
            last: checkpoint,
            entries: 0,
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &Entry) -> Result<(), Break> {
        if link(&entry.prev_hash, &entry.row) != entry.hash {
            return Err(Break::Changed {
                seq: entry.seq,
                id: entry.row.id.clone(),
            });
        }
        if entry.seq > self.last.seq + 1 {
            return Err(Break::Removed {
                from: self.last.seq + 1,
                to: entry.seq - 1,
                id: entry.row.id.clone(),
            });
        }
        if entry.seq != self.last.seq + 1 || entry.prev_hash != self.last.hash {
            return Err(Break::Reordered {
                seq: entry.seq,
                id: entry.row.id.clone(),
            });
        }
        self.last = Mark {
            seq: entry.seq,
            hash: entry.hash.clone(),
        };
        self.entries += 1;
        Ok(())
    }

    /// Checks that the chain reaches `head` (the last entry the store recorded writing); returns how many
    /// entries were verified and the last one.
    pub fn finish(self, head: &Mark) -> Result<(u64, Mark), Break> {
        if self.last.seq < head.seq {
            return Err(Break::Truncated {
                last: self.last.seq,
                head: head.seq,
            });
        }
        if self.last != *head {
            return Err(Break::Forged {
                last: self.last.seq,
                head: head.seq,
            });
        }
        Ok((self.entries, self.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    impl Mark {
        fn genesis() -> Self {
            Self {
                seq: 0,
                hash: GENESIS.to_owned(),
            }
        }
    }

    fn row(id: &str) -> StoredRow {
        StoredRow {
            id: id.into(),
            at_ms: 1_700_000_000_000,
            source: "manual".into(),
            caller: Some("127.0.0.1:1".into()),
            auth: "passed".into(),
            target: Some("web".into()),
            outcome: "completed".into(),
            status: 200,
            error: None,
            dry_run: 0,
            acted: 1,
            duration_ms: 3,
            detail: r#"{"k":"v"}"#.into(),
            acted_ms: None,
            account: None,
            region: None,
        }
    }

    #[test]
    fn an_entry_without_a_place_hashes_as_before_and_one_with_a_place_hashes_it() {
        let old = row("A");
        assert_eq!(
            old.canonical(),
            r#"["A",1700000000000,"manual","127.0.0.1:1","passed","web","completed",200,null,0,1,3,"{\"k\":\"v\"}",null]"#
        );
        let placed = StoredRow {
            account: Some("123456789012".into()),
            region: Some("eu-west-1".into()),
            ..row("A")
        };
        assert!(
            placed
                .canonical()
                .ends_with(r#",null,"123456789012","eu-west-1"]"#),
            "{}",
            placed.canonical()
        );
    }

    fn chain(ids: &[&str]) -> Vec<Entry> {
        let mut previous = GENESIS.to_owned();
        ids.iter()
            .zip(1..)
            .map(|(id, seq)| {
                let row = row(id);
                let hash = link(&previous, &row);
                Entry {
                    seq,
                    prev_hash: std::mem::replace(&mut previous, hash.clone()),
                    hash,
                    row,
                }
            })
            .collect()
    }

    fn verify(entries: &[Entry], checkpoint: Mark, head: &Mark) -> Result<(u64, Mark), Break> {
        let mut verifier = Verifier::new(checkpoint);
        for entry in entries {
            verifier.push(entry)?;
        }
        verifier.finish(head)
    }

    fn head(entries: &[Entry]) -> Mark {
        let last = entries.last().unwrap();
        Mark {
            seq: last.seq,
            hash: last.hash.clone(),
        }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let entries = chain(&["a", "b", "c"]);
        let (count, last) = verify(&entries, Mark::genesis(), &head(&entries)).unwrap();
        assert_eq!((count, last.seq), (3, 3));
    }

    #[test]
    fn an_edit_names_the_changed_entry() {
        let mut entries = chain(&["a", "b", "c"]);
        entries[1].row.acted = 0;
        let head = head(&entries);
        assert_eq!(
            verify(&entries, Mark::genesis(), &head),
            Err(Break::Changed {
                seq: 2,
                id: "b".into()
            })
        );
    }

    #[test]
    fn a_removal_names_the_gap() {
        let mut entries = chain(&["a", "b", "c", "d"]);
        let head = head(&entries);
        entries.remove(1);
        let broken = verify(&entries, Mark::genesis(), &head).unwrap_err();
        assert_eq!(
            broken,
            Break::Removed {
                from: 2,
                to: 2,
                id: "c".into()
            }
        );
        assert!(broken.to_string().contains("entries 2..=2 were removed"));
    }

    #[test]
    fn a_swap_names_the_moved_entry() {
        let mut entries = chain(&["a", "b", "c", "d"]);
        let head = head(&entries);
        // Swapped by hand: the sequence numbers exchanged, each entry keeping its content and hashes.
        let (b, c) = (entries[1].clone(), entries[2].clone());
        entries[1] = Entry { seq: 2, ..c };
        entries[2] = Entry { seq: 3, ..b };
        assert_eq!(
            verify(&entries, Mark::genesis(), &head),
            Err(Break::Reordered {
                seq: 2,
                id: "c".into()
            })
        );
    }

    #[test]
    fn removing_the_newest_entries_is_seen_against_the_head() {
        let mut entries = chain(&["a", "b", "c"]);
        let head = head(&entries);
        entries.pop();
        assert_eq!(
            verify(&entries, Mark::genesis(), &head),
            Err(Break::Truncated { last: 2, head: 3 })
        );
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_checkpoint_and_only_from_it() {
        let entries = chain(&["a", "b", "c", "d"]);
        let checkpoint = Mark {
            seq: 2,
            hash: entries[1].hash.clone(),
        };
        let head = head(&entries);
        assert_eq!(verify(&entries[2..], checkpoint, &head).unwrap().0, 2);
        assert!(matches!(
            verify(&entries[2..], Mark::genesis(), &head),
            Err(Break::Removed { from: 1, to: 2, .. })
        ));
    }
}
