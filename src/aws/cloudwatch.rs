//! CloudWatch: the state of the alarm a rule's check reads (`verify = "alarm-ok"`).

use super::classify::classify;
use super::fleet::AwsFleet;
use crate::engine::port::{AlarmState, FleetError};

impl AwsFleet {
    /// DescribeAlarms for one metric or composite alarm by name: its state and when it last changed.
    pub(super) async fn describe_alarm(
        &self,
        name: &str,
    ) -> Result<Option<AlarmState>, FleetError> {
        const OPERATION: &str = "DescribeAlarms";
        let output = self
            .timed(OPERATION, async {
                self.cloudwatch
                    .describe_alarms()
                    .alarm_names(name)
                    .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                    .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                    .send()
                    .await
                    .map_err(|err| classify(OPERATION, &err, &[]))
            })
            .await?;
        let metric = output.metric_alarms().iter().map(|alarm| {
            (
                alarm.state_value().map(|v| v.as_str().to_owned()),
                alarm.state_updated_timestamp().map(|t| t.secs()),
            )
        });
        let composite = output.composite_alarms().iter().map(|alarm| {
            (
                alarm.state_value().map(|v| v.as_str().to_owned()),
                alarm.state_updated_timestamp().map(|t| t.secs()),
            )
        });
        Ok(metric.chain(composite).find_map(|(value, updated_at)| {
            Some(AlarmState {
                value: value?,
                updated_at: updated_at.unwrap_or(0),
            })
        }))
    }
}
