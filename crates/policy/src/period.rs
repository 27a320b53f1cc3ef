//! Calendar periods (hour, day, week, month) in a time zone, and their boundaries.
//!
//! A budget "per month in Europe/Paris" is one counter per calendar month there: the period's id
//! names the counter and its end is when the budget resets.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::LimitError;

/// A calendar unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Hour,
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

/// The period containing `now_us`: its id (e.g. `2026-11`) and its end in microseconds.
pub fn current(period: Period, tz: &TimeZone, now_us: i64) -> Result<(String, i64), LimitError> {
    let bad = |e: jiff::Error| LimitError::TimeZone(e.to_string());
    let now = Timestamp::from_microsecond(now_us).map_err(bad)?;
    let z: Zoned = now.to_zoned(tz.clone());
    let (start, id) = match period {
        Period::Hour => {
            let s = z
                .start_of_day()
                .map_err(bad)?
                .with()
                .hour(z.hour())
                .build()
                .map_err(bad)?;
            let id = s.strftime("%Y-%m-%dT%H").to_string();
            (s, id)
        }
        Period::Day => {
            let s = z.start_of_day().map_err(bad)?;
            let id = s.strftime("%Y-%m-%d").to_string();
            (s, id)
        }
        Period::Week => {
            let back = z.weekday().to_monday_zero_offset();
            let s = z
                .start_of_day()
                .map_err(bad)?
                .checked_sub(i64::from(back).days())
                .map_err(bad)?;
            debug_assert_eq!(s.weekday(), Weekday::Monday);
            let id = s.strftime("%Y-%m-%d/w").to_string();
            (s, id)
        }
        Period::Month => {
            let s = z
                .first_of_month()
                .map_err(bad)?
                .start_of_day()
                .map_err(bad)?;
            let id = s.strftime("%Y-%m").to_string();
            (s, id)
        }
    };
    let step = match period {
        Period::Hour => 1.hour(),
        Period::Day => 1.day(),
        Period::Week => 1.week(),
        Period::Month => 1.month(),
    };
    let end = start.checked_add(step).map_err(bad)?;
    Ok((id, end.timestamp().as_microsecond()))
}

/// A time zone by IANA name (bundled data, so the binary needs no system tzdb).
pub fn zone(name: &str) -> Result<TimeZone, LimitError> {
    jiff::tz::db()
        .get(name)
        .map_err(|_| LimitError::TimeZone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn periods_follow_the_calendar_of_their_zone() {
        let utc = TimeZone::UTC;
        let (id, end) = current(Period::Month, &utc, us("2026-11-22T05:00:00Z")).unwrap();
        assert_eq!(id, "2026-11");
        assert_eq!(end, us("2026-12-01T00:00:00Z"));
        let paris = zone("Europe/Paris").unwrap();
        let (id, end) = current(Period::Day, &paris, us("2026-11-22T23:30:00Z")).unwrap();
        assert_eq!(id, "2026-11-23", "already the 23rd in Paris");
        assert_eq!(end, us("2026-11-23T23:00:00Z"));
        let (id, end) = current(Period::Week, &utc, us("2026-11-22T05:00:00Z")).unwrap();
        assert_eq!(id, "2026-11-16/w", "the 22nd is a Sunday");
        assert_eq!(end, us("2026-11-23T00:00:00Z"));
        let (id, end) = current(Period::Hour, &utc, us("2026-11-22T05:59:59Z")).unwrap();
        assert_eq!(
            (id.as_str(), end),
            ("2026-11-22T05", us("2026-11-22T06:00:00Z"))
        );
        assert!(zone("Mars/Olympus").is_err());
    }
}
