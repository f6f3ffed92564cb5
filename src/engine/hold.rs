//! The hold stage of a target in approve mode: a run that decided to act keeps its decision for approvers
//! instead, with the evidence they see (the alert, the target's health, the plan with every skip, the budgets
//! left, the last runs and whether they recovered) and an expiry. It holds no lock or lease while it waits;
//! the hold is written with the run's record, and the approval's run decides again before it acts.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::decide::{Decided, Decision};
use super::port::Snapshot;
use super::targets::Target;
use super::{
    Approved, Authenticated, Engine, EngineError, NextStep, Resume, Run, Summary, Trigger,
};
use crate::audit::{Approval, AuditRecord, NewApproval, RequestMeta, rfc3339};
use crate::contract::ApprovalRef;
use crate::detail::checked_run;
use crate::target::Place;

/// What a decision acts on, comparable with another's: each act's kind, subject, instances and arguments,
/// sorted.
fn subjects(decision: &Decision) -> Vec<ActKey> {
    let mut subjects: Vec<ActKey> = decision
        .steps
        .iter()
        .map(|act| {
            let mut covers = act.covers.clone();
            covers.sort();
            let kind = act.kind().to_owned();
            (
                kind,
                act.subject.id().to_owned(),
                covers,
                act.arguments.clone(),
            )
        })
        .collect();
    subjects.sort();
    subjects
}

/// What an act is, for telling held decisions apart: its kind, its subject, what it covers and what it is
/// given (a rule's act on what its alert names: another database is another act).
type ActKey = (String, String, Vec<String>, super::action::Arguments);

/// Runs (and recovery checks) of the target an approver sees.
const LAST_RUNS: u32 = 5;

/// What approvers see of a held decision. Pure.
pub fn evidence(
    meta: &RequestMeta,
    summary: &Summary,
    snapshot: &Snapshot,
    last_runs: &[AuditRecord],
    now: OffsetDateTime,
) -> Value {
    let instances: Vec<Value> = snapshot
        .instances
        .iter()
        .map(|instance| {
            let ec2 = instance.ec2.as_ref();
            let launched = ec2.and_then(|ec2| ec2.launch_time);
            json!({
                "instance-id": instance.instance_id,
                "health": instance.health.reported,
                "reason": instance.health.description.as_ref().or(instance.health.reason_code.as_ref()),
                "ec2-state": ec2.map(|ec2| ec2.state.as_str()),
                "age-secs": launched.map(|at| (now - at).whole_seconds().max(0)),
                "auto-scaling-group": instance.auto_scaling_group,
            })
        })
        .collect();
    // Whether each run that acted recovered: the outcome of its check, when listed too.
    let recovery_of = |run: &str| {
        last_runs.iter().find_map(|check| {
            (check.source == crate::audit::Source::RecoveryCheck
                && checked_run(&check.detail) == Some(run))
            .then(|| check.outcome.as_str())
        })
    };
    let runs: Vec<Value> = last_runs
        .iter()
        .map(|record| {
            let recovered = match record.acted {
                0 => None,
                _ => Some(recovery_of(&record.id).unwrap_or("not checked yet")),
            };
            json!({
                "id": record.id,
                "at": rfc3339(record.at),
                "source": record.source.as_str(),
                "outcome": record.outcome.as_str(),
                "acted": record.acted,
                "recovery": recovered,
            })
        })
        .collect();
    let detail = |key: &str| meta.detail.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "alert": {
            "source": meta.source.as_str(),
            "caller": meta.caller,
            "auth": meta.auth.as_str(),
            "verified": detail("verified"),
            "message": summary.message,
        },
        "instances": instances,
        "plan": {
            "terminate": summary.list("terminated-instance-ids"),
            "asg-unhealthy": summary.list("asg-unhealthy-instance-ids"),
            "reboot": summary.list("rebooted-instance-ids"),
            "acts": summary.actions,
            "verb": summary.verb().1,
            "skipped": summary.skipped,
        },
        "budget-left": detail("budget_left"),
        "speed-limit": detail("speed_limit"),
        "last-runs": runs,
    })
}

/// Where approvers see a held decision: the audit page's approval, under `server.public_url` when set.
pub fn approval_url(public_url: Option<&str>, id: &str) -> String {
    let base = public_url.map_or("", |url| url.trim_end_matches('/'));
    format!("{base}/ui/approvals/{id}")
}

