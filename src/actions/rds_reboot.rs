//! `rds-reboot`: a database instance rebooted (RebootDBInstance), for a fleet whose instances fail because the
//! database they share hangs. It acts once on the whole target, on the DB instance its `[[actions]]` entry
//! names. Only an `available` instance is rebooted (`not-available`: one already rebooting, modifying or
//! stopped is left alone), and `force_failover` only on a Multi-AZ one (`not-multi-az`). Before the call the
//! instance is tagged with the run, so that a takeover after a crash follows that reboot instead of rebooting
//! twice. The act is pending until the instance is `available` again; the step's check then finds the target's
//! broken instances InService again, or the ladder moves on.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rds::types::{DbInstance, Tag};

use super::{
    argument, named_argument, recorded_run, refused, resource_name, tagged_by, verify_secs,
};
use crate::aws::{AwsFleet, clients_of};
use crate::engine::AlertNames;
use crate::engine::action::{
    Action, ActsOn, Arguments, ArgumentsRefused, Effect, Judged, On, Polled, Started,
};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FailureKind, Fleet, FleetError, InstanceView};

/// The kind's name, and the call it makes.
const NAME: &str = "rds-reboot";
const CALL: &str = "reboot-db";
/// The tag that records the run that rebooted the instance, before the call.
pub const TAG: &str = "reflex:reboot";
/// The operation the kind's refusals name.
const OPERATION: &str = "RebootDBInstance";
/// How long after the call the target is checked, unless `verify_secs` says otherwise.
const VERIFY_AFTER: Duration = Duration::from_secs(300);
/// The states of an instance that serves: its reboot is over.
const SERVING: [&str; 2] = ["available", "storage-optimization"];
/// The states (and prefixes of states) of an instance that will not come back by itself: the step failed.
const LOST: [&str; 9] = [
    "failed",
    "stopped",
    "stopping",
    "deleting",
    "storage-full",
    "restore-error",
    "incompatible-",
    "inaccessible-encryption-credentials",
    "insufficient-capacity",
];
/// The keys an entry may set.
const KEYS: &[&str] = &[
    "db_instance",
    "db_instance_from",
    "force_failover",
    "verify_secs",
];

/// The `rds-reboot` action kind: unset until an `[[actions]]` entry sets it.
#[derive(Debug, Clone, Default)]
pub struct RdsReboot {
    settings: Option<Arc<Settings>>,
}

/// What an `[[actions]]` entry of the kind sets.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    /// The DB instance, when the entry names it.
    db_instance: Option<String>,
    /// The dimension or label of the run's alert that names the DB instance, when the entry reads it there.
    db_instance_from: Option<String>,
    force_failover: bool,
    verify_after: Duration,
}

impl RdsReboot {
    fn settings(&self) -> Result<&Settings, FleetError> {
        self.settings.as_deref().ok_or_else(|| {
            failure("rds-reboot runs only as an [[actions]] entry with its db_instance")
        })
    }
}

impl Settings {
    /// The DB instance as the entry names it, or where it reads it from.
    fn named(&self) -> String {
        match (&self.db_instance, &self.db_instance_from) {
            (Some(id), _) => id.clone(),
            (None, Some(key)) => format!("(the alert's {key})"),
            (None, None) => String::new(),
        }
    }
}

impl Action for RdsReboot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verb(&self) -> &'static str {
        "reboot the database of"
    }

    fn done(&self) -> &'static str {
        "rebooted the database of"
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
            "rds:DescribeDBInstances",
            "rds:RebootDBInstance",
            "rds:AddTagsToResource",
        ]
    }

    fn described(&self) -> String {
        match &self.settings {
            Some(settings) if settings.force_failover => {
                format!("{NAME} {} with failover", settings.named())
            }
            Some(settings) => format!("{NAME} {}", settings.named()),
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
        match self.settings.as_deref() {
            Some(Settings {
                db_instance: None,
                db_instance_from: Some(key),
                ..
            }) => named_argument(named, key, "db_instance", |id| db_instance_problem(id)),
            _ => Ok(Arguments::new()),
        }
    }

    fn whole_target_call(&self) -> Option<&'static str> {
        Some(CALL)
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok(CALL)
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "rebooted-databases"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["rebooted-databases"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            let aws = aws_of(on)?;
            let id = settings
                .db_instance
                .as_deref()
                .or_else(|| argument(on.act, "db_instance"))
                .ok_or_else(|| failure("the alert names no DB instance"))?;
            let run = recorded_run(OPERATION)?;
            let read = describe(aws, id).await?;
            if rebooted_by(&read, on.resumes) {
                tracing::warn!(
                    db_instance = id,
                    "the dead attempt rebooted it: following that reboot"
                );
                return Ok(Started::Pending(id.to_owned()));
            }
            if let Some((code, why)) = unfit(&read, settings.force_failover) {
                return Err(refused(OPERATION, code, format!("DB instance {id}: {why}")));
            }
            let arn = read.db_instance_arn().unwrap_or_default();
            let tag = Tag::builder().key(TAG).value(run).build();
            let call = aws
                .rds()
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(tag)
                .send();
            aws.call("AddTagsToResource", call).await?;
            let call = aws
                .rds()
                .reboot_db_instance()
                .db_instance_identifier(id)
                .set_force_failover(settings.force_failover.then_some(true))
                .send();
            aws.call(OPERATION, call).await?;
            Ok(Started::Pending(id.to_owned()))
        })
    }

    fn probe<'a>(&'a self, fleet: &'a dyn Fleet) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            // Only a failover of a named instance can be known to be impossible before an alert.
            let Some(Settings {
                db_instance: Some(id),
                force_failover: true,
                ..
            }) = self.settings.as_deref()
            else {
                return Ok(());
            };
            let aws = clients_of(fleet).ok_or_else(|| failure("this fleet has no AWS clients"))?;
            if describe(aws, id).await?.multi_az() == Some(true) {
                return Ok(());
            }
            Err(refused(
                OPERATION,
                "not-multi-az",
                format!("DB instance {id}: {NO_STANDBY}"),
            ))
        })
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        Box::pin(async move {
            let read = describe(aws_of(on)?, handle).await?;
            Ok(polled(
                handle,
                read.db_instance_status().unwrap_or("unknown"),
            ))
        })
    }
}

