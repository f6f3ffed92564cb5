//! A bounded in-memory copy of completed deliveries, so a redelivery is answered without a database round trip.
//! Completed deliveries never change, so the copy cannot go stale; a miss simply asks the database.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries per generation; at most twice this many are kept.
const GENERATION_SIZE: usize = 16_384;

/// Two generations of completed deliveries: when the current one is full it becomes the previous one and the
/// oldest generation is dropped, which bounds memory without per-entry bookkeeping.
#[derive(Debug, Default)]
pub struct CompletedDeliveries {
    generations: Mutex<(HashMap<String, Completed>, HashMap<String, Completed>)>,
}

/// A completed delivery: the first request's audit id and answer.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The first request's audit id.
    pub audit_id: String,
    /// The answer a redelivery gets.
    pub answer: bytes::Bytes,
}

impl CompletedDeliveries {
    /// The completed delivery with this key, if it is held.
    pub fn get(&self, key: &str) -> Option<Completed> {
        let generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        generations
            .0
            .get(key)
            .or_else(|| generations.1.get(key))
            .cloned()
    }

    /// Remembers a delivery once its completion is committed.
    pub fn insert(&self, key: String, completed: Completed) {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if generations.0.len() >= GENERATION_SIZE {
            generations.1 = std::mem::take(&mut generations.0);
        }
        generations.0.insert(key, completed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_recent_entries_and_stays_bounded() {
        let cache = CompletedDeliveries::default();
        for n in 0..(GENERATION_SIZE * 3) {
            cache.insert(
                format!("k{n}"),
                Completed {
                    audit_id: n.to_string(),
                    answer: bytes::Bytes::new(),
                },
            );
        }
        let generations = cache.generations.lock().unwrap();
        assert!(generations.0.len() + generations.1.len() <= 2 * GENERATION_SIZE);
        drop(generations);
        assert_eq!(
            cache
                .get(&format!("k{}", GENERATION_SIZE * 3 - 1))
                .unwrap()
                .audit_id,
            (GENERATION_SIZE * 3 - 1).to_string()
        );
        assert!(cache.get("k0").is_none());
    }
}
