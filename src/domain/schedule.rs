//! Workspace schedules, as pure rules: the autostart schedule's grammar
//! (Coder's weekly `CRON_TZ=<IANA zone> <minute> <hour> * * <days>`), the
//! ttl's bounds, how far a deadline may be moved, and what the scheduler
//! owes a workspace at a given instant. No clock is read here: every
//! function takes `now`, so the scheduler's clock can be injected.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::{JobStatus, Transition};

/// The shortest ttl Coder accepts.
pub const TTL_MIN_MS: i64 = 60_000;
/// The longest ttl Coder accepts (30 days).
pub const TTL_MAX_MS: i64 = 30 * 24 * 3_600_000;

/// A validated weekly autostart schedule.
#[derive(Debug, Clone)]
pub struct Weekly {
    zone: Tz,
    cron: Cron,
}

impl Weekly {
    /// Parses Coder's weekly schedule: an optional `CRON_TZ=<IANA zone>`
    /// prefix (UTC without one) and five cron fields whose day-of-month and
    /// month are `*`. The error says what is wrong, for a validation.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (zone, spec) = match raw.strip_prefix("CRON_TZ=") {
            Some(rest) => {
                let (zone, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                let zone = Tz::from_str(zone)
                    .map_err(|_| format!("parse schedule: unknown time zone {zone:?}"))?;
                (zone, spec)
            }
            None => (Tz::UTC, raw),
        };
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err("expected schedule to consist of 5 fields with an optional \
                        CRON_TZ=<timezone> prefix"
                .into());
        }
        if fields[2] != "*" || fields[3] != "*" {
            return Err("expected day-of-month and month values to be *".into());
        }
        let cron = Cron::from_str(&fields.join(" ")).map_err(|e| format!("parse schedule: {e}"))?;
        Ok(Self { zone, cron })
    }

    /// The first start strictly after `after`, to the minute; `None` when
    /// the schedule never fires (a day of week no week has).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }
}

/// An autostart schedule as given: empty or absent clears it; anything else
/// must parse, and is stored as given (trimmed).
pub fn autostart(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Weekly::parse(s).map(|_| Some(s.to_owned())),
    }
}

/// A ttl as given, Coder's rules: absent or zero clears it; otherwise,
/// truncated to the minute, at least one minute and at most 30 days.
pub fn ttl(ms: Option<i64>) -> Result<Option<i64>, &'static str> {
    let Some(ms) = ms.filter(|ms| *ms != 0) else { return Ok(None) };
    let truncated = ms - ms.rem_euclid(TTL_MIN_MS);
    if truncated < TTL_MIN_MS {
        return Err("time until shutdown must be at least one minute");
    }
    if truncated > TTL_MAX_MS {
        return Err("time until shutdown must be less than 30 days");
    }
    Ok(Some(ms))
}

/// The deadline of a start build that succeeded at `completed`: its
/// workspace's ttl later, or none without a ttl (manual shutdown).
pub fn deadline(completed: DateTime<Utc>, ttl_ms: Option<i64>) -> Option<DateTime<Utc>> {
    ttl_ms.map(|ms| completed + Duration::milliseconds(ms))
}

/// Coder's rule for a new deadline: at least 30 minutes ahead (a minute of
/// slack for the request's own time) and not before the build started.
pub fn check_new_deadline(
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    new: DateTime<Utc>,
) -> Result<(), &'static str> {
    if new < now + Duration::minutes(29) {
        return Err("new deadline must be at least 30 minutes in the future");
    }
    if new < started {
        return Err("new deadline must be before workspace start time");
    }
    Ok(())
}

/// What the scheduler knows of a workspace's latest build.
#[derive(Debug, Clone, Copy)]
pub struct LatestBuild {
    pub transition: Transition,
    pub job: JobStatus,
    pub created_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
}