impl Engine {
    /// Holds `decided` for approvers: the run's answer says where and until when, and the hold (the
    /// decision, the summary and the evidence) is written with its record; or joins the same decision already
    /// held. Two store reads: the target's waiting decisions, and the last runs.
    pub(super) async fn hold(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        decided: Decided<'_>,
        mut summary: Summary,
        trigger: &Trigger,
    ) -> Result<Run, EngineError> {
        let resume = &trigger.resume;
        if let Some(joined) = self
            .join_pending(meta, target, &decided, &mut summary, resume)
            .await?
        {
            return Ok(joined);
        }
        let next = resume.step.as_ref();
        let now = decided.clock.now();
        let ttl = time::Duration::seconds(
            i64::try_from(self.config.approvals.ttl_secs).unwrap_or(i64::MAX),
        );
        let expires_at = now + ttl;
        let last_runs = self.audit.recent_runs(&target.id, LAST_RUNS).await?;
        let evidence = evidence(meta, &summary, &decided.snapshot, &last_runs, now);
        let id = meta.id.clone();
        self.point_at(&mut summary, &id, expires_at);
        meta.note("held", &summary.approval);
        let mut body = json!({
            "decision": decided.decision,
            "summary": summary,
            "evidence": evidence,
        });
        // A ladder's later step held for approvers is that step once approved, in its episode.
        if let Some(next) = next {
            body["ladder"] = json!(next);
        }
        // A business metric's run is held again if its approval no longer holds when it acts.
        if let Some(why) = &trigger.needs_approval {
            body["needs_approval"] = json!(why);
        }
        // A rule verified by its alert waits, once approved, for the alerts that started the run.
        if !trigger.alerts.is_empty() {
            body["alerts"] = json!(trigger.alerts);
        }
        // A step on the whole target acts, once approved, on what the alert named.
        if !trigger.named.is_empty() {
            body["named"] = json!(trigger.named);
        }
        let required = target.approvals_required;
        tracing::info!(would_replace = ?decided.plan.act_on, required, "held for approval");
        Ok(self.counted(Run {
            hold: Some(NewApproval::new(id, &target.id, required, expires_at, body)),
            ..Run::nothing_done(summary, true, None)
        }))
    }

    /// A run that would hold the same decision as one still waiting for `target` (the same kind on the same
    /// instances, at the same ladder step; not the approval it acts on) joins it instead: its answer points at that decision, its record
    /// says so (`joined`), and no new decision, expiry or message is made. A storm of alerts in approve mode
    /// asks the approvers once. One store read, of the target's waiting decisions.
    async fn join_pending(
        &self,
        meta: &mut RequestMeta,
        target: &Target,
        decided: &Decided<'_>,
        summary: &mut Summary,
        resume: &Resume,
    ) -> Result<Option<Run>, EngineError> {
        let wanted = subjects(&decided.decision);
        let ladder = resume.step.as_ref().map_or(Value::Null, |next| json!(next));
        // A run that acts on an approval never joins that approval: it holds anew.
        let approved = resume
            .approved
            .as_ref()
            .map(|approved| approved.id.as_str());
        let pending = self.audit.pending_approvals_of(&target.id).await?;
        // One about to expire is not joined: the alert holds a decision of its own, asked anew.
        let half_ttl = time::Duration::seconds(
            i64::try_from(self.config.approvals.ttl_secs / 2).unwrap_or(i64::MAX),
        );
        let lasting = decided.clock.now() + half_ttl;
        let Some(same) = pending
            .iter()
            .filter(|approval| {
                Some(approval.id.as_str()) != approved && approval.expires_at > lasting
            })
            .find(|approval| {
                let held: Option<Decision> =
                    serde_json::from_value(approval.body["decision"].clone()).ok();
                held.is_some_and(|held| subjects(&held) == wanted)
                    && approval.body["ladder"] == ladder
            })
        else {
            return Ok(None);
        };
        self.point_at(summary, &same.id, same.expires_at);
        meta.note("joined", json!({"approval": same.id}));
        tracing::info!(approval = same.id, "joined the decision already held");
        Ok(Some(self.counted(Run::nothing_done(
            summary.clone(),
            true,
            None,
        ))))
    }

    /// Points `summary` at the held decision `id`, expiring at `expires_at`: nothing was replaced, so what would
    /// be moves from the summary's lists to its approval.
    fn point_at(&self, summary: &mut Summary, id: &str, expires_at: OffsetDateTime) {
        let public_url = self.config.server.public_url.as_deref();
        let verb = summary.verb().1.to_owned();
        let would_replace = summary.take_acted_on();
        summary.approval = Some(ApprovalRef {
            id: id.to_owned(),
            expires_at: rfc3339(expires_at),
            url: approval_url(public_url, id),
            would_replace,
            verb,
        });
    }

