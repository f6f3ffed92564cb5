//! Configuration: a TOML file, then `REFLEX_<SECTION>_<KEY>` environment overrides, then `<key>_file` secrets,
//! validated once at start-up with messages that name the key and the fix.

mod actions;
mod approvals;
mod approvers;
mod digest;
mod length;
mod load;
mod retention;
mod rules;
mod scoped;
mod secret;
mod validate;
mod windows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use actions::{ActionConfig, ActionLimits};
pub use approvals::{ApprovalsConfig, DEFAULT_TTL_SECS, NamedApprover, SlackConfig};
pub use digest::{parse_sha256, sha256, token_matches};
pub use length::parse_length;
pub use load::{ConfigError, load, parse};
pub use retention::Lookback;
pub use rules::{
    ALERT_INSTANCES, NO_INSTANCES, RuleConfig, RuleMatch, VERIFY_WITHIN_SECS, Verify,
    is_business_namespace, tag_selector,
};
pub use scoped::ScopedToken;
pub use secret::{Secret, any_matches};
pub(crate) use validate::is_loopback;
pub use windows::{Occurrence, Window};

use crate::target::{Place, TargetRef};

/// The commented example configuration, shipped in the repository and embedded for `--help` users.
pub const EXAMPLE: &str = include_str!("../../reflex.example.toml");

/// The whole validated configuration, shared read-only by every part of the service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where and how the HTTP server listens.
    pub server: ServerConfig,
    /// How AWS is reached.
    pub aws: AwsConfig,
    /// Where the audit trail lives and who may read it.
    pub audit: AuditConfig,
    /// The safety limits every remediation obeys.
    pub remediation: RemediationConfig,
    /// Other AWS accounts reflex heals through a role it assumes there (`[[accounts]]`).
    pub accounts: Vec<AccountConfig>,
    /// The only load balancers reflex may ever touch.
    pub targets: Vec<TargetConfig>,
    /// Credentials for `POST /remediate`.
    pub manual: TokenConfig,
    /// SNS deliveries to `POST /sns`.
    pub sns: SnsConfig,
    /// Alertmanager webhooks to `POST /alertmanager`.
    pub alertmanager: WebhookConfig,
    /// Grafana webhooks to `POST /grafana`.
    pub grafana: WebhookConfig,
    /// Credentials for the `/admin` routes (kill switch, breaker reset, state), separate from `[manual]`.
    pub admin: TokenConfig,
    /// Where events (acted, refused, breaker tripped, not recovered) are sent: `[[notify]]` tables.
    pub notify: Vec<NotifyConfig>,
    /// Weekly maintenance windows: alerts for their targets inside them are refused (`[[windows]]`).
    pub windows: Vec<Window>,
    /// Who approves held decisions (targets in `approve` mode), and for how long they wait.
    pub approvals: ApprovalsConfig,
    /// Slack's interactive Approve / Reject buttons.
    pub slack: SlackConfig,
    /// Which alerts, from any source, a response is for (`[[rules]]`).
    pub rules: Vec<RuleConfig>,
    /// Named remedies: an action kind under a name of its own, with its settings (`[[actions]]`).
    pub actions: Vec<ActionConfig>,
}

/// `[[notify]]`: one webhook that hears about some events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The webhook URL (a Slack incoming-webhook URL holds its secret: prefer `url_file`).
    #[serde(default)]
    pub url: Option<Secret>,
    /// File whose first line is the URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// `slack` (Slack's incoming-webhook message), `json` (the event as a JSON object) or `pagerduty`
    /// (Events API v2; `url` defaults to PagerDuty's enqueue endpoint).
    #[serde(default)]
    pub format: NotifyFormat,
    /// `pagerduty` only: the integration's routing key (prefer `routing_key_file`).
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// `pagerduty` only: file whose first line is the routing key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Which events go there; unset: all of them.
    #[serde(default = "NotifyEvent::all")]
    pub events: Vec<NotifyEvent>,
}

/// The body a notification webhook receives.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// `{"text": ...}` with Slack mrkdwn, for Slack incoming webhooks.
    Slack,
    /// The event as a JSON object, for anything else.
    #[default]
    Json,
    /// PagerDuty Events API v2: `escalated` triggers an incident (one per target and episode, by its
    /// `dedup_key`) and `resolved` resolves it; other events are not sent.
    Pagerduty,
}

