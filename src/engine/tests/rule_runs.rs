//! A rule's run goes through every stage a target's does, keyed on the rule: it acts on the instances its
//! alert selected (never "all", never the balancer's capacity rules), under its own mode, pause, cooldown,
//! budget and breaker, and its step is checked on the instances it acted on.

use super::*;
use crate::engine::route::Matched;

/// A rule that reboots the instance its alert names (and one that reboots those tagged role=checkout), with
/// `settings` of its own.
fn rules(settings: &str) -> String {
    format!(
        "[[rules]]\nname = \"disk-full\"\nladder = [\"reboot\"]\n{settings}\n\
         [[rules]]\nname = \"checkout\"\ninstances = \"tag:role=checkout\"\nladder = [\"reboot\"]\n"
    )
}

/// The trigger of a rule's run on `resources`.
fn rule_trigger(rule: &str, resources: Resources) -> Trigger {
    let matched = Matched {
        rule: rule.to_owned(),
        resources,
        needs_approval: None,
        alerts: Vec::new(),
        named: Default::default(),
        on_alert: false,
    };
    Trigger::for_rule(Authenticated::issued(), matched, "disk".to_owned(), false)
}

/// One run of the disk rule on `instance`.
async fn disk_run(h: &Harness, instance: &str) -> Result<Run, EngineError> {
    let trigger = rule_trigger("disk-full", Resources::Instances(vec![instance.to_owned()]));
    h.engine.run(meta(), &trigger, None).await
}

/// The identity of the test's rule `name`.
fn rule_id(name: &str) -> crate::target::TargetId {
    home_id(crate::target::TargetKind::Rule, name)
}

#[tokio::test]
async fn a_rule_acts_on_its_alerts_instance_only_unbounded_by_a_balancers_capacity_rules() {
    let h = harness_with(FakeFleet::default(), "", &rules("")).await;
    let run = disk_run(&h, "i-0abc1234").await.unwrap();
    // One instance of one, out of service: a balancer's run would refuse `too-many-unhealthy`.
    assert_eq!(run.summary.refused, None);
    assert_eq!(run.summary.rule.as_deref(), Some("disk-full"));
    assert_eq!(run.summary.list("rebooted-instance-ids"), ["i-0abc1234"]);
    assert_eq!(
        *h.fleet.done.lock().unwrap(),
        [("reboot", "i-0abc1234".to_owned())]
    );
    assert_eq!(
        h.fleet.snapshots.load(Ordering::SeqCst),
        0,
        "no balancer read"
    );
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.target.as_deref(), Some("disk-full"));
}

#[tokio::test]
async fn a_selection_of_nothing_is_refused_and_a_tag_selects_its_instances() {
    let h = harness_with(FakeFleet::default(), "", &rules("")).await;
    for (resources, said) in [
        (Resources::Instances(Vec::new()), "names no instance"),
        (
            Resources::Tagged {
                key: "role".into(),
                value: "nothing".into(),
            },
            "tagged role=nothing",
        ),
    ] {
        let trigger = rule_trigger("checkout", resources);
        let err = h.engine.run(meta(), &trigger, None).await.unwrap_err();
        assert_eq!((err.code(), err.status()), ("no-resource", 422));
        assert!(err.to_string().contains(said), "{err}");
    }
    // An id EC2 does not know is skipped, not acted on.
    let gone = disk_run(&h, "i-gone1234").await.unwrap();
    assert!(gone.summary.list("rebooted-instance-ids").is_empty());
    assert_eq!(gone.summary.skipped.len(), 1);
    let tagged = Resources::Tagged {
        key: "role".into(),
        value: "checkout".into(),
    };
    let run = h
        .engine
        .run(meta(), &rule_trigger("checkout", tagged), None)
        .await
        .unwrap();
    assert_eq!(
        run.summary.list("rebooted-instance-ids"),
        ["i-tag1", "i-tag2"]
    );
    assert!(h.fleet.done.lock().unwrap().len() == 2);
}

