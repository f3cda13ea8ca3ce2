//! The fallback filter's JSON configuration, read field by field with defaults and validated
//! into the checked types the engine runs on. Every error names its field.

use breakwater_common::config::{check_name, parse_document, ConfigError, Field, FieldPath, Obj};
use breakwater_common::duration::{self, Millis};
use breakwater_common::flags::{self, FlagSet};
use breakwater_common::headers::{reply_status, HeaderList};
use breakwater_common::matcher::{self, RequestMatcher};
use breakwater_common::status::{self, StatusSet, StatusSpec};

/// Bounds that keep configuration, shared data and replies small; documented in the README.
pub const MAX_RULES: usize = 64;
pub const MAX_SOURCES: usize = 8;
pub const MAX_VARY: usize = 8;
pub const MAX_STATIC_BODY: usize = 64 * 1024;
/// Each lookup and store copies the index (24 bytes per entry) under Envoy's shared-data lock.
pub const MAX_ENTRIES: u32 = 4096;
pub const MAX_CACHE_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_BODY_BYTES: u32 = 1024 * 1024;
pub const MAX_SERVICE_TIMEOUT_MS: u64 = 60_000;

/// What makes a response fail over to the sources.
#[derive(Debug, Clone)]
pub struct Triggers {
    pub statuses: StatusSet,
    pub flags: FlagSet,
    /// A rejection by breakwater's circuit breaker (its filter state says `rejected`).
    pub breaker_open: bool,
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

#[derive(Debug, Clone)]
pub enum Source {
    Static(StaticSource),
    Stale(StaleSource),
    Service(ServiceSource),
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static(_) => "static",
            Source::Stale(_) => "stale",
            Source::Service(_) => "service",
        }
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
            max_entries: 1000,
            max_bytes: 8 * 1024 * 1024,
            max_body_bytes: 64 * 1024,
            min_store_interval_ms: 1000,
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
        let document = parse_document(bytes)?;
        let mut root = Obj::root(&document)?;
        let mut rules = Vec::new();
        if let Some((list, path)) = root.get("rules") {
            let items = Field::new(list, path.clone()).array()?;
            if items.len() > MAX_RULES {
                return Err(path.error(format!("at most {MAX_RULES} rules")));
            }
            for (i, item) in items.iter().enumerate() {
                let rule = read_rule(Obj::new(item, path.index(i))?)?;
                if rules.iter().any(|r: &Rule| r.name == rule.name) {
                    return Err(path
                        .index(i)
                        .key("name")
                        .error(format!("duplicate rule name \"{}\"", rule.name)));
                }
                rules.push(rule);
            }
        }
        let cache = match root.object("cache")? {
            Some(obj) => read_cache(obj)?,
            None => CacheLimits::default(),
        };
        root.finish()?;
        Ok(FallbackConfig { rules, cache })
    }
}

fn read_rule(mut obj: Obj<'_>) -> Result<Rule, ConfigError> {
    let name = obj.required("name", check_name)?;
    let matcher = match obj.get("match") {
        Some((value, path)) => matcher::field(Field::new(value, path))?,
        None => RequestMatcher::check(&obj.key_path("match"), &Default::default())?,
    };
    let on = read_triggers(obj.object("on")?)?;
    let sources = obj.required("serve", read_sources)?;
    obj.finish()?;
    Ok(Rule {
        name,
        matcher,
        on,
        sources,
    })
}

