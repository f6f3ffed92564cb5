//! The audit page's approvals: the held decisions waiting, what observe and approve modes have seen of each
//! target (the way up), and one held decision with its evidence and, for an approver's session, the Approve
//! and Reject forms.

use maud::{Markup, html};
use serde_json::Value;

use super::layout::{layout, path_of, when};
use super::pages::{outcome_class, skip_words, text};
use crate::approvals::WayUp;
use crate::audit::Approval;
use crate::evidence::WouldDo;

/// The held decisions waiting, and the way up of every target.
pub fn list(pending: &[Approval], ways: &[WayUp]) -> Markup {
    layout(
        "approvals",
        true,
        html! {
            h2 { "Waiting for approval" }
            @if pending.is_empty() {
                p { "No decision is waiting." }
            } @else {
                table {
                    thead { tr { th { "Held (UTC)" } th { "Target" } th { "Would do" } th { "Approvals" } th { "Expires (UTC)" } } }
                    tbody {
                        @for approval in pending {
                            tr {
                                td { a href={ "/ui/approvals/" (approval.id) } { (when(approval.created_at)) } }
                                td { (approval.target) " " span.muted { (approval.account) "/" (approval.region) } }
                                td { (planned_words(&approval.body["evidence"])) }
                                td { (approval.approvers.len()) " of " (approval.required) }
                                td { (when(approval.expires_at)) }
                            }
                        }
                    }
                }
            }
            h2 { "The way up" }
            p.muted { "What observe and approve modes have seen of each target over the last 30 days: promote a target when its decisions were right." }
            table {
                thead { tr { th { "Target" } th { "Mode" } th { "Runs" } th { "Would have acted" } th { "Held" } th { "Approved" } th { "Rejected" } th { "Expired" } th { "Acted" } th { "Recovered" } } }
                tbody {
                    @for way in ways {
                        tr {
                            td { a href=(path_of(&way.account, &way.region, &way.target)) { (way.target) } " " span.muted { (way.account) "/" (way.region) } }
                            td { (way.mode) }
                            td { (way.runs) }
                            td { (way.would_act) }
                            td { (way.held) }
                            td { (way.approved) }
                            td { (way.rejected) }
                            td { (way.expired) }
                            td { (way.acted) }
                            td { (way.recovered) " of " (way.recovered + way.not_recovered) " checked" }
                        }
                    }
                }
            }
        },
    )
}

/// What a held decision would do, in a few words, as its evidence says: `reboot: i-1, i-2`.
fn planned_words(evidence: &Value) -> String {
    let would = WouldDo::of(evidence);
    format!("{}: {}", would.verb, would.instances.join(", "))
}

/// One held decision: its state, its evidence, and the forms when `form_token` is set (an approver's
/// session and a decision still waiting); `notice` says what the last vote did (`Ok`) or why it changed
/// nothing (`Err`).
pub fn show(
    approval: &Approval,
    form_token: Option<&str>,
    notice: Option<Result<&str, &str>>,
) -> Markup {
    let evidence = &approval.body["evidence"];
    layout(
        "approval",
        true,
        html! {
            @match notice {
                Some(Ok(done)) => { p.ok role="status" { (done) } }
                Some(Err(why)) => { p.error role="alert" { (why) } }
                None => {}
            }
            (held_decision(approval))
            @if let Some(token) = form_token {
                (decide_forms(approval, token))
            }
            (alert_panel(&evidence["alert"]))
            (health_table(evidence))
            (plan_table(evidence))
            h2 { "Budgets left" }
            @let left = &evidence["budget-left"];
            p {
                "This target: " (text(&left["target_hour"])) " this hour, " (text(&left["target_day"])) " today. "
                "All targets: " (text(&left["all_hour"])) " this hour, " (text(&left["all_day"])) " today."
            }
            (last_runs(evidence))
        },
    )
}

/// A held decision's panel: its target, state, instances, times, approvers, and how it was resolved.
fn held_decision(approval: &Approval) -> Markup {
    let would = WouldDo::of(&approval.body["evidence"]);
    let run = approval
        .resolution
        .as_ref()
        .and_then(|resolution| resolution["run"].as_str());
    html! {
        h2 { "Held decision" }
        dl.panel {
            dt { "Id" } dd { code { (approval.id) } }
            dt { "Target" } dd { (approval.target) " (" (approval.account) "/" (approval.region) ")" }
            dt { "State" } dd class=(outcome_class(approval.state.as_str())) { (approval.state.as_str()) }
            dt { "Would " (would.verb) } dd { (would.instances.join(", ")) }
            dt { "Held (UTC)" } dd { a href={ "/ui/runs/" (approval.id) } { (when(approval.created_at)) } }
            dt { "Expires (UTC)" } dd { (when(approval.expires_at)) }
            dt { "Approvals" } dd {
                (approval.approvers.len()) " of " (approval.required)
                @for approver in &approval.approvers {
                    " · " (approver.name.as_deref().unwrap_or(&approver.who)) " (" (approver.door) ")"
                }
            }
            @if let Some(resolution) = &approval.resolution {
                @if let Some(reason) = resolution["reason"].as_str() { dt { "Rejected" } dd { (reason) } }
            }
            @if let Some(run) = run { dt { "Acted in" } dd { a href={ "/ui/runs/" (run) } { (run) } } }
        }
    }
}

