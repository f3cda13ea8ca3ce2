//! Configuration reading that names the exact field of every error.
//!
//! The JSON is parsed once into a [`Value`]; [`Obj`] then walks it with a path, so unknown
//! keys, wrong types and invalid values all report `breakers[1].trip.failure_rate`. (Walking
//! one `Value` instead of deriving `Deserialize` for every config struct keeps each filter's
//! Wasm module small: serde's per-type code was most of the module.)

use crate::json::Value;
use std::fmt;

type Map = Vec<(String, Value)>;

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

/// Parses a JSON document. An empty document (Istio sends nothing for an empty `pluginConfig`)
/// is `{}`. Syntax errors carry serde_json's line and column.
pub fn parse_document(bytes: &[u8]) -> Result<Value, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    crate::json::parse(bytes).map_err(|e| ConfigError::new("", format!("invalid JSON: {e}")))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value with its path, converted to what a field needs.
#[derive(Clone)]
pub struct Field<'a> {
    pub value: &'a Value,
    path: FieldPath,
}

impl<'a> Field<'a> {
    pub fn new(value: &'a Value, path: FieldPath) -> Self {
        Field { value, path }
    }

    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        self.path.error(reason)
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("expected {what}, got {}", type_name(self.value)))
    }

    pub fn str(&self) -> Result<&'a str, ConfigError> {
        self.value.as_str().ok_or_else(|| self.expected("a string"))
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.expected("true or false"))
    }

    pub fn u32(&self) -> Result<u32, ConfigError> {
        match self.value.as_u64() {
            Some(n) => u32::try_from(n).map_err(|_| self.error("the number is too large")),
            None if self.value.is_number() => {
                Err(self.error("expected a whole number of 0 or more"))
            }
            None => Err(self.expected("a whole number")),
        }
    }

    /// A whole number from `low` to `high`.
    pub fn u32_in(&self, low: u32, high: u32) -> Result<u32, ConfigError> {
        let n = self.u32()?;
        if n < low || n > high {
            return Err(self.error(format!("{n} is outside {low} to {high}")));
        }
        Ok(n)
    }

    pub fn f64(&self) -> Result<f64, ConfigError> {
        self.value.as_f64().ok_or_else(|| self.expected("a number"))
    }

    pub fn array(&self) -> Result<&'a Vec<Value>, ConfigError> {
        self.value
            .as_array()
            .ok_or_else(|| self.expected("an array"))
    }

    pub fn object(&self) -> Result<&'a Map, ConfigError> {
        self.value
            .as_object()
            .ok_or_else(|| self.expected("an object"))
    }

    /// A list of strings.
    pub fn strings(&self) -> Result<Vec<&'a str>, ConfigError> {
        let items = self.array()?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(Field::new(item, self.path.index(i)).str()?);
        }
        Ok(out)
    }

    /// A string → string map (e.g. headers).
    pub fn string_map(&self) -> Result<Vec<(&'a str, &'a str)>, ConfigError> {
        let map = self.object()?;
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            out.push((k.as_str(), Field::new(v, self.path.key(k)).str()?));
        }
        Ok(out)
    }
}

/// A JSON object being read key by key. [`Obj::finish`] refuses keys nobody asked for, naming
/// the keys that are allowed.
pub struct Obj<'a> {
    map: &'a Map,
    path: FieldPath,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// Reads `value` as an object at `path`.
    pub fn new(value: &'a Value, path: FieldPath) -> Result<Self, ConfigError> {
        let map = value
            .as_object()
            .ok_or_else(|| Field::new(value, path.clone()).expected("an object"))?;
        Ok(Obj {
            map,
            path,
            known: Vec::new(),
        })
    }

    /// The document root (its fields have paths like `breakers`).
    pub fn root(value: &'a Value) -> Result<Self, ConfigError> {
        Obj::new(value, FieldPath::default())
    }

    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    /// The path of one of this object's keys.
    pub fn key_path(&self, key: &str) -> FieldPath {
        self.path.key(key)
    }

    /// The value at `key` (a JSON `null` counts as absent) together with its path.
    pub fn get(&mut self, key: &'static str) -> Option<(&'a Value, FieldPath)> {
        self.field(key).map(|f| (f.value, f.path))
    }

    /// The field at `key`, if present (a JSON `null` counts as absent).
    #[inline(never)]
    pub fn field(&mut self, key: &'static str) -> Option<Field<'a>> {
        self.known.push(key);
        match self.map.iter().find(|(k, _)| k == key) {
            None | Some((_, Value::Null)) => None,
            Some((_, v)) => Some(Field::new(v, self.path.key(key))),
        }
    }

    /// Converts the value at `key`, if present.
    #[inline(always)]
    pub fn opt<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(Field<'_>) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        match self.field(key) {
            None => Ok(None),
            Some(f) => convert(f).map(Some),
        }
    }

    /// Like [`Obj::opt`], but the key must be present.
    #[inline(always)]
    pub fn required<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(Field<'_>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.field(key) {
            None => Err(self.path.key(key).error("is required")),
            Some(f) => convert(f),
        }
    }

    /// A nested object at `key`, if present.
    pub fn object(&mut self, key: &'static str) -> Result<Option<Obj<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some((value, path)) => Obj::new(value, path).map(Some),
        }
    }

    /// Refuses keys that were never asked for.
    pub fn finish(self) -> Result<(), ConfigError> {
        for (key, _) in self.map {
            if !self.known.contains(&key.as_str()) {
                let mut reason = String::from("unknown key (expected one of: ");
                for (i, known) in self.known.iter().enumerate() {
                    if i > 0 {
                        reason.push_str(", ");
                    }
                    reason.push_str(known);
                }
                reason.push(')');
                return Err(self.path.key(key).error(reason));
            }
        }
        Ok(())
    }
}

