//! What a verified notification asks for: which load balancer or target group to heal, or nothing.

use super::alarm::{CloudWatchAlarm, ELBV2_NAMESPACES};
use crate::config::Config;
use crate::target::{Place, TargetRef};

/// The decision for one verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Heal this target.
    Remediate {
        /// The target (still checked against the configured targets by the engine).
        target: TargetRef,
        /// Where the alarm says the target is (its `AlarmArn`), or where the topic's target is.
        place: Place,
        /// The ALB/NLB an alarm's `LoadBalancer` dimension names, recorded in the audit trail.
        load_balancer: Option<String>,
    },
    /// Record and answer, do nothing (e.g. an `OK` alarm).
    Ignore(String),
    /// Refuse `no-rule-matched`: rules are configured, the alert matched none and names no target.
    NoRuleMatched(String),
}

/// Reads the notification's `Message`: a CloudWatch alarm acts only when it is `ALARM` and names its target,
/// a classic balancer by the `LoadBalancerName` dimension or (in `AWS/ApplicationELB` and `AWS/NetworkELB`) a
/// target group by the `TargetGroup` dimension, in the account and region of its `AlarmArn`; any other message
/// uses the target configured for its topic, or the only configured target (with no `[[rules]]`: with
/// rules, one that no rule took is refused). `Err` carries why the message cannot be used.
pub fn decide(config: &Config, topic_arn: &str, message: &str) -> Result<Decision, String> {
    let alarm = CloudWatchAlarm::parse(message);
    if let Some(alarm) = &alarm {
        if !alarm.is_firing() {
            return Ok(Decision::Ignore(format!(
                "alarm {:?} is {}, not ALARM: nothing to do",
                alarm.alarm_name, alarm.new_state
            )));
        }
        if let Some(target) = named_target(alarm)? {
            let place = Place::new(alarm.account.clone(), alarm.region.clone());
            let home = config.aws.account_id.as_deref().unwrap_or_default();
            account_allowed(
                config,
                topic_arn,
                &alarm.alarm_name,
                alarm.account.as_deref(),
            )?;
            // A topic that lists its targets may only heal those: an alarm on it cannot name another one.
            let listed: Vec<_> = config
                .targets
                .iter()
                .filter(|t| t.sns_topic_arns.iter().any(|arn| arn == topic_arn))
                .collect();
            if !listed.is_empty()
                && !listed
                    .iter()
                    .any(|t| t.is(&target) && config.is_in(t, &place, home))
            {
                let names: Vec<&str> = listed.iter().map(|t| t.name()).collect();
                return Err(format!(
                    "alarm {:?} names {target}, but topic {topic_arn} may only heal {} (targets.sns_topic_arns)",
                    alarm.alarm_name,
                    names.join(", ")
                ));
            }
            return Ok(Decision::Remediate {
                target,
                place,
                load_balancer: alarm.elbv2_load_balancer.clone(),
            });
        }
    }
    let for_topic: Vec<_> = config
        .targets
        .iter()
        .filter(|t| t.sns_topic_arns.iter().any(|arn| arn == topic_arn))
        .collect();
    let target = match (for_topic.as_slice(), config.targets.as_slice()) {
        ([target], _) => *target,
        // Once rules are configured, an alert no rule took is not the only target's for naming nothing.
        ([], _) if !config.rules.is_empty() => {
            return Ok(Decision::NoRuleMatched(format!(
                "the message matches no rule and names no load balancer or target group, and no target lists \
                 topic {topic_arn} in sns_topic_arns: `reflex rules test` shows why each rule did not match"
            )));
        }
        ([], [only]) => only,
        ([_, _, ..], _) => {
            let names: Vec<&str> = for_topic.iter().map(|t| t.name()).collect();
            return Err(format!(
                "the message names no load balancer or target group, and topic {topic_arn} is listed by \
                 several targets ({}): which one is meant cannot be told",
                names.join(", ")
            ));
        }
        ([], _) => {
            return Err(format!(
                "the message names no load balancer or target group and no target lists topic {topic_arn} in \
                 sns_topic_arns"
            ));
        }
    };
    Ok(Decision::Remediate {
        target: target.reference(),
        place: config.place_named(target),
        load_balancer: None,
    })
}