/// PagerDuty's Events API v2 endpoint: where a `pagerduty` `[[notify]]` entry posts unless `url` says otherwise.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The ladder of a target that names none: replacement only.
pub const DEFAULT_STEP: &str = "replace";

/// Events a `[[notify]]` entry can subscribe to.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// A run replaced instances.
    Acted,
    /// A run was refused by a safety rule, a pause or the breaker.
    Refused,
    /// A target's breaker opened.
    BreakerTripped,
    /// A recovery check found the target no better after a run.
    NotRecovered,
    /// A silence ended by itself.
    Silence,
    /// A target in observe mode would have been acted on.
    WouldAct,
    /// A target in approve mode holds a decision for approvers (with Slack's Approve / Reject buttons).
    Held,
    /// The last step of a ladder did not fix the target, or replaced instances keep breaking: a person is
    /// needed (a PagerDuty `trigger`).
    Escalated,
    /// A target that escalated has its capacity back (a PagerDuty `resolve`).
    Resolved,
}

impl NotifyEvent {
    /// Every event (the default subscription).
    pub fn all() -> Vec<Self> {
        vec![
            Self::Acted,
            Self::Refused,
            Self::BreakerTripped,
            Self::NotRecovered,
            Self::Silence,
            Self::WouldAct,
            Self::Held,
            Self::Escalated,
            Self::Resolved,
        ]
    }

    /// The event's name in messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acted => "acted",
            Self::Refused => "refused",
            Self::BreakerTripped => "breaker-tripped",
            Self::NotRecovered => "not-recovered",
            Self::Silence => "silence",
            Self::WouldAct => "would-act",
            Self::Held => "held",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
        }
    }
}

/// `[alertmanager]` and `[grafana]`: who may call, and how alerts map to load balancers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Accepted bearer tokens (`Authorization: Bearer`); several allow rotation.
    pub tokens: Vec<Secret>,
    /// File holding one bearer token per line.
    pub tokens_file: Option<PathBuf>,
    /// The basic-auth user name, when basic auth is used.
    pub username: Option<String>,
    /// Accepted basic-auth passwords for `username`.
    pub passwords: Vec<Secret>,
    /// File holding one password per line.
    pub passwords_file: Option<PathBuf>,
    /// The alert label naming the classic load balancer.
    pub target_label: String,
    /// The alert label naming the ELBv2 target group (name, ARN or `targetgroup/NAME/ID`); it wins over
    /// `target_label` when an alert carries both.
    pub target_group_label: String,
    /// The alert label naming the target's account (`[[accounts]]` name, `local`, or account id), needed
    /// only when targets in several accounts share a name.
    pub account_label: String,
    /// The alert label naming the target's region, needed only when targets in several regions share a name.
    pub region_label: String,
    /// The target for firing alerts without either label; unset reports them as unusable.
    pub default_target: Option<String>,
    /// The same group notification arriving again within this many seconds is a duplicate.
    pub dedup_window_secs: u64,
    /// Grafana only: the HMAC-SHA256 secret.
    pub hmac_secret: Option<Secret>,
    /// Grafana only: file holding the HMAC secret.
    pub hmac_secret_file: Option<PathBuf>,
    /// Grafana only: the header carrying the signature.
    pub signature_header: String,
    /// Grafana only: the header carrying the Unix timestamp that is signed with the body.
    pub timestamp_header: String,
    /// Grafana only: how far the signed timestamp may be from now (replay window).
    pub replay_window_secs: u64,
    /// Bearer tokens whose alerts may name targets in some accounts only.
    pub scoped: Vec<ScopedToken>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            tokens_file: None,
            username: None,
            passwords: Vec::new(),
            passwords_file: None,
            target_label: "load_balancer".to_owned(),
            target_group_label: "target_group".to_owned(),
            account_label: "account".to_owned(),
            region_label: "region".to_owned(),
            default_target: None,
            dedup_window_secs: 3600,
            hmac_secret: None,
            hmac_secret_file: None,
            signature_header: "X-Grafana-Alerting-Signature".to_owned(),
            timestamp_header: "X-Grafana-Alerting-Timestamp".to_owned(),
            replay_window_secs: 300,
            scoped: Vec::new(),
        }
    }
}

