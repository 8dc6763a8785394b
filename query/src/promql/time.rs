//! Times in PromQL: `@` and `offset` modifiers in milliseconds, and calendar fields of a
//! Unix time (for `hour()`, `day_of_month()` and the like, in UTC).

use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Offset};

use super::error::PromqlError;

/// The time an `@` modifier fixes, ms.
pub fn at_millis(at: &AtModifier, query_start: i64, query_end: i64) -> Result<i64, PromqlError> {
    Ok(match at {
        AtModifier::Start => query_start,
        AtModifier::End => query_end,
        AtModifier::At(time) => system_time_millis(*time)?,
    })
}

/// Milliseconds of an `offset` (negative for `offset -5m`), 0 when none.
pub fn offset_millis(offset: Option<&Offset>) -> Result<i64, PromqlError> {
    Ok(match offset {
        None => 0,
        Some(Offset::Pos(duration)) => signed_millis(duration)?,
        Some(Offset::Neg(duration)) => -signed_millis(duration)?,
    })
}

fn signed_millis(duration: &Duration) -> Result<i64, PromqlError> {
    i64::try_from(duration.as_millis())
        .map_err(|_| PromqlError::BadData(format!("offset {duration:?} is too long")))
}

fn system_time_millis(time: SystemTime) -> Result<i64, PromqlError> {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => signed_millis(&after),
        Err(before) => signed_millis(&before.duration()).map(|ms| -ms),
    }
}

/// Calendar fields of a time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Day of the week, 0 = Sunday.
    pub weekday: u32,
    /// Day of the year, 1–366.
    pub day_of_year: u32,
}

/// A sample value as whole seconds the way Prometheus's date functions take it, Go's
/// `int64(v)` on amd64: truncated toward zero; NaN and values beyond int64 become its
/// minimum.
pub fn go_seconds(value: f64) -> i64 {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if value.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&value) {
        i64::MIN
    } else {
        value as i64
    }
}

/// Calendar fields of `seconds` since the epoch, as Go's `time.Unix(seconds, 0).UTC()`
/// gives them: times before Go's absolute zero year (about -292e9) wrap around 2^64 s.
pub fn civil(seconds: i64) -> Civil {
    // Seconds from Go's absolute zero year to the epoch.
    const UNIX_TO_ABSOLUTE: i64 = 9_223_372_028_715_321_600;
    let mut secs = i128::from(seconds);
    if seconds < -UNIX_TO_ABSOLUTE {
        secs += 1_i128 << 64;
    }
    // |secs| < 2^65, so the day count fits an i64 with room to spare.
    let days = secs.div_euclid(86_400) as i64;
    let in_day = secs.rem_euclid(86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let day_of_year = (days - days_from_civil(year, 1, 1) + 1) as u32;
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3600) as u32,
        minute: ((in_day % 3600) / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        day_of_year,
    }
}

/// Days in the month of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-from-days and days-from-civil algorithms.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields_of_known_times() {
        // 2026-12-02T12:23:58Z, a Wednesday, day 336.
        let c = civil(1_796_214_238);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2026, 12, 2, 12, 23)
        );
        assert_eq!((c.weekday, c.day_of_year), (3, 336));
        let epoch = civil(0);
        assert_eq!(
            (epoch.year, epoch.month, epoch.day, epoch.weekday),
            (1970, 1, 1, 4)
        );
        let before = civil(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.hour),
            (1969, 12, 31, 23)
        );
    }

    #[test]
    fn february_knows_leap_years() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2026, 4), 30);
    }
}