fn read_triggers(obj: Option<Obj<'_>>) -> Result<Triggers, ConfigError> {
    let five_xx = || {
        StatusSet::from_specs(&[StatusSpec {
            low: 500,
            high: 599,
        }])
    };
    let Some(mut obj) = obj else {
        return Ok(Triggers {
            statuses: five_xx(),
            flags: FlagSet::default(),
            breaker_open: true,
        });
    };
    let statuses = obj.opt("statuses", status::field)?.unwrap_or_else(five_xx);
    let flags = obj.opt("response_flags", flags::field)?.unwrap_or_default();
    let breaker_open = obj.opt("breaker_open", |f| f.bool())?.unwrap_or(true);
    if statuses.is_empty() && flags.0 == 0 && !breaker_open {
        return Err(obj.path().error(
            "nothing triggers the fallback: give statuses, response_flags or breaker_open",
        ));
    }
    obj.finish()?;
    Ok(Triggers {
        statuses,
        flags,
        breaker_open,
    })
}

fn read_sources(f: Field<'_>) -> Result<Vec<Source>, ConfigError> {
    let items = f.array()?;
    if items.is_empty() || items.len() > MAX_SOURCES {
        return Err(f.error(format!("list 1 to {MAX_SOURCES} sources, tried in order")));
    }
    let mut sources = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut obj = Obj::new(item, f.path().index(i))?;
        let source = if let Some(s) = obj.object("static")? {
            Source::Static(read_static(s)?)
        } else if let Some(s) = obj.object("stale")? {
            Source::Stale(read_stale(s)?)
        } else if let Some(s) = obj.object("service")? {
            Source::Service(read_service(s)?)
        } else {
            return Err(obj
                .path()
                .error("give exactly one of static, stale, service"));
        };
        // `finish` refuses a second source kind in the same element.
        obj.finish().map_err(|_| {
            f.path()
                .index(i)
                .error("give exactly one of static, stale, service")
        })?;
        if matches!(source, Source::Stale(_))
            && sources.iter().any(|s| matches!(s, Source::Stale(_)))
        {
            return Err(f
                .path()
                .index(i)
                .error("a rule has at most one stale source"));
        }
        sources.push(source);
    }
    Ok(sources)
}

fn read_static(mut obj: Obj<'_>) -> Result<StaticSource, ConfigError> {
    let status = obj.opt("status", reply_status)?.unwrap_or(200);
    let headers = obj.opt("headers", HeaderList::field)?.unwrap_or_default();
    let body = obj.opt("body", |f| Ok(f.str()?.as_bytes().to_vec()))?;
    let body_base64 = obj.opt("body_base64", |f| {
        breakwater_common::base64::decode(f.str()?).map_err(|e| f.error(e))
    })?;
    let body = match (body, body_base64) {
        (Some(_), Some(_)) => {
            return Err(obj
                .key_path("body_base64")
                .error("use either body or body_base64, not both"))
        }
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => Vec::new(),
    };
    if body.len() > MAX_STATIC_BODY {
        return Err(obj
            .key_path("body")
            .error(format!("longer than {MAX_STATIC_BODY} bytes")));
    }
    check_reserved_headers(&obj.key_path("headers"), &headers)?;
    obj.finish()?;
    Ok(StaticSource {
        status,
        headers,
        body,
    })
}

/// Headers the filter sets itself on every fallback response.
pub const RESERVED_HEADERS: &[&str] = &["x-breakwater-fallback", "age", "content-length"];

fn check_reserved_headers(path: &FieldPath, headers: &HeaderList) -> Result<(), ConfigError> {
    for reserved in RESERVED_HEADERS {
        if headers.contains(reserved) {
            return Err(path
                .key(reserved)
                .error("is set by the fallback filter itself"));
        }
    }
    Ok(())
}

