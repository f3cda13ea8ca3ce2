//! The breaker's JSON configuration: the raw serde types (what a user writes, and the source of
//! the JSON Schema), then checked into the [`BreakerSpec`] the policy runs on. Every error names
//! its field.

use breakwater_common::config::{self, Bounded, ConfigError, FieldPath, Name};
use breakwater_common::duration::{AnyDuration, Millis, PositiveDuration};
use breakwater_common::flags::FlagSet;
use breakwater_common::grpc::{
    GrpcStatusSet, NotOk, NotOkCode, MAX_GRPC_MESSAGE_BYTES, UNAVAILABLE,
};
use breakwater_common::headers::{ConfiguredHeaders, HeaderList, Reserved};
use breakwater_common::matcher::{check_methods, MatchConfig, RequestMatcher};
use breakwater_common::status::{StatusSet, StatusSpec};
#[cfg(feature = "schema")]
use schemars::JsonSchema;
use serde::Deserialize;

/// Bounds that keep shared state and per-request work small; documented in the README.
pub const MAX_BREAKERS: usize = 64;
pub const MAX_COUNT_WINDOW: u32 = 1000;
pub const MAX_TIME_BUCKETS: u32 = 60;
pub const MAX_PROBES: u32 = 1000;
pub const MAX_SPLIT_KEYS: u32 = 100_000;
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A time window's buckets are at least this long.
pub const MIN_BUCKET_MS: u64 = 10;

/// Defaults, documented in the README and in the schema.
pub const DEFAULT_MAX_KEYS: u32 = 1000;
pub const DEFAULT_STATUSES: &str = "5xx";
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
pub const DEFAULT_MINIMUM_CALLS: u32 = 20;
pub const DEFAULT_COUNT_WINDOW: u32 = 100;
pub const DEFAULT_TIME_BUCKETS: u32 = 10;
pub const DEFAULT_OPEN_MS: u64 = 5000;
/// `open.max_duration` is at least this, and at least `open.duration`.
pub const DEFAULT_MAX_OPEN_MS: u64 = 60_000;
pub const DEFAULT_BACKOFF: f64 = 2.0;
pub const DEFAULT_JITTER: f64 = 0.1;
/// The methods whose in-flight calls a key that opens releases, unless configured.
pub const DEFAULT_RELEASE_METHODS: [&str; 2] = ["GET", "HEAD"];
pub const DEFAULT_PROBES: u32 = 3;
pub const DEFAULT_MAX_WAIT_MS: u64 = 10_000;
pub const DEFAULT_REPLY_STATUS: u32 = 503;
/// The gRPC statuses counted as failures when `failure.grpc_statuses` is omitted: those that
/// say the server or the path to it failed (the ones gRPC maps to HTTP 5xx, but for
/// UNIMPLEMENTED, a client's mistake), not the caller's request.
pub const DEFAULT_GRPC_STATUSES: [&str; 5] = [
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];
/// `response.grpc.status` when omitted.
pub const DEFAULT_GRPC_REPLY_STATUS: u32 = UNAVAILABLE;

/// The failure flags counted when `failure.response_flags` is omitted: Envoy's connect
/// failures, timeouts and resets, "no healthy upstream", and protocol errors (`UPE`: among
/// others, a response cut off mid-body, which Envoy reports with the headers' 200).
pub const DEFAULT_FAILURE_FLAGS: &[&str] = &["UF", "UT", "UC", "UR", "URX", "UH", "UPE"];

/// Headers of the rejection that the breaker sets itself.
#[derive(Debug)]
pub struct ManagedHeaders;

impl Reserved for ManagedHeaders {
    const NAMES: &'static [&'static str] = &["retry-after", "x-breakwater-breaker"];
    const REASON: &'static str = "is set by the breaker itself";
}

// ---------------------------------------------------------------------------------------------
// What a user writes. Every optional key is an `Option`: a JSON `null` means the key is absent.

/// breakwater circuit-breaker configuration (the WasmPlugin's `pluginConfig`, or the Envoy Wasm
/// filter's `configuration`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(title = "breakwater circuit-breaker configuration")
)]
pub struct RawConfig {
    /// The breakers. A request belongs to the first whose `match` it satisfies; requests that
    /// match none pass untouched.
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_BREAKERS)))]
    pub breakers: Option<Vec<RawBreaker>>,
}

/// One breaker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "breaker", transform = breaker_rules))]
pub struct RawBreaker {
    /// Unique among the breakers; used in stats, shared-data keys, logs and the
    /// `x-breakwater-breaker` header.
    pub name: Name,
    /// Which requests this breaker owns; omitted: every request.
    pub r#match: Option<MatchConfig>,
    /// What gets its own state: `none` (one state), `cluster`, `authority` or `header:<name>`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "none")))]
    pub split_by: Option<SplitBy>,
    /// With `split_by`: the most states kept; further values share one overflow state.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_KEYS)))]
    pub max_keys: Option<Bounded<1, MAX_SPLIT_KEYS>>,
    /// What counts as a failure.
    pub failure: Option<RawFailure>,
    /// When the breaker opens; omitted: after 5 consecutive failures.
    pub trip: Option<RawTrip>,
    /// How long it stays open.
    pub open: Option<RawOpen>,
    /// How it probes before closing again.
    pub half_open: Option<RawHalfOpen>,
    /// The answer to rejected requests.
    pub response: Option<RawResponse>,
    /// `enforce`, `dry_run` (count and log, never reject), `forced_open` (reject every matching
    /// request) or `disabled` (pass every request, no accounting).
    #[cfg_attr(feature = "schema", schemars(extend("default" = "enforce")))]
    pub mode: Option<Mode>,
}

