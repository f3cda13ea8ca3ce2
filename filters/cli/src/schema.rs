//! `breakwater schema FILTER`: the JSON Schema (draft 2020-12) of a filter's configuration, for
//! editors to check a WasmPlugin `pluginConfig` (or an Envoy `configuration`) as it is typed.
//! The shipped copies are `filters/<filter>/config.schema.json` (`make schemas`).
//!
//! The filters read their configuration by hand (no serde, for module size), so the schemas are
//! written here, one per filter, from the same constants; the tests below hold them to the
//! parsers: every schema property is a key the parser reads and every key the parser reads is a
//! schema property, the `default`s are what the parser assumes, the patterns for durations,
//! statuses and base64 accept exactly what `breakwater_common` accepts, and invalid configs are
//! refused by both.
//!
//! Like the parsers, the schemas take a JSON `null` for an optional key as the key being absent.
//! Where the schema is looser than the parser (it never is stricter, except where noted):
//! - unique `breakers[].name` / `rules[].name`: not expressible (no uniqueness of one field);
//! - `trip.minimum_calls` at most a count window's `size`, `open.max_duration` at least
//!   `open.duration`, `cache.max_body_bytes` at most `cache.max_bytes`, a time window's `size`
//!   at least 10ms per bucket (the schema asks for 10ms), the upstream headers not naming
//!   `correlation.header`: comparisons between two values are not expressible;
//! - status ranges: `"504-500"` (start after end) and, for `stale.statuses`, a range that covers
//!   a status that cannot be kept (`"200-210"` covers 206) pass; only the ends are checked;
//! - byte lengths (`response.body`, `static.body`, header values, labels, media types): JSON
//!   Schema counts characters, so a value within the limit in characters but over it in UTF-8
//!   bytes passes; `redact.hmac_key` (at least 16 bytes) is asked for 16 characters, or 4 if it
//!   has a non-ASCII one; the decoded size of `static.body_base64` is not checked;
//! - `request_headers`/`response_headers` listed twice in different case: `uniqueItems` is
//!   case-sensitive;
//! - numbers: the parsers take whole numbers only as written without fraction or exponent
//!   (`5`, not `5.0` or `5e0`); JSON Schema's `integer` accepts all three;
//! - stricter than the parser: a `null` next to the source kind in a `serve` element
//!   (`{"static": null, "stale": {...}}`, which the parser reads as the `stale` source).

use crate::filters::{Filter, ALL};
use breakwater_common::duration::{Millis, MAX_MILLIS};
use breakwater_common::flags::RESPONSE_FLAGS;
use breakwater_common::headers::{MAX_HEADERS, MAX_HEADER_VALUE_BYTES};
use circuit_breaker::config as cb;
use fallback::config as fb;
use log_enrichment::{config as le, detect};
use serde_json::{json, Map, Value};
use std::io::Write;

pub fn run(args: &[String]) -> Result<(), String> {
    let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
    let [name] = args else {
        return Err(format!(
            "usage: breakwater schema FILTER ({})",
            names.join(", ")
        ));
    };
    let filter = Filter::from_name(name).ok_or_else(|| {
        format!(
            "schema: unknown filter \"{name}\" (one of {})",
            names.join(", ")
        )
    })?;
    std::io::stdout()
        .write_all(render(filter)?.as_bytes())
        .map_err(|e| format!("schema: {e}"))
}

/// The schema as shipped: pretty-printed, with a trailing newline.
pub fn render(filter: Filter) -> Result<String, String> {
    serde_json::to_string_pretty(&schema(filter))
        .map(|text| text + "\n")
        .map_err(|e| format!("schema: {e}"))
}

pub fn schema(filter: Filter) -> Value {
    match filter {
        Filter::CircuitBreaker => circuit_breaker(),
        Filter::Fallback => fallback(),
        Filter::LogEnrichment => log_enrichment(),
    }
}

// --- The three filters --------------------------------------------------------------------------

fn circuit_breaker() -> Value {
    let failure = with(
        object(
            "What counts as a failed call.",
            &[],
            json!({
                "statuses": statuses("status", json!(["5xx"]), "Response statuses that are failures: codes (503, \"503\"), classes (\"5xx\", \"50x\") or ranges (\"500-504\")."),
                "response_flags": response_flags(cb::DEFAULT_FAILURE_FLAGS, "Envoy response flags that are failures whatever the status."),
                "slow_call": duration("positive_duration", None, "A call is slow when its response headers take longer than this; absent: no call is slow."),
                "hang_after": duration("positive_duration", None, "A call still without response headers after this long counts as a failure at once, not when its timeout ends it; absent: off."),
            }),
        ),
        never(json!({
            "required": ["statuses", "response_flags"],
            "properties": {
                "statuses": {"type": "array", "maxItems": 0},
                "response_flags": {"type": "array", "maxItems": 0},
                "slow_call": {"type": "null"},
                "hang_after": {"type": "null"},
            },
        })),
    );
    let default_window = json!({"kind": "count", "size": 100});
    let window = with(
        object(
            "The calls that rates are judged on.",
            &["kind", "size"],
            json!({
                "kind": {"type": "string", "description": "count: the last `size` calls; time: the calls of the last `size` period.", "enum": ["count", "time"]},
                "size": {"type": ["integer", "string"], "description": format!("count: a number of calls, 1 to {}; time: a duration such as \"10s\" (at least 10ms per bucket).", cb::MAX_COUNT_WINDOW)},
                "buckets": integer(1, cb::MAX_TIME_BUCKETS, Some(10), "Time windows only: the period is kept in this many buckets."),
            }),
        ),
        json!({
            "default": default_window,
            "if": {"properties": {"kind": {"const": "count"}}},
            "then": {"properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": cb::MAX_COUNT_WINDOW},
                "buckets": {"type": "null"},
            }},
            "else": {"properties": {"size": {"type": "string", "$ref": "#/$defs/window_size"}}},
        }),
    );
    let trip = with(
        object(
            "When the breaker opens. Given, only the conditions it names are active (at least one); absent: after 5 consecutive failures.",
            &[],
            json!({
                "consecutive_failures": integer(1, u32::MAX, None, "Open after this many failures in a row (5 when trip is absent)."),
                "failure_rate": percent("Open when failures reach this percentage of the window; absent: off."),
                "slow_call_rate": percent("Open when slow calls reach this percentage of the window (needs failure.slow_call); absent: off."),
                "minimum_calls": integer(1, u32::MAX, Some(20), "Rates are judged only once the window holds this many calls (at most a count window's size, which is the default when smaller than 20)."),
                "window": window,
            }),
        ),
        json!({
            "default": {"consecutive_failures": 5, "minimum_calls": 20, "window": default_window},
            "anyOf": [given(&["consecutive_failures"]), given(&["failure_rate"]), given(&["slow_call_rate"])],
        }),
    );
    let open = object(
        "How long the breaker stays open.",
        &[],
        json!({
            "duration": duration("positive_duration", Some("5s"), "How long the breaker stays open the first time."),
            "max_duration": duration("duration", Some("60s"), "Cap for the backed-off duration (at least open.duration, the default when longer than 60s)."),
            "backoff_multiplier": {"type": "number", "description": "Each consecutive re-open multiplies the duration by this (1: no backoff).", "default": 2.0, "minimum": 1, "maximum": 100},
            "jitter": {"type": "number", "description": "Each open duration is spread by plus or minus this fraction, so proxies do not probe in lockstep.", "default": 0.1, "minimum": 0, "exclusiveMaximum": 1},
        }),
    );
    let half_open = object(
        "How the breaker probes before closing.",
        &[],
        json!({
            "probes": integer(1, cb::MAX_PROBES, Some(3), "Requests admitted in half-open, across all workers; all must succeed to close."),
            "max_wait": duration("positive_duration", Some("10s"), "Probes unanswered this long after the last admission are written off and replaced."),
        }),
    );
    let response = object(
        "The reply sent instead of calling the upstream while the breaker is open.",
        &[],
        json!({
            "status": integer(200, 599, Some(503), "Status of the reply."),
            "headers": headers(&["retry-after", "x-breakwater-breaker"], None, "Reply headers (default: content-type application/json with the default body, else none); retry-after and x-breakwater-breaker are set by the breaker."),
            "body": {"type": "string", "description": "Reply body (default: {\"error\":\"circuit open\",\"breaker\":\"<name>\"}).", "maxLength": cb::MAX_BODY_BYTES},
        }),
    );
    let modes = [
        cb::Mode::Enforce,
        cb::Mode::DryRun,
        cb::Mode::ForcedOpen,
        cb::Mode::Disabled,
    ]
    .map(cb::Mode::as_str);
    let breaker = with(
        object(
            "A breaker: its requests, what a failure is, when it opens, and how it replies.",
            &["name"],
            json!({
                "name": name("Names the breaker's stats, logs and shared state: 1 to 64 of [A-Za-z0-9_-], unique."),
                "match": request_match("The requests this breaker owns; absent: every request."),
                "split_by": {
                    "type": "string",
                    "description": "none (one state), cluster, authority or header:<name>: each value gets its own state.",
                    "default": "none",
                    "pattern": "^(none|cluster|authority|header:[A-Za-z0-9_-]+)$",
                    "examples": ["none", "cluster", "authority", "header:x-tenant-id"],
                },
                "max_keys": integer(1, cb::MAX_SPLIT_KEYS, Some(cb::DEFAULT_MAX_KEYS.into()), "With split_by: at most this many states; later values share one overflow state."),
                "failure": failure,
                "trip": trip,
                "open": open,
                "half_open": half_open,
                "response": response,
                "mode": {"type": "string", "description": "enforce, dry_run (count and log, never reject), forced_open (reject all) or disabled (pass all).", "default": cb::Mode::default().as_str(), "enum": modes},
            }),
        ),
        json!({"allOf": [
            {
                "if": present(&["max_keys"]),
                "then": {"required": ["split_by"], "properties": {"split_by": {"not": {"enum": ["none", null]}}}},
            },
            {
                "if": {"required": ["trip"], "properties": {"trip": present(&["slow_call_rate"])}},
                "then": {"required": ["failure"], "properties": {"failure": present(&["slow_call"])}},
            },
        ]}),
    );
    document(
        Filter::CircuitBreaker,
        "Circuit breakers for Envoy (proxy-wasm): the `configuration` of the Wasm filter or the `pluginConfig` of an Istio WasmPlugin. Empty: no breakers.",
        json!({
            "breakers": {
                "type": "array",
                "description": "Breakers, tried in order; the first whose match fits owns the request.",
                "default": [],
                "maxItems": cb::MAX_BREAKERS,
                "items": breaker,
            },
        }),
    )
}

