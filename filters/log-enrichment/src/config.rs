//! The log-enrichment filter's JSON configuration: the raw serde types (what a user writes, and
//! the source of the JSON Schema), then checked into the [`LogConfig`] the engine runs on. Every
//! error names its field.

use crate::detect::{Detector, ALL};
use breakwater_common::config::{self, Bounded, ConfigError, FieldPath};
#[cfg(feature = "schema")]
use breakwater_common::duration::Millis;
use breakwater_common::duration::PositiveDuration;
use breakwater_common::headers::{is_token_byte, ConfiguredHeaders, HeaderList, Reserved};
use breakwater_common::status::{StatusSet, StatusSpec};
#[cfg(feature = "schema")]
use schemars::JsonSchema;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Bounds documented in the README.
pub const MAX_LOGGED_HEADERS: usize = 32;
/// Values logged per repeated header; further values are not logged.
pub const MAX_VALUES_PER_HEADER: usize = 8;
pub const DEFAULT_MAX_VALUE_BYTES: u32 = 1024;
pub const MIN_VALUE_BYTES: u32 = 16;
pub const MAX_VALUE_BYTES: u32 = 16 * 1024;
pub const MAX_BODY_BYTES: u32 = 64 * 1024;
pub const MAX_QUERY_PARAMS: usize = 64;
pub const MIN_HMAC_KEY_BYTES: usize = 16;
pub const MAX_CORRELATION_ID_BYTES: usize = 128;
// The longest `service` label, header name, query parameter name and media type, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;
pub const MAX_HEADER_NAME_BYTES: usize = 128;
pub const MAX_QUERY_PARAM_BYTES: usize = 128;
pub const MAX_MEDIA_TYPE_BYTES: usize = 128;
/// `body.content_types` lists 1 to this many media types.
pub const MAX_CONTENT_TYPES: usize = 16;

/// Defaults, documented in the README and in the schema.
pub const DEFAULT_CORRELATION_HEADER: &str = "x-correlation-id";
pub const DEFAULT_GENERATE: bool = true;
pub const DEFAULT_TRUST_INCOMING: bool = true;
pub const DEFAULT_ECHO_IN_RESPONSE: bool = false;
pub const DEFAULT_WORKLOAD_METADATA: bool = true;
pub const DEFAULT_SEPARATE_FIELDS: bool = false;
pub const DEFAULT_SAMPLING_RATE: f64 = 1.0;
pub const DEFAULT_SLOW_MS: u64 = 1000;
/// The classes sampling keeps when `sampling.always_keep` is not given.
pub const DEFAULT_ALWAYS_KEEP: [&str; 4] = ["5xx", "fallback", "breaker_rejected", "slow"];
pub const DEFAULT_BODY_MAX_BYTES: u32 = 1024;
pub const DEFAULT_CONTENT_TYPES: [&str; 1] = ["application/json"];

/// Headers that carry credentials or session state: never logged, and config that lists them
/// is refused (a silent skip would hide a mistake).
pub const NEVER_LOGGED: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Query parameters redacted when `redact.query_params` is not given: the list plus
/// OpenTelemetry's default sensitive query keys (signed-URL signatures and keys).
pub const DEFAULT_QUERY_PARAMS: [&str; 13] = [
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "sig",
    "signature",
    "x-amz-signature",
    "x-goog-signature",
];

/// The named classes of `sampling.always_keep` (besides statuses).
const KEEP_CLASS_NAMES: [&str; 4] = ["fallback", "breaker_rejected", "slow", "response_flags"];

/// Headers of the upstream request that Envoy manages itself.
#[derive(Debug)]
pub struct EnvoyManaged;

impl Reserved for EnvoyManaged {
    const NAMES: &'static [&'static str] =
        &["host", "content-length", "transfer-encoding", "connection"];
    const REASON: &'static str = "this header is managed by Envoy";
}

// ---------------------------------------------------------------------------------------------
// What a user writes. Every optional key is an `Option`: a JSON `null` means the key is absent.

