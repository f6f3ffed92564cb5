//! The audit page of one target (`/ui/targets/{account}:{region}:{name}`): its state (mode, ladder, pause,
//! silence, breaker), its health and its runs by outcome over the last day, week or month, its budget use, its
//! last episodes, and what observe and approve modes have seen of it.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::super::{ApiError, AppState};
use super::layout::{layout, path_of, when};
use super::{activity, chart, see_other, session_of};
use crate::approvals::WayUp;
use crate::audit::{Activity, Brakes, EpisodeStep, Tally};
use crate::engine::budget::Budgets;
use crate::target::TargetId;

/// Readings drawn at most: the newest of the range.
const POINTS: u32 = 500;

/// The ranges a chart can show, by their query value: its words, its hours, and the period the runs chart
/// counts by (hours, words).
const RANGES: [(&str, &str, i64, i64, &str); 3] = [
    ("24h", "last 24 hours", 24, 1, "hour"),
    ("7d", "last 7 days", 168, 6, "6 hours"),
    ("30d", "last 30 days", 720, 24, "day"),
];

/// Steps of the target's newest episodes read for its page (a few episodes' worth).
const EPISODE_STEPS: u32 = 40;
/// Episodes shown.
const EPISODES: usize = 5;

/// The page's query: the range (`24h`, the default, `7d` or `30d`).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RangeForm {
    #[serde(default)]
    range: String,
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
    let (range, _, hours, period_hours, each) = RANGES
        .iter()
        .find(|(value, ..)| *value == form.range)
        .copied()
        .unwrap_or(RANGES[0]);
    let until = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let since = until - time::Duration::hours(hours);
    let points = state.audit.health_points(id, since, POINTS).await?;
    let period = time::Duration::hours(period_hours);
    let period_ms = i64::try_from(period.whole_milliseconds()).unwrap_or(i64::MAX);
    // One pass over the range's records draws the runs chart and counts the way up.
    let rows = state.audit.activity(Some(id), since, period_ms).await?;
    let periods = activity::periods(&rows, since, until, period);
    let used = crate::engine::budget::usage(&state.audit, id, until).await?;
    let limits = Budgets::from(&state.config.remediation);
    let brakes = state.audit.brakes_of(id).await?;
    let episodes = episodes(state.audit.episodes_of(id, EPISODE_STEPS).await?);
    let held = state.audit.approval_counts(since).await?;
    let mode = state.engine.target_modes().find(|(known, _)| *known == id);
    let way = crate::approvals::ways(&tally_of(id, &rows), &held, mode.into_iter()).pop();
    let ladder = state.engine.ladder_of(id).unwrap_or_default();
    let charts = Charts {
        health: chart::health(&id.name, &points, since, until),
        runs: activity::runs(&id.name, each, &periods),
        budgets: activity::budgets(&id.name, used, limits),
    };
    let seen = Seen {
        brakes: &brakes,
        ladder: &ladder,
        episodes: &episodes,
        way: way.as_ref(),
    };
    let page = target(id, range, charts, &seen);
    Ok(Html(page.into_string()).into_response())
}

/// A target page's charts.
struct Charts {
    health: Markup,
    runs: Markup,
    budgets: Markup,
}

/// What a target page says of the target besides its charts.
struct Seen<'a> {
    brakes: &'a Brakes,
    ladder: &'a [&'a str],
    episodes: &'a [(String, Vec<EpisodeStep>)],
    way: Option<&'a WayUp>,
}

/// `target`'s records of `rows` counted by source and outcome over the whole range, as the way up reads them.
fn tally_of(target: &TargetId, rows: &[Activity]) -> Vec<Tally> {
    let mut tally: Vec<Tally> = Vec::new();
    for (_, source, outcome, records, acted) in rows {
        let same = |t: &&mut Tally| t.3 == *source && t.4 == *outcome;
        match tally.iter_mut().find(same) {
            Some(row) => {
                row.5 += records;
                row.6 += acted;
            }
            None => tally.push((
                Some(target.account.clone()),
                Some(target.region.clone()),
                target.name.clone(),
                source.clone(),
                outcome.clone(),
                *records,
                *acted,
            )),
        }
    }
    tally
}

