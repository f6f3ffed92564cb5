//! `webhook`: a signed HTTPS POST to a service of the operator's that heals what reflex cannot reach (a
//! deploy pipeline, an on-call tool, a runbook runner). It acts once on the whole target, with a JSON body
//! rendered from a template over the run (`run`, `step`, `target`, `instances`, `action`), and signs it as
//! reflex's own receivers check Grafana: lowercase hex HMAC-SHA256 over `<unix seconds>:<body>`, in
//! `X-Reflex-Signature`, the seconds in `X-Reflex-Timestamp`. `Idempotency-Key` is the run (its first attempt,
//! which a takeover keeps) and the step (`<run>/<step>`): the same on every retry and after a takeover, so the
//! receiver can act once. A 2xx is done; a 5xx, a 408, a 429 or no answer in `timeout_secs` is sent again by the
//! step's check (a durable job) until it is answered; any other answer fails the step, and the ladder moves on.
//! Redirects are not followed. The URL (which may carry a token) and the signing secret are read at start-up
//! (from files, or the URL inline), and only the URL's origin is ever written to a record or log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, Output, State};

use crate::config::Secret;
use crate::engine::AlertNames;
use crate::engine::action::{
    Action, ActsOn, Arguments, ArgumentsRefused, Effect, Judged, On, Polled, Started,
};
use crate::engine::keys::{KeyError, Keys};
use crate::engine::plan::SkipReason;
use crate::engine::port::{BoxFuture, FailureKind, FleetError, InstanceView, current_run};

/// The kind's name, and the call it makes.
const NAME: &str = "webhook";
const CALL: &str = "post";
/// The operation its errors name.
const OPERATION: &str = "POST";
/// The headers it signs with.
pub const SIGNATURE_HEADER: &str = "X-Reflex-Signature";
/// See `SIGNATURE_HEADER`.
pub const TIMESTAMP_HEADER: &str = "X-Reflex-Timestamp";
/// How long an answer is waited for, unless `timeout_secs` says otherwise.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the call the instances are checked, unless `verify_secs` says otherwise.
const VERIFY_AFTER: Duration = Duration::from_secs(60);
/// The most a body's render may do (MiniJinja's fuel), and the longest body.
const FUEL: u64 = 20_000;
const BODY_MAX: usize = 64 * 1024;
/// The largest URL or secret file read.
const FILE_MAX: u64 = 16 * 1024;
/// The variables a body template may read.
const VARIABLES: [&str; 6] = ["run", "step", "target", "instances", "action", "alert"];
/// The most names of the run's alert a body is given (`alert`), each value bounded.
const ALERT_NAMES_MAX: usize = 32;
/// The body sent when the entry writes none.
const DEFAULT_BODY: &str = r#"{"run": {{ run|tojson }}, "step": {{ step|tojson }}, "target": {{ target|tojson }}, "instances": {{ instances|tojson }}}"#;
/// The keys an entry may set.
const KEYS: &[&str] = &[
    "url",
    "url_file",
    "secret_file",
    "body",
    "timeout_secs",
    "verify_secs",
];

/// The `webhook` action kind: unset until an `[[actions]]` entry sets it.
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    settings: Option<Arc<Settings>>,
}

/// What an `[[actions]]` entry of the kind sets.
#[derive(Debug)]
struct Settings {
    /// The URL, which may hold a token: never written anywhere.
    url: Secret,
    /// The URL's scheme, host and port: all that records and logs name.
    origin: String,
    secret: Secret,
    body: String,
    verify_after: Duration,
    client: reqwest::Client,
}

/// What one delivery came to.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Answered 2xx, with this status.
    Delivered(u16),
    /// Worth sending again: why not now.
    Again(String),
    /// Refused: the receiver's answer.
    Refused(u16),
}

impl Webhook {
    fn settings(&self) -> Result<&Settings, FleetError> {
        self.settings.as_deref().ok_or_else(|| {
            FleetError::new(
                FailureKind::Permanent,
                OPERATION,
                None,
                "webhook runs only as an [[actions]] entry with its URL and secret",
            )
        })
    }
}