    /// The trigger of a run that acts on the approved decision `approval`: its target as configured, the
    /// instances it held; `None` when the target is no longer configured here.
    pub fn approved_trigger(&self, approval: &Approval) -> Option<Trigger> {
        let target =
            self.targets
                .by_place(&approval.target, &approval.account, &approval.region)?;
        let decision: Option<Decision> =
            serde_json::from_value(approval.body["decision"].clone()).ok();
        let (steps, rule_fingerprint) = decision
            .map(|decision| (decision.steps, decision.rule_fingerprint))
            .unwrap_or_default();
        let kind = steps.first().map(|act| act.kind().to_owned());
        // An act on the whole target is approved for the instances it covers: the approved run acts on the
        // target while any of them is still broken.
        let instances = steps
            .iter()
            .flat_map(super::action::Act::instances)
            .map(str::to_owned)
            .collect();
        let message = approval.body["summary"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let place = Place::new(
            Some(approval.account.clone()),
            Some(approval.region.clone()),
        );
        let trigger = Trigger::new(
            Authenticated::issued(),
            target.configured.clone(),
            message,
            false,
        );
        let mut trigger = trigger.in_place(place).approved(Approved {
            id: approval.id.clone(),
            instances,
            kind,
            rule_fingerprint,
        });
        trigger.needs_approval = approval.body["needs_approval"].as_str().map(str::to_owned);
        trigger.alerts =
            serde_json::from_value(approval.body["alerts"].clone()).unwrap_or_default();
        trigger.named = serde_json::from_value(approval.body["named"].clone()).unwrap_or_default();
        Some(
            match serde_json::from_value::<NextStep>(approval.body["ladder"].clone()) {
                Ok(next) => trigger.next_step(next),
                Err(_) => trigger,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, Source};
    use crate::engine::Names;
    use crate::engine::plan::Plan;

    #[test]
    fn the_evidence_says_what_was_seen_and_whether_the_last_runs_recovered() {
        let mut meta = RequestMeta::new(Source::Sns, Some("203.0.113.9".into()));
        meta.note(
            "verified",
            json!({"topic_arn": "arn:aws:sns:us-east-1:1:alarms"}),
        );
        meta.note("budget_left", json!({"target_hour": 4}));
        let plan = Plan {
            registered: vec!["i-1".into()],
            ..Plan::default()
        };
        let summary = Summary::of_plan(
            "alarm".into(),
            Names::default(),
            &plan,
            false,
            "H".into(),
            &crate::actions::builtin(),
        );
        let now = OffsetDateTime::now_utc();
        let snapshot = Snapshot {
            target: "web".into(),
            instances: vec![crate::engine::port::InstanceView {
                instance_id: "i-1".into(),
                health: crate::engine::health::classic("OutOfService", Some("Instance"), None),
                ec2: Some(crate::engine::port::Ec2Facts {
                    state: "running".into(),
                    launch_time: Some(now - time::Duration::hours(3)),
                    tags: vec![],
                    zone: None,
                    image_id: None,
                }),
                auto_scaling_group: Some("web-asg".into()),
            }],
        };
        let acted =
            RequestMeta::new(Source::Sns, None).into_record(Outcome::Completed, 200, None, 1);
        let mut check = RequestMeta::new(Source::RecoveryCheck, None);
        check.note("recovery", json!({"run": acted.id}));
        let check = check.into_record(Outcome::Recovered, 200, None, 0);
        let evidence = evidence(&meta, &summary, &snapshot, &[check, acted], now);
        assert_eq!(evidence["alert"]["source"], "sns");
        assert_eq!(evidence["alert"]["caller"], "203.0.113.9");
        assert_eq!(
            evidence["alert"]["verified"]["topic_arn"],
            "arn:aws:sns:us-east-1:1:alarms"
        );
        let instance = &evidence["instances"][0];
        assert_eq!(instance["health"], "OutOfService");
        assert_eq!(instance["ec2-state"], "running");
        assert_eq!(instance["age-secs"], 3 * 3600);
        assert_eq!(instance["auto-scaling-group"], "web-asg");
        assert_eq!(evidence["budget-left"]["target_hour"], 4);
        assert_eq!(evidence["last-runs"][1]["recovery"], "recovered");
        assert_eq!(
            evidence["last-runs"][0]["recovery"],
            Value::Null,
            "a check acts on nothing"
        );
    }
}
