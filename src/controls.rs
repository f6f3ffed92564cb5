//! The operator's controls: the kill switch (pause, resume), silences (a pause with an end), the breaker
//! reset, and the state of pauses, silences, breakers and budgets. `reflex pause|resume|silence|breaker` and
//! the `/admin` routes call the same functions, and each writes its audit record (who, what, why, and a
//! refusal's reason) before it returns.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{
    AuditError, AuditRecord, AuditStore, BreakerState, Home, NewJob, Outcome, Pause, RequestMeta,
    Scope, Silence, Source,
};
use crate::config::{Config, NotifyEvent, parse_length};
use crate::engine::budget::{self, Budgets, Left};
use crate::metrics::Metrics;
use crate::notify::{Event, Notifier};
use crate::target::{Place, TargetId};

/// Why a control was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The target is not in the configuration.
    #[error("{0:?} is not a configured target (a [[targets]] load_balancer or target_group)")]
    UnknownTarget(String),
    /// The rule is not in the configuration (in the account and region given).
    #[error(
        "{0:?} is not a configured rule (a [[rules]] name; with an account or a region, those it acts in)"
    )]
    UnknownRule(String),
    /// An instance named by a control is not an EC2 instance id.
    #[error("{0:?} is not an EC2 instance id (i- and 8 or 17 hexadecimal digits)")]
    BadInstance(String),
    /// An instance named by a control is in an account or region where reflex does not act.
    #[error(
        "reflex acts in no such place ({0}): an instance is in the local account or an [[accounts]] entry, in \
         aws.region or a region a target, a rule or the account lists"
    )]
    UnknownPlace(String),
    /// Several targets in several accounts or regions share the name: a control by name cannot tell which.
    #[error(
        "{0:?} names {1} targets (in several accounts or regions): name the account and region too"
    )]
    AmbiguousTarget(String, usize),
    /// Pausing and resetting need a reason for the audit trail.
    #[error("a reason is required: say why")]
    NoReason,
    /// Nothing to resume.
    #[error("{0} is not paused")]
    NotPaused(String),
    /// Nothing to reset.
    #[error("the breaker of {0} is not open")]
    NotOpen(String),
    /// A silence's length is not a duration reflex reads, or is out of bounds.
    #[error("{0}")]
    BadDuration(String),
    /// No silence in force has this id.
    #[error("no silence in force has the id {0:?} (it ended, was lifted, or never was)")]
    NotSilenced(String),
    /// The store failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl ControlError {
    /// A stable code for answers and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTarget(_) => "unknown-target",
            Self::UnknownRule(_) => "unknown-rule",
            Self::BadInstance(_) => "invalid-instance",
            Self::UnknownPlace(_) => "unknown-place",
            Self::AmbiguousTarget(..) => "ambiguous-target",
            Self::NoReason => "reason-required",
            Self::NotPaused(_) => "not-paused",
            Self::NotOpen(_) => "breaker-not-open",
            Self::BadDuration(_) => "invalid-duration",
            Self::NotSilenced(_) => "not-silenced",
            Self::Audit(_) => "audit-unavailable",
        }
    }

    /// The HTTP status answered for it.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownTarget(_) | Self::UnknownRule(_) | Self::UnknownPlace(_) => 404,
            Self::BadInstance(_) => 400,
            Self::AmbiguousTarget(..) => 422,
            Self::NoReason | Self::BadDuration(_) => 400,
            Self::NotSilenced(_) => 404,
            Self::NotPaused(_) | Self::NotOpen(_) => 409,
            Self::Audit(_) => 503,
        }
    }
}

/// A target's (or a rule's) budgets left.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBudget {
    /// The target's name, or the rule's.
    pub target: String,
    /// Whether it is a load balancer, a target group or a rule.
    pub kind: crate::target::TargetKind,
    /// Its AWS account.
    pub account: String,
    /// Its AWS region.
    pub region: String,
    /// What each budget still allows (the `all_*` ones are shared by every target).
    pub left: Left,
}

