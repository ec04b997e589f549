//! UTC windows: the current minute, day and calendar month, computed with
//! plain civil-calendar arithmetic (no time-zone database needed: all UTC).

use crate::domain::Millis;

const MINUTE_MS: Millis = 60_000;
const DAY_MS: Millis = 86_400_000;

/// A window a limit counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Minute,
    Day,
    Month,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Minute, Window::Day, Window::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// Position in `ALL`, for per-window arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The [start, end) of the window that holds `now`.
    pub fn bounds(self, now: Millis) -> (Millis, Millis) {
        match self {
            Window::Minute => {
                let start = now.div_euclid(MINUTE_MS) * MINUTE_MS;
                (start, start + MINUTE_MS)
            }
            Window::Day => {
                let start = now.div_euclid(DAY_MS) * DAY_MS;
                (start, start + DAY_MS)
            }
            Window::Month => {
                let (year, month, _) = civil_from_days(now.div_euclid(DAY_MS));
                let start = days_from_civil(year, month, 1) * DAY_MS;
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (start, days_from_civil(next_year, next_month, 1) * DAY_MS)
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64, ms: i64) -> Millis {
        days_from_civil(year, month, day) * DAY_MS + hour * 3_600_000 + minute * MINUTE_MS + ms
    }

    #[test]
    fn civil_round_trips_across_centuries() {
        for days in [
            -800_000, -1, 0, 1, 59, 60, 10_957, 11_016, 19_782, 2_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn minute_boundaries() {
        let t = at(2026, 11, 26, 15, 9, 59_999);
        assert_eq!(
            Window::Minute.bounds(t),
            (at(2026, 11, 26, 15, 9, 0), at(2026, 11, 26, 15, 10, 0))
        );
        let next = t + 1;
        assert_eq!(Window::Minute.bounds(next).0, next);
    }

    #[test]
    fn day_boundaries_are_utc_midnight() {
        let last_ms = at(2026, 12, 31, 23, 59, 59_999);
        assert_eq!(
            Window::Day.bounds(last_ms),
            (at(2026, 12, 31, 0, 0, 0), at(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(Window::Day.bounds(last_ms + 1).0, at(2027, 1, 1, 0, 0, 0));
    }

    #[test]
    fn month_boundaries_handle_lengths_and_leap_years() {
        assert_eq!(
            Window::Month.bounds(at(2024, 2, 29, 12, 0, 0)),
            (at(2024, 2, 1, 0, 0, 0), at(2024, 3, 1, 0, 0, 0))
        );
        assert_eq!(
            Window::Month.bounds(at(2026, 12, 15, 0, 0, 0)),
            (at(2026, 12, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0))
        );
        let (start, end) = Window::Month.bounds(at(2026, 4, 30, 23, 59, 59_999));
        assert_eq!((end - start) / DAY_MS, 30);
        assert_eq!(
            Window::Month.bounds(at(2026, 5, 1, 0, 0, 0)).0,
            at(2026, 5, 1, 0, 0, 0)
        );
    }
}
