//! `ecs-redeploy`: an ECS service's tasks replaced by a new deployment of the same task definition (UpdateService
//! with forceNewDeployment), for a service that hangs or leaks until restarted. It acts once on the whole target,
//! on the service its `[[actions]]` entry names for that target. A service already rolling out (more than one
//! deployment, or one IN_PROGRESS) is not touched (`change-in-progress`), nor one whose last deployment changed
//! less than `recent_change_secs` ago (`recent-change`): restarting a bad release does not fix it, so the step
//! fails and the ladder's next step (or the escalation) follows with that reason. Before the call the service is
//! tagged with the run and the time, so that a takeover after a crash follows the deployment the dead attempt
//! started instead of starting another. The act is pending until the new deployment is COMPLETED (or, where
//! ECS reports no rollout state, runs its desired count alone); FAILED fails the step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::{
    Deployment, DeploymentRolloutState, Service, ServiceField, Tag as EcsTag,
};

use super::{
    argument, named_argument, recorded_run, refused, resource_name, tagged_by, verify_secs,
};
use crate::aws::AwsFleet;
use crate::engine::AlertNames;
use crate::engine::action::{
    Action, ActsOn, Arguments, ArgumentsRefused, Effect, Judged, On, Polled, Started,
};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FailureKind, FleetError, InstanceView};

/// The kind's name, and the call it makes.
const NAME: &str = "ecs-redeploy";
const CALL: &str = "redeploy";
/// The dimension of an ECS alarm that names the service's cluster.
const CLUSTER_DIMENSION: &str = "ClusterName";
/// The tag that records the run and the moment it redeployed, before the call.
pub const TAG: &str = "reflex:redeploy";
/// The operation the kind's refusals name.
const OPERATION: &str = "UpdateService";
/// How recent a deployment keeps a service from being redeployed, unless `recent_change_secs` says otherwise.
const RECENT_CHANGE: Duration = Duration::from_secs(900);
/// How long after the call the instances are checked, unless `verify_secs` says otherwise.
const VERIFY_AFTER: Duration = Duration::from_secs(300);
/// The keys an entry may set.
const KEYS: &[&str] = &[
    "cluster",
    "service",
    "service_from",
    "services",
    "recent_change_secs",
    "verify_secs",
];

/// The `ecs-redeploy` action kind: unset until an `[[actions]]` entry sets it.
#[derive(Debug, Clone, Default)]
pub struct EcsRedeploy {
    settings: Option<Arc<Settings>>,
}

/// What an `[[actions]]` entry of the kind sets.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    cluster: String,
    /// The service of every target, when the entry names one.
    service: Option<String>,
    /// The service of each target (a balancer's name or a target group's ARN), when the entry maps them.
    services: BTreeMap<String, String>,
    /// The dimension or label of the run's alert that names the service, when the entry reads it there.
    service_from: Option<String>,
    recent_change: Duration,
    verify_after: Duration,
}

impl Settings {
    /// The service the entry names for `target`.
    fn service_of(&self, target: &str) -> Option<&str> {
        self.services
            .get(target)
            .or(self.service.as_ref())
            .map(String::as_str)
    }
}

impl EcsRedeploy {
    fn settings(&self) -> Result<&Settings, FleetError> {
        self.settings.as_deref().ok_or_else(|| {
            failure("ecs-redeploy runs only as an [[actions]] entry with its cluster and service")
        })
    }
}

