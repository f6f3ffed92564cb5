//! `[[windows]]`: weekly maintenance windows in a named time zone. An alert for a target inside one of its
//! windows is refused (`maintenance-window`): planned work makes instances look broken. The schedule is read
//! in the window's own time zone by a time-zone library, so a window at 02:00 Europe/Berlin starts at 02:00
//! local time across daylight saving changes; its `duration` is elapsed time, so on the night the clocks
//! change its local end moves by the hour they moved.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;

/// The longest window: a week (a window that long never ends).
const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

/// A window as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    name: Option<String>,
    targets: Vec<String>,
    days: Vec<String>,
    start: String,
    duration: String,
    time_zone: String,
}

/// One maintenance window: on `days`, from `start` local time in `time_zone`, for `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct Window {
    /// Its name, in refusals and `check-config`.
    pub name: String,
    /// The targets it holds for (their names), or `"*"` for every target.
    pub targets: Vec<String>,
    days: Vec<Weekday>,
    start: Time,
    duration: Duration,
    time_zone: TimeZone,
    zone_name: String,
}

/// One occurrence of a window: when it starts and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// Its start.
    pub start: Timestamp,
    /// Its end (exclusive).
    pub end: Timestamp,
}

impl TryFrom<RawWindow> for Window {
    type Error = String;

