//! `asg-set-capacity`: capacity added to an Auto Scaling group (SetDesiredCapacity), for a fleet whose broken
//! instances are a sign of too little of it. It acts once on the whole target: the group its broken instances
//! share, or the one its `[[actions]]` entry names, is raised by `add`, never above the entry's `max_desired`
//! nor the group's own MaxSize. It removes nothing, so a balancer's capacity rules do not bound it; its budgets
//! and speed limit do. A group with a scaling activity under way is not touched (`change-in-progress`). Before
//! the call the group is tagged with the run and the desired count it chose, so that a takeover after a crash
//! sets that same count again instead of adding twice. The act is pending until as many instances of the group
//! are InService and healthy as it desires; the step's check then judges the target's capacity.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_autoscaling::types::{AutoScalingGroup, Tag};

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

/// Checks an Auto Scaling group's name: 1 to 255 characters, none a control character, no ARN.
fn group_name(name: &str) -> Result<(), String> {
    resource_name("a group")(&name.to_owned())?;
    if name.contains(':') || name.chars().any(char::is_control) {
        return Err("is not a group name (no ':' and no control characters)".to_owned());
    }
    Ok(())
}

/// The dimension (or label) of an alert on an Auto Scaling group that names it.
const GROUP_DIMENSION: &str = "AutoScalingGroupName";
/// The kind's name, and the call it makes.
const NAME: &str = "asg-set-capacity";
const CALL: &str = "set-desired-capacity";
/// The tag that records the run and the desired count it chose (`<run>/<count>`), before the call.
pub const TAG: &str = "reflex:capacity";
/// How long after the call the target is checked, unless `verify_secs` says otherwise.
const VERIFY_AFTER: Duration = Duration::from_secs(300);
/// The most instances one act may add.
const ADD_MAX: i32 = 100;
/// The keys an entry may set.
const KEYS: &[&str] = &["group", "add", "max_desired", "verify_secs"];

/// The `asg-set-capacity` action kind: unset until an `[[actions]]` entry sets it.
#[derive(Debug, Clone, Default)]
pub struct AsgSetCapacity {
    settings: Option<Arc<Settings>>,
}

/// What an `[[actions]]` entry of the kind sets.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    /// The group, when the entry names one; else the group the broken instances share.
    group: Option<String>,
    add: i32,
    max_desired: i32,
    verify_after: Duration,
}

impl AsgSetCapacity {
    fn settings(&self) -> Result<&Settings, FleetError> {
        self.settings.as_deref().ok_or_else(|| {
            failure("asg-set-capacity runs only as an [[actions]] entry with its max_desired")
        })
    }
}