#[tokio::test]
async fn a_rules_mode_pause_and_cooldown_are_its_own() {
    let h = harness_with(FakeFleet::default(), "", &rules("cooldown_secs = 600")).await;
    assert!(disk_run(&h, "i-0abc1234").await.unwrap().acted == 1);
    // The rule's cooldown holds whatever instance its next alert names; a target's runs are not held.
    let again = disk_run(&h, "i-0def5678").await.unwrap();
    assert_eq!(again.summary.refused_rule, Some("cooldown"));
    assert_eq!(run_once(&h, "web").await.acted, 1);
    // Paused by name: refused with no look; the other rule is not paused.
    h.store
        .pause(Scope::Target(&rule_id("disk-full")), "disk work")
        .await
        .unwrap();
    let paused = disk_run(&h, "i-0abc1234").await.unwrap();
    assert_eq!(paused.summary.refused_rule, Some("paused"));
    let tagged = Resources::Tagged {
        key: "role".into(),
        value: "checkout".into(),
    };
    let other = h
        .engine
        .run(meta(), &rule_trigger("checkout", tagged), None)
        .await
        .unwrap();
    assert_eq!(other.acted, 2);

    let observing = harness_with(FakeFleet::default(), "", &rules("mode = \"observe\"")).await;
    let run = disk_run(&observing, "i-0abc1234").await.unwrap();
    assert_eq!(run.summary.mode, Some("observe"));
    assert_eq!(run.summary.list("rebooted-instance-ids"), ["i-0abc1234"]);
    assert!(observing.fleet.done.lock().unwrap().is_empty(), "observed");
}

#[tokio::test]
async fn a_rules_budget_cuts_its_runs_and_opens_its_breaker() {
    let h = harness_with(
        FakeFleet::default(),
        "max_acted_per_hour = 1",
        &rules("cooldown_secs = 0"),
    )
    .await;
    assert_eq!(disk_run(&h, "i-0abc1234").await.unwrap().acted, 1);
    let cut = disk_run(&h, "i-0def5678").await.unwrap();
    assert_eq!(cut.summary.skipped[0].reason, SkipReason::Budget);
    assert!(cut.tripped.is_some());
    let refused = disk_run(&h, "i-0def5678").await.unwrap();
    assert_eq!(refused.summary.refused_rule, Some("breaker-open"));
    // The balancer's budget and breaker are its own.
    assert_eq!(run_once(&h, "web").await.acted, 1);
}

#[tokio::test]
async fn a_business_metrics_run_is_held_for_approvers_even_in_auto() {
    let approvers = "[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = harness_with(FakeFleet::default(), approvers, &rules("")).await;
    let matched = Matched {
        rule: "disk-full".into(),
        resources: Resources::Instances(vec!["i-0abc1234".into()]),
        needs_approval: Some("a business metric".into()),
        alerts: Vec::new(),
        named: Default::default(),
        on_alert: false,
    };
    let trigger = Trigger::for_rule(Authenticated::issued(), matched, "orders".into(), false);
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert!(run.hold.is_some(), "held");
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(record.detail["business_metric"], "a business metric");
}

#[tokio::test]
async fn a_rules_step_is_checked_on_its_instances_and_escalates_when_one_is_not_back() {
    let stopped = FakeFleet {
        ec2_states: HashMap::from([("i-0def5678".to_owned(), "stopped".to_owned())]),
        ..FakeFleet::default()
    };
    let h = harness_with(
        stopped,
        "reboot_verify_secs = 1",
        &rules("cooldown_secs = 0"),
    )
    .await;
    let back = disk_run(&h, "i-0abc1234").await.unwrap();
    let down = disk_run(&h, "i-0def5678").await.unwrap();
    assert_eq!((back.acted, down.acted), (1, 1));
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    while jobs.run_next().await.unwrap() {}
    let checks = checks(&h).await;
    let of = |run: &Run| {
        checks
            .iter()
            .find(|r| r.detail["ladder"]["run"] == run.summary.audit_id.as_str())
            .map(|r| r.outcome)
    };
    assert_eq!(of(&back), Some(Outcome::Recovered));
    assert_eq!(of(&down), Some(Outcome::NotRecovered));
    assert_eq!(
        h.fleet.snapshots.load(Ordering::SeqCst),
        0,
        "no balancer read"
    );
}