    fn try_from(raw: RawWindow) -> Result<Self, String> {
        let name = raw
            .name
            .unwrap_or_else(|| format!("{} {}", raw.start, raw.time_zone));
        let key = |field: &str| format!("windows ({name:?}).{field}");
        let time_zone = TimeZone::get(&raw.time_zone).map_err(|_| {
            format!(
                "{} is {:?}, which is not a time zone name: use an IANA name such as \"Europe/Berlin\", \
                 \"America/New_York\" or \"UTC\"",
                key("time_zone"),
                raw.time_zone
            )
        })?;
        if raw.days.is_empty() {
            return Err(format!(
                "{} is empty: list the weekdays, e.g. [\"sat\", \"sun\"]",
                key("days")
            ));
        }
        let days = raw
            .days
            .iter()
            .map(|day| {
                weekday(day).ok_or_else(|| {
                    format!(
                        "{} has {day:?}, which is not a weekday: use mon, tue, wed, thu, fri, sat, sun \
                         (or the full names)",
                        key("days")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let start: Time = raw
            .start
            .parse()
            .ok()
            .filter(|_| raw.start.len() == 5)
            .ok_or_else(|| {
                format!(
                    "{} is {:?}: write the local start time as HH:MM (24 h), e.g. \"02:00\"",
                    key("start"),
                    raw.start
                )
            })?;
        let duration = super::parse_length(&raw.duration)
            .map_err(|why| format!("{}: {why}", key("duration")))?;
        if duration > LONGEST {
            return Err(format!("{} is longer than a week", key("duration")));
        }
        if raw.targets.is_empty() {
            return Err(format!(
                "{} is empty: list target names, or [\"*\"] for every target",
                key("targets")
            ));
        }
        Ok(Self {
            name,
            targets: raw.targets,
            days,
            start,
            duration,
            time_zone,
            zone_name: raw.time_zone,
        })
    }
}

/// The weekday a name means (`mon`, `Monday`, ...).
fn weekday(name: &str) -> Option<Weekday> {
    let lower = name.trim().to_ascii_lowercase();
    let days = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    days.into_iter().find_map(|(short, day)| {
        let full = format!("{day:?}").to_ascii_lowercase();
        (lower == short || lower == full).then_some(day)
    })
}

impl Window {
    /// Whether it holds for the target called `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.targets
            .iter()
            .any(|target| target == "*" || target == name)
    }

    /// Its time zone's name, as configured.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The occurrence that starts on local `date`, if the window has one that day. A start that daylight
    /// saving skips (02:30 on the spring change) begins when the clocks have moved on; one that repeats
    /// (the autumn change) begins at the first of the two.
    fn on(&self, date: Date) -> Option<Occurrence> {
        if !self.days.contains(&date.weekday()) {
            return None;
        }
        let start = self
            .time_zone
            .to_ambiguous_timestamp(date.to_datetime(self.start))
            .compatible()
            .ok()?;
        let end = start
            .checked_add(jiff::SignedDuration::try_from(self.duration).ok()?)
            .ok()?;
        Some(Occurrence { start, end })
    }

    /// The occurrence in force at `at`, if any.
    pub fn active_at(&self, at: Timestamp) -> Option<Occurrence> {
        let today = self.time_zone.to_datetime(at).date();
        // A window of up to a week that began up to eight local days ago can still be running.
        let mut date = today;
        for _ in 0..=8 {
            if let Some(occurrence) = self.on(date)
                && occurrence.start <= at
                && at < occurrence.end
            {
                return Some(occurrence);
            }
            date = date.yesterday().ok()?;
        }
        None
    }

    /// When the window, in force at `at`, ends: occurrences that touch or overlap (every day for a day) are one
    /// stretch. `None` when it is not in force.
    pub fn in_force_until(&self, at: Timestamp) -> Option<Timestamp> {
        let mut end = self.active_at(at)?.end;
        // Eight weeks of back-to-back occurrences at most; a window that never ends reports that far.
        for _ in 0..56 {
            match self.active_at(end) {
                Some(next) if next.end > end => end = next.end,
                _ => break,
            }
        }
        Some(end)
    }

    /// The next `n` occurrences that have not ended at `after` (one in force first).
    pub fn next(&self, after: Timestamp, n: usize) -> Vec<Occurrence> {
        let mut found: Vec<Occurrence> = self.active_at(after).into_iter().collect();
        let mut date = self.time_zone.to_datetime(after).date();
        // Eight weeks of days hold at least `n` occurrences for any n <= 8.
        for _ in 0..56 {
            if found.len() >= n {
                break;
            }
            if let Some(occurrence) = self.on(date)
                && occurrence.start > after
            {
                found.push(occurrence);
            }
            let Ok(next) = date.tomorrow() else { break };
            date = next;
        }
        found.truncate(n);
        found
    }

    /// `at` in the window's own time zone, for people.
    pub fn local(&self, at: Timestamp) -> String {
        at.to_zoned_datetime(self.time_zone.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], start: &str, duration: &str, zone: &str) -> Window {
        Window::try_from(RawWindow {
            name: Some("patching".into()),
            targets: vec!["web".into()],
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            start: start.into(),
            duration: duration.into(),
            time_zone: zone.into(),
        })
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_berlin_window_stays_at_local_time_across_the_spring_change() {
        // Sundays 01:00-03:00 Europe/Berlin. The clocks went forward on Sunday 2026-03-29 at 02:00 CET.
        let w = window(&["sun"], "01:00", "2h", "Europe/Berlin");
        // The Sunday before: CET (UTC+1), so 00:00Z-02:00Z.
        assert!(w.active_at(at("2026-03-22T00:00:00Z")).is_some());
        assert!(w.active_at(at("2026-03-22T01:59:59Z")).is_some());
        assert!(w.active_at(at("2026-03-22T02:00:00Z")).is_none());
        assert!(w.active_at(at("2026-03-21T23:59:59Z")).is_none());
        // The change day: 01:00 CET is 00:00Z, and two hours of elapsed time end at 02:00Z (04:00 CEST).
        let change = w.active_at(at("2026-03-29T00:30:00Z")).unwrap();
        assert_eq!(change.start, at("2026-03-29T00:00:00Z"));
        assert_eq!(change.end, at("2026-03-29T02:00:00Z"));
        // The Sunday after: CEST (UTC+2), so 23:00Z Saturday to 01:00Z.
        assert!(w.active_at(at("2026-04-04T23:00:00Z")).is_some());
        assert!(w.active_at(at("2026-04-05T00:59:59Z")).is_some());
        assert!(w.active_at(at("2026-04-05T01:00:00Z")).is_none());
        assert!(w.active_at(at("2026-04-04T22:59:59Z")).is_none());
    }

    #[test]
    fn a_start_the_clocks_skip_begins_after_them_and_a_repeated_one_at_the_first() {
        // 02:30 does not exist in Berlin on 2026-03-29: the window starts at 03:30 CEST (01:30Z).
        let skipped = window(&["sun"], "02:30", "1h", "Europe/Berlin");
        let spring = skipped.active_at(at("2026-03-29T01:45:00Z")).unwrap();
        assert_eq!(spring.start, at("2026-03-29T01:30:00Z"));
        // 02:30 happens twice on 2026-10-25 (CEST, then CET): the first, 00:30Z.
        let autumn = skipped.active_at(at("2026-10-25T00:45:00Z")).unwrap();
        assert_eq!(autumn.start, at("2026-10-25T00:30:00Z"));
        assert!(skipped.active_at(at("2026-10-25T01:30:00Z")).is_none());
    }

    #[test]
    fn a_window_past_midnight_holds_into_the_next_day_and_next_lists_three() {
        let w = window(&["fri"], "22:00", "4h", "UTC");
        // Friday 2026-12-04 22:00 to Saturday 02:00.
        assert!(w.active_at(at("2026-12-05T01:59:00Z")).is_some());
        assert!(w.active_at(at("2026-12-05T02:00:00Z")).is_none());
        let next = w.next(at("2026-12-03T00:00:00Z"), 3);
        let starts: Vec<Timestamp> = next.iter().map(|o| o.start).collect();
        assert_eq!(
            starts,
            [
                at("2026-12-04T22:00:00Z"),
                at("2026-12-11T22:00:00Z"),
                at("2026-12-18T22:00:00Z")
            ]
        );
        // One in force comes first.
        let during = w.next(at("2026-12-05T01:00:00Z"), 3);
        assert_eq!(during[0].start, at("2026-12-04T22:00:00Z"));
        assert_eq!(during.len(), 3);
        assert_eq!(w.local(during[0].start), "Fri 2026-12-04 22:00 UTC");
    }

    #[test]
    fn back_to_back_occurrences_are_one_stretch() {
        let daily = window(&["mon", "tue", "wed"], "00:00", "1d", "UTC");
        // Monday 2026-11-30 to Thursday 00:00.
        assert_eq!(
            daily.in_force_until(at("2026-11-30T12:00:00Z")),
            Some(at("2026-12-03T00:00:00Z"))
        );
        assert_eq!(daily.in_force_until(at("2026-12-03T00:00:00Z")), None);
    }

    #[test]
    fn bad_windows_are_refused_with_the_key_and_the_fix() {
        let raw = |days: Vec<&str>, start: &str, duration: &str, zone: &str| RawWindow {
            name: None,
            targets: vec!["*".into()],
            days: days.into_iter().map(str::to_owned).collect(),
            start: start.into(),
            duration: duration.into(),
            time_zone: zone.into(),
        };
        let err = |r| Window::try_from(r).unwrap_err();
        assert!(err(raw(vec!["sun"], "02:00", "1h", "Mars/Olympus")).contains("time_zone"));
        assert!(err(raw(vec!["someday"], "02:00", "1h", "UTC")).contains("not a weekday"));
        assert!(err(raw(vec![], "02:00", "1h", "UTC")).contains("days"));
        assert!(err(raw(vec!["sun"], "2am", "1h", "UTC")).contains("HH:MM"));
        assert!(err(raw(vec!["sun"], "02:00", "forever", "UTC")).contains("duration"));
        assert!(err(raw(vec!["sun"], "02:00", "8d", "UTC")).contains("duration"));
        let ok = Window::try_from(raw(vec!["Sunday", "sat"], "02:00", "90m", "UTC")).unwrap();
        assert!(ok.covers("anything"));
    }
}
