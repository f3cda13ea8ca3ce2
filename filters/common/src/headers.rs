//! Response headers configured for local replies, validated once at configuration time.

use crate::config::{ConfigError, Field, FieldPath};

/// Limits that keep a misconfigured reply from blowing past Envoy's header limits.
pub const MAX_HEADERS: usize = 32;
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Validated `(name, value)` pairs, names lower-cased, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, String)>);

impl HeaderList {
    /// Reads a `{"name": "value"}` object.
    pub fn field(f: Field<'_>) -> Result<Self, ConfigError> {
        HeaderList::check(f.path(), &f.string_map()?)
    }

    pub fn check(path: &FieldPath, raw: &[(&str, &str)]) -> Result<Self, ConfigError> {
        if raw.len() > MAX_HEADERS {
            return Err(path.error(format!("at most {MAX_HEADERS} headers")));
        }
        let mut out = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let field = path.key(name);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(field.error(
                    "header names must be non-empty HTTP tokens (letters, digits, -, _ …); pseudo-headers are not allowed",
                ));
            }
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return Err(field.error(format!(
                    "header values are limited to {MAX_HEADER_VALUE_BYTES} bytes"
                )));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(field.error("header values must not contain CR, LF or NUL"));
            }
            out.push((name.to_ascii_lowercase(), value.to_string()));
        }
        Ok(HeaderList(out))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// A byte allowed in an HTTP header name (an RFC 9110 token).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a status code for a local reply.
pub fn reply_status(f: Field<'_>) -> Result<u32, ConfigError> {
    let status = f.u32()?;
    if !(200..=599).contains(&status) {
        return Err(f.error(format!("{status} is not a valid reply status (200 to 599)")));
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    fn check(pairs: &[(&str, &str)]) -> Result<HeaderList, ConfigError> {
        HeaderList::check(&FieldPath::root("response").key("headers"), pairs)
    }

    #[test]
    fn accepts_and_lowercases() {
        let list = check(&[("Content-Type", "application/json")]).unwrap();
        assert_eq!(
            list.0,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert!(list.contains("content-type"));
    }

    #[test]
    fn refuses_bad_names_and_values() {
        assert!(check(&[(":status", "200")]).is_err());
        assert!(check(&[("a b", "x")]).is_err());
        assert!(check(&[("", "x")]).is_err());
        let err = check(&[("x-a", "1\r\nset-cookie: y")]).err();
        assert_eq!(
            err.map(|e| e.field),
            Some("response.headers.x-a".to_string())
        );
        assert!(check(&[("x-a", &"v".repeat(5000))]).is_err());
    }

    #[test]
    fn limits_the_count() {
        let names: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("x-{i}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        assert!(check(&pairs).is_err());
    }

    #[test]
    fn reply_status_range() {
        let p = FieldPath::root("status");
        let check = |json: &str| {
            let v = crate::json::parse(json.as_bytes()).unwrap();
            reply_status(Field::new(&v, p.clone()))
        };
        assert_eq!(check("503"), Ok(503));
        assert!(check("199").is_err());
        assert!(check("600").is_err());
        assert!(check("\"503\"").is_err());
    }
}
