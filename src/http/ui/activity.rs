//! The audit page's charts of what reflex did: runs per period by outcome (stacked bars), and a target's budget
//! use against its limits (bars). Server-rendered SVG like the health chart, each with a text alternative and
//! its numbers in a table.

use maud::{Markup, html};
use time::OffsetDateTime;

use super::layout::when;
use crate::audit::Activity;
use crate::engine::budget::{Budgets, Used};

/// The drawing area, in SVG units; the SVG scales to the page's width.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
/// Room for the axis labels.
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// The kinds of runs drawn, bottom to top, with their words.
pub const KINDS: [(&str, &str); 5] = [
    ("acted", "acted"),
    ("refused", "refused by a rule"),
    ("held", "held for approval"),
    ("would-act", "would have acted (observe)"),
    ("escalated", "escalated"),
];

/// One period's runs by kind (in `KINDS` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// When the period starts.
    pub start: OffsetDateTime,
    /// Runs of each kind, in `KINDS` order.
    pub runs: [u64; KINDS.len()],
}

/// Sources whose records are not runs: operators' controls, notification deliveries and page views.
const NOT_RUNS: [&str; 3] = ["admin", "notify", "audit-read"];

/// The kind (index into `KINDS`) of a run's record that did not act, by its outcome: refused, held, would-act,
/// escalated (a check that found its target not recovered); none for the others.
fn kind_of(outcome: &str) -> Option<usize> {
    let name = match outcome {
        "refused" => "refused",
        "held" => "held",
        "would-act" => "would-act",
        "not-recovered" => "escalated",
        _ => return None,
    };
    KINDS.iter().position(|(kind, _)| *kind == name)
}

/// The periods between `since` and `until` of `period` each, with the grouped `rows` of records (period start
/// in ms, source, outcome, records, of them acted) counted in by kind; periods with no run are there, empty.
/// Pure.
pub fn periods(
    rows: &[Activity],
    since: OffsetDateTime,
    until: OffsetDateTime,
    period: time::Duration,
) -> Vec<Period> {
    let step_ms = i64::try_from(period.whole_milliseconds())
        .unwrap_or(i64::MAX)
        .max(1);
    let ms = |at: OffsetDateTime| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let first = ms(since).div_euclid(step_ms) * step_ms;
    let last = ms(until).div_euclid(step_ms) * step_ms;
    let count = usize::try_from((last - first) / step_ms + 1)
        .unwrap_or(0)
        .min(10_000);
    let mut out: Vec<Period> = (0..count)
        .map(|n| Period {
            start: OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(first + step_ms * i64::try_from(n).unwrap_or(0)) * 1_000_000,
            )
            .unwrap_or(since),
            runs: [0; KINDS.len()],
        })
        .collect();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    for (start, source, outcome, records, acted) in rows {
        if NOT_RUNS.contains(&source.as_str()) {
            continue;
        }
        let Some(period) = usize::try_from((start - first).div_euclid(step_ms))
            .ok()
            .and_then(|index| out.get_mut(index))
        else {
            continue;
        };
        period.runs[0] += count(*acted);
        if let Some(kind) = kind_of(outcome) {
            period.runs[kind] += count(records - acted);
        }
    }
    out
}

