//! Slack's side of approvals: the Block Kit message that asks for one (the evidence, Approve and Reject
//! buttons), the check of Slack's request signature on a button press (`v0` HMAC-SHA256 of
//! `v0:timestamp:body` with the app's signing secret, the timestamp within five minutes, compared in
//! constant time), and the reading of the press itself.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::events::Ask;
use crate::evidence::WouldDo;
use crate::webhook::signature::{self, SignatureError};

/// How far a request's timestamp may be from now: Slack's own advice against replays.
pub const MAX_SKEW_SECS: i64 = 300;
/// Instances listed in a message at most (Slack cuts a section's text at 3000 characters).
const MAX_LISTED: usize = 20;

/// The header of Slack's signature.
const SIGNATURE_HEADER: &str = "X-Slack-Signature";

/// Checks Slack's signature `signature` (`v0=<hex>`) of `body` sent at `timestamp` (Unix seconds, as the
/// header gave it) under `secret`, at `now` (Unix seconds): HMAC-SHA256 of `v0:<timestamp>:<body>`, compared
/// in constant time, the timestamp within `MAX_SKEW_SECS`.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let hex = signature
        .strip_prefix("v0=")
        .ok_or_else(|| SignatureError::MissingSignature(SIGNATURE_HEADER.to_owned()))?;
    signature::verify_prefixed(
        secret,
        b"v0:",
        body,
        hex,
        Some(timestamp),
        now,
        MAX_SKEW_SECS,
    )
}

/// The signature Slack would send for `body` at `timestamp` (for tests and tooling).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        signature::sign_prefixed(secret, b"v0:", body, Some(timestamp))
    )
}

/// A button pressed on an approval message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// The Slack user who pressed it.
    pub user: String,
    /// `approve` or `reject`.
    pub action: Action,
    /// The approval's id.
    pub approval: String,
    /// Where Slack takes the message's update.
    pub response_url: Option<String>,
}

/// What a button asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Approve the held decision.
    Approve,
    /// Reject it.
    Reject,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    actions: Vec<PayloadAction>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct PayloadAction {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// Reads a verified interaction's form body (`payload=<JSON>`): the button press it carries, or why it is
/// not one.
pub fn press(body: &[u8]) -> Result<Press, String> {
    let payload = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or("the body has no payload field")?;
    let payload: Payload = serde_json::from_str(&payload)
        .map_err(|err| format!("the payload is not Slack's: {err}"))?;
    if payload.kind != "block_actions" {
        return Err(format!(
            "a {:?} interaction; only block_actions (buttons) are taken",
            payload.kind
        ));
    }
    let action = payload
        .actions
        .into_iter()
        .find(|action| matches!(action.action_id.as_str(), "approve" | "reject"))
        .ok_or("no approve or reject action in the payload")?;
    let approval = action
        .value
        .filter(|value| !value.is_empty())
        .ok_or("the button carries no approval id")?;
    Ok(Press {
        user: payload.user.id,
        action: if action.action_id == "approve" {
            Action::Approve
        } else {
            Action::Reject
        },
        approval,
        response_url: payload.response_url,
    })
}

/// Whether reflex may post a message's update to `url`: Slack's own hooks host over https, or the origin of
/// a configured Slack `[[notify]]` webhook (a Slack-compatible relay).
pub fn response_url_allowed(url: &str, webhooks: &[&url::Url]) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let slack = url.scheme() == "https" && url.host_str() == Some("hooks.slack.com");
    slack
        || webhooks
            .iter()
            .any(|hook| hook.origin() == url.origin() && hook.scheme() == url.scheme())
}

/// The update of an approval message once it is decided: the outcome in words, no buttons left.
pub fn outcome_message(text: &str) -> Value {
    json!({
        "replace_original": true,
        "text": text,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }],
    })
}

/// The Block Kit message that asks for approval: `headline`, the evidence and the buttons.
pub fn approval_message(headline: &str, ask: &Ask) -> Value {
    let instances = instance_lines(&ask.evidence);
    let would = would_line(&ask.evidence);
    let context = context_line(ask);
    let button = |label: &str, action: &str, style: &str| {
        json!({
            "type": "button",
            "text": { "type": "plain_text", "text": label },
            "style": style,
            "action_id": action,
            "value": ask.id,
        })
    };
    json!({
        "text": headline,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": headline } },
            { "type": "section", "text": { "type": "mrkdwn", "text": would } },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Instances*\n{}", instances.join("\n")) } },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": context }] },
            {
                "type": "actions",
                "block_id": format!("reflex-approval-{}", ask.id),
                "elements": [button("Approve", "approve", "primary"), button("Reject", "reject", "danger")],
            },
        ],
    })
}

