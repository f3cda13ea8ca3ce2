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
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(&mut out, key);
            out.push(':');
            match value {
                Value::Str(s) => write_json_string(&mut out, s),
                Value::Int(n) => out.push_str(&n.to_string()),
                Value::Millis(ns) => write_millis(&mut out, *ns),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::List(items) => {
                    out.push('[');
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_json_string(&mut out, item);
                    }
                    out.push(']');
                }
            }
        }
        out.push('}');
        out
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
    out.push('"');
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => None,
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        match escape {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u");
                out.push_str(&format!("{:04x}", c as u32));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
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
    use breakwater_common::json;
    use breakwater_common::testing::test;

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
        let parsed = json::parse(line.as_bytes()).unwrap();
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
        let parsed = json::parse(record.to_json().as_bytes()).unwrap();
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