impl Action for EcsRedeploy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verb(&self) -> &'static str {
        "redeploy the service of"
    }

    fn done(&self) -> &'static str {
        "redeployed the service of"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Target,
            keeps_instance: true,
            removes_capacity: false,
            adds_capacity: false,
            judged: Judged::InstancesBack,
            checked_after: Some(
                self.settings
                    .as_ref()
                    .map_or(VERIFY_AFTER, |settings| settings.verify_after),
            ),
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "ecs:DescribeServices",
            "ecs:UpdateService",
            "ecs:TagResource",
        ]
    }

    fn described(&self) -> String {
        match &self.settings {
            Some(settings) => format!(
                "{NAME} in cluster {} ({})",
                settings.cluster,
                settings
                    .service
                    .iter()
                    .chain(settings.services.values())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => NAME.to_owned(),
        }
    }

    fn needs_entry(&self) -> bool {
        true
    }

    fn entry_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn with_entry(&self, keys: &Keys<'_>) -> Result<Option<Arc<dyn Action>>, KeyError> {
        Ok(Some(Arc::new(Self {
            settings: Some(Arc::new(read(keys)?)),
        })))
    }

    fn named_arguments(&self, named: &AlertNames, _: bool) -> Result<Arguments, ArgumentsRefused> {
        let Some(settings) = self.settings.as_deref() else {
            return Ok(Arguments::new());
        };
        let Some(key) = &settings.service_from else {
            return Ok(Arguments::new());
        };
        // An alert from another cluster names another cluster's service, whatever its name.
        if let Some(cluster) = named.get(CLUSTER_DIMENSION)
            && cluster != &settings.cluster
        {
            return Err(ArgumentsRefused {
                reason: SkipReason::BadParameter,
                why: format!(
                    "the alert's {CLUSTER_DIMENSION} {:?} is not the entry's cluster {:?}",
                    crate::untrusted::bounded(cluster),
                    settings.cluster
                ),
            });
        }
        named_argument(named, key, "service", |name| service_name(name))
    }

    fn whole_target_call(&self) -> Option<&'static str> {
        Some(CALL)
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok(CALL)
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "redeployed-resources"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["redeployed-resources"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            let aws = aws_of(on)?;
            let target = on.act.subject.id();
            let service = argument(on.act, "service")
                .or_else(|| settings.service_of(target))
                .ok_or_else(|| {
                    failure(&format!(
                        "the entry names no ECS service for the target {target}: add it to `services`"
                    ))
                })?;
            let run = recorded_run(OPERATION)?;
            let read = describe(aws, &settings.cluster, service).await?;
            if let Some(started) = started_by(&read, on.resumes) {
                tracing::warn!(
                    service,
                    deployment = started,
                    "the dead attempt's deployment started: following it"
                );
                return Ok(Started::Pending(handle(
                    &settings.cluster,
                    service,
                    &started,
                )));
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if let Some((code, why)) = unchanging(&read, now, settings.recent_change) {
                return Err(refused(
                    OPERATION,
                    code,
                    format!("ECS service {service}: {why}"),
                ));
            }
            let arn = read.service_arn().unwrap_or_default();
            let tag = EcsTag::builder()
                .key(TAG)
                .value(format!("{run} {now}"))
                .build();
            let call = aws.ecs().tag_resource().resource_arn(arn).tags(tag).send();
            aws.call("TagResource", call).await?;
            let call = aws
                .ecs()
                .update_service()
                .cluster(&settings.cluster)
                .service(service)
                .force_new_deployment(true)
                .send();
            let updated = aws.call(OPERATION, call).await?;
            let deployment = updated
                .service()
                .and_then(primary)
                .and_then(Deployment::id)
                .ok_or_else(|| {
                    FleetError::new(
                        FailureKind::Transient,
                        OPERATION,
                        None,
                        "ECS answered no deployment",
                    )
                })?;
            Ok(Started::Pending(handle(
                &settings.cluster,
                service,
                deployment,
            )))
        })
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        Box::pin(async move {
            let mut parts = handle.splitn(3, ' ');
            let (Some(cluster), Some(service), Some(id)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Ok(Polled::Failed(format!(
                    "the handle {handle:?} names no deployment"
                )));
            };
            let read = describe(aws_of(on)?, cluster, service).await?;
            Ok(rolled_out(&read, id))
        })
    }
}

