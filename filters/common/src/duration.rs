//! Durations written as `"250ms"`, `"5s"`, `"1.5s"`, `"2m"` or `"1h"`, held as milliseconds.

use crate::config::{ConfigError, Field};
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

/// Reads a duration field.
pub fn field(f: Field<'_>) -> Result<Millis, ConfigError> {
    parse(f.str()?).map_err(|e| f.error(e))
}

/// Reads a duration field that must be longer than zero.
pub fn positive(f: Field<'_>) -> Result<Millis, ConfigError> {
    let d = field(f.clone())?;
    if d.as_u64() == 0 {
        return Err(f.error("must be greater than 0"));
    }
    Ok(d)
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
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Millis(250).to_string(), "250ms");
        assert_eq!(Millis(5000).to_string(), "5s");
        assert_eq!(Millis(120_000).to_string(), "2m");
        assert_eq!(Millis(1500).to_string(), "1500ms");
        assert_eq!(Millis(0).to_string(), "0ms");
    }
}
