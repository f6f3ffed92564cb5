//! What a verified notification asks for: which load balancer to heal, or nothing.

use super::alarm::CloudWatchAlarm;
use crate::config::Config;

/// The decision for one verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Heal this balancer.
    Remediate {
        /// The balancer (still checked against the targets by the engine).
        load_balancer: String,
    },
    /// Record and answer, do nothing (e.g. an `OK` alarm).
    Ignore(String),
}

/// Reads the notification's `Message`: a CloudWatch alarm acts only when it is `ALARM` and names its balancer
/// by the `LoadBalancerName` dimension; any other message uses the target configured for its topic, or the
/// only configured target. `Err` carries why the message cannot be used.
pub fn decide(config: &Config, topic_arn: &str, message: &str) -> Result<Decision, String> {
    let alarm = CloudWatchAlarm::parse(message);
    if let Some(alarm) = &alarm {
        if !alarm.is_firing() {
            return Ok(Decision::Ignore(format!(
                "alarm {:?} is {}, not ALARM: nothing to do",
                alarm.alarm_name, alarm.new_state
            )));
        }
        if let Some(load_balancer) = &alarm.load_balancer_name {
            // A topic that lists its targets may only heal those: an alarm on it cannot name another one.
            let listed: Vec<&str> = config
                .targets
                .iter()
                .filter(|t| t.sns_topic_arns.iter().any(|arn| arn == topic_arn))
                .map(|t| t.load_balancer.as_str())
                .collect();
            if !listed.is_empty() && !listed.contains(&load_balancer.as_str()) {
                return Err(format!(
                    "alarm {:?} names load balancer {load_balancer:?}, but topic {topic_arn} may only heal {} \
                     (targets.sns_topic_arns)",
                    alarm.alarm_name,
                    listed.join(", ")
                ));
            }
            return Ok(Decision::Remediate {
                load_balancer: load_balancer.clone(),
            });
        }
        if let Some(elbv2) = &alarm.elbv2_load_balancer {
            return Err(format!(
                "alarm {:?} is about the ALB/NLB {elbv2:?}; reflex heals classic load balancers \
                 (LoadBalancerName dimension)",
                alarm.alarm_name
            ));
        }
    }
    let for_topic = config
        .targets
        .iter()
        .find(|t| t.sns_topic_arns.iter().any(|arn| arn == topic_arn));
    let target = match (for_topic, config.targets.as_slice()) {
        (Some(target), _) => target,
        (None, [only]) => only,
        (None, _) => {
            return Err(format!(
                "the message names no load balancer and no target lists topic {topic_arn} in sns_topic_arns"
            ));
        }
    };
    Ok(Decision::Remediate {
        load_balancer: target.load_balancer.clone(),
    })
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
                load_balancer: "api".into()
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
    fn alb_alarms_are_unusable() {
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
                load_balancer: "web".into()
            })
        );
        assert!(decide(&config(TWO), TOPIC, "web is down").is_err());
        let mapped = config(&format!(
            "[[targets]]\nload_balancer = \"web\"\n[[targets]]\nload_balancer = \"api\"\nsns_topic_arns = [\"{TOPIC}\"]\n"
        ));
        assert_eq!(
            decide(&mapped, TOPIC, "web is down"),
            Ok(Decision::Remediate {
                load_balancer: "api".into()
            })
        );
        assert_eq!(
            decide(&mapped, TOPIC, &alarm("ALARM", "")),
            Ok(Decision::Remediate {
                load_balancer: "api".into()
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
                load_balancer: "api".into()
            })
        );
    }
}
