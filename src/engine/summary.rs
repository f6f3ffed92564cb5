//! The summary of a plan: what a run would act on and how, as its action kinds name each act's list. The
//! summary itself is the external contract's (`contract::Summary`).

use super::action::Kinds;
use super::plan::{Plan, Refusal};
use crate::contract::{ActEntry, Names, PLANNED, Summary};

impl Summary {
    /// The summary of a plan before any action: what would be acted on, and how (`kinds` name each act's list).
    pub fn of_plan(
        message: String,
        target: Names,
        plan: &Plan,
        dry_run: bool,
        audit_id: String,
        kinds: &Kinds,
    ) -> Self {
        let mut summary = Self::ignored(message, String::new(), dry_run, audit_id);
        summary.ignored = None;
        for kind in kinds.all() {
            for list in kind.lists() {
                summary.listed.entry(list).or_default();
            }
        }
        let mut named = plan.act_on.iter().filter_map(|act| kinds.get(act.kind()));
        if let Some(first) = named.next() {
            summary.words = if named.all(|kind| kind.name() == first.name()) {
                (first.done(), first.verb())
            } else {
                ("acted on", "act on")
            };
        }
        for act in &plan.act_on {
            let list = kinds
                .get(act.kind())
                .map_or("terminated-instance-ids", |kind| {
                    kind.listed_as(&act.action)
                });
            summary.list_mut(list).push(act.subject.id().to_owned());
            summary.actions.push(ActEntry {
                subject: act.subject.clone(),
                covers: act.covers.clone(),
                action: act.action.clone(),
                state: Some(PLANNED.to_owned()),
                handle: None,
                error: None,
            });
        }
        Self {
            elb_instance_ids: plan.registered.clone(),
            load_balancer: target.load_balancer,
            target_group: target.target_group,
            account: target.account,
            region: target.region,
            rule: target.rule,
            unhealthy_instance_ids: plan.unhealthy.clone(),
            skipped: plan.skipped.clone(),
            refused: plan.refused.as_ref().map(|r| r.sentence()),
            refused_rule: plan.refused.as_ref().map(Refusal::rule),
            ..summary
        }
    }
}