/// What a poll of DB instance `id` in `status` finds: serving is done, lost failed, anything else (rebooting,
/// modifying, in maintenance) still under way. Pure.
fn polled(id: &str, status: &str) -> Polled {
    if SERVING.contains(&status) {
        Polled::Done(status.to_owned())
    } else if LOST.iter().any(|lost| status.starts_with(lost)) {
        Polled::Failed(format!("DB instance {id} is {status}"))
    } else {
        Polled::Pending
    }
}

/// Why the instance may not be rebooted now, if so: its code (`not-available`, `not-multi-az`) and why. Pure.
fn unfit(read: &DbInstance, force_failover: bool) -> Option<(&'static str, String)> {
    let status = read.db_instance_status().unwrap_or("unknown");
    if status != "available" {
        return Some(("not-available", format!("it is {status}, not available")));
    }
    (force_failover && read.multi_az() != Some(true))
        .then(|| ("not-multi-az", NO_STANDBY.to_owned()))
}

/// Why a failover cannot be asked of an instance that is not Multi-AZ.
const NO_STANDBY: &str =
    "force_failover is set but it is not Multi-AZ: it has no standby to fail over to";

/// Whether one of the dead attempts `resumes` tagged the instance before its reboot.
fn rebooted_by(read: &DbInstance, resumes: &[String]) -> bool {
    read.tag_list()
        .iter()
        .filter(|tag| tag.key() == Some(TAG))
        .filter_map(Tag::value)
        .any(|run| tagged_by(run, ' ', resumes).is_some())
}

/// DescribeDBInstances for `id`: not found is an error.
async fn describe(aws: &AwsFleet, id: &str) -> Result<DbInstance, FleetError> {
    const DESCRIBE: &str = "DescribeDBInstances";
    let call = aws
        .rds()
        .describe_db_instances()
        .db_instance_identifier(id)
        .send();
    let output = aws.call(DESCRIBE, call).await?;
    output.db_instances().first().cloned().ok_or_else(|| {
        FleetError::new(
            FailureKind::Permanent,
            DESCRIBE,
            Some("DBInstanceNotFound".to_owned()),
            format!("DB instance {id} was not found"),
        )
    })
}

/// The fleet's SDK clients, which the kind calls RDS through.
fn aws_of(on: On<'_>) -> Result<&AwsFleet, FleetError> {
    super::aws_of(on, NAME, OPERATION)
}

/// A failure of the act that no retry mends: the configuration or the fleet does not allow it.
fn failure(why: &str) -> FleetError {
    FleetError::new(FailureKind::Permanent, OPERATION, None, why)
}

/// What is wrong with a DB instance identifier, if anything.
fn db_instance_problem(id: &str) -> Result<(), String> {
    let fine = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if fine {
        Ok(())
    } else {
        Err(format!(
            "is {id:?}: a DB instance identifier is 1 to 63 letters, digits and hyphens, beginning with a letter"
        ))
    }
}

