//! The log-enrichment filter's JSON configuration: the raw serde types (what a user writes, and
//! the source of the JSON Schema), then checked into the [`LogConfig`] the engine runs on. Every
//! error names its field.

use crate::detect::{Detector, ALL, DEFAULT, KINDS};
#[cfg(feature = "schema")]
use crate::fields::MAX_FIELD_PATH_BYTES;
use crate::fields::{
    FieldPath as BodyFieldPath, FieldRules, DEFAULT_PARSE_MAX_BYTES, MAX_FIELD_RULES,
    MAX_PARSE_BYTES,
};
#[cfg(feature = "schema")]
use crate::patterns::MAX_REGEX_BYTES;
use crate::patterns::{
    Checksum, PatternRegex, UserPattern, DEFAULT_KEYWORD_DISTANCE, MAX_KEYWORDS, MAX_KEYWORD_BYTES,
    MAX_KEYWORD_DISTANCE, MAX_PATTERNS, MAX_PATTERN_NAME_BYTES,
};
use breakwater_common::config::{self, Bounded, ConfigError, FieldPath};
#[cfg(feature = "schema")]
use breakwater_common::duration::Millis;
use breakwater_common::duration::PositiveDuration;
use breakwater_common::grpc::{code_by_name, GrpcStatusSet};
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

/// The named classes of `sampling.always_keep` (besides HTTP statuses and gRPC status names).
const KEEP_CLASS_NAMES: [&str; 5] = [
    "fallback",
    "breaker_rejected",
    "slow",
    "response_flags",
    "grpc_error",
];

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
    /// Who writes the fields Envoy's access-log operators can print (timestamp, protocol,
    /// status, flags, duration, sizes, upstream, cluster, route): "record" (the filter reads
    /// them into the record) or "access_log" (the access log's format prints them; the record
    /// leaves them out and is written as JSON members without braces, to be placed inside that
    /// format's object).
    #[cfg_attr(feature = "schema", schemars(extend("default" = EnvoyFields::default().as_str())))]
    pub envoy_fields: Option<EnvoyFields>,
}

/// Who writes the record fields that Envoy's own access-log operators can print
/// (`envoy_fields`).
// Read by hand (`one_of`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "envoy_fields", rename_all = "snake_case")
)]
pub enum EnvoyFields {
    /// The filter reads them from Envoy and writes them into the record.
    #[default]
    Record,
    /// The access log's format prints them (ACCESS_LOG_FIELDS); the filter does not read them,
    /// and writes the record as JSON members without braces.
    AccessLog,
}

impl EnvoyFields {
    pub const ALL: [EnvoyFields; 2] = [EnvoyFields::Record, EnvoyFields::AccessLog];

    pub fn as_str(self) -> &'static str {
        match self {
            EnvoyFields::Record => "record",
            EnvoyFields::AccessLog => "access_log",
        }
    }
}

impl<'de> Deserialize<'de> for EnvoyFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            &EnvoyFields::ALL,
            EnvoyFields::as_str,
            "a choice",
        )
    }
}

/// A value of a closed set read by its name, with an error that lists the names (`what`: "a
/// mode"). Read by hand rather than derived: a derived enum would also take `{"mask": null}`
/// for `"mask"`, and could not list what it expected.
fn one_of<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            let expected = match names.split_last() {
                Some((last, [])) => (*last).to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            de::Error::custom(format!("\"{text}\" is not {what} (expected {expected})"))
        })
}

/// With `envoy_fields: "access_log"`, the record fields the access log prints instead of the
/// filter, each with the format text that prints it. Only operators whose output needs no JSON
/// escaping are used (numbers, addresses, flag codes, timestamps and configured names);
/// `envoy.response_code_details` can hold any text, so the filter still writes it.
pub const ACCESS_LOG_FIELDS: [(&str, &str); 10] = [
    ("timestamp", "\"%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%\""),
    ("envoy.protocol", "\"%PROTOCOL%\""),
    ("http.response.status_code", "%RESPONSE_CODE%"),
    ("envoy.response_flags", "\"%RESPONSE_FLAGS%\""),
    ("duration_ms", "%DURATION%"),
    ("http.request.body.size", "%BYTES_RECEIVED%"),
    ("http.response.body.size", "%BYTES_SENT%"),
    ("upstream.address", "\"%UPSTREAM_HOST%\""),
    ("envoy.cluster", "\"%UPSTREAM_CLUSTER%\""),
    ("envoy.route", "\"%ROUTE_NAME%\""),
];

