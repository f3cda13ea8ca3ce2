//! `breakwater validate FILE...`: WasmPlugin manifests and Envoy configs, checked before they
//! reach a cluster.
//!
//! Kubernetes never looks inside `pluginConfig` (the CRD preserves unknown fields), so a typo
//! only shows when every sidecar refuses the config. Here each `pluginConfig` (and each Envoy
//! Wasm filter's `configuration`) goes through the filter's own parser, after the same
//! conversion istiod applies, and the WasmPlugin itself is checked against the CRD's schema and
//! CEL rules (istio/api `extensions/v1alpha1/wasm.proto`, `customresourcedefinitions.gen.yaml`)
//! and istiod's `ValidateWasmPlugin`.

use crate::filters::Filter;
use crate::yaml;
use serde_json::{Map, Number, Value};

/// One problem: where (a field path inside the document) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

fn problem(path: &str, reason: impl Into<String>) -> Problem {
    Problem {
        path: path.to_string(),
        reason: reason.into(),
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("usage: breakwater validate FILE...".to_string());
    }
    let mut errors = 0;
    for file in args {
        match check_file(file) {
            Ok(summary) => println!("ok    {file}: {summary}"),
            Err(lines) => {
                errors += lines.len();
                for line in lines {
                    eprintln!("error {file}: {line}");
                }
            }
        }
    }
    match errors {
        0 => Ok(()),
        n => Err(format!("{n} error(s)")),
    }
}

/// Checks every document of one file: `Ok(summary)` or one line per problem.
fn check_file(file: &str) -> Result<String, Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| vec![format!("cannot read: {e}")])?;
    let documents = yaml::documents(&text).map_err(|e| vec![e])?;
    let (mut plugins, mut filter_configs, mut others) = (0, 0, 0);
    let mut lines: Vec<String> = yaml::yaml11_boolean_words(&text)
        .into_iter()
        .map(|(line, word)| {
            format!("line {line}: `{word}` is the boolean true/false for kubectl (YAML 1.1): quote it (\"{word}\")")
        })
        .collect();
    for (number, doc) in &documents {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let (label, problems) = if kind == "WasmPlugin" {
            plugins += 1;
            (
                format!("document {number} (WasmPlugin {})", object_name(doc)),
                check_wasm_plugin(doc),
            )
        } else if is_envoy_bootstrap(doc) {
            let (count, problems) = check_envoy_config(doc);
            filter_configs += count;
            (format!("document {number} (Envoy config)"), problems)
        } else {
            others += 1;
            continue;
        };
        lines.extend(
            problems
                .into_iter()
                .map(|p| format!("{label}: {}: {}", p.path, p.reason)),
        );
    }
    if !lines.is_empty() {
        return Err(lines);
    }
    Ok(format!(
        "{plugins} WasmPlugin(s), {filter_configs} Envoy Wasm filter config(s), {others} other document(s) not checked"
    ))
}

fn object_name(doc: &Value) -> String {
    let meta = doc.get("metadata");
    let field = |key| {
        meta.and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("?")
    };
    format!("{}/{}", field("namespace"), field("name"))
}

fn is_envoy_bootstrap(doc: &Value) -> bool {
    doc.get("apiVersion").is_none()
        && (doc.get("static_resources").is_some() || doc.get("dynamic_resources").is_some())
}

// --- WasmPlugin ---------------------------------------------------------------------------------

const SPEC_FIELDS: &[&str] = &[
    "selector",
    "targetRef",
    "targetRefs",
    "url",
    "sha256",
    "imagePullPolicy",
    "imagePullSecret",
    "verificationKey",
    "pluginConfig",
    "pluginName",
    "phase",
    "priority",
    "failStrategy",
    "vmConfig",
    "match",
    "type",
];
const PHASES: &[&str] = &["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"];
const FAIL_STRATEGIES: &[&str] = &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
const PULL_POLICIES: &[&str] = &["UNSPECIFIED_POLICY", "IfNotPresent", "Always"];
const PLUGIN_TYPES: &[&str] = &["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"];
const MATCH_MODES: &[&str] = &["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"];
const URL_SCHEMES: &[&str] = &["oci", "http", "https", "file"];

