//! A small, strict JSON reader for filter configurations.
//!
//! Why not serde_json: it added 28 KB to every Wasm module (measured: an empty proxy-wasm
//! filter grows from 85 KB to 113 KB when it parses one `serde_json::Value`), and each module
//! must stay under 150 KB. Configurations are small documents read once per config push, so
//! this reader favours size and precise error positions over speed. It is strict: duplicate
//! keys, trailing commas, comments, leading zeros, lone surrogates and nesting deeper than
//! [`MAX_DEPTH`] are errors.

use std::fmt;

/// Nesting limit, so a hostile document cannot exhaust the Wasm stack.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    /// Keys in document order; duplicates are refused while parsing.
    Object(Vec<(String, Value)>),
}

/// A JSON number, kept as written so integers stay exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Number(String);

impl Number {
    /// The value as an unsigned integer, if it is written as one (no fraction or exponent).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The value as a float (decimal digits and an optional exponent).
    pub fn as_f64(&self) -> Option<f64> {
        decimal_to_f64(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Vec<(String, Value)>> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Where and why a document is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.reason, self.line, self.column
        )
    }
}

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { bytes, pos: 0 };
    if std::str::from_utf8(bytes).is_err() {
        return Err(p.error("the document is not valid UTF-8"));
    }
    p.skip_whitespace();
    let value = p.value(0)?;
    p.skip_whitespace();
    if p.pos < bytes.len() {
        return Err(p.error("unexpected text after the document"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> ParseError {
        let before = self.bytes.get(..self.pos).unwrap_or(self.bytes);
        let line = 1 + before.iter().filter(|b| **b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        // Columns count characters, not bytes.
        let column = 1 + before
            .get(line_start..)
            .unwrap_or_default()
            .iter()
            .filter(|b| (**b & 0xC0) != 0x80)
            .count();
        ParseError {
            line,
            column,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8], value: Value) -> Result<Value, ParseError> {
        if self.bytes.get(self.pos..self.pos + literal.len()) == Some(literal) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of the document")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key in double quotes"));
            }
            let key_pos = self.pos;
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                self.pos = key_pos;
                return Err(self.error("duplicate key"));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    // The input is valid UTF-8 and escapes add only whole characters.
                    return String::from_utf8(out)
                        .map_err(|_| self.error("invalid UTF-8 in string"));
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    let simple = match escaped {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0C),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(self.error("invalid escape")),
                    };
                    match simple {
                        Some(c) => out.push(c),
                        None => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                0x00..=0x1F => return Err(self.error("control character in string")),
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// After `\u`: four hex digits, combining a surrogate pair when present.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("lone surrogate in \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.error("leading zeros are not allowed"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit after '.'"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        let text = self.bytes.get(start..self.pos).unwrap_or_default();
        Ok(Value::Number(Number(
            String::from_utf8_lossy(text).into_owned(),
        )))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}

/// Converts a JSON number to f64 with integer arithmetic and one scaling step: exact for the
/// short decimals configurations use (rates, fractions), and free of the standard library's
/// float parser, which is large in Wasm.
fn decimal_to_f64(text: &str) -> Option<f64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa_text, exponent) = match rest.find(['e', 'E']) {
        Some(i) => {
            let digits = rest.get(i + 1..)?;
            // Exponents beyond ±400 give 0 or infinity anyway; clamping keeps the sums in range.
            let exponent = match digits.parse::<i64>() {
                Ok(e) => e.clamp(-400, 400),
                Err(_) if digits.starts_with('-') => -400,
                Err(_) => 400,
            };
            (rest.get(..i)?, exponent)
        }
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa_text.split_once('.').unwrap_or((mantissa_text, ""));
    let mut mantissa: u64 = 0;
    let mut scale: i64 = exponent;
    for d in whole.bytes() {
        if mantissa < 1_000_000_000_000_000_000 {
            mantissa = mantissa * 10 + u64::from(d.checked_sub(b'0')?);
        } else {
            scale = scale.saturating_add(1); // digits beyond u64 precision only scale
        }
    }
    for d in fraction.bytes() {
        if mantissa < 1_000_000_000_000_000_000 {
            mantissa = mantissa * 10 + u64::from(d.checked_sub(b'0')?);
            scale = scale.saturating_sub(1);
        }
    }
    // |scale| ≤ 400 + the number of digits, which fits i32 for any document we accept.
    let scale = i32::try_from(scale.clamp(-100_000, 100_000)).unwrap_or(0);
    let magnitude = if scale >= 0 {
        mantissa as f64 * 10f64.powi(scale)
    } else {
        // Dividing by an exact power of ten keeps 0.1 as the nearest double to 0.1.
        mantissa as f64 / 10f64.powi(-scale)
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    fn ok(text: &str) -> Value {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn documents() {
        let v = ok(r#" {"a": [1, -2.5, true, false, null, "x"], "b": {}, "c": []} "#);
        let a = v.get("a").and_then(Value::as_array).unwrap();
        assert_eq!(a[0].as_u64(), Some(1));
        assert_eq!(a[1].as_f64(), Some(-2.5));
        assert_eq!(a[1].as_u64(), None);
        assert_eq!(a[2], Value::Bool(true));
        assert_eq!(a[4], Value::Null);
        assert_eq!(a[5].as_str(), Some("x"));
        assert_eq!(v.get("b"), Some(&Value::Object(vec![])));
        assert_eq!(v.get("missing"), None);
        // Object members keep document order.
        let keys: Vec<&str> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            ok(r#""a\"b\\c\/d\n\t\r\b\f""#).as_str(),
            Some("a\"b\\c/d\n\t\r\u{8}\u{c}")
        );
        assert_eq!(ok(r#""\u00e6\u00f8\u00e5 \u20AC""#).as_str(), Some("æøå €"));
        assert_eq!(ok(r#""\ud83d\ude00""#).as_str(), Some("😀"));
        assert_eq!(ok("\"æøå\"").as_str(), Some("æøå"));
    }

    #[test]
    fn numbers() {
        assert_eq!(ok("0").as_u64(), Some(0));
        assert_eq!(ok("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(ok("18446744073709551616").as_u64(), None);
        assert_eq!(ok("0.1").as_f64(), Some(0.1));
        assert_eq!(ok("50").as_f64(), Some(50.0));
        assert_eq!(ok("2.0").as_f64(), Some(2.0));
        assert_eq!(ok("1e2").as_f64(), Some(100.0));
        assert_eq!(ok("1.5E-1").as_f64(), Some(0.15));
        assert_eq!(ok("-0").as_f64(), Some(-0.0));
        assert_eq!(
            ok("123456789012345678901234567890")
                .as_f64()
                .map(|f| f > 1.2e29),
            Some(true)
        );
        assert_eq!(ok("1e400").as_f64(), Some(f64::INFINITY));
        assert_eq!(ok("1e-2147483648").as_f64(), Some(0.0));
        assert_eq!(ok("0e-99999999999999999999").as_f64(), Some(0.0));
        assert_eq!(ok("1e99999999999999999999").as_f64(), Some(f64::INFINITY));
        assert_eq!(ok("-5").as_u64(), None);
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(
            err("{\"a\": 1,}"),
            "expected a key in double quotes at line 1 column 9"
        );
        assert_eq!(
            err("{\n  \"a\": 1\n  \"b\": 2\n}"),
            "expected ',' or '}' at line 3 column 3"
        );
        assert_eq!(
            err(r#"{"a": 1, "a": 2}"#),
            "duplicate key at line 1 column 10"
        );
        assert_eq!(err("[1 2]"), "expected ',' or ']' at line 1 column 4");
        assert_eq!(
            err("{} x"),
            "unexpected text after the document at line 1 column 4"
        );
        assert_eq!(err(""), "unexpected end of the document at line 1 column 1");
        assert_eq!(
            err("\"æ\" x"),
            "unexpected text after the document at line 1 column 5"
        );
    }

    #[test]
    fn strictness() {
        for bad in [
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "-",
            "tru",
            "nul",
            "[1,]",
            "{'a':1}",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "// c\n{}",
            "NaN",
            "Infinity",
            "\"unterminated",
            "{\"a\" 1}",
            "[",
            "{",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} should be refused");
        }
        assert!(parse(b"\"\xff\"").is_err(), "invalid UTF-8");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse(too_deep.as_bytes()).unwrap_err().reason,
            "nesting is too deep"
        );
        // A hostile depth fails fast instead of overflowing the stack.
        let hostile = "[".repeat(100_000);
        assert!(parse(hostile.as_bytes()).is_err());
    }
}