/// What counts as a failure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "failure", transform = failure_rules))]
pub struct RawFailure {
    /// Response statuses that are failures: codes, classes ("5xx") or ranges ("500-504").
    #[cfg_attr(feature = "schema", schemars(extend("default" = [DEFAULT_STATUSES])))]
    pub statuses: Option<StatusSet>,
    /// Envoy response flags that are failures (UF connect failure, UT timeout, …).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_FAILURE_FLAGS)))]
    pub response_flags: Option<FlagSet>,
    /// A call slower than this is a slow call (for `trip.slow_call_rate`).
    pub slow_call: Option<PositiveDuration>,
    /// A call still without response headers this long after it was let through counts as a
    /// failure at once, instead of when its route timeout ends it.
    pub hang_after: Option<PositiveDuration>,
    /// gRPC statuses that are failures for gRPC calls, by name ("UNAVAILABLE") or number; not
    /// OK. Given (not empty), they alone are enough for a breaker of gRPC calls only.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_GRPC_STATUSES)))]
    pub grpc_statuses: Option<Vec<NotOkCode<FailureStatus>>>,
}

/// `failure.grpc_statuses`: a gRPC status that means the call failed, so not OK.
pub struct FailureStatus;

impl NotOk for FailureStatus {
    const REASON: &'static str = "OK is a success, not a failure: list the statuses that mean a call failed, e.g. UNAVAILABLE or DEADLINE_EXCEEDED";
    const SCHEMA_NAME: &'static str = "grpc_failure_status";
    const DESCRIPTION: &'static str = "A gRPC status other than OK (a success is not a failure): its name (UNAVAILABLE, in any case) or number (1 to 16).";
}

/// `response.grpc.status`: the status of a rejection, so not OK.
pub struct RejectionStatus;

impl NotOk for RejectionStatus {
    const REASON: &'static str = "OK cannot reject a call (a rejection is a failure; a successful call needs a response message)";
    const SCHEMA_NAME: &'static str = "grpc_rejection_status";
    const DESCRIPTION: &'static str = "A gRPC status other than OK (a rejection is a failure): its name (UNAVAILABLE, in any case) or number (1 to 16).";
}

/// When the breaker opens: any condition given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "trip", transform = trip_rules))]
pub struct RawTrip {
    /// Open after this many failures in a row.
    pub consecutive_failures: Option<Bounded<1, { u32::MAX }>>,
    /// Open when more than this percentage of the window's calls failed.
    pub failure_rate: Option<Percent>,
    /// Open when more than this percentage of the window's calls were slow.
    pub slow_call_rate: Option<Percent>,
    /// Rates are judged only once the window holds this many calls (default: 20, or the count
    /// window's size if smaller).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MINIMUM_CALLS)))]
    pub minimum_calls: Option<Bounded<1, { u32::MAX }>>,
    /// The calls the rates are computed over; omitted: the last 100 calls.
    pub window: Option<RawWindow>,
}

/// The calls the rates are computed over.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "window", transform = window_schema))]
pub struct RawWindow {
    /// `count`: the last `size` calls; `time`: the calls of the last `size` (a duration).
    pub kind: WindowKind,
    /// A number of calls (`count`, 1 to 1000) or a duration (`time`, at least 10ms per bucket).
    pub size: WindowSize,
    /// `time` only: the window moves in this many steps.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_TIME_BUCKETS)))]
    pub buckets: Option<Bounded<1, MAX_TIME_BUCKETS>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "window_kind")
)]
pub enum WindowKind {
    Count,
    Time,
}

/// A window's size as written: a number of calls or a duration, checked against `kind` later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSize {
    Calls(u64),
    Duration(String),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for WindowSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Size;
        impl serde::de::Visitor<'_> for Size {
            type Value = WindowSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of calls or a duration")
            }
            fn visit_u64<E>(self, n: u64) -> Result<WindowSize, E> {
                Ok(WindowSize::Calls(n))
            }
            fn visit_i64<E>(self, _: i64) -> Result<WindowSize, E> {
                Ok(WindowSize::Other("a negative number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<WindowSize, E> {
                Ok(WindowSize::Other("a fraction"))
            }
            fn visit_str<E>(self, text: &str) -> Result<WindowSize, E> {
                Ok(WindowSize::Duration(text.to_string()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<WindowSize, E> {
                Ok(WindowSize::Other("a boolean"))
            }
        }
        deserializer.deserialize_any(Size)
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for WindowSize {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "window_size".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Narrowed by `kind` in the window's schema.
        schemars::json_schema!({ "type": ["integer", "string"] })
    }
}

/// How long the breaker stays open.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "open"))]
pub struct RawOpen {
    /// The first open period.
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_OPEN_MS).to_string())))]
    pub duration: Option<PositiveDuration>,
    /// The longest open period backoff reaches (default: 60s, or `duration` if longer).
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_MAX_OPEN_MS).to_string())))]
    pub max_duration: Option<AnyDuration>,
    /// Each failed probe multiplies the open period by this (1: no backoff).
    #[cfg_attr(feature = "schema", schemars(range(min = 1.0, max = 100.0), extend("default" = DEFAULT_BACKOFF)))]
    pub backoff_multiplier: Option<f64>,
    /// Each open period is randomised by ± this fraction (0.1: ±10 %), less than 1.
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0), extend("exclusiveMaximum" = 1, "default" = DEFAULT_JITTER)))]
    pub jitter: Option<f64>,
    /// When a key opens, answer at once, with the rejection, the calls it let through that
    /// have had no response headers for `release_after`, instead of letting them wait out their
    /// timeout.
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub release_in_flight: Option<bool>,
    /// How long a call must have waited without response headers to be released (default:
    /// `failure.hang_after`; without either, nothing is released).
    pub release_after: Option<PositiveDuration>,
    /// The methods of the calls that may be released (a released POST may still complete
    /// upstream; gRPC calls are POSTs).
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(regex(pattern = r"^[A-Z-]+$")), extend("default" = ["GET", "HEAD"]))
    )]
    pub release_methods: Option<Vec<String>>,
}

/// How the breaker probes before closing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "half_open"))]
pub struct RawHalfOpen {
    /// Calls let through, across all workers; all must succeed for the breaker to close.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_PROBES)))]
    pub probes: Option<Bounded<1, MAX_PROBES>>,
    /// A probe unanswered this long is written off, and its slot given to another.
    #[cfg_attr(feature = "schema", schemars(extend("default" = Millis(DEFAULT_MAX_WAIT_MS).to_string())))]
    pub max_wait: Option<PositiveDuration>,
}