/// Pauses, breakers and budgets, as `GET /admin/state` and `reflex breaker status` show them.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    /// Pauses in force (`target: null` is everything).
    pub pauses: Vec<Pause>,
    /// Silences in force (`target: null` is everything), each with its end.
    pub silences: Vec<Silence>,
    /// Breakers with a history: open ones, and closed ones counting consecutive failures.
    pub breakers: Vec<BreakerState>,
    /// Budgets left per configured target.
    pub budgets: Vec<TargetBudget>,
    /// When this was read.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a control names: a configured target, a `[[rules]]` entry, or one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// A `[[targets]]` entry, by its load_balancer or target_group as configured.
    Target,
    /// A `[[rules]]` entry, by its name.
    Rule,
    /// One EC2 instance, by its id, in the place given (else the local account and `aws.region`): its own
    /// pause or silence holds it back from every target's and rule's run there.
    Instance,
}

/// A target as an operator names it: its name, and where it is when several targets share the name.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// The configured target's name (its load_balancer or target_group as configured), the rule's, or the
    /// instance's id.
    pub name: &'a str,
    /// Its account and region, each when given.
    pub place: &'a Place,
    /// What `name` names.
    pub names: Names,
}

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.names {
            Names::Rule => write!(f, "rule {}", self.name)?,
            Names::Instance => write!(f, "instance {}", self.name)?,
            Names::Target => f.write_str(self.name)?,
        }
        if self.names != Names::Rule && self.place.is_given() {
            write!(f, " {}", self.place)?;
        }
        Ok(())
    }
}

/// The controls over one store and configuration.
#[derive(Debug, Clone, Copy)]
pub struct Controls<'a> {
    /// Where pauses and breakers live and controls are recorded.
    pub audit: &'a AuditStore,
    /// The configured targets and budgets.
    pub config: &'a Config,
    /// Where reflex runs: the account and region of the configured targets.
    pub home: &'a Home,
    /// Counts resets, when serving.
    pub metrics: Option<&'a Metrics>,
}