/// The newest episodes of `steps` (newest first), each with its steps oldest first.
fn episodes(steps: Vec<(String, EpisodeStep)>) -> Vec<(String, Vec<EpisodeStep>)> {
    let mut episodes: Vec<(String, Vec<EpisodeStep>)> = Vec::new();
    for (episode, step) in steps {
        if let Some((_, steps)) = episodes.iter_mut().find(|(id, _)| *id == episode) {
            steps.insert(0, step);
        } else if episodes.len() < EPISODES {
            episodes.push((episode, vec![step]));
        }
    }
    episodes
}

/// The page: its state, the range links, the charts, its last episodes and its way up.
fn target(id: &TargetId, range: &str, charts: Charts, seen: &Seen<'_>) -> Markup {
    let path = path_of(&id.account, &id.region, &id.name);
    let brakes = seen.brakes;
    let ladder: Vec<&str> = seen.ladder.to_vec();
    layout(
        &id.name,
        true,
        html! {
            p.muted { (id.account) " / " (id.region) }
            h2 { "State" }
            dl.panel {
                dt { "Mode" } dd { (seen.way.map_or("auto", |way| way.mode)) }
                dt { "Ladder" } dd { (ladder.join(" → ")) }
                dt { "Pause" }
                @match &brakes.pause { Some(pause) => { dd.warn { "paused since " (when(pause.since)) ": " (pause.reason) } } None => { dd { "none" } } }
                dt { "Silence" }
                @match &brakes.silence { Some(silence) => { dd.warn { "until " (when(silence.until)) " by " (silence.by) ": " (silence.reason) } } None => { dd { "none" } } }
                dt { "Breaker" }
                @match &brakes.breaker { Some(breaker) => { dd.bad { "open since " (when(breaker.since)) ": " (breaker.reason) } } None => { dd { "closed" } } }
            }
            nav.pager aria-label="range" {
                @for (value, words, ..) in RANGES {
                    @if value == range { strong { (words) } } @else { a href={ (path) "?range=" (value) } { (words) } }
                }
            }
            h2 { "Health" }
            (charts.health)
            h2 { "Runs by outcome" }
            (charts.runs)
            h2 { "Budget use" }
            (charts.budgets)
            h2 { "Last episodes" }
            @if seen.episodes.is_empty() {
                p { "No episode yet: nothing was acted on." }
            } @else {
                ol.episode {
                    @for (episode, steps) in seen.episodes {
                        li {
                            a href={ "/ui/runs/" (episode) } { code { (episode) } } ": "
                            @for (n, step) in steps.iter().enumerate() {
                                @if n > 0 { " → " }
                                a href={ "/ui/runs/" (step.record_id) } { (step.step) }
                            }
                        }
                    }
                }
            }
            @if let Some(way) = seen.way {
                h2 { "Mode and the way up, in this range" }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(episode: &str, id: &str, step: &str) -> (String, EpisodeStep) {
        let step = EpisodeStep {
            record_id: id.into(),
            step: step.into(),
            at_ms: 0,
        };
        (episode.into(), step)
    }

    #[test]
    fn the_newest_episodes_each_read_oldest_step_first() {
        let newest_first = vec![
            step("E2", "E2c", "check"),
            step("E2", "E2", "replace"),
            step("E1", "E1b", "escalated"),
            step("E1", "E1", "reboot"),
        ];
        let grouped = episodes(newest_first);
        let read: Vec<(String, Vec<String>)> = grouped
            .into_iter()
            .map(|(id, steps)| (id, steps.into_iter().map(|s| s.step).collect()))
            .collect();
        assert_eq!(
            read,
            [
                (
                    "E2".to_owned(),
                    vec!["replace".to_owned(), "check".to_owned()]
                ),
                (
                    "E1".to_owned(),
                    vec!["reboot".to_owned(), "escalated".to_owned()]
                ),
            ]
        );
        let many: Vec<_> = (0..9)
            .map(|n| step(&format!("E{n}"), &format!("R{n}"), "replace"))
            .collect();
        assert_eq!(episodes(many).len(), EPISODES);
    }
}