impl Action for AsgSetCapacity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verb(&self) -> &'static str {
        "add capacity beside"
    }

    fn done(&self) -> &'static str {
        "added capacity beside"
    }

    fn effect(&self) -> Effect {
        Effect {
            acts_on: ActsOn::Target,
            keeps_instance: true,
            removes_capacity: false,
            adds_capacity: true,
            judged: Judged::CapacityBack,
            checked_after: Some(
                self.settings
                    .as_ref()
                    .map_or(VERIFY_AFTER, |settings| settings.verify_after),
            ),
        }
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "autoscaling:SetDesiredCapacity",
            "autoscaling:CreateOrUpdateTags",
        ]
    }

    fn described(&self) -> String {
        match &self.settings {
            Some(settings) => format!(
                "{NAME} +{} up to {} on {}",
                settings.add,
                settings.max_desired,
                settings
                    .group
                    .as_deref()
                    .unwrap_or("the broken instances' group")
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

    fn needs_groups(&self) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|settings| settings.group.is_none())
    }

    fn named_arguments(
        &self,
        named: &AlertNames,
        alone: bool,
    ) -> Result<Arguments, ArgumentsRefused> {
        // An entry's own group stands; else the group an alert on a group names; else, with instances to
        // go by, the group they share.
        let entry_names_one = self
            .settings
            .as_ref()
            .is_some_and(|settings| settings.group.is_some());
        if entry_names_one || !(alone || named.contains_key(GROUP_DIMENSION)) {
            return Ok(Arguments::new());
        }
        named_argument(named, GROUP_DIMENSION, "group", |name| group_name(name))
    }

    fn whole_target_call(&self) -> Option<&'static str> {
        Some(CALL)
    }

    fn choose(&self, instance: &InstanceView) -> Result<&'static str, SkipReason> {
        let named = self
            .settings
            .as_ref()
            .is_some_and(|settings| settings.group.is_some());
        if named || instance.auto_scaling_group.is_some() {
            Ok(CALL)
        } else {
            Err(SkipReason::NotInAutoScalingGroup)
        }
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "scaled-resources"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["scaled-resources"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            let aws = aws_of(on)?;
            let alerted = argument(on.act, "group");
            let group = match (&settings.group, alerted, &on.act.auto_scaling_group) {
                (Some(group), _, _) | (None, None, Some(group)) => group.as_str(),
                (None, Some(group), _) => group,
                (None, None, None) => {
                    return Err(failure(
                        "the broken instances are not all in one Auto Scaling group, and the alert names \
                         none (AutoScalingGroupName): name the group with the entry's `group`",
                    ));
                }
            };
            let run = recorded_run("SetDesiredCapacity")?;
            let read = describe(aws, group).await?;
            let desired = match chosen_by(&read, on.resumes) {
                // The dead attempt's raise, made or not; a group grown past it since is left as it is.
                Some(desired) if desired <= read.desired_capacity().unwrap_or_default() => {
                    tracing::warn!(
                        group,
                        desired,
                        "the dead attempt's capacity is set: following it"
                    );
                    return Ok(Started::Pending(format!("{desired} {group}")));
                }
                Some(desired) => {
                    tracing::warn!(
                        group,
                        desired,
                        "the dead attempt chose this capacity: setting it"
                    );
                    desired
                }
                None => raise(aws, settings, &read, &run).await?,
            };
            let call = aws
                .autoscaling()
                .set_desired_capacity()
                .auto_scaling_group_name(group)
                .desired_capacity(desired)
                .honor_cooldown(false)
                .send();
            aws.call("SetDesiredCapacity", call).await?;
            Ok(Started::Pending(format!("{desired} {group}")))
        })
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        Box::pin(async move {
            let Some((desired, group)) = handle
                .split_once(' ')
                .and_then(|(desired, group)| Some((desired.parse::<usize>().ok()?, group)))
            else {
                return Ok(Polled::Failed(format!(
                    "the handle {handle:?} names no group"
                )));
            };
            let read = describe(aws_of(on)?, group).await?;
            let serving = in_service(&read);
            Ok(if serving >= desired {
                Polled::Done(format!("{serving} of {desired} InService"))
            } else {
                Polled::Pending
            })
        })
    }
}

/// Chooses the group's new desired count, refusing while an activity is under way or when the group cannot
/// grow, and tags the group with it (the intent a takeover finds): the count.
async fn raise(
    aws: &AwsFleet,
    settings: &Settings,
    read: &AutoScalingGroup,
    run: &str,
) -> Result<i32, FleetError> {
    let group = read.auto_scaling_group_name().unwrap_or_default();
    if let Some(activity) = aws.activities_in_progress(group).await?.first() {
        return Err(refused(
            "SetDesiredCapacity",
            "change-in-progress",
            format!("Auto Scaling group {group} has an activity in progress: {activity}"),
        ));
    }
    let now = read.desired_capacity().unwrap_or_default();
    let max_size = read.max_size().unwrap_or_default();
    let desired = target_count(now, settings, max_size).ok_or_else(|| {
        refused(
            "SetDesiredCapacity",
            "at-max",
            format!(
                "Auto Scaling group {group} desires {now} already: no more than max_desired {} nor its \
                 MaxSize {max_size}",
                settings.max_desired
            ),
        )
    })?;
    let tag = Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(TAG)
        .value(format!("{run}/{desired}"))
        .propagate_at_launch(false)
        .build();
    let call = aws.autoscaling().create_or_update_tags().tags(tag).send();
    aws.call("CreateOrUpdateTags", call).await?;
    Ok(desired)
}

