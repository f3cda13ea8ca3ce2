//! Durations written as `"250ms"`, `"5s"`, `"1.5s"`, `"2m"` or `"1h"`, held as milliseconds.

use std::fmt;

/// The longest duration accepted anywhere: 7 days. Longer values are almost certainly typos
/// (`"5000m"`) and would make time arithmetic overflow-prone.
pub const MAX_MILLIS: u64 = 7 * 24 * 3600 * 1000;

/// A duration in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms != 0 && ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m` or `h`; the number may have a fraction
/// (`"1.5s"`) but must come out as whole milliseconds.
pub fn parse(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("invalid duration \"{text}\": missing unit (use ms, s, m or h, e.g. \"250ms\")")
        })?;
    let (number, unit) = text.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration \"{text}\": unknown unit \"{unit}\" (use ms, s, m or h)"
            ))
        }
    };
    let millis = parse_scaled(number, unit_ms)
        .ok_or_else(|| format!("invalid duration \"{text}\": expected a number before the unit"))?;
    if millis > MAX_MILLIS {
        return Err(format!("invalid duration \"{text}\": longer than 7 days"));
    }
    Ok(Millis(millis))
}

/// `number × unit_ms` computed in integers, so that `"0.1s"` is exactly 100 ms.
fn parse_scaled(number: &str, unit_ms: u64) -> Option<u64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole_value: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut millis = whole_value.checked_mul(unit_ms)?;
    // Each fractional digit is worth unit_ms / 10^k; reject digits finer than a millisecond.
    let mut scale = unit_ms;
    for digit in fraction.bytes() {
        let d = u64::from(digit - b'0');
        if !scale.is_multiple_of(10) {
            if d != 0 {
                return None;
            }
            continue;
        }
        scale /= 10;
        millis = millis.checked_add(d.checked_mul(scale)?)?;
    }
    Some(millis)
}

/// A configured duration from `MIN_MS` to `MAX_MS` milliseconds, checked while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationIn<const MIN_MS: u64, const MAX_MS: u64>(pub Millis);

/// Any duration up to [`MAX_MILLIS`].
pub type AnyDuration = DurationIn<0, MAX_MILLIS>;
/// A duration longer than zero.
pub type PositiveDuration = DurationIn<1, MAX_MILLIS>;

impl<const MIN_MS: u64, const MAX_MS: u64> DurationIn<MIN_MS, MAX_MS> {
    pub fn ms(self) -> u64 {
        self.0 .0
    }

    /// Why `millis` is refused, if it is.
    pub fn check(millis: Millis) -> Result<Self, String> {
        if millis.0 < MIN_MS {
            return Err(if MIN_MS == 1 {
                "must be greater than 0".to_string()
            } else {
                format!("must be at least {}", Millis(MIN_MS))
            });
        }
        if millis.0 > MAX_MS {
            return Err(format!("at most {}", Millis(MAX_MS)));
        }
        Ok(DurationIn(millis))
    }
}

impl<'de, const MIN_MS: u64, const MAX_MS: u64> serde::Deserialize<'de>
    for DurationIn<MIN_MS, MAX_MS>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<const MIN_MS: u64, const MAX_MS: u64>;
        impl<const MIN_MS: u64, const MAX_MS: u64> serde::de::Visitor<'_> for Text<MIN_MS, MAX_MS> {
            type Value = DurationIn<MIN_MS, MAX_MS>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"1.5s\" or \"2m\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                let millis = parse(text).map_err(E::custom)?;
                DurationIn::check(millis).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text::<MIN_MS, MAX_MS>)
    }
}

#[cfg(feature = "schema")]
impl<const MIN_MS: u64, const MAX_MS: u64> schemars::JsonSchema for DurationIn<MIN_MS, MAX_MS> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        match (MIN_MS, MAX_MS) {
            (0, MAX_MILLIS) => "duration".into(),
            (1, MAX_MILLIS) => "positive_duration".into(),
            _ => format!("duration_{}_to_{}", Millis(MIN_MS), Millis(MAX_MS)).into(),
        }
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let longer = match MIN_MS {
            0 => String::new(),
            1 => ", longer than 0".to_string(),
            min => format!(", at least {}", Millis(min)),
        };
        schemars::json_schema!({
            "description": format!(
                "A duration: a number and a unit, ms, s, m or h (\"250ms\", \"1.5s\", \"2m\"); whole milliseconds{longer}, at most {}.",
                if MAX_MS == MAX_MILLIS { "7 days".to_string() } else { Millis(MAX_MS).to_string() }
            ),
            "type": "string",
            "pattern": crate::schema::duration_pattern(MIN_MS, MAX_MS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(Millis(250)));
        assert_eq!(parse("5s"), Ok(Millis(5000)));
        assert_eq!(parse("2m"), Ok(Millis(120_000)));
        assert_eq!(parse("1h"), Ok(Millis(3_600_000)));
        assert_eq!(parse("0s"), Ok(Millis(0)));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(parse("1.5s"), Ok(Millis(1500)));
        assert_eq!(parse("0.1s"), Ok(Millis(100)));
        assert_eq!(parse(".25s"), Ok(Millis(250)));
        assert_eq!(parse("0.001s"), Ok(Millis(1)));
        assert!(parse("0.0001s").is_err());
        assert!(parse("1.5ms").is_err());
        assert_eq!(parse("1.0ms"), Ok(Millis(1)));
    }

    #[test]
    fn bad_input_is_explained() {
        for bad in ["", "5", "s", "5x", "-1s", "1.2.3s", "5 s", "1e3ms", "ms"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse("5x").unwrap_err().contains("unknown unit"));
        assert!(parse("5").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        assert!(parse("99999999999999999999h").is_err());
        assert!(parse("18446744073709551615h").is_err());
        assert!(parse("8d").is_err());
        assert!(parse("169h").is_err());
        assert_eq!(parse("168h"), Ok(Millis(MAX_MILLIS)));
    }

    #[test]
    fn configured_durations_are_checked_against_their_bounds() {
        let read = |json: &str| crate::config::read::<DurationIn<10, 60_000>>(json.as_bytes());
        assert_eq!(read(r#""1s""#).map(|d| d.ms()), Ok(1000));
        assert_eq!(
            read(r#""5ms""#).unwrap_err().reason,
            "must be at least 10ms"
        );
        assert_eq!(read(r#""2m""#).unwrap_err().reason, "at most 1m");
        assert!(read(r#""5 s""#)
            .unwrap_err()
            .reason
            .contains("invalid duration"));
        assert!(read("5")
            .unwrap_err()
            .reason
            .contains("expected a duration"));
        let positive = |json: &str| crate::config::read::<PositiveDuration>(json.as_bytes());
        assert_eq!(
            positive(r#""0s""#).unwrap_err().reason,
            "must be greater than 0"
        );
        assert_eq!(positive(r#""1ms""#).map(|d| d.ms()), Ok(1));
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Millis(250).to_string(), "250ms");
        assert_eq!(Millis(5000).to_string(), "5s");
        assert_eq!(Millis(120_000).to_string(), "2m");
        assert_eq!(Millis(1500).to_string(), "1500ms");
        assert_eq!(Millis(0).to_string(), "0ms");
    }
}