/// The answer to rejected requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "response"))]
pub struct RawResponse {
    /// The rejection's status, 200 to 599.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_REPLY_STATUS)))]
    pub status: Option<Bounded<200, 599>>,
    /// Headers of the rejection (default: content-type: application/json with the default
    /// body); `retry-after` and `x-breakwater-breaker` are the breaker's own.
    pub headers: Option<ConfiguredHeaders<ManagedHeaders>>,
    /// The body (default: {"error":"circuit open","breaker":"<name>"}).
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_BODY_BYTES)))]
    pub body: Option<String>,
    /// The rejection of gRPC calls: a trailers-only response with this status and message.
    pub grpc: Option<RawGrpcResponse>,
}

/// The rejection of gRPC calls (`content-type: application/grpc…`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(JsonSchema),
    schemars(rename = "grpc_response")
)]
pub struct RawGrpcResponse {
    /// The grpc-status, by name or number; not OK.
    #[cfg_attr(feature = "schema", schemars(extend("default" = "UNAVAILABLE")))]
    pub status: Option<NotOkCode<RejectionStatus>>,
    /// The grpc-message (default: "circuit open: breaker <name>"), at most 1024 bytes.
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_GRPC_MESSAGE_BYTES)))]
    pub message: Option<String>,
}

/// A percentage greater than 0, at most 100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if value > 0.0 && value <= 100.0 {
            Ok(Percent(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "{value} is outside 0 to 100 (a percentage greater than 0; omit the key to disable)"
            )))
        }
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "percent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A percentage greater than 0, at most 100.",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100,
        })
    }
}

/// `max_keys` only with a `split_by` other than `none`; `trip.slow_call_rate` only with
/// `failure.slow_call`.
#[cfg(feature = "schema")]
fn breaker_rules(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, given};
    add_rule(
        schema,
        serde_json::json!({
            "if": given(&["max_keys"]),
            "then": { "required": ["split_by"], "properties": { "split_by": { "not": { "const": "none" } } } },
        }),
    );
    add_rule(
        schema,
        serde_json::json!({
            "if": { "required": ["trip"], "properties": { "trip": given(&["slow_call_rate"]) } },
            "then": {
                "required": ["failure"],
                "properties": { "failure": given(&["slow_call"]) },
            },
        }),
    );
}

/// Something must count as a failure; the default `grpc_statuses` alone do not (they count for
/// gRPC calls only, so such a breaker would never open for HTTP requests).
#[cfg(feature = "schema")]
fn failure_rules(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, never};
    add_rule(
        schema,
        never(serde_json::json!({
            "required": ["statuses", "response_flags"],
            "properties": {
                "statuses": { "type": "array", "maxItems": 0 },
                "response_flags": { "type": "array", "maxItems": 0 },
                "grpc_statuses": { "anyOf": [{ "type": "null" }, { "type": "array", "maxItems": 0 }] },
                "slow_call": { "type": "null" },
                "hang_after": { "type": "null" },
            },
        })),
    );
}

/// At least one trip condition.
#[cfg(feature = "schema")]
fn trip_rules(schema: &mut schemars::Schema) {
    use breakwater_common::schema::{add_rule, given};
    add_rule(
        schema,
        serde_json::json!({
            "anyOf": [
                given(&["consecutive_failures"]),
                given(&["failure_rate"]),
                given(&["slow_call_rate"]),
            ],
        }),
    );
}

/// A window's `size` is a number for `count` windows and a duration for `time` windows, and
/// `buckets` is for `time` windows only.
#[cfg(feature = "schema")]
fn window_schema(schema: &mut schemars::Schema) {
    use breakwater_common::duration::MAX_MILLIS;
    use breakwater_common::schema::duration_pattern;
    schema.insert(
        "oneOf".to_string(),
        serde_json::json!([
            {
                "properties": {
                    "kind": { "const": "count" },
                    "size": { "type": "integer", "minimum": 1, "maximum": MAX_COUNT_WINDOW },
                    "buckets": { "type": "null" },
                },
            },
            {
                "properties": {
                    "kind": { "const": "time" },
                    "size": { "type": "string", "pattern": duration_pattern(MIN_BUCKET_MS, MAX_MILLIS) },
                },
            },
        ]),
    );
}

// ---------------------------------------------------------------------------------------------
// Checked configuration.

/// How a breaker acts on its decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(JsonSchema), schemars(rename = "mode"))]
pub enum Mode {
    /// Reject while open.
    #[default]
    Enforce,
    /// Count, transition, log and expose state, but never reject.
    DryRun,
    /// Reject every matching request.
    ForcedOpen,
    /// Pass every matching request, with no accounting.
    Disabled,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry_run",
            Mode::ForcedOpen => "forced_open",
            Mode::Disabled => "disabled",
        }
    }
}

/// What gives each request its own breaker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    None,
    Cluster,
    Authority,
    /// A request header, lower-cased.
    Header(String),
}

/// `split_by` as written: `none`, `cluster`, `authority` or `header:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBy(pub Split);

impl<'de> Deserialize<'de> for SplitBy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let split = match text.as_str() {
            "none" => Split::None,
            "cluster" => Split::Cluster,
            "authority" => Split::Authority,
            other => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Split::Header(name.to_ascii_lowercase())
                }
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "\"{other}\" is not one of none, cluster, authority, header:<name>"
                    )))
                }
            },
        };
        Ok(SplitBy(split))
    }
}

#[cfg(feature = "schema")]
impl JsonSchema for SplitBy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "split_by".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(none|cluster|authority|header:[A-Za-z0-9_-]+)$",
        })
    }
}

#[derive(Debug, Clone)]
pub struct FailurePolicy {
    pub statuses: StatusSet,
    pub flags: FlagSet,
    /// For gRPC calls, the statuses that are failures.
    pub grpc_statuses: GrpcStatusSet,
    pub slow_call_ms: Option<u64>,
    /// A call still without response headers this long after it was let through counts as a
    /// failure at once, instead of when its route timeout ends it.
    pub hang_after_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    Count { size: u32 },
    Time { size_ms: u64, buckets: u32 },
}

