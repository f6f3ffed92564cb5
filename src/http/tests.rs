//! The router in process (`tower::ServiceExt::oneshot`), for what needs no AWS: authentication, unknown routes
//! and methods, limits, error bodies and their audit records, and how fleet failures map to HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{AppState, router};
use crate::App;
use crate::engine::port::{
    BoxFuture, FailureKind, Fleet, FleetError, GroupChange, Snapshot, TargetGroupInfo, TargetRef,
};

const MANUAL: &str = "manual-token-0123456789";
const AUDIT: &str = "audit-token-0123456789";
const HOOK: &str = "alertmanager-token-0123";

/// A fleet whose every call fails with the same error.
#[derive(Debug)]
struct FailingFleet(FleetError);

impl Fleet for FailingFleet {
    fn target_group<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<TargetGroupInfo, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn snapshot<'a>(&'a self, _: &'a TargetRef) -> BoxFuture<'a, Result<Snapshot, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn instances<'a>(
        &'a self,
        _: &'a crate::engine::port::Resources,
    ) -> BoxFuture<'a, Result<HashMap<String, crate::engine::port::Ec2Facts>, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn alarm<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::engine::port::AlarmState>, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn auto_scaling_groups<'a>(
        &'a self,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn group_changes<'a>(
        &'a self,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<GroupChange>, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn terminate<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn mark_unhealthy<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn reboot<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }

    fn start<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, FleetError>> {
        Box::pin(async { Err(self.0.clone()) })
    }
}

struct TestApp {
    state: AppState,
    _app: App,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn new(failure: FailureKind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nmax_body_bytes = 2048\nbody_timeout_secs = 1\n[aws]\nendpoint_url = \"http://127.0.0.1:9\"\naccount_id = \"123456789012\"\n\
             [audit]\nurl = \"sqlite://{}\"\ntokens = [\"{AUDIT}\"]\n[manual]\ntokens = [\"{MANUAL}\"]\n\
             [alertmanager]\ntokens = [\"{HOOK}\"]\n[sns]\ntopic_arns = [\"arn:aws:sns:us-east-1:123456789012:alarms\"]\n\
             [[targets]]\nload_balancer = \"web-elb\"\n",
            dir.path().join("audit.db").display()
        );
        let config = crate::config::parse(&text, std::iter::empty()).unwrap();
        let fleet = FailingFleet(FleetError::new(
            failure,
            "DescribeInstanceHealth",
            Some("AccessDenied".into()),
            "User is not authorized to perform elasticloadbalancing:DescribeInstanceHealth",
        ));
        let app = App::build_with(config, crate::Fleets::One(Arc::new(fleet)))
            .await
            .unwrap();
        Self {
            state: app.state.clone(),
            _app: app,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, header::HeaderMap, Value) {
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, json)
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let (status, _, json) = self.send(request.body(body.into()).unwrap()).await;
        (status, json)
    }

    async fn last_record(&self) -> crate::audit::AuditRecord {
        self.state.audit.list(1).await.unwrap().remove(0)
    }
}

