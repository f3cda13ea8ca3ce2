//! Field rules for JSON body excerpts (`body.redact_fields`, `body.keep_fields`): the body is
//! read with serde_json and written out again, in its own order, with the values of listed
//! fields masked whatever they hold and, with `keep_fields`, every value not listed replaced by
//! its type. Every key, string and number written is scrubbed by the detectors on its own, and
//! one in which something was redacted is written as a string, so the rewrite stays JSON. A
//! body that is not one complete, valid JSON document yields nothing, and the caller logs
//! `[REDACTED:body]` instead (fail closed).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Bounds and defaults documented in the README.
pub const MAX_FIELD_RULES: usize = 32;
pub const MAX_FIELD_PATH_BYTES: usize = 128;
pub const MAX_FIELD_PATH_KEYS: usize = 16;
pub const DEFAULT_PARSE_MAX_BYTES: u32 = 16 * 1024;
pub const MAX_PARSE_BYTES: u32 = 64 * 1024;

/// A field name (`ssn`: that key at any depth) or a path from the top (`customer.ssn`,
/// `items[].card`, `[].id` in a top-level array). Array elements are transparent: `[]` marks
/// them for the reader, and `items.card` names the same fields as `items[].card`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// A path (anchored at the top) rather than a name found at any depth.
    anchored: bool,
    keys: Vec<String>,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let invalid = || {
            format!(
                "\"{text}\" is not a field name or path (like ssn, customer.ssn or items[].card; at most {MAX_FIELD_PATH_BYTES} bytes and {MAX_FIELD_PATH_KEYS} keys)"
            )
        };
        if text.is_empty() || text.len() > MAX_FIELD_PATH_BYTES {
            return Err(invalid());
        }
        let mut keys = Vec::new();
        let mut arrays = 0;
        for (i, segment) in text.split('.').enumerate() {
            let mut name = segment;
            while let Some(inner) = name.strip_suffix("[]") {
                name = inner;
                arrays += 1;
            }
            // Only the first segment may be `[]` alone: a top-level array.
            let top_level_array = i == 0 && name.is_empty() && name.len() < segment.len();
            if top_level_array {
                continue;
            }
            if name.is_empty() || name.contains(['[', ']']) {
                return Err(invalid());
            }
            keys.push(name.to_string());
        }
        if keys.is_empty() || keys.len() > MAX_FIELD_PATH_KEYS {
            return Err(invalid());
        }
        Ok(FieldPath {
            anchored: keys.len() > 1 || arrays > 0,
            keys,
        })
    }

    /// Whether this names the field at `location` (the keys from the top, array elements left
    /// out).
    fn names(&self, location: &[String]) -> bool {
        if self.anchored {
            self.keys == location
        } else {
            location.last() == self.keys.first()
        }
    }
}

/// The checked field rules of `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRules {
    pub redact: Vec<FieldPath>,
    /// `None`: every value is logged (but for `redact`); `Some`: only these are.
    pub keep: Option<Vec<FieldPath>>,
    /// The longest body the rules read; a longer one is not logged.
    pub parse_max_bytes: usize,
}

/// What the rewrite asks of the redactor.
pub trait Scrub {
    /// A key, string or number as it is to be logged, or `None` when nothing in it is redacted.
    /// `key` is the member's key for a value (where the patterns' keywords are looked for too,
    /// as they would be in the text of the body), empty for a key or a top-level value.
    fn scrub(&mut self, value: &str, key: &str) -> Option<String>;
    /// Appends the replacement of a value that `redact_fields` names, given as compact JSON.
    fn mask(&mut self, value: &[u8], out: &mut Vec<u8>);
}

/// A body rewritten under the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// Compact JSON, cut short after `limit` bytes.
    pub json: Vec<u8>,
    /// Values masked by `redact`.
    pub redacted: u32,
}

/// Rewrites `body` under `rules`; writing stops once `limit` bytes are out (the text is cut to
/// the excerpt's length later). `None` when `body` is not one complete, valid JSON document.
pub fn rewrite(
    body: &[u8],
    rules: &FieldRules,
    limit: usize,
    scrub: &mut dyn Scrub,
) -> Option<Rewritten> {
    let mut walker = Walker {
        rules,
        location: Vec::new(),
        out: Vec::with_capacity(body.len().min(limit) + 16),
        limit,
        redacted: 0,
        scrub,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    Element {
        walker: &mut walker,
        kept: rules.keep.is_none(),
        comma: false,
    }
    .deserialize(&mut deserializer)
    .ok()?;
    deserializer.end().ok()?;
    Some(Rewritten {
        json: walker.out,
        redacted: walker.redacted,
    })
}

struct Walker<'r> {
    rules: &'r FieldRules,
    /// The keys from the top to the value being read.
    location: Vec<String>,
    out: Vec<u8>,
    limit: usize,
    redacted: u32,
    scrub: &'r mut dyn Scrub,
}

