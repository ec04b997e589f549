//! Calendar months (UTC) of millisecond times: usage partitions and retention
//! are by whole months.

use crate::domain::Millis;

const DAY_MS: i64 = 86_400_000;

/// Months since year 0 (`year * 12 + month - 1`) of a time.
pub(crate) fn month_index(ms: Millis) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
    year * 12 + month - 1
}

/// The first millisecond of a month index.
pub(crate) fn month_start_ms(index: i64) -> Millis {
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    days_from_civil(year, month, 1) * DAY_MS
}

/// Usage older than this goes: the current month and the `retain_months`
/// whole months before it stay.
pub fn retention_cutoff_ms(now: Millis, retain_months: u32) -> Millis {
    month_start_ms(month_index(now) - i64::from(retain_months))
}

/// Howard Hinnant's days-to-civil: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The inverse: days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01T00:00:00Z.
    const JAN_2024: Millis = 1_704_067_200_000;
    /// 2024-03-01T00:00:00Z (after a leap February).
    const MAR_2024: Millis = 1_709_251_200_000;

    #[test]
    fn months_round_trip_at_their_edges() {
        let jan = month_index(JAN_2024);
        assert_eq!(jan, 2024 * 12);
        assert_eq!(month_start_ms(jan), JAN_2024);
        assert_eq!(month_index(JAN_2024 - 1), jan - 1);
        assert_eq!(month_start_ms(jan + 2), MAR_2024);
        assert_eq!(month_index(MAR_2024 - 1), jan + 1);
        assert_eq!(month_start_ms(jan - 12), 1_672_531_200_000);
        for index in (1970 * 12)..(2100 * 12) {
            assert_eq!(month_index(month_start_ms(index)), index);
        }
    }

    #[test]
    fn retention_keeps_whole_months() {
        assert_eq!(retention_cutoff_ms(MAR_2024 + 5, 2), JAN_2024);
        assert_eq!(retention_cutoff_ms(MAR_2024 - 1, 1), JAN_2024);
        assert_eq!(retention_cutoff_ms(JAN_2024, 0), JAN_2024);
    }
}