/// Enriched, redacted access-log records for Envoy (proxy-wasm): the `configuration` of the
/// Wasm filter or the `pluginConfig` of an Istio WasmPlugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(title = "breakwater log-enrichment configuration")
)]
pub struct RawConfig {
    /// Who is logging, written into every record.
    pub service: Option<RawService>,
    /// The correlation-id header.
    pub correlation: Option<RawCorrelation>,
    /// Log Istio's workload metadata from the node.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_WORKLOAD_METADATA)))]
    pub workload_metadata: Option<bool>,
    /// The only request headers logged; credential headers are refused.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub request_headers: Option<LoggedHeaders>,
    /// The only response headers logged; credential headers are refused.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub response_headers: Option<LoggedHeaders>,
    /// What is redacted from logged values, and how.
    pub redact: Option<RawRedact>,
    /// Which requests are logged.
    pub sampling: Option<RawSampling>,
    /// Headers set on the upstream request (not host, content-length, transfer-encoding,
    /// connection or the correlation header).
    #[cfg_attr(feature = "schema", schemars(extend("default" = {})))]
    pub upstream_headers: Option<ConfiguredHeaders<EnvoyManaged>>,
    /// Log the first bytes of request and response bodies (redacted); absent: no bodies.
    pub body: Option<RawBody>,
    /// Also write every scalar field as its own filter-state key (about 40 more host calls per
    /// request).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_SEPARATE_FIELDS)))]
    pub separate_fields: Option<bool>,
}

/// Who is logging, written into every record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "service"))]
pub struct RawService {
    /// Logged as service.name (1 to 128 printable characters).
    pub name: Option<Label>,
    /// Logged as service.version (1 to 128 printable characters).
    pub version: Option<Label>,
    /// Logged as deployment.environment.name (1 to 128 printable characters).
    pub environment: Option<Label>,
    /// Logged as cloud.region (1 to 128 printable characters).
    pub region: Option<Label>,
}

/// The correlation-id header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "correlation")
)]
pub struct RawCorrelation {
    /// The correlation-id header (not a credential header).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_CORRELATION_HEADER)))]
    pub header: Option<CorrelationHeader>,
    /// Make a fresh id when the request has none.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_GENERATE)))]
    pub generate: Option<bool>,
    /// Keep a valid incoming id; false: replace it (or remove it, with generate off).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_TRUST_INCOMING)))]
    pub trust_incoming: Option<bool>,
    /// Also send the correlation id and x-request-id back in the response.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_ECHO_IN_RESPONSE)))]
    pub echo_in_response: Option<bool>,
}

/// What is redacted from logged values, and how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "redact", transform = redact_schema))]
pub struct RawRedact {
    /// The detectors that run.
    #[cfg_attr(
        feature = "schema",
        schemars(extend("default" = ALL.iter().map(|d| d.name()).collect::<Vec<_>>()))
    )]
    pub detectors: Option<Detectors>,
    /// Query and form parameters whose values are always redacted, matched
    /// case-insensitively.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_QUERY_PARAMS)))]
    pub query_params: Option<QueryParams>,
    /// mask: [REDACTED:email]; hash: a keyed pseudonym [REDACTED:email:1f0c...] (needs
    /// hmac_key).
    #[cfg_attr(feature = "schema", schemars(extend("default" = RedactMode::default().as_str())))]
    pub mode: Option<RedactMode>,
    /// The HMAC-SHA-256 key for hash mode, at least 16 bytes.
    pub hmac_key: Option<HmacKey>,
    /// Longest logged path, query or header value, after redaction.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_VALUE_BYTES)))]
    pub max_value_bytes: Option<Bounded<MIN_VALUE_BYTES, MAX_VALUE_BYTES>>,
}