/// The Approve and Reject forms, each carrying the session's CSRF `token`.
fn decide_forms(approval: &Approval, token: &str) -> Markup {
    html! {
        section.panel.decide aria-labelledby="decide" {
            h2 #decide { "Decide" }
            p { "Approving reads the target again and acts only on instances that are still broken and in this decision, as the decision says, under every safety rule as it stands now." }
            form method="post" action={ "/ui/approvals/" (approval.id) "/approve" } {
                input type="hidden" name="csrf" value=(token);
                button.approve type="submit" { "Approve" }
            }
            form method="post" action={ "/ui/approvals/" (approval.id) "/reject" } {
                input type="hidden" name="csrf" value=(token);
                label { "Why reject" input type="text" name="reason" required; }
                button type="submit" { "Reject" }
            }
        }
    }
}

/// The alert that led to the held decision: where it came from and what it said.
fn alert_panel(alert: &Value) -> Markup {
    html! {
        h2 { "Alert" }
        dl.panel {
            dt { "Source" } dd { (text(&alert["source"])) }
            dt { "Sent by" } dd { (text(&alert["caller"])) }
            dt { "Authentication" } dd { (text(&alert["auth"])) }
            @if !alert["verified"].is_null() { dt { "Verified" } dd { code { (alert["verified"].to_string()) } } }
            dt { "Message" } dd { (text(&alert["message"])) }
        }
    }
}

/// The target's instances as the held decision saw them.
fn health_table(evidence: &Value) -> Markup {
    html! {
        h2 { "Health" }
        table {
            thead { tr { th { "Instance" } th { "Health" } th { "Reason" } th { "EC2 state" } th { "Age" } th { "Auto Scaling group" } } }
            tbody {
                @for instance in evidence["instances"].as_array().into_iter().flatten() {
                    tr {
                        td { code { (text(&instance["instance-id"])) } }
                        td { (text(&instance["health"])) }
                        td { (text(&instance["reason"])) }
                        td { (text(&instance["ec2-state"])) }
                        td { (age(&instance["age-secs"])) }
                        td { (text(&instance["auto-scaling-group"])) }
                    }
                }
            }
        }
    }
}

/// The held decision's plan: the instances it would act on (under its kind's verb) and those it skips, with
/// why.
fn plan_table(evidence: &Value) -> Markup {
    let would = WouldDo::of(evidence);
    html! {
        h2 { "Plan" }
        table {
            thead { tr { th { "Instance" } th { "Decision" } } }
            tbody {
                @for id in &would.instances { tr { td { code { (id) } } td.ok { (would.verb) } } }
                @for skip in evidence["plan"]["skipped"].as_array().into_iter().flatten() {
                    tr {
                        td { code { (text(&skip["instance-id"])) } }
                        td { "skipped: " (skip_words(skip["reason"].as_str().unwrap_or_default())) " (" (text(&skip["reason"])) ")" }
                    }
                }
            }
        }
    }
}

/// The target's last runs before the decision was held, or that there were none.
fn last_runs(evidence: &Value) -> Markup {
    html! {
        h2 { "Last runs on this target" }
        @let runs = evidence["last-runs"].as_array().cloned().unwrap_or_default();
        @if runs.is_empty() {
            p { "None." }
        } @else {
            table {
                thead { tr { th { "Time (UTC)" } th { "Source" } th { "Outcome" } th { "Acted" } th { "Recovery check" } } }
                tbody {
                    @for run in &runs {
                        tr {
                            td { a href={ "/ui/runs/" (text(&run["id"])) } { (text(&run["at"])) } }
                            td { (text(&run["source"])) }
                            td class=(outcome_class(run["outcome"].as_str().unwrap_or_default())) { (text(&run["outcome"])) }
                            td { (text(&run["acted"])) }
                            td { (text(&run["recovery"])) }
                        }
                    }
                }
            }
        }
    }
}

/// An age in seconds, in hours and minutes.
fn age(seconds: &Value) -> String {
    match seconds.as_i64() {
        Some(secs) => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A held decision whose evidence has `plan`.
    fn held(plan: Value) -> Approval {
        Approval {
            id: "01JHELD".into(),
            target: "web".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            state: crate::audit::ApprovalState::Pending,
            required: 1,
            approvers: Vec::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            resolution: None,
            body: json!({"evidence": {"plan": plan}}),
        }
    }

    #[test]
    fn a_held_reboot_lists_its_instances_under_reboot_and_a_held_isolate_under_isolate() {
        // As the previous release held a reboot: one list per way of acting.
        let reboot = held(json!({"terminate": [], "asg-unhealthy": [], "reboot": ["i-1", "i-2"]}));
        let page = held_decision(&reboot).into_string();
        assert!(
            page.contains("<dt>Would reboot</dt><dd>i-1, i-2</dd>"),
            "{page}"
        );
        let table = plan_table(&reboot.body["evidence"]).into_string();
        assert!(
            table.contains("<code>i-1</code></td><td class=\"ok\">reboot</td>"),
            "{table}"
        );
        assert_eq!(planned_words(&reboot.body["evidence"]), "reboot: i-1, i-2");
        // As this release holds an isolation: its acts and their verb.
        let isolate = held(
            json!({"acts": [{"instance-id": "i-3", "action": "isolate", "state": "planned"}],
                                  "verb": "isolate"}),
        );
        let page = held_decision(&isolate).into_string();
        assert!(
            page.contains("<dt>Would isolate</dt><dd>i-3</dd>"),
            "{page}"
        );
        let table = plan_table(&isolate.body["evidence"]).into_string();
        assert!(
            table.contains("<code>i-3</code></td><td class=\"ok\">isolate</td>"),
            "{table}"
        );
    }
}