/// The build the scheduler owes a live, not dormant workspace at `now`:
/// a stop once a running workspace's deadline passed; a start once a
/// stopped workspace's schedule fired after its stop build was created
/// (Coder's executor: so each scheduled start is due exactly once, and a
/// start that failed is not retried until the next one). Nothing while a
/// build is active or after a failure.
pub fn due(
    schedule: Option<&Weekly>,
    latest: &LatestBuild,
    now: DateTime<Utc>,
) -> Option<Transition> {
    if latest.job != JobStatus::Succeeded {
        return None;
    }
    match latest.transition {
        Transition::Start => latest.deadline.filter(|d| *d <= now).map(|_| Transition::Stop),
        Transition::Stop => schedule
            .and_then(|s| s.next_after(latest.created_at))
            .filter(|next| *next <= now)
            .map(|_| Transition::Start),
        Transition::Delete => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn schedules_follow_coders_weekly_grammar() {
        for good in ["CRON_TZ=Europe/Dublin 30 9 * * 1-5", "0 9 * * *", "CRON_TZ=UTC 5 0 * * 0,6"] {
            assert!(Weekly::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("garbage", "5 fields"),
            ("CRON_TZ=Mars/Olympus 0 9 * * *", "unknown time zone"),
            ("0 9 1 * *", "day-of-month"),
            ("0 9 * 2 *", "day-of-month"),
            ("61 9 * * *", "parse schedule"),
            ("0 9 * * * *", "5 fields"),
        ] {
            let err = Weekly::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(autostart(Some("  ")), Ok(None));
        assert_eq!(autostart(None), Ok(None));
    }

    #[test]
    fn next_start_is_in_the_schedules_zone() {
        let s = Weekly::parse("CRON_TZ=America/New_York 30 9 * * 1-5").expect("schedule");
        // Friday 2026-12-04 15:00 UTC is 10:00 in New York: the next is Monday 09:30 EST.
        let next = s.next_after(at("2026-12-04T15:00:00Z")).expect("next");
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 7, 14, 30, 0).single().expect("t"));
    }

    #[test]
    fn ttl_bounds_are_coders() {
        assert_eq!(ttl(None), Ok(None));
        assert_eq!(ttl(Some(0)), Ok(None));
        assert_eq!(ttl(Some(60_000)), Ok(Some(60_000)));
        assert!(ttl(Some(-5)).is_err());
        assert!(ttl(Some(59_999)).is_err());
        assert!(ttl(Some(TTL_MAX_MS + 60_000)).is_err());
    }

    #[test]
    fn the_scheduler_owes_one_build_per_event() {
        let schedule = Weekly::parse("0 9 * * *").expect("schedule");
        let stopped = LatestBuild {
            transition: Transition::Stop,
            job: JobStatus::Succeeded,
            created_at: at("2026-12-03T08:00:00Z"),
            deadline: None,
        };
        assert_eq!(due(Some(&schedule), &stopped, at("2026-12-03T08:59:59Z")), None);
        assert_eq!(
            due(Some(&schedule), &stopped, at("2026-12-03T09:00:00Z")),
            Some(Transition::Start)
        );
        assert_eq!(due(None, &stopped, at("2026-12-03T09:00:00Z")), None);
        let failed = LatestBuild { job: JobStatus::Failed, ..stopped };
        assert_eq!(due(Some(&schedule), &failed, at("2026-12-03T09:00:00Z")), None);
        let running = LatestBuild {
            transition: Transition::Start,
            deadline: Some(at("2026-12-03T10:00:00Z")),
            ..stopped
        };
        assert_eq!(due(Some(&schedule), &running, at("2026-12-03T09:59:00Z")), None);
        assert_eq!(
            due(Some(&schedule), &running, at("2026-12-03T10:00:00Z")),
            Some(Transition::Stop)
        );
        let manual = LatestBuild { deadline: None, ..running };
        assert_eq!(due(Some(&schedule), &manual, at("2026-12-04T10:00:00Z")), None);
    }

    #[test]
    fn deadlines_move_by_coders_rules() {
        let now = at("2026-12-03T09:00:00Z");
        assert!(check_new_deadline(now, now, at("2026-12-03T09:10:00Z")).is_err());
        assert!(check_new_deadline(now, now, at("2026-12-03T10:00:00Z")).is_ok());
        assert_eq!(deadline(now, Some(60_000)), Some(at("2026-12-03T09:01:00Z")));
        assert_eq!(deadline(now, None), None);
    }
}