/// How detected values are redacted (`redact.mode`).
// Read by hand rather than derived: a derived enum would also take `{"mask": null}` for
// `"mask"`, and could not say "expected mask or hash".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "redact_mode", rename_all = "snake_case")
)]
pub enum RedactMode {
    /// Detected values become [REDACTED:<kind>].
    #[default]
    Mask,
    /// Detected values become keyed HMAC-SHA-256 pseudonyms [REDACTED:<kind>:<hash>]; needs
    /// hmac_key.
    Hash,
}

impl RedactMode {
    pub const ALL: [RedactMode; 2] = [RedactMode::Mask, RedactMode::Hash];

    pub fn as_str(self) -> &'static str {
        match self {
            RedactMode::Mask => "mask",
            RedactMode::Hash => "hash",
        }
    }
}

impl<'de> Deserialize<'de> for RedactMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RedactMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| {
                de::Error::custom(format!("\"{text}\" is not a mode (expected mask or hash)"))
            })
    }
}

/// Which requests are logged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "sampling"))]
pub struct RawSampling {
    /// The fraction of requests logged.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_SAMPLING_RATE)))]
    pub rate: Option<Fraction>,
    /// Never dropped: statuses ("5xx", "429", "500-504"), fallback, breaker_rejected, slow,
    /// response_flags.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_ALWAYS_KEEP)))]
    pub always_keep: Option<KeepClasses>,
    /// What slow means for always_keep.
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_SLOW_MS).to_string())))]
    pub slow: Option<PositiveDuration>,
}

/// Log the first bytes of request and response bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "body"))]
pub struct RawBody {
    /// Bytes logged of each body.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_BODY_MAX_BYTES)))]
    pub max_bytes: Option<Bounded<1, MAX_BODY_BYTES>>,
    /// Only bodies of these media types, and not compressed ones.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_CONTENT_TYPES)))]
    pub content_types: Option<ContentTypes>,
}

// ---------------------------------------------------------------------------------------------
// Leaf values, checked while they are read.

/// A printable value of 1 to 128 bytes, logged as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(pub String);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() || text.len() > MAX_LABEL_BYTES {
            return Err(de::Error::custom(format!(
                "must be 1 to {MAX_LABEL_BYTES} characters long"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(de::Error::custom("must not contain control characters"));
        }
        Ok(Label(text))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Label {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "label".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": format!("1 to {MAX_LABEL_BYTES} printable characters."),
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_LABEL_BYTES,
            // `char::is_control`: the C0 and C1 controls.
            "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        })
    }
}

/// A header name: an HTTP token of 1 to 128 characters (no pseudo-header), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderName(String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() || name.len() > MAX_HEADER_NAME_BYTES || !name.bytes().all(is_token_byte)
        {
            return Err(de::Error::custom(format!(
                "\"{name}\" is not a header name (an HTTP token of 1 to {MAX_HEADER_NAME_BYTES} characters; pseudo-headers are not allowed)"
            )));
        }
        Ok(HeaderName(name.to_ascii_lowercase()))
    }
}

/// The schema of a header name that may not be a credential header.
#[cfg(feature = "schema")]
fn loggable_header_name() -> serde_json::Value {
    use breakwater_common::schema::{caseless, HEADER_NAME};
    serde_json::json!({
        "type": "string",
        "maxLength": MAX_HEADER_NAME_BYTES,
        "pattern": HEADER_NAME,
        "not": { "pattern": caseless(&NEVER_LOGGED) },
    })
}

/// `correlation.header`: a header name (lower-cased) that carries no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationHeader(pub String);

impl<'de> Deserialize<'de> for CorrelationHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let HeaderName(name) = HeaderName::deserialize(deserializer)?;
        if NEVER_LOGGED.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "\"{name}\" carries credentials; choose another header"
            )));
        }
        Ok(CorrelationHeader(name))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for CorrelationHeader {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "correlation_header".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        breakwater_common::schema::to_schema(loggable_header_name())
    }
}

/// `request_headers` / `response_headers`: at most 32 header names (lower-cased), each listed
/// once and none a credential header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggedHeaders(pub Vec<String>);