impl Action for Webhook {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verb(&self) -> &'static str {
        "call the webhook for"
    }

    fn done(&self) -> &'static str {
        "called the webhook for"
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
        &[]
    }

    fn described(&self) -> String {
        match &self.settings {
            Some(settings) => format!("{NAME} to {}", settings.origin),
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

    fn whole_target_call(&self) -> Option<&'static str> {
        Some(CALL)
    }

    fn named_arguments(&self, named: &AlertNames, _: bool) -> Result<Arguments, ArgumentsRefused> {
        // What the rule's alert named is the body's `alert`, bounded: it is the receiver's to read.
        let bounded = crate::untrusted::bounded;
        Ok(named
            .iter()
            .take(ALERT_NAMES_MAX)
            .map(|(key, value)| (bounded(key), vec![bounded(value)]))
            .collect())
    }

    fn choose(&self, _: &InstanceView) -> Result<&'static str, SkipReason> {
        Ok(CALL)
    }

    fn listed_as(&self, _: &str) -> &'static str {
        "webhooked-resources"
    }

    fn lists(&self) -> &'static [&'static str] {
        &["webhooked-resources"]
    }

    fn start<'a>(&'a self, on: On<'a>) -> BoxFuture<'a, Result<Started, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            // The run's first attempt names the call, so that a takeover's is the same one.
            let run = on
                .resumes
                .last()
                .cloned()
                .or_else(current_run)
                .ok_or_else(|| {
                    FleetError::new(
                        FailureKind::Permanent,
                        OPERATION,
                        None,
                        "a webhook is called only for a recorded run, which names it",
                    )
                })?;
            let key = format!("{run}/{}", on.act.kind);
            match deliver(settings, on, &key).await? {
                Delivery::Delivered(status) => Ok(Started::Done(format!("delivered {status}"))),
                Delivery::Again(why) => {
                    tracing::warn!(
                        origin = settings.origin,
                        why,
                        "webhook not delivered yet: its check sends it again"
                    );
                    Ok(Started::Pending(key))
                }
                Delivery::Refused(status) => Err(refused(settings, status)),
            }
        })
    }

    fn poll<'a>(
        &'a self,
        on: On<'a>,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<Polled, FleetError>> {
        Box::pin(async move {
            let settings = self.settings()?;
            Ok(match deliver(settings, on, handle).await? {
                Delivery::Delivered(status) => Polled::Done(format!("delivered {status}")),
                Delivery::Again(why) => {
                    tracing::warn!(origin = settings.origin, why, "webhook not delivered yet");
                    Polled::Pending
                }
                Delivery::Refused(status) => Polled::Failed(refused(settings, status).to_string()),
            })
        })
    }
}

/// The failure of a webhook that refused the call.
fn refused(settings: &Settings, status: u16) -> FleetError {
    FleetError::new(
        FailureKind::Permanent,
        OPERATION,
        Some(status.to_string()),
        format!("the webhook at {} answered {status}", settings.origin),
    )
}

/// Renders the body for the act `on` under the idempotency key `key`, signs it and sends it once.
async fn deliver(settings: &Settings, on: On<'_>, key: &str) -> Result<Delivery, FleetError> {
    let run = key.split_once('/').map_or(key, |(run, _)| run);
    let body = render(
        &settings.body,
        &Facts {
            run,
            step: &on.act.kind,
            target: on.act.subject.id(),
            instances: &on.act.instances(),
            action: &on.act.action,
            alert: on
                .act
                .arguments
                .iter()
                .filter_map(|(key, values)| Some((key.as_str(), values.first()?.as_str())))
                .collect(),
        },
    )
    .map_err(|why| FleetError::new(FailureKind::Permanent, OPERATION, None, why))?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let signature = crate::webhook::signature::sign(
        settings.secret.expose().as_bytes(),
        body.as_bytes(),
        Some(&timestamp),
    );
    let sent = settings
        .client
        .post(settings.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .header(TIMESTAMP_HEADER, timestamp)
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    Ok(match sent {
        Ok(answer) => judged(answer.status().as_u16()),
        // Without the URL, which may hold a token.
        Err(err) => Delivery::Again(err.without_url().to_string()),
    })
}

/// What an answer's status means. Pure.
fn judged(status: u16) -> Delivery {
    match status {
        200..=299 => Delivery::Delivered(status),
        408 | 429 | 500..=599 => Delivery::Again(format!("answered {status}")),
        _ => Delivery::Refused(status),
    }
}

/// What a body template reads.
#[derive(Debug, serde::Serialize)]
struct Facts<'a> {
    run: &'a str,
    step: &'a str,
    target: &'a str,
    instances: &'a [&'a str],
    action: &'a str,
    /// What the rule's alert named (its dimensions and labels): empty for a target's run.
    alert: BTreeMap<&'a str, &'a str>,
}

