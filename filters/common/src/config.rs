//! Configuration reading that names the exact field of every error.
//!
//! Each filter declares its raw configuration as serde types (`deny_unknown_fields`, every
//! optional key an `Option` so that a JSON `null` means "absent"), reads it with [`parse`] and
//! then checks it into the validated form its engine runs on. [`parse`] reports where
//! serde_json stopped as a field path (`breakers[1].trip.failure_rate`, via
//! `serde_path_to_error`); the checks after it build the same kind of path with [`FieldPath`].
//!
//! Values whose validity depends on nothing else (durations, status lists, names, header maps,
//! bounded numbers) are checked while they are deserialized, so their errors carry the path for
//! free; rules across fields are checked afterwards.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_path_to_error::Segment;
use std::fmt;

/// An invalid configuration: the field's path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// A field's location: `breakers[1].trip.failure_rate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root(name: &str) -> Self {
        FieldPath(name.to_string())
    }

    pub fn key(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{}", self.0, name))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }

    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), reason)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads a raw configuration. An empty document (Istio sends nothing for an empty
/// `pluginConfig`) is `{}`. Syntax errors carry serde_json's line and column; every other error
/// names the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => bytes,
        // serde's derived structs also read arrays (the fields in order): not at the top.
        Some(_) => {
            return Err(ConfigError::new(
                "",
                "the configuration must be a JSON object",
            ))
        }
    };
    read(bytes)
}

/// Reads any JSON value as `T`, naming the field path of any error.
pub(crate) fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    // A document serde_json cannot read whole is reported as such, even where reading it as
    // `T` would have stopped at a field first: garbage after the object, and what serde_json
    // checks only in values it reads (UTF-8 and escapes in strings, numbers out of range).
    serde_json::from_slice::<serde_json::Value>(bytes).map_err(syntax_error)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(path_error)?;
    deserializer.end().map_err(syntax_error)?;
    Ok(value)
}

fn syntax_error(error: serde_json::Error) -> ConfigError {
    ConfigError::new("", format!("invalid JSON: {error}"))
}

fn path_error(error: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let mut path = FieldPath::default();
    for segment in error.path().iter() {
        path = match segment {
            Segment::Seq { index } => path.index(*index),
            Segment::Map { key } => path.key(key),
            Segment::Enum { variant } => path.key(variant),
            Segment::Unknown => path,
        };
    }
    // The document's syntax was checked first, so this is about the value at `path`, even when
    // serde_json classes it as syntax (an enum read from a number: "expected value").
    let message = error.into_inner().to_string();
    // The position is noise next to a field path.
    let message = match message.rfind(" at line ") {
        Some(at) => message.get(..at).unwrap_or(&message).to_string(),
        None => message,
    };
    // serde names a missing or repeated key in the message and points at its object: point at
    // the key itself, as for every other error.
    for (prefix, reason) in [
        ("missing field `", "is required"),
        ("duplicate field `", "is given twice"),
    ] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return path.key(name).error(reason);
        }
    }
    path.error(plain_words(&message))
}

/// serde names Rust types in its messages (`expected u32`); say what a JSON author writes.
fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: unit value", "invalid type: null"),
        ("floating point", "number"),
        ("expected value", "invalid type: expected a string"),
    ];
    let mut out = message.to_string();
    for (from, to) in WORDS {
        out = out.replace(from, to);
    }
    out
}

/// A name used in stats, shared-data keys and headers: 1 to 64 characters of `[A-Za-z0-9_-]`,
/// so it needs no escaping anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

pub const MAX_NAME_CHARS: usize = 64;
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

impl Name {
    pub fn check(name: &str) -> Result<Name, String> {
        if name.is_empty() || name.len() > MAX_NAME_CHARS {
            return Err(format!("must be 1 to {MAX_NAME_CHARS} characters long"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "\"{name}\" may only contain letters, digits, '_' and '-'"
            ));
        }
        Ok(Name(name.to_string()))
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Name::check(&text).map_err(de::Error::custom)
    }
}

/// A whole number from `MIN` to `MAX`, refused with its range when outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Whole<const MIN: u32, const MAX: u32>;
        impl<const MIN: u32, const MAX: u32> Visitor<'_> for Whole<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number from {MIN} to {MAX}")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                match u32::try_from(n) {
                    Ok(n) if (MIN..=MAX).contains(&n) => Ok(Bounded(n)),
                    _ => Err(E::custom(format!("{n} is outside {MIN} to {MAX}"))),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("{n} is outside {MIN} to {MAX}"))),
                }
            }
        }
        deserializer.deserialize_u64(Whole::<MIN, MAX>)
    }
}