fn fallback() -> Value {
    let static_source = with(
        object(
            "A fixed response.",
            &[],
            json!({
                "status": integer(200, 599, Some(200), "Status of the response."),
                "headers": headers(fb::RESERVED_HEADERS, Some(json!({})), "Response headers; x-breakwater-fallback, age and content-length are set by the filter."),
                "body": {"type": "string", "description": "The body as text (or give body_base64).", "default": "", "maxLength": fb::MAX_STATIC_BODY},
                "body_base64": {"type": "string", "description": "The body in base64, for binary bodies (or give body).", "pattern": BASE64},
            }),
        ),
        never(present(&["body", "body_base64"])),
    );
    let stale = object(
        "The last good response to the same request, kept in shared data (stale-if-error).",
        &["max_age"],
        json!({
            "max_age": duration("positive_duration", None, "Serve the last good response if it was stored at most this long ago."),
            "statuses": with(
                statuses("kept_status", json!([200]), "Statuses worth keeping as good: not 1xx, 206 or 304, which are not complete responses."),
                json!({"minItems": 1}),
            ),
            "vary": {
                "type": "array",
                "description": "Request headers whose values are part of the cache key.",
                "default": [],
                "maxItems": fb::MAX_VARY,
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            },
            "allow_credentials": boolean(false, "Also keep responses to requests with Authorization or Cookie (keyed by their values) and responses setting cookies."),
        }),
    );
    let service = object(
        "A GET to another Envoy cluster.",
        &["cluster", "path"],
        json!({
            "cluster": {"type": "string", "description": "The Envoy cluster (under Istio: outbound|80||popular.default.svc.cluster.local).", "minLength": 1},
            "path": {"type": "string", "description": "Path and query of the request.", "pattern": "^/[^\\u0000-\\u001F\\u007F ]*$"},
            "authority": {"type": "string", "description": ":authority of the request (default: the cluster name)."},
            "timeout": duration("service_timeout", Some("1s"), "At most 60s; a timeout moves on to the next source."),
        }),
    );
    let source = json!({
        "type": "object",
        "description": "One source: exactly one of static, stale, service.",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {"static": static_source, "stale": stale, "service": service},
        "additionalProperties": false,
    });
    let on = with(
        object(
            "What makes a response fail over to the sources.",
            &[],
            json!({
                "statuses": statuses("status", json!(["5xx"]), "Response statuses that trigger the fallback: codes (503, \"503\"), classes (\"5xx\") or ranges (\"500-504\")."),
                "response_flags": response_flags(&[], "Envoy response flags that trigger it whatever the status."),
                "breaker_open": boolean(true, "A rejection by breakwater's circuit breaker triggers it."),
            }),
        ),
        never(json!({
            "required": ["statuses", "breaker_open"],
            "properties": {
                "statuses": {"type": "array", "maxItems": 0},
                "response_flags": {"type": ["array", "null"], "maxItems": 0},
                "breaker_open": {"const": false},
            },
        })),
    );
    let rule = object(
        "A rule: its requests, what triggers it, and the sources tried in order.",
        &["name", "serve"],
        json!({
            "name": name("Names the rule's stats and cache entries: 1 to 64 of [A-Za-z0-9_-], unique."),
            "match": request_match("The requests this rule owns; absent: every request."),
            "on": on,
            "serve": {
                "type": "array",
                "description": "The sources, tried in order; at most one stale.",
                "minItems": 1,
                "maxItems": fb::MAX_SOURCES,
                "items": source,
                "contains": {"required": ["stale"]},
                "minContains": 0,
                "maxContains": 1,
            },
        }),
    );
    let cache = fb::CacheLimits::default();
    document(
        Filter::Fallback,
        "Fallback responses for Envoy (proxy-wasm): the `configuration` of the Wasm filter or the `pluginConfig` of an Istio WasmPlugin. Empty: no rules.",
        json!({
            "rules": {
                "type": "array",
                "description": "Rules, tried in order; the first whose match fits owns the request.",
                "default": [],
                "maxItems": fb::MAX_RULES,
                "items": rule,
            },
            "cache": object("Bounds of the shared last-good-response cache.", &[], json!({
                "max_entries": integer(1, fb::MAX_ENTRIES, Some(cache.max_entries.into()), "Entries kept."),
                "max_bytes": integer(1024, fb::MAX_CACHE_BYTES, Some(cache.max_bytes), "Bytes of entries kept (body, headers, key)."),
                "max_body_bytes": integer(1, fb::MAX_BODY_BYTES, Some(cache.max_body_bytes.into()), "Larger responses are not kept (at most max_bytes)."),
                "min_store_interval": duration("duration", Some(&Millis(cache.min_store_interval_ms).to_string()), "Each worker stores a given key at most once per interval (\"0s\": every response)."),
            })),
        }),
    )
}

fn log_enrichment() -> Value {
    let correlation = le::Correlation::default();
    let redaction = le::Redaction::default();
    let sampling = le::Sampling::default();
    let label = |description: &str| json!({"type": "string", "description": description, "minLength": 1, "maxLength": 128, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"});
    let header_list = |description: &str| {
        json!({
            "type": "array",
            "description": description,
            "default": [],
            "maxItems": le::MAX_LOGGED_HEADERS,
            "uniqueItems": true,
            "items": with(header_name(), json!({"not": {"pattern": caseless(&le::NEVER_LOGGED)}})),
        })
    };
    let redact = with(
        object(
            "What is redacted from logged values, and how.",
            &[],
            json!({
                "detectors": {
                    "type": "array",
                    "description": "The detectors that run.",
                    "default": redaction.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
                    "items": {"type": "string", "enum": detect::ALL.iter().map(|d| d.name()).collect::<Vec<_>>()},
                },
                "query_params": {
                    "type": "array",
                    "description": "Query and form parameters whose values are always redacted, matched case-insensitively.",
                    "default": redaction.query_params,
                    "maxItems": le::MAX_QUERY_PARAMS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                "mode": {"type": "string", "description": "mask: [REDACTED:email]; hash: a keyed pseudonym [REDACTED:email:1f0c...] (needs hmac_key).", "default": "mask", "enum": ["mask", "hash"]},
                "hmac_key": {
                    "type": "string",
                    "description": format!("The HMAC-SHA-256 key for hash mode, at least {} bytes.", le::MIN_HMAC_KEY_BYTES),
                    "anyOf": [
                        {"minLength": le::MIN_HMAC_KEY_BYTES},
                        {"minLength": le::MIN_HMAC_KEY_BYTES / 4, "pattern": "[^\\u0000-\\u007F]"},
                    ],
                },
                "max_value_bytes": integer(16, le::MAX_VALUE_BYTES, Some(redaction.max_value_bytes as u64), "Longest logged path, query or header value, after redaction."),
            }),
        ),
        json!({
            "if": {"required": ["mode"], "properties": {"mode": {"const": "hash"}}},
            "then": given(&["hmac_key"]),
        }),
    );
    let keep = ["fallback", "breaker_rejected", "slow", "response_flags"];
    document(
        Filter::LogEnrichment,
        "Enriched, redacted access-log records for Envoy (proxy-wasm): the `configuration` of the Wasm filter or the `pluginConfig` of an Istio WasmPlugin.",
        json!({
            "service": object("Who is logging, written into every record.", &[], json!({
                "name": label("Logged as service.name (1 to 128 printable characters)."),
                "version": label("Logged as service.version (1 to 128 printable characters)."),
                "environment": label("Logged as deployment.environment.name (1 to 128 printable characters)."),
                "region": label("Logged as cloud.region (1 to 128 printable characters)."),
            })),
            "correlation": object("The correlation-id header.", &[], json!({
                "header": with(
                    json!({"type": "string", "description": "The correlation-id header (not a credential header).", "default": correlation.header}),
                    with(header_name(), json!({"not": {"pattern": caseless(&le::NEVER_LOGGED)}})),
                ),
                "generate": boolean(correlation.generate, "Make a fresh id when the request has none."),
                "trust_incoming": boolean(correlation.trust_incoming, "Keep a valid incoming id; false: replace it (or remove it, with generate off)."),
                "echo_in_response": boolean(correlation.echo_in_response, "Also send the correlation id and x-request-id back in the response."),
            })),
            "workload_metadata": boolean(le::LogConfig::default().workload_metadata, "Log Istio's workload metadata from the node."),
            "request_headers": header_list("The only request headers logged; credential headers are refused."),
            "response_headers": header_list("The only response headers logged; credential headers are refused."),
            "redact": redact,
            "sampling": object("Which requests are logged.", &[], json!({
                "rate": {"type": "number", "description": "The fraction of requests logged.", "default": sampling.rate, "minimum": 0, "maximum": 1},
                "always_keep": {
                    "type": "array",
                    "description": "Never dropped: statuses (\"5xx\", \"429\", \"500-504\"), fallback, breaker_rejected, slow, response_flags.",
                    "default": ["5xx", "fallback", "breaker_rejected", "slow"],
                    "items": {"type": "string", "anyOf": [{"enum": keep}, {"$ref": "#/$defs/status"}]},
                },
                "slow": duration("positive_duration", Some(&Millis(sampling.slow_ms).to_string()), "What slow means for always_keep."),
            })),
            "upstream_headers": headers(&["host", "content-length", "transfer-encoding", "connection"], Some(json!({})), "Headers set on the upstream request (not host, content-length, transfer-encoding, connection or the correlation header)."),
            "body": object("Log the first bytes of request and response bodies (redacted); absent: no bodies.", &[], json!({
                "max_bytes": integer(1, le::MAX_BODY_BYTES, Some(1024), "Bytes logged of each body."),
                "content_types": {
                    "type": "array",
                    "description": "Only bodies of these media types, and not compressed ones.",
                    "default": ["application/json"],
                    "minItems": 1,
                    "maxItems": 16,
                    "items": {"type": "string", "maxLength": 128, "pattern": "^[^;]*/[^;]*$"},
                },
            })),
            "separate_fields": boolean(le::LogConfig::default().separate_fields, "Also write every scalar field as its own filter-state key (about 40 more host calls per request)."),
        }),
    )
}

// --- Shared shapes ------------------------------------------------------------------------------

/// The root: `$schema`, `$id`, `title`, the object, and the `$defs` it refers to.
fn document(filter: Filter, description: &str, properties: Value) -> Value {
    let mut root = with(
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("https://breakwater.dev/schemas/{}.json", filter.name()),
            "title": format!("breakwater {} configuration", filter.name()),
        }),
        object(description, &[], properties),
    );
    let mut defs = Map::new();
    loop {
        let mut used = Vec::new();
        refs(&root, &mut used);
        refs(&Value::Object(defs.clone()), &mut used);
        let before = defs.len();
        for (name, def) in shared_defs() {
            if used.contains(&format!("#/$defs/{name}")) && !defs.contains_key(name) {
                defs.insert(name.to_string(), def);
            }
        }
        if defs.len() == before {
            break;
        }
    }
    if let Some(map) = root.as_object_mut() {
        map.insert("$defs".to_string(), Value::Object(defs));
    }
    root
}

/// Shapes used in several places, referred to as `#/$defs/<name>`. They carry no `type`: the
/// place that uses one gives it (with `null` where the key is optional).
fn shared_defs() -> Vec<(&'static str, Value)> {
    let duration_def = |min_ms: u64, max_ms: u64, examples: &[&str], description: &str| json!({"description": description, "pattern": duration_pattern(min_ms, max_ms), "examples": examples});
    vec![
        ("duration", duration_def(0, MAX_MILLIS, &["250ms", "1.5s", "2m"], "A duration: a number and a unit, ms, s, m or h (\"250ms\", \"1.5s\", \"2m\"); whole milliseconds, at most 7 days.")),
        ("positive_duration", duration_def(1, MAX_MILLIS, &["250ms", "1.5s", "2m"], "A duration longer than 0: a number and a unit, ms, s, m or h (\"250ms\", \"1.5s\", \"2m\"); whole milliseconds, at most 7 days.")),
        ("window_size", duration_def(10, MAX_MILLIS, &["10s", "1m"], "A time window's period: a number and a unit, ms, s, m or h (\"10s\", \"1m\"); at least 10ms per bucket, at most 7 days.")),
        ("service_timeout", duration_def(1, fb::MAX_SERVICE_TIMEOUT_MS, &["300ms", "1.5s"], "A timeout: a number and a unit, ms, s or m (\"300ms\", \"1.5s\"); longer than 0, at most 60s.")),
        ("status", status_def(|_| true, "A status code (503, \"503\"), class (\"5xx\", \"50x\") or range (\"500-504\") of codes 100 to 599.")),
        ("kept_status", status_def(|code| !(100..200).contains(&code) && code != 206 && code != 304, "A status code (200, \"200\"), class (\"4xx\", \"40x\") or range (\"200-203\"): complete responses only, not 1xx, 206 or 304.")),
        ("match", with(
            untyped(object(
                "Which requests: all the given conditions hold.",
                &[],
                json!({
                    "path_prefix": {"type": "string", "description": "The path, query excluded, starts with this (not with path_exact).", "pattern": "^/[^?#]*$"},
                    "path_exact": {"type": "string", "description": "The path, query excluded, is exactly this (not with path_prefix).", "pattern": "^/[^?#]*$"},
                    "methods": {"type": "array", "description": "The method is one of these, e.g. [\"GET\", \"HEAD\"].", "minItems": 1, "items": {"type": "string", "pattern": "^[A-Z-]+$"}},
                    "authority": {"type": "string", "description": ":authority, case-insensitive; without a port the request's port is ignored; *.example.com matches subdomains.", "pattern": "^(\\*\\.)?[^*/\\t\\n\\f\\r ]+$"},
                    "cluster": {"type": "string", "description": "Envoy's xds.cluster_name.", "minLength": 1},
                    "route": {"type": "string", "description": "Envoy's xds.route_name.", "minLength": 1},
                }),
            )),
            never(given(&["path_prefix", "path_exact"])),
        )),
    ]
}

/// A shared shape without its `type`, which the places using it give.
fn untyped(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.remove("type");
    }
    schema
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// `base` with the keys of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(map), Value::Object(more)) = (base.as_object_mut(), extra) {
        map.extend(more);
    }
    base
}