/// A run of the disk rule on `instance` started by the CloudWatch alarm `alarm`.
async fn alarm_run(h: &Harness, instance: &str, alarm: &str) -> Run {
    let message = serde_json::json!({
        "AlarmName": alarm,
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "Trigger": {"Namespace": "CWAgent", "MetricName": "disk_used_percent",
                    "Dimensions": [{"name": "InstanceId", "value": instance}]}
    });
    let matched = Matched {
        rule: "disk-full".into(),
        resources: Resources::Instances(vec![instance.to_owned()]),
        needs_approval: None,
        alerts: Vec::new(),
        named: Default::default(),
        on_alert: false,
    };
    let trigger = Trigger::for_rule(Authenticated::issued(), matched, message.to_string(), false);
    h.engine.run(meta(), &trigger, None).await.unwrap()
}

/// The check of the run `run_id`, running the jobs as they fall due, for at most 15 s.
async fn check_when_due(
    h: &Harness,
    jobs: &crate::jobs::Jobs,
    run_id: &str,
) -> crate::audit::AuditRecord {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        while jobs.run_next().await.unwrap() {}
        let found = checks(h)
            .await
            .into_iter()
            .find(|r| r.detail["ladder"]["run"] == run_id);
        match found {
            Some(check) => return check,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => panic!("the check of {run_id} did not come in time"),
        }
    }
}

/// A harness whose disk rule is verified by its alarm (or alert), within 5 s, its reboot checked after 1 s.
async fn verified_by_its_alarm() -> Harness {
    let settings = "cooldown_secs = 0\nverify = \"alarm-ok\"\nverify_within_secs = 5";
    harness_with(
        FakeFleet::default(),
        "reboot_verify_secs = 1",
        &rules(settings),
    )
    .await
}

/// The recovery checks recorded so far, newest first.
async fn checks(h: &Harness) -> Vec<crate::audit::AuditRecord> {
    h.store
        .list(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == Source::RecoveryCheck)
        .collect()
}

#[tokio::test]
async fn a_rule_verified_by_its_alarm_recovers_when_the_alarm_is_ok_again_and_escalates_when_not() {
    let h = verified_by_its_alarm().await;
    let fixed = alarm_run(&h, "i-0abc1234", "disk-fixed").await;
    let stuck = alarm_run(&h, "i-0def5678", "disk-stuck").await;
    assert_eq!((fixed.acted, stuck.acted), (1, 1));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let state = |value: &str, updated_at| super::port::AlarmState {
        value: value.into(),
        updated_at,
    };
    {
        let mut alarms = h.fleet.alarms.lock().unwrap();
        alarms.insert("disk-fixed".into(), state("OK", now));
        // OK, but from before the action: it does not count.
        alarms.insert("disk-stuck".into(), state("OK", now - 60));
    }
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while jobs.run_next().await.unwrap() {}
    let seen = checks(&h).await;
    assert_eq!(seen.len(), 1, "the stuck alarm's check waits: {seen:?}");
    assert_eq!(seen[0].outcome, Outcome::Recovered);
    assert_eq!(seen[0].detail["alarm"]["state"]["value"], "OK");
    let stuck_check = check_when_due(&h, &jobs, &stuck.summary.audit_id).await;
    assert_eq!(stuck_check.outcome, Outcome::NotRecovered);
    assert_eq!(stuck_check.detail["alarm"]["ok"], false);
    assert_eq!(
        stuck_check.detail["seen"]["instances"][0]["health"]["reported"], "alarm-not-ok",
        "{}",
        stuck_check.detail
    );
}

