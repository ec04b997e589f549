//! The admin commands' argument values: parsers of token lifetimes,
//! `KEY=VALUE` pairs and points in time, and clap choices of proto enums.

use std::time::{Duration, SystemTime};

/// A token lifetime; `None` never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ttl(pub(super) Option<Duration>);

pub(super) fn parse_ttl(s: &str) -> Result<Ttl, String> {
    if s.trim().eq_ignore_ascii_case("never") {
        return Ok(Ttl(None));
    }
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err("the ttl must be longer than zero".to_owned()),
        Ok(d) => Ok(Ttl(Some(d))),
        Err(e) => Err(format!("{e}; use a duration like `24h` or `never`")),
    }
}

pub(super) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// `--since`/`--until`, relative to now.
pub(super) fn parse_time(s: &str) -> Result<SystemTime, String> {
    parse_time_at(s, SystemTime::now())
}

/// An RFC 3339 time (UTC unless it carries an offset; a bare date is its
/// midnight UTC), or a duration before `now`.
fn parse_time_at(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Some(time) = parse_rfc3339(s) {
        return Ok(time);
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return now
            .checked_sub(ago)
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .ok_or_else(|| format!("`{s}` ago is before 1970"));
    }
    Err(format!(
        "`{s}` is neither an RFC 3339 time (`2025-01-31T08:00:00Z`) nor a duration ago (`24h`)"
    ))
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if s.len() == "2025-01-31".len() {
        return humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).ok();
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(s) {
        return Some(time);
    }
    // humantime knows only UTC: undo a numeric offset such as `+02:00`.
    let split = s.len().checked_sub("+02:00".len())?;
    let (local, offset) = (s.get(..split)?, s.get(split..)?.as_bytes());
    let digits = |i: usize| char::from(offset[i]).to_digit(10).map(u64::from);
    if offset[3] != b':' {
        return None;
    }
    let hours = digits(1)? * 10 + digits(2)?;
    let minutes = digits(4)? * 10 + digits(5)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    match offset[0] {
        b'+' => local.checked_sub(shift),
        b'-' => local.checked_add(shift),
        _ => None,
    }
}

/// A duration as the proto's; `None` if it is too long to hold.
pub(super) fn proto_duration(duration: Duration) -> Option<pbjson_types::Duration> {
    Some(pbjson_types::Duration {
        seconds: i64::try_from(duration.as_secs()).ok()?,
        nanos: duration.subsec_nanos() as i32,
    })
}

/// A clap value enum for some values of a proto enum, which it converts to
/// the `i32` the messages hold.
macro_rules! proto_choice {
    ($(#[$doc:meta])* $arg:ident => $proto:ident { $($(#[$value_doc:meta])* $value:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub(super) enum $arg {
            $($(#[$value_doc])* $value),+
        }

        impl From<$arg> for i32 {
            fn from(arg: $arg) -> i32 {
                match arg {
                    $($arg::$value => $proto::$value.into()),+
                }
            }
        }
    };
}

pub(super) use proto_choice;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_duration_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_738_300_000);
        let at = |s: &str| {
            parse_time_at(s, now).map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            })
        };
        assert_eq!(at("2025-01-31T00:00:00Z"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31T00:00:00.5Z"), Ok(1_738_281_600.5));
        assert_eq!(at("2025-01-31 00:00:00"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31T02:00:00+02:00"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-30T19:30:00-04:30"), Ok(1_738_281_600.0));
        assert_eq!(at(" 24h "), Ok(1_738_300_000.0 - 86_400.0));
        assert_eq!(at("7d"), Ok(1_738_300_000.0 - 7.0 * 86_400.0));
        assert_eq!(at("1h 30m"), Ok(1_738_300_000.0 - 5_400.0));
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-01-31T00:00:00+25:00",
            "2025-01-31T00:00:00x02:00",
        ] {
            assert!(at(bad).is_err(), "{bad:?} parsed");
        }
        assert!(at("100000000000h").is_err());
    }

    #[test]
    fn the_ttl_parser_is_strict() {
        assert_eq!(parse_ttl("NEVER"), Ok(Ttl(None)));
        assert!(parse_ttl("-1h").is_err());
    }
}
