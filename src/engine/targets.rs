//! The configured targets as the engine serves them: target groups resolved to their ARNs once at start-up
//! (refused when missing or not of instances), each with the fleet that serves it, its action and its
//! single-flight lock. The targets are the registry of fleets: each one is reached through its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::EngineError;
use super::action::{Action as ActionKind, Effect, Judged, Kinds, LadderError};
use super::kinds_check::KindsError;
use super::port::{FailureKind, Fleet, FleetError, TargetRef};
use super::refusal::Refusal;
use crate::audit::Home;
use crate::config::{Config, Mode, TargetConfig};
use crate::contract::Names;
use crate::target::{Place, TargetId, TargetKind};

/// Where each configured target lives and which fleet serves it.
pub type FleetOf<'a> = &'a dyn Fn(&TargetConfig) -> (Arc<dyn Fleet>, Home);
use crate::target::names;

/// Why reflex cannot start with its configured targets.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configured target group does not exist (the group, with its account and region).
    #[error(
        "{0} (targets.target_group) does not exist there; check the name or ARN, and the target's account and region"
    )]
    TargetGroupNotFound(String),
    /// A configured target group routes to IP addresses, Lambda functions or a load balancer.
    #[error(
        "target group {group:?} (targets.target_group) has target type {target_type:?}: reflex replaces EC2 \
         instances, so it heals only target groups of type \"instance\"; remove it from [[targets]]"
    )]
    NotInstances {
        /// The group as configured.
        group: String,
        /// Its target type.
        target_type: String,
    },
    /// Reading a target's health failed (`check-config --aws`, and start-up for another account's targets).
    #[error("cannot read the health of {target}: {source}")]
    Probe {
        /// The target, with its account and region.
        target: String,
        /// The failed call.
        source: FleetError,
    },
    /// A step of a target's ladder cannot serve it: its kind's start-up check of the resource it names failed.
    #[error("{target}: step {step:?} cannot serve it: {source}")]
    Step {
        /// The target, with its account and region.
        target: String,
        /// The step as configured.
        step: String,
        /// What the kind found.
        source: Box<FleetError>,
    },
    /// Two configured targets are one: an `[[accounts]]` role in the account reflex runs in (or two entries
    /// of one account) names a balancer also configured elsewhere.
    #[error(
        "{target} is configured twice (also through account {other:?}): one balancer in one account and region \
         is one [[targets]] entry"
    )]
    SameTarget {
        /// The target, with its account and region.
        target: String,
        /// The `[[accounts]]` name of the other entry.
        other: String,
    },
    /// A target's ladder names a step no action kind serves, or removes the instance before its last step, or
    /// a kind's key is unusable.
    #[error("{target}: {source}")]
    Ladder {
        /// The target, with its account and region.
        target: String,
        /// What is wrong with the ladder.
        source: LadderError,
    },
    /// A key no action kind reads, or a kind's unusable default.
    #[error(transparent)]
    Kinds(#[from] KindsError),
    /// A rule cannot be compiled.
    #[error(transparent)]
    Rules(#[from] crate::rules::RuleError),
    /// Looking a target group up failed.
    #[error("cannot look up target group {group} (targets.target_group): {source}")]
    Lookup {
        /// The group as configured, with its account and region.
        group: String,
        /// The failed call.
        source: FleetError,
    },
}

/// One configured target.
#[derive(Debug)]
pub(super) struct Target {
    /// Its identity: account, region, kind and the name recorded in the audit trail.
    pub id: TargetId,
    /// The `[[accounts]]` name of its account (`local` for the account reflex runs in).
    pub account_name: String,
    /// How the fleet is asked about it: the load balancer's name or the target group's ARN.
    pub fleet_ref: TargetRef,
    /// How the configuration names it.
    pub configured: TargetRef,
    /// How summaries name it.
    pub names: Names,
    /// Its speed limit: the fraction of its instances that may be acted on in any hour; none for a rule,
    /// whose steps keep the instance.
    pub removed_fraction: Option<f64>,
    /// How far reflex may go on its own with it.
    pub mode: Mode,
    /// Distinct approvers its held decisions need (approve mode).
    pub approvals_required: u32,
    /// The action kinds it tries in order (`reboot`, then `replace`).
    pub ladder: Vec<Arc<dyn ActionKind>>,
    /// How long after a run acted on it its alerts are refused `cooldown`: `remediation.cooldown_secs`, and
    /// for a ladder that starts with a reboot at least until the reboot is checked, so that an alert repeated
    /// meanwhile does not reboot the instance again in an episode of its own.
    pub cooldown: Duration,
    /// The fleet it is read and healed through.
    pub fleet: Arc<dyn Fleet>,
    /// One run at a time.
    pub lock: Mutex<()>,
    /// For a rule's target: the rule's fingerprint as configured (`RuleConfig::fingerprint`).
    pub fingerprint: Option<String>,
    /// For a rule on no instance (`instances = "none"`): its runs read no instance and act once on what the
    /// alert names.
    pub on_alert: bool,
    /// The last change seen under way in its Auto Scaling groups, and when: remembered a short while, so that
    /// a storm of alerts during a deploy is answered without reading AWS again for each.
    pub change_seen: std::sync::Mutex<Option<(Instant, Refusal)>>,
}

/// How long a change seen under way is remembered: alerts in this time are refused with it, with no AWS call.
pub(super) const CHANGE_REMEMBERED: Duration = Duration::from_secs(30);

/// A target in start-up's messages: where it is, and its account's `[[accounts]]` name.
fn described(id: &TargetId, account_name: &str) -> String {
    format!("{id} (account {account_name:?})")
}

impl Target {
    /// Whether it is a rule's: its instances come with each alert, and no balancer's capacity bounds it.
    pub fn is_rule(&self) -> bool {
        self.id.kind == TargetKind::Rule
    }

    /// Remembers `refusal`, a change seen under way now.
    pub fn saw_change(&self, refusal: &Refusal) {
        *self
            .change_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Instant::now(), refusal.clone()));
    }

    /// The change seen under way less than `CHANGE_REMEMBERED` ago, if any.
    pub fn recent_change(&self) -> Option<Refusal> {
        let seen = self
            .change_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.as_ref()
            .filter(|(at, _)| at.elapsed() < CHANGE_REMEMBERED)
            .map(|(_, refusal)| refusal.clone())
    }

    /// Whether the target is in `place`: its account named by `[[accounts]]` name or id, its region.
    pub fn is_in(&self, place: &Place) -> bool {
        let account = place
            .account
            .as_deref()
            .is_none_or(|account| account == self.account_name || account == self.id.account);
        let region = place
            .region
            .as_deref()
            .is_none_or(|region| region == self.id.region);
        account && region
    }
}