#[tokio::test]
async fn missing_and_wrong_tokens_are_401_with_a_json_body_and_audited() {
    let app = TestApp::new(FailureKind::Transient).await;
    let body = json!({"load_balancer": "web-elb"}).to_string();
    for (token, code) in [
        (None, "missing-credentials"),
        (Some("wrong-token-0123456789"), "invalid-token"),
        (Some(AUDIT), "invalid-token"),
    ] {
        let (status, answer) = app.post("/remediate", token, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer["error"], code);
        assert!(answer["detail"].is_string());
        let record = app.last_record().await;
        assert_eq!(
            (record.outcome, record.auth.as_str()),
            (crate::audit::Outcome::Rejected, code)
        );
        assert_eq!(record.status, 401);
    }
    let (status, answer) = app.post("/alertmanager", Some(MANUAL), "{}").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid-token"))
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_and_are_not_audited() {
    let app = TestApp::new(FailureKind::Transient).await;
    let (status, _, answer) = app
        .send(Request::get("/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let (status, headers, answer) = app
        .send(Request::get("/remediate").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer["error"], "method-not-allowed");
    assert_eq!(headers[header::ALLOW], "POST");
    assert!(app.state.audit.list(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn bodies_are_limited_and_checked_before_anything_runs() {
    let app = TestApp::new(FailureKind::Transient).await;
    let (status, answer) = app.post("/sns", None, "x".repeat(4096)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload-too-large"))
    );
    let (status, answer) = app.post("/remediate", Some(MANUAL), "{not json").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed-json"))
    );
    for body in [
        r#"{"lb": "web-elb"}"#,
        r#"{"dry_run": true}"#,
        r#"{"load_balancer": "web-elb", "target_group": "web-tg"}"#,
        r#"{"load_balancer": "web-elb", "target_group": null}"#,
    ] {
        let (status, answer) = app.post("/remediate", Some(MANUAL), body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid-request")),
            "{body}"
        );
    }
    let (status, answer) = app
        .post("/remediate", Some(MANUAL), r#"{"load_balancer": "db-elb"}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["error"], "unknown-load-balancer");
    let record = app.last_record().await;
    assert_eq!(
        (record.status, record.error.as_deref()),
        (422, Some("unknown-load-balancer"))
    );
}

#[tokio::test]
async fn an_unsigned_sns_message_is_403_before_any_fetch() {
    let app = TestApp::new(FailureKind::Transient).await;
    let message = json!({
        "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
        "Message": "hello", "Timestamp": "2026-01-01T00:00:00.000Z",
    });
    let (status, answer) = app.post("/sns", None, message.to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["error"].is_string() && answer["detail"].is_string());
    assert_eq!(
        app.last_record().await.outcome,
        crate::audit::Outcome::Rejected
    );
}

#[tokio::test]
async fn a_permission_error_answers_502_aws_denied_and_a_timeout_503() {
    for (kind, status, code) in [
        (
            FailureKind::Permanent,
            StatusCode::BAD_GATEWAY,
            "aws-denied",
        ),
        (
            FailureKind::Transient,
            StatusCode::SERVICE_UNAVAILABLE,
            "aws-unavailable",
        ),
    ] {
        let app = TestApp::new(kind).await;
        let (answered, answer) = app
            .post(
                "/remediate",
                Some(MANUAL),
                r#"{"load_balancer": "web-elb"}"#,
            )
            .await;
        assert_eq!((answered, answer["error"].as_str()), (status, Some(code)));
        let detail = answer["detail"].as_str().unwrap();
        assert_eq!(
            detail.contains("AccessDenied"),
            kind == FailureKind::Permanent,
            "{detail}"
        );
        let record = app.last_record().await;
        assert_eq!(
            (record.status, record.error.as_deref()),
            (status.as_u16(), Some(code))
        );
        assert!(
            record.detail["error"]
                .as_str()
                .unwrap()
                .contains("DescribeInstanceHealth")
        );
        let metrics = app.state.metrics.render();
        assert!(
            metrics.contains(&format!(
                "reflex_rejections_total{{source=\"manual\",code=\"{code}\"}} 1"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn past_max_in_flight_a_post_is_503_at_once_and_probes_still_answer() {
    let app = TestApp::new(FailureKind::Transient).await;
    let all = u32::try_from(app.state.config.server.max_in_flight).unwrap();
    let _held = app.state.in_flight.try_acquire_many(all).unwrap();
    let (status, answer) = app
        .post(
            "/remediate",
            Some(MANUAL),
            r#"{"load_balancer": "web-elb"}"#,
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded"))
    );
    let (status, _, _) = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        app.state.audit.list(10).await.unwrap().is_empty(),
        "nothing was read, nothing recorded"
    );
    assert!(
        app.state
            .metrics
            .render()
            .contains(r#"reflex_rejections_total{source="server",code="overloaded"} 1"#)
    );
}

/// The repro: slow audit-page reads held every reader connection, and the engine's safety reads waited for
/// them. Page reads hold at most `PAGE_READERS` of the store's readers; the engine keeps the rest.
#[tokio::test]
async fn reads_of_the_trail_never_hold_the_readers_the_engine_needs() {
    let app = TestApp::new(FailureKind::Transient).await;
    let mut busy = Vec::new();
    for _ in 0..crate::audit::PAGE_READERS {
        busy.push(app.state.audit.page_read().await);
    }
    let read = app.send(
        Request::get("/audit")
            .header("authorization", "Bearer not-the-audit-token-0123")
            .body(Body::empty())
            .unwrap(),
    );
    tokio::pin!(read);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut read)
            .await
            .is_err(),
        "a read of the trail waits while the page readers are busy"
    );
    // The engine's reads go on meanwhile.
    let web = crate::target::TargetId::new(
        "123456789012",
        "us-east-1",
        crate::target::TargetKind::LoadBalancer,
        "web-elb",
    );
    let brakes = app.state.audit.brakes_of(&web);
    tokio::time::timeout(std::time::Duration::from_secs(5), brakes)
        .await
        .expect("the engine reads while pages wait")
        .unwrap();
    drop(busy);
    let (status, _, _) = read.await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "then the read runs");
    // A read without credentials, refused, never waits for a page reader.
    let mut busy = Vec::new();
    for _ in 0..crate::audit::PAGE_READERS {
        busy.push(app.state.audit.page_read().await);
    }
    let refused = app.send(Request::get("/audit").body(Body::empty()).unwrap());
    let (status, _, _) = tokio::time::timeout(std::time::Duration::from_secs(5), refused)
        .await
        .expect("no wait without credentials");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn past_max_reads_in_flight_a_read_of_the_trail_is_503_and_alerts_and_probes_still_answer() {
    let app = TestApp::new(FailureKind::Transient).await;
    let all = u32::try_from(app.state.config.server.max_reads_in_flight).unwrap();
    let _held = app.state.reads_in_flight.try_acquire_many(all).unwrap();
    for path in ["/audit", "/ui/"] {
        let (status, _, answer) = app
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")),
            "{path}"
        );
    }
    for probe in ["/healthz", "/metrics"] {
        let (status, _, _) = app
            .send(Request::get(probe).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{probe}");
    }
    // Alerts have permits of their own: the fleet fails here, but the request is handled, not refused.
    let (status, answer) = app
        .post(
            "/remediate",
            Some(MANUAL),
            r#"{"load_balancer": "web-elb"}"#,
        )
        .await;
    assert_ne!(answer["error"].as_str(), Some("overloaded"), "{status}");
}

#[tokio::test]
async fn unauthenticated_reads_and_admin_calls_past_their_rate_are_counted_not_recorded() {
    let app = TestApp::new(FailureKind::Transient).await;
    for _ in 0..200 {
        let (status, _, _) = app
            .send(
                Request::get("/audit")
                    .header(header::AUTHORIZATION, "Bearer not-the-audit-token-0123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = app
            .send(
                Request::get("/admin/state")
                    .header(header::AUTHORIZATION, "Bearer not-the-admin-token-0123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let recorded = app.state.audit.list(1000).await.unwrap().len();
    assert!(
        (20..=60).contains(&recorded),
        "a burst per source recorded, the rest counted: {recorded}"
    );
    app.state.record_suppressed().await.unwrap();
    let records = app.state.audit.list(1000).await.unwrap();
    let summaries: u64 = records
        .iter()
        .filter_map(|record| record.detail.get("suppressed"))
        .map(|suppressed| suppressed["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        summaries as usize + recorded,
        400,
        "every rejection is accounted for"
    );
}

#[tokio::test]
async fn a_body_that_trickles_past_the_total_deadline_is_408_and_audited() {
    let app = TestApp::new(FailureKind::Transient).await;
    let (mut sender, body) = http_body_util::Channel::<bytes::Bytes>::new(1);
    tokio::spawn(async move {
        // A byte every 200 ms: never a stall long enough for the per-chunk timeout (10 s).
        for _ in 0..50 {
            if sender
                .send_data(bytes::Bytes::from_static(b" "))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let request = Request::post("/remediate")
        .header(header::AUTHORIZATION, format!("Bearer {MANUAL}"))
        .body(Body::new(body))
        .unwrap();
    let (status, _, answer) = app.send(request).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::REQUEST_TIMEOUT, Some("body-timeout"))
    );
    let record = app.last_record().await;
    assert_eq!(
        (record.status, record.error.as_deref()),
        (408, Some("body-timeout"))
    );
}

#[tokio::test]
async fn the_audit_page_cookies_are_http_only_strict_and_secure_when_reflex_serves_tls() {
    let app = TestApp::new(FailureKind::Transient).await;
    let cookie_of = |state: AppState| async move {
        let request = Request::get("/ui/login").body(Body::empty()).unwrap();
        let response = router(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'")
        );
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let plain = cookie_of(app.state.clone()).await;
    assert!(plain.starts_with("reflex_csrf="), "{plain}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(plain.contains(flag), "{plain}");
    }
    assert!(!plain.contains("Secure"), "{plain}");
    let mut config = (*app.state.config).clone();
    config.server.tls_cert = Some("cert.pem".into());
    let tls = AppState::new(crate::http::AppShared {
        config: Arc::new(config),
        ..(*app.state).clone()
    });
    let secure = cookie_of(tls).await;
    assert!(secure.ends_with("; Secure"), "{secure}");
    // Without a session, a page redirects to the form.
    let request = Request::get("/ui/runs/01").body(Body::empty()).unwrap();
    let response = router(app.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/ui/login");
}