#[tokio::test]
async fn a_rules_step_that_aws_refused_is_not_recovered_though_its_instance_runs() {
    let refusing = FakeFleet {
        failing: HashSet::from(["i-0abc1234".to_owned()]),
        ..FakeFleet::default()
    };
    let h = harness_with(
        refusing,
        "reboot_verify_secs = 1",
        &rules("cooldown_secs = 0"),
    )
    .await;
    let run = disk_run(&h, "i-0abc1234").await.unwrap();
    assert_eq!(run.summary.errors.len(), 1, "{:?}", run.summary);
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while jobs.run_next().await.unwrap() {}
    let seen = checks(&h).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].outcome, Outcome::NotRecovered);
    assert_eq!(
        seen[0].detail["seen"]["instances"][0]["health"]["reported"],
        "act-failed"
    );
}

#[tokio::test]
async fn a_rule_verified_by_its_alert_recovers_once_the_alert_is_recorded_resolved() {
    let h = verified_by_its_alarm().await;
    let alert_run = |instance: &str, identity: &str| {
        let matched = Matched {
            rule: "disk-full".into(),
            resources: Resources::Instances(vec![instance.to_owned()]),
            needs_approval: None,
            alerts: vec![identity.to_owned()],
            named: Default::default(),
            on_alert: false,
        };
        Trigger::for_rule(
            Authenticated::issued(),
            matched,
            "kafka is down".into(),
            false,
        )
    };
    let (fixed, stuck) = (
        alert_run("i-0abc1234", "fp-1"),
        alert_run("i-0def5678", "fp-2"),
    );
    let fixed = h.engine.run(meta(), &fixed, None).await.unwrap();
    let stuck = h.engine.run(meta(), &stuck, None).await.unwrap();
    let record = h.store.get(&fixed.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(
        record.detail["alarm_check"]["alerts"],
        serde_json::json!(["fp-1"])
    );
    // Alertmanager says fp-1 resolved (and fp-3, which no run waits for); fp-2 stays firing.
    let (ids, texts) = (vec!["fp-1".to_owned(), "fp-3".to_owned()], vec![]);
    h.engine
        .record_resolved(Source::Alertmanager, None, "disk-full", &ids, &texts)
        .await
        .unwrap();
    let jobs = h.jobs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while jobs.run_next().await.unwrap() {}
    let seen = checks(&h).await;
    assert_eq!(seen.len(), 1, "the firing alert's check waits: {seen:?}");
    assert_eq!(seen[0].outcome, Outcome::Recovered);
    assert_eq!(seen[0].detail["alarm"]["state"]["value"], "resolved");
    let stuck_check = check_when_due(&h, &jobs, &stuck.summary.audit_id).await;
    assert_eq!(stuck_check.outcome, Outcome::NotRecovered);
    assert_eq!(stuck_check.detail["alarm"]["state"]["value"], "firing");
}

#[tokio::test]
async fn an_approval_or_a_takeover_under_a_rule_changed_since_does_not_act() {
    let approvers = "[approvals]\ntokens = [\"approver-token-0123456789\"]";
    let h = harness_with(
        FakeFleet::default(),
        approvers,
        &rules("mode = \"approve\"\ncooldown_secs = 0"),
    )
    .await;
    let held = disk_run(&h, "i-0abc1234").await.unwrap();
    let id = held.summary.approval.as_ref().expect("held").id.clone();
    let record = h.store.get(&held.summary.audit_id).await.unwrap().unwrap();
    let fingerprint = record.detail["rule_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fingerprint.len(), 16);
    let mut approval = h.store.approval(&id).await.unwrap().unwrap();
    assert_eq!(
        approval.body["decision"]["rule-fingerprint"],
        fingerprint.as_str()
    );
    // The approvers saw the rule as it was before a change.
    approval.body["decision"]["rule-fingerprint"] = "0123456789abcdef".into();
    let trigger = h.engine.approved_trigger(&approval).unwrap();
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.acted, 0);
    assert!(run.summary.approval.is_some(), "held again");
    let record = h.store.get(&run.summary.audit_id).await.unwrap().unwrap();
    assert_eq!(
        record.detail["approval_stale"]["rule_fingerprint"],
        "0123456789abcdef"
    );
    assert_eq!(record.detail["approval_stale"]["now"], fingerprint.as_str());

    // A dead attempt the rule decided before a change: its takeover is refused, nothing done.
    let mut dead = meta();
    dead.target = Some("disk-full".into());
    dead.acted_at = Some(OffsetDateTime::now_utc());
    let decision = Decision {
        run_id: dead.id.clone(),
        target: "disk-full".into(),
        steps: vec![Act::on_instance("i-0abc1234", "reboot", "reboot", None)],
        in_service: 0,
        takeover_of: None,
        attempts: Vec::new(),
        rule_fingerprint: Some("0123456789abcdef".into()),
    };
    h.store
        .put_intent(
            dead.record(Outcome::Acting, 0, None, 1),
            serde_json::to_string(&decision).unwrap(),
        )
        .await
        .unwrap();
    let trigger = rule_trigger("disk-full", Resources::Instances(vec!["i-0abc1234".into()]));
    let run = h
        .engine
        .take_over(&mut meta(), &trigger, &dead.id)
        .await
        .unwrap();
    assert_eq!(
        run.summary.refused_rule,
        Some("rule-changed"),
        "{:?}",
        run.summary
    );
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
}

#[tokio::test]
async fn a_ladders_next_step_under_a_rule_changed_since_is_refused() {
    let h = harness_with(FakeFleet::default(), "", &rules("cooldown_secs = 0")).await;
    // A ladder's next step after a step the rule took before it changed: refused too.
    let next = NextStep {
        episode: "01RUN".into(),
        index: 0,
        after: "01RUN".into(),
        instances: vec!["i-0abc1234".into()],
        alarm: None,
        alerts: Vec::new(),
        rule_fingerprint: Some("0123456789abcdef".into()),
    };
    let trigger = rule_trigger("disk-full", Resources::None).next_step(next.clone());
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.refused_rule, Some("rule-changed"));
    assert!(h.fleet.done.lock().unwrap().is_empty(), "no AWS write");
    // Under the rule as it still is, the step runs.
    let config = &h.engine.config;
    let now = config.rules[0].fingerprint(&config.actions);
    let next = NextStep {
        rule_fingerprint: Some(now),
        ..next
    };
    let trigger = rule_trigger("disk-full", Resources::None).next_step(next);
    let run = h.engine.run(meta(), &trigger, None).await.unwrap();
    assert_eq!(run.summary.refused_rule, None, "{:?}", run.summary);
    assert_eq!(run.acted, 1);
}

