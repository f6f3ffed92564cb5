//! How much of the trail the safety rules read back, so that pruning can never lift one: the day the budgets
//! count, the cooldown, the relapse window, the oldest SNS message still accepted (its redelivery must still be
//! recognised) and the webhook dedup windows. `audit.retain_days` and `reflex audit prune` refuse a cutoff inside the longest.

use super::Config;

const DAY_SECS: u64 = 86_400;

/// The longest look-back of the safety rules, and which rule it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookback {
    /// How far back the rule reads, in seconds.
    pub secs: u64,
    /// The rule, as a config key and what it reads.
    pub rule: &'static str,
}

impl Lookback {
    /// The fewest whole days of records a prune may keep.
    pub fn min_days(self) -> u32 {
        u32::try_from(self.secs.div_ceil(DAY_SECS).max(1)).unwrap_or(u32::MAX)
    }

    /// Why keeping only `days` days is refused, or `None` when it is allowed.
    pub fn refusal(self, days: u32) -> Option<String> {
        let min = self.min_days();
        (days < min).then(|| {
            format!(
                "keeping {days} days of records would remove what {} still reads ({} s back); the smallest \
                 allowed value is {min}",
                self.rule, self.secs
            )
        })
    }
}

impl Config {
    /// The longest look-back of the safety rules under this configuration.
    pub fn lookback(&self) -> Lookback {
        [
            Lookback {
                secs: DAY_SECS,
                rule: "remediation.max_acted_per_day (the budget counts the last 24 hours)",
            },
            Lookback {
                secs: self.remediation.cooldown_secs,
                rule: "remediation.cooldown_secs",
            },
            Lookback {
                secs: self.remediation.relapse_window_secs,
                rule: "remediation.relapse_window_secs (a replacement broken again this soon is a relapse)",
            },
            Lookback {
                secs: self.sns.max_age_secs,
                rule: "sns.max_age_secs (a redelivery this old must still be recognised)",
            },
            Lookback {
                secs: self.alertmanager.dedup_window_secs,
                rule: "alertmanager.dedup_window_secs",
            },
            Lookback {
                secs: self.grafana.dedup_window_secs,
                rule: "grafana.dedup_window_secs",
            },
        ]
        .into_iter()
        .max_by_key(|lookback| lookback.secs)
        .expect("the list is not empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "[[targets]]\nload_balancer = \"web-elb\"\n";

    fn parsed(toml: &str) -> Result<Config, crate::config::ConfigError> {
        crate::config::parse(&format!("{TARGET}{toml}"), std::iter::empty())
    }

    fn config(toml: &str) -> Config {
        parsed(toml).unwrap()
    }

    #[test]
    fn the_longest_rule_sets_the_smallest_retention() {
        let defaults = config("");
        assert_eq!(defaults.lookback().secs, DAY_SECS);
        assert_eq!(defaults.lookback().min_days(), 1);
        assert_eq!(defaults.lookback().refusal(1), None);
        let long = config("[remediation]\ncooldown_secs = 200000\n");
        assert_eq!(long.lookback().rule, "remediation.cooldown_secs");
        assert_eq!(long.lookback().min_days(), 3);
        let refusal = long.lookback().refusal(2).unwrap();
        assert!(refusal.contains("remediation.cooldown_secs"), "{refusal}");
        assert!(refusal.contains("smallest allowed value is 3"), "{refusal}");
        let relapses = config("[remediation]\nrelapse_window_secs = 200000\n");
        assert_eq!(relapses.lookback().min_days(), 3);
        let refusal = relapses.lookback().refusal(2).unwrap();
        assert!(
            refusal.contains("remediation.relapse_window_secs"),
            "{refusal}"
        );
        let sns = config("[sns]\nmax_age_secs = 172800\n");
        assert_eq!(sns.lookback().min_days(), 2);
        assert!(sns.lookback().refusal(0).is_some());
    }

    #[test]
    fn a_retention_inside_the_lookback_is_refused_at_start_and_zero_keeps_everything() {
        let err = parsed("[audit]\nretain_days = 1\n[grafana]\ndedup_window_secs = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("audit.retain_days"), "{err}");
        assert!(err.contains("grafana.dedup_window_secs"), "{err}");
        assert!(err.contains("smallest allowed value is 2"), "{err}");
        config("[audit]\nretain_days = 0\n[grafana]\ndedup_window_secs = 100000\n");
        config("[audit]\nretain_days = 2\n[grafana]\ndedup_window_secs = 100000\n");
    }
}