/// An object with these properties and no others. Optional properties also take `null`, which
/// the parsers read as absent.
fn object(description: &str, required: &[&str], properties: Value) -> Value {
    let mut props = Map::new();
    if let Value::Object(map) = properties {
        for (key, schema) in map {
            let schema = if required.contains(&key.as_str()) {
                schema
            } else {
                nullable(schema)
            };
            props.insert(key, schema);
        }
    }
    let mut out = json!({"type": "object", "description": description});
    if !required.is_empty() {
        out = with(out, json!({"required": required}));
    }
    with(
        out,
        json!({"properties": props, "additionalProperties": false}),
    )
}

fn nullable(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        if let Some(types) = map.get_mut("type") {
            match types {
                Value::Array(list) => list.push(json!("null")),
                single => *single = json!([single.clone(), "null"]),
            }
        }
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    schema
}

/// These keys are given (not `null`) when the value is an object; true for any other value.
fn given(keys: &[&str]) -> Value {
    let not_null: Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!({"not": {"type": "null"}})))
        .collect();
    json!({"required": keys, "properties": not_null})
}

/// An object with these keys given (for `if` conditions).
fn present(keys: &[&str]) -> Value {
    with(json!({"type": "object"}), given(keys))
}

/// No object matches `condition` (other values are left to the `type`).
fn never(condition: Value) -> Value {
    json!({"not": with(json!({"type": "object"}), condition)})
}

fn integer(
    min: impl Into<Value>,
    max: impl Into<Value>,
    default: Option<u64>,
    description: &str,
) -> Value {
    let mut out = json!({"type": "integer", "description": description});
    if let Some(default) = default {
        out = with(out, json!({"default": default}));
    }
    with(out, json!({"minimum": min.into(), "maximum": max.into()}))
}

fn percent(description: &str) -> Value {
    json!({"type": "number", "description": description, "exclusiveMinimum": 0, "maximum": 100})
}

fn boolean(default: bool, description: &str) -> Value {
    json!({"type": "boolean", "description": description, "default": default})
}

fn name(description: &str) -> Value {
    json!({"type": "string", "description": description, "pattern": "^[A-Za-z0-9_-]{1,64}$"})
}

fn duration(def: &str, default: Option<&str>, description: &str) -> Value {
    let mut out = json!({"type": "string", "description": description});
    if let Some(default) = default {
        out = with(out, json!({"default": default}));
    }
    with(out, json!({"$ref": format!("#/$defs/{def}")}))
}

fn statuses(def: &str, default: Value, description: &str) -> Value {
    json!({
        "type": "array",
        "description": description,
        "default": default,
        "items": {"type": ["integer", "string"], "$ref": format!("#/$defs/{def}")},
    })
}

fn response_flags(default: &[&str], description: &str) -> Value {
    json!({
        "type": "array",
        "description": description,
        "default": default,
        "items": {"type": "string", "enum": RESPONSE_FLAGS.iter().map(|(name, _, _)| *name).collect::<Vec<_>>()},
    })
}

fn request_match(description: &str) -> Value {
    json!({"type": "object", "description": description, "$ref": "#/$defs/match"})
}

/// An HTTP token, as a header name; pseudo-headers are not.
const HEADER_NAME: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

fn header_name() -> Value {
    json!({"type": "string", "maxLength": 128, "pattern": HEADER_NAME})
}

/// A `{"name": "value"}` map of headers, some of whose names (in any case) are refused.
fn headers(reserved: &[&str], default: Option<Value>, description: &str) -> Value {
    let mut out = json!({"type": "object", "description": description});
    if let Some(default) = default {
        out = with(out, json!({"default": default}));
    }
    with(
        out,
        json!({
            "maxProperties": MAX_HEADERS,
            "propertyNames": {"pattern": HEADER_NAME, "not": {"pattern": caseless(reserved)}},
            "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_BYTES, "pattern": "^[^\\r\\n\\u0000]*$"},
        }),
    )
}

/// `^(a|b)$` for these words in any ASCII case, e.g. `[Aa][Gg][Ee]`.
fn caseless(words: &[&str]) -> String {
    let word = |w: &str| -> String {
        w.chars()
            .map(|c| match (c.to_ascii_uppercase(), c.to_ascii_lowercase()) {
                (upper, lower) if upper != lower => format!("[{upper}{lower}]"),
                _ => c.to_string(),
            })
            .collect()
    };
    format!(
        "^({})$",
        words.iter().map(|w| word(w)).collect::<Vec<_>>().join("|")
    )
}

// --- Patterns -----------------------------------------------------------------------------------

/// Whitespace that Rust's `str::trim` removes (Unicode White_Space): the duration and status
/// parsers trim their text.
const TRIM: &str =
    "[\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*";

/// Standard base64 as `breakwater_common::base64::decode` reads it: ASCII whitespace anywhere,
/// the last group's unused bits zero, up to two `=` at the end.
const BASE64: &str = "^[\\t\\n\\f\\r ]*(([A-Za-z0-9+/][\\t\\n\\f\\r ]*){4})*([A-Za-z0-9+/][\\t\\n\\f\\r ]*[AQgw][\\t\\n\\f\\r ]*|([A-Za-z0-9+/][\\t\\n\\f\\r ]*){2}[AEIMQUYcgkosw048][\\t\\n\\f\\r ]*)?(=[\\t\\n\\f\\r ]*){0,2}$";

/// The strings `breakwater_common::duration::parse` reads as `min_ms` to `max_ms`: a number
/// with an optional fraction, then `ms`, `s`, `m` or `h`. A fraction may not go below a
/// millisecond except with zeros, so each unit has its own number of fraction digits `k`, and
/// the number, read as a whole count of `unit / 10^k` steps, has its own bounds.
fn duration_pattern(min_ms: u64, max_ms: u64) -> String {
    let mut alternatives = Vec::new();
    for (unit, unit_ms) in [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)] {
        let (mut step, mut k) = (unit_ms, 0);
        while step % 10 == 0 {
            step /= 10;
            k += 1;
        }
        let (low, high) = (min_ms.div_ceil(step), max_ms / step);
        if low <= high {
            alternatives.push(format!("{}{unit}", group(decimal(k, low, high))));
        }
    }
    format!("^{TRIM}({}){TRIM}$", alternatives.join("|"))
}