/// Reads and checks an entry's keys.
fn read(keys: &Keys<'_>) -> Result<Settings, KeyError> {
    let db_instance = keys.get::<String>("db_instance", |id| db_instance_problem(id))?;
    let db_instance_from =
        keys.get::<String>("db_instance_from", resource_name("a dimension or label"))?;
    if db_instance.is_none() == db_instance_from.is_none() {
        return Err(KeyError {
            key: "actions.db_instance".to_owned(),
            problem: "is required for an rds-reboot entry, or db_instance_from instead (not both): the DB instance \
                      identifier, e.g. db_instance = \"orders-db\", or the dimension of a rule's alert that names it, \
                      db_instance_from = \"DBInstanceIdentifier\""
                .to_owned(),
        });
    }
    let verify_after = verify_secs(keys, VERIFY_AFTER, "a database needs time to come back")?;
    Ok(Settings {
        db_instance,
        db_instance_from,
        force_failover: keys
            .get::<bool>("force_failover", |_| Ok(()))?
            .unwrap_or(false),
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

    fn db(status: &str, multi_az: bool, tag: Option<&str>) -> DbInstance {
        DbInstance::builder()
            .db_instance_status(status)
            .multi_az(multi_az)
            .set_tag_list(tag.map(|run| vec![Tag::builder().key(TAG).value(run).build()]))
            .build()
    }

    #[test]
    fn an_entry_names_its_instance() {
        assert_eq!(
            entry("db_instance = \"orders-db\"\n").unwrap(),
            Settings {
                db_instance: Some("orders-db".to_owned()),
                db_instance_from: None,
                force_failover: false,
                verify_after: VERIFY_AFTER
            }
        );
        for (keys, says) in [
            (
                "force_failover = true\n",
                "`actions.db_instance` is required",
            ),
            (
                "db_instance = \"db\"\ndb_instance_from = \"DBInstanceIdentifier\"\n",
                "not both",
            ),
            ("db_instance = \"1db\"\n", "beginning with a letter"),
            ("db_instance = \"db_1\"\n", "letters, digits and hyphens"),
            (
                "db_instance = \"db\"\nverify_secs = 0\n",
                "`actions.verify_secs` is 0",
            ),
            (
                "db_instance = \"db\"\nforce_failover = \"yes\"\n",
                "`actions.force_failover` is invalid",
            ),
        ] {
            let err = entry(keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }

    #[test]
    fn an_entry_reading_its_instance_from_the_alert_takes_a_valid_identifier_only() {
        let settings = entry("db_instance_from = \"DBInstanceIdentifier\"\n").unwrap();
        let kind = RdsReboot {
            settings: Some(Arc::new(settings)),
        };
        let named = |id: &str| AlertNames::from([("DBInstanceIdentifier".into(), id.into())]);
        assert_eq!(
            kind.named_arguments(&named("orders-db"), true).unwrap(),
            Arguments::from([("db_instance".into(), vec!["orders-db".into()])])
        );
        let refused = kind
            .named_arguments(&named("orders; drop"), true)
            .unwrap_err();
        assert_eq!(refused.reason, SkipReason::BadParameter);
        assert!(
            refused.why.contains("letters, digits and hyphens"),
            "{}",
            refused.why
        );
        let refused = kind.named_arguments(&AlertNames::new(), true).unwrap_err();
        assert!(
            refused.why.contains("names no DBInstanceIdentifier"),
            "{}",
            refused.why
        );
        assert_eq!(
            kind.described(),
            "rds-reboot (the alert's DBInstanceIdentifier)"
        );
        // An entry that names its instance reads nothing from the alert.
        let named_one = RdsReboot {
            settings: Some(Arc::new(entry("db_instance = \"orders-db\"\n").unwrap())),
        };
        assert_eq!(
            named_one.named_arguments(&named("other"), true).unwrap(),
            Arguments::new()
        );
    }

    #[test]
    fn only_an_available_instance_is_rebooted_and_failed_over_only_with_a_standby() {
        assert_eq!(unfit(&db("available", false, None), false), None);
        assert_eq!(unfit(&db("available", true, None), true), None);
        assert_eq!(
            unfit(&db("available", false, None), true).unwrap().0,
            "not-multi-az"
        );
        for status in ["rebooting", "stopped", "modifying"] {
            let (code, why) = unfit(&db(status, true, None), false).unwrap();
            assert_eq!(code, "not-available");
            assert!(why.contains(status), "{why}");
        }
    }

    #[test]
    fn a_poll_waits_through_a_reboot_and_fails_only_on_a_state_that_does_not_come_back() {
        assert_eq!(
            polled("db", "available"),
            Polled::Done("available".to_owned())
        );
        assert_eq!(
            polled("db", "storage-optimization"),
            Polled::Done("storage-optimization".to_owned())
        );
        for under_way in [
            "rebooting",
            "modifying",
            "maintenance",
            "backing-up",
            "upgrading",
        ] {
            assert_eq!(polled("db", under_way), Polled::Pending, "{under_way}");
        }
        for lost in ["stopped", "failed", "incompatible-network", "storage-full"] {
            assert_eq!(
                polled("db", lost),
                Polled::Failed(format!("DB instance db is {lost}"))
            );
        }
    }

    #[test]
    fn a_takeover_finds_the_reboot_its_dead_attempt_made() {
        let tagged = db("rebooting", false, Some("01DEAD"));
        assert!(rebooted_by(&tagged, &["01DEAD".to_owned()]));
        assert!(!rebooted_by(&tagged, &["01OTHER".to_owned()]));
        assert!(!rebooted_by(
            &db("available", false, None),
            &["01DEAD".to_owned()]
        ));
    }
}
