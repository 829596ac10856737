//! Durations in config files, in Go's `time.ParseDuration` form ("1s",
//! "250ms", "1h30m", "1.5h") as upstream's docs write them. A bare integer
//! is nanoseconds, which is how upstream's JSON round trip of its storage
//! params reads a number.

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Parses a Go duration string. Negative durations are refused (no setting
/// here has a meaning for them).
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!("duration {s:?} is negative"));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_len];
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(format!("invalid duration {s:?}: expected a number at {rest:?}"));
        }
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("invalid duration {s:?}: missing unit (use ns, us, ms, s, m or h)")),
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?} (use ns, us, ms, s, m or h)")),
        };
        let too_large = || format!("duration {s:?} is too large");
        let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| too_large())? };
        // The fraction, exactly: digits / 10^len, times the unit, rounded.
        let mut frac_nanos: u128 = 0;
        if !frac_part.is_empty() {
            let digits = &frac_part[..frac_part.len().min(18)];
            let num: u128 = digits.parse().map_err(|_| format!("invalid duration {s:?}"))?;
            let den = 10u128.pow(digits.len() as u32);
            frac_nanos = (num * nanos_per + den / 2) / den;
        }
        total = int
            .checked_mul(nanos_per)
            .and_then(|v| v.checked_add(frac_nanos))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(too_large)?;
    }
    let nanos = u64::try_from(total).map_err(|_| format!("duration {s:?} is too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way Go prints it ("1m30s", "250ms"), for messages
/// and `teleport configure`.
pub fn format(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return trim_float(n as f64 / 1e3, "us");
    }
    if n < 1_000_000_000 {
        return trim_float(n as f64 / 1e6, "ms");
    }
    let total_secs = d.as_secs();
    let (h, m) = (total_secs / 3600, (total_secs % 3600) / 60);
    let s = (total_secs % 60) as f64 + d.subsec_nanos() as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&trim_float(s, "s"));
    out
}

fn trim_float(v: f64, unit: &str) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as \"1s\", \"250ms\" or \"1h30m\" (a bare number is nanoseconds)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_nanos).map_err(|_| E::custom(format!("duration {v} is negative")))
    }
}

/// Serde helper for `Option<Duration>` fields: `#[serde(default, with = "duration::option")]`.
pub mod option {
    use super::*;

    /// Deserializes an optional Go-style duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct Opt;
        impl<'de> Visitor<'de> for Opt {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                DurationVisitor.expecting(f)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(DurationVisitor).map(Some)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                DurationVisitor.visit_str(v).map(Some)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                DurationVisitor.visit_u64(v).map(Some)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                DurationVisitor.visit_i64(v).map(Some)
            }
        }
        d.deserialize_option(Opt)
    }

    /// Serializes as a Go-style string.
    pub fn serialize<S: serde::Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "1", "1x", "-1s", "1..2s", "1s2", "ms"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        for d in [Duration::from_secs(90), Duration::from_millis(1500), Duration::from_micros(7)] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = parse(&s);
        }

        #[test]
        fn round_trips(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