/// Runs per `each` (its words: "hour", "6 hours", "day") by kind over `periods`, as stacked bars, for `whose`
/// runs ("every target", a target's name).
pub fn runs(whose: &str, each: &str, periods: &[Period]) -> Markup {
    let max = periods
        .iter()
        .map(|p| p.runs.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let description = runs_description(each, periods, max);
    let bottom = HEIGHT - BOTTOM;
    let width = (WIDTH - LEFT) / periods.len().max(1) as f64;
    let scale = (bottom - TOP) / max.max(1) as f64;
    let bar_width = (width - 1.0).max(1.0).round();
    // Each period's bars, bottom to top: (x, y, height, kind, its words, runs, the period's start).
    let mut bars = Vec::new();
    for (n, period) in periods.iter().enumerate() {
        let x = (LEFT + n as f64 * width).round();
        let mut top = bottom;
        for (k, (kind, words)) in KINDS.iter().enumerate() {
            let runs = period.runs[k];
            if runs > 0 {
                let height = (runs as f64 * scale).round().max(1.0);
                top -= height;
                bars.push((x, top, height, *kind, *words, runs, period.start));
            }
        }
    }
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="runs-title runs-desc" {
                title #runs-title { "Runs per " (each) " of " (whose) ", by outcome" }
                desc #runs-desc { (description) }
                line.axis x1=(LEFT) y1=(bottom) x2=(WIDTH) y2=(bottom) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) {}
                text.label x="2" y=(TOP + 10.0) { (max) }
                text.label x="2" y=(bottom) { "0" }
                @if let (Some(first), Some(last)) = (periods.first(), periods.last()) {
                    text.label x=(LEFT) y=(HEIGHT - 6.0) { (when(first.start)) }
                    text.label x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (when(last.start)) }
                }
                @for (x, y, height, kind, words, runs, start) in bars {
                    rect class={ "run " (kind) } x=(x) y=(y) width=(bar_width) height=(height) {
                        title { (runs) " " (words) " from " (when(start)) }
                    }
                }
            }
            figcaption {
                @for (kind, words) in KINDS {
                    span class={ "key " (kind) } { (words) } " "
                }
            }
        }
        @if max > 0 {
            (runs_numbers(periods))
        } @else {
            p { (description) }
        }
    }
}

/// The runs chart's text alternative: the runs of each kind over `periods`, and the most in one period
/// (`max`).
fn runs_description(each: &str, periods: &[Period], max: u64) -> String {
    let totals: Vec<u64> = (0..KINDS.len())
        .map(|k| periods.iter().map(|p| p.runs[k]).sum())
        .collect();
    let said: Vec<String> = KINDS
        .iter()
        .zip(&totals)
        .map(|((_, words), total)| format!("{total} {words}"))
        .collect();
    match (periods.first(), periods.last()) {
        (Some(first), Some(last)) if max > 0 => format!(
            "Runs per {each} from {} to {}: {}; at most {max} in one {each}.",
            when(first.start),
            when(last.start),
            said.join(", ")
        ),
        _ => "No run in this period.".to_owned(),
    }
}

/// The runs chart's numbers, one row per period with runs, for whoever cannot read the chart.
fn runs_numbers(periods: &[Period]) -> Markup {
    html! {
        details {
            summary { "The numbers" }
            table {
                thead { tr { th { "From (UTC)" } @for (_, words) in KINDS { th { (words) } } } }
                tbody {
                    @for period in periods.iter().filter(|p| p.runs.iter().any(|r| *r > 0)) {
                        tr { td { (when(period.start)) } @for runs in period.runs { td { (runs) } } }
                    }
                }
            }
        }
    }
}

