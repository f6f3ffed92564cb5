//! CloudWatch alarm notifications as they arrive in an SNS `Message`: which state, which load balancer or
//! target group.

use serde::Deserialize;

/// The fields of a CloudWatch alarm message that decide what reflex does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudWatchAlarm {
    /// The alarm's name.
    pub alarm_name: String,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub new_state: String,
    /// The classic ELB named by the `LoadBalancerName` dimension.
    pub load_balancer_name: Option<String>,
    /// The ALB/NLB named by a `LoadBalancer` dimension (`app/NAME/ID`), recorded with a target group alarm.
    pub elbv2_load_balancer: Option<String>,
    /// The target group named by a `TargetGroup` dimension (`targetgroup/NAME/ID`).
    pub target_group: Option<String>,
    /// The metric's namespace, e.g. `AWS/ELB`, `AWS/ApplicationELB`, `AWS/NetworkELB`.
    pub namespace: Option<String>,
    /// The account the alarm (and so its metric's balancer) is in: from `AlarmArn`, else `AWSAccountId`.
    pub account: Option<String>,
    /// The region the alarm is in, from `AlarmArn` (older messages give only a display name, not read).
    pub region: Option<String>,
}

/// The namespaces whose `TargetGroup` dimension names an ELBv2 target group.
pub const ELBV2_NAMESPACES: &[&str] = &["AWS/ApplicationELB", "AWS/NetworkELB"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    alarm_name: String,
    new_state_value: String,
    #[serde(default)]
    trigger: Option<Trigger>,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default, rename = "AWSAccountId")]
    aws_account_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

#[derive(Deserialize)]
struct Dimension {
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Value")]
    value: String,
}

/// The account and region an alarm's message names: from its `AlarmArn`
/// (`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`), the account else from `AWSAccountId`.
pub fn alarm_place(
    alarm_arn: Option<&str>,
    aws_account_id: Option<String>,
) -> (Option<String>, Option<String>) {
    let arn: Vec<&str> = alarm_arn.unwrap_or_default().splitn(7, ':').collect();
    let from_arn = |index: usize| {
        (arn.len() == 7 && arn[0] == "arn" && arn[2] == "cloudwatch")
            .then(|| arn[index].to_owned())
            .filter(|value| !value.is_empty())
    };
    let account = from_arn(4)
        .or(aws_account_id)
        .filter(|id| crate::target::is_account_id(id));
    (account, from_arn(3))
}

impl CloudWatchAlarm {
    /// Reads an SNS `Message` as a CloudWatch alarm; `None` when it is not one.
    pub fn parse(message: &str) -> Option<Self> {
        let wire: Wire = serde_json::from_str(message).ok()?;
        let (namespace, dimensions) = wire
            .trigger
            .map(|t| (t.namespace, t.dimensions))
            .unwrap_or_default();
        let dimension = |name: &str| {
            dimensions
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.value.clone())
        };
        let (account, region) = alarm_place(wire.alarm_arn.as_deref(), wire.aws_account_id);
        Some(Self {
            region,
            account,
            alarm_name: wire.alarm_name,
            new_state: wire.new_state_value,
            load_balancer_name: dimension("LoadBalancerName"),
            elbv2_load_balancer: dimension("LoadBalancer"),
            target_group: dimension("TargetGroup"),
            namespace,
        })
    }

    /// Whether the alarm fired (only `ALARM` leads to a remediation).
    pub fn is_firing(&self) -> bool {
        self.new_state == "ALARM"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/vectors/cloudwatch/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn classic_elb_alarm_names_its_balancer() {
        for name in [
            "cw_elb_unhealthyhostcount_alarm_2014_eu-west-1.json",
            "cw_elb_unhealthyhostcount_alarm_2014_eu-west-1.message.txt",
        ] {
            let alarm = CloudWatchAlarm::parse(&vector(name)).unwrap();
            assert_eq!(alarm.load_balancer_name.as_deref(), Some("lb001"), "{name}");
            assert!(alarm.is_firing());
        }
        let modern = CloudWatchAlarm::parse(&vector(
            "SYNTH_cw_elb_unhealthyhostcount_modern_format.json",
        ))
        .unwrap();
        assert!(modern.load_balancer_name.is_some() && modern.is_firing());
    }

    #[test]
    fn an_alarm_says_its_account_and_region() {
        let modern = CloudWatchAlarm::parse(&vector(
            "SYNTH_cw_elb_unhealthyhostcount_modern_format.json",
        ))
        .unwrap();
        assert_eq!(modern.account.as_deref(), Some("496780030265"));
        assert_eq!(modern.region.as_deref(), Some("eu-west-1"));
        // Older messages carry the account id, and the region only as a display name.
        let old = CloudWatchAlarm::parse(&vector(
            "cw_elb_unhealthyhostcount_alarm_2014_eu-west-1.json",
        ))
        .unwrap();
        assert_eq!(old.account.as_deref(), Some("496780030265"));
        assert_eq!(old.region, None);
        let odd = CloudWatchAlarm::parse(
            r#"{"AlarmName":"a","NewStateValue":"ALARM","AlarmArn":"arn:aws:sns:x:y:z","AWSAccountId":"nope"}"#,
        )
        .unwrap();
        assert_eq!((odd.account, odd.region), (None, None));
    }

    #[test]
    fn ok_transitions_do_not_fire() {
        let alarm =
            CloudWatchAlarm::parse(&vector("cw_elb_requestcount_ok_2017_us-east-1.json")).unwrap();
        assert!(!alarm.is_firing());
        let alb_ok = CloudWatchAlarm::parse(&vector(
            "SYNTH_cw_alb_unhealthyhostcount_ok_modern_format.json",
        ))
        .unwrap();
        assert!(!alb_ok.is_firing());
    }

    #[test]
    fn alb_alarms_name_their_target_group() {
        for name in [
            "cw_alb_unhealthyhostcount_alarm_2017_us-east-2.json",
            "SYNTH_cw_alb_unhealthyhostcount_modern_format.json",
        ] {
            let alarm = CloudWatchAlarm::parse(&vector(name)).unwrap();
            assert_eq!(
                alarm.target_group.as_deref(),
                Some("targetgroup/smith-poc-nodejs-restart-tg/7c25fe0e5ca71022"),
                "{name}"
            );
            assert_eq!(alarm.namespace.as_deref(), Some("AWS/ApplicationELB"));
        }
    }

    #[test]
    fn alb_alarms_name_an_elbv2_balancer() {
        for name in [
            "cw_alb_unhealthyhostcount_alarm_2017_us-east-2.json",
            "SYNTH_cw_alb_unhealthyhostcount_modern_format.json",
        ] {
            let alarm = CloudWatchAlarm::parse(&vector(name)).unwrap();
            assert_eq!(alarm.load_balancer_name, None);
            assert!(
                alarm.elbv2_load_balancer.unwrap().starts_with("app/"),
                "{name}"
            );
        }
    }

    #[test]
    fn other_messages_are_not_alarms() {
        assert_eq!(CloudWatchAlarm::parse("web is down"), None);
        assert_eq!(CloudWatchAlarm::parse("{\"foo\": 1}"), None);
    }
}