impl Controls<'_> {
    /// Pauses `target` (`None`: everything) for `reason`; every process sharing the store refuses its alerts
    /// without any AWS call until it is resumed.
    pub async fn pause(
        &self,
        mut meta: RequestMeta,
        target: Option<Named<'_>>,
        reason: &str,
    ) -> Result<(), ControlError> {
        meta.note("pause", serde_json::json!({"reason": reason}));
        let done: Result<(), ControlError> = async {
            let id = self.resolve(target)?;
            self.reason(reason)?;
            self.audit.pause(scope(id.as_ref()), reason).await?;
            Ok(())
        }
        .await;
        self.record(meta, target, done).await
    }

    /// Lifts the pause of `target` (`None`: the pause of everything).
    pub async fn resume(
        &self,
        mut meta: RequestMeta,
        target: Option<Named<'_>>,
        reason: Option<&str>,
    ) -> Result<(), ControlError> {
        meta.note("resume", serde_json::json!({"reason": reason}));
        let done: Result<(), ControlError> = async {
            let id = self.resolve(target)?;
            if self.audit.resume(scope(id.as_ref())).await? {
                Ok(())
            } else {
                Err(ControlError::NotPaused(target.map_or_else(
                    || "everything".to_owned(),
                    |named| named.to_string(),
                )))
            }
        }
        .await;
        self.record(meta, target, done).await
    }

    /// Silences `target` (`None`: everything) for `length` (`90s`, `15m`, `2h`, `1d`), for `reason`, set `by`
    /// someone: every process sharing the store refuses its alerts (`silenced`) without any AWS call until
    /// the silence ends by itself, or is lifted.
    pub async fn silence(
        &self,
        mut meta: RequestMeta,
        target: Option<Named<'_>>,
        length: &str,
        reason: &str,
        by: &str,
    ) -> Result<Silence, ControlError> {
        meta.note(
            "silence",
            serde_json::json!({"for": length, "reason": reason, "by": by}),
        );
        let done: Result<Silence, ControlError> = async {
            let id = self.resolve(target)?;
            self.reason(reason)?;
            let length = silence_length(length).map_err(ControlError::BadDuration)?;
            Ok(self
                .audit
                .silence(scope(id.as_ref()), reason, by, length)
                .await?)
        }
        .await;
        if let Ok(silence) = &done {
            meta.note("silenced", silence);
        }
        self.record(meta, target, done).await
    }

    /// Lifts the silence `id` before its end; the silence lifted.
    pub async fn unsilence(
        &self,
        mut meta: RequestMeta,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Silence, ControlError> {
        meta.note("unsilence", serde_json::json!({"id": id, "reason": reason}));
        let done = match self.audit.unsilence(id).await {
            Ok(Some(silence)) => Ok(silence),
            Ok(None) => Err(ControlError::NotSilenced(crate::untrusted::bounded(id))),
            Err(err) => Err(err.into()),
        };
        match &done {
            Ok(silence) => {
                silenced_target(&mut meta, silence);
                meta.note("lifted", silence);
            }
            Err(_) => meta.target = Some("(unknown)".to_owned()),
        }
        self.written(meta, done).await
    }

    /// Closes `target`'s breaker, for `reason`.
    pub async fn reset_breaker(
        &self,
        mut meta: RequestMeta,
        target: Named<'_>,
        reason: &str,
    ) -> Result<(), ControlError> {
        meta.note("breaker_reset", serde_json::json!({"reason": reason}));
        let done: Result<(), ControlError> = async {
            let id = self.resolve(Some(target))?;
            self.reason(reason)?;
            let Some(id) = id else {
                return Err(ControlError::UnknownTarget(crate::untrusted::bounded(
                    target.name,
                )));
            };
            if !self.audit.reset_breaker(&id).await? {
                return Err(ControlError::NotOpen(target.to_string()));
            }
            if let Some(metrics) = self.metrics {
                metrics.breaker_resets.inc();
            }
            tracing::warn!(target = %target, reason, "breaker reset by an operator");
            Ok(())
        }
        .await;
        self.record(meta, Some(target), done).await
    }

    /// Pauses, breakers and every configured target's and rule's budgets left, now.
    pub async fn state(&self) -> Result<State, AuditError> {
        // The budgets count on the database's clock, as the runs do.
        let now = self.audit.clock().await?.now();
        let budgets = Budgets::from(&self.config.remediation);
        let targets = self
            .config
            .targets
            .iter()
            .map(|target| self.config.target_id(target, &self.home.account));
        let rules = self
            .config
            .rules
            .iter()
            .map(|rule| self.config.rule_id(rule, &self.home.account));
        let mut per_target =
            Vec::with_capacity(self.config.targets.len() + self.config.rules.len());
        for id in targets.chain(rules) {
            let used = budget::usage(self.audit, &id, now).await?;
            per_target.push(TargetBudget {
                target: id.name,
                kind: id.kind,
                account: id.account,
                region: id.region,
                left: Left::of(budgets, used),
            });
        }
        Ok(State {
            pauses: self.audit.pauses().await?,
            silences: self.audit.silences().await?,
            breakers: self.audit.breakers().await?,
            budgets: per_target,
            at: now,
        })
    }

    /// The identity of the configured target `named` names (`None`: everything): one target, or why not.
    fn resolve(&self, named: Option<Named<'_>>) -> Result<Option<TargetId>, ControlError> {
        let Some(named) = named else { return Ok(None) };
        match named.names {
            Names::Rule => return self.rule_id(named),
            Names::Instance => return self.instance_id(named).map(Some),
            Names::Target => {}
        }
        match self
            .config
            .targets_named(named.name, named.place, &self.home.account)
            .as_slice()
        {
            [only] => Ok(Some(self.config.target_id(only, &self.home.account))),
            [] => Err(ControlError::UnknownTarget(crate::untrusted::bounded(
                &named.to_string(),
            ))),
            several => Err(ControlError::AmbiguousTarget(
                crate::untrusted::bounded(named.name),
                several.len(),
            )),
        }
    }

    /// The identity of the rule `named` names, in the account and region it acts in (a place given must be
    /// the rule's).
    fn rule_id(&self, named: Named<'_>) -> Result<Option<TargetId>, ControlError> {
        let home = &self.home.account;
        let rule = self.config.rules.iter().find(|rule| {
            rule.name == named.name && self.config.is_in(&rule.place(), named.place, home)
        });
        match rule {
            Some(rule) => Ok(Some(self.config.rule_id(rule, home))),
            None => Err(ControlError::UnknownRule(crate::untrusted::bounded(
                named.name,
            ))),
        }
    }

    /// The identity of the instance `named` names, in the place given (the local account and `aws.region`
    /// when not): one where reflex acts (a target's, a rule's, an `[[accounts]]` entry's region), else why not.
    fn instance_id(&self, named: Named<'_>) -> Result<TargetId, ControlError> {
        if !crate::engine::is_instance_id(named.name) {
            return Err(ControlError::BadInstance(crate::untrusted::bounded(
                named.name,
            )));
        }
        let home = &self.home.account;
        let account = match named.place.account.as_deref() {
            None | Some(crate::config::LOCAL_ACCOUNT) => home.as_str(),
            Some(given) => self
                .config
                .account(given)
                .map_or(given, |account| account.account_id()),
        };
        let region = named
            .place
            .region
            .as_deref()
            .unwrap_or(&self.config.aws.region);
        let acts_there = self
            .config
            .places(home)
            .iter()
            .any(|place| place.account == account && place.region == region);
        if !acts_there {
            return Err(ControlError::UnknownPlace(crate::untrusted::bounded(
                &named.place.to_string(),
            )));
        }
        // AWS writes ids in lowercase: one given in capitals names the same instance.
        Ok(TargetId::new(
            account,
            region,
            crate::target::TargetKind::Instance,
            named.name.to_ascii_lowercase(),
        ))
    }

    fn reason(&self, reason: &str) -> Result<(), ControlError> {
        if reason.trim().is_empty() {
            Err(ControlError::NoReason)
        } else {
            Ok(())
        }
    }

    /// Writes the control's audit record: done, or refused with its code.
    async fn record<T>(
        &self,
        mut meta: RequestMeta,
        target: Option<Named<'_>>,
        done: Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        match target.map(|named| self.resolve(Some(named))) {
            Some(Ok(Some(known))) => meta.concerns(&known),
            Some(_) => meta.target = Some("(unknown)".to_owned()),
            None => meta.target = Some("*".to_owned()),
        }
        self.written(meta, done).await
    }

    /// Writes the control's audit record, its target already said: done, or refused with its code.
    async fn written<T>(
        &self,
        mut meta: RequestMeta,
        done: Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let record = match &done {
            Ok(_) => meta.record(Outcome::Completed, 200, None, 0),
            Err(err) => {
                meta.note("error", err.to_string());
                meta.record(Outcome::Rejected, err.status(), Some(err.code()), 0)
            }
        };
        self.audit.put(record).await?;
        done
    }
}