/// The desired count `add` more than `now`, held to `max_desired` and the group's `max_size`; `None` when that
/// is no more than `now`. Pure.
fn target_count(now: i32, settings: &Settings, max_size: i32) -> Option<i32> {
    let desired = now
        .saturating_add(settings.add)
        .min(settings.max_desired)
        .min(max_size);
    (desired > now).then_some(desired)
}

/// The desired count one of the dead attempts `resumes` chose for the group, from its tag.
fn chosen_by(read: &AutoScalingGroup, resumes: &[String]) -> Option<i32> {
    let tag = read.tags().iter().find(|tag| tag.key() == Some(TAG))?;
    tagged_by(tag.value()?, '/', resumes)?.parse().ok()
}

/// The group's instances InService and healthy.
fn in_service(read: &AutoScalingGroup) -> usize {
    read.instances()
        .iter()
        .filter(|instance| {
            instance.lifecycle_state().map(|state| state.as_str()) == Some("InService")
                && instance
                    .health_status()
                    .is_some_and(|health| health.eq_ignore_ascii_case("healthy"))
        })
        .count()
}

/// DescribeAutoScalingGroups for `group`: not found is an error.
async fn describe(aws: &AwsFleet, group: &str) -> Result<AutoScalingGroup, FleetError> {
    const OPERATION: &str = "DescribeAutoScalingGroups";
    let call = aws
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send();
    let output = aws.call(OPERATION, call).await?;
    output
        .auto_scaling_groups()
        .first()
        .cloned()
        .ok_or_else(|| {
            FleetError::new(
                FailureKind::Permanent,
                OPERATION,
                Some("GroupNotFound".to_owned()),
                format!("Auto Scaling group {group} was not found"),
            )
        })
}

/// The fleet's SDK clients, which the kind calls Auto Scaling through.
fn aws_of(on: On<'_>) -> Result<&AwsFleet, FleetError> {
    super::aws_of(on, NAME, "SetDesiredCapacity")
}

/// A failure of the act that no retry mends: the configuration or the fleet does not allow it.
fn failure(why: &str) -> FleetError {
    FleetError::new(FailureKind::Permanent, "SetDesiredCapacity", None, why)
}