/// Decimal numbers (leading zeros, an optional fraction with at most `k` significant digits
/// then only zeros, `5.` and `.5` allowed) whose value times `10^k` is from `low` to `high`.
fn decimal(k: u32, low: u64, high: u64) -> String {
    let scale = 10u64.pow(k);
    let digits = |fraction: u64| -> Vec<u8> {
        match k {
            0 => Vec::new(),
            _ => format!("{fraction:0width$}", width = k as usize).into_bytes(),
        }
    };
    // Runs of whole parts that share the bounds of their fractions: (whole from, to, fraction
    // from, to).
    let (low_whole, high_whole) = (low / scale, high / scale);
    let mut runs: Vec<(u64, u64, u64, u64)> = Vec::new();
    if low_whole == high_whole {
        runs.push((low_whole, low_whole, low % scale, high % scale));
    } else {
        runs.push((low_whole, low_whole, low % scale, scale - 1));
        if low_whole + 1 < high_whole {
            runs.push((low_whole + 1, high_whole - 1, 0, scale - 1));
        }
        runs.push((high_whole, high_whole, 0, high % scale));
    }
    let mut merged: Vec<(u64, u64, u64, u64)> = Vec::new();
    for run in runs {
        match merged.last_mut() {
            Some(last) if (last.2, last.3) == (run.2, run.3) => last.1 = run.1,
            _ => merged.push(run),
        }
    }
    let mut alternatives = Vec::new();
    for (from, to, fraction_low, fraction_high) in merged {
        let (fraction, may_omit) = fraction_digits(&digits(fraction_low), &digits(fraction_high));
        let dot = if fraction == "0+" {
            "(\\.0*)?".to_string()
        } else if may_omit {
            format!("(\\.({fraction})?)?")
        } else {
            format!("\\.({fraction})")
        };
        if from == 0 {
            // A zero whole part may be left out (".5") when a fraction follows.
            alternatives.push(if may_omit {
                format!("0+{dot}|\\.({fraction})")
            } else {
                format!("0*{dot}")
            });
        }
        if to >= 1 {
            alternatives.push(format!("0*{}{dot}", group(integer_range(from.max(1), to))));
        }
    }
    alternatives.join("|")
}

/// Fraction digits (at least one) whose first `low.len()` digits, padded with zeros, are from
/// `low` to `high` and whose further digits are zeros; and whether no digits at all (zero) is
/// also in range.
fn fraction_digits(low: &[u8], high: &[u8]) -> (String, bool) {
    let zero_ok = low.iter().all(|d| *d == b'0');
    let (Some((&l, low_rest)), Some((&h, high_rest))) = (low.split_first(), high.split_first())
    else {
        return ("0+".to_string(), true);
    };
    let rest = low_rest.len();
    if zero_ok && high.iter().all(|d| *d == b'0') {
        return ("0+".to_string(), true);
    }
    if zero_ok && high.iter().all(|d| *d == b'9') {
        return (format!("{}0*", any_digits(1, rest + 1)), true);
    }
    let then = |(alternatives, may_end): (String, bool)| match (alternatives.as_str(), may_end) {
        ("0+", true) => "0*".to_string(),
        (_, true) => format!("({alternatives})?"),
        (_, false) => format!("({alternatives})"),
    };
    let (zeros, nines) = (vec![b'0'; rest], vec![b'9'; rest]);
    let mut alternatives = Vec::new();
    if l == h {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            then(fraction_digits(low_rest, high_rest))
        ));
    } else {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            then(fraction_digits(low_rest, &nines))
        ));
        if l + 1 < h {
            alternatives.push(format!(
                "{}{}0*",
                digit_class(l + 1, h - 1),
                any_digits(0, rest)
            ));
        }
        alternatives.push(format!(
            "{}{}",
            char::from(h),
            then(fraction_digits(&zeros, high_rest))
        ));
    }
    (alternatives.join("|"), zero_ok)
}

/// Whole numbers from `low` (at least 1) to `high`, written without leading zeros.
fn integer_range(low: u64, high: u64) -> String {
    let mut alternatives = Vec::new();
    let mut full: Option<(u32, u32)> = None; // a run of lengths taking every number
    for length in low.ilog10() + 1..=high.ilog10() + 1 {
        let (first, last) = (10u64.pow(length - 1), 10u64.pow(length) - 1);
        let (from, to) = (low.max(first), high.min(last));
        if (from, to) == (first, last) {
            full = Some(full.map_or((length, length), |(start, _)| (start, length)));
        } else {
            alternatives.push(same_length_range(
                from.to_string().as_bytes(),
                to.to_string().as_bytes(),
            ));
        }
    }
    if let Some((shortest, longest)) = full {
        alternatives.insert(
            0,
            format!(
                "[1-9]{}",
                any_digits(shortest as usize - 1, longest as usize - 1)
            ),
        );
    }
    alternatives.join("|")
}

/// Digit strings of one length from `low` to `high`.
fn same_length_range(low: &[u8], high: &[u8]) -> String {
    let (Some((&l, low_rest)), Some((&h, high_rest))) = (low.split_first(), high.split_first())
    else {
        return String::new();
    };
    let rest = low_rest.len();
    if l == h {
        return format!(
            "{}{}",
            char::from(l),
            group(same_length_range(low_rest, high_rest))
        );
    }
    let (lowest, highest) = (
        low_rest.iter().all(|d| *d == b'0'),
        high_rest.iter().all(|d| *d == b'9'),
    );
    let mut alternatives = Vec::new();
    if !lowest {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            group(same_length_range(low_rest, &vec![b'9'; rest]))
        ));
    }
    let (from, to) = (
        if lowest { l } else { l + 1 },
        if highest { h } else { h - 1 },
    );
    if from <= to {
        alternatives.push(format!(
            "{}{}",
            digit_class(from, to),
            any_digits(rest, rest)
        ));
    }
    if !highest {
        alternatives.push(format!(
            "{}{}",
            char::from(h),
            group(same_length_range(&vec![b'0'; rest], high_rest))
        ));
    }
    alternatives.join("|")
}

/// Alternatives in parentheses, so that something can follow them.
fn group(alternatives: String) -> String {
    if alternatives.contains('|') {
        format!("({alternatives})")
    } else {
        alternatives
    }
}

fn digit_class(from: u8, to: u8) -> String {
    match to - from {
        0 => char::from(from).to_string(),
        1 => format!("[{}{}]", char::from(from), char::from(to)),
        _ => format!("[{}-{}]", char::from(from), char::from(to)),
    }
}

/// `min` to `max` digits.
fn any_digits(min: usize, max: usize) -> String {
    match (min, max) {
        (_, 0) => String::new(),
        (1, 1) => "[0-9]".to_string(),
        (0, 1) => "[0-9]?".to_string(),
        _ if min == max => format!("[0-9]{{{min}}}"),
        _ => format!("[0-9]{{{min},{max}}}"),
    }
}

/// A status list element as `breakwater_common::status` reads it, limited to the codes that
/// `allowed` takes: a number, or a code, class or range as text.
fn status_def(allowed: fn(u16) -> bool, description: &str) -> Value {
    let codes: Vec<u16> = (100..=599).filter(|c| allowed(*c)).collect();
    let (low, high) = (
        codes.first().copied().unwrap_or(100),
        codes.last().copied().unwrap_or(599),
    );
    let holes: Vec<u16> = (low..=high).filter(|c| !allowed(*c)).collect();
    let code = format!("\\+?0*{}", group(code_pattern(allowed)));
    let mut out = json!({"description": description, "minimum": low, "maximum": high});
    if !holes.is_empty() {
        out = with(out, json!({"not": {"enum": holes}}));
    }
    with(
        out,
        json!({"pattern": format!("^{TRIM}({}|{code}|{code}{TRIM}-{TRIM}{code}){TRIM}$", class_pattern(allowed))}),
    )
}

/// Three-digit codes that `allowed` takes.
fn code_pattern(allowed: fn(u16) -> bool) -> String {
    let by_first = (1..=5u16).map(|first| {
        let third = |second: u16| {
            digit_set((0..=9).filter(|third| allowed(first * 100 + second * 10 + third)))
        };
        group(group_by_pattern(
            (0..=9)
                .map(|second| (second, third(second)))
                .filter(|(_, t)| !t.is_empty()),
        ))
    });
    group_by_pattern((1..=5).zip(by_first).filter(|(_, inner)| !inner.is_empty()))
}

/// Classes (`5xx`, `50x`, either case of x) all of whose codes `allowed` takes.
fn class_pattern(allowed: fn(u16) -> bool) -> String {
    let all = |from: u16, count: u16| (from..from + count).all(allowed);
    let by_first = (1..=5u16).map(|first| {
        let seconds = digit_set((0..=9).filter(|second| all(first * 100 + second * 10, 10)));
        let mut forms = Vec::new();
        if all(first * 100, 100) {
            forms.push("[xX]{2}".to_string());
        }
        if !seconds.is_empty() {
            forms.push(format!("{seconds}[xX]"));
        }
        group(forms.join("|"))
    });
    group_by_pattern((1..=5).zip(by_first).filter(|(_, inner)| !inner.is_empty()))
}

/// `(digit, rest)` pairs as alternatives, digits with the same rest sharing one class.
fn group_by_pattern(pairs: impl Iterator<Item = (u16, String)>) -> String {
    let mut groups: Vec<(Vec<u16>, String)> = Vec::new();
    for (digit, rest) in pairs {
        match groups.iter_mut().find(|(_, r)| *r == rest) {
            Some((digits, _)) => digits.push(digit),
            None => groups.push((vec![digit], rest)),
        }
    }
    let alternatives: Vec<String> = groups
        .into_iter()
        .map(|(digits, rest)| format!("{}{rest}", digit_set(digits.into_iter())))
        .collect();
    alternatives.join("|")
}