/// One element of [`LoggedHeaders`], checked against the elements before it so that an error
/// names its index.
struct LoggedHeader<'a> {
    before: &'a [String],
}

impl<'de> DeserializeSeed<'de> for LoggedHeader<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        let HeaderName(name) = HeaderName::deserialize(deserializer)?;
        if NEVER_LOGGED.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "\"{name}\" carries credentials and is never logged; remove it from the list"
            )));
        }
        if self.before.contains(&name) {
            return Err(de::Error::custom(format!("\"{name}\" is listed twice")));
        }
        Ok(name)
    }
}

impl<'de> Deserialize<'de> for LoggedHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = LoggedHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of header names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LoggedHeaders, A::Error> {
                let names = read_at_most(
                    seq,
                    MAX_LOGGED_HEADERS,
                    || format!("at most {MAX_LOGGED_HEADERS} headers"),
                    |seq, before| seq.next_element_seed(LoggedHeader { before }),
                )?;
                Ok(LoggedHeaders(names))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for LoggedHeaders {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "logged_headers".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "maxItems": MAX_LOGGED_HEADERS,
            // Case-sensitive, where the parser is not: "a" and "A" pass here.
            "uniqueItems": true,
            "items": loggable_header_name(),
        })
    }
}

/// Reads the elements of a configured array with `next` (which is given the elements before
/// the one it reads), and refuses more than `max` of them at the array, without reading the
/// extra ones.
fn read_at_most<'de, A: SeqAccess<'de>, T>(
    mut seq: A,
    max: usize,
    too_many: impl FnOnce() -> String,
    mut next: impl FnMut(&mut A, &[T]) -> Result<Option<T>, A::Error>,
) -> Result<Vec<T>, A::Error> {
    let mut out = Vec::new();
    loop {
        if out.len() >= max {
            return match seq.next_element::<IgnoredAny>()? {
                Some(_) => Err(de::Error::custom(too_many())),
                None => Ok(out),
            };
        }
        match next(&mut seq, &out)? {
            Some(item) => out.push(item),
            None => return Ok(out),
        }
    }
}

/// `redact.detectors`: detector names, in order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detectors(pub Vec<Detector>);

/// One detector by name.
struct DetectorName(Detector);

impl<'de> Deserialize<'de> for DetectorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Detector::from_name(&name).map(DetectorName).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
            de::Error::custom(format!(
                "unknown detector \"{name}\" (known: {})",
                known.join(", ")
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Detectors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<DetectorName>::deserialize(deserializer)?;
        let mut out: Vec<Detector> = Vec::with_capacity(names.len());
        for DetectorName(detector) in names {
            if !out.contains(&detector) {
                out.push(detector);
            }
        }
        Ok(Detectors(out))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Detectors {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "detectors".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
        schemars::json_schema!({
            "type": "array",
            "items": { "type": "string", "enum": names },
        })
    }
}

/// `redact.query_params`: at most 64 parameter names of 1 to 128 bytes, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams(pub Vec<String>);

/// One query parameter name.
struct QueryParam(String);

impl<'de> Deserialize<'de> for QueryParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() || name.len() > MAX_QUERY_PARAM_BYTES {
            return Err(de::Error::custom(format!(
                "must be 1 to {MAX_QUERY_PARAM_BYTES} characters long"
            )));
        }
        Ok(QueryParam(name.to_ascii_lowercase()))
    }
}

impl<'de> Deserialize<'de> for QueryParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = QueryParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of parameter names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<QueryParams, A::Error> {
                let names = read_at_most(
                    seq,
                    MAX_QUERY_PARAMS,
                    || format!("at most {MAX_QUERY_PARAMS} parameters"),
                    |seq, _| seq.next_element::<QueryParam>(),
                )?;
                Ok(QueryParams(names.into_iter().map(|p| p.0).collect()))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for QueryParams {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "query_params".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "maxItems": MAX_QUERY_PARAMS,
            "items": { "type": "string", "minLength": 1, "maxLength": MAX_QUERY_PARAM_BYTES },
        })
    }
}

