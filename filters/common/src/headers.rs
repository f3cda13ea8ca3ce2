//! Headers configured for local replies and upstream requests, validated once at configuration
//! time.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Limits that keep a misconfigured reply from blowing past Envoy's header limits.
pub const MAX_HEADERS: usize = 32;
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Validated `(name, value)` pairs, names lower-cased, in the configured order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, String)>);

impl HeaderList {
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// A byte allowed in an HTTP header name (an RFC 9110 token).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header names a configured map may not set, in lower case, and why.
pub trait Reserved {
    const NAMES: &'static [&'static str];
    const REASON: &'static str;
}

/// Every header name may be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoneReserved;

impl Reserved for NoneReserved {
    const NAMES: &'static [&'static str] = &[];
    const REASON: &'static str = "";
}

/// A configured `{"name": "value"}` object of headers. Names are HTTP tokens (no
/// pseudo-headers), unique regardless of case and not among `R::NAMES`; values have no CR, LF
/// or NUL. A wrong name or value is reported at its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredHeaders<R = NoneReserved>(pub HeaderList, PhantomData<R>);

impl<R> ConfiguredHeaders<R> {
    pub fn into_list(self) -> HeaderList {
        self.0
    }
}

/// Checks one header; `seen` are the names (lower case) before it.
fn check_header<R: Reserved>(
    name: &str,
    value: &str,
    seen: &[(String, String)],
) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(
            "header names must be non-empty HTTP tokens (letters, digits, -, _ …); pseudo-headers are not allowed"
                .to_string(),
        );
    }
    let lower = name.to_ascii_lowercase();
    if R::NAMES.contains(&lower.as_str()) {
        return Err(R::REASON.to_string());
    }
    if seen.iter().any(|(n, _)| *n == lower) {
        return Err(format!(
            "\"{lower}\" is given twice (header names are case-insensitive)"
        ));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "header values are limited to {MAX_HEADER_VALUE_BYTES} bytes"
        ));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("header values must not contain CR, LF or NUL".to_string());
    }
    Ok(lower)
}

/// Reads one header's value knowing its name, so that an error is reported at the key.
struct HeaderValue<'a, R> {
    name: &'a str,
    seen: &'a [(String, String)],
    reserved: PhantomData<R>,
}

impl<'de, R: Reserved> DeserializeSeed<'de> for HeaderValue<'_, R> {
    type Value = (String, String);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let value: String = serde::Deserialize::deserialize(deserializer)?;
        let name = check_header::<R>(self.name, &value, self.seen).map_err(de::Error::custom)?;
        Ok((name, value))
    }
}

impl<'de, R: Reserved> serde::Deserialize<'de> for ConfiguredHeaders<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Headers<R>(PhantomData<R>);
        impl<'de, R: Reserved> Visitor<'de> for Headers<R> {
            type Value = ConfiguredHeaders<R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let pair = map.next_value_seed(HeaderValue::<R> {
                        name: &name,
                        seen: &out,
                        reserved: PhantomData,
                    })?;
                    out.push(pair);
                    if out.len() > MAX_HEADERS {
                        return Err(de::Error::custom(format!("at most {MAX_HEADERS} headers")));
                    }
                }
                Ok(ConfiguredHeaders(HeaderList(out), PhantomData))
            }
        }
        deserializer.deserialize_map(Headers(PhantomData))
    }
}

#[cfg(feature = "schema")]
impl<R: Reserved> schemars::JsonSchema for ConfiguredHeaders<R> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("headers_without_{}", R::NAMES.join("_")).into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        use crate::schema::{caseless, to_schema, HEADER_NAME};
        let mut names = serde_json::Map::new();
        names.insert("pattern".into(), HEADER_NAME.into());
        if !R::NAMES.is_empty() {
            names.insert(
                "not".into(),
                serde_json::json!({ "pattern": caseless(R::NAMES) }),
            );
        }
        to_schema(serde_json::json!({
            "type": "object",
            "maxProperties": MAX_HEADERS,
            "propertyNames": names,
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_HEADER_VALUE_BYTES,
                "pattern": "^[^\\r\\n\\u0000]*$",
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{read as parse, ConfigError};
    use crate::testing::test;

    struct Managed;
    impl Reserved for Managed {
        const NAMES: &'static [&'static str] = &["retry-after"];
        const REASON: &'static str = "is set by the filter itself";
    }

    fn check(json: &str) -> Result<HeaderList, ConfigError> {
        parse::<ConfiguredHeaders<Managed>>(json.as_bytes()).map(ConfiguredHeaders::into_list)
    }

    #[test]
    fn accepts_and_lowercases_in_order() {
        let list = check(r#"{"Content-Type": "application/json", "x-b": "1"}"#).unwrap();
        assert_eq!(
            list.0,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-b".to_string(), "1".to_string())
            ]
        );
        assert!(list.contains("content-type"));
    }

    #[test]
    fn refuses_bad_names_and_values_at_their_key() {
        for (json, key) in [
            (r#"{":status": "200"}"#, ":status"),
            (r#"{"a b": "x"}"#, "a b"),
            (r#"{"": "x"}"#, ""),
            (r#"{"x-a": "1\r\nset-cookie: y"}"#, "x-a"),
            (r#"{"x-a": 5}"#, "x-a"),
            (r#"{"Retry-After": "1"}"#, "Retry-After"),
            (r#"{"x-a": "1", "X-A": "2"}"#, "X-A"),
        ] {
            assert_eq!(check(json).unwrap_err().field, key, "{json}");
        }
        let long = format!(r#"{{"x-a": "{}"}}"#, "v".repeat(5000));
        assert!(check(&long).is_err());
        assert_eq!(
            check(r#"{"retry-after": "1"}"#).unwrap_err().reason,
            "is set by the filter itself"
        );
    }

    #[test]
    fn limits_the_count() {
        let pairs: Vec<String> = (0..=MAX_HEADERS)
            .map(|i| format!(r#""x-{i}":"v""#))
            .collect();
        let err = check(&format!("{{{}}}", pairs.join(","))).unwrap_err();
        assert_eq!(err.reason, format!("at most {MAX_HEADERS} headers"));
    }
}
