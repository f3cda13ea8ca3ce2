//! The fallback filter's JSON configuration: the raw serde types (what a user writes, and the
//! source of the JSON Schema), then checked into the types the engine runs on. Every error
//! names its field.

use breakwater_common::config::{self, Bounded, ConfigError, FieldPath, Name};
#[cfg(feature = "schema")]
use breakwater_common::duration::Millis;
use breakwater_common::duration::{AnyDuration, DurationIn, PositiveDuration};
use breakwater_common::flags::FlagSet;
use breakwater_common::grpc::{GrpcStatusSet, NotOk, NotOkCode, MAX_GRPC_MESSAGE_BYTES};
use breakwater_common::headers::{
    ConfiguredHeaders, HeaderList, Reserved, MAX_HEADERS, MAX_HEADER_VALUE_BYTES,
};
use breakwater_common::matcher::{MatchConfig, RequestMatcher};
use breakwater_common::status::{StatusSet, StatusSpec};
#[cfg(feature = "schema")]
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Bounds that keep configuration, shared data and replies small; documented in the README.
pub const MAX_RULES: usize = 64;
pub const MAX_SOURCES: usize = 8;
pub const MAX_VARY: usize = 8;
pub const MAX_STATIC_BODY: usize = 64 * 1024;
/// Each lookup and store copies the index (24 bytes per entry) under Envoy's shared-data lock.
pub const MAX_ENTRIES: u32 = 4096;
pub const MIN_CACHE_BYTES: u32 = 1024;
pub const MAX_CACHE_BYTES: u32 = 256 * 1024 * 1024;
pub const MAX_BODY_BYTES: u32 = 1024 * 1024;
pub const MAX_SERVICE_TIMEOUT_MS: u64 = 60_000;

/// Defaults, documented in the README and in the schema.
pub const DEFAULT_TRIGGER_STATUSES: &str = "5xx";
pub const DEFAULT_KEPT_STATUS: u16 = 200;
pub const DEFAULT_STATIC_STATUS: u32 = 200;
pub const DEFAULT_SERVICE_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_MAX_ENTRIES: u32 = 1000;
pub const DEFAULT_MAX_CACHE_BYTES: u32 = 8 * 1024 * 1024;
pub const DEFAULT_MAX_BODY_BYTES: u32 = 64 * 1024;
pub const DEFAULT_MIN_STORE_INTERVAL_MS: u64 = 1000;

/// Headers the filter sets itself on every fallback response.
pub const RESERVED_HEADERS: &[&str] = &["x-breakwater-fallback", "age", "content-length"];

/// [`RESERVED_HEADERS`] for configured static headers.
#[derive(Debug)]
pub struct FallbackHeaders;

impl Reserved for FallbackHeaders {
    const NAMES: &'static [&'static str] = RESERVED_HEADERS;
    const REASON: &'static str = "is set by the fallback filter itself";
}

/// Metadata names a `grpc` source may not set, and why: the status itself, the HTTP/2 framing
/// of a gRPC response (Envoy writes it), and breakwater's own markers.
pub const RESERVED_GRPC_METADATA: &[(&str, &str)] = &[
    (
        "grpc-status",
        "is the source's status: set it with grpc.status",
    ),
    (
        "grpc-message",
        "is the source's message: set it with grpc.message",
    ),
    (
        "grpc-status-details-bin",
        "carries a status of its own (google.rpc.Status), which could contradict grpc.status",
    ),
    (
        "content-type",
        "is part of the gRPC response's framing, which Envoy writes",
    ),
    (
        "te",
        "is part of the gRPC response's framing, which Envoy writes",
    ),
    (
        "content-length",
        "is part of the gRPC response's framing, which Envoy writes",
    ),
    (
        "x-breakwater-fallback",
        "is set by the fallback filter itself (x-breakwater-fallback: grpc)",
    ),
    (
        "x-breakwater-breaker",
        "marks the circuit breaker's own rejections",
    ),
];

// ---------------------------------------------------------------------------------------------
// What a user writes. Every optional key is an `Option`: a JSON `null` means the key is absent.

/// breakwater fallback configuration (the WasmPlugin's `pluginConfig`, or the Envoy Wasm
/// filter's `configuration`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(title = "breakwater fallback configuration")
)]
pub struct RawConfig {
    /// The rules. A request belongs to the first whose `match` it satisfies.
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_RULES)))]
    pub rules: Option<Vec<RawRule>>,
    /// Bounds of the shared last-good-response cache (the `stale` sources).
    pub cache: Option<RawCache>,
}

/// One rule: which requests, what triggers the fallback, and the sources tried in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "rule", transform = rule_rules)
)]
pub struct RawRule {
    /// Unique among the rules; used in stats, shared-data keys and filter state.
    pub name: Name,
    /// Which requests this rule owns; omitted: every request.
    pub r#match: Option<MatchConfig>,
    /// What makes a response fail over; omitted: a 5xx or a breaker rejection.
    pub on: Option<RawTriggers>,
    /// The sources, tried in order until one answers; at most one `stale`. HTTP requests get
    /// only static, stale and service; gRPC calls only grpc.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = MAX_SOURCES), extend("contains" = {"required": ["stale"]}, "minContains" = 0, "maxContains" = 1))
    )]
    pub serve: Vec<RawSource>,
}

/// What makes a response fail over to the sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "triggers", transform = trigger_rules))]
pub struct RawTriggers {
    /// Response statuses that trigger: codes, classes ("5xx") or ranges ("500-504").
    #[cfg_attr(feature = "schema", schemars(extend("default" = [DEFAULT_TRIGGER_STATUSES])))]
    pub statuses: Option<StatusSet>,
    /// Envoy response flags that trigger (UF connect failure, UT timeout, …).
    #[cfg_attr(feature = "schema", schemars(extend("default" = [] as [&str; 0])))]
    pub response_flags: Option<FlagSet>,
    /// A rejection by breakwater's circuit breaker triggers.
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub breaker_open: Option<bool>,
    /// gRPC statuses that trigger for gRPC calls, read from the headers of a trailers-only
    /// response, by name ("UNAVAILABLE") or number; not OK. Only in a rule with a grpc source.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [] as [&str; 0])))]
    pub grpc_statuses: Option<Vec<NotOkCode<TriggerStatus>>>,
}