/// `redact.hmac_key`: at least 16 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey(pub Vec<u8>);

/// The key stays out of logs and panic messages.
impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey({} bytes)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for HmacKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        if key.len() < MIN_HMAC_KEY_BYTES {
            return Err(de::Error::custom(format!(
                "must be at least {MIN_HMAC_KEY_BYTES} bytes (a short key makes 11-digit ids guessable)"
            )));
        }
        Ok(HmacKey(key.into_bytes()))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for HmacKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "hmac_key".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // JSON Schema counts characters, not UTF-8 bytes: 16 ASCII characters, or 4 characters
        // if one is not ASCII (each then takes up to 4 bytes).
        schemars::json_schema!({
            "type": "string",
            "anyOf": [
                { "minLength": MIN_HMAC_KEY_BYTES },
                { "minLength": MIN_HMAC_KEY_BYTES / 4, "pattern": "[^\\u0000-\\u007F]" },
            ],
        })
    }
}

/// `hash` mode needs an `hmac_key`.
#[cfg(feature = "schema")]
fn redact_schema(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, given};
    add_rule(
        schema,
        serde_json::json!({
            "if": { "required": ["mode"], "properties": { "mode": { "const": "hash" } } },
            "then": given(&["hmac_key"]),
        }),
    );
}

/// `sampling.rate`: a number from 0.0 to 1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if (0.0..=1.0).contains(&value) {
            Ok(Fraction(value))
        } else {
            Err(de::Error::custom(format!(
                "must be from 0.0 to 1.0 (the fraction of requests logged), not {value}"
            )))
        }
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Fraction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "fraction".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number from 0.0 to 1.0.",
            "type": "number",
            "minimum": 0,
            "maximum": 1,
        })
    }
}

/// One element of `sampling.always_keep`.
enum KeepItem {
    Status(StatusSpec),
    Fallback,
    BreakerRejected,
    Slow,
    ResponseFlags,
}

impl KeepItem {
    fn parse(name: &str) -> Result<KeepItem, String> {
        Ok(match name {
            "fallback" => KeepItem::Fallback,
            "breaker_rejected" => KeepItem::BreakerRejected,
            "slow" => KeepItem::Slow,
            "response_flags" => KeepItem::ResponseFlags,
            other => KeepItem::Status(
                StatusSpec::parse(other)
                    .map_err(|e| format!("{e}; or one of {}", KEEP_CLASS_NAMES.join(", ")))?,
            ),
        })
    }
}

impl<'de> Deserialize<'de> for KeepItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        KeepItem::parse(&name).map_err(de::Error::custom)
    }
}

impl KeepClasses {
    fn from_items(items: impl IntoIterator<Item = KeepItem>) -> KeepClasses {
        let mut keep = KeepClasses::default();
        let mut specs = Vec::new();
        for item in items {
            match item {
                KeepItem::Status(spec) => specs.push(spec),
                KeepItem::Fallback => keep.fallback = true,
                KeepItem::BreakerRejected => keep.breaker_rejected = true,
                KeepItem::Slow => keep.slow = true,
                KeepItem::ResponseFlags => keep.response_flags = true,
            }
        }
        keep.statuses = StatusSet::from_specs(&specs);
        keep
    }
}

/// A configured `always_keep` list; an element that is wrong is named by its index.
impl<'de> Deserialize<'de> for KeepClasses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<KeepItem>::deserialize(deserializer)?;
        Ok(KeepClasses::from_items(items))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for KeepClasses {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "always_keep".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let status = breakwater_common::schema::status_item(
            |_| true,
            "A status code (\"503\"), class (\"5xx\", \"50x\") or range (\"500-504\") of codes 100 to 599.",
        );
        schemars::json_schema!({
            "type": "array",
            "items": {
                "type": "string",
                "anyOf": [ { "enum": KEEP_CLASS_NAMES }, status ],
            },
        })
    }
}