/// The CRD's structural schema, its CEL rules, istiod's checks, and then the filter's own
/// validation of `pluginConfig`.
pub fn check_wasm_plugin(doc: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    if doc.get("apiVersion").and_then(Value::as_str) != Some("extensions.istio.io/v1alpha1") {
        out.push(problem(
            "apiVersion",
            "must be extensions.istio.io/v1alpha1 (WasmPlugin has no other version)",
        ));
    }
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    match name {
        None => out.push(problem("metadata.name", "required")),
        Some(n) if !is_dns_subdomain(n) => out.push(problem(
            "metadata.name",
            "must be a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253",
        )),
        Some(_) => {}
    }
    let Some(spec) = doc.get("spec").and_then(Value::as_object) else {
        out.push(problem("spec", "required, an object"));
        return out;
    };
    for key in spec.keys() {
        if !SPEC_FIELDS.contains(&key.as_str()) {
            out.push(problem(&format!("spec.{key}"), "unknown field"));
        }
    }
    check_selection(spec, &mut out);
    let url = check_url(spec, &mut out);
    check_string(spec, "imagePullSecret", 1, 253, &mut out);
    check_string(spec, "pluginName", 1, 256, &mut out);
    for (key, allowed) in [
        ("phase", PHASES),
        ("failStrategy", FAIL_STRATEGIES),
        ("imagePullPolicy", PULL_POLICIES),
        ("type", PLUGIN_TYPES),
    ] {
        check_enum(spec.get(key), &format!("spec.{key}"), allowed, &mut out);
    }
    match spec.get("priority") {
        None => out.push(problem(
            "spec.priority",
            "policy: set it explicitly (Istio sorts an unset priority last, not at 0)",
        )),
        Some(Value::Null) => {}
        Some(p) if p.as_i64().is_some_and(|p| i32::try_from(p).is_ok()) => {}
        Some(_) => out.push(problem("spec.priority", "must be a 32-bit integer")),
    }
    if spec.get("failStrategy").is_none() {
        out.push(problem(
            "spec.failStrategy",
            "policy: set it explicitly (the default, FAIL_CLOSE, denies all traffic when the module cannot be fetched)",
        ));
    }
    check_vm_config(spec.get("vmConfig"), &mut out);
    check_match(spec.get("match"), &mut out);
    match spec.get("pluginConfig") {
        None | Some(Value::Null) => {}
        Some(config @ Value::Object(_)) => {
            if let Some(filter) = url.and_then(image_filter) {
                let json = plugin_config_json(config);
                if let Err(e) = filter.check_config(json.as_bytes()) {
                    out.push(config_problem("spec.pluginConfig", e));
                }
            }
        }
        Some(_) => out.push(problem("spec.pluginConfig", "must be an object")),
    }
    out
}

