//! Where a rule acts, as a condition on the alert: an alert that names an account or a region is a rule's only
//! when they are the rule's, so that an alarm in one account never starts an action in another.

use super::AlertFacts;
use crate::config::{Config, LOCAL_ACCOUNT, RuleConfig};

/// The account and region a rule acts in, and every way an alert may name that account.
#[derive(Debug, Clone)]
pub(super) struct RulePlace {
    /// The account as configured: `local` or an `[[accounts]]` name.
    account: String,
    /// What an alert may call it: its name, its id when known.
    known_as: Vec<String>,
    /// For the local account when its id is not known: the other accounts' ids, which are not it (any other
    /// id is taken to be the local one, as for targets).
    others: Option<Vec<String>>,
    /// The region.
    region: String,
}

impl RulePlace {
    /// Where `rule` acts under `config`; `home_account` is the local account's id, empty when not known.
    pub fn of(config: &Config, rule: &RuleConfig, home_account: &str) -> Self {
        let account = rule.account_name().to_owned();
        let region = rule.region_or(&config.aws.region).to_owned();
        let id = match config.account(&account) {
            Some(entry) => entry.account_id().to_owned(),
            None if !home_account.is_empty() => home_account.to_owned(),
            None => config.aws.account_id.clone().unwrap_or_default(),
        };
        let others = (account == LOCAL_ACCOUNT && id.is_empty()).then(|| {
            config
                .accounts
                .iter()
                .flat_map(|entry| [entry.name.clone(), entry.account_id().to_owned()])
                .collect()
        });
        let known_as = [account.clone(), id]
            .into_iter()
            .filter(|name| !name.is_empty())
            .collect();
        Self {
            account,
            known_as,
            others,
            region,
        }
    }

    /// Why `alert` is not for a rule acting here: the account or region it names is another; `None` when it
    /// names this place, or none.
    pub fn failed(&self, alert: &AlertFacts) -> Option<String> {
        Some(match self.miss(alert)? {
            Miss::Region => format!(
                "region: the alert is in {:?}, the rule acts in {:?}",
                crate::untrusted::bounded(&alert.region),
                self.region
            ),
            Miss::Account => format!(
                "account: the alert is in {:?}, the rule acts in {:?}",
                crate::untrusted::bounded(&alert.account),
                self.account
            ),
        })
    }

    /// Whether `alert` names another region or another account (`None`: this place, or none), in no words:
    /// on the path of every alert.
    pub fn miss(&self, alert: &AlertFacts) -> Option<Miss> {
        // Blank text names no place, as everywhere a place is read (`Place::new`).
        if !alert.region.trim().is_empty() && alert.region != self.region {
            return Some(Miss::Region);
        }
        let account = alert.account.as_str();
        let known = self.known_as.iter().any(|name| name == account);
        let local = self.others.as_ref().is_some_and(|others| {
            crate::target::is_account_id(account) && !others.iter().any(|o| o == account)
        });
        (!(account.trim().is_empty() || known || local)).then_some(Miss::Account)
    }
}

/// What of an alert's place is not a rule's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// It names another region.
    Region,
    /// It names another account.
    Account,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[aws]
region = "us-east-1"

[[accounts]]
name = "prod"
role_arn = "arn:aws:iam::222233334444:role/reflex-member"
regions = ["eu-west-1", "us-east-1"]

[[rules]]
name = "disk-prod"
account = "prod"
region = "eu-west-1"
ladder = ["reboot"]

[[rules]]
name = "disk-local"
ladder = ["reboot"]
"#;

    fn alert(account: &str, region: &str) -> AlertFacts {
        AlertFacts {
            account: account.into(),
            region: region.into(),
            ..AlertFacts::default()
        }
    }

    fn places(home: &str) -> (RulePlace, RulePlace) {
        let config = crate::config::parse(CONFIG, []).unwrap();
        (
            RulePlace::of(&config, &config.rules[0], home),
            RulePlace::of(&config, &config.rules[1], home),
        )
    }

    #[test]
    fn an_alert_is_a_placed_rules_only_from_its_account_and_region() {
        let (prod, local) = places("123456789012");
        for ours in [
            alert("222233334444", "eu-west-1"),
            alert("prod", ""),
            alert("", ""),
        ] {
            assert_eq!(prod.failed(&ours), None, "{ours:?}");
        }
        let failed = prod.failed(&alert("222233334444", "us-east-1")).unwrap();
        assert!(failed.starts_with("region:"), "{failed}");
        let failed = prod.failed(&alert("123456789012", "eu-west-1")).unwrap();
        assert_eq!(
            failed,
            "account: the alert is in \"123456789012\", the rule acts in \"prod\""
        );
        assert_eq!(local.failed(&alert("123456789012", "us-east-1")), None);
        assert_eq!(local.failed(&alert("local", "")), None);
        assert!(local.failed(&alert("222233334444", "us-east-1")).is_some());
        assert!(local.failed(&alert("999999999999", "us-east-1")).is_some());
    }

    #[test]
    fn with_the_local_id_unknown_any_account_but_the_configured_ones_is_local() {
        let (_, local) = places("");
        assert_eq!(local.failed(&alert("999999999999", "us-east-1")), None);
        assert!(local.failed(&alert("222233334444", "us-east-1")).is_some());
        assert!(local.failed(&alert("prod", "us-east-1")).is_some());
        assert!(local.failed(&alert("staging", "us-east-1")).is_some());
    }
}
