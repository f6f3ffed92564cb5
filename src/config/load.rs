//! Reading, overriding and validating the configuration.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{AccountConfig, Config, NotifyConfig, Secret};

/// Why a configuration cannot be used; each message names the key or file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key or wrong type.
    #[error("invalid config: {0}")]
    Syntax(String),
    /// A value is present but unusable.
    #[error("invalid config: `{key}` {problem}")]
    Invalid {
        /// The dotted key, e.g. `remediation.max_unhealthy_fraction`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// The prefix of environment overrides: `REFLEX_AWS_REGION=eu-west-1` sets `aws.region`.
const ENV_PREFIX: &str = "REFLEX_";
const SECTIONS: &[&str] = &[
    "server",
    "aws",
    "audit",
    "remediation",
    "manual",
    "sns",
    "alertmanager",
    "grafana",
    "admin",
    "approvals",
    "slack",
];

/// Reads `path`, applies the process environment's overrides, resolves secrets files and validates.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, std::env::vars())
}

/// Parses configuration text with the given environment overrides, then resolves secrets files and validates.
pub fn parse(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| ConfigError::Syntax(err.to_string()))?;
    let overrides = apply_env_overrides(&mut table, env);
    let mut config: Config = table.try_into().map_err(|err: toml::de::Error| {
        ConfigError::Syntax(redacted(&err.to_string(), &overrides))
    })?;
    resolve_secret_files(&mut config)?;
    config.validate()?;
    Ok(config)
}

/// `message` with the value of every override in `overrides` (variable, value) replaced by the variable's name:
/// an override may hold a secret (a token), and an error must never print one.
fn redacted(message: &str, overrides: &[(String, String)]) -> String {
    let mut message = message.to_owned();
    let mut named = Vec::new();
    for (name, value) in overrides {
        // As serde quotes a string in an error (escaped), and as the value was given.
        let quoted = format!("\"{}\"", value.escape_debug());
        let mut hit = false;
        for form in [quoted.as_str(), value.as_str()] {
            if form.len() >= 4 && message.contains(form) {
                message = message.replace(form, &format!("<the value of {name}>"));
                hit = true;
            }
        }
        if hit {
            named.push(name.as_str());
        }
    }
    if !named.is_empty() {
        message.push_str(&format!(" (set by {})", named.join(", ")));
    }
    message
}

/// `REFLEX_<SECTION>_<KEY>=value` sets `<section>.<key>`; the value is read as a TOML literal when it is one
/// (number, boolean, array) and as a string otherwise. Returns the overrides applied (variable, value).
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|section| {
            rest.strip_prefix(section)
                .and_then(|tail| tail.strip_prefix('_'))
                .map(|key| (*section, key.to_owned()))
        }) else {
            continue;
        };
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let entry = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(section_table) = entry {
            section_table.insert(key, parsed);
            applied.push((name, value));
        }
    }
    applied
}

/// Reads every `*_file` setting of the configuration into the secret it stands for.
fn resolve_secret_files(config: &mut Config) -> Result<(), ConfigError> {
    if let Some(file) = &config.aws.secret_access_key_file {
        let mut keys = Vec::new();
        append_tokens_file("aws.secret_access_key_file", Some(file), &mut keys)?;
        config.aws.secret_access_key = keys.into_iter().next();
    }
    append_tokens_file(
        "manual.tokens_file",
        config.manual.tokens_file.as_deref(),
        &mut config.manual.tokens,
    )?;
    if let Some(file) = &config.audit.url_file {
        let mut urls = Vec::new();
        append_tokens_file("audit.url_file", Some(file), &mut urls)?;
        config.audit.url = urls
            .first()
            .map(|url| url.expose().to_owned())
            .ok_or_else(|| ConfigError::Invalid {
                key: "audit.url_file".into(),
                problem: format!("names {}, which is empty", file.display()),
            })?;
    }
    append_tokens_file(
        "admin.tokens_file",
        config.admin.tokens_file.as_deref(),
        &mut config.admin.tokens,
    )?;
    append_tokens_file(
        "approvals.tokens_file",
        config.approvals.tokens_file.as_deref(),
        &mut config.approvals.tokens,
    )?;
    if let Some(file) = config.slack.signing_secret_file.clone() {
        let mut secrets = Vec::new();
        append_tokens_file("slack.signing_secret_file", Some(&file), &mut secrets)?;
        config.slack.signing_secret = secrets.into_iter().next();
    }
    resolve_account_files(&mut config.accounts)?;
    resolve_notify_files(&mut config.notify)?;
    append_tokens_file(
        "audit.tokens_file",
        config.audit.tokens_file.as_deref(),
        &mut config.audit.tokens,
    )?;
    resolve_webhook_files(config)
}