/// The environment every body is compiled and rendered in: strict undefined, bounded work, no loader, and
/// every value written as JSON (`json_formatter`).
fn environment() -> Environment<'static> {
    let mut env = super::template::environment();
    env.set_fuel(Some(FUEL));
    env.set_formatter(json_formatter);
    env
}

/// Writes a value into a JSON body: text escaped as inside a JSON string (a target named `a"b` cannot break
/// the body), anything else (a list, a number) as JSON, and what a filter already made safe (`tojson`) as it
/// is.
fn json_formatter(out: &mut Output, _: &State, value: &Value) -> Result<(), minijinja::Error> {
    let failed = |err: serde_json::Error| {
        minijinja::Error::new(ErrorKind::WriteFailure, "a value cannot be written as JSON")
            .with_source(err)
    };
    let written = if value.is_safe() {
        write!(out, "{value}")
    } else if let Some(text) = value.as_str() {
        let quoted = serde_json::to_string(text).map_err(failed)?;
        out.write_str(&quoted[1..quoted.len() - 1])
    } else {
        out.write_str(&serde_json::to_string(value).map_err(failed)?)
    };
    written
        .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "the body cannot be written"))
}

/// `template` rendered over `facts`, when that is a JSON document of at most `BODY_MAX` bytes.
fn render(template: &str, facts: &Facts<'_>) -> Result<String, String> {
    let body = environment()
        .render_str(template, facts)
        .map_err(|err| format!("the webhook's body cannot be rendered: {err}"))?;
    if body.len() > BODY_MAX {
        return Err(format!(
            "the webhook's body is longer than {BODY_MAX} bytes"
        ));
    }
    serde_json::from_str::<serde_json::Value>(&body)
        .map_err(|err| format!("the webhook's body is not JSON ({err}): {}", cut(&body)))?;
    Ok(body)
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Checks a body template at start-up: it parses, reads only the run's facts, and renders JSON for a sample.
fn checked_body(template: &str) -> Result<(), String> {
    let env = environment();
    let compiled = env
        .template_from_str(template)
        .map_err(|err| format!("does not parse: {err}"))?;
    let mut read: Vec<String> = compiled.undeclared_variables(false).into_iter().collect();
    read.sort();
    if let Some(unknown) = read.iter().find(|name| !VARIABLES.contains(&name.as_str())) {
        return Err(format!(
            "reads {unknown:?}; a body may read {}",
            VARIABLES.join(", ")
        ));
    }
    let nested = compiled.undeclared_variables(true);
    let sample = Facts {
        run: "01JSAMPLE",
        step: "step",
        target: "web-elb",
        instances: &["i-0123456789abcdef0"],
        action: CALL,
        // Every name the body reads of the alert, so that a body for a rule's alerts renders here too.
        alert: nested
            .iter()
            .filter_map(|path| path.strip_prefix("alert."))
            .map(|name| (name.split('.').next().unwrap_or(name), "sample"))
            .collect(),
    };
    render(template, &sample).map(drop)
}

/// The trimmed text of `file`, written under `key`.
fn file_text(key: &str, file: &str) -> Result<String, KeyError> {
    let bad = |problem: String| KeyError {
        key: format!("actions.{key}"),
        problem,
    };
    let size = std::fs::metadata(file)
        .map_err(|err| bad(format!("names {file}, which cannot be read: {err}")))?
        .len();
    if size > FILE_MAX {
        return Err(bad(format!("names {file}, which is over {FILE_MAX} bytes")));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|err| bad(format!("names {file}, which cannot be read: {err}")))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(format!("names {file}, which is empty")));
    }
    Ok(text.to_owned())
}