/// Whether the alarm `alarm_name`, delivered by `topic_arn`, may name the `account` it names: its text is the
/// publisher's, so an account is accepted only from a topic of that account, or one its `[[accounts]]` entry
/// lists in `sns_topic_arns` (a central topic). An alarm that names no account is refused when several
/// accounts are configured: which one is meant cannot be told. Targets and rules alike are held to it.
pub fn account_allowed(
    config: &Config,
    topic_arn: &str,
    alarm_name: &str,
    account: Option<&str>,
) -> Result<(), String> {
    // With no other account configured, every target is in the account reflex runs in: an alarm cannot send
    // it anywhere else (a central monitoring topic in another account keeps working).
    if config.accounts.is_empty() {
        return Ok(());
    }
    let Some(account) = account else {
        return Err(format!(
            "alarm {alarm_name:?} names no account (no AlarmArn or AWSAccountId), and several accounts are \
             configured: which one is meant cannot be told"
        ));
    };
    let topic_account = topic_arn.split(':').nth(4).unwrap_or_default();
    let listed = config.accounts.iter().any(|entry| {
        entry.account_id() == account && entry.sns_topic_arns.iter().any(|t| t == topic_arn)
    });
    if account == topic_account || listed {
        return Ok(());
    }
    Err(format!(
        "alarm {alarm_name:?} names account {account}, but topic {topic_arn} is in account {topic_account}: an \
         alarm may name only its topic's account, or an account whose [[accounts]] entry lists the topic in \
         sns_topic_arns"
    ))
}

