//! The gate: the refusals decided before any AWS read. A paused target, one whose breaker is open, or (for a
//! real run) one still cooling down after a run acted, is answered from the store alone, so that a storm of
//! alerts during any of them makes no AWS call.

use std::time::Duration;

use super::plan::{Clock, Refusal, cooldown_refusal};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::Brakes;

/// The refusal the brakes give, if any: a pause first, then an open breaker. Pure.
pub fn brakes_refusal(brakes: Brakes) -> Option<Refusal> {
    match (brakes.pause, brakes.breaker) {
        (Some(pause), _) => Some(Refusal::Paused {
            reason: pause.reason,
        }),
        (None, Some(breaker)) => Some(Refusal::BreakerOpen {
            reason: breaker.reason,
        }),
        (None, None) => None,
    }
}

impl Engine {
    /// Whether `target` is refused before it is read: paused, breaker open, or (unless `dry_run`: a dry run
    /// was asked what would happen) cooling down. `previous` is the dead attempt a takeover finishes: its own
    /// action is no cooldown for it.
    pub(super) async fn gate(
        &self,
        target: &Target,
        dry_run: bool,
        previous: Option<&str>,
    ) -> Result<Option<Refusal>, EngineError> {
        if let Some(refusal) = brakes_refusal(self.audit.brakes_of(&target.id).await?) {
            return Ok(Some(refusal));
        }
        if dry_run {
            return Ok(None);
        }
        let last = self.audit.last_action(&target.id, previous).await?;
        let clock = Clock {
            now: last.clock.now(),
            last_action_at: last.at,
        };
        let cooldown = Duration::from_secs(self.config.remediation.cooldown_secs);
        Ok(cooldown_refusal(cooldown, clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{OpenBreaker, Pause};
    use time::OffsetDateTime;

    fn pause() -> Pause {
        Pause {
            target: None,
            account: None,
            region: None,
            reason: "maintenance".into(),
            since: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn breaker() -> OpenBreaker {
        OpenBreaker {
            target: "web".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            reason: "budget".into(),
            since: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_pause_wins_over_an_open_breaker_and_no_brake_lets_the_run_on() {
        let both = Brakes {
            pause: Some(pause()),
            breaker: Some(breaker()),
        };
        assert_eq!(
            brakes_refusal(both),
            Some(Refusal::Paused {
                reason: "maintenance".into()
            })
        );
        let open = Brakes {
            pause: None,
            breaker: Some(breaker()),
        };
        assert_eq!(
            brakes_refusal(open).map(|refusal| refusal.rule()),
            Some("breaker-open")
        );
        assert_eq!(brakes_refusal(Brakes::default()), None);
    }
}