/// The URL of an entry (`url` or `url_file`, one of them), and its origin: https, or plain http to this host.
fn url(keys: &Keys<'_>) -> Result<(Secret, String), KeyError> {
    let inline = keys.get::<String>("url", |_| Ok(()))?;
    let file = keys.get::<String>("url_file", |_| Ok(()))?;
    let (key, text) = match (inline, file) {
        (Some(url), None) => ("url", url),
        (None, Some(file)) => ("url_file", file_text("url_file", &file)?),
        (Some(_), Some(_)) => {
            return Err(KeyError {
                key: "actions.url".to_owned(),
                problem: "is set together with url_file: keep one (url_file keeps a URL's token out of the \
                          config)"
                    .to_owned(),
            });
        }
        (None, None) => {
            return Err(KeyError {
                key: "actions.url_file".to_owned(),
                problem:
                    "is required for a webhook entry (or url): the file holding the URL to POST to"
                        .to_owned(),
            });
        }
    };
    let bad = |problem: &str| KeyError {
        key: format!("actions.{key}"),
        problem: problem.to_owned(),
    };
    let parsed = url::Url::parse(&text).map_err(|_| bad("is not a URL"))?;
    if parsed.host().is_none() {
        return Err(bad("is not a URL with a host"));
    }
    let local = crate::config::is_loopback(&parsed);
    if !(parsed.scheme() == "https" || parsed.scheme() == "http" && local) {
        return Err(bad(
            "must be https:// (plain http only to a receiver on this host)",
        ));
    }
    Ok((Secret::new(text), parsed.origin().ascii_serialization()))
}