/// A harness whose rule `disk-full` runs the entry `limited`, a reboot with `limits`.
async fn limited(limits: &str) -> Harness {
    let config = format!(
        "[[actions]]\nname = \"limited\"\nkind = \"reboot\"\n{limits}\n\
         [[rules]]\nname = \"disk-full\"\nladder = [\"limited\"]\ncooldown_secs = 0\n"
    );
    harness_with(FakeFleet::default(), "", &config).await
}

/// One run of the disk rule on `ids`.
async fn run_on(h: &Harness, ids: &[&str]) -> Run {
    let ids = ids.iter().map(|id| (*id).to_owned()).collect();
    let trigger = rule_trigger("disk-full", Resources::Instances(ids));
    h.engine.run(meta(), &trigger, None).await.unwrap()
}

#[tokio::test]
async fn an_actions_entry_caps_a_run_and_holds_back_what_it_acted_on_lately_in_no_ones_place() {
    let h = limited("max_per_run = 1\ncooldown_secs = 600").await;
    let (a, b) = ("i-0abc1234", "i-0def5678");
    // Two instances, one a run: the other is skipped cap-reached.
    let first = run_on(&h, &[a, b]).await;
    assert_eq!(first.summary.list("rebooted-instance-ids"), [a]);
    assert_eq!(first.summary.skipped[0].reason, SkipReason::CapReached);
    // The one it rebooted is in the entry's cooldown, and takes no place under the cap: the other is acted on.
    let second = run_on(&h, &[a, b]).await;
    assert_eq!(second.summary.list("rebooted-instance-ids"), [b]);
    assert_eq!(second.summary.skipped[0].instance_id, a);
    assert_eq!(second.summary.skipped[0].reason, SkipReason::ActionCooldown);
    let record = h
        .store
        .get(&second.summary.audit_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.detail["action_limits"]["action"], "limited");
    // Both cooling down: nothing acted on, and a cooldown opens no breaker.
    let third = run_on(&h, &[a, b]).await;
    assert_eq!((third.acted, third.tripped.is_none()), (0, true));
    assert_eq!(h.fleet.done.lock().unwrap().len(), 2, "two reboots in all");
}