/// `body.content_types`: 1 to 16 media types (`application/json`), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTypes(pub Vec<String>);

/// One media type, without parameters.
struct MediaType(String);

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if !text.contains('/') || text.contains(';') || text.len() > MAX_MEDIA_TYPE_BYTES {
            return Err(de::Error::custom(format!(
                "\"{text}\" is not a media type like application/json"
            )));
        }
        Ok(MediaType(text.trim().to_ascii_lowercase()))
    }
}

impl<'de> Deserialize<'de> for ContentTypes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = ContentTypes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of media types")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ContentTypes, A::Error> {
                let message = || format!("must list 1 to {MAX_CONTENT_TYPES} media types");
                let types = read_at_most(seq, MAX_CONTENT_TYPES, message, |seq, _| {
                    seq.next_element::<MediaType>()
                })?;
                if types.is_empty() {
                    return Err(de::Error::custom(message()));
                }
                Ok(ContentTypes(types.into_iter().map(|t| t.0).collect()))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for ContentTypes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "content_types".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_CONTENT_TYPES,
            "items": { "type": "string", "maxLength": MAX_MEDIA_TYPE_BYTES, "pattern": "^[^;]*/[^;]*$" },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Checked configuration.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: Option<String>,
    pub version: Option<String>,
    pub environment: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// Lower-case header name.
    pub header: String,
    pub generate: bool,
    pub trust_incoming: bool,
    pub echo_in_response: bool,
}

impl Default for Correlation {
    fn default() -> Self {
        Correlation {
            header: DEFAULT_CORRELATION_HEADER.to_string(),
            generate: DEFAULT_GENERATE,
            trust_incoming: DEFAULT_TRUST_INCOMING,
            echo_in_response: DEFAULT_ECHO_IN_RESPONSE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Mask,
    /// Keyed HMAC-SHA-256 pseudonyms.
    Hash {
        key: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    pub detectors: Vec<Detector>,
    /// Lower-case parameter names whose values are always redacted.
    pub query_params: Vec<String>,
    pub mode: Mode,
    /// Longest logged value (path, query, each header value), after redaction.
    pub max_value_bytes: usize,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            detectors: ALL.to_vec(),
            query_params: DEFAULT_QUERY_PARAMS.iter().map(|s| s.to_string()).collect(),
            mode: Mode::Mask,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES as usize,
        }
    }
}

/// Named classes of requests that sampling never drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepClasses {
    pub statuses: StatusSet,
    pub fallback: bool,
    pub breaker_rejected: bool,
    pub slow: bool,
    pub response_flags: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Fraction of requests logged, 0.0 to 1.0.
    pub rate: f64,
    pub always_keep: KeepClasses,
    pub slow_ms: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            rate: DEFAULT_SAMPLING_RATE,
            // Every default name is valid (a test says so).
            always_keep: KeepClasses::from_items(
                DEFAULT_ALWAYS_KEEP
                    .iter()
                    .filter_map(|name| KeepItem::parse(name).ok()),
            ),
            slow_ms: DEFAULT_SLOW_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub max_bytes: usize,
    /// Lower-case media types (`application/json`); parameters are ignored when matching.
    pub content_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub service: Service,
    pub correlation: Correlation,
    pub workload_metadata: bool,
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub redact: Redaction,
    pub sampling: Sampling,
    pub upstream_headers: HeaderList,
    pub body: Option<Body>,
    /// Also write each field as its own filter-state key (`breakwater.log.<field>`); off by
    /// default because ~40 more host calls per request cost about 10 % of Envoy's CPU per request.
    pub separate_fields: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            service: Service::default(),
            correlation: Correlation::default(),
            workload_metadata: DEFAULT_WORKLOAD_METADATA,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            redact: Redaction::default(),
            sampling: Sampling::default(),
            upstream_headers: HeaderList::default(),
            body: None,
            separate_fields: DEFAULT_SEPARATE_FIELDS,
        }
    }
}