/// One source: an object with exactly one of `static`, `stale`, `service` or `grpc`.
#[derive(Debug)]
pub enum RawSource {
    Static(RawStatic),
    Stale(RawStale),
    Service(RawService),
    Grpc(RawGrpc),
}

const SOURCE_KINDS: &str = "give exactly one of static, stale, service, grpc";

impl<'de> Deserialize<'de> for RawSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneSource;
        impl<'de> Visitor<'de> for OneSource {
            type Value = RawSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with one of static, stale, service, grpc")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSource, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(SOURCE_KINDS));
                };
                let source = match kind.as_str() {
                    "static" => RawSource::Static(map.next_value()?),
                    "stale" => RawSource::Stale(map.next_value()?),
                    "service" => RawSource::Service(map.next_value()?),
                    "grpc" => RawSource::Grpc(map.next_value()?),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown source `{other}`, {SOURCE_KINDS}"
                        )))
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(SOURCE_KINDS));
                }
                Ok(source)
            }
        }
        deserializer.deserialize_map(OneSource)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for RawSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "source".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = |kind: &str, schema: schemars::Schema| {
            serde_json::json!({
                "type": "object",
                "properties": { kind: schema },
                "required": [kind],
                "additionalProperties": false,
            })
        };
        breakwater_common::schema::to_schema(serde_json::json!({
            "description": "A source: exactly one of static, stale, service (HTTP requests) or grpc (gRPC calls).",
            "oneOf": [
                one("static", generator.subschema_for::<RawStatic>()),
                one("stale", generator.subschema_for::<RawStale>()),
                one("service", generator.subschema_for::<RawService>()),
                one("grpc", generator.subschema_for::<RawGrpc>()),
            ],
        }))
    }
}

/// A fixed answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "static", transform = breakwater_common::schema::never_together::<BodyKeys>)
)]
pub struct RawStatic {
    /// The answer's status, 200 to 599.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_STATIC_STATUS)))]
    pub status: Option<Bounded<200, 599>>,
    /// The answer's headers; `x-breakwater-fallback`, `age` and `content-length` are the
    /// filter's own.
    pub headers: Option<ConfiguredHeaders<FallbackHeaders>>,
    /// The body as text (or give body_base64).
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_STATIC_BODY)))]
    pub body: Option<String>,
    /// The body in base64, for binary bodies (or give body).
    pub body_base64: Option<Base64>,
}

/// `body` and `body_base64` exclude each other.
#[cfg(feature = "schema")]
pub struct BodyKeys;

#[cfg(feature = "schema")]
impl breakwater_common::schema::Exclusive for BodyKeys {
    const KEYS: &'static [&'static str] = &["body", "body_base64"];
}

/// Something must trigger the fallback.
#[cfg(feature = "schema")]
fn trigger_rules(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, never};
    add_rule(
        schema,
        never(serde_json::json!({
            "required": ["statuses", "breaker_open"],
            "properties": {
                "statuses": { "type": "array", "maxItems": 0 },
                "response_flags": { "anyOf": [{ "type": "null" }, { "type": "array", "maxItems": 0 }] },
                "breaker_open": { "const": false },
                "grpc_statuses": { "anyOf": [{ "type": "null" }, { "type": "array", "maxItems": 0 }] },
            },
        })),
    );
}

/// `on.grpc_statuses` only in a rule with a `grpc` source (only that source answers gRPC
/// calls).
#[cfg(feature = "schema")]
fn rule_rules(schema: &mut schemars::Schema) {
    use breakwater_common::schema::add_rule;
    add_rule(
        schema,
        serde_json::json!({
            "if": {
                "type": "object",
                "required": ["on"],
                "properties": {
                    "on": {
                        "type": "object",
                        "required": ["grpc_statuses"],
                        "properties": { "grpc_statuses": { "type": "array", "minItems": 1 } },
                    },
                },
            },
            "then": {
                "properties": { "serve": { "contains": { "type": "object", "required": ["grpc"] } } },
            },
        }),
    );
}

/// A gRPC answer: a trailers-only local reply with this status, message and metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "grpc"))]
pub struct RawGrpc {
    /// The reply's grpc-status, by name ("UNAVAILABLE") or number; not OK (a successful call
    /// needs a response message, which a local reply cannot carry).
    pub status: NotOkCode<ReplyStatus>,
    /// The reply's grpc-message; omitted: none.
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_GRPC_MESSAGE_BYTES)))]
    pub message: Option<String>,
    /// Metadata of the reply (names lower-cased; values printable ASCII, or base64 for names
    /// ending in -bin); grpc-status, grpc-message, grpc-status-details-bin, content-type, te,
    /// content-length, x-breakwater-fallback and x-breakwater-breaker are not configurable.
    pub metadata: Option<GrpcMetadata>,
}

/// A `grpc` source's status: any gRPC status but OK.
pub struct ReplyStatus;

impl NotOk for ReplyStatus {
    const REASON: &'static str =
        "OK cannot be a fallback: a successful call needs a response message, and a local \
         reply cannot carry one (it is trailers-only); choose a status the client treats as \
         degraded, e.g. UNAVAILABLE or FAILED_PRECONDITION";
    const SCHEMA_NAME: &'static str = "grpc_reply_status";
    const DESCRIPTION: &'static str = "A gRPC status other than OK (a local reply cannot carry the message a successful call needs): its name (UNAVAILABLE, in any case) or number (1 to 16).";
}

/// An `on.grpc_statuses` element: any gRPC status but OK.
pub struct TriggerStatus;

impl NotOk for TriggerStatus {
    const REASON: &'static str = "OK is a successful call: the fallback replaces failures only";
    const SCHEMA_NAME: &'static str = "grpc_failure_status";
    const DESCRIPTION: &'static str = "A gRPC status other than OK (a success is not a failure): its name (UNAVAILABLE, in any case) or number (1 to 16).";
}

/// The metadata of a `grpc` source: `(name, value)` pairs, names lower-cased, in the
/// configured order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcMetadata(pub Vec<(String, String)>);