#[derive(Debug, Clone)]
pub struct TripPolicy {
    pub consecutive_failures: Option<u32>,
    /// Percent, in (0, 100].
    pub failure_rate: Option<f64>,
    /// Percent, in (0, 100].
    pub slow_call_rate: Option<f64>,
    pub minimum_calls: u32,
    pub window: WindowSpec,
}

#[derive(Debug, Clone)]
pub struct OpenPolicy {
    pub duration_ms: u64,
    pub max_duration_ms: u64,
    pub backoff_multiplier: f64,
    pub jitter: f64,
    /// Calls without response headers this long are released when their key opens; `None`:
    /// nothing is released.
    pub release_after_ms: Option<u64>,
    /// Upper-case methods whose calls may be released.
    pub release_methods: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct HalfOpenPolicy {
    pub probes: u32,
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone)]
pub struct ReplySpec {
    pub status: u32,
    pub headers: HeaderList,
    pub body: Vec<u8>,
    /// For gRPC calls: the grpc-status and grpc-message.
    pub grpc_status: u32,
    pub grpc_message: Vec<u8>,
}

/// One validated breaker.
#[derive(Debug, Clone)]
pub struct BreakerSpec {
    pub name: String,
    pub matcher: RequestMatcher,
    pub split: Split,
    pub max_keys: u32,
    pub failure: FailurePolicy,
    pub trip: TripPolicy,
    pub open: OpenPolicy,
    pub half_open: HalfOpenPolicy,
    pub response: ReplySpec,
    pub mode: Mode,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default)]
pub struct BreakerConfig {
    pub breakers: Vec<BreakerSpec>,
}

impl BreakerConfig {
    pub fn parse(bytes: &[u8]) -> Result<BreakerConfig, ConfigError> {
        BreakerConfig::check(config::parse(bytes)?)
    }

    /// The checks across fields, on a configuration serde has read.
    pub fn check(raw: RawConfig) -> Result<BreakerConfig, ConfigError> {
        let path = FieldPath::root("breakers");
        let list = raw.breakers.unwrap_or_default();
        if list.len() > MAX_BREAKERS {
            return Err(path.error(format!("at most {MAX_BREAKERS} breakers")));
        }
        let mut breakers: Vec<BreakerSpec> = Vec::with_capacity(list.len());
        for (i, item) in list.into_iter().enumerate() {
            let spec = check_breaker(item, &path.index(i))?;
            if breakers.iter().any(|b| b.name == spec.name) {
                return Err(path
                    .index(i)
                    .key("name")
                    .error(format!("duplicate breaker name \"{}\"", spec.name)));
            }
            breakers.push(spec);
        }
        Ok(BreakerConfig { breakers })
    }
}

