//! Configuration parsers on arbitrary bytes: no panic, and every error is actionable: a
//! non-empty reason, and a field path that is empty (syntax errors, a non-object document) or
//! names a place in the document: every step but the last exists, and the last is a member
//! of what its parent holds or a missing key (a required field).

use breakwater_common::config::ConfigError;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON document's structure with every member of an object, repeated keys included
/// (serde_json's `Value` keeps only the last, where the parsers stop at the first).
enum Value {
    Object(Vec<(String, Value)>),
    Array(Vec<Value>),
    Scalar,
}

impl Value {
    fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Scalar)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Value::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Value::Object(members))
            }
        }
        deserializer.deserialize_any(Any)
    }
}

pub fn config_circuit_breaker(data: &[u8]) {
    check(
        data,
        circuit_breaker::config::BreakerConfig::parse(data).err(),
    );
}

pub fn config_fallback(data: &[u8]) {
    check(data, fallback::config::FallbackConfig::parse(data).err());
}

pub fn config_log_enrichment(data: &[u8]) {
    check(data, log_enrichment::config::LogConfig::parse(data).err());
}

fn check(data: &[u8], error: Option<ConfigError>) {
    let Some(error) = error else { return };
    assert!(
        !error.reason.is_empty(),
        "error without a reason at {:?} for {:?}",
        error.field,
        String::from_utf8_lossy(data)
    );
    assert!(!error.to_string().is_empty());
    let document = if data.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Vec::new())
    } else {
        // serde_json must read it as JSON too (a syntax error names no field).
        let syntax = serde_json::from_slice::<IgnoredAny>(data);
        match syntax.and_then(|_| serde_json::from_slice::<Value>(data)) {
            Ok(v) => v,
            Err(_) => {
                assert!(
                    error.field.is_empty(),
                    "a syntax error names field {:?}: {error}",
                    error.field
                );
                return;
            }
        }
    };
    if error.field.is_empty() {
        return;
    }
    assert!(
        resolves(&document, &error.field, true),
        "error names field {:?}, which is not in the document {:?} ({error})",
        error.field,
        String::from_utf8_lossy(data)
    );
}

/// Whether `path` (`a.b[2].c`) names a place in `value`. Keys may contain `.` and `[`, so every
/// key that prefixes the rest of the path is tried. `first` is true at the root, where the path
/// has no leading `.`.
fn resolves(value: &Value, path: &str, first: bool) -> bool {
    if path.is_empty() {
        return true;
    }
    if let Some(items) = value.as_array() {
        let Some(rest) = path.strip_prefix('[') else {
            return false;
        };
        let Some(close) = rest.find(']') else {
            return false;
        };
        let Ok(i) = rest[..close].parse::<usize>() else {
            return false;
        };
        return items
            .get(i)
            .is_some_and(|item| resolves(item, &rest[close + 1..], false));
    }
    let key_part = if first {
        path
    } else {
        match path.strip_prefix('.') {
            Some(p) => p,
            None => return false,
        }
    };
    let Some(members) = value.as_object() else {
        return false;
    };
    for (key, member) in members.iter() {
        if let Some(after) = key_part.strip_prefix(key.as_str()) {
            if (after.is_empty() || after.starts_with('.') || after.starts_with('['))
                && resolves(member, after, false)
            {
                return true;
            }
        }
    }
    // A missing key is fine as the last step (a required field absent from its object).
    !key_part.is_empty() && !key_part.contains('.') && !key_part.contains('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_in_the_document() {
        let doc: Value =
            serde_json::from_slice(br#"{"breakers":[{"a.b":{"c":1}},{"trip":{}}]}"#).unwrap();
        assert!(resolves(&doc, "breakers[0].a.b.c", true));
        assert!(resolves(&doc, "breakers[1].trip.failure_rate", true));
        assert!(resolves(&doc, "breakers[1].name", true));
        assert!(!resolves(&doc, "breakers[2].name", true));
        assert!(!resolves(&doc, "breakers[1].open.duration", true));
        let odd: Value = serde_json::from_slice(br#"{"[":{"x.y":[1]}}"#).unwrap();
        assert!(resolves(&odd, "[.x.y[0]", true));
        assert!(!resolves(&odd, "[.x.y[1]", true));
    }

    #[test]
    #[should_panic(expected = "not in the document")]
    fn an_error_naming_a_field_elsewhere_fails() {
        check(
            br#"{"breakers":[]}"#,
            Some(ConfigError::new("fallbacks[0].match", "bad")),
        );
    }

    #[test]
    #[should_panic(expected = "without a reason")]
    fn an_error_without_reason_fails() {
        check(b"{}", Some(ConfigError::new("", "")));
    }
}