/// The record fields that `envoy_fields: "access_log"` leaves out (the access log prints each,
/// `network.protocol.version` as `envoy.protocol`).
pub const LEFT_TO_ACCESS_LOG: [&str; 10] = [
    "timestamp",
    "network.protocol.version",
    "http.response.status_code",
    "envoy.response_flags",
    "duration_ms",
    "http.request.body.size",
    "http.response.body.size",
    "upstream.address",
    "envoy.cluster",
    "envoy.route",
];

/// The access log's text format for `envoy_fields: "access_log"`: one JSON object per line,
/// Envoy's operators first, then the record's members (`record_key`: the filter state holding
/// the record, `wasm.` included). Without the trailing newline.
pub fn access_log_format(record_key: &str) -> String {
    let mut format = String::from("{");
    for (field, operator) in ACCESS_LOG_FIELDS {
        format.push('"');
        format.push_str(field);
        format.push_str("\":");
        format.push_str(operator);
        format.push(',');
    }
    format.push_str("%FILTER_STATE(");
    format.push_str(record_key);
    format.push_str(":PLAIN)%}");
    format
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
        schemars(extend("default" = DEFAULT.iter().map(|d| d.name()).collect::<Vec<_>>()))
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
    /// User-defined detectors (at most 32), run after the built-in ones on every logged value.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub patterns: Option<Patterns>,
}

/// A user-defined detector: a value is found where `regex` matches, the checksum (if any)
/// holds and (if keywords are given) one stands shortly before it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "pattern", transform = pattern_schema)
)]
pub struct RawPattern {
    /// Names the mask ([REDACTED:<name>]) and the stat (redactions.<name>): a lower-case
    /// letter, then lower-case letters, digits and '_', at most 32; not a built-in detector's.
    pub name: PatternName,
    /// A regular expression (regex-lite syntax: Perl-like, no look-around or backreferences,
    /// \d and \w are ASCII), at most 512 bytes; it must not match the empty string.
    pub regex: RegexSource,
    /// A checksum the match must pass: luhn (ISO/IEC 7812), mod11 (weights 2..7 from the
    /// right, Norwegian account and KID numbers) or mod97 (ISO 7064 MOD 97-10, IBAN).
    pub validate: Option<Checksum>,
    /// Words (case-insensitive) one of which must end at most keyword_distance bytes before
    /// a match; at most 16, each 1 to 64 bytes.
    pub keywords: Option<Keywords>,
    /// Bytes between a keyword's end and a match's start (needs keywords).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_KEYWORD_DISTANCE)))]
    pub keyword_distance: Option<Bounded<1, MAX_KEYWORD_DISTANCE>>,
}

/// `parse_max_bytes` needs a field rule: `keep_fields`, or `redact_fields` with a field.
#[cfg(feature = "schema")]
fn body_schema(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, given};
    let some_redact_field = serde_json::json!({
        "required": ["redact_fields"],
        "properties": { "redact_fields": { "type": "array", "minItems": 1 } },
    });
    add_rule(
        schema,
        serde_json::json!({
            "if": given(&["parse_max_bytes"]),
            "then": { "anyOf": [given(&["keep_fields"]), some_redact_field] },
        }),
    );
}

/// `keyword_distance` needs `keywords`.
#[cfg(feature = "schema")]
fn pattern_schema(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, given};
    add_rule(
        schema,
        serde_json::json!({ "if": given(&["keyword_distance"]), "then": given(&["keywords"]) }),
    );
}

/// How detected values are redacted (`redact.mode`).
// Read by hand (`one_of`).
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
        one_of(deserializer, &RedactMode::ALL, RedactMode::as_str, "a mode")
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
    /// Never dropped: HTTP statuses ("5xx", "429", "500-504"), fallback, breaker_rejected, slow,
    /// response_flags, grpc_error (a gRPC call not answered OK) and gRPC status names
    /// ("UNAVAILABLE", any case).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_ALWAYS_KEEP)))]
    pub always_keep: Option<KeepClasses>,
    /// What slow means for always_keep.
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_SLOW_MS).to_string())))]
    pub slow: Option<PositiveDuration>,
}