/// `[sns]`: which topics may deliver, how old a message may be, and how certificates and subscriptions are
/// handled.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnsConfig {
    /// Topics whose messages are accepted; empty refuses every SNS delivery.
    pub topic_arns: Vec<String>,
    /// Messages whose Timestamp is older than this are rejected as stale (replay protection).
    pub max_age_secs: u64,
    /// Lowest accepted SignatureVersion: 1 accepts RSA-SHA1 and RSA-SHA256 signatures (the topic's default is
    /// 1), 2 refuses SHA-1 (set the topic's `SignatureVersion` attribute to 2 first).
    pub min_signature_version: u8,
    /// A folder of pinned signing certificates (file name = the SigningCertURL's file name), used instead of
    /// fetching, for hosts without outbound access.
    pub cert_dir: Option<PathBuf>,
    /// Where signing certificates and SubscribeURLs are fetched from.
    pub certificates_from: CertificatesFrom,
    /// How subscriptions are confirmed.
    pub confirm: ConfirmMethod,
}

impl Default for SnsConfig {
    fn default() -> Self {
        Self {
            topic_arns: Vec::new(),
            max_age_secs: 3600,
            min_signature_version: 1,
            cert_dir: None,
            certificates_from: CertificatesFrom::Aws,
            confirm: ConfirmMethod::Api,
        }
    }
}

/// Where SNS signing certificates (and SubscribeURLs) are fetched from.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CertificatesFrom {
    /// The genuine SNS host named by the message, after the URL policy passed.
    #[default]
    Aws,
    /// The AWS emulator at `aws.endpoint_url` (moto), signed for service `sns`: for tests only, and refused
    /// unless that endpoint is a loopback address. Whoever runs the endpoint could sign SNS messages.
    Endpoint,
}

/// How a SubscriptionConfirmation is answered.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmMethod {
    /// GET the (validated) SubscribeURL. Anyone holding the subscription's UnsubscribeURL can then
    /// unsubscribe reflex.
    SubscribeUrl,
    /// Call the SNS ConfirmSubscription API with AuthenticateOnUnsubscribe=true (needs sns:ConfirmSubscription),
    /// so that only the topic owner can unsubscribe reflex.
    #[default]
    Api,
}

/// `[server]`: the listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to bind, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// `json` for one JSON object per log line, `text` for humans.
    pub log_format: LogFormat,
    /// Proxies whose `X-Forwarded-For` is believed for the audit's caller address; empty believes none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// PEM certificate chain; with `tls_key` it turns on HTTPS (SNS delivers only to HTTPS endpoints).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How often the certificate files are checked for a renewal, in seconds; 0 reloads on SIGHUP only.
    pub tls_reload_secs: u64,
    /// A client must send a request's headers (and a TLS handshake) within this many seconds, and a body
    /// may not stall longer; idle keep-alive connections are closed after it too. Cuts off slow clients
    /// that would hold connections.
    pub header_read_timeout_secs: u64,
    /// Waiting for a request's answer is bounded by this many seconds. A remediation still running then goes
    /// on to its end and its audit record; the caller gets 503 `still-running`.
    pub request_timeout_secs: u64,
    /// On SIGTERM, in-flight requests and remediations get this many seconds to finish before reflex exits.
    pub shutdown_grace_secs: u64,
    /// A request body must be complete within this many seconds in all, however it trickles in (408).
    pub body_timeout_secs: u64,
    /// Open connections at most; beyond it new connections wait in the kernel's queue until one closes.
    pub max_connections: usize,
    /// Requests handled at once at most; beyond it requests are answered 503 `overloaded` at once (SNS and
    /// Alertmanager retry), without reading their bodies.
    pub max_in_flight: usize,
    /// Reads of the audit trail (`GET /audit`, the audit page) handled at once at most; beyond it they are
    /// answered 503 `overloaded` at once. Probes and metrics are never capped.
    pub max_reads_in_flight: usize,
    /// The address operators reach reflex at (e.g. `https://reflex.example.com`): notifications link the
    /// audit record under it.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 256 * 1024,
            log_format: LogFormat::default(),
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_reload_secs: 10,
            header_read_timeout_secs: 10,
            request_timeout_secs: 60,
            shutdown_grace_secs: 30,
            body_timeout_secs: 30,
            max_connections: 1024,
            max_in_flight: 256,
            max_reads_in_flight: 32,
            public_url: None,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[aws]`: region, emulator endpoint and call timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// AWS region of the load balancers and instances.
    pub region: String,
    /// An AWS emulator endpoint (moto); unset for real AWS.
    pub endpoint_url: Option<String>,
    /// The AWS account id reflex runs in; unset (the default) learns it at start-up with STS
    /// GetCallerIdentity.
    pub account_id: Option<String>,
    /// Connect timeout for every AWS call, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Upper bound for one AWS operation including its retries, in milliseconds.
    pub operation_timeout_ms: u64,
    /// Attempts per AWS call (1 disables retries).
    pub max_attempts: u32,
    /// Static access key id; unset to use the standard credentials chain (recommended on AWS).
    pub access_key_id: Option<String>,
    /// Static secret access key, paired with `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// File holding the secret access key, instead of `secret_access_key`.
    pub secret_access_key_file: Option<PathBuf>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            endpoint_url: None,
            account_id: None,
            connect_timeout_ms: 2_000,
            operation_timeout_ms: 10_000,
            max_attempts: 3,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
        }
    }
}