fn check_selection(spec: &Map<String, Value>, out: &mut Vec<Problem>) {
    let set = ["selector", "targetRef", "targetRefs"]
        .iter()
        .filter(|k| spec.contains_key(**k))
        .count();
    if set > 1 {
        out.push(problem(
            "spec",
            "only one of targetRefs or selector can be set",
        ));
    }
    if let Some(selector) = spec.get("selector") {
        match selector.get("matchLabels").map(Value::as_object) {
            None => {}
            Some(None) => out.push(problem(
                "spec.selector.matchLabels",
                "must be a map of strings",
            )),
            Some(Some(labels)) => {
                for (key, value) in labels {
                    let path = format!("spec.selector.matchLabels.{key}");
                    match value.as_str() {
                        None => out.push(problem(&path, "must be a string")),
                        Some(_) if key.is_empty() => {
                            out.push(problem(&path, "wildcard not allowed in label key match"))
                        }
                        Some(v) if key.contains('*') || v.contains('*') => {
                            out.push(problem(&path, "wildcard not allowed in label key match"))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if let Some(obj) = selector.as_object() {
            if let Some(k) = obj.keys().find(|k| *k != "matchLabels") {
                out.push(problem(&format!("spec.selector.{k}"), "unknown field"));
            }
        }
    }
    if spec.contains_key("targetRef") {
        out.push(problem("spec.targetRef", "deprecated: use targetRefs"));
    }
    if let Some(refs) = spec.get("targetRefs") {
        let Some(refs) = refs.as_array() else {
            out.push(problem("spec.targetRefs", "must be a list"));
            return;
        };
        if refs.len() > 16 {
            out.push(problem("spec.targetRefs", "at most 16 items"));
        }
        for (i, r) in refs.iter().enumerate() {
            let path = format!("spec.targetRefs[{i}]");
            for key in ["kind", "name"] {
                if r.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    out.push(problem(&format!("{path}.{key}"), "required"));
                }
            }
            if r.get("namespace")
                .and_then(Value::as_str)
                .is_some_and(|ns| !ns.is_empty())
            {
                out.push(problem(
                    &format!("{path}.namespace"),
                    "cross namespace referencing is not currently supported",
                ));
            }
        }
    }
}

/// The url: required, a supported scheme (none means oci), and agreement with `sha256`.
fn check_url<'a>(spec: &'a Map<String, Value>, out: &mut Vec<Problem>) -> Option<&'a str> {
    let sha256 = spec.get("sha256").map(|v| v.as_str().unwrap_or("\u{0}"));
    if let Some(sha) = sha256 {
        if !(sha.is_empty() || is_sha256_hex(sha)) {
            out.push(problem(
                "spec.sha256",
                "must be 64 lower-case hex digits (the image manifest digest for oci://)",
            ));
        }
    }
    let url = match spec.get("url").map(Value::as_str) {
        None => {
            out.push(problem("spec.url", "required"));
            return None;
        }
        Some(None) => {
            out.push(problem("spec.url", "must be a string"));
            return None;
        }
        Some(Some("")) => {
            out.push(problem("spec.url", "must not be empty"));
            return None;
        }
        Some(Some(url)) => url,
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("oci", url));
    if !URL_SCHEMES.contains(&scheme) {
        out.push(problem(
            "spec.url",
            format!("url scheme \"{scheme}\" is not one of oci, http, https, file"),
        ));
        return Some(url);
    }
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        out.push(problem("spec.url", "not a valid URL"));
        return Some(url);
    }
    let url_digest = rest.split_once("@sha256:").map(|(_, d)| d);
    if let Some(d) = url_digest {
        if !is_sha256_hex(d) {
            out.push(problem(
                "spec.url",
                "the @sha256: digest must be 64 lower-case hex digits",
            ));
        }
        if sha256.is_some_and(|s| !s.is_empty() && s != d) {
            out.push(problem(
                "spec.sha256",
                "differs from the url's @sha256: digest",
            ));
        }
    }
    let pinned = url_digest.is_some() || sha256.is_some_and(|s| !s.is_empty());
    if matches!(scheme, "oci" | "http" | "https") && !pinned {
        out.push(problem(
            "spec.sha256",
            "policy: pin the module (for oci:// the image manifest digest; `make oci` writes it)",
        ));
    }
    Some(url)
}

/// The breakwater filter an image url names (`.../circuit-breaker:0.1.0` or `file:///x/fallback.wasm`).
pub fn image_filter(url: &str) -> Option<Filter> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(r, _)| r);
    let last = rest.rsplit('/').next().unwrap_or(rest);
    let name = last.split_once(':').map_or(last, |(n, _)| n);
    Filter::from_name(name)
}

fn check_string(
    spec: &Map<String, Value>,
    key: &str,
    min: usize,
    max: usize,
    out: &mut Vec<Problem>,
) {
    match spec.get(key).map(Value::as_str) {
        None => {}
        Some(Some(s)) if (min..=max).contains(&s.len()) => {}
        Some(_) => out.push(problem(
            &format!("spec.{key}"),
            format!("must be a string of {min} to {max} characters"),
        )),
    }
}

fn check_enum(value: Option<&Value>, path: &str, allowed: &[&str], out: &mut Vec<Problem>) {
    if let Some(v) = value {
        if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
            out.push(problem(
                path,
                format!("must be one of {}", allowed.join(", ")),
            ));
        }
    }
}