/// Log the first bytes of request and response bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "body", transform = body_schema)
)]
pub struct RawBody {
    /// Bytes logged of each body.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_BODY_MAX_BYTES)))]
    pub max_bytes: Option<Bounded<1, MAX_BODY_BYTES>>,
    /// Only bodies of these media types, and not compressed ones.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_CONTENT_TYPES)))]
    pub content_types: Option<ContentTypes>,
    /// JSON bodies: these fields' values are masked whatever they hold (a name such as ssn at
    /// any depth, or a path from the top such as customer.ssn or items[].card); at most 32.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub redact_fields: Option<FieldPaths>,
    /// JSON bodies: only these fields' values are logged, every other value is replaced by
    /// its type ("[string]"); absent: all values are logged. At most 32.
    pub keep_fields: Option<FieldPaths>,
    /// With field rules: the longest JSON body read; a longer or invalid one is logged as
    /// [REDACTED:body].
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_PARSE_MAX_BYTES)))]
    pub parse_max_bytes: Option<Bounded<1, MAX_PARSE_BYTES>>,
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

/// Reads a configured array of `min` to `max` items of `T`; more are refused at the array
/// without being read. Errors say "at most <max> <what>" (or, with a minimum, "must list <min>
/// to <max> <what>"); a value that is not an array is "expected <expecting>".
fn read_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    (min, max): (usize, usize),
    what: &'static str,
    expecting: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct List<T> {
        min: usize,
        max: usize,
        what: &'static str,
        expecting: &'static str,
        item: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            let (min, max, what) = (self.min, self.max, self.what);
            let message = || match min {
                0 => format!("at most {max} {what}"),
                _ => format!("must list {min} to {max} {what}"),
            };
            let items = read_at_most(seq, max, message, |seq, _| seq.next_element::<T>())?;
            if items.len() < min {
                return Err(de::Error::custom(message()));
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(List {
        min,
        max,
        what,
        expecting,
        item: std::marker::PhantomData,
    })
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
        let names: Vec<QueryParam> = read_list(
            deserializer,
            (0, MAX_QUERY_PARAMS),
            "parameters",
            "an array of parameter names",
        )?;
        Ok(QueryParams(names.into_iter().map(|p| p.0).collect()))
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

/// `redact.patterns`: at most 32 user-defined detectors.
#[derive(Debug, Default)]
pub struct Patterns(pub Vec<RawPattern>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_list(
            deserializer,
            (0, MAX_PATTERNS),
            "patterns",
            "an array of patterns",
        )
        .map(Patterns)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Patterns {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "patterns".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "maxItems": MAX_PATTERNS,
            "items": generator.subschema_for::<RawPattern>(),
        })
    }
}

/// The names no pattern may take: the built-in kinds' (the masks and stats they own).
fn reserved_pattern_names() -> impl Iterator<Item = &'static str> {
    KINDS
        .iter()
        .map(|k| k.name())
        .chain([Detector::Pattern(0).name()])
}

/// `redact.patterns[].name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternName(pub String);

impl<'de> Deserialize<'de> for PatternName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let shaped = name.len() <= MAX_PATTERN_NAME_BYTES
            && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !shaped {
            return Err(de::Error::custom(format!(
                "\"{name}\" is not a pattern name (a lower-case letter, then lower-case letters, digits and '_', at most {MAX_PATTERN_NAME_BYTES})"
            )));
        }
        if reserved_pattern_names().any(|reserved| reserved == name) {
            return Err(de::Error::custom(format!(
                "\"{name}\" is a built-in detector's name; choose another"
            )));
        }
        Ok(PatternName(name))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for PatternName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "pattern_name".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let reserved: Vec<&str> = reserved_pattern_names().collect();
        schemars::json_schema!({
            "type": "string",
            "pattern": format!("^[a-z][a-z0-9_]{{0,{}}}$", MAX_PATTERN_NAME_BYTES - 1),
            "not": { "enum": reserved },
        })
    }
}

/// `redact.patterns[].regex`: compiled while it is read, so an error names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexSource(pub PatternRegex);

impl<'de> Deserialize<'de> for RegexSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        PatternRegex::compile(&source)
            .map(RegexSource)
            .map_err(de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for RegexSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "regex".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Compilation, the compiled size and the empty match are the parser's to check.
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_REGEX_BYTES,
        })
    }
}