/// How long a target cools down after a run acted on it: `remediation.cooldown_secs`, and when its ladder's
/// first step is judged by its instances coming back (a reboot), at least until that is checked (the kind's
/// wait), so that an alert repeated meanwhile does not take the step again.
fn cooldown_of(config: &Config, ladder: &[Arc<dyn ActionKind>]) -> Duration {
    let cooldown = Duration::from_secs(config.remediation.cooldown_secs);
    match ladder.first().map(|kind| kind.effect()) {
        Some(Effect {
            judged: Judged::InstancesBack,
            checked_after,
            ..
        }) => cooldown.max(
            checked_after
                .unwrap_or_else(|| Duration::from_secs(config.remediation.verify_after_secs)),
        ),
        _ => cooldown,
    }
}

/// Every rule, served as a target of its own in the account and region it acts in (through that account's
/// fleet and role): its pauses, silences, breaker, cooldown and budgets are the rule's; what it acts on comes
/// with each alert. Its steps keep the instance (checked by `Kinds::check`), so the balancer's capacity rules
/// do not bound it: its speed limit is its whole selection.
fn rule_targets(
    config: &Config,
    fleet_of: FleetOf<'_>,
    kinds: &Kinds,
) -> Result<Vec<Target>, StartError> {
    let mut targets = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        let (fleet, home) = fleet_of(&rule.place());
        let ladder =
            kinds
                .rule_ladder(config, &rule.ladder)
                .map_err(|source| StartError::Ladder {
                    target: format!("rule {:?}", rule.name),
                    source,
                })?;
        let reference = TargetRef::Rule(rule.name.clone());
        targets.push(Target {
            id: TargetId::new(&home.account, &home.region, TargetKind::Rule, &rule.name),
            account_name: rule.account_name().to_owned(),
            fleet_ref: reference.clone(),
            configured: reference,
            names: Names {
                load_balancer: String::new(),
                target_group: None,
                account: home.account.clone(),
                region: home.region.clone(),
                rule: Some(rule.name.clone()),
            },
            removed_fraction: None,
            mode: rule.mode.unwrap_or(config.remediation.mode),
            approvals_required: rule.approvals_required.unwrap_or(config.approvals.required),
            cooldown: rule
                .cooldown_secs
                .map_or_else(|| cooldown_of(config, &ladder), Duration::from_secs),
            ladder,
            fleet,
            lock: Mutex::new(()),
            fingerprint: Some(rule.fingerprint(&config.actions)),
            on_alert: rule.instances == crate::config::NO_INSTANCES,
            change_seen: std::sync::Mutex::default(),
        });
    }
    Ok(targets)
}