/// What a poll of deployment `id` of the service finds. Pure.
fn rolled_out(read: &Service, id: &str) -> Polled {
    let deployments = read.deployments();
    let Some(deployment) = deployments.iter().find(|d| d.id() == Some(id)) else {
        return Polled::Failed(format!("deployment {id} is gone: another replaced it"));
    };
    let counts = format!(
        "{} of {} running",
        deployment.running_count(),
        deployment.desired_count()
    );
    match deployment.rollout_state() {
        Some(DeploymentRolloutState::Completed) => Polled::Done(format!("COMPLETED, {counts}")),
        Some(DeploymentRolloutState::Failed) => Polled::Failed(format!(
            "FAILED: {}",
            deployment
                .rollout_state_reason()
                .unwrap_or("no reason given")
        )),
        Some(_) => Polled::Pending,
        None if deployments.len() == 1
            && deployment.running_count() >= deployment.desired_count() =>
        {
            Polled::Done(counts)
        }
        None => Polled::Pending,
    }
}

/// Why the service may not be redeployed now, if so: its code (`change-in-progress`, `recent-change`) and
/// why, at Unix time `now`. Pure.
fn unchanging(read: &Service, now: i64, recent: Duration) -> Option<(&'static str, String)> {
    let deployments = read.deployments();
    if deployments.len() > 1 {
        return Some((
            "change-in-progress",
            format!("{} deployments are rolling out", deployments.len()),
        ));
    }
    let last = deployments.first()?;
    if last.rollout_state() == Some(&DeploymentRolloutState::InProgress) {
        return Some((
            "change-in-progress",
            format!("deployment {} is IN_PROGRESS", last.id().unwrap_or("?")),
        ));
    }
    let changed = last.updated_at().or(last.created_at())?.secs();
    let ago = now.saturating_sub(changed);
    let recent = i64::try_from(recent.as_secs()).unwrap_or(i64::MAX);
    (ago < recent).then(|| {
        (
            "recent-change",
            format!(
                "its last deployment changed {ago} s ago (less than recent_change_secs {recent}): a new \
                 deployment does not fix a bad release"
            ),
        )
    })
}

/// How far reflex's clock and ECS's may differ when a takeover tells whether a deployment began after its dead
/// attempt's tag.
const SKEW_SECS: i64 = 30;

/// The deployment one of the dead attempts `resumes` started, from the service's tag: the primary one, when
/// it was created after the tag was written.
fn started_by(read: &Service, resumes: &[String]) -> Option<String> {
    let tag = read.tags().iter().find(|tag| tag.key() == Some(TAG))?;
    let at: i64 = tagged_by(tag.value()?, ' ', resumes)?.parse().ok()?;
    let deployment = primary(read)?;
    // The tag's time is reflex's clock, the deployment's ECS's: a skew within SKEW_SECS is allowed.
    let created = deployment.created_at()?.secs();
    (created >= at - SKEW_SECS).then(|| deployment.id().map(str::to_owned))?
}

/// The service's primary deployment.
fn primary(read: &Service) -> Option<&Deployment> {
    read.deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
}

/// What the check polls a deployment by.
fn handle(cluster: &str, service: &str, deployment: &str) -> String {
    format!("{cluster} {service} {deployment}")
}

/// DescribeServices for one service, with its tags: not found is an error.
async fn describe(aws: &AwsFleet, cluster: &str, service: &str) -> Result<Service, FleetError> {
    const DESCRIBE: &str = "DescribeServices";
    let call = aws
        .ecs()
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(ServiceField::Tags)
        .send();
    let output = aws.call(DESCRIBE, call).await?;
    output.services().first().cloned().ok_or_else(|| {
        FleetError::new(
            FailureKind::Permanent,
            DESCRIBE,
            Some("ServiceNotFoundException".to_owned()),
            format!("ECS service {service} was not found in cluster {cluster}"),
        )
    })
}

/// The fleet's SDK clients, which the kind calls ECS through.
fn aws_of(on: On<'_>) -> Result<&AwsFleet, FleetError> {
    super::aws_of(on, NAME, OPERATION)
}