// Read by hand (`one_of`): only the names, and an error that lists them.
impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(deserializer, &Checksum::ALL, Checksum::name, "a checksum")
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Checksum {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "checksum".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Checksum::ALL.iter().map(|c| c.name()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// `redact.patterns[].keywords`: 1 to 16 words of 1 to 64 bytes, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords(pub Vec<String>);

/// One keyword.
struct Keyword(String);

impl<'de> Deserialize<'de> for Keyword {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        if word.is_empty() || word.len() > MAX_KEYWORD_BYTES {
            return Err(de::Error::custom(format!(
                "must be 1 to {MAX_KEYWORD_BYTES} bytes long"
            )));
        }
        Ok(Keyword(word.to_ascii_lowercase()))
    }
}

impl<'de> Deserialize<'de> for Keywords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let words: Vec<Keyword> = read_list(
            deserializer,
            (1, MAX_KEYWORDS),
            "keywords",
            "an array of keywords",
        )?;
        Ok(Keywords(words.into_iter().map(|w| w.0).collect()))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Keywords {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "keywords".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_KEYWORDS,
            // JSON Schema counts characters; the parser counts UTF-8 bytes.
            "items": { "type": "string", "minLength": 1, "maxLength": MAX_KEYWORD_BYTES },
        })
    }
}

/// `body.redact_fields` / `body.keep_fields`: at most 32 field names or paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPaths(pub Vec<BodyFieldPath>);

/// One field name or path.
struct FieldPathItem(BodyFieldPath);

impl<'de> Deserialize<'de> for FieldPathItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BodyFieldPath::parse(&text)
            .map(FieldPathItem)
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for FieldPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let paths: Vec<FieldPathItem> = read_list(
            deserializer,
            (0, MAX_FIELD_RULES),
            "fields",
            "an array of field names or paths",
        )?;
        Ok(FieldPaths(paths.into_iter().map(|p| p.0).collect()))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for FieldPaths {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "field_paths".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "maxItems": MAX_FIELD_RULES,
            "items": {
                "type": "string",
                "maxLength": MAX_FIELD_PATH_BYTES,
                "pattern": FIELD_PATH_PATTERN,
            },
        })
    }
}

/// A field path as the parser reads it: keys without `.`, `[` or `]`, each followed by any
/// number of `[]`, joined by dots; `[].` first for a top-level array.
#[cfg(feature = "schema")]
pub const FIELD_PATH_PATTERN: &str =
    "^((\\[\\])+\\.)?[^.\\[\\]]+(\\[\\])*(\\.[^.\\[\\]]+(\\[\\])*)*$";

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
    /// A gRPC status by name (`"UNAVAILABLE"`, any case).
    GrpcCode(u32),
    GrpcError,
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
            "grpc_error" => KeepItem::GrpcError,
            other => match code_by_name(other) {
                Some(code) => KeepItem::GrpcCode(code),
                None => KeepItem::Status(StatusSpec::parse(other).map_err(|e| {
                    let classes = KEEP_CLASS_NAMES.join(", ");
                    if other.bytes().any(|b| b.is_ascii_digit()) {
                        // A status written wrong: the status parser's reason says what.
                        format!(
                            "{e}; or a gRPC status name (\"UNAVAILABLE\", any case), or one of {classes}"
                        )
                    } else {
                        format!(
                            "\"{other}\" is not a status, gRPC status or class: use an HTTP status code \
                             (\"503\"), class (\"5xx\") or range (\"500-504\"), a gRPC status name \
                             (\"UNAVAILABLE\", \"DEADLINE_EXCEEDED\", ... in any case), or one of \
                             {classes}"
                        )
                    }
                })?),
            },
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
        let mut codes = Vec::new();
        for item in items {
            match item {
                KeepItem::Status(spec) => specs.push(spec),
                KeepItem::GrpcCode(code) => codes.push(code),
                KeepItem::GrpcError => keep.grpc_error = true,
                KeepItem::Fallback => keep.fallback = true,
                KeepItem::BreakerRejected => keep.breaker_rejected = true,
                KeepItem::Slow => keep.slow = true,
                KeepItem::ResponseFlags => keep.response_flags = true,
            }
        }
        keep.statuses = StatusSet::from_specs(&specs);
        keep.grpc_statuses = GrpcStatusSet::of(&codes);
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
                "anyOf": [ { "enum": KEEP_CLASS_NAMES }, status, grpc_name_schema() ],
            },
        })
    }
}

