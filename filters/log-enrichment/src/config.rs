//! The log-enrichment filter's JSON configuration, read field by field with defaults and
//! validated into the checked form the engine runs on. Every error names its field.

use crate::detect::{Detector, ALL};
use breakwater_common::config::{parse_document, ConfigError, Field, FieldPath, Obj};
use breakwater_common::duration;
use breakwater_common::headers::{is_token_byte, HeaderList};
use breakwater_common::status::{StatusSet, StatusSpec};

/// Bounds documented in the README.
pub const MAX_LOGGED_HEADERS: usize = 32;
/// Values logged per repeated header; further values are not logged.
pub const MAX_VALUES_PER_HEADER: usize = 8;
pub const DEFAULT_MAX_VALUE_BYTES: u32 = 1024;
pub const MAX_VALUE_BYTES: u32 = 16 * 1024;
pub const MAX_BODY_BYTES: u32 = 64 * 1024;
pub const MAX_QUERY_PARAMS: usize = 64;
pub const MIN_HMAC_KEY_BYTES: usize = 16;
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

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
            header: "x-correlation-id".to_string(),
            generate: true,
            trust_incoming: true,
            echo_in_response: false,
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
            rate: 1.0,
            always_keep: KeepClasses {
                statuses: StatusSet::from_specs(&[StatusSpec {
                    low: 500,
                    high: 599,
                }]),
                fallback: true,
                breaker_rejected: true,
                slow: true,
                response_flags: false,
            },
            slow_ms: 1000,
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
            workload_metadata: true,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            redact: Redaction::default(),
            sampling: Sampling::default(),
            upstream_headers: HeaderList::default(),
            body: None,
            separate_fields: false,
        }
    }
}

impl LogConfig {
    pub fn parse(bytes: &[u8]) -> Result<LogConfig, ConfigError> {
        let doc = parse_document(bytes)?;
        let mut root = Obj::root(&doc)?;
        let mut config = LogConfig::default();
        if let Some(obj) = root.object("service")? {
            config.service = service(obj)?;
        }
        if let Some(obj) = root.object("correlation")? {
            config.correlation = correlation(obj)?;
        }
        if let Some(on) = root.opt("workload_metadata", |f| f.bool())? {
            config.workload_metadata = on;
        }
        if let Some(list) = root.opt("request_headers", header_names)? {
            config.request_headers = list;
        }
        if let Some(list) = root.opt("response_headers", header_names)? {
            config.response_headers = list;
        }
        if let Some(obj) = root.object("redact")? {
            config.redact = redaction(obj)?;
        }
        if let Some(obj) = root.object("sampling")? {
            config.sampling = sampling(obj)?;
        }
        if let Some(headers) = root.opt("upstream_headers", HeaderList::field)? {
            config.upstream_headers =
                upstream_headers(headers, &root.key_path("upstream_headers"))?;
        }
        if let Some(obj) = root.object("body")? {
            config.body = Some(body(obj)?);
        }
        if let Some(on) = root.opt("separate_fields", |f| f.bool())? {
            config.separate_fields = on;
        }
        root.finish()?;
        let header = &config.correlation.header;
        if NEVER_LOGGED.contains(&header.as_str()) {
            return Err(ConfigError::new(
                "correlation.header",
                format!("\"{header}\" carries credentials; choose another header"),
            ));
        }
        if config.upstream_headers.contains(header) {
            return Err(FieldPath::root("upstream_headers")
                .key(header)
                .error("is the correlation header, which the filter sets itself"));
        }
        Ok(config)
    }
}

/// A printable value of at most 128 bytes, logged as given.
fn label(f: Field<'_>) -> Result<String, ConfigError> {
    let text = f.str()?;
    if text.is_empty() || text.len() > 128 {
        return Err(f.error("must be 1 to 128 characters long"));
    }
    if text.chars().any(char::is_control) {
        return Err(f.error("must not contain control characters"));
    }
    Ok(text.to_string())
}

fn service(mut obj: Obj<'_>) -> Result<Service, ConfigError> {
    let service = Service {
        name: obj.opt("name", label)?,
        version: obj.opt("version", label)?,
        environment: obj.opt("environment", label)?,
        region: obj.opt("region", label)?,
    };
    obj.finish()?;
    Ok(service)
}