/// A character class of decimal digits, e.g. `[0-57-9]`; a single digit as itself.
fn digit_set(digits: impl Iterator<Item = u16>) -> String {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for d in digits {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    let body: String = runs
        .iter()
        .map(|&(from, to)| match to - from {
            0 => from.to_string(),
            1 => format!("{from}{to}"),
            _ => format!("{from}-{to}"),
        })
        .collect();
    match runs.as_slice() {
        [] => String::new(),
        [(from, to)] if from == to => body,
        _ => format!("[{body}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::config::{Field, FieldPath};
    use breakwater_common::json::Value as ConfigValue;
    use breakwater_common::{base64, duration, status};
    use std::collections::BTreeSet;

    /// A compiled schema.
    struct Validator {
        schemas: boon::Schemas,
        index: boon::SchemaIndex,
    }

    impl Validator {
        fn new(schema: Value) -> Self {
            let url = schema["$id"]
                .as_str()
                .unwrap_or("https://breakwater.dev/schemas/test.json")
                .to_string();
            let mut schemas = boon::Schemas::new();
            let mut compiler = boon::Compiler::new();
            compiler.add_resource(&url, schema).unwrap();
            let index = compiler.compile(&url, &mut schemas).unwrap();
            Validator { schemas, index }
        }

        fn of(filter: Filter) -> Self {
            Validator::new(schema(filter))
        }

        /// A validator for one of the shared `$defs`, with its type.
        fn of_def(name: &str, ty: Value) -> Self {
            let defs: Map<String, Value> = shared_defs()
                .into_iter()
                .map(|(n, d)| (n.to_string(), d))
                .collect();
            Validator::new(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": format!("https://breakwater.dev/schemas/test-{name}.json"),
                "type": ty,
                "$ref": format!("#/$defs/{name}"),
                "$defs": defs,
            }))
        }

        fn check(&self, value: &Value) -> Result<(), String> {
            self.schemas
                .validate(value, self.index)
                .map_err(|e| format!("{e}"))
        }
    }

    /// The filter's own parser (what `on_configure` runs).
    fn parser(filter: Filter, config: &Value) -> Result<(), String> {
        filter
            .check_config(config.to_string().as_bytes())
            .map_err(|e| e.to_string())
    }

    /// The parsed configuration, to compare two configs' meaning.
    fn parsed(filter: Filter, config: &Value) -> Result<String, String> {
        let json = config.to_string();
        let bytes = json.as_bytes();
        match filter {
            Filter::CircuitBreaker => cb::BreakerConfig::parse(bytes).map(|c| format!("{c:?}")),
            Filter::Fallback => fb::FallbackConfig::parse(bytes).map(|c| format!("{c:?}")),
            Filter::LogEnrichment => le::LogConfig::parse(bytes).map(|c| format!("{c:?}")),
        }
        .map_err(|e| e.to_string())
    }

    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            Some(name) => &root["$defs"][name],
            None => schema,
        }
    }

    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    /// Every property path of the schema: `breakers[].trip.window.size`.
    fn property_paths(root: &Value, schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        let schema = resolve(root, schema);
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                let path = join(prefix, key);
                out.insert(path.clone());
                property_paths(root, sub, &path, out);
            }
        }
        if let Some(items) = schema.get("items") {
            property_paths(root, items, &format!("{prefix}[]"), out);
        }
    }

    /// Calls `f(path, JSON pointer, property schema)` for every schema property given (not
    /// null) in `value`.
    fn visit(
        root: &Value,
        schema: &Value,
        value: &Value,
        (prefix, pointer): (&str, &str),
        f: &mut dyn FnMut(&str, &str, &Value),
    ) {
        let schema = resolve(root, schema);
        if let (Some(props), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (key, sub) in props {
                if let Some(v) = object.get(key).filter(|v| !v.is_null()) {
                    let (path, at) = (join(prefix, key), format!("{pointer}/{key}"));
                    f(&path, &at, sub);
                    visit(root, sub, v, (&path, &at), f);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                let (path, at) = (format!("{prefix}[]"), format!("{pointer}/{i}"));
                visit(root, items, item, (&path, &at), f);
            }
        }
    }

    /// Every name under any `properties` of the schema.
    fn property_names(schema: &Value, out: &mut BTreeSet<String>) {
        match schema {
            Value::Object(map) => {
                for (key, sub) in map {
                    if key == "properties" {
                        out.extend(sub.as_object().into_iter().flat_map(|m| m.keys().cloned()));
                    }
                    property_names(sub, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| property_names(v, out)),
            _ => {}
        }
    }

    /// A configuration giving every property of the schema (several list elements where two
    /// properties exclude each other).
    fn maximal(filter: Filter) -> Value {
        match filter {
            Filter::CircuitBreaker => json!({"breakers": [
                {
                    "name": "recommendations",
                    "match": {"path_prefix": "/recommendations", "methods": ["GET", "HEAD"], "authority": "*.example.com", "cluster": "backend", "route": "default"},
                    "split_by": "header:x-tenant",
                    "max_keys": 500,
                    "failure": {"statuses": [503, "5xx", "500-504", " 429 "], "response_flags": ["UF", "UT", "URX", "UC"], "slow_call": "2s", "hang_after": "500ms"},
                    "trip": {"consecutive_failures": 5, "failure_rate": 50, "slow_call_rate": 80.5, "minimum_calls": 20, "window": {"kind": "count", "size": 100}},
                    "open": {"duration": "5s", "max_duration": "60s", "backoff_multiplier": 2.0, "jitter": 0.1},
                    "half_open": {"probes": 3, "max_wait": "10s"},
                    "response": {"status": 503, "headers": {"content-type": "application/json"}, "body": "{\"error\":\"unavailable\"}"},
                    "mode": "dry_run",
                },
                {
                    "name": "search",
                    "match": {"path_exact": "/search"},
                    "split_by": "cluster",
                    "trip": {"failure_rate": 25, "window": {"kind": "time", "size": "10s", "buckets": 20}},
                },
            ]}),
            Filter::Fallback => json!({
                "rules": [
                    {
                        "name": "popular-items",
                        "match": {"path_prefix": "/recommendations", "methods": ["GET"], "authority": "shop.example.com:8080", "cluster": "backend", "route": "r1"},
                        "on": {"statuses": ["5xx", 429], "response_flags": ["UF", "UT"], "breaker_open": true},
                        "serve": [
                            {"stale": {"max_age": "10m", "statuses": [200, "203", "404-410"], "vary": ["accept-language"], "allow_credentials": false}},
                            {"service": {"cluster": "popular-cache", "path": "/popular.json?n=10", "authority": "popular.internal", "timeout": "300ms"}},
                            {"static": {"status": 200, "headers": {"content-type": "application/json"}, "body": "[]"}},
                            {"static": {"status": 503, "body_base64": "AP8="}},
                        ],
                    },
                    {"name": "exact", "match": {"path_exact": "/x"}, "serve": [{"static": {}}]},
                ],
                "cache": {"max_entries": 1000, "max_bytes": 8_388_608, "max_body_bytes": 65536, "min_store_interval": "1s"},
            }),
            Filter::LogEnrichment => json!({
                "service": {"name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1"},
                "correlation": {"header": "x-trace-id", "generate": true, "trust_incoming": false, "echo_in_response": true},
                "workload_metadata": true,
                "request_headers": ["user-agent", "x-tenant-id"],
                "response_headers": ["content-type"],
                "redact": {"detectors": ["email", "payment_card"], "query_params": ["token"], "mode": "hash", "hmac_key": "0123456789abcdef0123", "max_value_bytes": 2048},
                "sampling": {"rate": 0.25, "always_keep": ["5xx", "429", "500-504", "fallback", "breaker_rejected", "slow", "response_flags"], "slow": "1s"},
                "upstream_headers": {"x-breakwater-service": "checkout"},
                "body": {"max_bytes": 4096, "content_types": ["application/json", "text/plain"]},
                "separate_fields": false,
            }),
        }
    }

    #[test]
    fn shipped_schemas_are_the_generated_ones() {
        for filter in ALL {
            let file = format!(
                "{}/../{}/config.schema.json",
                env!("CARGO_MANIFEST_DIR"),
                filter.name()
            );
            let shipped = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                shipped == render(filter).unwrap(),
                "filters/{}/config.schema.json is out of date: run `make schemas`",
                filter.name()
            );
        }
    }

    #[test]
    fn the_maximal_examples_give_every_property_and_pass_both() {
        for filter in ALL {
            let (schema, example) = (schema(filter), maximal(filter));
            let mut all = BTreeSet::new();
            property_paths(&schema, &schema, "", &mut all);
            let mut given = BTreeSet::new();
            visit(&schema, &schema, &example, ("", ""), &mut |path, _, _| {
                given.insert(path.to_string());
            });
            let missing: Vec<_> = all.difference(&given).collect();
            assert!(
                missing.is_empty(),
                "{}: the example lacks {missing:?}",
                filter.name()
            );
            assert!(all.len() > 20, "{}: {all:?}", filter.name());
            // The parser refuses unknown keys, so every schema property is one it reads.
            parser(filter, &example).unwrap();
            Validator::of(filter).check(&example).unwrap();
        }
    }

    /// The filter's config reader, then the modules of breakwater_common it uses.
    fn config_sources(filter: Filter) -> Vec<&'static str> {
        let own = match filter {
            Filter::CircuitBreaker => include_str!("../../circuit-breaker/src/config.rs"),
            Filter::Fallback => include_str!("../../fallback/src/config.rs"),
            Filter::LogEnrichment => include_str!("../../log-enrichment/src/config.rs"),
        };
        let common = [
            ("config", include_str!("../../common/src/config.rs")),
            ("matcher", include_str!("../../common/src/matcher.rs")),
            ("duration", include_str!("../../common/src/duration.rs")),
            ("status", include_str!("../../common/src/status.rs")),
            ("flags", include_str!("../../common/src/flags.rs")),
            ("headers", include_str!("../../common/src/headers.rs")),
            ("base64", include_str!("../../common/src/base64.rs")),
        ];
        let used = common
            .iter()
            .filter(|(module, _)| own.contains(&format!("breakwater_common::{module}")));
        std::iter::once(own)
            .chain(used.map(|(_, source)| *source))
            .collect()
    }

    /// The literal keys a source reads (`obj.opt("key", ...)`, `.get("key")`, ...) or names in
    /// errors (`key_path("key")`, `ConfigError::new("a.b", ...)`), tests left out.
    fn keys_read(source: &str) -> BTreeSet<String> {
        let code = source.split("#[cfg(test)]").next().unwrap();
        let mut keys = BTreeSet::new();
        for form in [
            ".get(\"",
            ".field(\"",
            ".opt(\"",
            ".required(\"",
            ".object(\"",
            ".key_path(\"",
            ".key(\"",
            "FieldPath::root(\"",
            "ConfigError::new(\"",
        ] {
            for (at, _) in code.match_indices(form) {
                let rest = &code[at + form.len()..];
                let literal = &rest[..rest.find('"').unwrap()];
                keys.extend(
                    literal
                        .split('.')
                        .filter(|k| !k.is_empty())
                        .map(str::to_string),
                );
            }
        }
        keys
    }

    #[test]
    fn every_key_the_parser_reads_is_in_the_schema() {
        for filter in ALL {
            let mut names = BTreeSet::new();
            property_names(&schema(filter), &mut names);
            let read: BTreeSet<String> = config_sources(filter)
                .iter()
                .flat_map(|s| keys_read(s))
                .collect();
            if filter != Filter::LogEnrichment {
                for key in [
                    "path_prefix",
                    "path_exact",
                    "methods",
                    "authority",
                    "cluster",
                    "route",
                ] {
                    assert!(
                        read.contains(key),
                        "{}: the scan misses {key}: {read:?}",
                        filter.name()
                    );
                }
            }
            let missing: Vec<_> = read.difference(&names).collect();
            assert!(
                missing.is_empty(),
                "{}: keys read but not in the schema: {missing:?}",
                filter.name()
            );
        }
        let breaker = keys_read(config_sources(Filter::CircuitBreaker)[0]);
        for key in [
            "breakers",
            "name",
            "split_by",
            "max_keys",
            "slow_call",
            "buckets",
            "jitter",
            "mode",
        ] {
            assert!(breaker.contains(key), "the scan misses {key}: {breaker:?}");
        }
        let log = keys_read(config_sources(Filter::LogEnrichment)[0]);
        for key in [
            "correlation",
            "header",
            "hmac_key",
            "always_keep",
            "separate_fields",
        ] {
            assert!(log.contains(key), "the scan misses {key}: {log:?}");
        }
    }

    fn breaker(fields: &str) -> String {
        format!(r#"{{"breakers":[{{"name":"b",{fields}}}]}}"#)
    }

    fn rule(fields: &str) -> String {
        format!(r#"{{"rules":[{{"name":"r",{fields}}}]}}"#)
    }

    fn serve(source: &str) -> String {
        rule(&format!(r#""serve":[{source}]"#))
    }

    fn many(template: &str, count: usize) -> String {
        (0..count)
            .map(|i| template.replace("{i}", &i.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn invalid_configs(filter: Filter) -> Vec<String> {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match filter {
            Filter::CircuitBreaker => {
                let mut out = strings(&[
                    r#"{"breakerz":[]}"#,
                    r#"{"breakers":{}}"#,
                    r#"{"breakers":[{}]}"#,
                    r#"{"breakers":[{"name":"a b"}]}"#,
                    r#"{"breakers":[{"name":"a","nope":1}]}"#,
                ]);
                out.extend(
                    [
                        r#""max_keys":10"#,
                        r#""split_by":"none","max_keys":10"#,
                        r#""split_by":"cluster","max_keys":0"#,
                        r#""split_by":"host""#,
                        r#""split_by":"header:""#,
                        r#""trip":{"failure_rate":150}"#,
                        r#""trip":{"failure_rate":0}"#,
                        r#""trip":{"failure_rate":"50"}"#,
                        r#""trip":{}"#,
                        r#""trip":{"consecutive_failures":null}"#,
                        r#""trip":{"slow_call_rate":50}"#,
                        r#""failure":null,"trip":{"slow_call_rate":50}"#,
                        r#""trip":{"consecutive_failures":0}"#,
                        r#""trip":{"failure_rate":5,"minimum_calls":0}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"count","size":0}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"count","size":1001}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"count","size":"10s"}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"count","size":10,"buckets":2}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"time","size":100}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"10x"}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"5ms"}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"10s","buckets":61}}"#,
                        r#""trip":{"failure_rate":5,"window":{"kind":"sliding","size":10}}"#,
                        r#""trip":{"failure_rate":5,"window":{"size":10}}"#,
                        r#""failure":{"statuses":["5xy"]}"#,
                        r#""failure":{"statuses":[700]}"#,
                        r#""failure":{"statuses":["6xx"]}"#,
                        r#""failure":{"statuses":[true]}"#,
                        r#""failure":{"response_flags":["UF","BOGUS"]}"#,
                        r#""failure":{"response_flags":["uf"]}"#,
                        r#""failure":{"slow_call":"2 s"}"#,
                        r#""failure":{"slow_call":"0s"}"#,
                        r#""failure":{"slow_call":"1.5ms"}"#,
                        r#""failure":{"statuses":[],"response_flags":[]}"#,
                        r#""open":{"duration":"0s"}"#,
                        r#""open":{"duration":"5"}"#,
                        r#""open":{"duration":"169h"}"#,
                        r#""open":{"duration":5}"#,
                        r#""open":{"backoff_multiplier":0.5}"#,
                        r#""open":{"jitter":1.0}"#,
                        r#""half_open":{"probes":0}"#,
                        r#""half_open":{"probes":1001}"#,
                        r#""half_open":{"max_wait":"0ms"}"#,
                        r#""response":{"status":42}"#,
                        r#""response":{"status":"503"}"#,
                        r#""response":{"headers":{"retry-after":"1"}}"#,
                        r#""response":{"headers":{"X-Breakwater-Breaker":"1"}}"#,
                        r#""response":{"headers":{"x-a":"b\r\nc"}}"#,
                        r#""response":{"headers":{":status":"200"}}"#,
                        r#""response":{"headers":{"x-a":1}}"#,
                        r#""response":{"body":7}"#,
                        r#""mode":"off""#,
                        r#""match":{"path_prefix":"x"}"#,
                        r#""match":{"prefix":"/x"}"#,
                        r#""match":{"path_prefix":"/a","path_exact":"/a"}"#,
                        r#""match":{"path_exact":"/a?x"}"#,
                        r#""match":{"methods":[]}"#,
                        r#""match":{"methods":["GET","get"]}"#,
                        r#""match":{"authority":"a*b"}"#,
                        r#""match":{"authority":"*."}"#,
                        r#""match":{"cluster":""}"#,
                    ]
                    .map(breaker),
                );
                out.push(breaker(&format!(
                    r#""response":{{"headers":{{{}}}}}"#,
                    many(r#""x-{i}":"v""#, MAX_HEADERS + 1)
                )));
                out.push(format!(
                    r#"{{"breakers":[{}]}}"#,
                    many(r#"{"name":"b{i}"}"#, cb::MAX_BREAKERS + 1)
                ));
                out
            }
            Filter::Fallback => {
                let mut out = strings(&[
                    r#"{"rulez":[]}"#,
                    r#"{"rules":[{"name":"r"}]}"#,
                    r#"{"cache":{"max_entries":0}}"#,
                    r#"{"cache":{"max_entries":5000}}"#,
                    r#"{"cache":{"max_bytes":10}}"#,
                    r#"{"cache":{"max_body_bytes":2000000}}"#,
                    r#"{"cache":{"min_store_interval":"soon"}}"#,
                    r#"{"cache":{"size":1}}"#,
                ]);
                out.extend([r#""serve":[]"#, r#""serve":{}"#, r#""on":{"statuses":["5xy"]},"serve":[{"static":{}}]"#, r#""on":{"response_flags":["XX"]},"serve":[{"static":{}}]"#, r#""on":{"statuses":[],"breaker_open":false},"serve":[{"static":{}}]"#, r#""on":{"statuses":[],"response_flags":[],"breaker_open":false},"serve":[{"static":{}}]"#, r#""match":{"path_prefix":"x"},"serve":[{"static":{}}]"#].map(rule));
                out.extend(
                    [
                        "{}",
                        r#"{"static":{},"stale":{"max_age":"1s"}}"#,
                        r#"{"stat1c":{}}"#,
                        r#"{"static":null}"#,
                        r#"{"static":{"status":99}}"#,
                        r#"{"static":{"body":"a","body_base64":"YQ=="}}"#,
                        r#"{"static":{"body_base64":"!!"}}"#,
                        r#"{"static":{"body_base64":"Z"}}"#,
                        r#"{"static":{"body_base64":"Zh=="}}"#,
                        r#"{"static":{"body_base64":"Zg==="}}"#,
                        r#"{"static":{"headers":{"x-breakwater-fallback":"x"}}}"#,
                        r#"{"static":{"headers":{"Content-Length":"1"}}}"#,
                        r#"{"static":{"bdy":"x"}}"#,
                        r#"{"stale":{}}"#,
                        r#"{"stale":{"max_age":"0s"}}"#,
                        r#"{"stale":{"max_age":"10 m"}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":[]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":["2xx"]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":["20x"]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":[200,304]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":["206"]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":["1xx"]}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":[101]}}"#,
                        r#"{"stale":{"max_age":"1m","vary":["a b"]}}"#,
                        r#"{"stale":{"max_age":"1m","allow_credentials":"yes"}}"#,
                        r#"{"stale":{"max_age":"1m"}},{"stale":{"max_age":"2m"}}"#,
                        r#"{"service":{"path":"/x"}}"#,
                        r#"{"service":{"cluster":"","path":"/x"}}"#,
                        r#"{"service":{"cluster":"c","path":"x"}}"#,
                        r#"{"service":{"cluster":"c","path":"/a b"}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"2m"}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"60.001s"}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"0.01667h"}}"#,
                    ]
                    .map(serve),
                );
                out.push(serve(&many(r#"{"static":{}}"#, fb::MAX_SOURCES + 1)));
                out.push(format!(
                    r#"{{"rules":[{}]}}"#,
                    many(
                        r#"{"name":"r{i}","serve":[{"static":{}}]}"#,
                        fb::MAX_RULES + 1
                    )
                ));
                out
            }
            Filter::LogEnrichment => {
                let mut out = strings(&[
                    r#"{"nope":1}"#,
                    r#"{"service":{"name":""}}"#,
                    r#"{"service":{"name":"a\u0007b"}}"#,
                    r#"{"service":{"team":"a"}}"#,
                    r#"{"correlation":{"header":"authorization"}}"#,
                    r#"{"correlation":{"header":"Cookie"}}"#,
                    r#"{"correlation":{"header":"a b"}}"#,
                    r#"{"correlation":{"generate":"yes"}}"#,
                    r#"{"workload_metadata":1}"#,
                    r#"{"request_headers":["authorization"]}"#,
                    r#"{"response_headers":["Set-Cookie"]}"#,
                    r#"{"request_headers":[":path"]}"#,
                    r#"{"request_headers":["a","a"]}"#,
                    r#"{"request_headers":"a"}"#,
                    r#"{"redact":{"detectors":["query_param"]}}"#,
                    r#"{"redact":{"detectors":["nope"]}}"#,
                    r#"{"redact":{"query_params":[""]}}"#,
                    r#"{"redact":{"mode":"hash"}}"#,
                    r#"{"redact":{"mode":"hash","hmac_key":null}}"#,
                    r#"{"redact":{"mode":"hash","hmac_key":"short"}}"#,
                    r#"{"redact":{"mode":"blur"}}"#,
                    r#"{"redact":{"max_value_bytes":15}}"#,
                    r#"{"redact":{"max_value_bytes":16385}}"#,
                    r#"{"sampling":{"rate":1.5}}"#,
                    r#"{"sampling":{"rate":-0.1}}"#,
                    r#"{"sampling":{"always_keep":["fast"]}}"#,
                    r#"{"sampling":{"always_keep":[500]}}"#,
                    r#"{"sampling":{"always_keep":[" fallback"]}}"#,
                    r#"{"sampling":{"slow":"0s"}}"#,
                    r#"{"upstream_headers":{"host":"x"}}"#,
                    r#"{"upstream_headers":{"Connection":"x"}}"#,
                    r#"{"upstream_headers":{"x-a":"a\nb"}}"#,
                    r#"{"body":{"max_bytes":0}}"#,
                    r#"{"body":{"max_bytes":65537}}"#,
                    r#"{"body":{"content_types":[]}}"#,
                    r#"{"body":{"content_types":["json"]}}"#,
                    r#"{"body":{"content_types":["text/plain;charset=utf-8"]}}"#,
                    r#"{"separate_fields":1}"#,
                ]);
                out.push(format!(r#"{{"service":{{"name":"{}"}}}}"#, "x".repeat(129)));
                out.push(format!(
                    r#"{{"request_headers":[{}]}}"#,
                    many(r#""x-{i}""#, le::MAX_LOGGED_HEADERS + 1)
                ));
                out.push(format!(
                    r#"{{"redact":{{"query_params":[{}]}}}}"#,
                    many(r#""q{i}""#, le::MAX_QUERY_PARAMS + 1)
                ));
                out
            }
        }
    }

    #[test]
    fn invalid_configs_are_refused_by_both() {
        for filter in ALL {
            let validator = Validator::of(filter);
            let cases = invalid_configs(filter);
            assert!(cases.len() >= 30);
            for json in cases {
                let config: Value = serde_json::from_str(&json).unwrap();
                let (by_parser, by_schema) = (parser(filter, &config), validator.check(&config));
                assert!(
                    by_parser.is_err() && by_schema.is_err(),
                    "{}: {json}\n parser: {by_parser:?}\n schema: {by_schema:?}",
                    filter.name()
                );
            }
        }
    }

    /// The first JSON block after a heading of the README.
    fn readme_example(heading: &str) -> Value {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find(heading).unwrap()..];
        let block = &section[section.find("```json\n").unwrap() + 8..];
        serde_json::from_str(&block[..block.find("```").unwrap()]).unwrap()
    }

    fn valid_configs(filter: Filter) -> Vec<Value> {
        let parse = |list: Vec<String>| -> Vec<Value> {
            list.iter()
                .map(|j| serde_json::from_str(j).unwrap())
                .collect()
        };
        match filter {
            Filter::CircuitBreaker => {
                let mut out = vec![
                    readme_example("## Circuit breaker reference"),
                    json!({}),
                    json!({"breakers": null}),
                    json!({"breakers": []}),
                ];
                out.extend(parse(
                    [
                        r#""match":null,"split_by":null,"max_keys":null,"failure":null,"trip":null,"open":null,"half_open":null,"response":null,"mode":null"#,
                        r#""match":{"path_prefix":"/a","path_exact":null,"methods":null}"#,
                        r#""match":{"authority":"[::1]:8080"}"#,
                        r#""split_by":"header:X-Tenant","max_keys":100000"#,
                        r#""failure":{"statuses":["+503"," 5XX ","500 - 504",599,"0503","50x"],"slow_call":" .5s "}"#,
                        r#""failure":{"statuses":[],"response_flags":[],"slow_call":"5.s"}"#,
                        r#""failure":{"statuses":[]}"#,
                        r#""failure":{"response_flags":[]}"#,
                        r#""trip":{"failure_rate":100,"slow_call_rate":null}"#,
                        r#""trip":{"consecutive_failures":4294967295,"window":{"kind":"count","size":1000,"buckets":null}}"#,
                        r#""trip":{"failure_rate":0.5,"window":{"kind":"time","size":"0.6s","buckets":60}}"#,
                        r#""trip":{"failure_rate":0.5,"window":{"kind":"time","size":"10ms","buckets":1}}"#,
                        r#""open":{"duration":"168h","max_duration":"168h","backoff_multiplier":1,"jitter":0}"#,
                        r#""open":{"duration":"0.001s","max_duration":"0005s"}"#,
                        r#""half_open":{"probes":1000,"max_wait":"1.0ms"}"#,
                        r#""response":{"status":200,"headers":{},"body":""}"#,
                        r#""response":{"headers":{"Retry-After-X":"1","x-a":""}}"#,
                        r#""mode":"forced_open""#,
                    ]
                    .map(breaker)
                    .to_vec(),
                ));
                out
            }
            Filter::Fallback => {
                let mut out = vec![
                    readme_example("## Fallback reference"),
                    json!({}),
                    json!({"rules": null, "cache": null}),
                    json!({"cache": {"max_bytes": 1024, "max_body_bytes": 1024, "min_store_interval": "0s"}}),
                ];
                out.extend(parse(
                    [
                        r#"{"static":{"body_base64":" Zg== "}}"#,
                        r#"{"static":{"body_base64":"Zm9v\nYmE"}}"#,
                        r#"{"static":{"body_base64":""}}"#,
                        r#"{"static":{"body":null,"body_base64":"AA"}}"#,
                        r#"{"static":{"status":599,"headers":{"Content-Type":"text/plain"}}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"60s"}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"0.01666h"}}"#,
                        r#"{"service":{"cluster":"c","path":"/x","timeout":"1m"}}"#,
                        r#"{"stale":{"max_age":"1m","statuses":["21x","4xx"," 404 ",599,"200-205"],"vary":["X_Tenant"]}}"#,
                        r#"{"stale":{"max_age":"1m"}},{"service":{"cluster":"c","path":"/"}},{"static":{}}"#,
                    ]
                    .map(serve)
                    .to_vec(),
                ));
                out.extend(parse(vec![rule(r#""on":null,"serve":[{"static":{}}]"#), rule(r#""on":{"statuses":[],"breaker_open":true},"serve":[{"static":{}}]"#), rule(r#""on":{"statuses":[],"response_flags":["UO"],"breaker_open":false},"serve":[{"static":{}}]"#)]));
                out
            }
            Filter::LogEnrichment => vec![
                readme_example("## Log enrichment reference"),
                json!({}),
                json!({"service": {"name": "é", "region": null}, "redact": {"mode": "hash", "hmac_key": "0123456789abcdef"}}),
                json!({"redact": {"mode": null, "hmac_key": "short keys are fine without hash"}}),
                json!({"redact": {"mode": "mask", "detectors": ["email", "email"], "query_params": []}}),
                json!({"correlation": {"header": "X-Request-Trace"}, "upstream_headers": {"x-correlation-id": "fixed"}}),
                json!({"sampling": {"rate": 0, "always_keep": [" 5xx ", "429", "500-504", "fallback"]}}),
                json!({"body": {}, "request_headers": [], "upstream_headers": {}}),
            ],
        }
    }

    #[test]
    fn valid_configs_pass_both() {
        for filter in ALL {
            let validator = Validator::of(filter);
            for config in valid_configs(filter) {
                let (by_parser, by_schema) = (parser(filter, &config), validator.check(&config));
                assert!(
                    by_parser.is_ok() && by_schema.is_ok(),
                    "{}: {config}\n parser: {by_parser:?}\n schema: {by_schema:?}",
                    filter.name()
                );
            }
        }
    }

    /// The rules the schema cannot express (listed in the module's documentation): the parser
    /// refuses these and the schema lets them pass.
    fn gaps(filter: Filter) -> Vec<String> {
        match filter {
            Filter::CircuitBreaker => vec![
                r#"{"breakers":[{"name":"a"},{"name":"a"}]}"#.to_string(),
                breaker(r#""trip":{"failure_rate":5,"minimum_calls":200}"#),
                breaker(r#""open":{"duration":"10s","max_duration":"5s"}"#),
                breaker(r#""trip":{"failure_rate":5,"window":{"kind":"time","size":"50ms"}}"#),
                breaker(r#""failure":{"statuses":["504-500"]}"#),
                breaker(&format!(r#""response":{{"body":"{}"}}"#, "é".repeat(40_000))),
                breaker(r#""trip":{"consecutive_failures":5.0}"#),
            ],
            Filter::Fallback => vec![
                r#"{"rules":[{"name":"a","serve":[{"static":{}}]},{"name":"a","serve":[{"static":{}}]}]}"#.to_string(),
                r#"{"cache":{"max_bytes":2048,"max_body_bytes":4096}}"#.to_string(),
                serve(r#"{"stale":{"max_age":"1m","statuses":["200-210"]}}"#),
                serve(&format!(r#"{{"static":{{"body_base64":"{}"}}}}"#, "AAAA".repeat(21_846))),
                r#"{"cache":{"max_entries":1e3}}"#.to_string(),
            ],
            Filter::LogEnrichment => vec![
                r#"{"upstream_headers":{"x-correlation-id":"x"}}"#.to_string(),
                r#"{"request_headers":["X-A","x-a"]}"#.to_string(),
                format!(r#"{{"service":{{"name":"{}"}}}}"#, "é".repeat(100)),
                r#"{"redact":{"mode":"hash","hmac_key":"ééééé"}}"#.to_string(),
            ],
        }
    }

    #[test]
    fn the_listed_gaps_are_the_only_known_ones() {
        for filter in ALL {
            let validator = Validator::of(filter);
            for json in gaps(filter) {
                let config: Value = serde_json::from_str(&json).unwrap();
                assert!(
                    parser(filter, &config).is_err(),
                    "{}: the parser takes {json}",
                    filter.name()
                );
                assert!(
                    validator.check(&config).is_ok(),
                    "{}: the schema now refuses {json}: update the list",
                    filter.name()
                );
            }
        }
        // Stricter than the parser: null beside the source kind of a `serve` element.
        let config: Value =
            serde_json::from_str(&serve(r#"{"static":null,"stale":{"max_age":"1m"}}"#)).unwrap();
        assert!(parser(Filter::Fallback, &config).is_ok());
        assert!(Validator::of(Filter::Fallback).check(&config).is_err());
    }

    #[test]
    fn defaults_are_what_the_parser_assumes() {
        for filter in ALL {
            let (schema, example) = (schema(filter), maximal(filter));
            let validator = Validator::new(schema.clone());
            let mut sites = Vec::new();
            visit(
                &schema,
                &schema,
                &example,
                ("", ""),
                &mut |path, pointer, property| {
                    if let Some(default) = property.get("default") {
                        sites.push((path.to_string(), pointer.to_string(), default.clone()));
                    }
                },
            );
            let (mut tried, mut proven) = (BTreeSet::new(), BTreeSet::new());
            for (path, pointer, default) in sites {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                let mut without = example.clone();
                without
                    .pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove(key);
                let mut explicit = example.clone();
                explicit.pointer_mut(parent).unwrap()[key] = default.clone();
                let meaning = parsed(filter, &without);
                assert_eq!(
                    meaning,
                    parsed(filter, &explicit),
                    "{}: {path}: the parser does not assume {default}",
                    filter.name()
                );
                tried.insert(path.clone());
                if meaning.is_ok() {
                    validator.check(&explicit).unwrap();
                    proven.insert(path);
                }
            }
            assert_eq!(
                tried,
                proven,
                "{}: defaults tried only on invalid configs",
                filter.name()
            );
            assert!(tried.len() >= 8, "{}: {tried:?}", filter.name());
        }
    }

    #[test]
    fn schemas_are_well_formed() {
        /// Conditions (`if`, `not`, ...) only speak of declared properties.
        fn conditions(root: &Value, declared: &Value, condition: &Value, errors: &mut Vec<String>) {
            let declared = resolve(root, declared);
            if let Some(props) = condition.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    match declared["properties"].get(key) {
                        Some(decl) => conditions(root, decl, sub, errors),
                        None => errors.push(format!("a condition names undeclared {key}")),
                    }
                }
            }
            for keyword in ["if", "then", "else", "not"] {
                if let Some(sub) = condition.get(keyword) {
                    conditions(root, declared, sub, errors);
                }
            }
            for keyword in ["anyOf", "allOf", "oneOf"] {
                for sub in condition
                    .get(keyword)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    conditions(root, declared, sub, errors);
                }
            }
        }
        fn check(root: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
            let schema = resolve(root, schema);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                if schema.get("additionalProperties") != Some(&json!(false)) {
                    errors.push(format!("{path}: additional properties allowed"));
                }
                for (key, sub) in props {
                    if sub.get("type").is_none() || sub.get("description").is_none() {
                        errors.push(format!("{}: no type or description", join(path, key)));
                    }
                    check(root, sub, &join(path, key), errors);
                }
                for keyword in ["if", "then", "else", "not", "anyOf", "allOf", "oneOf"] {
                    if let Some(sub) = schema.get(keyword) {
                        conditions(root, schema, &json!({keyword: sub}), errors);
                    }
                }
            }
            if let Some(items) = schema.get("items") {
                check(root, items, &format!("{path}[]"), errors);
            }
        }
        for filter in ALL {
            let schema = schema(filter);
            let mut errors = Vec::new();
            check(&schema, &schema, "", &mut errors);
            assert!(errors.is_empty(), "{}: {errors:#?}", filter.name());
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert_eq!(
                schema["$id"],
                format!("https://breakwater.dev/schemas/{}.json", filter.name())
            );
            // Every `$ref` resolves (boon refuses the schema otherwise) and every def is used.
            Validator::of(filter);
            let mut used = Vec::new();
            refs(&schema, &mut used);
            for name in schema["$defs"].as_object().unwrap().keys() {
                assert!(used.contains(&format!("#/$defs/{name}")), "{name} unused");
            }
        }
    }

    /// A small deterministic generator (xorshift), for sampling strings.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
            list[self.below(list.len())]
        }

        fn digits(&mut self, max: usize) -> String {
            (0..self.below(max + 1))
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    /// Every string of up to `length` characters from `alphabet`.
    fn all_strings(alphabet: &[char], length: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..length {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    const SPACES: &[&str] = &[
        "", " ", "\t", "\u{85}", "\u{a0}", "\u{3000}", "\u{feff}", "\u{b}",
    ];

    #[test]
    fn duration_patterns_accept_what_the_parser_accepts() {
        let mut samples = all_strings(&['0', '1', '6', '9', '.', 'm', 's', 'h', ' '], 4);
        let wholes = [
            "",
            "0",
            "00",
            "1",
            "5",
            "9",
            "10",
            "59",
            "60",
            "61",
            "167",
            "168",
            "169",
            "10079",
            "10080",
            "10081",
            "60000",
            "60001",
            "604799",
            "604800",
            "604801",
            "604799999",
            "604800000",
            "604800001",
            "99999999999999999999",
        ];
        let fractions = [
            "", "0", "00", "000", "0000", "00000", "000000", "001", "0001", "00001", "000001",
            "01", "01666", "01667", "016666", "5", "999", "9999", "99999", "999999", "100", "1000",
            "10000",
        ];
        let units = ["ms", "s", "m", "h", "", "x", "M", "sec"];
        for whole in wholes {
            for fraction in fractions {
                for unit in units {
                    samples.push(format!("{whole}.{fraction}{unit}"));
                    if fraction.is_empty() {
                        samples.push(format!("{whole}{unit}"));
                    }
                }
            }
        }
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let whole = if random.below(2) == 0 {
                random.pick(&wholes).to_string()
            } else {
                random.digits(10)
            };
            let dot = random.pick(&["", ".", "."]);
            let fraction = if random.below(2) == 0 {
                random.pick(&fractions).to_string()
            } else {
                random.digits(8)
            };
            let (before, unit, after) = (
                random.pick(SPACES),
                random.pick(&units),
                random.pick(SPACES),
            );
            samples.push(format!("{before}{whole}{dot}{fraction}{unit}{after}"));
        }
        for (def, low, high) in [
            ("duration", 0, MAX_MILLIS),
            ("positive_duration", 1, MAX_MILLIS),
            ("window_size", 10, MAX_MILLIS),
            ("service_timeout", 1, fb::MAX_SERVICE_TIMEOUT_MS),
        ] {
            let validator = Validator::of_def(def, json!("string"));
            let mut accepted = 0;
            for text in &samples {
                let by_parser =
                    duration::parse(text).is_ok_and(|d| (low..=high).contains(&d.as_u64()));
                let by_schema = validator.check(&json!(text)).is_ok();
                assert_eq!(by_parser, by_schema, "{def}: {text:?}");
                accepted += usize::from(by_parser);
            }
            assert!(accepted > 500, "{def}: {accepted}");
        }
    }

    #[test]
    fn status_patterns_accept_what_the_parser_accepts() {
        let mut samples = all_strings(&['0', '1', '2', '5', '6', '9', 'x', 'X', '-', '+', ' '], 4);
        let codes = [
            "99", "100", "101", "199", "200", "205", "206", "207", "299", "303", "304", "305",
            "499", "500", "599", "600", "0503", "+503", "5xx", "20x", "1xx",
        ];
        for low in codes {
            for high in codes {
                samples.push(format!("{low}-{high}"));
                samples.push(format!(" {low} - {high} "));
            }
        }
        for first in 0..10 {
            for second in 0..10 {
                for third in ["x", "X", "0", "6"] {
                    samples.push(format!("{first}{second}{third}"));
                    samples.push(format!("{first}{third}{third}"));
                }
            }
        }
        let mut random = Random(0x2545_F491_4F6C_DD1D);
        for _ in 0..3000 {
            let (before, after) = (random.pick(SPACES), random.pick(SPACES));
            let code = random.pick(&codes);
            samples.push(format!("{before}{code}{after}"));
        }
        let kept: fn(u32) -> bool = |c| !(100..200).contains(&c) && c != 206 && c != 304;
        for (def, allowed) in [
            ("status", (|_| true) as fn(u32) -> bool),
            ("kept_status", kept),
        ] {
            let validator = Validator::of_def(def, json!(["integer", "string"]));
            let read = |item: ConfigValue| {
                status::field(Field::new(
                    &ConfigValue::Array(vec![item]),
                    FieldPath::root("s"),
                ))
                .is_ok_and(|set| (0..1000).all(|c| !set.contains(c) || allowed(c)))
            };
            for n in 0..1000u32 {
                let by_parser =
                    read(breakwater_common::json::parse(n.to_string().as_bytes()).unwrap());
                assert_eq!(by_parser, validator.check(&json!(n)).is_ok(), "{def}: {n}");
            }
            let mut accepted = 0;
            for text in &samples {
                let by_parser = read(ConfigValue::String(text.clone()));
                let by_schema = validator.check(&json!(text)).is_ok();
                // The known gap: a range is only checked at its ends.
                let ends_ok = text.trim().split_once('-').is_some_and(|(a, b)| {
                    [a, b].iter().all(|end| {
                        read(ConfigValue::String(end.trim().to_string()))
                            && !end.contains(['x', 'X'])
                    })
                });
                assert!(
                    by_parser == by_schema || (by_schema && ends_ok),
                    "{def}: {text:?}: parser {by_parser}, schema {by_schema}"
                );
                accepted += usize::from(by_parser);
            }
            assert!(accepted > 500, "{def}: {accepted}");
        }
    }

    #[test]
    fn the_base64_pattern_accepts_what_the_decoder_accepts() {
        let mut samples = all_strings(&['A', 'B', 'Q', 'g', '/', '=', ' ', '*'], 5);
        let mut random = Random(0x1234_5678_9ABC_DEF1);
        let alphabet: Vec<String> = "ABQgwEIo09+/= \n\t*-_é".chars().map(String::from).collect();
        let alphabet: Vec<&str> = alphabet.iter().map(String::as_str).collect();
        for _ in 0..5000 {
            let length = 6 + random.below(10);
            samples.push((0..length).map(|_| random.pick(&alphabet)).collect());
        }
        let validator = Validator::new(
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://breakwater.dev/schemas/test-base64.json", "pattern": BASE64}),
        );
        let mut accepted = 0;
        for text in &samples {
            let by_decoder = base64::decode(text).is_ok();
            assert_eq!(
                by_decoder,
                validator.check(&json!(text)).is_ok(),
                "{text:?}"
            );
            accepted += usize::from(by_decoder);
        }
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn patterns_for_ranges_of_numbers() {
        assert_eq!(integer_range(1, 9), "[1-9]");
        assert_eq!(integer_range(1, 168), "[1-9][0-9]?|1([0-5][0-9]|6[0-8])");
        assert_eq!(integer_range(10, 10), "10");
        assert_eq!(
            digit_set([0, 1, 2, 3, 4, 5, 7, 8, 9].into_iter()),
            "[0-57-9]"
        );
        assert_eq!(caseless(&["age", "x-a"]), "^([Aa][Gg][Ee]|[Xx]-[Aa])$");
    }

    #[test]
    fn run_prints_a_known_filter_only() {
        assert!(run(&["nope".to_string()])
            .unwrap_err()
            .contains("circuit-breaker, fallback, log-enrichment"));
        assert!(run(&[]).unwrap_err().starts_with("usage"));
        assert!(run(&["a".to_string(), "b".to_string()]).is_err());
        for filter in ALL {
            let text = render(filter).unwrap();
            assert!(text.ends_with("}\n"));
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                schema(filter)
            );
        }
    }
}
