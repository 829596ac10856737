//! The text form of times in upstream's SQLite database, as the Go driver
//! (mattn/go-sqlite3) writes them: `YYYY-MM-DD HH:MM:SS[.fraction]+00:00`,
//! UTC, fraction without trailing zeros. The form sorts as text in time
//! order, which is how upstream compares `expires <= ?`.
//!
//! Reading accepts every layout the Go driver accepts, so rows written by
//! other programs (`datetime('now')`, RFC 3339) read too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Formats `t` as the Go driver does.
pub fn format(t: SystemTime) -> String {
    let dt: DateTime<Utc> = t.into();
    let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = dt.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str("+00:00");
    s
}

/// Parses any layout the Go driver accepts (with or without `T`, fraction
/// and offset; a date alone). `None` if it is none of them.
pub fn parse(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    // With an offset: +HH:MM or -HH:MM at the end.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return to_system(dt.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return to_system(dt.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return to_system(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    None
}

fn to_system(dt: DateTime<Utc>) -> Option<SystemTime> {
    let secs = dt.timestamp();
    let nanos = dt.timestamp_subsec_nanos();
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(nanos as u64))
    }
}

/// Unix nanoseconds, as the `modified` column holds them.
pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Unix seconds (for rows whose expiry another program stored as a number).
pub fn unix_secs(t: SystemTime) -> i64 {
    unix_nanos(t) / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_go_driver() {
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 500_000_000);
        assert_eq!(format(t), "2024-05-01 12:00:00.5+00:00");
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 0);
        assert_eq!(format(t), "2024-05-01 12:00:00+00:00");
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 123_456_789);
        assert_eq!(format(t), "2024-05-01 12:00:00.123456789+00:00");
    }

    #[test]
    fn parses_every_layout() {
        let base = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        for s in [
            "2024-05-01 12:00:00+00:00",
            "2024-05-01T12:00:00+00:00",
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00",
            "2024-05-01T12:00:00.000",
            "2024-05-01 14:00:00+02:00",
            "2024-05-01 12:00",
        ] {
            assert_eq!(parse(s), Some(base), "{s}");
        }
        assert_eq!(parse("2024-05-01"), Some(base - Duration::from_secs(12 * 3600)));
        assert_eq!(parse("2024-05-01 12:00:00.25+00:00"), Some(base + Duration::from_millis(250)));
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn text_order_is_time_order() {
        let base = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let times = [0u64, 1, 250_000_000, 500_000_000, 550_000_000, 1_000_000_000, 1_500_000_000];
        let texts: Vec<_> = times.iter().map(|n| format(base + Duration::from_nanos(*n))).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }

    proptest::proptest! {
        #[test]
        fn round_trip(secs in 0u64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            proptest::prop_assert_eq!(parse(&format(t)), Some(t));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
