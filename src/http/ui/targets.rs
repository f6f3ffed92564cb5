//! The audit page of one target (`/ui/targets/{account}:{region}:{name}`): its health over the last day, week
//! or month as a chart, and what observe and approve modes have seen of it.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::super::{ApiError, AppState};
use super::pages::layout;
use super::{chart, see_other, session_of};
use crate::approvals::WayUp;
use crate::target::TargetId;

/// Readings drawn at most: the newest of the range.
const POINTS: u32 = 500;

/// The ranges a chart can show, by their query value.
const RANGES: [(&str, &str, i64); 3] = [
    ("24h", "last 24 hours", 24),
    ("7d", "last 7 days", 168),
    ("30d", "last 30 days", 720),
];

/// The page's query: the range (`24h`, the default, `7d` or `30d`).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RangeForm {
    #[serde(default)]
    range: String,
}

/// How a target's page is addressed: `account:region:name`, the name as configured (percent-encoded in the
/// path, a target group's ARN included).
pub(super) fn path_of(account: &str, region: &str, name: &str) -> String {
    let key = format!("{account}:{region}:{name}");
    format!(
        "/ui/targets/{}",
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
    )
}

pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(form): Query<RangeForm>,
) -> Result<Response, ApiError> {
    if session_of(&state, &headers).await?.is_none() {
        return Ok(see_other("/ui/login"));
    }
    let Some(id) = state
        .engine
        .target_ids()
        .find(|id| format!("{}:{}:{}", id.account, id.region, id.name) == key)
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-target",
            format!("no configured target {key:?} (account:region:name)"),
        ));
    };
    let (range, _, hours) = RANGES
        .iter()
        .find(|(value, ..)| *value == form.range)
        .copied()
        .unwrap_or(RANGES[0]);
    let until = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let since = until - time::Duration::hours(hours);
    let points = state.audit.health_points(id, since, POINTS).await?;
    let ways = crate::approvals::way_up(&state.audit, &state.engine).await?;
    let way = ways
        .into_iter()
        .find(|way| way.account == id.account && way.region == id.region && way.target == id.name);
    let page = target(
        id,
        range,
        chart::health(&id.name, &points, since, until),
        way.as_ref(),
    );
    Ok(Html(page.into_string()).into_response())
}

/// The page: the range links, the chart, and the target's way up.
fn target(id: &TargetId, range: &str, chart: Markup, way: Option<&WayUp>) -> Markup {
    let path = path_of(&id.account, &id.region, &id.name);
    layout(
        &id.name,
        true,
        html! {
            p.muted { (id.account) " / " (id.region) }
            h2 { "Health" }
            nav.pager aria-label="range" {
                @for (value, words, _) in RANGES {
                    @if value == range { strong { (words) } } @else { a href={ (path) "?range=" (value) } { (words) } }
                }
            }
            (chart)
            @if let Some(way) = way {
                h2 { "Mode and the way up" }
                dl.panel {
                    dt { "Mode" } dd { (way.mode) }
                    dt { "Runs" } dd { (way.runs) }
                    dt { "Would have acted" } dd { (way.would_act) }
                    dt { "Held / approved / rejected / expired" } dd { (way.held) " / " (way.approved) " / " (way.rejected) " / " (way.expired) }
                    dt { "Acted" } dd { (way.acted) }
                    dt { "Recovered" } dd { (way.recovered) " of " (way.recovered + way.not_recovered) " checked" }
                }
            }
        },
    )
}