impl AwsConfig {
    /// Connect timeout as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Operation timeout as a `Duration`.
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_millis(self.operation_timeout_ms)
    }
}

/// `[audit]`: the store URL and the readers' tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://...` (shared by replicas).
    pub url: String,
    /// File whose first line is the store URL, instead of `url`: a database URL holds a password, so it lives
    /// with the other secrets.
    pub url_file: Option<PathBuf>,
    /// Bearer tokens allowed to read `GET /audit`.
    pub tokens: Vec<Secret>,
    /// File holding one token per line, added to `tokens`.
    pub tokens_file: Option<PathBuf>,
    /// Records older than this many days are pruned (hourly while serving); 0 keeps everything.
    pub retain_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://reflex-audit.db".to_owned(),
            url_file: None,
            tokens: Vec::new(),
            tokens_file: None,
            retain_days: 90,
        }
    }
}

/// `[remediation]`: the safety limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RemediationConfig {
    /// Plan and report, never write to AWS.
    pub dry_run: bool,
    /// At most this many instances are replaced per run.
    pub max_terminations_per_run: usize,
    /// Refuse when more than this fraction of the balancer is unhealthy.
    pub max_unhealthy_fraction: f64,
    /// Refuse when fewer than this many instances are InService.
    pub min_in_service: usize,
    /// Instances launched less than this many seconds ago are never touched.
    pub grace_period_secs: u64,
    /// After a run that replaced instances, the same balancer is not acted on again for this many seconds.
    pub cooldown_secs: u64,
    /// Instances carrying this tag key are never touched.
    pub protect_tag: String,
    /// At most this many remediations run at once (over all targets); more are answered 503 `too-busy`,
    /// which SNS and Alertmanager retry. Bounds the AWS calls one burst of alerts can make.
    pub max_concurrent: usize,
    /// How far reflex may go on its own unless a target says otherwise: `observe` or `auto`.
    pub mode: Mode,
    /// Budget: at most this many instances acted on per target in any hour (across restarts and replicas).
    pub max_acted_per_hour: u32,
    /// Budget: at most this many instances acted on per target in any 24 hours.
    pub max_acted_per_day: u32,
    /// Budget: at most this many instances acted on over all targets in any hour.
    pub max_acted_per_hour_all: u32,
    /// Budget: at most this many instances acted on over all targets in any 24 hours.
    pub max_acted_per_day_all: u32,
    /// A target's breaker opens after this many consecutive runs that hit AWS errors.
    pub breaker_after_failures: u32,
    /// After a run acted, the target is checked again this many seconds later: recovered or not.
    pub verify_after_secs: u64,
    /// Speed limit: at most this fraction of a target's registered instances (rounded up, at least one) is
    /// acted on in any rolling hour, counted across runs, restarts and replicas; the rest is skipped
    /// `speed-limit`. Unlike the budgets, it scales with the fleet.
    pub max_removed_fraction_per_hour: f64,
    /// Instances that replaced broken ones and go unhealthy again within this many seconds of joining are a
    /// relapse: the cause is not the instances.
    pub relapse_window_secs: u64,
    /// This many relapses of one target within `relapse_window_secs` open its breaker (`relapsing`): nothing
    /// more is replaced until a person resets it.
    pub relapse_limit: u32,
    /// The action kinds' defaults (`action` for `replace`, `reboot_verify_secs` for `reboot`): every other key
    /// of the section. Each kind reads its own at start-up; a key no kind reads is refused then.
    #[serde(flatten)]
    pub kind_keys: toml::Table,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_terminations_per_run: 2,
            max_unhealthy_fraction: 0.5,
            min_in_service: 1,
            grace_period_secs: 300,
            cooldown_secs: 120,
            protect_tag: "reflex:protect".to_owned(),
            max_concurrent: 4,
            mode: Mode::Auto,
            max_acted_per_hour: 5,
            max_acted_per_day: 20,
            max_acted_per_hour_all: 20,
            max_acted_per_day_all: 50,
            breaker_after_failures: 3,
            verify_after_secs: 300,
            max_removed_fraction_per_hour: 0.34,
            relapse_window_secs: 3600,
            relapse_limit: 2,
            kind_keys: toml::Table::new(),
        }
    }
}

