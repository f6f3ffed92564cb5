//! Entry points for the fuzz targets in `fuzz/` and for the unit test that replays their regression corpus
//! (`tests/fuzz_regressions/`): each feeds arbitrary bytes to one parser or policy that untrusted input
//! reaches, and must never panic, whatever the bytes.

/// The SNS message parser, the string it signs, the dedup key, and the certificate and subscribe URL policies.
pub fn sns_message(data: &[u8]) {
    if let Ok(message) = crate::sns::Unverified::parse(data) {
        let signed = message.string_to_sign();
        assert!(signed.ends_with('\n'));
        let _ = message.delivery_key();
        let _ = crate::sns::CertUrl::parse(&message.signing_cert_url);
        if let Some(url) = &message.subscribe_url {
            let _ = crate::sns::SubscribeUrl::parse(url);
        }
    }
}

/// The URL policies on arbitrary text.
pub fn url_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = crate::sns::CertUrl::parse(text) {
        assert!(url.as_str().starts_with("https://sns."));
        let _ = (url.region(), url.file_name(), url.path_and_query());
    }
    if let Ok(url) = crate::sns::SubscribeUrl::parse(text) {
        assert!(url.as_str().starts_with("https://sns."));
        let _ = (url.region(), url.path_and_query());
    }
}

/// The Alertmanager/Grafana payload parser and the grouping of its alerts by load balancer.
pub fn webhook_payload(data: &[u8]) {
    if let Ok(payload) = serde_json::from_slice::<crate::webhook::Payload>(data) {
        let labels = crate::webhook::TargetLabels {
            load_balancer: "load_balancer",
            target_group: "target_group",
            account: "account",
            region: "region",
        };
        let default = (
            crate::target::TargetRef::LoadBalancer("web-elb".to_owned()),
            crate::target::Place::default(),
        );
        let grouping = crate::webhook::group(&payload, labels, Some(&default));
        let _ = payload.delivery_key("alertmanager");
        let named: Vec<String> = grouping
            .groups
            .keys()
            .map(|(target, place)| format!("{target} {place}"))
            .collect();
        let _ = serde_json::to_string(&named);
    }
}

/// Grafana's signature and timestamp headers: the first line is the signature header, the second the
/// timestamp header, the rest the body.
pub fn grafana_signature(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(signature), Some(timestamp), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (Ok(signature), Ok(timestamp)) = (
        std::str::from_utf8(signature),
        std::str::from_utf8(timestamp),
    ) else {
        return;
    };
    let _ = crate::webhook::signature::verify(
        b"0123456789abcdef0123",
        body,
        signature,
        Some(timestamp),
        1_700_000_000,
        300,
    );
}

/// The CloudWatch alarm reader behind SNS notifications.
pub fn cloudwatch_alarm(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::sns::alarm::CloudWatchAlarm::parse(text);
    }
}

/// The configuration loader (TOML, environment overrides, validation) on arbitrary text.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse(text, std::iter::empty());
    }
}

/// One fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("sns_message", sns_message),
    ("url_policy", url_policy),
    ("webhook_payload", webhook_payload),
    ("grafana_signature", grafana_signature),
    ("cloudwatch_alarm", cloudwatch_alarm),
    ("config", config),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TARGETS;

    /// Feeds `target` every file of `dir`; returns how many.
    fn replay(target: super::Target, dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                target(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        count
    }

    /// The inputs that once broke a target (`tests/fuzz_regressions/<target>/`, where `scripts/fuzz` says to
    /// keep them) and the real-world vectors all pass every target they belong to, on every test run.
    #[test]
    fn the_regression_corpus_and_the_vectors_replay_without_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut replayed = 0;
        for (name, target) in TARGETS {
            replayed += replay(*target, &root.join("tests/fuzz_regressions").join(name));
        }
        for (name, folder) in [
            ("sns_message", "tests/vectors/sns/aws"),
            ("sns_message", "tests/vectors/sns/selfsigned"),
            ("webhook_payload", "tests/vectors/alertmanager"),
            ("webhook_payload", "tests/vectors/grafana"),
            ("cloudwatch_alarm", "tests/vectors/cloudwatch"),
        ] {
            let target = TARGETS.iter().find(|(n, _)| *n == name).unwrap().1;
            replayed += replay(target, &root.join(folder));
        }
        assert!(replayed > 40, "only {replayed} inputs replayed");
    }
}
