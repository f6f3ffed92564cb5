//! The audit page's HTML, rendered on the server with maud (escaped by construction). No script and no asset
//! from anywhere but reflex: one stylesheet at `/ui/style.css`.

use maud::{Markup, html};
use serde_json::Value;

use super::layout::{layout, path_of, when};
use crate::audit::{AuditRecord, EpisodeStep};
use crate::controls::State;
use crate::detail::{ActionPart, Answered, PolledPart, RunDetail, SeenInstance};
use crate::target::TargetId;

/// The timeline's filters as the form holds them (also the next page's link).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct FilterForm {
    /// A configured target.
    #[serde(default)]
    pub target: String,
    /// An account: its `[[accounts]]` name, `local`, or its id.
    #[serde(default)]
    pub account: String,
    /// A region.
    #[serde(default)]
    pub region: String,
    /// A source (`sns`, `manual`, ...).
    #[serde(default)]
    pub source: String,
    /// An outcome (`completed`, `refused`, ...).
    #[serde(default)]
    pub outcome: String,
    /// From (`datetime-local`, UTC).
    #[serde(default)]
    pub from: String,
    /// To (`datetime-local`, UTC).
    #[serde(default)]
    pub to: String,
    /// Older than this record.
    #[serde(default)]
    pub before: String,
    /// `on`: include the access records (page views, logins) and the summaries of suppressed rejections.
    #[serde(default)]
    pub access: String,
}

impl FilterForm {
    /// Whether the timeline leaves the access records out: unless asked for, or their source is.
    pub fn runs_only(&self) -> bool {
        self.access.is_empty() && self.source != "audit-read"
    }
}

const SOURCES: [&str; 12] = [
    "sns",
    "alertmanager",
    "grafana",
    "manual",
    "cli",
    "admin",
    "approval",
    "slack",
    "ladder",
    "recovery-check",
    "notify",
    "audit-read",
];
const OUTCOMES: [&str; 14] = [
    "completed",
    "would-act",
    "held",
    "approved",
    "declined",
    "expired",
    "refused",
    "rejected",
    "acting",
    "duplicate",
    "ignored",
    "confirmed",
    "recovered",
    "not-recovered",
];