/// A byte of a gRPC metadata name (the gRPC spec's `0-9 a-z _ - .`, upper case lower-cased).
fn is_metadata_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Checks one metadata entry; `seen` are the entries before it. Returns the lower-cased name.
fn check_metadata(name: &str, value: &str, seen: &[(String, String)]) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(is_metadata_name_byte) {
        return Err(
            "gRPC metadata names are letters, digits, '-', '_' and '.'; pseudo-headers are not allowed"
                .to_string(),
        );
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, why)) = RESERVED_GRPC_METADATA.iter().find(|(n, _)| *n == lower) {
        return Err((*why).to_string());
    }
    if seen.iter().any(|(n, _)| *n == lower) {
        return Err(format!(
            "\"{lower}\" is given twice (metadata names are case-insensitive)"
        ));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "metadata values are limited to {MAX_HEADER_VALUE_BYTES} bytes"
        ));
    }
    if lower.ends_with("-bin") {
        let base64 = !value.bytes().any(|b| b.is_ascii_whitespace())
            && breakwater_common::base64::decode(value).is_ok();
        if !base64 {
            return Err(
                "binary metadata (a name ending in -bin) travels base64-encoded: give the value in standard base64, without spaces"
                    .to_string(),
            );
        }
    } else if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(
            "gRPC metadata values are printable ASCII (space to ~); for other bytes use a name ending in -bin and a base64 value"
                .to_string(),
        );
    }
    Ok(lower)
}

/// Reads one metadata value knowing its name, so that an error is reported at the key.
struct MetadataValue<'a> {
    name: &'a str,
    seen: &'a [(String, String)],
}

impl<'de> de::DeserializeSeed<'de> for MetadataValue<'_> {
    type Value = (String, String);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let value = String::deserialize(deserializer)?;
        let name = check_metadata(self.name, &value, self.seen).map_err(de::Error::custom)?;
        Ok((name, value))
    }
}

impl<'de> Deserialize<'de> for GrpcMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = GrpcMetadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of metadata names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GrpcMetadata, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let entry = map.next_value_seed(MetadataValue {
                        name: &name,
                        seen: &out,
                    })?;
                    out.push(entry);
                    if out.len() > MAX_HEADERS {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_HEADERS} metadata entries"
                        )));
                    }
                }
                Ok(GrpcMetadata(out))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for GrpcMetadata {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "grpc_metadata".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        use breakwater_common::schema::{caseless, to_schema, BASE64};
        let reserved: Vec<&str> = RESERVED_GRPC_METADATA.iter().map(|(n, _)| *n).collect();
        let value = |pattern: String| serde_json::json!({ "type": "string", "maxLength": MAX_HEADER_VALUE_BYTES, "pattern": pattern });
        to_schema(serde_json::json!({
            "type": "object",
            "maxProperties": MAX_HEADERS,
            "propertyNames": {
                "pattern": "^[A-Za-z0-9_.-]+$",
                "not": { "pattern": caseless(&reserved) },
            },
            "patternProperties": {
                "-[Bb][Ii][Nn]$": value(BASE64.replace("[\\t\\n\\f\\r ]*", "")),
            },
            "additionalProperties": value("^[ -~]*$".to_string()),
        }))
    }
}

/// Binary data written in standard base64 (ASCII whitespace allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        breakwater_common::base64::decode(&text)
            .map(Base64)
            .map_err(de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Base64 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "base64".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": breakwater_common::schema::BASE64,
        })
    }
}

/// The last good response for the request's URL (stale-if-error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "stale"))]
pub struct RawStale {
    /// How old a kept response may be and still be served.
    pub max_age: PositiveDuration,
    /// Statuses worth keeping: complete responses only (not 1xx, 206 or 304).
    #[cfg_attr(feature = "schema", schemars(extend("default" = [DEFAULT_KEPT_STATUS])))]
    pub statuses: Option<KeptStatuses>,
    /// Request headers whose values are part of the cache key.
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_VARY)))]
    pub vary: Option<Vec<VaryHeader>>,
    /// Also keep responses to requests with `Authorization` or `Cookie`, and responses that set
    /// cookies (they belong to one user).
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub allow_credentials: Option<bool>,
}

/// A status list of complete responses: not 1xx, 206 (partial) or 304 (not modified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptStatuses(pub StatusSet);

/// A status that cannot be kept, and why.
fn unkeepable(code: u16) -> Option<&'static str> {
    match code {
        100..=199 => Some("informational"),
        206 => Some("partial content"),
        304 => Some("not modified"),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for KeptStatuses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let statuses = StatusSet::deserialize(deserializer)?;
        if statuses.is_empty() {
            return Err(de::Error::custom("list at least one status worth keeping"));
        }
        if let Some((code, why)) = (100..=599u16)
            .filter(|c| statuses.contains(u32::from(*c)))
            .find_map(|c| unkeepable(c).map(|why| (c, why)))
        {
            let message = if (100..200).contains(&code) {
                "1xx (informational) responses cannot be kept".to_string()
            } else {
                format!(
                    "{code} ({why}) is not a complete response and cannot be served in place of one"
                )
            };
            return Err(de::Error::custom(message));
        }
        Ok(KeptStatuses(statuses))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for KeptStatuses {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "kept_statuses".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        breakwater_common::schema::to_schema(serde_json::json!({
            "type": "array",
            "minItems": 1,
            "items": breakwater_common::schema::status_item(
                |code| unkeepable(code).is_none(),
                "A status code (200, \"200\"), class (\"4xx\", \"40x\") or range (\"200-203\"): complete responses only, not 1xx, 206 or 304.",
            ),
        }))
    }
}

/// A request header name in a cache key, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryHeader(pub String);

impl<'de> Deserialize<'de> for VaryHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(de::Error::custom(format!(
                "\"{name}\" is not a header name"
            )));
        }
        Ok(VaryHeader(name.to_ascii_lowercase()))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for VaryHeader {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "vary_header".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[A-Za-z0-9_-]+$" })
    }
}

/// The fallback service's timeout: longer than 0, at most 60s.
pub type ServiceTimeout = DurationIn<1, MAX_SERVICE_TIMEOUT_MS>;

/// An answer fetched from another Envoy cluster (a 2xx is served).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "service"))]
pub struct RawService {
    /// The Envoy cluster (under Istio: outbound|<port>||<fqdn>).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub cluster: String,
    /// Path and query of the request.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^/[^\u0000-\u001F\u007F ]*$"))
    )]
    pub path: String,
    /// The request's :authority (default: the cluster's name).
    pub authority: Option<String>,
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(u64::from(DEFAULT_SERVICE_TIMEOUT_MS)).to_string())))]
    pub timeout: Option<ServiceTimeout>,
}