/// A header name: an HTTP token, lower-cased, not a pseudo-header.
fn header_name(f: Field<'_>) -> Result<String, ConfigError> {
    let name = f.str()?;
    if name.is_empty() || name.len() > 128 || !name.bytes().all(is_token_byte) {
        return Err(f.error(format!(
            "\"{name}\" is not a header name (an HTTP token of 1 to 128 characters; pseudo-headers are not allowed)"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

fn header_names(f: Field<'_>) -> Result<Vec<String>, ConfigError> {
    let items = f.array()?;
    if items.len() > MAX_LOGGED_HEADERS {
        return Err(f.error(format!("at most {MAX_LOGGED_HEADERS} headers")));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = Field::new(item, f.path().index(i));
        let name = header_name(field.clone())?;
        if NEVER_LOGGED.contains(&name.as_str()) {
            return Err(field.error(format!(
                "\"{name}\" carries credentials and is never logged; remove it from the list"
            )));
        }
        if out.contains(&name) {
            return Err(field.error(format!("\"{name}\" is listed twice")));
        }
        out.push(name);
    }
    Ok(out)
}

fn correlation(mut obj: Obj<'_>) -> Result<Correlation, ConfigError> {
    let mut c = Correlation::default();
    if let Some(name) = obj.opt("header", header_name)? {
        c.header = name;
    }
    if let Some(v) = obj.opt("generate", |f| f.bool())? {
        c.generate = v;
    }
    if let Some(v) = obj.opt("trust_incoming", |f| f.bool())? {
        c.trust_incoming = v;
    }
    if let Some(v) = obj.opt("echo_in_response", |f| f.bool())? {
        c.echo_in_response = v;
    }
    obj.finish()?;
    Ok(c)
}

fn redaction(mut obj: Obj<'_>) -> Result<Redaction, ConfigError> {
    let mut r = Redaction::default();
    if let Some(list) = obj.opt("detectors", detectors)? {
        r.detectors = list;
    }
    if let Some(list) = obj.opt("query_params", query_params)? {
        r.query_params = list;
    }
    let mode = obj.opt("mode", |f| {
        let mode = f.str()?;
        match mode {
            "mask" => Ok((false, f.path().clone())),
            "hash" => Ok((true, f.path().clone())),
            _ => Err(f.error(format!("\"{mode}\" is not a mode (expected mask or hash)"))),
        }
    })?;
    let key = obj.opt("hmac_key", |f| {
        let key = f.str()?;
        if key.len() < MIN_HMAC_KEY_BYTES {
            return Err(f.error(format!(
                "must be at least {MIN_HMAC_KEY_BYTES} bytes (a short key makes 11-digit ids guessable)"
            )));
        }
        Ok(key.as_bytes().to_vec())
    })?;
    r.mode = match (mode, key) {
        (Some((true, path)), None) => {
            return Err(path.error("\"hash\" needs redact.hmac_key (without a key, hashed ids can be found by trying every id)"));
        }
        (Some((true, _)), Some(key)) => Mode::Hash { key },
        _ => Mode::Mask,
    };
    if let Some(n) = obj.opt("max_value_bytes", |f| f.u32_in(16, MAX_VALUE_BYTES))? {
        r.max_value_bytes = n as usize;
    }
    obj.finish()?;
    Ok(r)
}

fn detectors(f: Field<'_>) -> Result<Vec<Detector>, ConfigError> {
    let mut out = Vec::new();
    for (i, name) in f.strings()?.into_iter().enumerate() {
        let detector = Detector::from_name(name).ok_or_else(|| {
            let mut known = String::new();
            for d in ALL {
                known.push_str(if known.is_empty() { "" } else { ", " });
                known.push_str(d.name());
            }
            f.path()
                .index(i)
                .error(format!("unknown detector \"{name}\" (known: {known})"))
        })?;
        if !out.contains(&detector) {
            out.push(detector);
        }
    }
    Ok(out)
}

fn query_params(f: Field<'_>) -> Result<Vec<String>, ConfigError> {
    let names = f.strings()?;
    if names.len() > MAX_QUERY_PARAMS {
        return Err(f.error(format!("at most {MAX_QUERY_PARAMS} parameters")));
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        if name.is_empty() || name.len() > 128 {
            return Err(f.path().index(i).error("must be 1 to 128 characters long"));
        }
        out.push(name.to_ascii_lowercase());
    }
    Ok(out)
}

fn sampling(mut obj: Obj<'_>) -> Result<Sampling, ConfigError> {
    let mut s = Sampling::default();
    if let Some(rate) = obj.opt("rate", |f| {
        let rate = f.f64()?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(f.error("must be from 0.0 to 1.0"));
        }
        Ok(rate)
    })? {
        s.rate = rate;
    }
    if let Some(keep) = obj.opt("always_keep", keep_classes)? {
        s.always_keep = keep;
    }
    if let Some(slow) = obj.opt("slow", duration::positive)? {
        s.slow_ms = slow.as_u64();
    }
    obj.finish()?;
    Ok(s)
}

fn keep_classes(f: Field<'_>) -> Result<KeepClasses, ConfigError> {
    let mut keep = KeepClasses::default();
    let mut specs = Vec::new();
    for (i, name) in f.strings()?.into_iter().enumerate() {
        match name {
            "fallback" => keep.fallback = true,
            "breaker_rejected" => keep.breaker_rejected = true,
            "slow" => keep.slow = true,
            "response_flags" => keep.response_flags = true,
            other => specs.push(StatusSpec::parse(other).map_err(|e| {
                f.path().index(i).error(format!(
                    "{e}; or one of fallback, breaker_rejected, slow, response_flags"
                ))
            })?),
        }
    }
    keep.statuses = StatusSet::from_specs(&specs);
    Ok(keep)
}

/// Headers added to the upstream request: not pseudo-headers, not `host`, and not the
/// correlation header (the filter owns that one).
fn upstream_headers(headers: HeaderList, path: &FieldPath) -> Result<HeaderList, ConfigError> {
    for (name, _) in &headers.0 {
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            return Err(path.key(name).error("this header is managed by Envoy"));
        }
    }
    Ok(headers)
}

fn body(mut obj: Obj<'_>) -> Result<Body, ConfigError> {
    let max_bytes = obj
        .opt("max_bytes", |f| f.u32_in(1, MAX_BODY_BYTES))?
        .unwrap_or(1024) as usize;
    let content_types = obj
        .opt("content_types", |f| {
            let list = f.strings()?;
            if list.is_empty() || list.len() > 16 {
                return Err(f.error("must list 1 to 16 media types"));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list.into_iter().enumerate() {
                if !t.bytes().any(|b| b == b'/') || t.bytes().any(|b| b == b';') || t.len() > 128 {
                    return Err(f
                        .path()
                        .index(i)
                        .error(format!("\"{t}\" is not a media type like application/json")));
                }
                out.push(t.trim().to_ascii_lowercase());
            }
            Ok(out)
        })?
        .unwrap_or_else(|| vec!["application/json".to_string()]);
    obj.finish()?;
    Ok(Body {
        max_bytes,
        content_types,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