/// Reads and checks an entry's keys.
fn read(keys: &Keys<'_>) -> Result<Settings, KeyError> {
    let (url, origin) = url(keys)?;
    let secret_file = keys.get::<String>("secret_file", |_| Ok(()))?.ok_or_else(|| KeyError {
        key: "actions.secret_file".to_owned(),
        problem: "is required for a webhook entry: the file holding the HMAC secret the receiver checks \
                  X-Reflex-Signature with"
            .to_owned(),
    })?;
    let secret = Secret::new(file_text("secret_file", &secret_file)?);
    let body = keys
        .get::<String>("body", |body| checked_body(body))?
        .unwrap_or_else(|| DEFAULT_BODY.to_owned());
    let timeout = keys
        .get::<u64>("timeout_secs", |secs| {
            if (1..=60).contains(secs) {
                Ok(())
            } else {
                Err(format!("is {secs}: write 1 to 60 seconds"))
            }
        })?
        .map_or(TIMEOUT, Duration::from_secs);
    let verify_after = super::verify_secs(
        keys,
        VERIFY_AFTER,
        "what the webhook starts needs time to heal",
    )?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|err| KeyError {
            key: "actions.timeout_secs".to_owned(),
            problem: format!(
                "cannot be used: the HTTP client cannot be built: {}",
                err.without_url()
            ),
        })?;
    Ok(Settings {
        url,
        origin,
        secret,
        body,
        verify_after,
        client,
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

    fn secret_file() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "s3cret\n").unwrap();
        file
    }

    #[test]
    fn an_entry_reads_its_url_and_secret_and_names_only_the_origin() {
        let secret = secret_file();
        let url = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(url.path(), "https://hooks.example:8443/t/T0KEN?x=1\n").unwrap();
        let settings = entry(&format!(
            "url_file = {:?}\nsecret_file = {:?}\nverify_secs = 5\n",
            url.path(),
            secret.path()
        ))
        .unwrap();
        assert_eq!(settings.origin, "https://hooks.example:8443");
        assert_eq!(settings.secret.expose(), "s3cret");
        assert_eq!(settings.verify_after, Duration::from_secs(5));
        let kind = Webhook {
            settings: Some(Arc::new(settings)),
        };
        assert_eq!(kind.described(), "webhook to https://hooks.example:8443");
        assert!(!format!("{kind:?}").contains("T0KEN"), "{kind:?}");
        assert!(!format!("{kind:?}").contains("s3cret"));
        assert_eq!(
            entry(&format!(
                "url = \"http://127.0.0.1:9/x\"\nsecret_file = {:?}\n",
                secret.path()
            ))
            .unwrap()
            .origin,
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn every_bad_key_is_refused_by_name_with_the_fix() {
        let secret = secret_file();
        let with_secret = |rest: &str| format!("secret_file = {:?}\n{rest}", secret.path());
        for (keys, says) in [
            (with_secret(""), "`actions.url_file` is required"),
            (
                "url = \"https://h.example/\"\n".to_owned(),
                "`actions.secret_file` is required",
            ),
            (
                with_secret("url = \"http://h.example/\"\n"),
                "must be https://",
            ),
            (
                with_secret("url = \"nonsense\"\n"),
                "`actions.url` is not a URL",
            ),
            (
                with_secret("url = \"https://h.example/\"\nurl_file = \"/x\"\n"),
                "set together with url_file",
            ),
            (
                with_secret("url_file = \"/nonexistent/url\"\n"),
                "cannot be read",
            ),
            (
                "url = \"https://h.example/\"\nsecret_file = \"/nonexistent/s\"\n".to_owned(),
                "`actions.secret_file` names /nonexistent/s",
            ),
            (
                with_secret("url = \"https://h.example/\"\ntimeout_secs = 0\n"),
                "1 to 60 seconds",
            ),
            (
                with_secret("url = \"https://h.example/\"\nbody = \"{{ host.name }}\"\n"),
                "reads \"host\"",
            ),
            (
                with_secret("url = \"https://h.example/\"\nbody = \"target: {{ target }}\"\n"),
                "is not JSON",
            ),
            (
                with_secret("url = \"https://h.example/\"\nbody = \"{{ target \"\n"),
                "does not parse",
            ),
        ] {
            let err = entry(&keys).unwrap_err();
            assert!(err.contains(says), "{keys}: {err}");
        }
    }

    #[test]
    fn a_body_renders_the_run_s_facts_as_json() {
        let facts = Facts {
            run: "01RUN",
            step: "page-ops",
            target: "web \"elb\"",
            instances: &["i-1", "i-2"],
            action: CALL,
            alert: BTreeMap::new(),
        };
        let body: serde_json::Value =
            serde_json::from_str(&render(DEFAULT_BODY, &facts).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"run": "01RUN", "step": "page-ops", "target": "web \"elb\"", "instances": ["i-1", "i-2"]})
        );
        let custom = r#"{"text": "restart {{ target }} ({{ instances|length }} down)", "ids": {{ instances }}}"#;
        checked_body(custom).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&render(custom, &facts).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"text": "restart web \"elb\" (2 down)", "ids": ["i-1", "i-2"]})
        );
        let err = render("{% for i in range(100000) %}x{% endfor %}", &facts).unwrap_err();
        assert!(err.contains("cannot be rendered"), "{err}");
    }

    #[test]
    fn a_body_reads_what_a_rule_s_alert_named() {
        let on_db = r#"{"text": "reboot {{ alert.DBInstanceIdentifier }}", "db": {{ alert.DBInstanceIdentifier|tojson }}}"#;
        checked_body(on_db).unwrap();
        let facts = Facts {
            run: "01RUN",
            step: "page-dba",
            target: "db-down",
            instances: &["db-down"],
            action: CALL,
            alert: BTreeMap::from([("DBInstanceIdentifier", "orders\"db")]),
        };
        let body: serde_json::Value =
            serde_json::from_str(&render(on_db, &facts).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"text": "reboot orders\"db", "db": "orders\"db"})
        );
        // An alert that lacks the name fails the step, saying so, rather than sending a blank.
        let err = render(
            on_db,
            &Facts {
                alert: BTreeMap::new(),
                ..facts
            },
        )
        .unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let named = AlertNames::from([("ServiceName".to_owned(), "api".to_owned())]);
        let given = Webhook::default().named_arguments(&named, true).unwrap();
        assert_eq!(given["ServiceName"], ["api"]);
    }

    #[test]
    fn an_answer_is_done_sent_again_or_refused_by_its_status() {
        assert_eq!(judged(200), Delivery::Delivered(200));
        assert_eq!(judged(204), Delivery::Delivered(204));
        for again in [408, 429, 500, 503] {
            assert!(matches!(judged(again), Delivery::Again(_)), "{again}");
        }
        for refused in [301, 400, 401, 404, 422] {
            assert_eq!(judged(refused), Delivery::Refused(refused));
        }
    }
}
