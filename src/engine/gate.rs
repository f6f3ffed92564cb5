//! The gate: the refusals decided before any AWS read. A paused or silenced target, one whose breaker is open,
//! one inside a maintenance window, or (for a real run) one still cooling down after a run acted, is answered
//! from the store and the configuration alone, so that a storm of alerts during any of them makes no AWS call.
//! The same read says which instances of the target's place are paused or silenced on their own: the plan
//! leaves them alone.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::plan::{Clock, Refusal, SkipReason, cooldown_refusal};
use super::targets::Target;
use super::{Engine, EngineError};
use crate::audit::{Brakes, InstanceBrake};
use crate::config::Window;

/// The refusal the brakes give, if any: a pause first, then a silence, then an open breaker. Pure.
pub fn brakes_refusal(brakes: Brakes) -> Option<Refusal> {
    if let Some(pause) = brakes.pause {
        return Some(Refusal::Paused {
            reason: pause.reason,
        });
    }
    if let Some(silence) = brakes.silence {
        return Some(Refusal::Silenced {
            reason: silence.reason,
            by: silence.by,
            until: crate::audit::rfc3339(silence.until),
        });
    }
    brakes.breaker.map(|breaker| Refusal::BreakerOpen {
        reason: breaker.reason,
    })
}

/// The refusal of a maintenance window of the target called `name` in force at `now`, if any. Pure.
pub fn window_refusal(windows: &[Window], name: &str, now: OffsetDateTime) -> Option<Refusal> {
    let now = jiff::Timestamp::from_nanosecond(now.unix_timestamp_nanos()).ok()?;
    windows
        .iter()
        .filter(|w| w.covers(name))
        .find_map(|window| {
            Some(Refusal::MaintenanceWindow {
                window: window.name.clone(),
                until: window.in_force_until(now)?.to_string(),
            })
        })
}

/// What the gate lets through: the refusal of the whole run, if any, and otherwise the instances of the
/// target's place paused or silenced on their own, which its plan leaves alone.
#[derive(Debug, Default)]
pub(super) struct Gated {
    /// Why the run is refused before it reads its target.
    pub refusal: Option<Refusal>,
    /// The instances held back by their own brake, by id.
    pub held: BTreeMap<String, SkipReason>,
}

/// The instances `brakes` hold back on their own, as the plan skips them.
fn held_instances(brakes: &Brakes) -> BTreeMap<String, SkipReason> {
    brakes
        .instances
        .iter()
        .map(|(id, brake)| {
            let reason = match brake {
                InstanceBrake::Paused => SkipReason::Paused,
                InstanceBrake::Silenced => SkipReason::Silenced,
            };
            (id.clone(), reason)
        })
        .collect()
}

impl Engine {
    /// Whether `target` is refused before it is read: paused, silenced, breaker open, inside a maintenance
    /// window, changing (a change this process saw under way moments ago), or (unless `dry_run`: a dry run was
    /// asked what would happen) cooling down; and, read with its brakes, the instances held back on their own.
    /// The runs in `except` (the dead attempt a takeover finishes, the earlier step of a ladder's episode) are
    /// no cooldown for it.
    pub(super) async fn gate(
        &self,
        target: &Target,
        dry_run: bool,
        except: &[&str],
    ) -> Result<Gated, EngineError> {
        let brakes = self.audit.brakes_of(&target.id).await?;
        let held = held_instances(&brakes);
        let refusal = self.refusal(target, brakes, dry_run, except).await?;
        Ok(Gated { refusal, held })
    }

    /// The refusal of the gate, if any: `brakes` first, then the rest.
    async fn refusal(
        &self,
        target: &Target,
        brakes: Brakes,
        dry_run: bool,
        except: &[&str],
    ) -> Result<Option<Refusal>, EngineError> {
        if let Some(refusal) = brakes_refusal(brakes) {
            return Ok(Some(refusal));
        }
        // The last action comes with the database's clock: windows and the cooldown are read on it.
        let last = self.audit.last_action(&target.id, except).await?;
        let now = last.clock.now();
        if let Some(refusal) = window_refusal(&self.config.windows, &target.id.name, now) {
            return Ok(Some(refusal));
        }
        if let Some(refusal) = target.recent_change() {
            return Ok(Some(refusal));
        }
        if dry_run {
            return Ok(None);
        }
        let clock = Clock {
            now,
            last_action_at: last.at,
        };
        Ok(cooldown_refusal(target.cooldown, clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{OpenBreaker, Pause, Silence};

    fn pause() -> Pause {
        Pause {
            target: None,
            account: None,
            region: None,
            reason: "maintenance".into(),
            since: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn silence() -> Silence {
        Silence {
            id: "01S".into(),
            target: None,
            account: None,
            region: None,
            reason: "deploy 42".into(),
            by: "ops".into(),
            since: OffsetDateTime::UNIX_EPOCH,
            until: OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1),
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
    fn a_pause_wins_over_a_silence_which_wins_over_an_open_breaker_and_no_brake_lets_the_run_on() {
        let both = Brakes {
            pause: Some(pause()),
            silence: Some(silence()),
            breaker: Some(breaker()),
            ..Brakes::default()
        };
        assert_eq!(
            brakes_refusal(both),
            Some(Refusal::Paused {
                reason: "maintenance".into()
            })
        );
        let silenced = Brakes {
            pause: None,
            silence: Some(silence()),
            breaker: Some(breaker()),
            ..Brakes::default()
        };
        assert_eq!(
            brakes_refusal(silenced),
            Some(Refusal::Silenced {
                reason: "deploy 42".into(),
                by: "ops".into(),
                until: "1970-01-01T01:00:00Z".into(),
            })
        );
        let open = Brakes {
            pause: None,
            silence: None,
            breaker: Some(breaker()),
            ..Brakes::default()
        };
        assert_eq!(
            brakes_refusal(open).map(|refusal| refusal.rule()),
            Some("breaker-open")
        );
        assert_eq!(brakes_refusal(Brakes::default()), None);
    }

    #[test]
    fn a_window_refuses_only_its_targets_and_only_inside_it() {
        let config = crate::config::parse(
            "[aws]\nregion = \"us-east-1\"\n[[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\n\
             [[windows]]\nname = \"patching\"\ntargets = [\"web\"]\ndays = [\"sun\"]\nstart = \"01:00\"\nduration = \"2h\"\n\
             time_zone = \"Europe/Berlin\"\n",
            std::iter::empty(),
        )
        .unwrap();
        let at = |text: &str| {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let inside = at("2026-04-05T00:30:00Z");
        let outside = at("2026-04-05T01:30:00Z");
        assert_eq!(
            window_refusal(&config.windows, "web", inside),
            Some(Refusal::MaintenanceWindow {
                window: "patching".into(),
                until: "2026-04-05T01:00:00Z".into(),
            })
        );
        assert_eq!(window_refusal(&config.windows, "api", inside), None);
        assert_eq!(window_refusal(&config.windows, "web", outside), None);
    }
}