/// How the fleet is asked about `target`, and how summaries name it: a classic load balancer by its name, a
/// target group by its ARN (looked up once; refused when missing or not made of instances).
async fn locate(
    fleet: &dyn Fleet,
    target: &TargetConfig,
    home: &Home,
    place: &str,
) -> Result<(TargetRef, Names), StartError> {
    Ok(match target.reference() {
        TargetRef::Rule(_) => {
            unreachable!("a [[targets]] entry names a balancer or a target group")
        }
        TargetRef::LoadBalancer(name) => (
            TargetRef::LoadBalancer(name.clone()),
            Names {
                rule: None,
                load_balancer: name,
                target_group: None,
                account: home.account.clone(),
                region: home.region.clone(),
            },
        ),
        TargetRef::TargetGroup(group) => {
            let info = fleet.target_group(&group).await.map_err(|err| {
                if err.kind == FailureKind::NotFound {
                    StartError::TargetGroupNotFound(place.to_owned())
                } else {
                    StartError::Lookup {
                        group: place.to_owned(),
                        source: err,
                    }
                }
            })?;
            if info.target_type != "instance" {
                return Err(StartError::NotInstances {
                    group,
                    target_type: info.target_type,
                });
            }
            tracing::info!(target_group = %group, arn = %info.arn, "target group resolved");
            (
                TargetRef::TargetGroup(info.arn),
                Names {
                    rule: None,
                    load_balancer: info.load_balancers.first().cloned().unwrap_or_default(),
                    target_group: Some(group),
                    account: home.account.clone(),
                    region: home.region.clone(),
                },
            )
        }
    })
}

/// Every configured target.
#[derive(Debug)]
pub(super) struct Targets(Vec<Target>);

impl Targets {
    /// Builds the targets of `config`, each in the place and served by the fleet `fleet_of` gives it,
    /// looking every target group up through its fleet; `kinds` are those that checked `config`
    /// (`Kinds::check`), its `[[actions]]` entries among them.
    pub async fn resolve(
        config: &Config,
        fleet_of: FleetOf<'_>,
        kinds: &Kinds,
    ) -> Result<Self, StartError> {
        let mut targets = Vec::with_capacity(config.targets.len());
        for target in &config.targets {
            let (fleet, home) = fleet_of(target);
            let account_name = target.account_name().to_owned();
            let id = target.id_in(&home);
            let place = described(&id, &account_name);
            let ladder = kinds
                .ladder(&config.ladder_of(target), &config.kind_keys_of(target))
                .map_err(|source| StartError::Ladder {
                    target: place.clone(),
                    source,
                })?;
            let (fleet_ref, names) = locate(fleet.as_ref(), target, &home, &place).await?;
            for step in &ladder {
                step.probe(fleet.as_ref())
                    .await
                    .map_err(|source| StartError::Step {
                        target: place.clone(),
                        step: step.name().to_owned(),
                        source: Box::new(source),
                    })?;
            }
            // Another account's or region's targets are read once at start-up, through their own clients: a
            // role that cannot be assumed, or a balancer it cannot see, is found now rather than at the first
            // alert.
            if (account_name != crate::config::LOCAL_ACCOUNT || id.region != config.aws.region)
                && let TargetRef::LoadBalancer(_) = &fleet_ref
            {
                fleet
                    .snapshot(&fleet_ref)
                    .await
                    .map_err(|source| StartError::Probe {
                        target: place.clone(),
                        source,
                    })?;
            }
            if let Some(same) = targets.iter().find(|known: &&Target| known.id == id) {
                return Err(StartError::SameTarget {
                    target: place,
                    other: same.account_name.clone(),
                });
            }
            targets.push(Target {
                id,
                account_name,
                fleet_ref,
                configured: target.reference(),
                names,
                removed_fraction: Some(config.removed_fraction_of(target)),
                mode: config.mode_of(target),
                approvals_required: config.approvals_required_of(target),
                cooldown: cooldown_of(config, &ladder),
                ladder,
                fleet,
                lock: Mutex::new(()),
                fingerprint: None,
                on_alert: false,
                change_seen: std::sync::Mutex::default(),
            });
        }
        targets.extend(rule_targets(config, fleet_of, kinds)?);
        Ok(Self(targets))
    }