/// The name of the account reflex itself runs in, which needs no `[[accounts]]` entry.
pub const LOCAL_ACCOUNT: &str = "local";

/// `[[accounts]]`: another AWS account, reached through a role reflex assumes there (STS AssumeRole).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// How targets, alerts and the CLI name the account (`[[targets]] account`); not `local`.
    pub name: String,
    /// The role reflex assumes in that account: `arn:aws:iam::ACCOUNT:role/NAME`.
    pub role_arn: String,
    /// The external id the role's trust policy asks for (prefer `external_id_file`).
    #[serde(default)]
    pub external_id: Option<Secret>,
    /// File whose first line is the external id.
    #[serde(default)]
    pub external_id_file: Option<PathBuf>,
    /// How long assumed credentials last, in seconds (AWS allows 900 to the role's maximum).
    #[serde(default = "AccountConfig::default_session_duration")]
    pub session_duration_secs: u64,
    /// Credentials are assumed again this many seconds before they expire, never used past it.
    #[serde(default = "AccountConfig::default_refresh_before")]
    pub refresh_before_expiry_secs: u64,
    /// The regions reflex may act in there; empty: `aws.region` only.
    #[serde(default)]
    pub regions: Vec<String>,
    /// SNS topics in other accounts (a central topic) whose alarms may name this account. A topic in this
    /// account may always; no other may: publishing to an allowed topic is the power to remediate.
    #[serde(default)]
    pub sns_topic_arns: Vec<String>,
}

impl AccountConfig {
    fn default_session_duration() -> u64 {
        3600
    }

    fn default_refresh_before() -> u64 {
        300
    }

    /// The 12-digit account id in `role_arn` (validated at start-up), or `""` when it has none.
    pub fn account_id(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }

    /// Whether reflex may act in `region` of this account.
    pub fn allows(&self, region: &str, default_region: &str) -> bool {
        if self.regions.is_empty() {
            region == default_region
        } else {
            self.regions.iter().any(|allowed| allowed == region)
        }
    }
}

/// `[[targets]]`: one classic load balancer or one ELBv2 target group reflex may heal. An entry that names no
/// balancer is a place (account and region) and what serves it: a rule's (`RuleConfig::place`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TargetConfig {
    /// Classic ELB name (exactly one of `load_balancer` and `target_group` is set).
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// ALB/NLB target group, by ARN or by name (resolved at start-up); its targets must be instances.
    #[serde(default)]
    pub target_group: Option<String>,
    /// SNS topics whose non-alarm messages (or alarms without a balancer dimension) mean this target.
    #[serde(default)]
    pub sns_topic_arns: Vec<String>,
    /// The `[[accounts]]` name of the account the target is in; unset: `local`, the account reflex runs in.
    #[serde(default)]
    pub account: Option<String>,
    /// The region the target is in; unset: `aws.region`.
    #[serde(default)]
    pub region: Option<String>,
    /// This target's speed limit; unset uses `remediation.max_removed_fraction_per_hour`.
    #[serde(default)]
    pub max_removed_fraction_per_hour: Option<f64>,
    /// How far reflex may go on its own with this target; unset uses `remediation.mode`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Distinct approvers this target's held decisions need; unset uses `approvals.required`.
    #[serde(default)]
    pub approvals_required: Option<u32>,
    /// The action kinds tried in order, each only when the one before did not fix an instance: `reboot`, then
    /// `replace` (the target's `action`) or `isolate`; unset: `["replace"]`. Which names are kinds, and that
    /// only the last step takes the instance out of service, is checked against the registered kinds.
    #[serde(default)]
    pub ladder: Option<Vec<String>>,
    /// The action kinds' keys for this target (`action`, `reboot_verify_secs`), over `[remediation]`'s:
    /// every other key of the entry. Each kind reads its own at start-up; a key no kind reads is refused then.
    #[serde(flatten)]
    pub kind_keys: toml::Table,
}