/// A target's budget use: instances acted on in the last hour and day, on it and over every target, against
/// the limits.
pub fn budgets(name: &str, used: Used, limits: Budgets) -> Markup {
    let bars = [
        (
            "this target, last hour",
            used.target_hour,
            limits.per_hour,
            "remediation.max_acted_per_hour",
        ),
        (
            "this target, last day",
            used.target_day,
            limits.per_day,
            "remediation.max_acted_per_day",
        ),
        (
            "every target, last hour",
            used.all_hour,
            limits.all_per_hour,
            "remediation.max_acted_per_hour_all",
        ),
        (
            "every target, last day",
            used.all_day,
            limits.all_per_day,
            "remediation.max_acted_per_day_all",
        ),
    ];
    let description: Vec<String> = bars
        .iter()
        .map(|(words, used, limit, _)| format!("{words}: {used} of {limit}"))
        .collect();
    let row = 30.0;
    let left = 170.0;
    let height = row * bars.len() as f64 + 8.0;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-labelledby="budget-title budget-desc" {
                title #budget-title { "Budget use of " (name) }
                desc #budget-desc { "Instances acted on: " (description.join("; ")) "." }
                @for (n, (words, used, limit, key)) in bars.iter().enumerate() {
                    @let y = 4.0 + n as f64 * row;
                    @let full = WIDTH - left - 60.0;
                    @let share = (*used as f64 / (*limit).max(1) as f64).min(1.0);
                    @let class = if used >= limit { "budget spent" } else { "budget" };
                    text.label x="2" y=(y + 16.0) { (words) }
                    rect.budget-room x=(left) y=(y) width=(full.round()) height="20" {}
                    rect class=(class) x=(left) y=(y) width=((share * full).round()) height="20" {
                        title { (used) " of " (limit) " (" (key) ")" }
                    }
                    text.label x=(WIDTH - 54.0) y=(y + 16.0) { (used) " / " (limit) }
                }
            }
        }
        details {
            summary { "The numbers" }
            table {
                thead { tr { th { "Window" } th { "Acted on" } th { "Limit" } } }
                tbody {
                    @for (words, used, limit, key) in bars {
                        tr { td { (words) } td { (used) } td { (limit) " " code { (key) } } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn periods_are_filled_in_with_the_grouped_rows_by_kind_and_the_empty_ones_kept() {
        let since = OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(30);
        let until = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(3);
        let row = |start: i64, source: &str, outcome: &str, records: i64, acted: i64| {
            (start, source.to_owned(), outcome.to_owned(), records, acted)
        };
        let rows = [
            row(0, "sns", "completed", 3, 2),
            row(0, "sns", "refused", 1, 0),
            row(0, "notify", "completed", 9, 0),
            row(2 * HOUR, "recovery-check", "not-recovered", 1, 0),
            row(2 * HOUR, "sns", "ignored", 9, 0),
            row(9 * HOUR, "sns", "refused", 1, 0),
        ];
        let periods = periods(&rows, since, until, time::Duration::HOUR);
        let runs: Vec<[u64; 5]> = periods.iter().map(|p| p.runs).collect();
        assert_eq!(runs, [[2, 1, 0, 0, 0], [0; 5], [0, 0, 0, 0, 1], [0; 5]]);
        assert_eq!(
            periods[1].start,
            OffsetDateTime::UNIX_EPOCH + time::Duration::HOUR
        );
    }

    #[test]
    fn runs_stack_by_outcome_with_their_numbers_and_a_text_alternative() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let periods = [
            Period {
                start,
                runs: [2, 1, 0, 0, 0],
            },
            Period {
                start: start + time::Duration::HOUR,
                runs: [0; 5],
            },
        ];
        let svg = runs("web", "hour", &periods).into_string();
        // 3 runs at most: the acted bar is two thirds of the height, the refused one a third above it.
        assert!(
            svg.contains(r#"class="run acted" x="36" y="51" width="341" height="85""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"class="run refused" x="36" y="8" width="341" height="43""#),
            "{svg}"
        );
        assert!(
            svg.contains("2 acted, 1 refused by a rule, 0 held for approval"),
            "{svg}"
        );
        assert!(svg.contains("<td>2</td><td>1</td><td>0</td>"), "{svg}");
        let empty = runs("web", "hour", &[]).into_string();
        assert!(empty.contains("No run in this period.") && !empty.contains("NaN"));
        let quiet = runs("web", "hour", &periods[1..]).into_string();
        assert!(quiet.contains("No run in this period.") && !quiet.contains("<rect"));
    }

    #[test]
    fn budgets_are_drawn_against_their_limits_and_a_spent_one_stands_out() {
        let used = Used {
            target_hour: 5,
            target_day: 6,
            all_hour: 5,
            all_day: 6,
        };
        let limits = Budgets {
            per_hour: 5,
            per_day: 20,
            all_per_hour: 20,
            all_per_day: 50,
        };
        let svg = budgets("web", used, limits).into_string();
        assert!(
            svg.contains("this target, last hour: 5 of 5; this target, last day: 6 of 20"),
            "{svg}"
        );
        assert!(svg.contains(r#"class="budget spent""#));
        assert_eq!(svg.matches(r#"class="budget spent""#).count(), 1);
        assert!(
            svg.contains("<td>6</td><td>20 <code>remediation.max_acted_per_day</code></td>"),
            "{svg}"
        );
    }
}