/// Reads and checks an entry's keys.
fn read(keys: &Keys<'_>) -> Result<Settings, KeyError> {
    let group = keys.get::<String>("group", resource_name("a group"))?;
    let add = keys
        .get::<i32>("add", |add| {
            if (1..=ADD_MAX).contains(add) {
                Ok(())
            } else {
                Err(format!(
                    "is {add}: add 1 to {ADD_MAX} instances (it never removes any)"
                ))
            }
        })?
        .unwrap_or(1);
    let max_desired = keys
        .get::<i32>("max_desired", |max| {
            if *max >= 1 {
                Ok(())
            } else {
                Err(format!("is {max}: write the most instances the group may desire"))
            }
        })?
        .ok_or_else(|| KeyError {
            key: "actions.max_desired".to_owned(),
            problem: "is required for an asg-set-capacity entry: the most instances the group may desire, \
                      e.g. max_desired = 12 (the group's MaxSize holds too)"
                .to_owned(),
        })?;
    let verify_after = verify_secs(
        keys,
        VERIFY_AFTER,
        "new instances need time to come in service",
    )?;
    Ok(Settings {
        group,
        add,
        max_desired,
        verify_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keys: &str) -> Result<Settings, String> {
        let own: toml::Table = keys.parse().unwrap();
        let defaults = toml::Table::new();
        read(&Keys::of_entry(&own, &defaults)).map_err(|err| err.to_string())
    }

    #[test]
    fn an_entry_needs_its_maximum_and_adds_one_by_default() {
        let settings = entry("max_desired = 6\n").unwrap();
        assert_eq!(
            settings,
            Settings {
                group: None,
                add: 1,
                max_desired: 6,
                verify_after: VERIFY_AFTER
            }
        );
        let kind = AsgSetCapacity {
            settings: Some(Arc::new(
                entry("group = \"web-asg\"\nadd = 2\nmax_desired = 8\nverify_secs = 30\n").unwrap(),
            )),
        };
        assert_eq!(kind.described(), "asg-set-capacity +2 up to 8 on web-asg");
        let effect = kind.effect();
        assert!(effect.adds_capacity && effect.keeps_instance && !effect.removes_capacity);
        assert_eq!(effect.acts_on, ActsOn::Target);
        assert_eq!(effect.checked_after, Some(Duration::from_secs(30)));
        assert!(!kind.needs_groups(), "the group is named");
        for (keys, says) in [
            ("add = 1\n", "`actions.max_desired` is required"),
            ("max_desired = 0\n", "`actions.max_desired` is 0"),
            ("max_desired = 4\nadd = 0\n", "add 1 to 100"),
            ("max_desired = 4\nadd = -2\n", "add 1 to 100"),
            (
                "max_desired = 4\ngroup = \" \"\n",
                "`actions.group` is not a group name",
            ),
            (
                "max_desired = 4\nverify_secs = 0\n",
                "`actions.verify_secs` is 0",
            ),
        ] {
            let err = entry(keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }

    #[test]
    fn a_group_the_alert_names_is_raised_unless_the_entry_names_its_own() {
        let kind = |keys: &str| AsgSetCapacity {
            settings: Some(Arc::new(entry(keys).unwrap())),
        };
        let named = AlertNames::from([(GROUP_DIMENSION.into(), "workers".into())]);
        assert_eq!(
            kind("max_desired = 8\n")
                .named_arguments(&named, false)
                .unwrap(),
            Arguments::from([("group".into(), vec!["workers".into()])])
        );
        assert_eq!(
            kind("max_desired = 8\n")
                .named_arguments(&AlertNames::new(), false)
                .unwrap(),
            Arguments::new(),
            "without a group named, the broken instances' own"
        );
        let alone = kind("max_desired = 8\n")
            .named_arguments(&AlertNames::new(), true)
            .unwrap_err();
        assert!(
            alone.why.contains("names no AutoScalingGroupName"),
            "{}",
            alone.why
        );
        let arn = AlertNames::from([(GROUP_DIMENSION.into(), "arn:aws:autoscaling:x".into())]);
        let refused = kind("max_desired = 8\n")
            .named_arguments(&arn, true)
            .unwrap_err();
        assert!(
            refused.why.contains("is not a group name"),
            "{}",
            refused.why
        );
        assert_eq!(
            kind("max_desired = 8\ngroup = \"web\"\n")
                .named_arguments(&named, true)
                .unwrap(),
            Arguments::new(),
            "the entry's group stands"
        );
    }

    #[test]
    fn capacity_grows_by_its_step_up_to_the_lower_maximum_and_never_shrinks() {
        let settings = entry("add = 2\nmax_desired = 5\n").unwrap();
        assert_eq!(target_count(2, &settings, 10), Some(4));
        assert_eq!(target_count(4, &settings, 10), Some(5), "max_desired holds");
        assert_eq!(target_count(2, &settings, 3), Some(3), "MaxSize holds");
        assert_eq!(target_count(5, &settings, 10), None);
        assert_eq!(target_count(3, &settings, 3), None);
        assert_eq!(
            target_count(7, &settings, 10),
            None,
            "above max_desired: never lowered"
        );
    }

    #[test]
    fn a_takeover_finds_the_count_its_dead_attempt_chose() {
        let tagged = |value: &str| {
            AutoScalingGroup::builder()
                .tags(
                    aws_sdk_autoscaling::types::TagDescription::builder()
                        .key(TAG)
                        .value(value)
                        .build(),
                )
                .build()
        };
        let read = tagged("01DEAD/5");
        assert_eq!(chosen_by(&read, &["01DEAD".to_owned()]), Some(5));
        assert_eq!(chosen_by(&read, &["01OTHER".to_owned()]), None);
        assert_eq!(chosen_by(&read, &[]), None);
        assert_eq!(
            chosen_by(&tagged("nonsense"), &["nonsense".to_owned()]),
            None
        );
    }
}