/// Reads each account's `external_id_file`, refused beside an `external_id` or when empty.
fn resolve_account_files(accounts: &mut [AccountConfig]) -> Result<(), ConfigError> {
    for account in accounts.iter_mut() {
        if let Some(file) = account.external_id_file.clone() {
            if account.external_id.is_some() {
                return Err(ConfigError::Invalid {
                    key: "accounts.external_id".into(),
                    problem: format!(
                        "of account {:?} is set together with external_id_file: keep one",
                        account.name
                    ),
                });
            }
            let mut ids = Vec::new();
            append_tokens_file("accounts.external_id_file", Some(&file), &mut ids)?;
            account.external_id =
                Some(ids.into_iter().next().ok_or_else(|| ConfigError::Invalid {
                    key: "accounts.external_id_file".into(),
                    problem: format!("names {}, which is empty", file.display()),
                })?);
        }
    }
    Ok(())
}

/// Reads each notification's `url_file` and `routing_key_file`; a PagerDuty one without a URL gets the
/// Events API's.
fn resolve_notify_files(notifications: &mut [NotifyConfig]) -> Result<(), ConfigError> {
    for (index, notify) in notifications.iter_mut().enumerate() {
        if let Some(file) = notify.url_file.clone() {
            let mut urls = Vec::new();
            append_tokens_file(&format!("notify[{index}].url_file"), Some(&file), &mut urls)?;
            notify.url = urls.into_iter().next();
        }
        if let Some(file) = notify.routing_key_file.clone() {
            let mut keys = Vec::new();
            let key = format!("notify[{index}].routing_key_file");
            append_tokens_file(&key, Some(&file), &mut keys)?;
            notify.routing_key = keys.into_iter().next();
        }
        if notify.format == super::NotifyFormat::Pagerduty && notify.url.is_none() {
            notify.url = Some(super::Secret::new(super::PAGERDUTY_EVENTS_URL));
        }
    }
    Ok(())
}

/// Reads the Alertmanager and Grafana webhooks' tokens, passwords and HMAC secret files.
fn resolve_webhook_files(config: &mut Config) -> Result<(), ConfigError> {
    for (section, hook) in [
        ("alertmanager", &mut config.alertmanager),
        ("grafana", &mut config.grafana),
    ] {
        let key = |name: &str| format!("{section}.{name}");
        append_tokens_file(
            &key("tokens_file"),
            hook.tokens_file.as_deref(),
            &mut hook.tokens,
        )?;
        append_tokens_file(
            &key("passwords_file"),
            hook.passwords_file.as_deref(),
            &mut hook.passwords,
        )?;
        if let Some(file) = hook.hmac_secret_file.clone() {
            let mut secrets = Vec::new();
            append_tokens_file(&key("hmac_secret_file"), Some(&file), &mut secrets)?;
            hook.hmac_secret = secrets.into_iter().next();
        }
    }
    Ok(())
}

/// Adds one token per non-empty line of `file` to `tokens`.
/// The largest secrets file read.
const SECRETS_FILE_MAX: u64 = 64 * 1024;

