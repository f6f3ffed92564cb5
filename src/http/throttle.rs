//! How many rejected, unauthenticated requests get a full audit record: a token bucket per source. Past its
//! rate they are counted instead, and the counts are written as one summary record a few seconds later, so a
//! flood of junk grows the audit trail by a bounded amount while every rejection is still accounted for.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::audit::Source;

/// Full records per second and source, sustained.
const RATE_PER_SEC: f64 = 10.0;
/// Full records in a burst, per source.
const BURST: f64 = 20.0;

/// Rejections not recorded one by one: per source, per error code, how many, since when.
pub type Suppressed = BTreeMap<Source, (BTreeMap<&'static str, u64>, time::OffsetDateTime)>;

/// The buckets and the counts of what they turned away.
#[derive(Debug, Default)]
pub struct RejectionThrottle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<Source, (f64, Instant)>,
    suppressed: Suppressed,
}

impl RejectionThrottle {
    /// Whether this rejection gets a full record; when not, it is counted for the next summary.
    pub fn admit(&self, source: Source, code: &'static str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = state.buckets.entry(source).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * RATE_PER_SEC).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return true;
        }
        let (codes, _) = state
            .suppressed
            .entry(source)
            .or_insert_with(|| (BTreeMap::new(), time::OffsetDateTime::now_utc()));
        *codes.entry(code).or_default() += 1;
        false
    }

    /// Takes the counts gathered since the last call, for a summary record.
    pub fn take(&self) -> Suppressed {
        std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .suppressed,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_recorded_then_counted_per_source_and_code() {
        let throttle = RejectionThrottle::default();
        let admitted = (0..1000)
            .filter(|_| throttle.admit(Source::Sns, "bad-signature"))
            .count();
        assert!((20..=25).contains(&admitted), "{admitted}");
        assert!(
            throttle.admit(Source::Manual, "invalid-token"),
            "sources have their own buckets"
        );
        let suppressed = throttle.take();
        let (codes, _) = &suppressed[&Source::Sns];
        assert_eq!(codes["bad-signature"] as usize, 1000 - admitted);
        assert!(throttle.take().is_empty());
    }
}
