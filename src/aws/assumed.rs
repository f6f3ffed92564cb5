//! Credentials for another account: STS AssumeRole into the role its `[[accounts]]` entry names, with its
//! external id, cached until shortly before they expire. One AssumeRole per account per session, never one per
//! request and never used expired; the session is named after the run that needed new credentials, so that the
//! member account's CloudTrail leads back to the audit record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials};
use tokio::sync::Mutex;

use super::classify::classify;
use crate::config::{AccountConfig, Secret};
use crate::engine::port::{FailureKind, FleetError, current_run};
use crate::metrics::{AssumeRoleLabels, Metrics};

/// The operation named in errors, metrics and the audit trail.
const OPERATION: &str = "sts:AssumeRole";

/// One account's role, and the credentials last assumed into it.
#[derive(Debug)]
pub struct AssumedRole {
    account: String,
    role_arn: String,
    /// Redacted in `Debug`: the role's trust policy keys on it.
    external_id: Option<Secret>,
    session: Duration,
    refresh_before: Duration,
    sts: aws_sdk_sts::Client,
    cached: Mutex<Option<Credentials>>,
    metrics: Arc<Metrics>,
}

impl AssumedRole {
    /// The role of `account`, assumed with the local credentials of `local`.
    pub fn new(account: &AccountConfig, local: &SdkConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            account: account.name.clone(),
            role_arn: account.role_arn.clone(),
            external_id: account.external_id.clone(),
            session: Duration::from_secs(account.session_duration_secs),
            refresh_before: Duration::from_secs(account.refresh_before_expiry_secs),
            sts: aws_sdk_sts::Client::new(local),
            cached: Mutex::new(None),
            metrics,
        }
    }

    /// Credentials that are good for at least `refresh_before_expiry_secs` more: the cached ones, else newly
    /// assumed ones. A failure names the account and the role; it is not cached, so the next run tries again.
    pub async fn credentials(&self) -> Result<Credentials, FleetError> {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref()
            && is_fresh(credentials.expiry(), SystemTime::now(), self.refresh_before)
        {
            return Ok(credentials.clone());
        }
        let assumed = self.assume().await;
        let outcome = match &assumed {
            Ok(_) => "assumed",
            Err(err) if err.kind == FailureKind::Permanent => "denied",
            Err(_) => "unavailable",
        };
        self.metrics
            .assume_role
            .get_or_create(&AssumeRoleLabels {
                account: self.account.clone(),
                outcome,
            })
            .inc();
        let credentials = assumed?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume(&self) -> Result<Credentials, FleetError> {
        let session = session_name(current_run().as_deref());
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&session)
            .set_external_id(self.external_id.as_ref().map(|id| id.expose().to_owned()))
            .duration_seconds(i32::try_from(self.session.as_secs()).unwrap_or(3600))
            .send()
            .await
            .map_err(|err| {
                let mut failed = classify(OPERATION, &err, &[]);
                failed.account = Some(self.account.clone());
                failed.detail = format!(
                    "assuming role {} of account {:?}: {}",
                    self.role_arn, self.account, failed.detail
                );
                failed
            })?;
        let given = answer.credentials.ok_or_else(|| {
            FleetError::new(
                FailureKind::Transient,
                OPERATION,
                None,
                format!("STS answered no credentials for role {}", self.role_arn),
            )
        })?;
        // Credentials whose expiry cannot be read are taken to last the session asked for, never for ever.
        let expiry = SystemTime::try_from(given.expiration)
            .unwrap_or_else(|_| SystemTime::now() + self.session);
        tracing::info!(
            account = self.account,
            role = self.role_arn,
            session,
            "role assumed"
        );
        Ok(Credentials::new(
            given.access_key_id,
            given.secret_access_key,
            Some(given.session_token),
            Some(expiry),
            "reflex-assume-role",
        ))
    }
}

/// Whether credentials expiring at `expiry` may still be handed out at `now`: more than `refresh_before` left.
/// Credentials without an expiry never need refreshing.
fn is_fresh(expiry: Option<SystemTime>, now: SystemTime, refresh_before: Duration) -> bool {
    expiry.is_none_or(|expiry| {
        expiry
            .duration_since(now)
            .is_ok_and(|left| left > refresh_before)
    })
}

/// The STS session name for credentials assumed for `run` (its audit id), within STS's rules: 2 to 64 of
/// letters, digits and `+=,.@_-`.
fn session_name(run: Option<&str>) -> String {
    let run: String = run
        .unwrap_or("start-up")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))
        .take(57)
        .collect();
    format!("reflex-{run}")
}

/// The SDK's view of an account's role: every call asks it for credentials (it caches them itself).
#[derive(Debug, Clone)]
pub struct RoleCredentials(pub Arc<AssumedRole>);

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_before_they_expire_and_never_used_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let margin = Duration::from_secs(300);
        let at = |secs: u64| Some(now + Duration::from_secs(secs));
        assert!(is_fresh(at(3600), now, margin));
        assert!(is_fresh(at(301), now, margin));
        assert!(!is_fresh(at(300), now, margin), "inside the margin");
        assert!(!is_fresh(at(10), now, margin));
        assert!(
            !is_fresh(Some(now - Duration::from_secs(1)), now, margin),
            "expired"
        );
        assert!(is_fresh(None, now, margin));
    }

    #[test]
    fn the_external_id_never_shows_in_debug_output() {
        let account = AccountConfig {
            name: "prod".to_owned(),
            role_arn: "arn:aws:iam::222233334444:role/reflex".to_owned(),
            external_id: Some(Secret::new("the-external-id-0123")),
            external_id_file: None,
            session_duration_secs: 3600,
            refresh_before_expiry_secs: 300,
            regions: Vec::new(),
            sns_topic_arns: Vec::new(),
        };
        let local = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let role = AssumedRole::new(&account, &local, Arc::new(Metrics::default()));
        let shown = format!("{role:?}");
        assert!(!shown.contains("the-external-id-0123"), "{shown}");
        assert!(shown.contains("222233334444"), "{shown}");
    }

    #[test]
    fn the_session_is_named_after_the_run_within_the_rules_of_sts() {
        assert_eq!(
            session_name(Some("01JABCDEF0123456789XYZ")),
            "reflex-01JABCDEF0123456789XYZ"
        );
        assert_eq!(session_name(None), "reflex-start-up");
        let odd = session_name(Some(&format!("a b/c{}", "x".repeat(100))));
        assert_eq!(odd.len(), 64);
        assert!(odd.starts_with("reflex-abcx"));
    }
}