impl TargetConfig {
    /// The name the target goes by in summaries, the audit trail and cooldowns: the load balancer's name or
    /// the target group as configured.
    pub fn name(&self) -> &str {
        self.load_balancer
            .as_deref()
            .or(self.target_group.as_deref())
            .unwrap_or_default()
    }

    /// The target's identity in `place` (its account id and region).
    pub fn id_in(&self, place: &crate::audit::Home) -> crate::target::TargetId {
        let kind = self.reference().target_kind();
        crate::target::TargetId::new(&place.account, &place.region, kind, self.name())
    }

    /// The `[[accounts]]` name of the account the target is in (`local` unless set).
    pub fn account_name(&self) -> &str {
        self.account.as_deref().unwrap_or(LOCAL_ACCOUNT)
    }

    /// The target as a reference of its kind.
    pub fn reference(&self) -> TargetRef {
        match (&self.load_balancer, &self.target_group) {
            (Some(name), _) => TargetRef::LoadBalancer(name.clone()),
            (None, group) => TargetRef::TargetGroup(group.clone().unwrap_or_default()),
        }
    }

    /// Whether an alert's reference names this target (target groups match by name, ARN or dimension value).
    pub fn is(&self, reference: &TargetRef) -> bool {
        crate::target::names(reference, &self.reference())
    }
}

/// How far reflex may go on its own with a target: the first steps of handing a fleet over.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every alert runs the whole pipeline up to the decision and records what would have been done
    /// (`would-act`), touching nothing.
    Observe,
    /// A run that decides to act holds its decision until approvers approve it (or it expires), then
    /// decides again and acts on what is still broken.
    Approve,
    /// Acts within the safety rules.
    #[default]
    Auto,
}

impl Mode {
    /// The mode's name, as configured and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Approve => "approve",
            Self::Auto => "auto",
        }
    }
}

/// A list of bearer tokens with its `_file` variant (`[manual]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Accepted bearer tokens; several allow rotation.
    pub tokens: Vec<Secret>,
    /// File holding one token per line, added to `tokens`.
    pub tokens_file: Option<PathBuf>,
}

impl Config {
    /// The configured target with this name (a load balancer's name or a target group as configured), when
    /// only one target has it.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        match self.targets_named(name, &Place::ANYWHERE, "").as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The configured targets named `name` in `place` (`home_account`: the account id reflex runs in, or
    /// `""` when it is not known yet).
    pub fn targets_named(
        &self,
        name: &str,
        place: &Place,
        home_account: &str,
    ) -> Vec<&TargetConfig> {
        self.targets
            .iter()
            .filter(|target| target.name() == name && self.is_in(target, place, home_account))
            .collect()
    }

