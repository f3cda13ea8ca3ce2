//! The access-log record: ordered fields, written as one JSON object (escaped by hand: every
//! string is escaped, control characters as `\u00XX`) and as plain per-field text.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(u64),
    /// A duration in nanoseconds, written as milliseconds with three decimals.
    Millis(u64),
    Bool(bool),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub fields: Vec<(Cow<'static, str>, Value)>,
}

impl Record {
    pub fn with_capacity(n: usize) -> Self {
        Record {
            fields: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: Value) {
        self.fields.push((key.into(), value));
    }

    pub fn str(&mut self, key: &'static str, value: String) {
        self.push(key, Value::Str(value));
    }

    /// The record as one JSON object.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.fields.len() * 48);
        out.push('{');
        self.write_members(&mut out);
        out.push('}');
        out
    }

    /// The members of [`Record::to_json`]'s object without its braces, for an access-log format
    /// that writes the object itself (`envoy_fields: "access_log"`).
    pub fn to_json_members(&self) -> String {
        let mut out = String::with_capacity(64 + self.fields.len() * 48);
        self.write_members(&mut out);
        out
    }

    fn write_members(&self, out: &mut String) {
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(out, key);
            out.push(':');
            match value {
                Value::Str(s) => write_json_string(out, s),
                Value::Int(n) => out.push_str(&n.to_string()),
                Value::Millis(ns) => write_millis(out, *ns),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::List(items) => {
                    out.push('[');
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_json_string(out, item);
                    }
                    out.push(']');
                }
            }
        }
    }
}

impl Value {
    /// The value as plain text for a per-field filter-state key; lists are not written there.
    pub fn plain(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            Value::Millis(ns) => {
                let mut out = String::new();
                write_millis(&mut out, *ns);
                Some(out)
            }
            Value::Bool(b) => Some(b.to_string()),
            Value::List(_) => None,
        }
    }
}

/// Writes a JSON string literal. `text` is valid UTF-8 (the redactor guarantees it); quotes,
/// backslashes and every control character are escaped, so hostile values cannot break out of
/// the string or the line.
pub fn write_json_string(out: &mut String, text: &str) {
    // A byte scan: every byte that needs escaping is ASCII, except U+2028 and U+2029 (E2 80 A8
    // and E2 80 A9), so the text is copied in runs between them without decoding characters
    // (decoding them was a third of the record's cost).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        if let Some(chunk) = bytes
            .get(i..i + 8)
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
        {
            if is_plain_ascii(u64::from_le_bytes(chunk)) {
                i += 8;
                continue;
            }
        }
        let (escape, len): (&str, usize) = match b {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            0..=0x1f | 0x7f => ("", 1),
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                (
                    if bytes.get(i + 2) == Some(&0xa8) {
                        "\\u2028"
                    } else {
                        "\\u2029"
                    },
                    3,
                )
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'),
            ));
        } else {
            out.push_str(escape);
        }
        i += len;
        start = i;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// Whether eight bytes are all printable ASCII other than `"` and `\\` (nothing to escape), as
/// one word-wide test (SWAR) instead of eight byte comparisons.
fn is_plain_ascii(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let equal = |n: u8| {
        let x = word ^ (ONES * u64::from(n));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    (word & HIGH) | below(0x20) | equal(b'"') | equal(b'\\') | equal(0x7f) == 0
}

/// Nanoseconds as milliseconds with three decimals (`12.345`), without float formatting.
pub fn write_millis(out: &mut String, nanos: u64) {
    let micros = nanos / 1000;
    out.push_str(&(micros / 1000).to_string());
    out.push('.');
    out.push_str(&format!("{:03}", micros % 1000));
}

/// RFC 3339 UTC time with milliseconds (`2026-11-27T05:40:12.345Z`) from Unix nanoseconds.
pub fn rfc3339(unix_nanos: u64) -> String {
    let millis = unix_nanos / 1_000_000;
    let secs = millis / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        millis % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    #[test]
    fn the_word_test_agrees_with_the_byte_test_for_every_byte_at_every_position() {
        for byte in 0..=255u8 {
            let plain = (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\';
            for position in 0..8 {
                let mut chunk = *b"abcdefgh";
                chunk[position] = byte;
                assert_eq!(
                    is_plain_ascii(u64::from_le_bytes(chunk)),
                    plain,
                    "byte {byte:#x} at {position}"
                );
            }
        }
    }

    #[test]
    fn long_runs_and_escapes_at_every_offset_round_trip() {
        for offset in 0..20 {
            let text = format!(
                "{}\"{}\u{2028}é\u{1}{}",
                "x".repeat(offset),
                "y".repeat(offset),
                "z".repeat(9)
            );
            let mut out = String::new();
            write_json_string(&mut out, &text);
            let parsed = serde_json::from_slice::<serde_json::Value>(out.as_bytes()).unwrap();
            assert_eq!(parsed.as_str(), Some(text.as_str()), "{out}");
            assert!(out.contains("\\u2028") && out.contains("\\u0001"), "{out}");
        }
    }

    #[test]
    fn hostile_strings_stay_inside_their_json_string() {
        let hostile = "quote\" backslash\\ newline\n cr\r tab\t nul\0 bell\u{7} del\u{7f} ls\u{2028} \u{fffd} æøå \"}{\"x\":\"";
        let mut record = Record::default();
        record.str("path", hostile.to_string());
        record.push(
            "http.request.header.x-a",
            Value::List(vec![hostile.to_string(), "b".into()]),
        );
        let line = record.to_json();
        assert!(
            !line.contains('\n') && !line.contains('\r') && !line.contains('\0'),
            "{line}"
        );
        // Our strict JSON reader parses it back to the same text.
        let parsed = serde_json::from_slice::<serde_json::Value>(line.as_bytes()).unwrap();
        assert_eq!(parsed.get("path").and_then(|v| v.as_str()), Some(hostile));
        let list = parsed
            .get("http.request.header.x-a")
            .and_then(|v| v.as_array())
            .unwrap();
        assert_eq!(list[0].as_str(), Some(hostile));
        assert_eq!(parsed.as_object().unwrap().len(), 2, "no injected keys");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_before_writing() {
        let mut text = String::new();
        crate::redact::push_lossy(&mut text, &[b'a', 0xff, 0xfe, b'b', 0xc3]);
        assert_eq!(text, "a\u{fffd}\u{fffd}b\u{fffd}");
        let mut record = Record::default();
        record.str("v", text.clone());
        let parsed =
            serde_json::from_slice::<serde_json::Value>(record.to_json().as_bytes()).unwrap();
        assert_eq!(
            parsed.get("v").and_then(|v| v.as_str()),
            Some(text.as_str())
        );
    }

    #[test]
    fn values_of_every_kind() {
        let mut record = Record::default();
        record.push("n", Value::Int(200));
        record.push("d", Value::Millis(12_345_678));
        record.push("z", Value::Millis(999));
        record.push("b", Value::Bool(true));
        record.push("l", Value::List(vec![]));
        assert_eq!(
            record.to_json(),
            r#"{"n":200,"d":12.345,"z":0.000,"b":true,"l":[]}"#
        );
        assert_eq!(
            Value::Millis(1_500_000_000).plain().as_deref(),
            Some("1500.000")
        );
        assert_eq!(Value::List(vec![]).plain(), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339(1_795_751_999_999_000_000),
            "2026-11-27T03:59:59.999Z"
        );
        assert_eq!(
            rfc3339(4_102_444_800_000_000_000),
            "2100-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(1_709_164_800_000_000_000),
            "2024-02-29T00:00:00.000Z"
        );
    }
}
