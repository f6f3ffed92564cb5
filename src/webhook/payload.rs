//! The webhook payload Alertmanager (version "4") and Grafana (version "1") send: a group of alerts.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One notification of an alert group. Unknown fields are ignored; older senders omit some of these.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// `"4"` from Alertmanager, `"1"` from Grafana.
    pub version: String,
    /// `firing` or `resolved` for the group.
    #[serde(default)]
    pub status: String,
    /// The receiver name (Alertmanager sends it regex-escaped, e.g. `web\.hook`).
    #[serde(default)]
    pub receiver: String,
    /// Identifies the alert group.
    #[serde(default)]
    pub group_key: String,
    /// The alerts of the group.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// Grafana's rendered title.
    #[serde(default)]
    pub title: Option<String>,
    /// Grafana's rendered message.
    #[serde(default)]
    pub message: Option<String>,
}

/// One alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    #[serde(default)]
    pub status: String,
    /// Identifying labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations (summary, description, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the alert started, as sent (nanoseconds and offsets kept verbatim).
    #[serde(default)]
    pub starts_at: String,
    /// Alertmanager's fingerprint; absent from older senders.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl Alert {
    /// Whether the alert is firing; older senders give no per-alert status, and then the group's counts.
    pub fn is_firing(&self, group_status: &str) -> bool {
        match self.status.as_str() {
            "" => group_status == "firing",
            status => status == "firing",
        }
    }

    /// The alert's identity for deduplication: its fingerprint, or its sorted labels when it has none.
    pub fn identity(&self) -> String {
        match &self.fingerprint {
            Some(fingerprint) if !fingerprint.is_empty() => fingerprint.clone(),
            _ => self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// A one-line description: the summary annotation, else the description, else the alert name.
    pub fn text(&self) -> String {
        ["summary", "description"]
            .iter()
            .find_map(|key| {
                self.annotations
                    .get(*key)
                    .filter(|v| !v.is_empty())
                    .cloned()
            })
            .or_else(|| self.labels.get("alertname").cloned())
            .unwrap_or_else(|| "alert".to_owned())
    }
}

impl Payload {
    /// The delivery key for deduplication: the same group notification (group key, alerts, start times) sent
    /// again yields the same key. Hashed, so that arbitrary label text never reaches the key column as is.
    pub fn delivery_key(&self, source: &str) -> String {
        let mut identities: Vec<String> = self
            .alerts
            .iter()
            .map(|alert| format!("{}@{}/{}", alert.identity(), alert.starts_at, alert.status))
            .collect();
        identities.sort();
        let material = format!(
            "{}\n{}\n{}",
            self.group_key,
            self.status,
            identities.join("\n")
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, material.as_bytes());
        format!("{source}:{}", crate::hex::encode(digest.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(folder: &str) -> Vec<(String, Payload)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(folder);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains("hmac") {
                continue;
            }
            let payload = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            out.push((name, payload));
        }
        out
    }

    #[test]
    fn every_alertmanager_vector_parses() {
        let all = vectors("alertmanager");
        assert_eq!(all.len(), 8);
        for (name, payload) in &all {
            assert_eq!(payload.version, "4", "{name}");
            assert!(!payload.alerts.is_empty(), "{name}");
            assert!(
                payload.alerts.iter().all(|a| !a.identity().is_empty()),
                "{name}"
            );
        }
        let pingme = &all.iter().find(|(n, _)| n.contains("pingme")).unwrap().1;
        assert_eq!(pingme.receiver, "alert\\.services");
        let utf8 = &all
            .iter()
            .find(|(n, _)| n.contains("3alerts_utf8"))
            .unwrap()
            .1;
        assert_eq!(utf8.alerts.len(), 3);
        assert!(utf8.alerts[0].starts_at.ends_with("+08:00"));
    }

    #[test]
    fn every_grafana_vector_parses() {
        let all = vectors("grafana");
        assert_eq!(all.len(), 4);
        for (name, payload) in &all {
            assert_eq!(payload.version, "1", "{name}");
            assert!(
                payload.title.is_some() && payload.message.is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn alerts_without_a_status_take_the_group_status() {
        let (_, legacy) = vectors("alertmanager")
            .into_iter()
            .find(|(n, _)| n.contains("legacy"))
            .unwrap();
        assert!(legacy.alerts[0].status.is_empty());
        assert!(legacy.alerts[0].is_firing(&legacy.status));
        assert!(!legacy.alerts[0].is_firing("resolved"));
    }

    #[test]
    fn delivery_keys_ignore_alert_order_but_not_content() {
        let (_, payload) = vectors("alertmanager")
            .into_iter()
            .find(|(n, _)| n.contains("3alerts"))
            .unwrap();
        let mut reversed = payload.clone();
        reversed.alerts.reverse();
        assert_eq!(payload.delivery_key("am"), reversed.delivery_key("am"));
        let mut later = payload.clone();
        later.alerts[0].starts_at = "2024-01-01T00:00:00Z".into();
        assert_ne!(payload.delivery_key("am"), later.delivery_key("am"));
        assert_ne!(payload.delivery_key("am"), payload.delivery_key("grafana"));
    }
}