/// The login form, with the CSRF token and, after a refused attempt, why.
pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "log in",
        false,
        html! {
            form.login method="post" action="/ui/login" {
                p { "Log in with an audit token (" code { "[audit] tokens" } ") or an approver's token." }
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                input type="hidden" name="csrf" value=(csrf);
                label { "Token" input type="password" name="token" autocomplete="current-password" required autofocus; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(super) fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "completed" | "recovered" | "confirmed" | "approved" => "ok",
        "refused" | "duplicate" | "ignored" | "acting" | "would-act" | "held" | "pending"
        | "expired" => "warn",
        _ => "bad",
    }
}

/// The timeline: the state panel, the filters, one row per record, and the next page.
pub fn timeline(
    state: &State,
    last_runs: &[(TargetId, Option<AuditRecord>)],
    activity: Markup,
    records: &[AuditRecord],
    filter: &FilterForm,
    next: Option<&str>,
) -> Markup {
    layout(
        "audit timeline",
        true,
        html! {
            (state_panel(state, last_runs))
            section aria-labelledby="activity" {
                h2 #activity { "Runs per hour, last 24 hours" }
                (activity)
            }
            h2 { "Timeline" }
            (filters(filter))
            (records_table(records, filter.from.is_empty()))
            @if let Some(next) = next {
                nav.pager aria-label="pages" {
                    a href=(next) { "Older records" }
                }
            } @else if filter.from.is_empty() && !records.is_empty() {
                p.note { "Without From, the timeline searches the " (super::TIMELINE_DAYS) " days before To (or now); set From (UTC) to see older records." }
            }
        },
    )
}

/// The timeline's state panel: the pauses, the silences and the open breakers, then each target's budget.
fn state_panel(state: &State, last_runs: &[(TargetId, Option<AuditRecord>)]) -> Markup {
    html! {
        section.panel aria-labelledby="state" {
            h2 #state { "State" }
            @if state.pauses.is_empty() {
                p { "No pauses." }
            } @else {
                ul {
                    @for pause in &state.pauses {
                        li.warn { "Paused: " (pause.target.as_deref().unwrap_or("every target")) @if let (Some(account), Some(region)) = (&pause.account, &pause.region) { " (" (account) "/" (region) ")" } " since " (when(pause.since)) ": " (pause.reason) }
                    }
                }
            }
            @if state.silences.is_empty() {
                p { "No silences." }
            } @else {
                ul {
                    @for silence in &state.silences {
                        li.warn { "Silenced: " (silence.target.as_deref().unwrap_or("every target")) @if let (Some(account), Some(region)) = (&silence.account, &silence.region) { " (" (account) "/" (region) ")" } " until " (when(silence.until)) " by " (silence.by) ": " (silence.reason) }
                    }
                }
            }
            @let open: Vec<_> = state.breakers.iter().filter_map(|b| b.open.as_ref()).collect();
            @if open.is_empty() {
                p { "No open breakers." }
            } @else {
                ul {
                    @for breaker in open {
                        li.bad { "Breaker open: " (breaker.target) " (" (breaker.account) "/" (breaker.region) ") since " (when(breaker.since)) ": " (breaker.reason) }
                    }
                }
            }
            (budget_table(state, last_runs))
        }
    }
}

/// The state panel's table: each target's and rule's budget left, and its last run.
fn budget_table(state: &State, last_runs: &[(TargetId, Option<AuditRecord>)]) -> Markup {
    html! {
        table {
            thead { tr { th { "Target or rule" } th { "Account / region" } th { "Budget left (hour / day)" } th { "All targets (hour / day)" } th { "Last run" } } }
            tbody {
                @for budget in &state.budgets {
                    tr {
                        td {
                            a href=(path_of(&budget.account, &budget.region, &budget.target)) { (budget.target) }
                            @if budget.kind == crate::target::TargetKind::Rule { " " span.muted { "(rule)" } }
                        }
                        td { (budget.account) " / " (budget.region) }
                        td { (budget.left.target_hour) " / " (budget.left.target_day) }
                        td { (budget.left.all_hour) " / " (budget.left.all_day) }
                        td {
                            @match last_runs.iter().find(|(id, _)| id.name == budget.target && id.account == budget.account && id.region == budget.region).and_then(|(_, r)| r.as_ref()) {
                                Some(run) => { a href={ "/ui/runs/" (run.id) } { (when(run.at)) } " " span class=(outcome_class(run.outcome.as_str())) { (run.outcome.as_str()) } }
                                None => { span.muted { "none" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The timeline's filter form, holding the filters in force.
fn filters(filter: &FilterForm) -> Markup {
    html! {
        form.filters method="get" action="/ui/" {
            label { "Target" input type="text" name="target" value=(filter.target); }
            label { "Account" input type="text" name="account" value=(filter.account); }
            label { "Region" input type="text" name="region" value=(filter.region); }
            label { "Source"
                select name="source" {
                    option value="" { "any" }
                    @for source in SOURCES { option value=(source) selected[filter.source == source] { (source) } }
                }
            }
            label { "Outcome"
                select name="outcome" {
                    option value="" { "any" }
                    @for outcome in OUTCOMES { option value=(outcome) selected[filter.outcome == outcome] { (outcome) } }
                }
            }
            label { "From (UTC)" input type="datetime-local" name="from" value=(filter.from); }
            label { "To (UTC)" input type="datetime-local" name="to" value=(filter.to); }
            label.check { input type="checkbox" name="access" value="on" checked[!filter.access.is_empty()]; "Include access records (page views, logins)" }
            button type="submit" { "Filter" }
        }
    }
}

/// The timeline's records, one row each, or that none matches the filters (`recent`: searched without From,
/// over the last `TIMELINE_DAYS` only).
fn records_table(records: &[AuditRecord], recent: bool) -> Markup {
    html! {
        @if records.is_empty() {
            p {
                "No records match"
                @if recent { " in the " (super::TIMELINE_DAYS) " days searched; set From (UTC) to search further back" }
                "."
            }
        } @else {
            table.timeline {
                thead { tr { th { "Time (UTC)" } th { "Source" } th { "Caller" } th { "Target" } th { "Outcome" } th { "Unhealthy" } th { "Acted" } th { "Skipped" } } }
                tbody {
                    @for record in records {
                        @let answered = Answered::of(&record.detail);
                        tr {
                            td data-label="Time" { a href={ "/ui/runs/" (record.id) } { (when(record.at)) } }
                            td data-label="Source" { (record.source.as_str()) }
                            td data-label="Caller" { (record.caller.as_deref().unwrap_or("-")) }
                            td data-label="Target" { (record.target.as_deref().unwrap_or("-")) @if let (Some(account), Some(region)) = (&record.account, &record.region) { " " span.muted { (account) "/" (region) } } }
                            td data-label="Outcome" class=(outcome_class(record.outcome.as_str())) {
                                (record.outcome.as_str())
                                @if let Some(error) = &record.error { " (" (error) ")" }
                            }
                            td data-label="Unhealthy" { (answered.unhealthy) }
                            td data-label="Acted" { (record.acted) }
                            td data-label="Skipped" { (answered.skipped) }
                        }
                    }
                }
            }
        }
    }
}

/// Why an instance was left alone, in words.
pub(super) fn skip_words(reason: &str) -> &'static str {
    match reason {
        "unknown-state" => "the balancer reports a state reflex does not know",
        "registration-in-progress" => "still being registered or in its first health checks",
        "draining" => "being deregistered",
        "not-in-use" => "registered but not serving",
        "health-check-disabled" => "health checks are disabled: no verdict",
        "balancer-error" => "the balancer failed to check it",
        "instance-not-found" => "EC2 does not know it",
        "already-terminating" => "already shutting down or terminated",
        "state-in-transition" => "pending or stopping: waiting until it settles",
        "grace-period" => "launched less than the grace period ago",
        "protected" => "carries the protect tag",
        "not-in-auto-scaling-group" => "in no Auto Scaling group",
        "cap-reached" => "the per-run cap was reached",
        "budget" => "the hourly or daily budget (of the target, or of its action) is spent",
        "action-cooldown" => "its action acted on it too recently (the action's cooldown_secs)",
        "speed-limit" => "the target's hourly speed limit is reached",
        "no-longer-broken" => "approved, but no longer broken",
        "not-approved" => "broken, but not in the approved decision",
        "not-in-episode" => "broken, but not one of the instances this ladder step follows",
        _ => "left alone",
    }
}

pub(super) fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// One record: trigger, snapshot, plan, AWS answers, errors, the recovery check, the episode it is a step of
/// (alert, reboot, check, replace, check, escalated), and the raw JSON.
pub fn run(
    record: &AuditRecord,
    recovery: Option<&AuditRecord>,
    episode: Option<&(String, Vec<EpisodeStep>)>,
) -> Markup {
    let detail = RunDetail::of(&record.detail);
    layout(
        "run",
        true,
        html! {
            (trigger(record, &detail))
            (snapshot(&detail.seen))
            (plan(&detail))
            (aws_answers(detail.actions.as_deref()))
            (followed(&detail.polled))
            @if let Some(error) = &detail.error {
                h2 { "Error" }
                p.bad { (error) }
            }
            @if let Some(check) = recovery {
                @let found = RunDetail::of(&check.detail).check.unwrap_or_default();
                h2 { "Recovery check" }
                p class=(outcome_class(check.outcome.as_str())) {
                    a href={ "/ui/runs/" (check.id) } { (check.outcome.as_str()) }
                    " at " (when(check.at)) ": " (number(found.in_service)) " of "
                    (number(found.expected_in_service)) " instances InService"
                }
            }
            @if let Some((id, steps)) = episode {
                (episode_steps(record, id, steps))
            }
            details {
                summary { "Raw audit record (JSON)" }
                pre { (serde_json::to_string_pretty(record).unwrap_or_default()) }
            }
        },
    )
}

/// The run page's trigger: who asked, how, about which target, and what came of it.
fn trigger(record: &AuditRecord, detail: &RunDetail) -> Markup {
    html! {
        h2 { "Trigger" }
        dl.panel {
            dt { "Audit id" } dd { code { (record.id) } }
            dt { "Time (UTC)" } dd { (when(record.at)) }
            dt { "Source" } dd { (record.source.as_str()) }
            dt { "Caller" } dd { (record.caller.as_deref().unwrap_or("-")) }
            dt { "Authentication" } dd { (record.auth.as_str()) }
            dt { "Target" } dd { (record.target.as_deref().unwrap_or("-")) }
            dt { "Account / region" } dd { (record.account.as_deref().unwrap_or("-")) " / " (record.region.as_deref().unwrap_or("-")) }
            dt { "Outcome" } dd class=(outcome_class(record.outcome.as_str())) { (record.outcome.as_str()) @if let Some(error) = &record.error { " (" (error) ")" } }
            dt { "Dry run" } dd { (if record.dry_run { "yes" } else { "no" }) }
            @if let Some(verified) = &detail.verified { dt { "Verified" } dd { code { (verified.to_string()) } } }
            @if let Some(request) = &detail.request { dt { "Request" } dd { code { (request.to_string()) } } }
            @if let Some(message) = &detail.message { dt { "Alert" } dd { (message) } }
        }
    }
}

/// The run page's snapshot of the target's instances, when the run took one.
fn snapshot(seen: &[SeenInstance]) -> Markup {
    html! {
        @if !seen.is_empty() {
            h2 { "Snapshot" }
            table {
                thead { tr { th { "Instance" } th { "Health" } th { "Reported" } th { "EC2 state" } th { "Auto Scaling group" } } }
                tbody {
                    @for instance in seen {
                        tr {
                            td { code { (instance.instance_id) } }
                            td { (instance.health.state) }
                            td { (instance.health.reported) @if let Some(reason) = &instance.health.reason_code { " (" (reason) ")" } }
                            td { (instance.ec2.as_ref().map_or("-", |ec2| ec2.state.as_str())) }
                            td { (instance.auto_scaling_group.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
    }
}

/// The run page's plan, when the run made one: why it was refused, what it acts on and what it skips.
fn plan(detail: &RunDetail) -> Markup {
    html! {
        @if let Some(plan) = &detail.plan {
            h2 { "Plan" }
            @if let Some(rule) = &plan.refused_rule {
                p.warn { "Refused (" (rule) "): " (detail.refused.as_deref().unwrap_or("-")) }
            }
            table {
                thead { tr { th { "Instance or resource" } th { "Decision" } } }
                tbody {
                    @for act in &plan.act_on {
                        tr {
                            td { code { (act.subject()) } }
                            td.ok {
                                (act.kind()) ": " (act.action)
                                @if !act.covers.is_empty() { " for " (act.covers.join(", ")) }
                                @for (name, values) in &act.arguments {
                                    br; code { (name) " = " (values.join(" | ")) }
                                }
                            }
                        }
                    }
                    @for skip in &plan.skipped {
                        tr {
                            td { code { (skip.instance_id) } }
                            td { "skipped: " (skip_words(&skip.reason)) " (" (skip.reason) ")" }
                        }
                    }
                }
            }
        }
    }
}

/// The run page's AWS answers, one row per call, when the run acted.
fn aws_answers(actions: Option<&[ActionPart]>) -> Markup {
    html! {
        @if let Some(actions) = actions {
            h2 { "AWS answers" }
            table {
                thead { tr { th { "Instance or resource" } th { "Call" } th { "Answer" } } }
                tbody {
                    @for action in actions {
                        tr {
                            td { code { (action.subject()) } }
                            td { (action.action) }
                            @if let Some(error) = &action.error { td.bad { (error) } } @else {
                                td {
                                    (action.new_state.as_deref().unwrap_or("-"))
                                    @if let Some(handle) = &action.handle { " (" code { (handle) } ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A check's page: what it found of the acts under way it followed, each with its handle and evidence.
fn followed(polled: &[PolledPart]) -> Markup {
    html! {
        @if !polled.is_empty() {
            h2 { "Acts followed" }
            table {
                thead { tr { th { "Instance or resource" } th { "Followed by" } th { "Found" } } }
                tbody {
                    @for act in polled {
                        tr {
                            td { code { (act.subject()) } }
                            td { code { (act.handle) } }
                            @if let Some(error) = &act.error { td.bad { (act.state.as_deref().unwrap_or("failed")) ": " (error) } }
                            @else { td { (act.state.as_deref().unwrap_or("-")) } }
                        }
                    }
                }
            }
        }
    }
}

/// A count as the page shows it: `-` when the record does not say.
fn number(count: Option<u64>) -> String {
    count.map_or_else(|| "-".to_owned(), |count| count.to_string())
}

/// The run page's episode: its steps in order, each linked but the record's own.
fn episode_steps(record: &AuditRecord, id: &str, steps: &[EpisodeStep]) -> Markup {
    html! {
        h2 { "Episode" }
        p { "What reflex did about one alert on this target, in order (episode " code { (id) } ")." }
        ol.episode {
            @for (n, step) in steps.iter().enumerate() {
                li {
                    @if n == 0 { "alert, then " }
                    strong class=(step_class(&step.step)) { (step.step) }
                    " "
                    @if step.record_id == record.id { code { (step.record_id) } " (this record)" }
                    @else { a href={ "/ui/runs/" (step.record_id) } { code { (step.record_id) } } }
                    " at " (when_ms(step.at_ms))
                }
            }
        }
    }
}

/// The class an episode's step is drawn in: a person is needed, it is over, or neither.
fn step_class(step: &str) -> &'static str {
    match step {
        "escalated" | "relapsing" => "bad",
        "resolved" => "ok",
        _ => "",
    }
}

/// A time in milliseconds since the epoch, as the page shows times.
fn when_ms(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map(when)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, RequestMeta, Source};

    #[test]
    fn a_run_page_shows_each_act_s_arguments_handle_and_what_its_check_found() {
        let mut meta = RequestMeta::new(Source::Sns, None);
        meta.note(
            "plan",
            serde_json::json!({"act_on": [{"resource": "web-elb", "action": "post", "kind": "call-ops",
                "covers": ["i-1", "i-2"], "arguments": {"commands": ["restart app"]}}], "skipped": []}),
        );
        meta.note(
            "actions",
            serde_json::json!([{"resource": "web-elb", "action": "post", "kind": "call-ops",
                "new_state": "pending", "handle": "01RUN/call-ops"}]),
        );
        meta.note(
            "polled",
            serde_json::json!([{"resource": "web-elb", "handle": "01RUN/call-ops", "state": "delivered 200",
                "error": null}, {"instance-id": "i-3", "handle": "cmd-1", "state": null, "error": "Failed"}]),
        );
        let page = run(
            &meta.into_record(Outcome::Completed, 200, None, 1),
            None,
            None,
        )
        .into_string();
        for shown in [
            "call-ops: post for i-1, i-2",
            "commands = restart app",
            "pending (<code>01RUN/call-ops</code>)",
            "Acts followed",
            "delivered 200",
            "failed: Failed",
        ] {
            assert!(page.contains(shown), "{shown} in {page}");
        }
    }

    #[test]
    fn a_run_page_tells_its_episode_in_order_and_links_every_other_step() {
        let record =
            RequestMeta::new(Source::Ladder, None).into_record(Outcome::Completed, 200, None, 1);
        let step = |step: &str, id: &str| EpisodeStep {
            step: step.into(),
            record_id: id.into(),
            at_ms: 1_767_225_600_000,
        };
        let story = (
            "E1".to_owned(),
            vec![
                step("reboot", "E1"),
                step("check", "C1"),
                step("replace", &record.id),
                step("escalated", "C2"),
            ],
        );
        let page = run(&record, None, Some(&story)).into_string();
        let at = |text: &str| {
            page.find(text)
                .unwrap_or_else(|| panic!("{text} in {page}"))
        };
        assert!(at("Episode") < at("alert, then "));
        assert!(at(">reboot<") < at(">check<") && at(">check<") < at(">replace<"));
        assert!(at(">replace<") < at(">escalated<"));
        assert!(page.contains(r#"href="/ui/runs/C1""#) && page.contains(r#"href="/ui/runs/C2""#));
        assert!(
            !page.contains(&format!(r#"href="/ui/runs/{}""#, record.id)),
            "this record is not linked"
        );
        assert!(page.contains(r#"class="bad">escalated<"#), "{page}");
        let alone = run(&record, None, None).into_string();
        assert!(!alone.contains("Episode"));
    }

    #[test]
    fn the_state_panel_shows_a_rules_budget_where_it_acts_beside_the_targets() {
        use crate::controls::TargetBudget;
        use crate::engine::budget::{Budgets, Left, Used};
        use crate::target::TargetKind;
        let left = Left::of(
            Budgets::from(&crate::config::RemediationConfig::default()),
            Used::default(),
        );
        let budget = |target: &str, kind, account: &str| TargetBudget {
            target: target.into(),
            kind,
            account: account.into(),
            region: "eu-west-1".into(),
            left,
        };
        let state = State {
            pauses: Vec::new(),
            silences: Vec::new(),
            breakers: Vec::new(),
            budgets: vec![
                budget("web-elb", TargetKind::LoadBalancer, "111111111111"),
                budget("disk-prod", TargetKind::Rule, "222233334444"),
            ],
            at: time::OffsetDateTime::UNIX_EPOCH,
        };
        // The rule's last run is its own, not that of anything of its name elsewhere.
        let run = RequestMeta::new(Source::Sns, None).into_record(Outcome::Completed, 200, None, 1);
        let id = |account: &str, kind| TargetId::new(account, "eu-west-1", kind, "disk-prod");
        let last_runs = [
            (id("111111111111", TargetKind::LoadBalancer), None),
            (id("222233334444", TargetKind::Rule), Some(run.clone())),
        ];
        let panel = state_panel(&state, &last_runs).into_string();
        let rule = panel.find(">disk-prod</a>").expect("the rule's row");
        assert!(panel[rule..].contains("(rule)"), "{panel}");
        assert!(panel.contains("222233334444 / eu-west-1"), "{panel}");
        let target = panel.find(">web-elb</a>").unwrap();
        assert!(!panel[target..rule].contains("(rule)"), "{panel}");
        assert!(
            panel[rule..].contains(&format!("/ui/runs/{}", run.id)),
            "{panel}"
        );
    }
}