    /// The configured target of this name in this account and region (as recorded in the audit trail).
    pub fn by_place(&self, name: &str, account: &str, region: &str) -> Option<&Target> {
        self.0.iter().find(|target| {
            target.id.name == name && target.id.account == account && target.id.region == region
        })
    }

    /// The one configured target `reference` names in `place`. Only a configured name is recorded as the
    /// target; anything else is the caller's text, bounded.
    pub fn one(&self, reference: &TargetRef, place: &Place) -> Result<&Target, EngineError> {
        let kind = reference.kind();
        let named = || crate::untrusted::bounded(reference.value());
        match self.find(reference, place).as_slice() {
            [only] => Ok(only),
            [] if place.is_given() => Err(EngineError::UnknownTargetThere(
                kind,
                named(),
                place.clone(),
            )),
            [] => Err(EngineError::UnknownTarget(kind, named())),
            several => Err(EngineError::AmbiguousTarget {
                target: format!("{kind} {:?}", named()),
                candidates: several
                    .iter()
                    .map(|target| {
                        let id = &target.id;
                        format!("{}/{} ({})", id.account, id.region, target.account_name)
                    })
                    .collect(),
            }),
        }
    }

    /// Every target, in the configuration's order.
    pub fn all(&self) -> &[Target] {
        &self.0
    }

    /// Every target's identity.
    pub fn ids(&self) -> impl Iterator<Item = &TargetId> {
        self.0.iter().map(|target| &target.id)
    }

    /// The configured targets `reference` names (as configured or as resolved: a target group's ARN) in
    /// `place`: one, none, or several that only an account or a region would tell apart.
    pub fn find(&self, reference: &TargetRef, place: &Place) -> Vec<&Target> {
        self.0
            .iter()
            .filter(|target| {
                (names(reference, &target.fleet_ref) || names(reference, &target.configured))
                    && target.is_in(place)
            })
            .collect()
    }
}

/// Looks every configured target up as start-up does, then reads its health once (nothing is written or
/// recorded): one line per target for `reflex check-config --aws`, or the first problem.
pub async fn probe_targets(
    config: &Config,
    fleet_of: FleetOf<'_>,
    kinds: &Kinds,
) -> Result<Vec<String>, StartError> {
    let targets = Targets::resolve(config, fleet_of, &kinds.check(config)?).await?;
    let mut lines = Vec::with_capacity(targets.0.len());
    for target in targets.0.iter().filter(|target| !target.is_rule()) {
        let snapshot = target
            .fleet
            .snapshot(&target.fleet_ref)
            .await
            .map_err(|source| StartError::Probe {
                target: described(&target.id, &target.account_name),
                source,
            })?;
        let in_service = snapshot.in_service();
        let via = match &target.fleet_ref {
            TargetRef::TargetGroup(arn) => format!(" ({arn})"),
            TargetRef::LoadBalancer(_) | TargetRef::Rule(_) => String::new(),
        };
        lines.push(format!(
            "{} {:?}{via}: {} instances registered, {in_service} in service; ladder {}",
            target.fleet_ref.kind(),
            target.id.name,
            snapshot.instances.len(),
            target
                .ladder
                .iter()
                .map(|kind| kind.described())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Ok(lines)
}

impl super::Engine {
    /// Every configured target's identity.
    pub fn target_ids(&self) -> impl Iterator<Item = &crate::target::TargetId> {
        self.targets.ids()
    }

    /// The ladder of the configured target `id`, if it is one.
    pub fn ladder_of(&self, id: &crate::target::TargetId) -> Option<Vec<&str>> {
        self.targets
            .all()
            .iter()
            .find(|target| target.id == *id)
            .map(|target| target.ladder.iter().map(|kind| kind.name()).collect())
    }

    /// Every configured target's identity and mode.
    pub fn target_modes(&self) -> impl Iterator<Item = (&crate::target::TargetId, Mode)> {
        self.targets
            .all()
            .iter()
            .map(|target| (&target.id, target.mode))
    }

    /// The identity of the one configured target `reference` names (by name, ARN or metric dimension) in
    /// `place`, if exactly one.
    pub fn target_id_of(
        &self,
        reference: &crate::target::TargetRef,
        place: &crate::target::Place,
    ) -> Option<&crate::target::TargetId> {
        self.targets
            .one(reference, place)
            .ok()
            .map(|target| &target.id)
    }
}