fn read_stale(mut obj: Obj<'_>) -> Result<StaleSource, ConfigError> {
    let max_age = obj.required("max_age", duration::positive)?;
    let statuses = obj.opt("statuses", status::field)?.unwrap_or_else(|| {
        StatusSet::from_specs(&[StatusSpec {
            low: 200,
            high: 200,
        }])
    });
    if statuses.is_empty() {
        return Err(obj
            .key_path("statuses")
            .error("list at least one status worth keeping"));
    }
    for (code, why) in [
        (100, "informational"),
        (206, "partial content"),
        (304, "not modified"),
    ] {
        if statuses.contains(code) {
            return Err(obj.key_path("statuses").error(format!(
                "{code} ({why}) is not a complete response and cannot be served in place of one"
            )));
        }
    }
    if (101..200).any(|code| statuses.contains(code)) {
        return Err(obj
            .key_path("statuses")
            .error("1xx (informational) responses cannot be kept"));
    }
    let vary = obj
        .opt("vary", |f| {
            let names = f.strings()?;
            if names.len() > MAX_VARY {
                return Err(f.error(format!("at most {MAX_VARY} headers")));
            }
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.into_iter().enumerate() {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(f
                        .path()
                        .index(i)
                        .error(format!("\"{name}\" is not a header name")));
                }
                out.push(name.to_ascii_lowercase());
            }
            Ok(out)
        })?
        .unwrap_or_default();
    let allow_credentials = obj.opt("allow_credentials", |f| f.bool())?.unwrap_or(false);
    obj.finish()?;
    Ok(StaleSource {
        max_age_ms: max_age.as_u64(),
        statuses,
        vary,
        allow_credentials,
    })
}

fn read_service(mut obj: Obj<'_>) -> Result<ServiceSource, ConfigError> {
    let cluster = obj.required("cluster", |f| {
        let c = f.str()?;
        if c.is_empty() {
            return Err(f.error("must name an Envoy cluster"));
        }
        Ok(c.to_string())
    })?;
    let path = obj.required("path", |f| {
        let p = f.str()?;
        if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(f.error(format!("\"{p}\" must start with '/' and contain no spaces")));
        }
        Ok(p.to_string())
    })?;
    let authority = obj
        .opt("authority", |f| Ok(f.str()?.to_string()))?
        .unwrap_or_else(|| cluster.clone());
    let timeout = obj.opt("timeout", |f| {
        let d = duration::positive(f.clone())?;
        if d.as_u64() > MAX_SERVICE_TIMEOUT_MS {
            return Err(f.error("at most 60s"));
        }
        Ok(d)
    })?;
    obj.finish()?;
    Ok(ServiceSource {
        cluster,
        path,
        authority,
        // ≤ 60 000 ms, so it fits.
        timeout_ms: u32::try_from(timeout.map_or(1000, Millis::as_u64)).unwrap_or(1000),
    })
}

fn read_cache(mut obj: Obj<'_>) -> Result<CacheLimits, ConfigError> {
    let defaults = CacheLimits::default();
    let max_entries = obj
        .opt("max_entries", |f| f.u32_in(1, MAX_ENTRIES))?
        .unwrap_or(defaults.max_entries);
    let max_bytes = obj
        .opt("max_bytes", |f| {
            let n = f
                .value
                .as_u64()
                .ok_or_else(|| f.error("expected a whole number of bytes"))?;
            if !(1024..=MAX_CACHE_BYTES).contains(&n) {
                return Err(f.error(format!("{n} is outside 1024 to {MAX_CACHE_BYTES}")));
            }
            Ok(n)
        })?
        .unwrap_or(defaults.max_bytes);
    let max_body_bytes = obj
        .opt("max_body_bytes", |f| f.u32_in(1, MAX_BODY_BYTES))?
        .unwrap_or(defaults.max_body_bytes);
    if u64::from(max_body_bytes) > max_bytes {
        return Err(obj
            .key_path("max_body_bytes")
            .error("must not exceed cache.max_bytes"));
    }
    let min_store_interval_ms = obj
        .opt("min_store_interval", duration::field)?
        .map_or(defaults.min_store_interval_ms, Millis::as_u64);
    obj.finish()?;
    Ok(CacheLimits {
        max_entries,
        max_bytes,
        max_body_bytes,
        min_store_interval_ms,
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
        ];
        for (json, field) in cases {
            assert_eq!(&error_field(json), field, "{json}");
        }
    }
}