/// What the held decision would do, as its evidence says: `*Would isolate:* `i-1`, `i-2``.
fn would_line(evidence: &Value) -> String {
    let would = WouldDo::of(evidence);
    let instances: Vec<String> = would
        .instances
        .iter()
        .take(MAX_LISTED)
        .map(|id| format!("`{}`", escape(id)))
        .collect();
    let listed = if instances.is_empty() {
        "(none listed)".to_owned()
    } else {
        instances.join(", ")
    };
    format!("*Would {}:* {listed}", escape(&would.verb))
}

/// A string of the evidence, escaped for Slack; nothing when it is not a string.
fn text(value: &Value) -> String {
    value.as_str().map(escape).unwrap_or_default()
}

/// The approval message's instances, one line each (at most `MAX_LISTED`), or that none is listed.
fn instance_lines(evidence: &Value) -> Vec<String> {
    let mut instances: Vec<String> = evidence["instances"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .take(MAX_LISTED)
        .map(|instance| {
            let age = instance["age-secs"]
                .as_i64()
                .map(|secs| format!(", {}h old", secs / 3600))
                .unwrap_or_default();
            let group = instance["auto-scaling-group"]
                .as_str()
                .map(|group| format!(", group {}", escape(group)))
                .unwrap_or_default();
            format!(
                "• `{}` {} ({}), EC2 {}{age}{group}",
                text(&instance["instance-id"]),
                text(&instance["health"]),
                text(&instance["reason"]),
                text(&instance["ec2-state"]),
            )
        })
        .collect();
    if instances.is_empty() {
        instances.push("(none listed)".into());
    }
    instances
}

/// The approval message's context line: the alert, the instances skipped, the budgets left, the last runs,
/// and when the decision expires.
fn context_line(ask: &Ask) -> String {
    let evidence = &ask.evidence;
    let alert = &evidence["alert"];
    let skipped: Vec<String> = evidence["plan"]["skipped"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|skip| format!("{} {}", text(&skip["instance-id"]), text(&skip["reason"])))
        .collect();
    let runs: Vec<String> = evidence["last-runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|run| match run["recovery"].as_str() {
            Some(recovery) => format!(
                "{} {} ({recovery})",
                text(&run["at"]),
                text(&run["outcome"])
            ),
            None => format!("{} {}", text(&run["at"]), text(&run["outcome"])),
        })
        .collect();
    format!(
        "alert: {} from {} ({}) · skipped: {} · budgets left: {} · last runs: {} · expires {}",
        text(&alert["source"]),
        text(&alert["caller"]),
        text(&alert["auth"]),
        if skipped.is_empty() {
            "none".into()
        } else {
            skipped.join(", ")
        },
        budgets(&evidence["budget-left"]),
        if runs.is_empty() {
            "none".into()
        } else {
            runs.join(", ")
        },
        escape(&ask.expires_at),
    )
}

/// The budgets left, in words.
fn budgets(left: &Value) -> String {
    let n = |key: &str| {
        left[key]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |n| n.to_string())
    };
    format!(
        "{}/h, {}/day here; {}/h, {}/day in all",
        n("target_hour"),
        n("target_day"),
        n("all_hour"),
        n("all_day")
    )
}