fn check_breaker(raw: RawBreaker, path: &FieldPath) -> Result<BreakerSpec, ConfigError> {
    let name = raw.name.0;
    let matcher = RequestMatcher::check(&path.key("match"), &raw.r#match.unwrap_or_default())?;
    let split = raw.split_by.map_or(Split::None, |s| s.0);
    if raw.max_keys.is_some() && split == Split::None {
        return Err(path
            .key("max_keys")
            .error("only applies when split_by is cluster, authority or header:<name>"));
    }
    let failure = check_failure(raw.failure, &path.key("failure"))?;
    let trip = check_trip(raw.trip, &failure, &path.key("trip"))?;
    let open = check_open(raw.open, failure.hang_after_ms, &path.key("open"))?;
    let half_open = raw.half_open.map_or(
        HalfOpenPolicy {
            probes: DEFAULT_PROBES,
            max_wait_ms: DEFAULT_MAX_WAIT_MS,
        },
        |h| HalfOpenPolicy {
            probes: h.probes.map_or(DEFAULT_PROBES, Bounded::get),
            max_wait_ms: h.max_wait.map_or(DEFAULT_MAX_WAIT_MS, |d| d.ms()),
        },
    );
    let response = check_response(raw.response, &path.key("response"), &name)?;
    Ok(BreakerSpec {
        name,
        matcher,
        split,
        max_keys: raw.max_keys.map_or(DEFAULT_MAX_KEYS, Bounded::get),
        failure,
        trip,
        open,
        half_open,
        response,
        mode: raw.mode.unwrap_or_default(),
    })
}

fn check_failure(raw: Option<RawFailure>, path: &FieldPath) -> Result<FailurePolicy, ConfigError> {
    let raw = raw.unwrap_or(RawFailure {
        statuses: None,
        response_flags: None,
        slow_call: None,
        hang_after: None,
        grpc_statuses: None,
    });
    let statuses = raw.statuses.unwrap_or_else(default_statuses);
    let flags = match raw.response_flags {
        Some(flags) => flags,
        None => FlagSet::parse(DEFAULT_FAILURE_FLAGS)
            .map_err(|e| path.key("response_flags").error(e))?,
    };
    // Only gRPC statuses given here count towards something being a failure: the default ones
    // count for gRPC calls only, and a breaker without HTTP failures could never open for HTTP
    // requests.
    let given_grpc_statuses = raw.grpc_statuses.as_deref().map(NotOkCode::set);
    if statuses.is_empty()
        && flags.0 == 0
        && given_grpc_statuses.is_none_or(|set| set.is_empty())
        && raw.slow_call.is_none()
        && raw.hang_after.is_none()
    {
        return Err(path.error(
            "nothing counts as a failure: give statuses, response_flags, slow_call or hang_after; or, for a breaker of gRPC calls only, list grpc_statuses (their default alone does not count)",
        ));
    }
    let grpc_statuses = given_grpc_statuses.unwrap_or_else(default_grpc_statuses);
    Ok(FailurePolicy {
        statuses,
        flags,
        grpc_statuses,
        slow_call_ms: raw.slow_call.map(|d| d.ms()),
        hang_after_ms: raw.hang_after.map(|d| d.ms()),
    })
}

fn default_grpc_statuses() -> GrpcStatusSet {
    let codes: Vec<u32> = DEFAULT_GRPC_STATUSES
        .iter()
        .filter_map(|name| breakwater_common::grpc::code_by_name(name))
        .collect();
    GrpcStatusSet::of(&codes)
}

fn default_statuses() -> StatusSet {
    let spec = StatusSpec::parse(DEFAULT_STATUSES).unwrap_or(StatusSpec {
        low: 500,
        high: 599,
    });
    StatusSet::from_specs(&[spec])
}

fn check_trip(
    raw: Option<RawTrip>,
    failure: &FailurePolicy,
    path: &FieldPath,
) -> Result<TripPolicy, ConfigError> {
    let default_window = WindowSpec::Count {
        size: DEFAULT_COUNT_WINDOW,
    };
    let Some(raw) = raw else {
        // No `trip` at all: open after 5 consecutive failures, like Envoy's outlier detection.
        return Ok(TripPolicy {
            consecutive_failures: Some(DEFAULT_CONSECUTIVE_FAILURES),
            failure_rate: None,
            slow_call_rate: None,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            window: default_window,
        });
    };
    if raw.slow_call_rate.is_some() && failure.slow_call_ms.is_none() {
        return Err(path
            .key("slow_call_rate")
            .error("needs failure.slow_call to say what a slow call is"));
    }
    let window = match raw.window {
        None => default_window,
        Some(w) => check_window(w, &path.key("window"))?,
    };
    // The default never exceeds a small count window; an explicit value that does is an error.
    let minimum_calls = match (raw.minimum_calls, window) {
        (Some(n), WindowSpec::Count { size }) if n.0 > size => {
            return Err(path.key("minimum_calls").error(format!(
                "{} can never be reached in a count window of {size} calls",
                n.0
            )));
        }
        (Some(n), _) => n.get(),
        (None, WindowSpec::Count { size }) => DEFAULT_MINIMUM_CALLS.min(size),
        (None, WindowSpec::Time { .. }) => DEFAULT_MINIMUM_CALLS,
    };
    if raw.consecutive_failures.is_none()
        && raw.failure_rate.is_none()
        && raw.slow_call_rate.is_none()
    {
        return Err(path.error(
            "no trip condition: give consecutive_failures, failure_rate or slow_call_rate",
        ));
    }
    Ok(TripPolicy {
        consecutive_failures: raw.consecutive_failures.map(Bounded::get),
        failure_rate: raw.failure_rate.map(|p| p.0),
        slow_call_rate: raw.slow_call_rate.map(|p| p.0),
        minimum_calls,
        window,
    })
}

fn check_window(raw: RawWindow, path: &FieldPath) -> Result<WindowSpec, ConfigError> {
    let size_path = path.key("size");
    match raw.kind {
        WindowKind::Count => {
            if raw.buckets.is_some() {
                return Err(path
                    .key("buckets")
                    .error("only applies to \"kind\": \"time\""));
            }
            match raw.size {
                WindowSize::Calls(n) if (1..=u64::from(MAX_COUNT_WINDOW)).contains(&n) => {
                    Ok(WindowSpec::Count {
                        size: u32::try_from(n).unwrap_or(MAX_COUNT_WINDOW),
                    })
                }
                WindowSize::Calls(n) => {
                    Err(size_path.error(format!("{n} is outside 1 to {MAX_COUNT_WINDOW}")))
                }
                _ => Err(size_path.error(format!(
                    "a count window's size is a number of calls from 1 to {MAX_COUNT_WINDOW}"
                ))),
            }
        }
        WindowKind::Time => {
            let WindowSize::Duration(text) = raw.size else {
                return Err(size_path.error("a time window's size is a duration such as \"10s\""));
            };
            let size = breakwater_common::duration::parse(&text).map_err(|e| size_path.error(e))?;
            let buckets = raw.buckets.map_or(DEFAULT_TIME_BUCKETS, Bounded::get);
            if size.as_u64() < u64::from(buckets) * MIN_BUCKET_MS {
                return Err(size_path.error(format!(
                    "{size} is too short for {buckets} buckets (at least {MIN_BUCKET_MS}ms per bucket)"
                )));
            }
            Ok(WindowSpec::Time {
                size_ms: size.as_u64(),
                buckets,
            })
        }
    }
}

fn check_open(
    raw: Option<RawOpen>,
    hang_after_ms: Option<u64>,
    path: &FieldPath,
) -> Result<OpenPolicy, ConfigError> {
    let raw = raw.unwrap_or(RawOpen {
        duration: None,
        max_duration: None,
        backoff_multiplier: None,
        jitter: None,
        release_in_flight: None,
        release_after: None,
        release_methods: None,
    });
    let release = raw.release_in_flight.unwrap_or(true);
    if !release {
        for (key, given) in [
            ("release_after", raw.release_after.is_some()),
            ("release_methods", raw.release_methods.is_some()),
        ] {
            if given {
                return Err(path
                    .key(key)
                    .error("only applies when release_in_flight is true"));
            }
        }
    }
    let release_after_ms = release
        .then(|| raw.release_after.map(|d| d.ms()).or(hang_after_ms))
        .flatten();
    let release_methods = match &raw.release_methods {
        Some(list) => check_methods(&path.key("release_methods"), list)?,
        None => DEFAULT_RELEASE_METHODS
            .iter()
            .map(|m| m.as_bytes().to_vec())
            .collect(),
    };
    let duration_ms = raw.duration.map_or(DEFAULT_OPEN_MS, |d| d.ms());
    let max_duration_ms = raw
        .max_duration
        .map_or(duration_ms.max(DEFAULT_MAX_OPEN_MS), |d| d.ms());
    if max_duration_ms < duration_ms {
        return Err(path.key("max_duration").error(format!(
            "{} is shorter than open.duration ({})",
            Millis(max_duration_ms),
            Millis(duration_ms)
        )));
    }
    let backoff_multiplier = match raw.backoff_multiplier {
        None => DEFAULT_BACKOFF,
        Some(m) if (1.0..=100.0).contains(&m) => m,
        Some(m) => {
            return Err(path
                .key("backoff_multiplier")
                .error(format!("{m} is outside 1 to 100 (1 disables backoff)")))
        }
    };
    let jitter = match raw.jitter {
        None => DEFAULT_JITTER,
        Some(j) if (0.0..1.0).contains(&j) => j,
        Some(j) => {
            return Err(path.key("jitter").error(format!(
                "{j} is outside [0, 1) (a fraction less than 1: 0.1 is ±10 %)"
            )))
        }
    };
    Ok(OpenPolicy {
        duration_ms,
        max_duration_ms,
        backoff_multiplier,
        jitter,
        release_after_ms,
        release_methods,
    })
}

/// The rejection's body unless one is configured.
#[derive(serde::Serialize)]
struct DefaultBody<'a> {
    error: &'static str,
    breaker: &'a str,
}