impl LogConfig {
    pub fn parse(bytes: &[u8]) -> Result<LogConfig, ConfigError> {
        LogConfig::check(config::parse(bytes)?)
    }

    /// The checks across fields, on a configuration serde has read.
    pub fn check(raw: RawConfig) -> Result<LogConfig, ConfigError> {
        let correlation = raw
            .correlation
            .map_or_else(Correlation::default, |c| Correlation {
                header: c
                    .header
                    .map_or_else(|| DEFAULT_CORRELATION_HEADER.to_string(), |h| h.0),
                generate: c.generate.unwrap_or(DEFAULT_GENERATE),
                trust_incoming: c.trust_incoming.unwrap_or(DEFAULT_TRUST_INCOMING),
                echo_in_response: c.echo_in_response.unwrap_or(DEFAULT_ECHO_IN_RESPONSE),
            });
        let redact = match raw.redact {
            None => Redaction::default(),
            Some(r) => check_redaction(r, &FieldPath::root("redact"))?,
        };
        let upstream_headers = raw
            .upstream_headers
            .map(ConfiguredHeaders::into_list)
            .unwrap_or_default();
        if upstream_headers.contains(&correlation.header) {
            return Err(FieldPath::root("upstream_headers")
                .key(&correlation.header)
                .error("is the correlation header, which the filter sets itself"));
        }
        Ok(LogConfig {
            service: raw.service.map_or_else(Service::default, |s| Service {
                name: s.name.map(|l| l.0),
                version: s.version.map(|l| l.0),
                environment: s.environment.map(|l| l.0),
                region: s.region.map(|l| l.0),
            }),
            correlation,
            workload_metadata: raw.workload_metadata.unwrap_or(DEFAULT_WORKLOAD_METADATA),
            request_headers: raw.request_headers.unwrap_or_default().0,
            response_headers: raw.response_headers.unwrap_or_default().0,
            redact,
            sampling: raw.sampling.map_or_else(Sampling::default, |s| Sampling {
                rate: s.rate.map_or(DEFAULT_SAMPLING_RATE, |r| r.0),
                always_keep: s
                    .always_keep
                    .unwrap_or_else(|| Sampling::default().always_keep),
                slow_ms: s.slow.map_or(DEFAULT_SLOW_MS, |d| d.ms()),
            }),
            upstream_headers,
            body: raw.body.map(|b| Body {
                max_bytes: b.max_bytes.map_or(DEFAULT_BODY_MAX_BYTES, Bounded::get) as usize,
                content_types: b.content_types.map_or_else(
                    || {
                        DEFAULT_CONTENT_TYPES
                            .iter()
                            .map(|t| t.to_string())
                            .collect()
                    },
                    |t| t.0,
                ),
            }),
            separate_fields: raw.separate_fields.unwrap_or(DEFAULT_SEPARATE_FIELDS),
        })
    }
}

fn check_redaction(raw: RawRedact, path: &FieldPath) -> Result<Redaction, ConfigError> {
    let defaults = Redaction::default();
    let mode = match (raw.mode.unwrap_or_default(), raw.hmac_key) {
        (RedactMode::Hash, None) => {
            return Err(path.key("mode").error(
                "\"hash\" needs redact.hmac_key (without a key, hashed ids can be found by trying every id)",
            ));
        }
        (RedactMode::Hash, Some(key)) => Mode::Hash { key: key.0 },
        // A key without hash mode is harmless: masking stays on.
        (RedactMode::Mask, _) => Mode::Mask,
    };
    Ok(Redaction {
        detectors: raw.detectors.map_or(defaults.detectors, |d| d.0),
        query_params: raw.query_params.map_or(defaults.query_params, |q| q.0),
        mode,
        max_value_bytes: raw
            .max_value_bytes
            .map_or(defaults.max_value_bytes, |n| n.get() as usize),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