    /// The `[[accounts]]` entry of `name` (`None` for `local` or an unknown name).
    pub fn account(&self, name: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|account| account.name == name)
    }

    /// Where `target` is: its account's id (the local account's is `home_account`) and its region.
    pub fn place_of(&self, target: &TargetConfig, home_account: &str) -> crate::audit::Home {
        let account = match self.account(target.account_name()) {
            Some(account) => account.account_id().to_owned(),
            None => home_account.to_owned(),
        };
        crate::audit::Home {
            account,
            region: self.region_of(target).to_owned(),
        }
    }

    /// Every place reflex acts in: the local account in `aws.region`, each target's and rule's place, and
    /// each `[[accounts]]` entry in each region it lists (`aws.region` when it lists none); the local
    /// account's id is `home_account`.
    pub fn places(&self, home_account: &str) -> Vec<crate::audit::Home> {
        let home = crate::audit::Home {
            account: home_account.to_owned(),
            region: self.aws.region.clone(),
        };
        let configured = self.targets.iter().map(|t| self.place_of(t, home_account));
        let rules = self
            .rules
            .iter()
            .map(|rule| self.place_of(&rule.place(), home_account));
        let accounts = self.accounts.iter().flat_map(|account| {
            let regions = if account.regions.is_empty() {
                std::slice::from_ref(&self.aws.region)
            } else {
                account.regions.as_slice()
            };
            regions.iter().map(|region| crate::audit::Home {
                account: account.account_id().to_owned(),
                region: region.clone(),
            })
        });
        let mut places: Vec<crate::audit::Home> = std::iter::once(home)
            .chain(configured)
            .chain(rules)
            .chain(accounts)
            .collect();
        places.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        places.dedup();
        places
    }

    /// Where `target` is, as its configuration names it: its account's name and its region.
    pub fn place_named(&self, target: &TargetConfig) -> Place {
        Place::new(
            Some(target.account_name().to_owned()),
            Some(self.region_of(target).to_owned()),
        )
    }

    /// The region of `target`: its own, else `aws.region`.
    pub fn region_of<'a>(&'a self, target: &'a TargetConfig) -> &'a str {
        target.region.as_deref().unwrap_or(&self.aws.region)
    }

    /// The identity of `rule`, served as a target in the account and region it acts in; the local account's
    /// id is `home_account`.
    pub fn rule_id(&self, rule: &RuleConfig, home_account: &str) -> crate::target::TargetId {
        let place = self.place_of(&rule.place(), home_account);
        crate::target::TargetId::new(
            place.account,
            place.region,
            crate::target::TargetKind::Rule,
            &rule.name,
        )
    }

    /// The identity of `target`; the local account's id is `home_account`.
    pub fn target_id(&self, target: &TargetConfig, home_account: &str) -> crate::target::TargetId {
        target.id_in(&self.place_of(target, home_account))
    }

    /// Whether `target` is in `place`: the account as named (`[[accounts]]` name or account id) and the
    /// region, each when given. With the local account's id not known (`home_account` empty), an account id
    /// that is none of `[[accounts]]`' is taken to be the local one.
    pub fn is_in(&self, target: &TargetConfig, place: &Place, home_account: &str) -> bool {
        let region_matches = place
            .region
            .as_deref()
            .is_none_or(|region| region == self.region_of(target));
        let account_matches = place.account.as_deref().is_none_or(|wanted| {
            let name = target.account_name();
            if wanted == name {
                return true;
            }
            match self.account(name) {
                Some(account) => account.account_id() == wanted,
                None if !home_account.is_empty() => wanted == home_account,
                None => {
                    crate::target::is_account_id(wanted)
                        && !self.accounts.iter().any(|a| a.account_id() == wanted)
                }
            }
        });
        region_matches && account_matches
    }

    /// How far reflex may go on its own with `target`: its own mode, else the default.
    pub fn mode_of(&self, target: &TargetConfig) -> Mode {
        target.mode.unwrap_or(self.remediation.mode)
    }

    /// How many distinct approvers `target`'s held decisions need: its own, else the default.
    pub fn approvals_required_of(&self, target: &TargetConfig) -> u32 {
        target.approvals_required.unwrap_or(self.approvals.required)
    }

    /// The action kinds `target` tries in order: its own ladder, else replacement only.
    pub fn ladder_of(&self, target: &TargetConfig) -> Vec<String> {
        target
            .ladder
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_STEP.to_owned()])
    }

    /// The action kinds' keys of `target`: its own, over `[remediation]`'s.
    pub fn kind_keys_of<'a>(&'a self, target: &'a TargetConfig) -> crate::engine::keys::Keys<'a> {
        crate::engine::keys::Keys::new(&target.kind_keys, &self.remediation.kind_keys)
    }

    /// The fraction of `target`'s instances that may be acted on in an hour: its own, else the default.
    pub fn removed_fraction_of(&self, target: &TargetConfig) -> f64 {
        target
            .max_removed_fraction_per_hour
            .unwrap_or(self.remediation.max_removed_fraction_per_hour)
    }
}