/// A gRPC status name in any case (what `code_by_name` reads), spelled out letter by letter
/// (`[Uu][Nn]…`) so that every JSON Schema regex dialect reads it the same.
#[cfg(feature = "schema")]
fn grpc_name_schema() -> serde_json::Value {
    serde_json::json!({
        "description": "A gRPC status name (\"UNAVAILABLE\", \"DEADLINE_EXCEEDED\", ..., as in the gRPC spec), in any case: gRPC calls answered with it.",
        "pattern": breakwater_common::schema::caseless(&breakwater_common::grpc::CODE_NAMES),
    })
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
        let types: Vec<MediaType> = read_list(
            deserializer,
            (1, MAX_CONTENT_TYPES),
            "media types",
            "an array of media types",
        )?;
        Ok(ContentTypes(types.into_iter().map(|t| t.0).collect()))
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
    pub patterns: Vec<UserPattern>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            detectors: DEFAULT.to_vec(),
            query_params: DEFAULT_QUERY_PARAMS.iter().map(|s| s.to_string()).collect(),
            mode: Mode::Mask,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES as usize,
            patterns: Vec::new(),
        }
    }
}

/// Named classes of requests that sampling never drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepClasses {
    /// HTTP statuses (`response.code`).
    pub statuses: StatusSet,
    /// gRPC statuses by name: gRPC calls whose `response.grpc_status` is one of these.
    pub grpc_statuses: GrpcStatusSet,
    /// gRPC calls whose status is not OK, or that ended without one.
    pub grpc_error: bool,
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
    /// Field rules for JSON bodies, when `redact_fields` or `keep_fields` is given.
    pub fields: Option<FieldRules>,
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
    pub envoy_fields: EnvoyFields,
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
            envoy_fields: EnvoyFields::default(),
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
            body: raw
                .body
                .map(|b| check_body(b, &FieldPath::root("body")))
                .transpose()?,
            separate_fields: raw.separate_fields.unwrap_or(DEFAULT_SEPARATE_FIELDS),
            envoy_fields: raw.envoy_fields.unwrap_or_default(),
        })
    }
}

fn check_body(raw: RawBody, path: &FieldPath) -> Result<Body, ConfigError> {
    let redact = raw.redact_fields.map_or_else(Vec::new, |f| f.0);
    // `redact_fields: []` (the default) is no rule; `keep_fields: []` is one (keep nothing).
    let rules_on = !redact.is_empty() || raw.keep_fields.is_some();
    if raw.parse_max_bytes.is_some() && !rules_on {
        return Err(path
            .key("parse_max_bytes")
            .error("needs redact_fields or keep_fields (it bounds what field rules read)"));
    }
    let fields = rules_on.then(|| FieldRules {
        redact,
        keep: raw.keep_fields.map(|f| f.0),
        parse_max_bytes: raw
            .parse_max_bytes
            .map_or(DEFAULT_PARSE_MAX_BYTES, Bounded::get) as usize,
    });
    Ok(Body {
        max_bytes: raw.max_bytes.map_or(DEFAULT_BODY_MAX_BYTES, Bounded::get) as usize,
        content_types: raw.content_types.map_or_else(
            || {
                DEFAULT_CONTENT_TYPES
                    .iter()
                    .map(|t| t.to_string())
                    .collect()
            },
            |t| t.0,
        ),
        fields,
    })
}

fn check_patterns(raw: Patterns, path: &FieldPath) -> Result<Vec<UserPattern>, ConfigError> {
    let mut patterns: Vec<UserPattern> = Vec::with_capacity(raw.0.len());
    for (i, p) in raw.0.into_iter().enumerate() {
        let at = path.index(i);
        if patterns.iter().any(|before| before.name == p.name.0) {
            return Err(at
                .key("name")
                .error(format!("\"{}\" is given to two patterns", p.name.0)));
        }
        if p.keyword_distance.is_some() && p.keywords.is_none() {
            return Err(at
                .key("keyword_distance")
                .error("needs keywords (the distance is measured from a keyword)"));
        }
        patterns.push(UserPattern {
            name: p.name.0,
            regex: p.regex.0,
            validate: p.validate,
            keywords: p.keywords.map_or_else(Vec::new, |k| k.0),
            keyword_distance: p
                .keyword_distance
                .map_or(DEFAULT_KEYWORD_DISTANCE, Bounded::get)
                as usize,
        });
    }
    Ok(patterns)
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
        patterns: match raw.patterns {
            Some(patterns) => check_patterns(patterns, &path.key("patterns"))?,
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