impl Walker<'_> {
    fn write(&mut self, bytes: &[u8]) {
        if self.out.len() < self.limit {
            self.out.extend_from_slice(bytes);
        }
    }

    fn write_string(&mut self, text: &str) {
        if self.out.len() < self.limit {
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.out, text);
        }
    }

    /// The key of the value being written (its context for the patterns' keywords).
    fn key(&self) -> &str {
        self.location.last().map_or("", String::as_str)
    }

    /// A key or string, scrubbed; `key` is its member's key, if it is a value.
    fn write_scrubbed(&mut self, text: &str, key: &str) {
        if self.out.len() >= self.limit {
            return;
        }
        match self.scrub.scrub(text, key) {
            Some(scrubbed) => self.write_string(&scrubbed),
            None => self.write_string(text),
        }
    }

    /// A number, scrubbed: as a string when something in it was redacted.
    fn write_number(&mut self, text: &str) {
        if self.out.len() >= self.limit {
            return;
        }
        let key = self.location.last().cloned().unwrap_or_default();
        match self.scrub.scrub(text, &key) {
            Some(scrubbed) => self.write_string(&scrubbed),
            None => self.write(text.as_bytes()),
        }
    }
}

/// One value: written as it is when kept, as its type (`"[string]"`) when not.
struct Element<'w, 'r> {
    walker: &'w mut Walker<'r>,
    kept: bool,
    /// A comma goes before it (it follows another element of its array or object).
    comma: bool,
}

impl Element<'_, '_> {
    fn scalar<E>(self, kind: &str, write: impl FnOnce(&mut Walker<'_>)) -> Result<(), E> {
        if self.comma {
            self.walker.write(b",");
        }
        if self.kept {
            write(self.walker);
        } else {
            self.walker.write(b"\"[");
            self.walker.write(kind.as_bytes());
            self.walker.write(b"]\"");
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar("boolean", |w| w.write(if v { b"true" } else { b"false" }))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar("number", |w| w.write_number(&v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar("number", |w| w.write_number(&v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar("number", |w| {
            w.write_number(&serde_json::to_string(&v).unwrap_or_default())
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar("string", |w| {
            let key = w.key().to_string();
            w.write_scrubbed(v, &key);
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar("null", |w| w.write(b"null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.comma {
            self.walker.write(b",");
        }
        self.walker.write(b"[");
        let mut comma = false;
        while seq
            .next_element_seed(Element {
                walker: &mut *self.walker,
                kept: self.kept,
                comma,
            })?
            .is_some()
        {
            comma = true;
        }
        self.walker.write(b"]");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.comma {
            self.walker.write(b",");
        }
        self.walker.write(b"{");
        let mut comma = false;
        while let Some(key) = map.next_key::<String>()? {
            if comma {
                self.walker.write(b",");
            }
            comma = true;
            self.walker.write_scrubbed(&key, "");
            self.walker.write(b":");
            self.walker.location.push(key);
            let rules = self.walker.rules;
            let location = self.walker.location.as_slice();
            if rules.redact.iter().any(|rule| rule.names(location)) {
                let value: serde_json::Value = map.next_value()?;
                let compact = serde_json::to_vec(&value).unwrap_or_default();
                let mut replacement = b"\"".to_vec();
                self.walker.scrub.mask(&compact, &mut replacement);
                replacement.push(b'"');
                self.walker.write(&replacement);
                self.walker.redacted += 1;
            } else {
                let kept = self.kept
                    || rules
                        .keep
                        .as_ref()
                        .is_some_and(|keep| keep.iter().any(|rule| rule.names(location)));
                map.next_value_seed(Element {
                    walker: &mut *self.walker,
                    kept,
                    comma: false,
                })?;
            }
            self.walker.location.pop();
        }
        self.walker.write(b"}");
        Ok(())
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
