//! The audit page's charts: server-rendered SVG (no script; styled by the page's one stylesheet), each with a
//! text alternative (`<title>`, `<desc>`) and the numbers in a table beside it for screen readers.

use maud::{Markup, html};
use time::OffsetDateTime;

use super::layout::when;
use crate::audit::HealthPoint;

/// The drawing area, in SVG units; the SVG scales to the page's width.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
/// Room for the axis labels.
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// Where a point at `at` with `value` (of at most `max`) is drawn, between `since` and `until`. Pure.
fn place(
    at: OffsetDateTime,
    value: u32,
    since: OffsetDateTime,
    until: OffsetDateTime,
    max: u32,
) -> (f64, f64) {
    let span = (until - since).as_seconds_f64().max(1.0);
    let along = ((at - since).as_seconds_f64() / span).clamp(0.0, 1.0);
    let x = LEFT + along * (WIDTH - LEFT);
    let y = TOP + (1.0 - f64::from(value) / f64::from(max.max(1))) * (HEIGHT - TOP - BOTTOM);
    (x.round(), y.round())
}

/// The `points` attribute of a polyline through `values` at `points`' times.
fn polyline(
    points: &[HealthPoint],
    value: impl Fn(&HealthPoint) -> u32,
    since: OffsetDateTime,
    until: OffsetDateTime,
    max: u32,
) -> String {
    points
        .iter()
        .map(|point| {
            let (x, y) = place(point.at, value(point), since, until, max);
            format!("{x},{y}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A target's instances InService and not InService at each run and recovery check between `since` and
/// `until`, each run that acted marked on the time axis and linked to its page; the numbers in a table.
pub fn health(
    name: &str,
    points: &[HealthPoint],
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Markup {
    let max = points
        .iter()
        .map(|point| point.in_service + point.not_in_service)
        .max()
        .unwrap_or(0);
    let description = health_description(points);
    let bottom = HEIGHT - BOTTOM;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="health-title health-desc" {
                title #health-title { "Health of " (name) }
                desc #health-desc { (description) }
                line.axis x1=(LEFT) y1=(bottom) x2=(WIDTH) y2=(bottom) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) {}
                text.label x="2" y=(TOP + 10.0) { (max) }
                text.label x="2" y=(bottom) { "0" }
                text.label x=(LEFT) y=(HEIGHT - 6.0) { (when(since)) }
                text.label x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (when(until)) }
                @for point in points.iter().filter(|point| point.acted > 0) {
                    @let (x, _) = place(point.at, 0, since, until, max);
                    a href={ "/ui/runs/" (point.id) } {
                        line.acted x1=(x) y1=(TOP) x2=(x) y2=(bottom) {
                            title { "run " (point.id) " acted on " (point.acted) " at " (when(point.at)) }
                        }
                    }
                }
                @if !points.is_empty() {
                    polyline.in-service points=(polyline(points, |p| p.in_service, since, until, max)) {}
                    polyline.not-in-service points=(polyline(points, |p| p.not_in_service, since, until, max)) {}
                }
                @for point in points {
                    @let (x, up) = place(point.at, point.in_service, since, until, max);
                    @let (_, down) = place(point.at, point.not_in_service, since, until, max);
                    circle.in-service cx=(x) cy=(up) r="4" {}
                    circle.not-in-service cx=(x) cy=(down) r="4" {}
                }
            }
            figcaption {
                span.key.in-service { "InService" } " " span.key.not-in-service { "not InService" } " "
                span.key.acted { "a run that acted (links to it)" }
            }
        }
        @if !points.is_empty() {
            (health_numbers(points))
        } @else {
            p { (description) }
        }
    }
}

/// The health chart's text alternative: how many readings, the last one, and how many runs acted.
fn health_description(points: &[HealthPoint]) -> String {
    match points {
        [] => "No run or recovery check read the target in this period.".to_owned(),
        [.., last] => format!(
            "{} readings from {} to {}; the last saw {} InService and {} not InService; {} runs acted.",
            points.len(),
            when(points[0].at),
            when(last.at),
            last.in_service,
            last.not_in_service,
            points.iter().filter(|point| point.acted > 0).count()
        ),
    }
}

/// The health chart's numbers, one row per reading, for whoever cannot read the chart.
fn health_numbers(points: &[HealthPoint]) -> Markup {
    html! {
        details {
            summary { "The numbers" }
            table {
                thead { tr { th { "Time (UTC)" } th { "InService" } th { "Not InService" } th { "Acted" } } }
                tbody {
                    @for point in points {
                        tr {
                            td { a href={ "/ui/runs/" (point.id) } { (when(point.at)) } }
                            td { (point.in_service) }
                            td { (point.not_in_service) }
                            td { (point.acted) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(
        id: &str,
        minutes: i64,
        in_service: u32,
        not_in_service: u32,
        acted: u32,
    ) -> HealthPoint {
        HealthPoint {
            id: id.into(),
            at: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minutes),
            in_service,
            not_in_service,
            acted,
        }
    }

    #[test]
    fn a_known_series_draws_its_points_axis_labels_and_marks() {
        let since = OffsetDateTime::UNIX_EPOCH;
        let until = since + time::Duration::minutes(60);
        let points = [point("R1", 0, 3, 1, 1), point("C1", 60, 4, 0, 0)];
        let svg = health("web", &points, since, until).into_string();
        // 4 instances at most: InService 3 then 4, not InService 1 then 0, from the left axis to the right.
        assert!(
            svg.contains(r#"class="in-service" points="36,50 720,8""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"class="not-in-service" points="36,134 720,176""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<a href="/ui/runs/R1">"#),
            "the run that acted is marked and linked"
        );
        assert!(
            !svg.contains(r#"<a href="/ui/runs/C1"><line"#),
            "a check acts on nothing"
        );
        assert!(svg.contains("<title id=\"health-title\">Health of web</title>"));
        assert!(
            svg.contains("2 readings from 1970-01-01T00:00:00Z to 1970-01-01T01:00:00Z"),
            "{svg}"
        );
        assert!(
            svg.contains("<td>3</td><td>1</td><td>1</td>"),
            "the numbers: {svg}"
        );
    }

    #[test]
    fn no_points_and_one_point_are_drawn_without_dividing_by_nothing() {
        let since = OffsetDateTime::UNIX_EPOCH;
        let empty = health("web", &[], since, since).into_string();
        assert!(empty.contains("No run or recovery check read the target in this period."));
        assert!(!empty.contains("polyline"));
        let one = health("web", &[point("R1", 0, 0, 0, 0)], since, since).into_string();
        assert!(
            one.contains(r#"class="in-service" points="36,176""#),
            "{one}"
        );
        assert!(!one.contains("NaN"));
    }
}