/// Checks a name used in stats, shared-data keys and headers: 1 to 64 characters of
/// `[A-Za-z0-9_-]`, so it needs no escaping anywhere.
pub fn check_name(field: Field<'_>) -> Result<String, ConfigError> {
    let name = field.str()?;
    if name.is_empty() || name.len() > 64 {
        return Err(field.error("must be 1 to 64 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(field.error(format!(
            "\"{name}\" may only contain letters, digits, '_' and '-'"
        )));
    }
    Ok(name.to_string())
}

/// Formats a number with up to three decimals without Rust's float formatting, which would add
/// ~20 KB to every module.
pub fn format_decimal(value: f64) -> String {
    if !value.is_finite() {
        return "?".to_string();
    }
    let negative = value < 0.0;
    // `as` saturates; config numbers are far below u64::MAX / 1000.
    let thousandths = (value.abs() * 1000.0).round() as u64;
    let (whole, frac) = (thousandths / 1000, thousandths % 1000);
    let mut out = if negative {
        "-".to_string()
    } else {
        String::new()
    };
    out.push_str(&whole.to_string());
    if frac != 0 {
        let digits = format!("{frac:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    fn doc(json: &str) -> Value {
        parse_document(json.as_bytes()).unwrap()
    }

    /// Reads `{"items":[{"size":N}, ...]}` the way filters read their configs.
    fn read_sizes(json: &str) -> Result<Vec<u32>, ConfigError> {
        let value = doc(json);
        let mut root = Obj::root(&value)?;
        let mut sizes = Vec::new();
        if let Some((items, path)) = root.get("items") {
            for (i, item) in Field::new(items, path.clone()).array()?.iter().enumerate() {
                let mut obj = Obj::new(item, path.index(i))?;
                sizes.push(obj.required("size", |f| f.u32())?);
                obj.finish()?;
            }
        }
        root.finish()?;
        Ok(sizes)
    }

    #[test]
    fn reads_nested_fields() {
        assert_eq!(
            read_sizes(r#"{"items":[{"size":1},{"size":2}]}"#),
            Ok(vec![1, 2])
        );
        assert_eq!(read_sizes(r#"{"items":null}"#), Ok(vec![]));
    }

    #[test]
    fn unknown_keys_name_their_path_and_the_allowed_keys() {
        let err = read_sizes(r#"{"items":[{"size":1},{"size":2,"sise":3}]}"#).unwrap_err();
        assert_eq!(err.field, "items[1].sise");
        assert_eq!(err.reason, "unknown key (expected one of: size)");
        assert_eq!(read_sizes(r#"{"itemz":[]}"#).unwrap_err().field, "itemz");
    }

    #[test]
    fn wrong_types_name_their_path() {
        let err = read_sizes(r#"{"items":[{"size":"big"}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "items[0].size: expected a whole number, got a string"
        );
        assert_eq!(read_sizes(r#"{"items":{}}"#).unwrap_err().field, "items");
        assert_eq!(
            read_sizes(r#"{"items":[{"size":-1}]}"#).unwrap_err().field,
            "items[0].size"
        );
        assert_eq!(
            read_sizes(r#"{"items":[{"size":1.5}]}"#).unwrap_err().field,
            "items[0].size"
        );
        assert_eq!(
            read_sizes(r#"{"items":[{"size":5000000000}]}"#)
                .unwrap_err()
                .field,
            "items[0].size"
        );
        assert_eq!(
            read_sizes(r#"{"items":[{}]}"#).unwrap_err().to_string(),
            "items[0].size: is required"
        );
        assert_eq!(
            read_sizes("[1]").unwrap_err().to_string(),
            "expected an object, got an array"
        );
    }

    #[test]
    fn empty_document_is_an_empty_object() {
        assert_eq!(parse_document(b"  \n").unwrap(), doc("{}"));
        assert_eq!(parse_document(b"").unwrap(), doc("{}"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse_document(b"{\"items\": [").unwrap_err();
        assert!(err.field.is_empty());
        assert!(err.reason.starts_with("invalid JSON: "), "{}", err.reason);
        assert_eq!(
            err.reason,
            "invalid JSON: unexpected end of the document at line 1 column 12"
        );
        assert!(parse_document(b"{} x").is_err());
    }

    #[test]
    fn names_are_checked() {
        let path = FieldPath::root("breakers").index(0).key("name");
        assert_eq!(path.as_str(), "breakers[0].name");
        let check = |json: String| check_name(Field::new(&doc(&json), path.clone()));
        let name = "recommendations-v2_a";
        assert_eq!(check(format!("\"{name}\"")), Ok(name.to_string()));
        assert!(check("\"\"".into()).is_err());
        assert!(check("\"a.b\"".into()).is_err());
        assert!(check(format!("\"{}\"", "x".repeat(65))).is_err());
        assert!(check("5".into()).is_err());
    }

    #[test]
    fn decimals_without_float_formatting() {
        assert_eq!(format_decimal(50.0), "50");
        assert_eq!(format_decimal(0.1), "0.1");
        assert_eq!(format_decimal(2.25), "2.25");
        assert_eq!(format_decimal(-1.5), "-1.5");
        assert_eq!(format_decimal(33.3333), "33.333");
        assert_eq!(format_decimal(f64::NAN), "?");
    }
}
