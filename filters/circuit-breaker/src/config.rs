//! The breaker's JSON configuration: read field by field with defaults and validated into the
//! checked [`BreakerSpec`] the policy runs on. Every error names its field.

use breakwater_common::config::{
    check_name, format_decimal, parse_document, ConfigError, Field, FieldPath, Obj,
};
use breakwater_common::duration::{self, Millis};
use breakwater_common::flags::{self, FlagSet};
use breakwater_common::headers::{reply_status, HeaderList};
use breakwater_common::matcher::{self, RequestMatcher};
use breakwater_common::status::{self, StatusSet, StatusSpec};

/// Bounds that keep shared state and per-request work small; documented in the README.
pub const MAX_BREAKERS: usize = 64;
pub const MAX_COUNT_WINDOW: u32 = 1000;
pub const MAX_TIME_BUCKETS: u32 = 60;
pub const MAX_PROBES: u32 = 1000;
pub const MAX_SPLIT_KEYS: u32 = 100_000;
pub const DEFAULT_MAX_KEYS: u32 = 1000;
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How a breaker acts on its decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

    fn field(f: Field<'_>) -> Result<Mode, ConfigError> {
        match f.str()? {
            "enforce" => Ok(Mode::Enforce),
            "dry_run" => Ok(Mode::DryRun),
            "forced_open" => Ok(Mode::ForcedOpen),
            "disabled" => Ok(Mode::Disabled),
            other => Err(f.error(format!(
                "\"{other}\" is not one of enforce, dry_run, forced_open, disabled"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checked configuration.

/// What gives each request its own breaker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    None,
    Cluster,
    Authority,
    /// A request header, lower-cased.
    Header(String),
}

#[derive(Debug, Clone)]
pub struct FailurePolicy {
    pub statuses: StatusSet,
    pub flags: FlagSet,
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

/// The failure flags counted when `failure.response_flags` is omitted: Envoy's connect
/// failures, timeouts and resets, "no healthy upstream", and protocol errors (`UPE`: among
/// others, a response cut off mid-body, which Envoy reports with the headers' 200).
pub const DEFAULT_FAILURE_FLAGS: &[&str] = &["UF", "UT", "UC", "UR", "URX", "UH", "UPE"];

impl BreakerConfig {
    pub fn parse(bytes: &[u8]) -> Result<BreakerConfig, ConfigError> {
        let document = parse_document(bytes)?;
        let mut root = Obj::root(&document)?;
        let mut breakers = Vec::new();
        if let Some((list, path)) = root.get("breakers") {
            let items = Field::new(list, path.clone()).array()?;
            if items.len() > MAX_BREAKERS {
                return Err(path.error(format!("at most {MAX_BREAKERS} breakers")));
            }
            let mut names: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let spec = read_breaker(Obj::new(item, path.index(i))?)?;
                if names.contains(&spec.name) {
                    return Err(path
                        .index(i)
                        .key("name")
                        .error(format!("duplicate breaker name \"{}\"", spec.name)));
                }
                names.push(spec.name.clone());
                breakers.push(spec);
            }
        }
        root.finish()?;
        Ok(BreakerConfig { breakers })
    }
}

fn read_breaker(mut obj: Obj<'_>) -> Result<BreakerSpec, ConfigError> {
    let name = obj.required("name", check_name)?;
    let matcher = match obj.get("match") {
        Some((value, path)) => matcher::field(Field::new(value, path))?,
        None => RequestMatcher::check(&obj.key_path("match"), &Default::default())?,
    };
    let split = obj.opt("split_by", read_split)?.unwrap_or(Split::None);
    let max_keys = obj.opt("max_keys", |f| {
        let n = f.u32_in(1, MAX_SPLIT_KEYS)?;
        if split == Split::None {
            return Err(
                f.error("only applies when split_by is cluster, authority or header:<name>")
            );
        }
        Ok(n)
    })?;
    let failure = read_failure(obj.object("failure")?, &obj.key_path("failure"))?;
    let trip = read_trip(obj.object("trip")?, &failure)?;
    let open = read_open(obj.object("open")?, &obj.key_path("open"))?;
    let half_open = read_half_open(obj.object("half_open")?)?;
    let response = read_response(obj.object("response")?, &obj.key_path("response"), &name)?;
    let mode = obj.opt("mode", Mode::field)?.unwrap_or_default();
    obj.finish()?;
    Ok(BreakerSpec {
        name,
        matcher,
        split,
        max_keys: max_keys.unwrap_or(DEFAULT_MAX_KEYS),
        failure,
        trip,
        open,
        half_open,
        response,
        mode,
    })
}

fn read_split(f: Field<'_>) -> Result<Split, ConfigError> {
    match f.str()? {
        "none" => Ok(Split::None),
        "cluster" => Ok(Split::Cluster),
        "authority" => Ok(Split::Authority),
        other => match other.strip_prefix("header:") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Split::Header(name.to_ascii_lowercase()))
            }
            _ => Err(f.error(format!(
                "\"{other}\" is not one of none, cluster, authority, header:<name>"
            ))),
        },
    }
}

fn read_failure(obj: Option<Obj<'_>>, path: &FieldPath) -> Result<FailurePolicy, ConfigError> {
    let (statuses, flags, slow_call, hang_after) = match obj {
        None => (None, None, None, None),
        Some(mut obj) => {
            let statuses = obj.opt("statuses", status::field)?;
            let flags = obj.opt("response_flags", flags::field)?;
            let slow_call = obj.opt("slow_call", duration::positive)?;
            let hang_after = obj.opt("hang_after", duration::positive)?;
            obj.finish()?;
            (statuses, flags, slow_call, hang_after)
        }
    };
    let statuses = statuses.unwrap_or_else(|| {
        StatusSet::from_specs(&[StatusSpec {
            low: 500,
            high: 599,
        }])
    });
    let flags = match flags {
        Some(flags) => flags,
        None => FlagSet::parse(DEFAULT_FAILURE_FLAGS)
            .map_err(|e| path.key("response_flags").error(e))?,
    };
    if statuses.is_empty() && flags.0 == 0 && slow_call.is_none() && hang_after.is_none() {
        return Err(path.error(
            "nothing counts as a failure: give statuses, response_flags, slow_call or hang_after",
        ));
    }
    Ok(FailurePolicy {
        statuses,
        flags,
        slow_call_ms: slow_call.map(Millis::as_u64),
        hang_after_ms: hang_after.map(Millis::as_u64),
    })
}

fn rate(f: Field<'_>) -> Result<f64, ConfigError> {
    let r = f.f64()?;
    if r > 0.0 && r <= 100.0 {
        Ok(r)
    } else {
        Err(f.error(format!(
            "{} is outside 0 to 100 (a percentage greater than 0; omit the key to disable)",
            format_decimal(r)
        )))
    }
}

fn read_trip(obj: Option<Obj<'_>>, failure: &FailurePolicy) -> Result<TripPolicy, ConfigError> {
    let Some(mut obj) = obj else {
        // No `trip` at all: open after 5 consecutive failures, like Envoy's outlier detection.
        return Ok(TripPolicy {
            consecutive_failures: Some(5),
            failure_rate: None,
            slow_call_rate: None,
            minimum_calls: 20,
            window: WindowSpec::Count { size: 100 },
        });
    };
    let consecutive_failures = obj.opt("consecutive_failures", |f| f.u32_in(1, u32::MAX))?;
    let failure_rate = obj.opt("failure_rate", rate)?;
    let slow_call_rate = obj.opt("slow_call_rate", |f| {
        if failure.slow_call_ms.is_none() {
            return Err(f.error("needs failure.slow_call to say what a slow call is"));
        }
        rate(f)
    })?;
    let minimum_calls = obj.opt("minimum_calls", |f| f.u32_in(1, u32::MAX))?;
    let window = match obj.object("window")? {
        None => WindowSpec::Count { size: 100 },
        Some(w) => read_window(w)?,
    };
    // The default never exceeds a small count window; an explicit value that does is an error.
    let window_calls = match window {
        WindowSpec::Count { size } => size,
        WindowSpec::Time { .. } => u32::MAX,
    };
    let explicit_minimum = minimum_calls.is_some();
    let minimum_calls = minimum_calls.unwrap_or(20.min(window_calls));
    if let WindowSpec::Count { size } = window {
        if explicit_minimum && minimum_calls > size {
            return Err(obj.key_path("minimum_calls").error(format!(
                "{minimum_calls} can never be reached in a count window of {size} calls"
            )));
        }
    }
    if consecutive_failures.is_none() && failure_rate.is_none() && slow_call_rate.is_none() {
        return Err(obj.path().error(
            "no trip condition: give consecutive_failures, failure_rate or slow_call_rate",
        ));
    }
    obj.finish()?;
    Ok(TripPolicy {
        consecutive_failures,
        failure_rate,
        slow_call_rate,
        minimum_calls,
        window,
    })
}

fn read_window(mut obj: Obj<'_>) -> Result<WindowSpec, ConfigError> {
    let kind = obj.required("kind", |f| match f.str()? {
        "count" => Ok(true),
        "time" => Ok(false),
        other => Err(f.error(format!("\"{other}\" is not one of count, time"))),
    })?;
    let spec = if kind {
        let size = obj.required("size", |f| {
            let n = f.u32().map_err(|_| {
                f.error(format!(
                    "a count window's size is a number of calls from 1 to {MAX_COUNT_WINDOW}"
                ))
            })?;
            if !(1..=MAX_COUNT_WINDOW).contains(&n) {
                return Err(f.error(format!("{n} is outside 1 to {MAX_COUNT_WINDOW}")));
            }
            Ok(n)
        })?;
        if let Some((_, path)) = obj.get("buckets") {
            return Err(path.error("only applies to \"kind\": \"time\""));
        }
        WindowSpec::Count { size }
    } else {
        let size = obj.required("size", |f| {
            if !f.value.is_string() {
                return Err(f.error("a time window's size is a duration such as \"10s\""));
            }
            duration::field(f)
        })?;
        let buckets = obj
            .opt("buckets", |f| f.u32_in(1, MAX_TIME_BUCKETS))?
            .unwrap_or(10);
        if size.as_u64() < u64::from(buckets) * 10 {
            return Err(obj.key_path("size").error(format!(
                "{size} is too short for {buckets} buckets (at least 10ms per bucket)"
            )));
        }
        WindowSpec::Time {
            size_ms: size.as_u64(),
            buckets,
        }
    };
    obj.finish()?;
    Ok(spec)
}

fn read_open(obj: Option<Obj<'_>>, path: &FieldPath) -> Result<OpenPolicy, ConfigError> {
    let (duration, max_duration, multiplier, jitter) = match obj {
        None => (None, None, None, None),
        Some(mut obj) => {
            let duration = obj.opt("duration", duration::positive)?;
            let max_duration = obj.opt("max_duration", duration::field)?;
            let multiplier = obj.opt("backoff_multiplier", |f| {
                let m = f.f64()?;
                if !(1.0..=100.0).contains(&m) {
                    return Err(f.error(format!(
                        "{} is outside 1 to 100 (1 disables backoff)",
                        format_decimal(m)
                    )));
                }
                Ok(m)
            })?;
            let jitter = obj.opt("jitter", |f| {
                let j = f.f64()?;
                if !(0.0..1.0).contains(&j) {
                    return Err(f.error(format!(
                        "{} is outside 0 to 1 (a fraction: 0.1 is ±10 %)",
                        format_decimal(j)
                    )));
                }
                Ok(j)
            })?;
            obj.finish()?;
            (duration, max_duration, multiplier, jitter)
        }
    };
    let duration_ms = duration.map_or(5000, Millis::as_u64);
    let max_duration_ms = max_duration.map_or(duration_ms.max(60_000), Millis::as_u64);
    if max_duration_ms < duration_ms {
        return Err(path.key("max_duration").error(format!(
            "{} is shorter than open.duration ({})",
            Millis(max_duration_ms),
            Millis(duration_ms)
        )));
    }
    Ok(OpenPolicy {
        duration_ms,
        max_duration_ms,
        backoff_multiplier: multiplier.unwrap_or(2.0),
        jitter: jitter.unwrap_or(0.1),
    })
}

fn read_half_open(obj: Option<Obj<'_>>) -> Result<HalfOpenPolicy, ConfigError> {
    let (probes, max_wait) = match obj {
        None => (None, None),
        Some(mut obj) => {
            let probes = obj.opt("probes", |f| f.u32_in(1, MAX_PROBES))?;
            let max_wait = obj.opt("max_wait", duration::positive)?;
            obj.finish()?;
            (probes, max_wait)
        }
    };
    Ok(HalfOpenPolicy {
        probes: probes.unwrap_or(3),
        max_wait_ms: max_wait.map_or(10_000, Millis::as_u64),
    })
}

fn read_response(
    obj: Option<Obj<'_>>,
    path: &FieldPath,
    breaker: &str,
) -> Result<ReplySpec, ConfigError> {
    let (status, headers, body) = match obj {
        None => (None, None, None),
        Some(mut obj) => {
            let status = obj.opt("status", reply_status)?;
            let headers = obj.opt("headers", HeaderList::field)?;
            let body = obj.opt("body", |f| {
                let body = f.str()?;
                if body.len() > MAX_BODY_BYTES {
                    return Err(f.error(format!("longer than {MAX_BODY_BYTES} bytes")));
                }
                Ok(body.as_bytes().to_vec())
            })?;
            obj.finish()?;
            (status, headers, body)
        }
    };
    let default_body = body.is_none();
    let body = body.unwrap_or_else(|| {
        format!("{{\"error\":\"circuit open\",\"breaker\":\"{breaker}\"}}").into_bytes()
    });
    let headers = match headers {
        Some(headers) => headers,
        None if default_body => HeaderList(vec![(
            "content-type".to_string(),
            "application/json".to_string(),
        )]),
        None => HeaderList::default(),
    };
    for reserved in ["retry-after", "x-breakwater-breaker"] {
        if headers.contains(reserved) {
            return Err(path
                .key("headers")
                .key(reserved)
                .error("is set by the breaker itself"));
        }
    }
    Ok(ReplySpec {
        status: status.unwrap_or(503),
        headers,
        body,
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
                &one(r#""failure":{"statuses":[],"response_flags":[]}"#),
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
            "breakers[0].nope: unknown key (expected one of: name, match, split_by, max_keys, failure, trip, open, half_open, response, mode)"
        );
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