fn check_response(
    raw: Option<RawResponse>,
    path: &FieldPath,
    breaker: &str,
) -> Result<ReplySpec, ConfigError> {
    let (status, headers, body, grpc) = match raw {
        None => (None, None, None, None),
        Some(r) => (r.status, r.headers, r.body, r.grpc),
    };
    let (grpc_status, grpc_message) = grpc.map_or((None, None), |g| (g.status, g.message));
    let grpc_status = grpc_status.map_or(DEFAULT_GRPC_REPLY_STATUS, |c| c.get());
    let grpc_message = grpc_message.unwrap_or_else(|| format!("circuit open: breaker {breaker}"));
    if grpc_message.len() > MAX_GRPC_MESSAGE_BYTES {
        return Err(path
            .key("grpc")
            .key("message")
            .error(format!("longer than {MAX_GRPC_MESSAGE_BYTES} bytes")));
    }
    if body.as_ref().is_some_and(|b| b.len() > MAX_BODY_BYTES) {
        return Err(path
            .key("body")
            .error(format!("longer than {MAX_BODY_BYTES} bytes")));
    }
    let default_body = body.is_none();
    let body = body.unwrap_or_else(|| {
        serde_json::to_string(&DefaultBody {
            error: "circuit open",
            breaker,
        })
        .unwrap_or_default()
    });
    let headers = match headers {
        Some(headers) => headers.into_list(),
        None if default_body => HeaderList(vec![(
            "content-type".to_string(),
            "application/json".to_string(),
        )]),
        None => HeaderList::default(),
    };
    Ok(ReplySpec {
        status: status.map_or(DEFAULT_REPLY_STATUS, Bounded::get),
        headers,
        body: body.into_bytes(),
        grpc_status,
        grpc_message: grpc_message.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    const EXAMPLE: &str = r#"{
      "breakers": [
        {
          "name": "recommendations",
          "match": { "path_prefix": "/recommendations", "methods": ["GET"] },
          "split_by": "none",
          "failure": { "statuses": ["5xx"], "response_flags": ["UF", "UT", "URX", "UC"], "slow_call": "2s" },
          "trip": {
            "consecutive_failures": 5,
            "failure_rate": 50, "slow_call_rate": 100, "minimum_calls": 20,
            "window": { "kind": "count", "size": 100 }
          },
          "open": { "duration": "5s", "max_duration": "60s", "backoff_multiplier": 2.0, "jitter": 0.1 },
          "half_open": { "probes": 3, "max_wait": "10s" },
          "response": { "status": 503, "headers": { "content-type": "application/json" }, "body": "{\"error\":\"recommendations unavailable\"}" },
          "mode": "enforce"
        }
      ]
    }"#;

    fn error_field(json: &str) -> String {
        BreakerConfig::parse(json.as_bytes()).unwrap_err().field
    }

    fn one(fields: &str) -> String {
        format!(r#"{{"breakers":[{{"name":"b",{fields}}}]}}"#)
    }

    #[test]
    fn the_documented_example_parses_exactly() {
        let cfg = BreakerConfig::parse(EXAMPLE.as_bytes()).unwrap();
        let b = &cfg.breakers[0];
        assert_eq!(b.name, "recommendations");
        assert_eq!(b.split, Split::None);
        assert!(b.failure.statuses.contains(503));
        assert!(!b.failure.statuses.contains(404));
        assert_eq!(b.failure.flags.0, 0x20 | 0x4 | 0x8000 | 0x40);
        assert_eq!(b.failure.slow_call_ms, Some(2000));
        assert_eq!(b.trip.consecutive_failures, Some(5));
        assert_eq!(b.trip.failure_rate, Some(50.0));
        assert_eq!(b.trip.slow_call_rate, Some(100.0));
        assert_eq!(b.trip.minimum_calls, 20);
        assert_eq!(b.trip.window, WindowSpec::Count { size: 100 });
        assert_eq!(b.open.duration_ms, 5000);
        assert_eq!(b.open.max_duration_ms, 60_000);
        assert_eq!(b.half_open.probes, 3);
        assert_eq!(b.half_open.max_wait_ms, 10_000);
        assert_eq!(b.response.status, 503);
        assert_eq!(
            b.response.body,
            br#"{"error":"recommendations unavailable"}"#
        );
        assert_eq!(b.mode, Mode::Enforce);
    }

    #[test]
    fn defaults() {
        let cfg = BreakerConfig::parse(br#"{"breakers":[{"name":"all"}]}"#).unwrap();
        let b = &cfg.breakers[0];
        assert!(b.matcher.is_catch_all());
        assert_eq!(b.trip.consecutive_failures, Some(5));
        assert_eq!(b.trip.failure_rate, None);
        assert!(b.failure.statuses.contains(500) && b.failure.statuses.contains(599));
        assert_eq!(
            FlagSet::describe(b.failure.flags.0),
            "UH,UT,UR,UF,UC,URX,UPE"
        );
        assert_eq!(b.open.duration_ms, 5000);
        assert_eq!(b.open.max_duration_ms, 60_000);
        assert_eq!(b.open.backoff_multiplier, 2.0);
        assert_eq!(b.open.jitter, 0.1);
        assert_eq!(b.half_open.probes, 3);
        assert_eq!(b.response.status, 503);
        assert_eq!(
            b.response.body,
            br#"{"error":"circuit open","breaker":"all"}"#
        );
        assert_eq!(
            b.response.headers.0,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(b.max_keys, DEFAULT_MAX_KEYS);
        assert_eq!(b.mode, Mode::Enforce);
    }

    #[test]
    fn empty_configuration_has_no_breakers() {
        assert!(BreakerConfig::parse(b"").unwrap().breakers.is_empty());
        assert!(BreakerConfig::parse(b"{}").unwrap().breakers.is_empty());
    }

    #[test]
    fn split_by_forms() {
        let parse = |s: &str| {
            BreakerConfig::parse(one(&format!(r#""split_by":"{s}""#)).as_bytes())
                .map(|c| c.breakers[0].split.clone())
        };
        assert_eq!(parse("none").unwrap(), Split::None);
        assert_eq!(parse("cluster").unwrap(), Split::Cluster);
        assert_eq!(parse("authority").unwrap(), Split::Authority);
        assert_eq!(
            parse("header:X-Tenant").unwrap(),
            Split::Header("x-tenant".into())
        );
        for bad in ["header:", "header::path", "host", "header:a b"] {
            assert_eq!(
                parse(bad).unwrap_err().field,
                "breakers[0].split_by",
                "{bad}"
            );
        }
    }

    #[test]
    fn default_minimum_calls_fits_a_small_window() {
        let json = one(r#""trip":{"consecutive_failures":3,"window":{"kind":"count","size":10}}"#);
        let cfg = BreakerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(cfg.breakers[0].trip.minimum_calls, 10);
    }

    #[test]
    fn time_windows() {
        let cfg = BreakerConfig::parse(
            one(r#""trip":{"failure_rate":50,"window":{"kind":"time","size":"10s"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            cfg.breakers[0].trip.window,
            WindowSpec::Time {
                size_ms: 10_000,
                buckets: 10
            }
        );
    }

    #[test]
    fn grpc_failures_and_rejections_are_configured_by_status_name_or_number() {
        let parsed = |fields: &str| {
            BreakerConfig::parse(format!(r#"{{"breakers":[{{"name":"g",{fields}}}]}}"#).as_bytes())
        };
        let b = parsed(r#""trip":{"consecutive_failures":1}"#)
            .unwrap()
            .breakers
            .remove(0);
        assert_eq!(
            b.failure.grpc_statuses.names(),
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        assert_eq!(b.response.grpc_status, 14);
        assert_eq!(b.response.grpc_message, b"circuit open: breaker g");
        let b = parsed(r#""failure":{"grpc_statuses":["resource_exhausted", 14]},"response":{"grpc":{"status":"ABORTED","message":"later"}}"#)
            .unwrap()
            .breakers
            .remove(0);
        assert_eq!(
            b.failure.grpc_statuses.names(),
            ["RESOURCE_EXHAUSTED", "UNAVAILABLE"]
        );
        assert_eq!(
            (b.response.grpc_status, b.response.grpc_message.as_slice()),
            (10, &b"later"[..])
        );
        for (fields, field, reason) in [
            (
                r#""response":{"grpc":{"status":"OK"}}"#,
                "breakers[0].response.grpc.status",
                "OK cannot reject a call",
            ),
            (
                r#""response":{"grpc":{"status":17}}"#,
                "breakers[0].response.grpc.status",
                "17 is not a gRPC status",
            ),
            (
                r#""failure":{"grpc_statuses":["UNAVAILABLE","NOPE"]}"#,
                "breakers[0].failure.grpc_statuses[1]",
                "\"NOPE\" is not a gRPC status",
            ),
            (
                &format!(
                    r#""response":{{"grpc":{{"message":"{}"}}}}"#,
                    "x".repeat(1025)
                ),
                "breakers[0].response.grpc.message",
                "longer than 1024 bytes",
            ),
            (
                r#""failure":{"grpc_statuses":["UNAVAILABLE","OK"]}"#,
                "breakers[0].failure.grpc_statuses[1]",
                "OK is a success, not a failure",
            ),
            (
                r#""failure":{"grpc_statuses":[14,4," 0 "]}"#,
                "breakers[0].failure.grpc_statuses[2]",
                "OK is a success, not a failure",
            ),
            (
                r#""failure":{"grpc_statuses":[0]}"#,
                "breakers[0].failure.grpc_statuses[0]",
                "OK is a success, not a failure",
            ),
            (
                r#""response":{"grpc":{"status":" ok "}}"#,
                "breakers[0].response.grpc.status",
                "OK cannot reject a call",
            ),
            (
                r#""failure":{"statuses":[],"response_flags":[]}"#,
                "breakers[0].failure",
                "nothing counts as a failure",
            ),
            (
                r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":null}"#,
                "breakers[0].failure",
                "nothing counts as a failure",
            ),
            (
                r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":[]}"#,
                "breakers[0].failure",
                "nothing counts as a failure",
            ),
        ] {
            let error = parsed(fields).unwrap_err();
            assert_eq!(error.field, field, "{fields}");
            assert!(
                error.reason.starts_with(reason),
                "{fields}: {}",
                error.reason
            );
        }
        // A breaker of gRPC calls only: no HTTP failure, the gRPC statuses given.
        let b = parsed(
            r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":["UNAVAILABLE"]}"#,
        )
        .unwrap()
        .breakers
        .remove(0);
        assert!(b.failure.statuses.is_empty() && b.failure.flags.0 == 0);
        assert_eq!(b.failure.grpc_statuses.names(), ["UNAVAILABLE"]);
    }

    #[test]
    fn every_error_names_its_field() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"breakers":[{"name":"a","nope":1}]}"#,
                "breakers[0].nope",
            ),
            (r#"{"breakerz":[]}"#, "breakerz"),
            (
                r#"{"breakers":[{"name":"a"},{"name":"a"}]}"#,
                "breakers[1].name",
            ),
            (r#"{"breakers":[{"name":"a b"}]}"#, "breakers[0].name"),
            (r#"{"breakers":[{}]}"#, "breakers[0].name"),
            (r#"{"breakers":{}}"#, "breakers"),
            (
                r#"{"breakers":[{"name":"a","failure":[]}]}"#,
                "breakers[0].failure",
            ),
            (
                &one(r#""trip":{"failure_rate":150}"#),
                "breakers[0].trip.failure_rate",
            ),
            (
                &one(r#""trip":{"failure_rate":0}"#),
                "breakers[0].trip.failure_rate",
            ),
            (
                &one(r#""trip":{"failure_rate":-1}"#),
                "breakers[0].trip.failure_rate",
            ),
            (
                &one(r#""trip":{"slow_call_rate":50}"#),
                "breakers[0].trip.slow_call_rate",
            ),
            (
                &one(r#""failure":{"hang_after":"0s"}"#),
                "breakers[0].failure.hang_after",
            ),
            (
                &one(r#""failure":{"statuses":[],"response_flags":[]}"#),
                "breakers[0].failure",
            ),
            (
                &one(r#""failure":{"grpc_statuses":["UNAVAILABLE","OK"]}"#),
                "breakers[0].failure.grpc_statuses[1]",
            ),
            (
                &one(r#""trip":{"consecutive_failures":0}"#),
                "breakers[0].trip.consecutive_failures",
            ),
            (&one(r#""trip":{}"#), "breakers[0].trip"),
            (
                &one(r#""trip":{"failure_rate":5,"minimum_calls":0}"#),
                "breakers[0].trip.minimum_calls",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"minimum_calls":200}"#),
                "breakers[0].trip.minimum_calls",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"count","size":0}}"#),
                "breakers[0].trip.window.size",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"count","size":"10s"}}"#),
                "breakers[0].trip.window.size",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"time","size":100}}"#),
                "breakers[0].trip.window.size",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"10x"}}"#),
                "breakers[0].trip.window.size",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"50ms"}}"#),
                "breakers[0].trip.window.size",
            ),
            (
                &one(
                    r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"10s","buckets":0}}"#,
                ),
                "breakers[0].trip.window.buckets",
            ),
            (
                &one(
                    r#""trip":{"failure_rate":5,"window":{"kind":"count","size":10,"buckets":2}}"#,
                ),
                "breakers[0].trip.window.buckets",
            ),
            (
                &one(r#""trip":{"failure_rate":5,"window":{"kind":"sliding","size":10}}"#),
                "breakers[0].trip.window.kind",
            ),
            (
                &one(r#""failure":{"statuses":["5xy"]}"#),
                "breakers[0].failure.statuses[0]",
            ),
            (
                &one(r#""failure":{"statuses":[700]}"#),
                "breakers[0].failure.statuses[0]",
            ),
            (
                &one(r#""failure":{"response_flags":["UF","BOGUS"]}"#),
                "breakers[0].failure.response_flags[1]",
            ),
            (
                &one(r#""failure":{"slow_call":"2 s"}"#),
                "breakers[0].failure.slow_call",
            ),
            (
                &one(r#""failure":{"slow_call":"0s"}"#),
                "breakers[0].failure.slow_call",
            ),
            (
                &one(r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":[]}"#),
                "breakers[0].failure",
            ),
            (
                &one(r#""open":{"duration":"0s"}"#),
                "breakers[0].open.duration",
            ),
            (
                &one(r#""open":{"duration":"5"}"#),
                "breakers[0].open.duration",
            ),
            (
                &one(r#""open":{"duration":"10s","max_duration":"5s"}"#),
                "breakers[0].open.max_duration",
            ),
            (
                &one(r#""open":{"backoff_multiplier":0.5}"#),
                "breakers[0].open.backoff_multiplier",
            ),
            (&one(r#""open":{"jitter":1.0}"#), "breakers[0].open.jitter"),
            (
                &one(r#""half_open":{"probes":0}"#),
                "breakers[0].half_open.probes",
            ),
            (
                &one(r#""half_open":{"max_wait":"0ms"}"#),
                "breakers[0].half_open.max_wait",
            ),
            (
                &one(r#""response":{"status":42}"#),
                "breakers[0].response.status",
            ),
            (
                &one(r#""response":{"headers":{"retry-after":"1"}}"#),
                "breakers[0].response.headers.retry-after",
            ),
            (
                &one(r#""response":{"headers":{"x-a":"b\r\nc"}}"#),
                "breakers[0].response.headers.x-a",
            ),
            (&one(r#""mode":"off""#), "breakers[0].mode"),
            (&one(r#""max_keys":10"#), "breakers[0].max_keys"),
            (
                &one(r#""split_by":"cluster","max_keys":0"#),
                "breakers[0].max_keys",
            ),
            (
                &one(r#""match":{"path_prefix":"x"}"#),
                "breakers[0].match.path_prefix",
            ),
            (
                &one(r#""match":{"prefix":"/x"}"#),
                "breakers[0].match.prefix",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(&error_field(json), field, "{json}");
        }
    }

    #[test]
    fn errors_explain_themselves() {
        let err =
            BreakerConfig::parse(one(r#""trip":{"failure_rate":150}"#).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "breakers[0].trip.failure_rate: 150 is outside 0 to 100 (a percentage greater than 0; omit the key to disable)"
        );
        let err = BreakerConfig::parse(br#"{"breakers":[{"name":"a","nope":1}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "breakers[0].nope: unknown field `nope`, expected one of `name`, `match`, `split_by`, `max_keys`, `failure`, `trip`, `open`, `half_open`, `response`, `mode`"
        );
    }

    #[test]
    fn a_misspelled_key_is_reported_as_itself() {
        let err = BreakerConfig::parse(
            br#"{"breakers":[{"name":"a","trip":{"consecutive_failure":3}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "breakers[0].trip.consecutive_failure");
        assert!(err.reason.starts_with("unknown field"), "{err}");
    }

    #[test]
    fn header_names_differing_in_case_are_duplicates() {
        let err =
            BreakerConfig::parse(one(r#""response":{"headers":{"x-a":"1","X-A":"2"}}"#).as_bytes())
                .unwrap_err();
        assert_eq!(err.field, "breakers[0].response.headers.X-A");
    }

    #[test]
    fn null_means_absent() {
        let cfg = BreakerConfig::parse(
            one(r#""match":null,"trip":null,"open":{"duration":null},"mode":null"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(cfg.breakers[0].open.duration_ms, DEFAULT_OPEN_MS);
        assert!(BreakerConfig::parse(br#"{"breakers":null}"#)
            .unwrap()
            .breakers
            .is_empty());
    }

    #[test]
    fn too_many_breakers() {
        let many: Vec<String> = (0..=MAX_BREAKERS)
            .map(|i| format!(r#"{{"name":"b{i}"}}"#))
            .collect();
        let json = format!(r#"{{"breakers":[{}]}}"#, many.join(","));
        assert_eq!(error_field(&json), "breakers");
    }
}