/// Bounds of the shared last-good-response cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "cache"))]
pub struct RawCache {
    /// Most responses kept, across all rules.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_ENTRIES)))]
    pub max_entries: Option<Bounded<1, MAX_ENTRIES>>,
    /// Most bytes kept (bodies and headers), across all rules.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_CACHE_BYTES)))]
    pub max_bytes: Option<Bounded<MIN_CACHE_BYTES, MAX_CACHE_BYTES>>,
    /// Responses with a larger body are not kept; at most max_bytes.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_BODY_BYTES)))]
    pub max_body_bytes: Option<Bounded<1, MAX_BODY_BYTES>>,
    /// Each worker stores a given URL at most once per this interval.
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_MIN_STORE_INTERVAL_MS).to_string())))]
    pub min_store_interval: Option<AnyDuration>,
}

// ---------------------------------------------------------------------------------------------
// Checked configuration.

/// What makes a response fail over to the sources.
#[derive(Debug, Clone)]
pub struct Triggers {
    pub statuses: StatusSet,
    pub flags: FlagSet,
    /// A rejection by breakwater's circuit breaker (its filter state says `rejected`).
    pub breaker_open: bool,
    /// For gRPC calls: the `grpc-status` of a trailers-only response.
    pub grpc_statuses: GrpcStatusSet,
}

#[derive(Debug, Clone)]
pub struct StaticSource {
    pub status: u32,
    pub headers: HeaderList,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct StaleSource {
    pub max_age_ms: u64,
    /// Statuses worth keeping as the last good response.
    pub statuses: StatusSet,
    /// Request headers (lower case) whose values are part of the cache key.
    pub vary: Vec<String>,
    /// Store responses to requests with `Authorization` or `Cookie`, and responses setting
    /// cookies. Off by default: such responses belong to one user.
    pub allow_credentials: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceSource {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u32,
}

/// A gRPC call's answer: a trailers-only local reply.
#[derive(Debug, Clone)]
pub struct GrpcSource {
    /// Never OK.
    pub status: u32,
    /// Sent as the reply's body, which Envoy turns into `grpc-message`; empty: none.
    pub message: Vec<u8>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum Source {
    Static(StaticSource),
    Stale(StaleSource),
    Service(ServiceSource),
    Grpc(GrpcSource),
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static(_) => "static",
            Source::Stale(_) => "stale",
            Source::Service(_) => "service",
            Source::Grpc(_) => "grpc",
        }
    }

    /// Whether the source answers gRPC calls (`grpc`) rather than HTTP requests (the others):
    /// a rule never answers a gRPC call with an HTTP body, nor an HTTP request with a gRPC
    /// status.
    pub fn for_grpc(&self) -> bool {
        matches!(self, Source::Grpc(_))
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub matcher: RequestMatcher,
    pub on: Triggers,
    pub sources: Vec<Source>,
}

impl Rule {
    /// Whether some source answers gRPC calls (`grpc: true`) or HTTP requests (`false`).
    pub fn answers(&self, grpc: bool) -> bool {
        self.sources.iter().any(|s| s.for_grpc() == grpc)
    }

    /// The rule's stale source, if it has one (only then is anything cached for it).
    pub fn stale(&self) -> Option<&StaleSource> {
        self.sources.iter().find_map(|s| match s {
            Source::Stale(stale) => Some(stale),
            _ => None,
        })
    }
}

/// Bounds of the shared last-good-response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: u32,
    pub max_bytes: u64,
    pub max_body_bytes: u32,
    /// Each worker stores a given key at most once per this interval.
    pub min_store_interval_ms: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: u64::from(DEFAULT_MAX_CACHE_BYTES),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            min_store_interval_ms: DEFAULT_MIN_STORE_INTERVAL_MS,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FallbackConfig {
    pub rules: Vec<Rule>,
    pub cache: CacheLimits,
}

impl FallbackConfig {
    pub fn parse(bytes: &[u8]) -> Result<FallbackConfig, ConfigError> {
        FallbackConfig::check(config::parse(bytes)?)
    }

    /// The checks across fields, on a configuration serde has read.
    pub fn check(raw: RawConfig) -> Result<FallbackConfig, ConfigError> {
        let path = FieldPath::root("rules");
        let list = raw.rules.unwrap_or_default();
        if list.len() > MAX_RULES {
            return Err(path.error(format!("at most {MAX_RULES} rules")));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(list.len());
        for (i, item) in list.into_iter().enumerate() {
            let rule = check_rule(item, &path.index(i))?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(path
                    .index(i)
                    .key("name")
                    .error(format!("duplicate rule name \"{}\"", rule.name)));
            }
            rules.push(rule);
        }
        let cache = match raw.cache {
            Some(cache) => check_cache(cache, &FieldPath::root("cache"))?,
            None => CacheLimits::default(),
        };
        Ok(FallbackConfig { rules, cache })
    }
}

fn check_rule(raw: RawRule, path: &FieldPath) -> Result<Rule, ConfigError> {
    let matcher = RequestMatcher::check(&path.key("match"), &raw.r#match.unwrap_or_default())?;
    let on = check_triggers(raw.on, &path.key("on"))?;
    let sources = check_sources(raw.serve, &path.key("serve"))?;
    if !on.grpc_statuses.is_empty() && !sources.iter().any(Source::for_grpc) {
        return Err(path.key("on").key("grpc_statuses").error(
            "only a grpc source answers gRPC calls, and this rule has none: add {\"grpc\": {\"status\": …}} to serve, or remove grpc_statuses",
        ));
    }
    Ok(Rule {
        name: raw.name.0,
        matcher,
        on,
        sources,
    })
}

fn status_set(text: &str) -> StatusSet {
    StatusSet::from_specs(&StatusSpec::parse(text).map_or_else(|_| Vec::new(), |s| vec![s]))
}

fn check_triggers(raw: Option<RawTriggers>, path: &FieldPath) -> Result<Triggers, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Triggers {
            statuses: status_set(DEFAULT_TRIGGER_STATUSES),
            flags: FlagSet::default(),
            breaker_open: true,
            grpc_statuses: GrpcStatusSet::default(),
        });
    };
    let statuses = raw
        .statuses
        .unwrap_or_else(|| status_set(DEFAULT_TRIGGER_STATUSES));
    let flags = raw.response_flags.unwrap_or_default();
    let breaker_open = raw.breaker_open.unwrap_or(true);
    let grpc_statuses = NotOkCode::set(&raw.grpc_statuses.unwrap_or_default());
    if statuses.is_empty() && flags.0 == 0 && !breaker_open && grpc_statuses.is_empty() {
        return Err(path.error(
            "nothing triggers the fallback: give statuses, response_flags, breaker_open or grpc_statuses",
        ));
    }
    Ok(Triggers {
        statuses,
        flags,
        breaker_open,
        grpc_statuses,
    })
}