fn append_tokens_file(
    key: &str,
    file: Option<&Path>,
    tokens: &mut Vec<Secret>,
) -> Result<(), ConfigError> {
    let Some(file) = file else { return Ok(()) };
    let invalid = |problem: String| ConfigError::Invalid {
        key: key.to_owned(),
        problem,
    };
    // A secrets file is small: read at most a little more than the limit, so that a wrong path (a device, a
    // log) fails at once instead of filling memory.
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|opened| opened.take(SECRETS_FILE_MAX + 1).read_to_string(&mut text))
        .map_err(|err| {
            invalid(format!(
                "names {} which cannot be read: {err}",
                file.display()
            ))
        })?;
    if text.len() as u64 > SECRETS_FILE_MAX {
        return Err(invalid(format!(
            "names {}, which is larger than {SECRETS_FILE_MAX} bytes: not a secrets file",
            file.display()
        )));
    }
    tokens.extend(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(Secret::new),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[[targets]]\nload_balancer = \"web-elb\"\n";

    fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        parse(
            text,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn the_example_file_is_valid() {
        parse_with(super::super::EXAMPLE, &[]).expect("example config must validate");
    }

    #[test]
    fn defaults_fill_everything_but_targets() {
        let config = parse_with(MINIMAL, &[]).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.remediation.max_terminations_per_run, 2);
        assert_eq!(config.remediation.max_removed_fraction_per_hour, 0.34);
        assert_eq!(config.removed_fraction_of(&config.targets[0]), 0.34);
        assert_eq!(config.audit.url, "sqlite://reflex-audit.db");
        assert!(config.manual.tokens.is_empty());
    }

    #[test]
    fn environment_overrides_typed_values() {
        let config = parse_with(
            MINIMAL,
            &[
                ("REFLEX_AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("REFLEX_REMEDIATION_DRY_RUN", "true"),
                ("REFLEX_REMEDIATION_MAX_TERMINATIONS_PER_RUN", "5"),
                ("REFLEX_MANUAL_TOKENS", "[\"0123456789abcdef0\"]"),
                ("REFLEX_CONFIG", "/ignored"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert!(config.remediation.dry_run);
        assert_eq!(config.remediation.max_terminations_per_run, 5);
        assert_eq!(config.manual.tokens.len(), 1);
    }

    #[test]
    fn tokens_file_adds_one_token_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "aaaaaaaaaaaaaaaa1\n\n  bbbbbbbbbbbbbbbb2  \n").unwrap();
        let text = format!("{MINIMAL}[manual]\ntokens_file = {:?}\n", file);
        let config = parse_with(&text, &[]).unwrap();
        assert!(config.manual.tokens[1].matches(b"bbbbbbbbbbbbbbbb2"));
        assert_eq!(config.manual.tokens.len(), 2);
    }

    #[test]
    fn the_store_url_can_come_from_a_file_set_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit-url");
        std::fs::write(&file, "postgres://reflex:pw@db:5432/reflex\n").unwrap();
        let config = parse_with(
            MINIMAL,
            &[("REFLEX_AUDIT_URL_FILE", file.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(config.audit.url, "postgres://reflex:pw@db:5432/reflex");
        std::fs::write(&file, "\n").unwrap();
        let text = format!("{MINIMAL}[audit]\nurl_file = {file:?}\n");
        let err = parse_with(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("audit.url_file"), "{err}");
    }

    #[test]
    fn rejects_with_the_key_named() {
        let cases: &[(&str, &str)] = &[
            ("", "targets"),
            (
                "[remediation]\nmax_unhealthy_fraction = 1.5\n",
                "remediation.max_unhealthy_fraction",
            ),
            (
                "[remediation]\nmax_terminations_per_run = 0\n",
                "remediation.max_terminations_per_run",
            ),
            (
                "[remediation]\nmax_removed_fraction_per_hour = 0.0\n",
                "remediation.max_removed_fraction_per_hour",
            ),
            (
                "[[targets]]\nload_balancer = \"api\"\nmax_removed_fraction_per_hour = 1.5\n",
                "targets.max_removed_fraction_per_hour",
            ),
            ("[aws]\nendpoint_url = \"ftp://x\"\n", "aws.endpoint_url"),
            (
                "[server]\ntls_cert = \"/etc/hostname\"\n",
                "server.tls_cert / server.tls_key",
            ),
            (
                "[server]\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/etc/hostname\"\n",
                "server.tls_cert",
            ),
            (
                "[server]\nheader_read_timeout_secs = 0\n",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nrequest_timeout_secs = 0\n",
                "server.request_timeout_secs",
            ),
            (
                "[server]\nshutdown_grace_secs = 0\n",
                "server.shutdown_grace_secs",
            ),
            (
                "[remediation]\nmax_concurrent = 0\n",
                "remediation.max_concurrent",
            ),
            ("[audit]\nurl = \"mysql://x\"\n", "audit.url"),
            ("[remediation]\nmode = \"approve\"\n", "targets.mode"),
            (
                "[remediation]\nmode = \"approve\"\n[approvals]\nrequired = 2\ntokens = [\"approver-0123456789abcdef\"]\n",
                "targets.mode",
            ),
            (
                "[manual]\ntokens = [\"shared-0123456789abcdef\"]\n[approvals]\ntokens = [\"shared-0123456789abcdef\"]\n",
                "approvals.tokens",
            ),
            (
                "[alertmanager]\ntokens = [\"shared-0123456789abcdef\"]\n[approvals]\ntokens = [\"shared-0123456789abcdef\"]\n",
                "approvals.tokens",
            ),
            (
                "[grafana]\nusername = \"grafana\"\npasswords = [\"shared-0123456789abcdef\"]\n\
                 [approvals]\ntokens = [\"shared-0123456789abcdef\"]\n",
                "approvals.tokens",
            ),
            ("[approvals]\nttl_secs = 0\n", "approvals.ttl_secs"),
            ("[approvals]\nrequired = 6\n", "approvals.required"),
            ("[slack]\napprovers = [\"U0123ABCD\"]\n", "slack.approvers"),
            (
                "[slack]\nsigning_secret = \"0123456789abcdef\"\napprovers = [\"alice\"]\n",
                "slack.approvers",
            ),
            ("[manual]\ntokens = [\"short\"]\n", "manual.tokens"),
            ("[sns]\ntopic_arns = [\"alarms\"]\n", "sns.topic_arns"),
            ("[sns]\ncert_dir = \"/nonexistent\"\n", "sns.cert_dir"),
            (
                "[alertmanager]\ndefault_target = \"db\"\n",
                "alertmanager.default_target",
            ),
            (
                "[alertmanager]\nhmac_secret = \"0123456789abcdef0\"\n",
                "alertmanager.hmac_secret",
            ),
            (
                "[grafana]\npasswords = [\"0123456789abcdef0\"]\n",
                "grafana.username",
            ),
            (
                "[grafana]\nhmac_secret = \"short\"\n",
                "grafana.hmac_secret",
            ),
            (
                "[manual]\ntokens_file = \"/nonexistent/x\"\n",
                "manual.tokens_file",
            ),
            (
                "[manual]\ntokens_file = \"/dev/zero\"\n",
                "manual.tokens_file",
            ),
            (
                "[grafana]\nhmac_secret = \"0123456789abcdef0\"\ntimestamp_header = \"\"\n",
                "grafana.timestamp_header",
            ),
            (
                "[sns]\nmin_signature_version = 3\n",
                "sns.min_signature_version",
            ),
            (
                "[sns]\ncertificates_from = \"endpoint\"\n",
                "sns.certificates_from",
            ),
            (
                "[aws]\nendpoint_url = \"https://vpce-0a1b.sns.us-east-1.vpce.amazonaws.com\"\n\
                 [sns]\ncertificates_from = \"endpoint\"\n",
                "sns.certificates_from",
            ),
            (
                "[[targets]]\nload_balancer = \"web-elb\"\n",
                "targets.load_balancer",
            ),
            (
                "[[targets]]\nload_balancer = \"api\"\ntarget_group = \"api-tg\"\n",
                "targets.target_group",
            ),
            ("[[targets]]\naction = \"auto\"\n", "targets.load_balancer"),
            (
                "[[targets]]\ntarget_group = \"not a name\"\n",
                "targets.target_group",
            ),
            (
                "[[targets]]\ntarget_group = \"web-tg\"\n[[targets]]\ntarget_group = \
                 \"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef\"\n",
                "targets.target_group",
            ),
            (
                // One name for a classic balancer and a target group: the store keys targets by name.
                "[[targets]]\nload_balancer = \"web\"\n[[targets]]\ntarget_group = \"web\"\n",
                "targets.target_group",
            ),
            (
                "[[targets]]\ntarget_group = \
                 \"arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-tg/0123456789abcdef\"\n",
                "targets.target_group",
            ),
            (
                "[[targets]]\nload_balancer = \"api\"\naccount = \"prod\"\n",
                "targets.account",
            ),
            (
                "[[accounts]]\nname = \"local\"\nrole_arn = \"arn:aws:iam::222233334444:role/r\"\n",
                "accounts.name",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::2222:role/r\"\n",
                "accounts.role_arn",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:user/r\"\n",
                "accounts.role_arn",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 [[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::333344445555:role/a\"\n",
                "accounts.name",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 [[accounts]]\nname = \"other\"\nrole_arn = \"arn:aws:iam::222233334444:role/b\"\n",
                "accounts.role_arn",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 session_duration_secs = 60\n",
                "accounts.session_duration_secs",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 session_duration_secs = 900\nrefresh_before_expiry_secs = 900\n",
                "accounts.refresh_before_expiry_secs",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 [[targets]]\nload_balancer = \"api\"\naccount = \"prod\"\nregion = \"eu-west-1\"\n",
                "targets.region",
            ),
            (
                "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/a\"\n\
                 [[targets]]\ntarget_group = \
                 \"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef\"\n\
                 account = \"prod\"\n",
                "targets.target_group",
            ),
            (
                "[[targets]]\nload_balancer = \"web-elb\"\nregion = \"us-east-1\"\n",
                "targets.load_balancer",
            ),
            (
                "[alertmanager]\ntarget_group_label = \"\"\n",
                "alertmanager.target_group_label",
            ),
        ];
        for (extra, key) in cases {
            let text = if *key == "targets" {
                extra.to_string()
            } else {
                format!("{MINIMAL}{extra}")
            };
            let err = parse_with(&text, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{extra:?}: {err}");
        }
    }

    #[test]
    fn one_name_in_several_accounts_and_regions_is_several_targets() {
        let text = format!(
            "{MINIMAL}[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/reflex\"\n\
             regions = [\"eu-west-1\", \"us-east-1\"]\n\
             [[targets]]\nload_balancer = \"web-elb\"\naccount = \"prod\"\n\
             [[targets]]\nload_balancer = \"web-elb\"\naccount = \"prod\"\nregion = \"eu-west-1\"\n"
        );
        let config = parse_with(&text, &[]).unwrap();
        let ids: Vec<_> = config
            .targets
            .iter()
            .map(|target| config.target_id(target, "111122223333"))
            .map(|id| (id.account, id.region))
            .collect();
        assert_eq!(
            ids,
            [
                ("111122223333".to_owned(), "us-east-1".to_owned()),
                ("222233334444".to_owned(), "us-east-1".to_owned()),
                ("222233334444".to_owned(), "eu-west-1".to_owned()),
            ]
        );
        // A name shared by several targets names no single one.
        assert!(config.target("web-elb").is_none());
        let prod = crate::target::Place::new(Some("prod".into()), None);
        assert_eq!(config.targets_named("web-elb", &prod, "").len(), 2);
        let by_id =
            crate::target::Place::new(Some("222233334444".into()), Some("eu-west-1".into()));
        assert_eq!(config.targets_named("web-elb", &by_id, "").len(), 1);
        // With the local account's id unknown, an id that is no [[accounts]] entry's is the local one.
        let local = crate::target::Place::new(Some("999988887777".into()), None);
        assert_eq!(config.targets_named("web-elb", &local, "").len(), 1);
        assert_eq!(
            config
                .targets_named("web-elb", &local, "111122223333")
                .len(),
            0
        );
    }

    #[test]
    fn an_external_id_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("external-id");
        std::fs::write(&file, "the-external-id-0123\n").unwrap();
        let text = format!(
            "{MINIMAL}[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/reflex\"\n\
             external_id_file = {file:?}\n"
        );
        let config = parse_with(&text, &[]).unwrap();
        assert_eq!(
            config.accounts[0]
                .external_id
                .as_ref()
                .map(|id| id.expose().to_owned()),
            Some("the-external-id-0123".to_owned())
        );
    }

    #[test]
    fn a_target_watches_or_acts_as_its_mode_says_and_auto_is_the_default() {
        use crate::config::Mode;
        let config = parse_with(MINIMAL, &[]).unwrap();
        assert_eq!(config.mode_of(&config.targets[0]), Mode::Auto);
        let text = format!("[remediation]\nmode = \"observe\"\n{MINIMAL}");
        let config = parse_with(&text, &[]).unwrap();
        assert_eq!(config.mode_of(&config.targets[0]), Mode::Observe);
        let text = format!("[remediation]\nmode = \"observe\"\n{MINIMAL}mode = \"auto\"\n");
        let config = parse_with(&text, &[]).unwrap();
        assert_eq!(config.mode_of(&config.targets[0]), Mode::Auto);
        let err = parse_with(&format!("[remediation]\nmode = \"yolo\"\n{MINIMAL}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("observe") && err.contains("auto"), "{err}");
    }

    #[test]
    fn safe_sns_defaults_and_an_emulator_only_on_loopback() {
        let config = parse_with(MINIMAL, &[]).unwrap();
        assert_eq!(config.sns.confirm, crate::config::ConfirmMethod::Api);
        assert_eq!(
            config.sns.certificates_from,
            crate::config::CertificatesFrom::Aws
        );
        assert_eq!(config.sns.min_signature_version, 1);
        for endpoint in [
            "http://127.0.0.1:5000",
            "http://localhost:5000",
            "http://[::1]:5000",
        ] {
            let text = format!(
                "{MINIMAL}[aws]\nendpoint_url = \"{endpoint}\"\n[sns]\ncertificates_from = \"endpoint\"\n"
            );
            parse_with(&text, &[]).unwrap_or_else(|err| panic!("{endpoint}: {err}"));
        }
    }

    #[test]
    fn an_override_of_the_wrong_type_is_named_by_its_variable_and_its_value_never_printed() {
        for token in ["bare-token-0123456789abcdef", r#"odd"token\0123456789"#] {
            let err = parse_with(MINIMAL, &[("REFLEX_APPROVALS_TOKENS", token)])
                .unwrap_err()
                .to_string();
            assert!(!err.contains("0123456789"), "{err}");
            assert!(err.contains("REFLEX_APPROVALS_TOKENS"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = parse_with(&format!("{MINIMAL}[server]\nlisten_adress = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_adress"), "{err}");
    }

    #[test]
    fn a_ladder_names_each_step_once_and_replacement_alone_is_the_default() {
        let config = parse_with(MINIMAL, &[]).unwrap();
        assert_eq!(config.ladder_of(&config.targets[0]), ["replace"]);
        let text = format!("{MINIMAL}ladder = [\"reboot\", \"replace\"]\n");
        let config = parse_with(&text, &[]).unwrap();
        assert_eq!(config.ladder_of(&config.targets[0]), ["reboot", "replace"]);
        for (ladder, says) in [
            ("[]", "[\"reboot\", \"replace\"]"),
            ("[\"reboot\", \"reboot\"]", "\"reboot\" twice"),
        ] {
            let err = parse_with(&format!("{MINIMAL}ladder = {ladder}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("targets.ladder") && err.contains(says),
                "{err}"
            );
        }
        for (section, key) in [
            (
                "[remediation]\nrelapse_limit = 0\n",
                "remediation.relapse_limit",
            ),
            (
                "[remediation]\nrelapse_window_secs = 0\n",
                "remediation.relapse_window_secs",
            ),
        ] {
            let err = parse_with(&format!("{section}{MINIMAL}"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn a_rule_acts_in_a_known_account_and_a_region_that_account_lists() {
        let accounts = "[[accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::222233334444:role/r\"\n\
                        regions = [\"eu-west-1\"]\n";
        let rule = |place: &str| {
            format!("{accounts}[[rules]]\nname = \"r\"\nladder = [\"reboot\"]\n{place}")
        };
        let config =
            parse_with(&rule("account = \"prod\"\nregion = \"eu-west-1\"\n"), &[]).unwrap();
        let id = config.rule_id(&config.rules[0], "123456789012");
        assert_eq!(
            (id.account.as_str(), id.region.as_str()),
            ("222233334444", "eu-west-1")
        );
        let config = parse_with(&rule(""), &[]).unwrap();
        let id = config.rule_id(&config.rules[0], "123456789012");
        assert_eq!(
            (id.account.as_str(), id.region.as_str()),
            ("123456789012", "us-east-1")
        );
        for (place, key, says) in [
            (
                "account = \"stage\"\n",
                "rules.account",
                "neither \"local\" nor",
            ),
            (
                "account = \"prod\"\nregion = \"us-east-1\"\n",
                "rules.region",
                "does not list",
            ),
            ("account = \"prod\"\n", "rules.region", "does not list"),
            (
                "region = \" \"\n",
                "rules.region",
                "must name an AWS region",
            ),
        ] {
            let err = parse_with(&rule(place), &[]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{place}: {err}");
        }
    }

    #[test]
    fn a_pagerduty_entry_needs_its_routing_key_and_escalations_and_posts_to_pagerduty_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("routing-key");
        std::fs::write(&key, "R0UTING0123456789\n").unwrap();
        let text = format!(
            "{MINIMAL}[[notify]]\nformat = \"pagerduty\"\nrouting_key_file = {key:?}\nevents = [\"escalated\", \"resolved\"]\n"
        );
        let config = parse_with(&text, &[]).unwrap();
        let notify = &config.notify[0];
        assert_eq!(
            notify.url.as_ref().map(|u| u.expose()),
            Some(crate::config::PAGERDUTY_EVENTS_URL)
        );
        assert_eq!(
            notify.routing_key.as_ref().map(|k| k.expose()),
            Some("R0UTING0123456789")
        );
        assert!(
            !format!("{notify:?}").contains("R0UTING"),
            "the key is redacted"
        );
        let err = parse_with(
            &format!("{MINIMAL}[[notify]]\nformat = \"pagerduty\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("notify[0].routing_key"), "{err}");
        let err = parse_with(
            &format!("{MINIMAL}[[notify]]\nformat = \"pagerduty\"\nrouting_key_file = {key:?}\nevents = [\"acted\"]\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("notify[0].events") && err.contains("escalated"),
            "{err}"
        );
        let err = parse_with(
            &format!("{MINIMAL}[[notify]]\nurl = \"https://hooks.example/x\"\nrouting_key_file = {key:?}\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("notify[0].routing_key"), "{err}");
    }
}