/// Escapes the three characters Slack's mrkdwn gives meaning to.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // The example of Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(
            verify(SECRET, "1531420618", signature, body, 1_531_420_618 + 10),
            Ok(())
        );
        assert_eq!(sign(SECRET, "1531420618", body), signature);
    }

    #[test]
    fn a_forged_stale_or_malformed_request_is_refused() {
        let body = b"payload=%7B%7D";
        let now = 1_800_000_000;
        let at = now.to_string();
        let good = sign(SECRET, &at, body);
        assert_eq!(verify(SECRET, &at, &good, body, now), Ok(()));
        assert_eq!(
            verify(b"another-secret-of-this-app", &at, &good, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &at, &good, b"payload=%7B%22x%22%7D", now),
            Err(SignatureError::Mismatch)
        );
        let old = (now - 301).to_string();
        let signed_old = sign(SECRET, &old, body);
        assert_eq!(
            verify(SECRET, &old, &signed_old, body, now),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(SECRET, "soon", &good, body, now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(SECRET, &at, good.trim_start_matches("v0="), body, now),
            Err(SignatureError::MissingSignature(SIGNATURE_HEADER.into()))
        );
    }

    #[test]
    fn a_button_press_reads_its_user_action_and_approval() {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U0APPROVER"},
            "actions": [{"action_id": "reject", "value": "01JAPPROVAL"}],
            "response_url": "https://hooks.slack.com/actions/T/1/x",
        });
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let press = press(body.as_bytes()).unwrap();
        assert_eq!(press.user, "U0APPROVER");
        assert_eq!(press.action, Action::Reject);
        assert_eq!(press.approval, "01JAPPROVAL");
        assert!(super::press(b"payload=%7B%22type%22%3A%22view_submission%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D").is_err());
        assert!(super::press(b"nothing=here").is_err());
    }

    #[test]
    fn updates_go_to_slack_or_to_a_configured_webhook_origin_only() {
        let relay = url::Url::parse("http://127.0.0.1:9999/hook/secret").unwrap();
        assert!(response_url_allowed(
            "https://hooks.slack.com/actions/T/1/x",
            &[]
        ));
        assert!(!response_url_allowed(
            "http://hooks.slack.com/actions/T/1/x",
            &[]
        ));
        assert!(!response_url_allowed(
            "https://hooks.slack.com.evil.example/x",
            &[]
        ));
        assert!(response_url_allowed(
            "http://127.0.0.1:9999/respond/1",
            &[&relay]
        ));
        assert!(!response_url_allowed(
            "http://127.0.0.1:9998/respond/1",
            &[&relay]
        ));
        assert!(!response_url_allowed("not a url", &[&relay]));
    }

    #[test]
    fn the_approval_message_has_the_evidence_and_both_buttons() {
        let ask = Ask {
            id: "01JHELD".into(),
            expires_at: "2026-12-03T10:15:00Z".into(),
            url: "/ui/approvals/01JHELD".into(),
            evidence: json!({
                "alert": {"source": "sns", "caller": "127.0.0.1", "auth": "passed"},
                "instances": [{"instance-id": "i-1", "health": "OutOfService", "reason": "Instance has failed <checks>",
                               "ec2-state": "running", "age-secs": 7200, "auto-scaling-group": "web"}],
                "plan": {"skipped": [{"instance-id": "i-2", "reason": "grace-period"}]},
                "budget-left": {"target_hour": 3},
                "last-runs": [],
            }),
        };
        let message = approval_message("*reflex: held* on `web`", &ask);
        let text = message.to_string();
        assert!(text.contains("i-1"), "{text}");
        assert!(text.contains("&lt;checks&gt;"), "escaped: {text}");
        assert!(text.contains("i-2 grace-period"), "{text}");
        let buttons = &message["blocks"][4]["elements"];
        assert_eq!(buttons[0]["action_id"], "approve");
        assert_eq!(buttons[1]["action_id"], "reject");
        assert_eq!(buttons[1]["value"], "01JHELD");
    }

    #[test]
    fn the_approval_message_says_what_the_held_decision_would_do() {
        let ask = |plan: Value| Ask {
            id: "01JHELD".into(),
            expires_at: "2026-12-03T10:15:00Z".into(),
            url: "/ui/approvals/01JHELD".into(),
            evidence: json!({"plan": plan}),
        };
        let would =
            |plan| approval_message("held", &ask(plan))["blocks"][1]["text"]["text"].clone();
        let isolate = json!({"acts": [{"instance-id": "i-1", "action": "isolate", "state": "planned"}],
                             "verb": "isolate"});
        assert_eq!(would(isolate), "*Would isolate:* `i-1`");
        // A reboot held by the previous release.
        let reboot = json!({"terminate": [], "asg-unhealthy": [], "reboot": ["i-2", "i-3"]});
        assert_eq!(would(reboot), "*Would reboot:* `i-2`, `i-3`");
        assert_eq!(would(json!({})), "*Would replace:* (none listed)");
    }
}