fn check_sources(raw: Vec<RawSource>, path: &FieldPath) -> Result<Vec<Source>, ConfigError> {
    if raw.is_empty() || raw.len() > MAX_SOURCES {
        return Err(path.error(format!("list 1 to {MAX_SOURCES} sources, tried in order")));
    }
    let mut sources: Vec<Source> = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        let source = match item {
            RawSource::Static(s) => Source::Static(check_static(s, &path.index(i).key("static"))?),
            RawSource::Stale(s) => {
                if sources.iter().any(|s| matches!(s, Source::Stale(_))) {
                    return Err(path.index(i).error("a rule has at most one stale source"));
                }
                Source::Stale(check_stale(s))
            }
            RawSource::Service(s) => {
                Source::Service(check_service(s, &path.index(i).key("service"))?)
            }
            RawSource::Grpc(g) => Source::Grpc(check_grpc(g, &path.index(i).key("grpc"))?),
        };
        sources.push(source);
    }
    Ok(sources)
}

fn check_static(raw: RawStatic, path: &FieldPath) -> Result<StaticSource, ConfigError> {
    let body = match (raw.body, raw.body_base64) {
        (Some(_), Some(_)) => {
            return Err(path
                .key("body_base64")
                .error("use either body or body_base64, not both"))
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(bytes)) => bytes.0,
        (None, None) => Vec::new(),
    };
    if body.len() > MAX_STATIC_BODY {
        return Err(path
            .key("body")
            .error(format!("longer than {MAX_STATIC_BODY} bytes")));
    }
    Ok(StaticSource {
        status: raw.status.map_or(DEFAULT_STATIC_STATUS, Bounded::get),
        headers: raw
            .headers
            .map(ConfiguredHeaders::into_list)
            .unwrap_or_default(),
        body,
    })
}

fn check_grpc(raw: RawGrpc, path: &FieldPath) -> Result<GrpcSource, ConfigError> {
    let message = raw.message.unwrap_or_default();
    if message.len() > MAX_GRPC_MESSAGE_BYTES {
        return Err(path
            .key("message")
            .error(format!("longer than {MAX_GRPC_MESSAGE_BYTES} bytes")));
    }
    Ok(GrpcSource {
        status: raw.status.get(),
        message: message.into_bytes(),
        metadata: raw.metadata.unwrap_or_default().0,
    })
}

fn check_stale(raw: RawStale) -> StaleSource {
    let default_kept = StatusSpec {
        low: DEFAULT_KEPT_STATUS,
        high: DEFAULT_KEPT_STATUS,
    };
    StaleSource {
        max_age_ms: raw.max_age.ms(),
        statuses: raw
            .statuses
            .map_or_else(|| StatusSet::from_specs(&[default_kept]), |k| k.0),
        vary: raw
            .vary
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.0)
            .collect(),
        allow_credentials: raw.allow_credentials.unwrap_or(false),
    }
}

fn check_service(raw: RawService, path: &FieldPath) -> Result<ServiceSource, ConfigError> {
    if raw.cluster.is_empty() {
        return Err(path.key("cluster").error("must name an Envoy cluster"));
    }
    let p = &raw.path;
    if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(path
            .key("path")
            .error(format!("\"{p}\" must start with '/' and contain no spaces")));
    }
    Ok(ServiceSource {
        authority: raw.authority.unwrap_or_else(|| raw.cluster.clone()),
        cluster: raw.cluster,
        path: raw.path,
        // ≤ 60 000 ms, so it fits.
        timeout_ms: raw.timeout.map_or(DEFAULT_SERVICE_TIMEOUT_MS, |t| {
            u32::try_from(t.ms()).unwrap_or(DEFAULT_SERVICE_TIMEOUT_MS)
        }),
    })
}