#[cfg(feature = "schema")]
mod schema {
    //! Schemas of the shared leaf types, from the constants their checks use.
    use super::{Bounded, Name, NAME_PATTERN};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    impl JsonSchema for Name {
        fn schema_name() -> Cow<'static, str> {
            "name".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "1 to 64 letters, digits, '_' or '-'",
                "type": "string",
                "pattern": NAME_PATTERN,
            })
        }
    }

    impl<const MIN: u32, const MAX: u32> JsonSchema for Bounded<MIN, MAX> {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            format!("Bounded_{MIN}_{MAX}").into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        items: Option<Vec<Item>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        size: Bounded<1, 10>,
        name: Option<Name>,
    }

    fn read(json: &str) -> Result<Doc, ConfigError> {
        parse(json.as_bytes())
    }

    #[test]
    fn reads_nested_fields() {
        let doc = read(r#"{"items":[{"size":1},{"size":2,"name":"b"}]}"#).unwrap();
        let items = doc.items.unwrap();
        assert_eq!(items[1].size, Bounded(2));
        assert_eq!(items[1].name, Some(Name("b".into())));
        assert_eq!(read(r#"{"items":null}"#).unwrap().items, None);
    }

    #[test]
    fn unknown_keys_name_their_path_and_the_allowed_keys() {
        let err = read(r#"{"items":[{"size":1},{"size":2,"sise":3}]}"#).unwrap_err();
        assert_eq!(err.field, "items[1].sise");
        assert_eq!(
            err.reason,
            "unknown field `sise`, expected `size` or `name`"
        );
        assert_eq!(read(r#"{"itemz":[]}"#).unwrap_err().field, "itemz");
    }

    #[test]
    fn wrong_types_and_values_name_their_path() {
        let err = read(r#"{"items":[{"size":"big"}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "items[0].size: invalid type: string \"big\", expected a whole number from 1 to 10"
        );
        assert_eq!(read(r#"{"items":{}}"#).unwrap_err().field, "items");
        for bad in ["-1", "1.5", "0", "11", "5000000000"] {
            let json = format!(r#"{{"items":[{{"size":{bad}}}]}}"#);
            assert_eq!(read(&json).unwrap_err().field, "items[0].size", "{bad}");
        }
        assert_eq!(
            read(r#"{"items":[{"size":11}]}"#).unwrap_err().reason,
            "11 is outside 1 to 10"
        );
        assert_eq!(
            read(r#"{"items":[{}]}"#).unwrap_err().to_string(),
            "items[0].size: is required"
        );
        assert_eq!(
            read(r#"{"items":[{"size":1,"size":2}]}"#)
                .unwrap_err()
                .to_string(),
            "items[0].size: is given twice"
        );
        assert_eq!(
            read(r#"{"items":[{"size":1,"name":"a b"}]}"#)
                .unwrap_err()
                .field,
            "items[0].name"
        );
        let err = read("[1]").unwrap_err();
        assert_eq!(err.to_string(), "the configuration must be a JSON object");
        assert_eq!(read("5").unwrap_err().field, "");
    }

    #[test]
    fn a_word_given_as_a_number_is_named() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Count,
        }
        #[derive(Debug, Deserialize)]
        struct Window {
            #[allow(dead_code)]
            kind: Kind,
        }
        let err = parse::<Window>(br#"{"kind":1}"#).unwrap_err();
        assert_eq!(err.field, "kind");
        assert_eq!(err.reason, "invalid type: expected a string");
        let err = parse::<Window>(br#"{"kind":"time"}"#).unwrap_err();
        assert_eq!(err.reason, "unknown variant `time`, expected `count`");
    }

    #[test]
    fn empty_document_is_an_empty_object() {
        assert_eq!(read("  \n").unwrap(), Doc { items: None });
        assert_eq!(read("").unwrap(), Doc { items: None });
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = read("{\"items\": [").unwrap_err();
        assert!(err.field.is_empty());
        assert_eq!(
            err.reason,
            "invalid JSON: EOF while parsing a list at line 1 column 11"
        );
        let err = read("{} x").unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.reason.as_str()),
            ("", "invalid JSON: trailing characters at line 1 column 4")
        );
        assert!(read("{\"items\": [}").unwrap_err().field.is_empty());
        assert!(parse::<Doc>(b"\xff").unwrap_err().field.is_empty());
        // Not JSON serde_json can read, in values the typed reading stops before.
        for bad in [
            &b"{\"x\":\"\xf2]\",\"items\":[]}"[..],
            br#"{"x":"\udc00","items":[]}"#,
            br#"{"x":1e400,"items":[]}"#,
        ] {
            let err = parse::<Doc>(bad).unwrap_err();
            assert!(
                err.field.is_empty() && err.reason.starts_with("invalid JSON"),
                "{err}"
            );
        }
        // Not JSON, even though reading it stops at a bad field first.
        let err = read(r#"{"itemz":1} x"#).unwrap_err();
        assert!(
            err.field.is_empty() && err.reason.starts_with("invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn names_are_checked() {
        let name = "recommendations-v2_a";
        assert_eq!(Name::check(name), Ok(Name(name.to_string())));
        assert!(Name::check("").is_err());
        assert!(Name::check("a.b").is_err());
        assert!(Name::check(&"x".repeat(65)).is_err());
    }

    #[test]
    fn field_paths() {
        let path = FieldPath::root("breakers").index(0).key("name");
        assert_eq!(path.as_str(), "breakers[0].name");
        assert_eq!(FieldPath::default().key("a").as_str(), "a");
    }
}