/// Checks an ECS service's name as ECS allows it: 1 to 255 letters, digits, hyphens and underscores.
fn service_name(name: &str) -> Result<(), String> {
    let fine = (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err("is not a service name (1 to 255 letters, digits, hyphens and underscores)".to_owned())
    }
}

/// A failure of the act that no retry mends: the configuration or the fleet does not allow it.
fn failure(why: &str) -> FleetError {
    FleetError::new(FailureKind::Permanent, OPERATION, None, why)
}

/// Reads and checks an entry's keys.
fn read(keys: &Keys<'_>) -> Result<Settings, KeyError> {
    let cluster = keys
        .get::<String>("cluster", resource_name("a cluster"))?
        .ok_or_else(|| KeyError {
            key: "actions.cluster".to_owned(),
            problem: "is required for an ecs-redeploy entry: the cluster of the service, e.g. cluster = \"web\""
                .to_owned(),
        })?;
    let service = keys.get::<String>("service", resource_name("a service"))?;
    let services = keys
        .get::<BTreeMap<String, String>>("services", |map| {
            map.values().try_for_each(resource_name("a service"))
        })?
        .unwrap_or_default();
    let service_from = keys.get::<String>("service_from", resource_name("a dimension or label"))?;
    if service.is_none() && services.is_empty() && service_from.is_none() {
        return Err(KeyError {
            key: "actions.service".to_owned(),
            problem: "is required for an ecs-redeploy entry (or `services`, a map from each target's balancer name \
                      or target group ARN to its service, or `service_from`, the dimension or label of a rule's \
                      alert that names it, such as \"ServiceName\"): an alarm on a balancer names no ECS service"
                .to_owned(),
        });
    }
    let recent_change = keys
        .get::<u64>("recent_change_secs", |secs| {
            if *secs == 0 {
                Err("is 0; write how long a deployment counts as recent, in seconds".to_owned())
            } else {
                Ok(())
            }
        })?
        .map_or(RECENT_CHANGE, Duration::from_secs);
    Ok(Settings {
        cluster,
        service,
        services,
        service_from,
        recent_change,
        verify_after: verify_secs(
            keys,
            VERIFY_AFTER,
            "a new deployment needs time to roll out",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::primitives::DateTime;

    fn entry(keys: &str) -> Result<Settings, String> {
        let own: toml::Table = keys.parse().unwrap();
        let defaults = toml::Table::new();
        read(&Keys::of_entry(&own, &defaults)).map_err(|err| err.to_string())
    }

    fn deployment(id: &str, state: Option<DeploymentRolloutState>, at: i64) -> Deployment {
        Deployment::builder()
            .id(id)
            .status(if id == "new" { "PRIMARY" } else { "ACTIVE" })
            .set_rollout_state(state)
            .desired_count(2)
            .running_count(2)
            .created_at(DateTime::from_secs(at))
            .updated_at(DateTime::from_secs(at))
            .build()
    }

    fn service(deployments: Vec<Deployment>, tag: Option<&str>) -> Service {
        Service::builder()
            .set_deployments(Some(deployments))
            .set_tags(tag.map(|value| vec![EcsTag::builder().key(TAG).value(value).build()]))
            .build()
    }

    #[test]
    fn an_entry_names_its_cluster_and_a_service_for_each_target() {
        let settings =
            entry("cluster = \"web\"\nservice = \"api\"\nservices = { \"web-elb\" = \"front\" }\n")
                .unwrap();
        assert_eq!(settings.service_of("web-elb"), Some("front"));
        assert_eq!(settings.service_of("other"), Some("api"));
        assert_eq!(settings.recent_change, RECENT_CHANGE);
        let settings =
            entry("cluster = \"web\"\nservices = { \"web-elb\" = \"front\" }\n").unwrap();
        assert_eq!(settings.service_of("other"), None);
        for (keys, says) in [
            ("service = \"api\"\n", "`actions.cluster` is required"),
            ("cluster = \"web\"\n", "`actions.service` is required"),
            (
                "cluster = \"\"\nservice = \"api\"\n",
                "is not a cluster name",
            ),
            (
                "cluster = \"c\"\nservices = { a = \" \" }\n",
                "is not a service name",
            ),
            (
                "cluster = \"c\"\nservice = \"a\"\nrecent_change_secs = 0\n",
                "`actions.recent_change_secs` is 0",
            ),
        ] {
            let err = entry(keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }

    #[test]
    fn an_entry_with_service_from_redeploys_the_service_the_alert_names() {
        let settings = entry("cluster = \"web\"\nservice_from = \"ServiceName\"\n").unwrap();
        let kind = EcsRedeploy {
            settings: Some(Arc::new(settings)),
        };
        let named = AlertNames::from([
            ("ClusterName".into(), "web".into()),
            ("ServiceName".into(), "api".into()),
        ]);
        assert_eq!(
            kind.named_arguments(&named, true).unwrap(),
            Arguments::from([("service".into(), vec!["api".into()])])
        );
        let refused = kind.named_arguments(&AlertNames::new(), true).unwrap_err();
        assert!(
            refused.why.contains("names no ServiceName"),
            "{}",
            refused.why
        );
        let blank = AlertNames::from([("ServiceName".into(), " ".into())]);
        let refused = kind.named_arguments(&blank, true).unwrap_err();
        assert!(
            refused.why.contains("is not a service name"),
            "{}",
            refused.why
        );
        assert_eq!(kind.whole_target_call(), Some(CALL));
    }

    #[test]
    fn a_service_rolling_out_or_changed_recently_is_not_redeployed() {
        let recent = Duration::from_secs(600);
        let done = |at| {
            service(
                vec![deployment(
                    "new",
                    Some(DeploymentRolloutState::Completed),
                    at,
                )],
                None,
            )
        };
        assert_eq!(unchanging(&done(1_000), 2_000, recent), None);
        let (code, why) = unchanging(&done(1_500), 2_000, recent).unwrap();
        assert_eq!(code, "recent-change");
        assert!(why.contains("500 s ago"), "{why}");
        let rolling = service(
            vec![deployment(
                "new",
                Some(DeploymentRolloutState::InProgress),
                0,
            )],
            None,
        );
        assert_eq!(
            unchanging(&rolling, 2_000, recent).unwrap().0,
            "change-in-progress"
        );
        let two = service(
            vec![
                deployment("new", Some(DeploymentRolloutState::Completed), 0),
                deployment("old", None, 0),
            ],
            None,
        );
        assert_eq!(
            unchanging(&two, 2_000, recent).unwrap().0,
            "change-in-progress"
        );
    }

    #[test]
    fn a_deployment_is_followed_to_its_end_and_a_takeover_finds_its_dead_attempt_s() {
        let at = |state| service(vec![deployment("new", state, 100)], Some("01DEAD 90"));
        assert_eq!(
            rolled_out(&at(Some(DeploymentRolloutState::InProgress)), "new"),
            Polled::Pending
        );
        assert_eq!(
            rolled_out(&at(Some(DeploymentRolloutState::Completed)), "new"),
            Polled::Done("COMPLETED, 2 of 2 running".to_owned())
        );
        assert!(matches!(
            rolled_out(&at(Some(DeploymentRolloutState::Failed)), "new"),
            Polled::Failed(_)
        ));
        assert_eq!(
            rolled_out(&at(None), "new"),
            Polled::Done("2 of 2 running".to_owned())
        );
        assert!(matches!(rolled_out(&at(None), "gone"), Polled::Failed(_)));
        let read = at(None);
        assert_eq!(
            started_by(&read, &["01DEAD".to_owned()]),
            Some("new".to_owned())
        );
        assert_eq!(started_by(&read, &["01OTHER".to_owned()]), None);
        // Tagged after the primary deployment began: the dead attempt died before its call.
        let early = service(vec![deployment("new", None, 50)], Some("01DEAD 90"));
        assert_eq!(started_by(&early, &["01DEAD".to_owned()]), None);
    }
}
