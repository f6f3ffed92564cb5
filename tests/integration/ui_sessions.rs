//! The audit page's sessions: signed with a random key kept in the store (not derived from the tokens), ended
//! by a logout and by `reflex ui rotate-key` on the server side, login attempts limited, cookies Secure behind
//! an https public URL.

use reqwest::redirect::Policy;

use crate::common::process::reflex;
use crate::common::{AUDIT_TOKEN, Moto, PERMISSIVE, TestApp, config_text, unique};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The value `response` sets for cookie `name`, and the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|header| {
            let value = header[name.len() + 1..]
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            (value, header.to_owned())
        })
}

/// A fresh login form's CSRF token.
async fn csrf(base: &str) -> String {
    let form = client()
        .get(format!("{base}/ui/login"))
        .send()
        .await
        .unwrap();
    set_cookie(&form, "reflex_csrf").unwrap().0
}

/// Submits the login form with `token` and the CSRF token `csrf`.
async fn submit(base: &str, csrf: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("reflex_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={token}"))
        .send()
        .await
        .unwrap()
}

/// Logs in; the session cookie's value.
async fn login(base: &str) -> String {
    let answer = submit(base, &csrf(base).await, AUDIT_TOKEN).await;
    assert_eq!(answer.status(), 303);
    set_cookie(&answer, "reflex_session").unwrap().0
}

async fn timeline(base: &str, session: &str) -> u16 {
    client()
        .get(format!("{base}/ui/"))
        .header("cookie", format!("reflex_session={session}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_logout_and_a_key_rotation_end_sessions_on_the_server_and_the_key_is_not_the_tokens() {
    let moto = Moto::shared();
    let app = TestApp::spawn(&moto.endpoint, &[&unique("ui")], PERMISSIVE).await;
    let session = login(&app.base).await;
    assert_eq!(timeline(&app.base, &session).await, 200);

    // A logout ends the session itself: the same cookie value no longer opens the page.
    let out = client()
        .post(format!("{}/ui/logout", app.base))
        .header("cookie", format!("reflex_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(timeline(&app.base, &session).await, 303, "revoked");

    // Rotating the key ends every session, on every process sharing the store.
    let session = login(&app.base).await;
    assert_eq!(timeline(&app.base, &session).await, 200);
    let rotated = reflex([
        "ui",
        "rotate-key",
        "--config",
        app.config_path.to_str().unwrap(),
    ]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert_eq!(
        timeline(&app.base, &session).await,
        303,
        "ended by the rotation"
    );

    // Another store with the same audit tokens has another key: what one hands out means nothing to the other.
    let other = TestApp::spawn(&moto.endpoint, &[&unique("ui")], PERMISSIVE).await;
    let foreign = csrf(&app.base).await;
    assert_eq!(
        submit(&other.base, &foreign, AUDIT_TOKEN).await.status(),
        403
    );
    other.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn login_attempts_are_limited_and_cookies_are_secure_behind_an_https_public_url() {
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &moto.endpoint,
        &dir.path().join("audit.db"),
        &[&unique("ui")],
        PERMISSIVE,
    )
    .replace(
        "[server]\n",
        "[server]\npublic_url = \"https://reflex.example.com\"\n",
    );
    let app = TestApp::spawn_with_config(dir, &text).await;
    let form = client()
        .get(format!("{}/ui/login", app.base))
        .send()
        .await
        .unwrap();
    let (_, header) = set_cookie(&form, "reflex_csrf").unwrap();
    assert!(header.contains("; Secure"), "{header}");

    let csrf = csrf(&app.base).await;
    let mut statuses = Vec::new();
    for n in 0..12 {
        statuses.push(
            submit(&app.base, &csrf, &format!("guess-{n}-0123456789"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..10], [401; 10]);
    assert_eq!(&statuses[10..], [429, 429], "{statuses:?}");
    // The right token from the same address waits too: the limit is checked before the token.
    assert_eq!(submit(&app.base, &csrf, AUDIT_TOKEN).await.status(), 429);
    app.stop().await;
}

/// The repro: a session opened with an audit token kept reading after that token was removed from the
/// configuration (a restart with the token rotated out). A session lasts only while its token is configured.
#[tokio::test]
async fn a_session_ends_when_its_token_is_removed_from_the_configuration() {
    let moto = Moto::shared();
    let store = tempfile::tempdir().unwrap();
    let db = store.path().join("audit.db");
    let targets = [unique("ui")];
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let text = config_text(&moto.endpoint, &db, &targets, PERMISSIVE);
    let app = TestApp::spawn_with_config(tempfile::tempdir().unwrap(), &text).await;
    let session = login(&app.base).await;
    assert_eq!(timeline(&app.base, &session).await, 200);
    app.stop().await;

    // The same store, the same token: the session still opens the page.
    let app = TestApp::spawn_with_config(tempfile::tempdir().unwrap(), &text).await;
    assert_eq!(timeline(&app.base, &session).await, 200);
    app.stop().await;

    // The token rotated out: the session no longer does.
    let rotated = text.replace(AUDIT_TOKEN, "another-audit-token-0123456789");
    let app = TestApp::spawn_with_config(tempfile::tempdir().unwrap(), &rotated).await;
    assert_eq!(
        timeline(&app.base, &session).await,
        303,
        "sent to the login"
    );
    app.stop().await;
}

/// The timeline's page for `query` in `session`, as text.
async fn timeline_page(base: &str, session: &str, query: &str) -> String {
    let answer = client()
        .get(format!("{base}/ui/?{query}"))
        .header("cookie", format!("reflex_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap()
}

/// The repro: a timeline filter that matched nothing walked the whole trail (up to the statement timeout) on
/// the engine's readers. Without From, the timeline searches the last 30 days, and says so.
#[tokio::test]
async fn a_filtered_timeline_searches_the_last_30_days_unless_from_is_set() {
    let moto = Moto::shared();
    let target = unique("ui-old");
    let app = TestApp::spawn(&moto.endpoint, &[&target], PERMISSIVE).await;
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(40);
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let mut meta = reflex::audit::RequestMeta::new(reflex::audit::Source::Manual, None);
    meta.target = Some(target.clone());
    let mut old = meta.into_record(reflex::audit::Outcome::Completed, 200, None, 0);
    old.id = ulid::Ulid::from_parts(ms, 1).to_string();
    old.at = at;
    app.audit.put(old.clone()).await.unwrap();

    let session = login(&app.base).await;
    let recent = timeline_page(&app.base, &session, &format!("target={target}")).await;
    // (The state panel links the target's last run whatever the filter: the table is what is searched.)
    assert!(
        recent.contains("No records match in the 30 days searched"),
        "a record of 40 days ago is not searched: {recent}"
    );
    let older = timeline_page(
        &app.base,
        &session,
        &format!("target={target}&from=2000-01-01T00%3A00"),
    )
    .await;
    assert!(
        !older.contains("No records match") && older.contains(&old.id),
        "with From, older records are found: {older}"
    );
    // With To alone, the 30 days before it.
    let to = (at + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let query = format!("target={target}&to={}", &to[..16]).replace(':', "%3A");
    let before = timeline_page(&app.base, &session, &query).await;
    assert!(
        !before.contains("No records match"),
        "the 30 days before To are searched: {before}"
    );
    app.stop().await;
}