fn check_cache(raw: RawCache, path: &FieldPath) -> Result<CacheLimits, ConfigError> {
    let defaults = CacheLimits::default();
    let max_bytes = raw
        .max_bytes
        .map_or(defaults.max_bytes, |n| u64::from(n.get()));
    let max_body_bytes = raw
        .max_body_bytes
        .map_or(defaults.max_body_bytes, Bounded::get);
    if u64::from(max_body_bytes) > max_bytes {
        return Err(path
            .key("max_body_bytes")
            .error("must not exceed cache.max_bytes"));
    }
    Ok(CacheLimits {
        max_entries: raw.max_entries.map_or(defaults.max_entries, Bounded::get),
        max_bytes,
        max_body_bytes,
        min_store_interval_ms: raw
            .min_store_interval
            .map_or(defaults.min_store_interval_ms, |d| d.ms()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    const EXAMPLE: &str = r#"{
      "rules": [
        {
          "name": "popular-items",
          "match": { "path_prefix": "/recommendations", "methods": ["GET"] },
          "on": { "statuses": ["5xx"], "response_flags": ["UF", "UT"], "breaker_open": true },
          "serve": [
            { "stale": { "max_age": "10m" } },
            { "service": { "cluster": "popular-cache", "path": "/popular.json", "timeout": "300ms" } },
            { "static": { "status": 200, "headers": { "content-type": "application/json" }, "body": "[\"bestseller-1\",\"bestseller-2\"]" } }
          ]
        }
      ],
      "cache": { "max_entries": 1000, "max_bytes": 8388608, "max_body_bytes": 65536 }
    }"#;

    fn error_field(json: &str) -> String {
        FallbackConfig::parse(json.as_bytes()).unwrap_err().field
    }

    fn rule(fields: &str) -> String {
        format!(r#"{{"rules":[{{"name":"r",{fields}}}]}}"#)
    }

    #[test]
    fn the_documented_example_parses_exactly() {
        let cfg = FallbackConfig::parse(EXAMPLE.as_bytes()).unwrap();
        let r = &cfg.rules[0];
        assert_eq!(r.name, "popular-items");
        assert!(r.on.statuses.contains(503));
        assert_eq!(r.on.flags.0, 0x20 | 0x4);
        assert!(r.on.breaker_open);
        let kinds: Vec<&str> = r.sources.iter().map(Source::kind).collect();
        assert_eq!(kinds, ["stale", "service", "static"]);
        let Source::Stale(stale) = &r.sources[0] else {
            panic!()
        };
        assert_eq!(stale.max_age_ms, 600_000);
        assert!(stale.statuses.contains(200) && !stale.statuses.contains(201));
        assert!(!stale.allow_credentials);
        let Source::Service(service) = &r.sources[1] else {
            panic!()
        };
        assert_eq!(
            (
                service.cluster.as_str(),
                service.path.as_str(),
                service.authority.as_str(),
                service.timeout_ms
            ),
            ("popular-cache", "/popular.json", "popular-cache", 300)
        );
        let Source::Static(s) = &r.sources[2] else {
            panic!()
        };
        assert_eq!(s.status, 200);
        assert_eq!(s.body, br#"["bestseller-1","bestseller-2"]"#);
        assert_eq!(
            cfg.cache,
            CacheLimits {
                min_store_interval_ms: 1000,
                ..CacheLimits::default()
            }
        );
        assert!(r.stale().is_some());
    }

    #[test]
    fn defaults() {
        let cfg = FallbackConfig::parse(rule(r#""serve":[{"static":{}}]"#).as_bytes()).unwrap();
        let r = &cfg.rules[0];
        assert!(
            r.on.statuses.contains(500)
                && r.on.statuses.contains(599)
                && !r.on.statuses.contains(404)
        );
        assert!(r.on.breaker_open);
        assert_eq!(r.on.flags.0, 0);
        let Source::Static(s) = &r.sources[0] else {
            panic!()
        };
        assert_eq!((s.status, s.body.len()), (200, 0));
        assert!(r.stale().is_none());
        assert!(FallbackConfig::parse(b"").unwrap().rules.is_empty());
    }

    #[test]
    fn binary_static_bodies() {
        let cfg = FallbackConfig::parse(
            rule(r#""serve":[{"static":{"body_base64":"AP8="}}]"#).as_bytes(),
        )
        .unwrap();
        let Source::Static(s) = &cfg.rules[0].sources[0] else {
            panic!()
        };
        assert_eq!(s.body, vec![0x00, 0xFF]);
    }

    #[test]
    fn sources_take_exactly_one_kind() {
        let err = |serve: &str| {
            FallbackConfig::parse(rule(&format!(r#""serve":[{serve}]"#)).as_bytes()).unwrap_err()
        };
        assert_eq!(
            err(r#"{"static":{},"stale":{"max_age":"1s"}}"#).to_string(),
            "rules[0].serve[0]: give exactly one of static, stale, service, grpc"
        );
        assert_eq!(
            err(r#"{"grpc":{"status":14},"static":{}}"#).to_string(),
            "rules[0].serve[0]: give exactly one of static, stale, service, grpc"
        );
        assert_eq!(
            err(r#"{"stat1c":{}}"#).to_string(),
            "rules[0].serve[0]: unknown source `stat1c`, give exactly one of static, stale, service, grpc"
        );
        assert_eq!(err("{}").field, "rules[0].serve[0]");
        assert_eq!(err(r#"{"static":null}"#).field, "rules[0].serve[0].static");
    }

    #[test]
    fn misspelled_keys_and_case_duplicates_are_named() {
        assert_eq!(
            error_field(&rule(
                r#""on":{"breaker_opn":true},"serve":[{"static":{}}]"#
            )),
            "rules[0].on.breaker_opn"
        );
        assert_eq!(
            error_field(&rule(
                r#""serve":[{"static":{"headers":{"x-a":"1","X-A":"2"}}}]"#
            )),
            "rules[0].serve[0].static.headers.X-A"
        );
    }

    #[test]
    fn null_means_absent() {
        let cfg = FallbackConfig::parse(
            rule(r#""match":null,"on":{"statuses":null},"serve":[{"static":{"body":null}}]"#)
                .as_bytes(),
        )
        .unwrap();
        assert!(cfg.rules[0].on.statuses.contains(503));
        assert!(FallbackConfig::parse(br#"{"rules":null,"cache":null}"#).is_ok());
    }

    #[test]
    fn every_error_names_its_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"rulez":[]}"#, "rulez"),
            (r#"{"rules":[{"name":"r"}]}"#, "rules[0].serve"),
            (&rule(r#""serve":[]"#), "rules[0].serve"),
            (&rule(r#""serve":[{}]"#), "rules[0].serve[0]"),
            (
                &rule(r#""serve":[{"static":{},"stale":{"max_age":"1s"}}]"#),
                "rules[0].serve[0]",
            ),
            (&rule(r#""serve":[{"stat1c":{}}]"#), "rules[0].serve[0]"),
            (
                &rule(r#""serve":[{"static":{"status":99}}]"#),
                "rules[0].serve[0].static.status",
            ),
            (
                &rule(r#""serve":[{"static":{"body":"a","body_base64":"YQ=="}}]"#),
                "rules[0].serve[0].static.body_base64",
            ),
            (
                &rule(r#""serve":[{"static":{"body_base64":"!!"}}]"#),
                "rules[0].serve[0].static.body_base64",
            ),
            (
                &rule(r#""serve":[{"static":{"headers":{"x-breakwater-fallback":"x"}}}]"#),
                "rules[0].serve[0].static.headers.x-breakwater-fallback",
            ),
            (
                &rule(r#""serve":[{"static":{"bdy":"x"}}]"#),
                "rules[0].serve[0].static.bdy",
            ),
            (
                &rule(r#""serve":[{"stale":{}}]"#),
                "rules[0].serve[0].stale.max_age",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"0s"}}]"#),
                "rules[0].serve[0].stale.max_age",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"10 m"}}]"#),
                "rules[0].serve[0].stale.max_age",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","statuses":[]}}]"#),
                "rules[0].serve[0].stale.statuses",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","vary":["a b"]}}]"#),
                "rules[0].serve[0].stale.vary[0]",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","allow_credentials":"yes"}}]"#),
                "rules[0].serve[0].stale.allow_credentials",
            ),
            (
                &rule(r#""serve":[{"service":{"path":"/x"}}]"#),
                "rules[0].serve[0].service.cluster",
            ),
            (
                &rule(r#""serve":[{"service":{"cluster":"c","path":"x"}}]"#),
                "rules[0].serve[0].service.path",
            ),
            (
                &rule(r#""serve":[{"service":{"cluster":"c","path":"/x","timeout":"2m"}}]"#),
                "rules[0].serve[0].service.timeout",
            ),
            (
                &rule(r#""on":{"statuses":["5xy"]},"serve":[{"static":{}}]"#),
                "rules[0].on.statuses[0]",
            ),
            (
                &rule(r#""on":{"response_flags":["XX"]},"serve":[{"static":{}}]"#),
                "rules[0].on.response_flags[0]",
            ),
            (
                &rule(r#""on":{"statuses":[],"breaker_open":false},"serve":[{"static":{}}]"#),
                "rules[0].on",
            ),
            (
                &rule(r#""match":{"path_prefix":"x"},"serve":[{"static":{}}]"#),
                "rules[0].match.path_prefix",
            ),
            (
                r#"{"rules":[{"name":"a","serve":[{"static":{}}]},{"name":"a","serve":[{"static":{}}]}]}"#,
                "rules[1].name",
            ),
            (r#"{"cache":{"max_entries":0}}"#, "cache.max_entries"),
            (r#"{"cache":{"max_entries":5000}}"#, "cache.max_entries"),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m"}},{"stale":{"max_age":"2m"}}]"#),
                "rules[0].serve[1]",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","statuses":["2xx"]}}]"#),
                "rules[0].serve[0].stale.statuses",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","statuses":[200,304]}}]"#),
                "rules[0].serve[0].stale.statuses",
            ),
            (
                &rule(r#""serve":[{"stale":{"max_age":"1m","statuses":["1xx"]}}]"#),
                "rules[0].serve[0].stale.statuses",
            ),
            (r#"{"cache":{"max_bytes":10}}"#, "cache.max_bytes"),
            (
                r#"{"cache":{"max_bytes":2048,"max_body_bytes":4096}}"#,
                "cache.max_body_bytes",
            ),
            (
                r#"{"cache":{"min_store_interval":"soon"}}"#,
                "cache.min_store_interval",
            ),
            (r#"{"cache":{"size":1}}"#, "cache.size"),
            (
                &rule(r#""serve":[{"grpc":{}}]"#),
                "rules[0].serve[0].grpc.status",
            ),
            (
                &rule(r#""serve":[{"grpc":{"status":"NOPE"}}]"#),
                "rules[0].serve[0].grpc.status",
            ),
            (
                &rule(r#""serve":[{"grpc":{"status":17}}]"#),
                "rules[0].serve[0].grpc.status",
            ),
            (
                &rule(r#""serve":[{"grpc":{"status":14,"mesage":"x"}}]"#),
                "rules[0].serve[0].grpc.mesage",
            ),
            (
                &rule(r#""serve":[{"grpc":{"status":14,"metadata":{"x-a":"1","X-A":"2"}}}]"#),
                "rules[0].serve[0].grpc.metadata.X-A",
            ),
            (
                &rule(
                    r#""on":{"grpc_statuses":["UNAVAILABLE","NOPE"]},"serve":[{"grpc":{"status":14}}]"#,
                ),
                "rules[0].on.grpc_statuses[1]",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(&error_field(json), field, "{json}");
        }
    }

    fn error(json: &str) -> ConfigError {
        FallbackConfig::parse(json.as_bytes()).unwrap_err()
    }

    const GRPC_EXAMPLE: &str = r#"{"rules":[{
        "name": "catalog",
        "match": { "path_prefix": "/shop.Catalog/" },
        "on": { "grpc_statuses": ["UNAVAILABLE", 4], "response_flags": ["UF"] },
        "serve": [
          { "grpc": { "status": "FAILED_PRECONDITION", "message": "catalog degraded: showing no recommendations",
                      "metadata": { "X-Degraded": "catalog", "retry-info-bin": "CAI=" } } },
          { "static": { "status": 503, "body": "catalog unavailable" } }
        ]
    }]}"#;

    #[test]
    fn grpc_sources_and_triggers_parse() {
        let cfg = FallbackConfig::parse(GRPC_EXAMPLE.as_bytes()).unwrap();
        let r = &cfg.rules[0];
        assert_eq!(
            r.on.grpc_statuses.names(),
            ["DEADLINE_EXCEEDED", "UNAVAILABLE"]
        );
        assert!(
            r.on.breaker_open && r.on.statuses.contains(503),
            "defaults kept"
        );
        let Source::Grpc(g) = &r.sources[0] else {
            panic!()
        };
        assert_eq!(g.status, 9);
        assert_eq!(g.message, b"catalog degraded: showing no recommendations");
        assert_eq!(
            g.metadata,
            vec![
                ("x-degraded".to_string(), "catalog".to_string()),
                ("retry-info-bin".to_string(), "CAI=".to_string()),
            ]
        );
        assert!(r.answers(true) && r.answers(false));
        // Statuses by name in any case, or by number; message and metadata optional.
        for (status, code) in [(r#""unavailable""#, 14), ("16", 16), (r#"" 1 ""#, 1)] {
            let cfg = FallbackConfig::parse(
                rule(&format!(r#""serve":[{{"grpc":{{"status":{status}}}}}]"#)).as_bytes(),
            )
            .unwrap();
            let Source::Grpc(g) = &cfg.rules[0].sources[0] else {
                panic!()
            };
            assert_eq!((g.status, g.message.len(), g.metadata.len()), (code, 0, 0));
            assert!(cfg.rules[0].answers(true) && !cfg.rules[0].answers(false));
            assert!(cfg.rules[0].on.grpc_statuses.is_empty());
        }
        // grpc_statuses alone is something to trigger on.
        assert!(FallbackConfig::parse(
            rule(r#""on":{"statuses":[],"breaker_open":false,"grpc_statuses":[14]},"serve":[{"grpc":{"status":14}}]"#)
                .as_bytes()
        )
        .is_ok());
        // An empty grpc_statuses needs no grpc source.
        assert!(FallbackConfig::parse(
            rule(r#""on":{"grpc_statuses":[]},"serve":[{"static":{}}]"#).as_bytes()
        )
        .is_ok());
    }

    #[test]
    fn sources_after_a_grpc_source_are_kept_as_after_a_static_one() {
        // A static source always answers HTTP requests, and nothing after it is refused;
        // likewise after a grpc source, which always answers gRPC calls. HTTP sources after
        // a grpc source are tried for HTTP requests.
        for serve in [
            r#"{"grpc":{"status":14}},{"static":{}}"#,
            r#"{"static":{}},{"grpc":{"status":14}}"#,
            r#"{"grpc":{"status":14}},{"grpc":{"status":9}}"#,
            r#"{"static":{}},{"static":{}}"#,
        ] {
            let cfg = FallbackConfig::parse(rule(&format!(r#""serve":[{serve}]"#)).as_bytes());
            assert!(cfg.is_ok(), "{serve}");
        }
    }

    #[test]
    fn grpc_statuses_need_a_grpc_source() {
        let e = error(&rule(
            r#""on":{"grpc_statuses":["UNAVAILABLE"]},"serve":[{"stale":{"max_age":"1m"}},{"static":{}}]"#,
        ));
        assert_eq!(e.field, "rules[0].on.grpc_statuses");
        assert!(
            e.reason
                .starts_with("only a grpc source answers gRPC calls, and this rule has none"),
            "{e}"
        );
    }

    #[test]
    fn ok_is_refused_as_a_reply_and_as_a_trigger() {
        for ok in [r#""OK""#, r#""ok""#, "0", r#"" 0 ""#, r#""00""#] {
            let e = error(&rule(&format!(r#""serve":[{{"grpc":{{"status":{ok}}}}}]"#)));
            assert_eq!(e.field, "rules[0].serve[0].grpc.status", "{ok}");
            assert!(
                e.reason.starts_with(
                    "OK cannot be a fallback: a successful call needs a response message, and a local reply cannot carry one"
                ),
                "{e}"
            );
            let e = error(&rule(&format!(
                r#""on":{{"grpc_statuses":[14,{ok}]}},"serve":[{{"grpc":{{"status":14}}}}]"#
            )));
            assert_eq!(e.field, "rules[0].on.grpc_statuses[1]", "{ok}");
            assert_eq!(
                e.reason,
                "OK is a successful call: the fallback replaces failures only"
            );
        }
    }

    #[test]
    fn grpc_metadata_is_checked_at_its_key() {
        let metadata = |entries: &str| {
            error(&rule(&format!(
                r#""serve":[{{"grpc":{{"status":14,"metadata":{{{entries}}}}}}}]"#
            )))
        };
        let at = "rules[0].serve[0].grpc.metadata";
        for (name, _) in RESERVED_GRPC_METADATA {
            for spelled in [name.to_string(), name.to_ascii_uppercase()] {
                let e = metadata(&format!(r#""{spelled}":"x""#));
                assert_eq!(e.field, format!("{at}.{spelled}"));
            }
        }
        assert_eq!(
            metadata(r#""grpc-status":"0""#).reason,
            "is the source's status: set it with grpc.status"
        );
        assert_eq!(
            metadata(r#""Content-Type":"application/json""#).reason,
            "is part of the gRPC response's framing, which Envoy writes"
        );
        assert_eq!(
            metadata(r#""x-breakwater-fallback":"x""#).reason,
            "is set by the fallback filter itself (x-breakwater-fallback: grpc)"
        );
        for (entries, key, reason) in [
            (
                r#"":status":"200""#,
                ":status",
                "pseudo-headers are not allowed",
            ),
            (r#""a b":"x""#, "a b", "metadata names are letters"),
            (r#""x~y":"x""#, "x~y", "metadata names are letters"),
            (r#""":"x""#, "", "metadata names are letters"),
            (r#""x-a":"caf\u00e9""#, "x-a", "printable ASCII"),
            (r#""x-a":"a\tb""#, "x-a", "printable ASCII"),
            (r#""x-a":"a\r\nb""#, "x-a", "printable ASCII"),
            (r#""x-a":1"#, "x-a", "invalid type"),
            (r#""trace-bin":"not base64!""#, "trace-bin", "base64"),
            (r#""Trace-BIN":"Zm9v YmFy""#, "Trace-BIN", "base64"),
            (r#""trace-bin":"Zh==""#, "trace-bin", "base64"),
            (r#""x-a":"1","X-A":"2""#, "X-A", "given twice"),
        ] {
            let e = metadata(entries);
            assert_eq!(e.field, format!("{at}.{key}"), "{entries}");
            assert!(e.reason.contains(reason), "{entries}: {e}");
        }
        let long = format!(r#""x-a":"{}""#, "v".repeat(MAX_HEADER_VALUE_BYTES + 1));
        assert!(metadata(&long).reason.contains("limited to 4096 bytes"));
        let many: Vec<String> = (0..=MAX_HEADERS)
            .map(|i| format!(r#""x-{i}":"v""#))
            .collect();
        let e = metadata(&many.join(","));
        assert_eq!(e.reason, format!("at most {MAX_HEADERS} metadata entries"));
        // Fine: binary metadata in base64 (padded or not), printable values, empty values,
        // grpc-retry-pushback-ms (a fallback may tell the client when to retry).
        assert!(FallbackConfig::parse(
            rule(r#""serve":[{"grpc":{"status":14,"metadata":{"a-bin":"AP8=","b-bin":"AP8","c":"","grpc-retry-pushback-ms":"500","x.y_z":" ~!"}}}]"#)
                .as_bytes()
        )
        .is_ok());
    }

    #[test]
    fn grpc_messages_are_bounded() {
        let message = |text: &str| {
            FallbackConfig::parse(
                rule(&format!(
                    r#""serve":[{{"grpc":{{"status":14,"message":"{text}"}}}}]"#
                ))
                .as_bytes(),
            )
        };
        assert!(message(&"m".repeat(MAX_GRPC_MESSAGE_BYTES)).is_ok());
        assert!(message("é ünïcode and % signs: Envoy percent-encodes them").is_ok());
        let e = message(&"m".repeat(MAX_GRPC_MESSAGE_BYTES + 1)).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("rules[0].serve[0].grpc.message", "longer than 1024 bytes")
        );
        // Counted in bytes, not characters.
        assert!(message(&"é".repeat(MAX_GRPC_MESSAGE_BYTES / 2 + 1)).is_err());
    }

    #[test]
    fn nothing_to_trigger_names_grpc_statuses_too() {
        let e = error(&rule(
            r#""on":{"statuses":[],"breaker_open":false,"grpc_statuses":[]},"serve":[{"grpc":{"status":14}}]"#,
        ));
        assert_eq!(e.field, "rules[0].on");
        assert_eq!(
            e.reason,
            "nothing triggers the fallback: give statuses, response_flags, breaker_open or grpc_statuses"
        );
    }
}