#[tokio::test]
async fn an_actions_entry_spent_for_the_day_opens_the_breaker_rather_than_leave_the_instance_unseen()
 {
    let h = limited("max_per_day = 1").await;
    let a = "i-0abc1234";
    assert_eq!(run_on(&h, &[a]).await.acted, 1);
    let spent = run_on(&h, &[a]).await;
    assert_eq!(spent.acted, 0);
    assert_eq!(spent.summary.skipped[0].reason, SkipReason::Budget);
    let tripped = spent.tripped.expect("the breaker opened");
    assert!(
        tripped.reason.contains("max_per_hour or max_per_day"),
        "{tripped:?}"
    );
    let refused = run_on(&h, &[a]).await;
    assert_eq!(refused.summary.refused_rule, Some("breaker-open"));
    assert_eq!(h.fleet.done.lock().unwrap().len(), 1, "one reboot in all");
}

/// The identity of the instance `id` in the test's home.
fn instance_id(id: &str) -> crate::target::TargetId {
    home_id(crate::target::TargetKind::Instance, id)
}

#[tokio::test]
async fn an_instance_paused_or_silenced_on_its_own_is_left_alone_by_every_run_in_its_place() {
    let h = harness_with(FakeFleet::default(), "", &rules("cooldown_secs = 0")).await;
    let (a, b) = ("i-0abc1234", "i-0def5678");
    h.store
        .pause(Scope::Target(&instance_id(a)), "disk forensics")
        .await
        .unwrap();
    // The same id paused in another region holds nothing here.
    let elsewhere = crate::target::TargetId {
        region: "eu-west-1".into(),
        ..instance_id(b)
    };
    h.store
        .pause(Scope::Target(&elsewhere), "elsewhere")
        .await
        .unwrap();
    // The rule's run acts on the other instance only; the paused one is skipped, the run not refused.
    let run = run_on(&h, &[a, b]).await;
    assert_eq!(run.summary.refused_rule, None);
    assert_eq!(run.summary.list("rebooted-instance-ids"), [b]);
    assert_eq!(run.summary.skipped[0].instance_id, a);
    assert_eq!(run.summary.skipped[0].reason, SkipReason::Paused);
    // Silenced too, the other is left alone as well: nothing to do, and no breaker opens.
    h.store
        .silence(
            Scope::Target(&instance_id(b)),
            "deploy",
            "ops",
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let held = run_on(&h, &[a, b]).await;
    assert_eq!((held.acted, held.tripped.is_none()), (0, true));
    let reasons: Vec<SkipReason> = held.summary.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(reasons, [SkipReason::Paused, SkipReason::Silenced]);
    // A balancer's run skips a paused instance of its own as well.
    h.store
        .pause(Scope::Target(&instance_id("i-bad")), "keep for a look")
        .await
        .unwrap();
    let web = run_once(&h, "web").await;
    assert!(web.summary.list("terminated-instance-ids").is_empty());
    assert!(
        web.summary
            .skipped
            .iter()
            .any(|skip| skip.instance_id == "i-bad" && skip.reason == SkipReason::Paused)
    );
    // Resumed, the instance is acted on again.
    assert!(
        h.store
            .resume(Scope::Target(&instance_id(a)))
            .await
            .unwrap()
    );
    assert_eq!(
        run_on(&h, &[a]).await.summary.list("rebooted-instance-ids"),
        [a]
    );
    assert_eq!(h.fleet.done.lock().unwrap().len(), 2, "two reboots in all");
}
