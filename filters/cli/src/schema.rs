//! `breakwater schema FILTER`: the JSON Schema (draft 2020-12) of a filter's configuration, for
//! editors to check a WasmPlugin `pluginConfig` (or an Envoy `configuration`) as it is typed.
//! The shipped copies are `filters/<filter>/config.schema.json` (`make schemas`).
//!
//! The schemas are derived (schemars) from the same raw serde types the filters read their
//! configuration with, so a key, a type or a bound cannot drift from the parser; defaults,
//! bounds and patterns come from the constants the checks use. The tests below also hold the
//! schemas to the parsers: example configurations pass both, invalid ones are refused by both,
//! each `default` is what the parser assumes, and the patterns for durations, statuses and
//! base64 accept exactly what `breakwater_common` accepts.
//!
//! Like the parsers, the schemas take a JSON `null` for an optional key as the key being absent.
//! Where the schema is looser than the parser (it is never stricter):
//! - unique `breakers[].name` / `rules[].name`: not expressible (no uniqueness of one field);
//! - `trip.minimum_calls` at most a count window's `size`, `open.max_duration` at least
//!   `open.duration`, `cache.max_body_bytes` at most `cache.max_bytes`, a time window's `size`
//!   at least 10ms per bucket (the schema asks for 10ms), the upstream headers not naming
//!   `correlation.header`: comparisons between two values are not expressible;
//! - status ranges: `"504-500"` (start after end) and, for `stale.statuses`, a range that covers
//!   a status that cannot be kept (`"200-210"` covers 206) pass; only the ends are checked;
//! - byte lengths (`response.body`, `static.body`, header values, labels, media types): JSON
//!   Schema counts characters, so a value within the limit in characters but over it in UTF-8
//!   bytes passes; the decoded size of `static.body_base64` is not checked;
//! - header names listed twice in different case: `uniqueItems` and object keys are
//!   case-sensitive;
//! - numbers: the parsers take whole numbers only as written without fraction or exponent
//!   (`5`, not `5.0` or `5e0`); JSON Schema's `integer` accepts all three.
//!
//! One way the parsers are looser than the schemas: serde's derived structs also read an object
//! written as an array of its values in field order (`"half_open": [3, "10s"]`); the schemas,
//! and the documentation, only know objects.

use crate::filters::{Filter, ALL};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};
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
        Filter::CircuitBreaker => derive::<circuit_breaker::config::RawConfig>(filter),
        Filter::Fallback => derive::<fallback::config::RawConfig>(filter),
        Filter::LogEnrichment => derive::<log_enrichment::config::RawConfig>(filter),
    }
}