fn check_vm_config(vm: Option<&Value>, out: &mut Vec<Problem>) {
    let Some(vm) = vm else { return };
    if let Some(k) = vm.as_object().and_then(|o| o.keys().find(|k| *k != "env")) {
        out.push(problem(&format!("spec.vmConfig.{k}"), "unknown field"));
    }
    let Some(env) = vm.get("env") else { return };
    let Some(env) = env.as_array() else {
        out.push(problem("spec.vmConfig.env", "must be a list"));
        return;
    };
    if env.len() > 256 {
        out.push(problem("spec.vmConfig.env", "at most 256 items"));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, var) in env.iter().enumerate() {
        let path = format!("spec.vmConfig.env[{i}]");
        match var.get("name").and_then(Value::as_str) {
            Some(n) if (1..=256).contains(&n.len()) => {
                if names.contains(&n) {
                    out.push(problem(
                        &format!("{path}.name"),
                        format!("duplicate env name \"{n}\""),
                    ));
                }
                if n.starts_with("ISTIO_META") {
                    out.push(problem(
                        &format!("{path}.name"),
                        "names starting with ISTIO_META are dropped by istio-agent",
                    ));
                }
                names.push(n);
            }
            _ => out.push(problem(
                &format!("{path}.name"),
                "required, 1 to 256 characters",
            )),
        }
        check_enum(
            var.get("valueFrom"),
            &format!("{path}.valueFrom"),
            &["INLINE", "HOST"],
            out,
        );
        let inline = var
            .get("valueFrom")
            .is_none_or(|v| v.as_str() == Some("INLINE"));
        match var.get("value").map(Value::as_str) {
            None => {}
            Some(Some(_)) if !inline => out.push(problem(
                &format!("{path}.value"),
                "value may only be set when valueFrom is INLINE",
            )),
            Some(Some(v)) if v.len() > 2048 => {
                out.push(problem(&format!("{path}.value"), "at most 2048 characters"))
            }
            Some(Some(_)) => {}
            Some(None) => out.push(problem(&format!("{path}.value"), "must be a string")),
        }
    }
}

fn check_match(matches: Option<&Value>, out: &mut Vec<Problem>) {
    let Some(matches) = matches else { return };
    let Some(items) = matches.as_array() else {
        out.push(problem("spec.match", "must be a list"));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.match[{i}]");
        check_enum(item.get("mode"), &format!("{path}.mode"), MATCH_MODES, out);
        let Some(ports) = item.get("ports") else {
            continue;
        };
        for (j, port) in ports
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let number = port.get("number").and_then(Value::as_u64);
            if !number.is_some_and(|n| (1..=65535).contains(&n)) {
                out.push(problem(
                    &format!("{path}.ports[{j}].number"),
                    "required, a port number 1..65535",
                ));
            }
        }
    }
}

/// `pluginConfig` as the filter receives it: istiod stores it as a protobuf Struct (every number
/// a double) and hands Envoy `protojson` of it (keys sorted, integral doubles without a
/// fraction) in a StringValue.
pub fn plugin_config_json(config: &Value) -> String {
    fn as_struct(v: &Value) -> Value {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    // Exact: |f| < 2^64 here, and doubles this large are integers.
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    Value::Number(Number::from(i))
                } else {
                    Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(as_struct).collect()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .filter_map(|k| Some((k.clone(), as_struct(map.get(k)?))))
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }
    as_struct(config).to_string()
}

fn config_problem(prefix: &str, e: breakwater_common::config::ConfigError) -> Problem {
    let path = if e.field.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{}", e.field)
    };
    problem(&path, e.reason)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

// --- Envoy configs -------------------------------------------------------------------------------