/// The longest silence: one meant to last longer is a pause (`reflex pause`), which says so.
const LONGEST_SILENCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A silence's length: at least a second, at most 30 days.
fn silence_length(text: &str) -> Result<Duration, String> {
    let length = parse_length(text)?;
    if length > LONGEST_SILENCE {
        return Err(format!(
            "a silence lasts at most 30d ({text:?} is longer): to stop until you say so, pause instead"
        ));
    }
    Ok(length)
}

/// The record says which target a silence is for (`*`: everything).
fn silenced_target(meta: &mut RequestMeta, silence: &Silence) {
    meta.target = Some(silence.target.clone().unwrap_or_else(|| "*".to_owned()));
    meta.place = silence.account.clone().zip(silence.region.clone());
}

/// The end of `silence`, announced when its `silence-end` job runs: its audit record and its notifications,
/// written with the job's removal, once across every process sharing the store. A silence lifted early has
/// no such job left.
pub fn silence_ended(notifier: &Notifier, silence: &Silence) -> (AuditRecord, Vec<NewJob>) {
    let mut meta = RequestMeta::new(Source::Admin, None);
    silenced_target(&mut meta, silence);
    meta.note("silence_end", silence);
    let who = silence.target.as_deref().unwrap_or("every target");
    let text = format!(
        "the silence of {who} set by {} ({}) has ended",
        silence.by, silence.reason
    );
    let event = Event::new(
        NotifyEvent::Silence,
        meta.target.as_deref().unwrap_or("*"),
        text,
        &meta.id,
    )
    .at(meta.place.as_ref());
    tracing::info!(silence = silence.id, target = who, "a silence ended");
    let jobs = notifier.jobs_for(&event);
    (meta.into_record(Outcome::Completed, 200, None, 0), jobs)
}

/// What a pause or resume of `target` (`None`: everything) is for.
fn scope(target: Option<&TargetId>) -> Scope<'_> {
    target.map_or(Scope::Everything, Scope::Target)
}
