//! How often a target's routine notices are sent: an observe-mode target whose alert repeats would otherwise
//! send a "would have acted" notice per alert, and an approve-mode target whose broken instances change from
//! alert to alert a "held" message per decision. Kept per process (each replica sends its own at most).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One routine notice ("would have acted", "held") per target in this long, at most.
pub const ROUTINE_EVERY: Duration = Duration::from_secs(300);

/// How many keys the map holds before those past their interval are dropped.
const PRUNE_ABOVE: usize = 1_024;

/// When each target's last routine notice was sent.
#[derive(Debug, Default)]
pub struct Quiet {
    sent: Mutex<HashMap<String, Instant>>,
}

impl Quiet {
    /// Whether a routine notice keyed `key` may be sent at `now`, one per `every` (and, when it may, that
    /// it is sent now).
    pub fn may_send(&self, key: &str, every: Duration, now: Instant) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        match sent.get(key) {
            Some(last) if now.duration_since(*last) < every => false,
            _ => {
                // One entry per target, event and ladder step that sent a notice lately: those older than the
                // longest interval are forgotten as the map grows.
                if sent.len() >= PRUNE_ABOVE {
                    sent.retain(|_, last| now.duration_since(*last) < ROUTINE_EVERY);
                }
                sent.insert(key.to_owned(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_target_per_interval() {
        let quiet = Quiet::default();
        let start = Instant::now();
        assert!(quiet.may_send("web", ROUTINE_EVERY, start));
        assert!(!quiet.may_send("web", ROUTINE_EVERY, start + Duration::from_secs(10)));
        assert!(
            quiet.may_send("api", ROUTINE_EVERY, start + Duration::from_secs(10)),
            "per target"
        );
        assert!(quiet.may_send("web", ROUTINE_EVERY, start + ROUTINE_EVERY));
    }
}