const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// Every Wasm HTTP filter in an Envoy bootstrap whose module is one of ours: its `configuration`
/// through the filter's parser. Returns how many were checked.
fn check_envoy_config(doc: &Value) -> (usize, Vec<Problem>) {
    let mut found = Vec::new();
    find_wasm_filters(doc, String::new(), &mut found);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, config) in found {
        let module = config
            .pointer("/vm_config/code/local/filename")
            .and_then(Value::as_str)
            .and_then(|f| f.rsplit('/').next());
        let Some(filter) = module.and_then(Filter::from_name) else {
            continue;
        };
        checked += 1;
        let configuration = config.get("configuration");
        let json = match configuration
            .and_then(|c| c.get("@type"))
            .and_then(Value::as_str)
        {
            None => String::new(),
            Some("type.googleapis.com/google.protobuf.StringValue") => configuration
                .and_then(|c| c.get("value"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            Some("type.googleapis.com/google.protobuf.Struct") => configuration
                .and_then(|c| c.get("value"))
                .map(plugin_config_json)
                .unwrap_or_default(),
            Some(other) => {
                problems.push(problem(
                    &format!("{path}.configuration.@type"),
                    format!("{other}: use google.protobuf.StringValue (as Istio does)"),
                ));
                continue;
            }
        };
        if let Err(e) = filter.check_config(json.as_bytes()) {
            problems.push(config_problem(&format!("{path}.configuration"), e));
        }
    }
    (checked, problems)
}

/// Collects `(path of PluginConfig, PluginConfig)` of every Wasm HTTP filter's typed config.
fn find_wasm_filters<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE) {
                if let Some(config) = map.get("config") {
                    out.push((format!("{path}.config"), config));
                }
                return;
            }
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                find_wasm_filters(child, child_path, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_wasm_filters(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(spec: &str) -> Value {
        let text = format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: cb, namespace: shop}}\nspec:\n{spec}"
        );
        yaml::documents(&text).unwrap().remove(0).1
    }

    const GOOD: &str = "  url: oci://ghcr.io/breakwater/circuit-breaker:0.1.0\n  sha256: \
        aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  priority: 10\n  failStrategy: FAIL_OPEN\n";

    fn paths(spec: &str) -> Vec<String> {
        check_wasm_plugin(&plugin(spec))
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_complete_plugin_passes() {
        assert_eq!(paths(GOOD), Vec::<String>::new());
        let with_config = format!(
            "{GOOD}  pluginConfig:\n    breakers:\n      - name: r\n        mode: dry_run\n"
        );
        assert_eq!(paths(&with_config), Vec::<String>::new());
    }

    #[test]
    fn plugin_config_errors_carry_the_filter_field_path() {
        let spec = format!("{GOOD}  pluginConfig:\n    breakers:\n      - name: r\n        trip: {{failure_rate: 150}}\n");
        assert_eq!(
            paths(&spec),
            ["spec.pluginConfig.breakers[0].trip.failure_rate"]
        );
        let spec = format!("{GOOD}  pluginConfig:\n    breakerz: []\n");
        assert_eq!(paths(&spec), ["spec.pluginConfig.breakerz"]);
    }

    #[test]
    fn schema_and_cel_rules() {
        let cases = [
            ("  sha256: ABC\n", "spec.sha256"),
            ("  phase: LATE\n", "spec.phase"),
            ("  failStrategy: FAIL_SOMETIMES\n", "spec.failStrategy"),
            ("  url: ftp://x/y\n", "spec.url"),
            ("  colour: blue\n", "spec.colour"),
            (
                "  match: [{mode: CLIENT, ports: [{number: 0}]}]\n",
                "spec.match[0].ports[0].number",
            ),
            (
                "  vmConfig: {env: [{name: A, valueFrom: HOST, value: x}]}\n",
                "spec.vmConfig.env[0].value",
            ),
            (
                "  selector: {matchLabels: {app: '*'}}\n  targetRefs: [{kind: Gateway, name: g}]\n",
                "spec",
            ),
        ];
        for (extra, expected) in cases {
            // YAML refuses duplicate keys: drop GOOD's line for the key under test.
            let key = extra.trim_start().split(':').next().unwrap();
            let base: String = GOOD
                .lines()
                .filter(|l| !l.trim_start().starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect();
            let found = paths(&format!("{base}{extra}"));
            assert!(
                found.iter().any(|p| p == expected),
                "{extra:?}: expected {expected}, got {found:?}"
            );
        }
    }

    #[test]
    fn policy_wants_priority_fail_strategy_and_a_pin() {
        let found = paths("  url: oci://ghcr.io/breakwater/fallback:0.1.0\n");
        assert_eq!(found, ["spec.sha256", "spec.priority", "spec.failStrategy"]);
        assert_eq!(
            paths("  url: file:///opt/fallback.wasm\n  priority: 1\n  failStrategy: FAIL_OPEN\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn yaml_1_1_booleans_are_flagged_unless_quoted() {
        let text = "rules:\n  - on:\n      x: 1\n  - \"on\": 1\n    flag: yes\n    mode: 'no'\n    on_x: 1 # on\n";
        assert_eq!(
            yaml::yaml11_boolean_words(text),
            [(2, "on".to_string()), (5, "yes".to_string())]
        );
    }

    #[test]
    fn image_names_map_to_filters() {
        assert_eq!(
            image_filter("oci://ghcr.io/breakwater/circuit-breaker:0.1.0"),
            Some(Filter::CircuitBreaker)
        );
        assert_eq!(
            image_filter("ghcr.io/x/fallback@sha256:00"),
            Some(Filter::Fallback)
        );
        assert_eq!(
            image_filter("file:///var/log_enrichment.wasm"),
            Some(Filter::LogEnrichment)
        );
        assert_eq!(image_filter("oci://localhost:5000/other:1"), None);
    }

    #[test]
    fn plugin_config_is_converted_like_a_protobuf_struct() {
        let v: Value =
            serde_json::from_str(r#"{"b":2.0,"a":[1,0.5,{"d":true,"c":null}]}"#).unwrap();
        assert_eq!(
            plugin_config_json(&v),
            r#"{"a":[1,0.5,{"c":null,"d":true}],"b":2}"#
        );
    }
}
