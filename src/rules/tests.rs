use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn rules(text: &str) -> Result<Rules, RuleError> {
    #[derive(serde::Deserialize)]
    struct File {
        rules: Vec<RuleConfig>,
    }
    let file: File = toml::from_str(text).unwrap();
    Rules::compile(&file.rules)
}

fn disk_alarm(value: f64) -> AlertFacts {
    AlertFacts {
        source: "sns".into(),
        name: "disk-used-web-1".into(),
        state: "firing".into(),
        namespace: "CWAgent".into(),
        metric: "disk_used_percent".into(),
        dimensions: BTreeMap::from([
            ("InstanceId".into(), "i-0abc".into()),
            ("path".into(), "/".into()),
        ]),
        value: Some(value),
        threshold: Some(90.0),
        ..AlertFacts::default()
    }
}

fn kafka_down() -> AlertFacts {
    AlertFacts {
        source: "alertmanager".into(),
        name: "KafkaBrokerDown".into(),
        state: "firing".into(),
        severity: "page".into(),
        labels: BTreeMap::from([
            ("alertname".into(), "KafkaBrokerDown".into()),
            ("instance".into(), "i-0def".into()),
            ("job".into(), "kafka".into()),
        ]),
        ..AlertFacts::default()
    }
}

const RULES: &str = r#"
[[rules]]
name = "disk-full"
sources = ["sns"]
match = { namespace = "CWAgent", metric = "disk_used_percent", alarm_name = "re:disk-used-.*" }
when = "alert.value > 92.0 && alert.dimensions.path == '/'"

[[rules]]
name = "kafka-down"
match = { labels = { job = "kafka" }, severity = "re:page|critical" }
when = "alert.labels.instance.startsWith('i-')"

[[rules]]
name = "anything-firing"
"#;

#[test]
fn the_first_rule_that_matches_is_the_alerts() {
    let rules = rules(RULES).unwrap();
    let name = |alert: &AlertFacts| rules.first_match(alert, 0).map(|rule| rule.name.clone());
    assert_eq!(name(&disk_alarm(95.0)).as_deref(), Some("disk-full"));
    assert_eq!(name(&disk_alarm(91.0)).as_deref(), Some("anything-firing"));
    assert_eq!(name(&kafka_down()).as_deref(), Some("kafka-down"));
    let resolved = AlertFacts {
        state: "resolved".into(),
        ..kafka_down()
    };
    assert_eq!(
        name(&resolved),
        None,
        "rules consider firing alerts by default"
    );
}

#[test]
fn explain_names_what_failed_with_the_alerts_value() {
    let rules = rules(RULES).unwrap();
    let verdicts = rules.explain(&disk_alarm(91.0), 0);
    assert_eq!(verdicts.len(), 3);
    assert!(!verdicts[0].matched);
    let failed = verdicts[0].failed.as_deref().unwrap();
    assert!(
        failed.contains("alert.value > 92.0") && failed.contains("false"),
        "{failed}"
    );
    let failed = verdicts[1].failed.as_deref().unwrap();
    assert_eq!(failed, "match.severity: the alert's is \"\"");
    assert!(verdicts[2].matched);
    let kafka = rules.explain(
        &AlertFacts {
            severity: "info".into(),
            ..kafka_down()
        },
        0,
    );
    assert_eq!(
        kafka[1].failed.as_deref(),
        Some("match.severity: the alert's is \"info\"")
    );
}

#[test]
fn a_when_that_fails_to_evaluate_does_not_match() {
    let missing =
        rules("[[rules]]\nname = \"x\"\nwhen = \"alert.labels.missing == 'y'\"\n").unwrap();
    let verdict = &missing.explain(&kafka_down(), 0)[0];
    assert!(!verdict.matched);
    assert!(
        verdict.failed.as_deref().unwrap().contains("failed"),
        "{verdict:?}"
    );
    let now = rules("[[rules]]\nname = \"x\"\nwhen = \"now > 100\"\n").unwrap();
    assert!(now.first_match(&kafka_down(), 101).is_some());
    assert!(now.first_match(&kafka_down(), 99).is_none());
}