/// The target a firing alarm names by its dimensions, if any.
fn named_target(alarm: &CloudWatchAlarm) -> Result<Option<TargetRef>, String> {
    if let Some(name) = &alarm.load_balancer_name {
        return Ok(Some(TargetRef::LoadBalancer(name.clone())));
    }
    let elbv2 = alarm
        .namespace
        .as_deref()
        .is_some_and(|namespace| ELBV2_NAMESPACES.contains(&namespace));
    match (&alarm.target_group, &alarm.elbv2_load_balancer) {
        (Some(group), _) if elbv2 => Ok(Some(TargetRef::TargetGroup(group.clone()))),
        (Some(group), _) => Err(format!(
            "alarm {:?} names target group {group:?} in namespace {:?}; reflex reads the TargetGroup \
             dimension of AWS/ApplicationELB and AWS/NetworkELB alarms only",
            alarm.alarm_name,
            alarm.namespace.as_deref().unwrap_or("(none)")
        )),
        (None, Some(balancer)) => Err(format!(
            "alarm {:?} is about the ALB/NLB {balancer:?} as a whole; reflex heals target groups: alarm on \
             a metric with the TargetGroup dimension (e.g. UnHealthyHostCount per target group)",
            alarm.alarm_name
        )),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alarms";

    fn config(targets: &str) -> Config {
        let text = format!("[sns]\ntopic_arns = [\"{TOPIC}\"]\n{targets}");
        crate::config::parse(&text, std::iter::empty()).unwrap()
    }

    fn alarm(state: &str, dimensions: &str) -> String {
        format!(
            r#"{{"AlarmName":"web-unhealthy","NewStateValue":"{state}","Trigger":{{"Dimensions":[{dimensions}]}}}}"#
        )
    }

    const TWO: &str =
        "[[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\n";

    #[test]
    fn an_alarm_names_its_balancer() {
        let decision = decide(
            &config(TWO),
            TOPIC,
            &alarm("ALARM", r#"{"name":"LoadBalancerName","value":"api"}"#),
        );
        assert_eq!(
            decision,
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("api".into()),
                place: Place::default(),
                load_balancer: None,
            })
        );
    }

    #[test]
    fn ok_and_insufficient_data_are_ignored() {
        for state in ["OK", "INSUFFICIENT_DATA"] {
            let decision = decide(&config(TWO), TOPIC, &alarm(state, "")).unwrap();
            assert!(matches!(decision, Decision::Ignore(reason) if reason.contains(state)));
        }
    }

    #[test]
    fn target_group_alarms_name_their_group() {
        let dimensions = r#"{"name":"LoadBalancer","value":"app/alb/1"},{"name":"TargetGroup","value":"targetgroup/web-tg/2"}"#;
        let firing = |namespace: &str| {
            alarm("ALARM", dimensions).replace(
                r#""Trigger":{"#,
                &format!(r#""Trigger":{{"Namespace":"{namespace}","#),
            )
        };
        for namespace in ["AWS/ApplicationELB", "AWS/NetworkELB"] {
            assert_eq!(
                decide(&config(TWO), TOPIC, &firing(namespace)),
                Ok(Decision::Remediate {
                    target: TargetRef::TargetGroup("targetgroup/web-tg/2".into()),
                    place: Place::default(),
                    load_balancer: Some("app/alb/1".into()),
                })
            );
        }
        let err = decide(&config(TWO), TOPIC, &firing("Custom/Thing")).unwrap_err();
        assert!(err.contains("Custom/Thing"), "{err}");
        // A topic that lists a target group may heal it, by any of its names.
        let mapped = config(&format!(
            "[[targets]]\nload_balancer = \"web\"\n[[targets]]\ntarget_group = \"web-tg\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        ));
        assert!(decide(&mapped, TOPIC, &firing("AWS/ApplicationELB")).is_ok());
        let other = firing("AWS/ApplicationELB").replace("web-tg", "api-tg");
        let err = decide(&mapped, TOPIC, &other).unwrap_err();
        assert!(err.contains("may only heal web-tg"), "{err}");
    }

    #[test]
    fn alb_alarms_without_a_target_group_are_unusable() {
        let err = decide(
            &config(TWO),
            TOPIC,
            &alarm("ALARM", r#"{"name":"LoadBalancer","value":"app/x/1"}"#),
        )
        .unwrap_err();
        assert!(err.contains("app/x/1"));
    }

    #[test]
    fn other_messages_use_the_topic_target_or_the_only_target() {
        let one = config("[[targets]]\nload_balancer = \"web\"\n");
        assert_eq!(
            decide(&one, TOPIC, "web is down"),
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("web".into()),
                place: local(),
                load_balancer: None,
            })
        );
        assert!(decide(&config(TWO), TOPIC, "web is down").is_err());
        let mapped = config(&format!(
            "[[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        ));
        assert_eq!(
            decide(&mapped, TOPIC, "web is down"),
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("api".into()),
                place: local(),
                load_balancer: None,
            })
        );
        assert_eq!(
            decide(&mapped, TOPIC, &alarm("ALARM", "")),
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("api".into()),
                place: local(),
                load_balancer: None,
            })
        );
    }

    #[test]
    fn a_topic_that_lists_its_targets_cannot_heal_another() {
        let mapped = config(&format!(
            "[[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        ));
        let err = decide(
            &mapped,
            TOPIC,
            &alarm("ALARM", r#"{"name":"LoadBalancerName","value":"web"}"#),
        )
        .unwrap_err();
        assert!(err.contains("may only heal api"), "{err}");
        assert_eq!(
            decide(
                &mapped,
                TOPIC,
                &alarm("ALARM", r#"{"name":"LoadBalancerName","value":"api"}"#)
            ),
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("api".into()),
                place: Place::default(),
                load_balancer: None,
            })
        );
    }

    #[test]
    fn an_alarm_heals_the_target_in_its_own_account_and_region_only() {
        let text = format!(
            "[sns]\ntopic_arns = [\"{TOPIC}\"]\n\
             [[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222222222222:role/reflex\"\nregions = [\"eu-west-1\"]\n\
             sns_topic_arns = [\"{TOPIC}\"]\n\
             [[targets]]\nload_balancer = \"web\"\n\
             [[targets]]\nload_balancer = \"web\"\naccount = \"prod\"\nregion = \"eu-west-1\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        );
        let config = crate::config::parse(&text, std::iter::empty()).unwrap();
        let firing = |arn: &str| {
            alarm("ALARM", r#"{"name":"LoadBalancerName","value":"web"}"#).replace(
                "{\"AlarmName\"",
                &format!("{{\"AlarmArn\":\"{arn}\",\"AlarmName\""),
            )
        };
        let prod = "arn:aws:cloudwatch:eu-west-1:222222222222:alarm:web-unhealthy";
        assert_eq!(
            decide(&config, TOPIC, &firing(prod)),
            Ok(Decision::Remediate {
                target: TargetRef::LoadBalancer("web".into()),
                place: Place::new(Some("222222222222".into()), Some("eu-west-1".into())),
                load_balancer: None,
            })
        );
        // The topic lists prod's web only: an alarm of the local account's web over it is refused.
        let local = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-unhealthy";
        let err = decide(&config, TOPIC, &firing(local)).unwrap_err();
        assert!(err.contains("may only heal web"), "{err}");
    }

    #[test]
    fn an_alarm_names_an_account_only_over_that_account_s_topic_or_one_its_entry_lists() {
        let prod =
            "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222222222222:role/reflex\"\n";
        let targets = "[[targets]]\nload_balancer = \"web\"\n\
                       [[targets]]\nload_balancer = \"web\"\naccount = \"prod\"\n";
        let in_account = |account: &str| {
            alarm("ALARM", r#"{"name":"LoadBalancerName","value":"web"}"#).replace(
                "{\"AlarmName\"",
                &format!(
                    "{{\"AlarmArn\":\"arn:aws:cloudwatch:us-east-1:{account}:alarm:web\",\"AlarmName\""
                ),
            )
        };
        let prod_topic = "arn:aws:sns:us-east-1:222222222222:alarms";
        // With no [[accounts]], every target is local: an alarm of a central topic elsewhere still heals.
        let local_only = config("[[targets]]\nload_balancer = \"web\"\n");
        assert!(decide(&local_only, prod_topic, &in_account("123456789012")).is_ok());
        let config = crate::config::parse(&format!("{prod}{targets}"), std::iter::empty()).unwrap();
        // Over the home account's topic, a publisher cannot send reflex into prod.
        let err = decide(&config, TOPIC, &in_account("222222222222")).unwrap_err();
        assert!(
            err.contains("names account 222222222222") && err.contains("sns_topic_arns"),
            "{err}"
        );
        // Over prod's own topic it can, and over the home topic the home account's alarm can.
        assert!(decide(&config, prod_topic, &in_account("222222222222")).is_ok());
        assert!(decide(&config, TOPIC, &in_account("123456789012")).is_ok());
        assert!(decide(&config, prod_topic, &in_account("123456789012")).is_err());
        // A central topic listed by prod's entry may name prod.
        let central = format!("{prod}sns_topic_arns = [\"{TOPIC}\"]\n{targets}");
        let config = crate::config::parse(&central, std::iter::empty()).unwrap();
        assert!(decide(&config, TOPIC, &in_account("222222222222")).is_ok());
        // With several accounts, an alarm that names none is refused.
        let placeless = alarm("ALARM", r#"{"name":"LoadBalancerName","value":"web"}"#);
        let err = decide(&config, TOPIC, &placeless).unwrap_err();
        assert!(err.contains("names no account"), "{err}");
    }

    #[test]
    fn a_message_naming_no_target_over_a_topic_several_targets_list_is_unusable() {
        let listed = config(&format!(
            "[[targets]]\nload_balancer = \"web\"\nsns_topic_arns = [\"{TOPIC}\"]\n\
             [[targets]]\nload_balancer = \"api\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        ));
        let err = decide(&listed, TOPIC, "something is down").unwrap_err();
        assert!(
            err.contains("listed by several targets (web, api)"),
            "{err}"
        );
    }

    fn local() -> Place {
        Place::new(Some("local".into()), Some("us-east-1".into()))
    }
}