/// The draft 2020-12 schema of a raw configuration type, with the filter's `$id`.
fn derive<T: JsonSchema>(filter: Filter) -> Value {
    let mut derived = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    unwrap_doc_lines(&mut derived);
    // The identifying keys first, as a reader expects them.
    let mut out = Map::new();
    out.insert(
        "$id".to_string(),
        Value::String(format!(
            "https://breakwater.dev/schemas/{}.json",
            filter.name()
        )),
    );
    if let Value::Object(map) = derived {
        for key in ["$schema", "$id", "title", "description"] {
            if let Some(value) = map.get(key) {
                out.insert(key.to_string(), value.clone());
            }
        }
        for (key, value) in map {
            if !out.contains_key(&key) {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}

/// Descriptions come from doc comments wrapped at 100 columns: one line per paragraph.
fn unwrap_doc_lines(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_doc_lines(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_doc_lines),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::base64;
    use breakwater_common::duration::{self, MAX_MILLIS};
    use breakwater_common::headers::MAX_HEADERS;
    use breakwater_common::schema::{
        caseless, duration_pattern, integer_range, status_item, BASE64,
    };
    use breakwater_common::status::StatusSet;
    use circuit_breaker::config as cb;
    use fallback::config as fb;
    use log_enrichment::config as le;
    use serde_json::json;
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

        /// A validator for a schema fragment on its own.
        fn of_fragment(name: &str, fragment: Value) -> Self {
            let mut schema: Map<String, Value> = fragment.as_object().cloned().unwrap_or_default();
            schema.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
            schema.insert(
                "$id".into(),
                json!(format!("https://breakwater.dev/schemas/test-{name}.json")),
            );
            Validator::new(Value::Object(schema))
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

    /// The schema a property stands for: through a `$ref`, and through the `anyOf` of a
    /// nullable `$ref` (schemars' form for an `Option` of a named type).
    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            return resolve(root, &root["$defs"][name]);
        }
        if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
            let not_null: Vec<&Value> = alternatives
                .iter()
                .filter(|a| a.get("type") != Some(&json!("null")))
                .collect();
            if let [one] = not_null.as_slice() {
                return resolve(root, one);
            }
        }
        schema
    }

    /// Every `$ref` in a schema.
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

    /// The alternatives of a `oneOf` (a fallback source), resolved.
    fn alternatives<'a>(root: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
        schema
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|alternative| resolve(root, alternative))
            .collect()
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
        for alternative in alternatives(root, schema) {
            property_paths(root, alternative, prefix, out);
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
        for alternative in alternatives(root, schema) {
            visit(root, alternative, value, (prefix, pointer), f);
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
                    "failure": {"statuses": [503, "5xx", "500-504", " 429 "], "response_flags": ["UF", "UT", "URX", "UC"], "slow_call": "2s", "hang_after": "500ms", "grpc_statuses": ["UNAVAILABLE", 4, "internal"]},
                    "trip": {"consecutive_failures": 5, "failure_rate": 50, "slow_call_rate": 80.5, "minimum_calls": 20, "window": {"kind": "count", "size": 100}},
                    "open": {"duration": "5s", "max_duration": "60s", "backoff_multiplier": 2.0, "jitter": 0.1,
                             "release_in_flight": true, "release_after": "250ms", "release_methods": ["GET", "HEAD", "POST"]},
                    "half_open": {"probes": 3, "max_wait": "10s"},
                    "response": {"status": 503, "headers": {"content-type": "application/json"}, "body": "{\"error\":\"unavailable\"}", "grpc": {"status": "RESOURCE_EXHAUSTED", "message": "recommendations are resting"}},
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
                        "on": {"statuses": ["5xx", 429], "response_flags": ["UF", "UT"], "breaker_open": true, "grpc_statuses": ["UNAVAILABLE", 4]},
                        "serve": [
                            {"stale": {"max_age": "10m", "statuses": [200, "203", "404-410"], "vary": ["accept-language"], "allow_credentials": false}},
                            {"service": {"cluster": "popular-cache", "path": "/popular.json?n=10", "authority": "popular.internal", "timeout": "300ms"}},
                            {"static": {"status": 200, "headers": {"content-type": "application/json"}, "body": "[]"}},
                            {"static": {"status": 503, "body_base64": "AP8="}},
                            {"grpc": {"status": "FAILED_PRECONDITION", "message": "degraded: popular items only", "metadata": {"x-degraded": "popular", "trace-bin": "AP8="}}},
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
                "redact": {"detectors": ["email", "payment_card", "no_bank_account"], "query_params": ["token"], "mode": "hash", "hmac_key": "0123456789abcdef0123", "max_value_bytes": 2048,
                    "patterns": [{"name": "customer_no", "regex": "\\b\\d{8}\\b", "validate": "mod11", "keywords": ["kundenr"], "keyword_distance": 20}]},
                "sampling": {"rate": 0.25, "always_keep": ["5xx", "429", "500-504", "fallback", "breaker_rejected", "slow", "response_flags", "grpc_error", "UNAVAILABLE", "deadline_exceeded"], "slow": "1s"},
                "upstream_headers": {"x-breakwater-service": "checkout"},
                "body": {"max_bytes": 4096, "content_types": ["application/json", "text/plain"], "redact_fields": ["customer.ssn", "items[].card"], "keep_fields": ["id", "customer"], "parse_max_bytes": 8192},
                "separate_fields": false,
                "envoy_fields": "access_log",
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
                        r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":[]}"#,
                        r#""failure":{"statuses":[],"response_flags":[]}"#,
                        r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":null,"slow_call":null}"#,
                        r#""failure":{"grpc_statuses":["UNAVAILABLE","OK"]}"#,
                        r#""failure":{"grpc_statuses":[14,0]}"#,
                        r#""failure":{"grpc_statuses":[" ok "]}"#,
                        r#""failure":{"grpc_statuses":[" 000 "]}"#,
                        r#""failure":{"grpc_statuses":["\u00a00\u3000"]}"#,
                        r#""failure":{"grpc_statuses":["+0"]}"#,
                        r#""failure":{"grpc_statuses":["+14"]}"#,
                        r#""failure":{"grpc_statuses":["-0"]}"#,
                        r#""failure":{"grpc_statuses":["\ufeff14"]}"#,
                        r#""failure":{"grpc_statuses":["017"]}"#,
                        r#""failure":{"grpc_statuses":["NOPE"]}"#,
                        r#""failure":{"grpc_statuses":[17]}"#,
                        r#""failure":{"grpc_statuses":["UNAVAILABLE_"]}"#,
                        r#""failure":{"grpc_statuses":"UNAVAILABLE"}"#,
                        r#""response":{"grpc":{"status":"OK"}}"#,
                        r#""response":{"grpc":{"status":" ok "}}"#,
                        r#""response":{"grpc":{"status":0}}"#,
                        r#""response":{"grpc":{"status":"00"}}"#,
                        r#""response":{"grpc":{"status":"+0"}}"#,
                        r#""response":{"grpc":{"status":"+14"}}"#,
                        r#""response":{"grpc":{"status":"\u00a0Ok"}}"#,
                        r#""response":{"grpc":{"status":-1}}"#,
                        r#""response":{"grpc":{"status":"teapot"}}"#,
                        r#""response":{"grpc":{"code":14}}"#,
                        r#""open":{"duration":"0s"}"#,
                        r#""open":{"release_in_flight":"yes"}"#,
                        r#""open":{"release_after":"0s"}"#,
                        r#""open":{"release_methods":["get"]}"#,
                        r#""open":{"release_methods":[]}"#,
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
                // gRPC: the grpc source and the triggers that need it.
                out.extend(
                    [
                        r#"{"grpc":{}}"#,
                        r#"{"grpc":null}"#,
                        r#"{"grpc":{"status":"OK"}}"#,
                        r#"{"grpc":{"status":"ok"}}"#,
                        r#"{"grpc":{"status":0}}"#,
                        r#"{"grpc":{"status":" 00 "}}"#,
                        r#"{"grpc":{"status":"+0"}}"#,
                        r#"{"grpc":{"status":"+14"}}"#,
                        r#"{"grpc":{"status":"\u3000oK"}}"#,
                        r#"{"grpc":{"status":17}}"#,
                        r#"{"grpc":{"status":-1}}"#,
                        r#"{"grpc":{"status":"NOPE"}}"#,
                        r#"{"grpc":{"status":true}}"#,
                        r#"{"grpc":{"status":14,"mesage":"x"}}"#,
                        r#"{"grpc":{"status":14,"message":7}}"#,
                        r#"{"grpc":{"status":14},"static":{}}"#,
                        r#"{"grpc":{"status":14,"metadata":{":status":"200"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"a b":"x"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"x~y":"x"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"":"x"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"x-a":"caf\u00e9"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"x-a":"a\tb"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"x-a":"a\r\nb"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"x-a":1}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"trace-bin":"not base64!"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"Trace-BIN":"Zm9v YmFy"}}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"trace-bin":"Zh=="}}}"#,
                        r#"{"grpc":{"status":14,"metadata":[]}}"#,
                    ]
                    .map(serve),
                );
                for (name, _) in fb::RESERVED_GRPC_METADATA {
                    for spelled in [name.to_string(), name.to_ascii_uppercase()] {
                        out.push(serve(&format!(
                            r#"{{"grpc":{{"status":14,"metadata":{{"{spelled}":"x"}}}}}}"#
                        )));
                    }
                }
                out.push(serve(&format!(
                    r#"{{"grpc":{{"status":14,"message":"{}"}}}}"#,
                    "m".repeat(breakwater_common::grpc::MAX_GRPC_MESSAGE_BYTES + 1)
                )));
                out.push(serve(&format!(
                    r#"{{"grpc":{{"status":14,"metadata":{{"x-a":"{}"}}}}}}"#,
                    "v".repeat(breakwater_common::headers::MAX_HEADER_VALUE_BYTES + 1)
                )));
                out.push(serve(&format!(
                    r#"{{"grpc":{{"status":14,"metadata":{{{}}}}}}}"#,
                    many(r#""x-{i}":"v""#, MAX_HEADERS + 1)
                )));
                out.extend(
                    [
                        r#""on":{"grpc_statuses":["UNAVAILABLE"]},"serve":[{"static":{}}]"#,
                        r#""on":{"grpc_statuses":[14]},"serve":[{"stale":{"max_age":"1m"}},{"service":{"cluster":"c","path":"/"}}]"#,
                        r#""on":{"grpc_statuses":[14,"OK"]},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"grpc_statuses":[0]},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"grpc_statuses":[14," 00 "]},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"grpc_statuses":["+0"]},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"grpc_statuses":["NOPE"]},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"grpc_statuses":"UNAVAILABLE"},"serve":[{"grpc":{"status":14}}]"#,
                        r#""on":{"statuses":[],"breaker_open":false,"grpc_statuses":[]},"serve":[{"grpc":{"status":14}}]"#,
                    ]
                    .map(rule),
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
                    r#"{"sampling":{"always_keep":["NOPE"]}}"#,
                    r#"{"sampling":{"always_keep":["GRPC_ERROR"]}}"#,
                    r#"{"sampling":{"always_keep":[" UNAVAILABLE"]}}"#,
                    r#"{"sampling":{"always_keep":["UNAVAILABLE_"]}}"#,
                    r#"{"sampling":{"always_keep":["14"]}}"#,
                    r#"{"sampling":{"always_keep":[14]}}"#,
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
                    r#"{"redact":{"patterns":[{"name":"email","regex":"x"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"query_param","regex":"x"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"Kunde","regex":"x"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"1a","regex":"x"}]}}"#,
                    r#"{"redact":{"patterns":[{"regex":"x"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":""}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","validate":"crc"}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","keywords":[]}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","keywords":[""]}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","keyword_distance":5}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","keywords":["k"],"keyword_distance":0}]}}"#,
                    r#"{"redact":{"patterns":[{"name":"a","regex":"x","flags":"i"}]}}"#,
                    r#"{"redact":{"patterns":{"name":"a","regex":"x"}}}"#,
                    r#"{"body":{"redact_fields":["a..b"]}}"#,
                    r#"{"body":{"redact_fields":["a[0]"]}}"#,
                    r#"{"body":{"keep_fields":["[]"]}}"#,
                    r#"{"body":{"keep_fields":[".a"]}}"#,
                    r#"{"body":{"parse_max_bytes":0}}"#,
                    r#"{"body":{"parse_max_bytes":65537}}"#,
                ]);
                out.push(format!(
                    r#"{{"redact":{{"patterns":[{}]}}}}"#,
                    many(
                        r#"{"name":"p{i}","regex":"x"}"#,
                        log_enrichment::patterns::MAX_PATTERNS + 1
                    )
                ));
                out.push(format!(
                    r#"{{"redact":{{"patterns":[{{"name":"a","regex":"{}"}}]}}}}"#,
                    "x".repeat(log_enrichment::patterns::MAX_REGEX_BYTES + 1)
                ));
                out.push(format!(
                    r#"{{"body":{{"redact_fields":[{}]}}}}"#,
                    many(r#""f{i}""#, log_enrichment::fields::MAX_FIELD_RULES + 1)
                ));
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
        let mut all_missed = Vec::new();
        for filter in ALL {
            let validator = Validator::of(filter);
            let cases = invalid_configs(filter);
            assert!(cases.len() >= 30);
            let mut missed = Vec::new();
            for json in cases {
                let config: Value = serde_json::from_str(&json).unwrap();
                let (by_parser, by_schema) = (parser(filter, &config), validator.check(&config));
                if !(by_parser.is_err() && by_schema.is_err()) {
                    missed.push(format!(
                        "{json}\n parser: {by_parser:?}\n schema: {by_schema:?}"
                    ));
                }
            }
            all_missed.extend(
                missed
                    .into_iter()
                    .map(|m| format!("{}: {m}", filter.name())),
            );
        }
        assert!(all_missed.is_empty(), "{}", all_missed.join("\n"));
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
                        r#""failure":{"grpc_statuses":[" Unavailable ","14",1,"data_loss","0016","\u00a04\u3000"]}"#,
                        r#""failure":{"statuses":[],"response_flags":[],"grpc_statuses":["INTERNAL"]}"#,
                        r#""failure":{"statuses":[],"grpc_statuses":null}"#,
                        r#""response":{"grpc":{"status":" 8 ","message":""}}"#,
                        r#""response":{"grpc":{"status":"\t016\n"}}"#,
                        r#""response":{"grpc":{"status":null,"message":null}}"#,
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
                out.push(readme_example("### gRPC calls"));
                out.extend(parse(
                    [
                        r#"{"grpc":{"status":"unavailable"}}"#,
                        r#"{"grpc":{"status":16,"message":"","metadata":{}}}"#,
                        r#"{"grpc":{"status":" 14 ","message":null,"metadata":null}}"#,
                        r#"{"grpc":{"status":"\u3000014\u0085"}}"#,
                        r#"{"grpc":{"status":"Resource_Exhausted","message":"é % ünïcode"}}"#,
                        r#"{"grpc":{"status":14,"metadata":{"A-Bin":"AP8","b-bin":"AP8=","x.y_z":" ~!","c":"","grpc-retry-pushback-ms":"500","Grpc-Status-X":"1"}}}"#,
                        r#"{"grpc":{"status":14}},{"static":{}}"#,
                        r#"{"static":{}},{"grpc":{"status":14}},{"grpc":{"status":9}}"#,
                    ]
                    .map(serve)
                    .to_vec(),
                ));
                out.extend(parse(
                    [
                        r#""on":{"grpc_statuses":[]},"serve":[{"static":{}}]"#,
                        r#""on":{"grpc_statuses":null},"serve":[{"static":{}}]"#,
                        r#""on":{"statuses":[],"breaker_open":false,"grpc_statuses":["unavailable",4," 16 ","01"]},"serve":[{"grpc":{"status":9}}]"#,
                        r#""on":{"grpc_statuses":[14]},"serve":[{"static":{}},{"grpc":{"status":9}}]"#,
                    ]
                    .map(rule)
                    .to_vec(),
                ));
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
                json!({"sampling": {"rate": 0, "always_keep": ["grpc_error", "ok", "Unavailable", "DEADLINE_EXCEEDED", "unauthenticated", "500"]}}),
                json!({"body": {}, "request_headers": [], "upstream_headers": {}}),
                json!({"body": {"keep_fields": [], "redact_fields": ["[].ssn", "tags[][]", "a-b.c d"], "parse_max_bytes": 65536}}),
                json!({"redact": {"patterns": [{"name": "a", "regex": "(?i)kid\\s*\\d{4}", "validate": null, "keywords": null, "keyword_distance": null}, {"name": "z_9", "regex": "x", "validate": "luhn", "keywords": ["Kundenr", "é"], "keyword_distance": 256}]}}),
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
                // gRPC metadata names listed twice in different case; a message within the
                // limit in characters, over it in UTF-8 bytes.
                serve(r#"{"grpc":{"status":14,"metadata":{"x-a":"1","X-A":"2"}}}"#),
                serve(&format!(
                    r#"{{"grpc":{{"status":14,"message":"{}"}}}}"#,
                    "é".repeat(breakwater_common::grpc::MAX_GRPC_MESSAGE_BYTES / 2 + 1)
                )),
            ],
            Filter::LogEnrichment => vec![
                r#"{"upstream_headers":{"x-correlation-id":"x"}}"#.to_string(),
                r#"{"request_headers":["X-A","x-a"]}"#.to_string(),
                format!(r#"{{"service":{{"name":"{}"}}}}"#, "é".repeat(100)),
                r#"{"redact":{"mode":"hash","hmac_key":"ééééé"}}"#.to_string(),
                // Regexes the parser compiles: syntax, size, and the empty match.
                r#"{"redact":{"patterns":[{"name":"a","regex":"(x"}]}}"#.to_string(),
                r#"{"redact":{"patterns":[{"name":"a","regex":"\\w{1000}{1000}"}]}}"#.to_string(),
                r#"{"redact":{"patterns":[{"name":"a","regex":"x*"}]}}"#.to_string(),
                r#"{"redact":{"patterns":[{"name":"a","regex":"x"},{"name":"a","regex":"y"}]}}"#.to_string(),
                format!(r#"{{"redact":{{"patterns":[{{"name":"a","regex":"x","keywords":["{}"]}}]}}}}"#, "é".repeat(40)),
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
        // Looser than the schema: serde's derived structs also read an array of the values.
        let config: Value = serde_json::from_str(&breaker(r#""half_open":[3,"10s"]"#)).unwrap();
        assert!(parser(Filter::CircuitBreaker, &config).is_ok());
        assert!(Validator::of(Filter::CircuitBreaker)
            .check(&config)
            .is_err());
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
                    let resolved = resolve(root, sub);
                    if sub.get("description").is_none() && resolved.get("description").is_none() {
                        errors.push(format!("{}: no description", join(path, key)));
                    }
                    if resolved.get("type").is_none() && resolved.get("oneOf").is_none() {
                        errors.push(format!("{}: no type", join(path, key)));
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
            ("window_size", cb::MIN_BUCKET_MS, MAX_MILLIS),
            ("service_timeout", 1, fb::MAX_SERVICE_TIMEOUT_MS),
        ] {
            let validator = Validator::of_fragment(
                def,
                json!({"type": "string", "pattern": duration_pattern(low, high)}),
            );
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
        let kept: fn(u16) -> bool = |c| !(100..200).contains(&c) && c != 206 && c != 304;
        for (def, allowed) in [
            ("status", (|_| true) as fn(u16) -> bool),
            ("kept_status", kept),
        ] {
            let validator = Validator::of_fragment(def, status_item(allowed, def));
            let read = |item: Value| {
                serde_json::from_value::<StatusSet>(json!([item])).is_ok_and(|set| {
                    (0..1000u16).all(|c| !set.contains(u32::from(c)) || allowed(c))
                })
            };
            for n in 0..1000u32 {
                let by_parser = read(json!(n));
                assert_eq!(by_parser, validator.check(&json!(n)).is_ok(), "{def}: {n}");
            }
            let mut accepted = 0;
            for text in &samples {
                let by_parser = read(json!(text));
                let by_schema = validator.check(&json!(text)).is_ok();
                // The known gap: a range is only checked at its ends.
                let ends_ok = text.trim().split_once('-').is_some_and(|(a, b)| {
                    [a, b]
                        .iter()
                        .all(|end| read(json!(end.trim())) && !end.contains(['x', 'X']))
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
    fn grpc_status_patterns_accept_what_the_parser_accepts() {
        use breakwater_common::grpc::{code_schema, GrpcCode, NotOkCode, CODE_NAMES};
        let mut samples = all_strings(&['0', '1', '4', '6', '7', '+', '-', ' ', 'o', 'K', '.'], 4);
        let mut random = Random(0x0DDB_1A5E_5BAD_5EED);
        let names: Vec<String> = CODE_NAMES
            .iter()
            .flat_map(|n| {
                [
                    n.to_string(),
                    n.to_ascii_lowercase(),
                    format!("{n}_"),
                    n[1..].to_string(),
                ]
            })
            .collect();
        let numbers = [
            "0", "00", "000", "1", "01", "14", "014", "0014", "16", "016", "17", "017", "99", "100",
        ];
        for _ in 0..3000 {
            let (before, after) = (random.pick(SPACES), random.pick(SPACES));
            let sign = random.pick(&["", "", "", "+", "-"]);
            let core = if random.below(2) == 0 {
                random.pick(&numbers).to_string()
            } else {
                names[random.below(names.len())].clone()
            };
            samples.push(format!("{before}{sign}{core}{after}"));
        }
        let mut generator = schemars::generate::SchemaGenerator::default();
        let not_ok =
            serde_json::to_value(NotOkCode::<cb::FailureStatus>::json_schema(&mut generator))
                .unwrap();
        for (def, schema, read) in [
            (
                "grpc_status",
                code_schema(),
                (|v: &Value| serde_json::from_value::<GrpcCode>(v.clone()).is_ok())
                    as fn(&Value) -> bool,
            ),
            ("grpc_failure_status", not_ok, |v: &Value| {
                serde_json::from_value::<NotOkCode<cb::FailureStatus>>(v.clone()).is_ok()
            }),
        ] {
            let validator = Validator::of_fragment(def, schema);
            let numbers = (-2..20).map(|n| json!(n));
            let mut accepted = 0;
            for value in numbers.chain(samples.iter().map(|t| json!(t))) {
                let by_parser = read(&value);
                assert_eq!(by_parser, validator.check(&value).is_ok(), "{def}: {value}");
                accepted += usize::from(by_parser);
            }
            assert!(accepted > 300, "{def}: {accepted}");
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