#[test]
fn bad_rules_are_refused_at_start_up_naming_the_rule_and_where() {
    let refused = |text: &str| rules(text).unwrap_err().to_string();
    let syntax = refused("[[rules]]\nname = \"x\"\nwhen = \"alert.value >\"\n");
    assert!(
        syntax.contains("rule \"x\"") && syntax.contains("1:"),
        "{syntax}"
    );
    let unknown = refused("[[rules]]\nname = \"x\"\nwhen = \"alert.name == 'a' && host == 'b'\"\n");
    assert!(unknown.contains("\"host\" at 1:22"), "{unknown}");
    let field = refused("[[rules]]\nname = \"x\"\nwhen = \"alert.nmae == 'a'\"\n");
    assert!(field.contains("alert.nmae at 1:"), "{field}");
    let indexed = refused("[[rules]]\nname = \"x\"\nwhen = \"alert['nmae'] == 'a'\"\n");
    assert!(indexed.contains("alert.nmae"), "{indexed}");
    let long = format!(
        "[[rules]]\nname = \"x\"\nwhen = \"{}true\"\n",
        "true && ".repeat(200)
    );
    assert!(refused(&long).contains("characters long"));
    let deep = format!(
        "[[rules]]\nname = \"x\"\nwhen = \"{}1{} == 1\"\n",
        "1 + (".repeat(40),
        ")".repeat(40)
    );
    let deep = refused(&deep);
    assert!(deep.contains("nests deeper than 24 levels at 1:"), "{deep}");
    // As deep as the length allows, the parser answers (an error or a program), never a crash.
    let parens = format!(
        "[[rules]]\nname = \"x\"\nwhen = \"{}1{} == 1\"\n",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert!(rules(&parens).is_err(), "too deep to parse");
    let brackets = format!(
        "[[rules]]\nname = \"x\"\nwhen = \"{}1{} == 1\"\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert!(rules(&brackets).is_err(), "too deep to run");
    assert!(
        refused("[[rules]]\nname = \"x\"\nmatch = { alarm_name = \"re:(\" }\n")
            .contains("match.alarm_name")
    );
    assert!(
        refused("[[rules]]\nname = \"x\"\n[[rules]]\nname = \"x\"\n").contains("names two rules")
    );
    assert!(refused("[[rules]]\nname = \"x\"\nsources = [\"email\"]\n").contains("sources"));
    assert!(refused("[[rules]]\nname = \"x\"\non = [\"ok\"]\n").contains("on"));
    assert!(refused("[[rules]]\nname = \"\"\n").contains("#1"));
    assert!(
        refused("[[rules]]\nname = \"x\"\ninstances = \"none\"\n")
            .contains("verify = \"alarm-ok\""),
        "a rule on no instance has only its alarm to judge it by"
    );
    rules("[[rules]]\nname = \"x\"\ninstances = \"none\"\nverify = \"alarm-ok\"\n").unwrap();
    assert!(
        refused("[[rules]]\nname = \"Instance/i-0abc1234\"\n").contains("may not begin with"),
        "an instance's brakes are kept under such names"
    );
    // Names a comprehension binds are variables inside it.
    rules("[[rules]]\nname = \"x\"\nwhen = \"alert.labels.exists(k, k == 'job')\"\n").unwrap();
}

#[test]
fn crafted_expressions_are_refused_before_they_ever_run() {
    let compiled = |when: &str| {
        let text = format!("[[rules]]\nname = \"x\"\nwhen = '''{when}'''\n");
        rules(&text)
    };
    let refused = |when: &str| compiled(when).unwrap_err().to_string();
    // Optional syntax would read a misspelt field as absent instead of failing.
    assert!(refused("alert.?nme.orValue('a') == 'a'").contains("rule \"x\""));
    assert!(refused("alert['na' + 'me'] == 'x'").contains("computed key"));
    assert!(refused("[alert].exists(a, a.nme == 'x')").contains("reads alert whole"));
    assert!(refused("{'a': alert}.a.nme == 'x'").contains("reads alert whole"));
    let nested = refused("[1, 2].all(a, [3, 4].all(b, a < b))");
    assert!(nested.contains("nests a comprehension"), "{nested}");
    let long_list = format!("alert.name in [{}]", vec!["'a'"; 65].join(", "));
    assert!(refused(&long_list).contains("writes 65 elements"));
    assert!(refused("alert.name.matches('(')").contains("not a regular expression"));
    assert!(refused("now.seconds > 1").contains("now is a number"));
    let shadowed = refused("[1].exists(alert, alert > 0) && alert.nme == ''");
    assert!(shadowed.contains("alert.nme"), "{shadowed}");
    // Positions count characters, whatever the text before them.
    let unicode = refused("'é' == 'é' && host == 'b'");
    assert!(unicode.contains("\"host\" at 1:15"), "{unicode}");
    let escaped = rules("[[rules]]\nname = \"x\"\nmatch = { alarm_name = \"re:a)|(b\" }\n");
    assert!(
        escaped
            .unwrap_err()
            .to_string()
            .contains("match.alarm_name")
    );
    // What CEL allows and a rule needs still compiles.
    for when in [
        "type(alert.value) == double",
        "has(alert.labels.job) && 'job' in alert.labels",
        "alert.labels.exists(k, k.startsWith('team'))",
        "alert['name'] == 'x' && alert.value == null",
    ] {
        compiled(when).unwrap_or_else(|err| panic!("{when}: {err}"));
    }
}

#[test]
fn every_field_of_an_alert_can_be_read() {
    for field in FIELDS {
        let text = format!("[[rules]]\nname = \"x\"\nwhen = \"has(alert.{field}) || true\"\n");
        rules(&text).unwrap();
        let present = rules(&format!(
            "[[rules]]\nname = \"x\"\nwhen = \"has(alert.{field})\"\n"
        ))
        .unwrap();
        assert!(
            present.first_match(&kafka_down(), 0).is_some(),
            "alert.{field} is present"
        );
    }
}

proptest! {
    #[test]
    fn first_match_is_the_first_rule_explain_says_matched(
        job in "[a-z]{1,6}",
        severity in "(page|info|critical)",
        value in proptest::option::of(0.0f64..200.0),
        state in "(firing|resolved)",
    ) {
        let rules = rules(RULES).unwrap();
        let alert = AlertFacts {
            state,
            severity,
            value,
            labels: BTreeMap::from([("job".into(), job), ("instance".into(), "i-1".into())]),
            ..disk_alarm(0.0)
        };
        let first = rules.explain(&alert, 0).into_iter().find(|v| v.matched).map(|v| v.rule);
        prop_assert_eq!(rules.first_match(&alert, 0).map(|r| r.name.clone()), first);
    }
}

#[test]
fn a_manual_request_runs_only_a_rule_that_lists_manual() {
    let rules = rules(&format!(
        "{RULES}\n[[rules]]\nname = \"by-hand\"\nsources = [\"sns\", \"manual\"]\n"
    ))
    .unwrap();
    let manual = AlertFacts::from_manual(&serde_json::json!({"job": "kafka", "severity": "page"}));
    let first = rules.first_match(&manual, 0).map(|rule| rule.name.clone());
    assert_eq!(
        first.as_deref(),
        Some("by-hand"),
        "not kafka-down nor anything-firing"
    );
    let verdicts = rules.explain(&manual, 0);
    assert!(
        verdicts[1]
            .failed
            .as_deref()
            .unwrap()
            .contains("lists \"manual\""),
        "{verdicts:?}"
    );
}
