//! The fallback filter's logic between Envoy and the cache: which rule owns a request, whether a
//! response triggers the fallback, which source answers, and which good responses are kept.
//! Everything the host provides comes through `Host` and two small views, so this is tested with
//! a fake host.

use crate::cache::{
    keep_header, parse_cache_control, storable_request, storable_response, upstream_keep_ms, Cache,
    CacheKey, Entry, StoreError,
};
use crate::config::{FallbackConfig, Rule, Source};
use breakwater_common::grpc::{self, is_grpc};
use breakwater_common::host::{bump, Host, Level, MetricId, MetricKind};
use breakwater_common::request::{Attribute, AttributeSource, RequestAttributes};
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

/// Per worker, how many recently stored keys are remembered to skip re-storing them.
const RECENT_STORES: usize = 1024;
/// Per worker, how many responses may be collected for the cache at once (each holds up to
/// `cache.max_body_bytes`).
pub const MAX_CAPTURES_IN_FLIGHT: u32 = 16;
/// The HTTP status of a `grpc` source's reply: gRPC carries its outcome in `grpc-status`, and
/// Envoy answers a gRPC request with 200 whatever the local reply's status.
pub const GRPC_REPLY_STATUS: u32 = 200;

/// Why a response was replaced (written to filter state).
pub use breakwater_common::filter_state::FallbackTrigger as Trigger;
use breakwater_common::filter_state::{BreakerCall, FallbackServed};

/// What the filter knows about a response at its headers; each read is a host call, made only
/// when the decision needs it.
pub trait ResponseView {
    fn status(&self) -> Option<u32>;
    fn flags(&self) -> u64;
    /// The circuit breaker's filter state for this request (a `BreakerCall`), if it ran.
    fn breaker_decision(&self) -> Option<Vec<u8>>;
    /// The gRPC status of a trailers-only response (headers that end the stream: a gRPC
    /// failure the upstream answered at once, or a local reply to a gRPC call), as a gRPC
    /// client takes it (`grpc::status_of_ended_response`); `None` for any other response: a
    /// normal gRPC response sends its status later, in trailers, when it can no longer be
    /// replaced.
    fn grpc_status(&self) -> Option<u32>;
}

/// A request a rule owns, made at request headers and carried through the stream.
#[derive(Debug, Clone)]
pub struct Plan {
    rule: usize,
    /// The request's cache identity, when the rule has a `stale` source.
    key: Option<CacheKey>,
    /// Method and credentials allow storing the response.
    storable_request: bool,
    /// The next source to try once triggered.
    next_source: usize,
    /// The request is a gRPC call: only `grpc` sources answer it, nothing is stored.
    grpc: bool,
    pub trigger: Option<Trigger>,
}

impl Plan {
    pub fn rule_index(&self) -> usize {
        self.rule
    }
}

/// What to do at response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnResponse {
    /// Replace the response: call [`Engine::next_step`].
    Fallback(Trigger),
    /// A good response worth keeping: collect its body and call [`Engine::store`].
    Capture(Capture),
    /// Leave it alone.
    Pass,
}

/// A response being collected for the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    upstream_keep_ms: Option<u64>,
    /// The upstream's `Age`: the response was already this old.
    age_ms: u64,
    body: Vec<u8>,
    limit: usize,
    abandoned: bool,
    _slot: CaptureSlot,
}

/// Counts the worker's captures in flight while it lives.
#[derive(Debug)]
struct CaptureSlot(Rc<Cell<u32>>);

impl CaptureSlot {
    fn take(count: &Rc<Cell<u32>>) -> Option<CaptureSlot> {
        (count.get() < MAX_CAPTURES_IN_FLIGHT).then(|| {
            count.set(count.get() + 1);
            CaptureSlot(Rc::clone(count))
        })
    }
}

impl Clone for CaptureSlot {
    fn clone(&self) -> Self {
        self.0.set(self.0.get() + 1);
        CaptureSlot(Rc::clone(&self.0))
    }
}

impl Drop for CaptureSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

// Two captures are equal whatever their slots (tests compare captures).
impl PartialEq for CaptureSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CaptureSlot {}

impl Capture {
    /// Appends a body chunk; past `cache.max_body_bytes` the capture is abandoned.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.abandoned {
            return;
        }
        if self.body.len().saturating_add(chunk.len()) > self.limit {
            self.abandoned = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned
    }
}

/// A reply the filter sends instead of the failed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub source: &'static str,
    /// For a gRPC call: the `grpc-status` of the trailers-only reply, whose `grpc-message` is
    /// the body and whose metadata are the headers.
    pub grpc_status: Option<u32>,
}

/// An HTTP call to another cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    pub cluster: &'a str,
    pub headers: Vec<(&'static str, &'a str)>,
    pub timeout_ms: u32,
}

/// The next thing to do for a triggered response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    Reply(Reply),
    Call(Call<'a>),
    /// No source answered: the original response goes through.
    Exhausted,
}

/// Per-worker memory of recent stores (to store a key at most once per interval) and of the
/// captures in flight.
#[derive(Default)]
pub struct WorkerState {
    recent: Vec<(u64, u64)>,
    captures: Rc<Cell<u32>>,
}

struct RuleMetrics {
    triggered: Option<MetricId>,
    served_static: Option<MetricId>,
    served_stale: Option<MetricId>,
    served_service: Option<MetricId>,
    served_grpc: Option<MetricId>,
    service_failures: Option<MetricId>,
    exhausted: Option<MetricId>,
    cache_stores: Option<MetricId>,
    cache_hits: Option<MetricId>,
    cache_misses: Option<MetricId>,
}

struct CacheMetrics {
    evictions: Option<MetricId>,
    entries: Option<MetricId>,
    bytes: Option<MetricId>,
}

/// Stats are `breakwater.fallback.<rule>.<stat>` and `breakwater.fallback.cache.<stat>`.
pub const STAT_PREFIX: &str = "breakwater.fallback";

pub struct Engine {
    rules: Vec<(Rule, RuleMetrics)>,
    cache: Cache,
    cache_metrics: CacheMetrics,
}

impl Engine {
    pub fn new<H: Host + ?Sized>(config: FallbackConfig, plugin_name: &str, host: &H) -> Engine {
        let define =
            |kind, name: String| host.define_metric(kind, &format!("{STAT_PREFIX}.{name}"));
        let rules = config
            .rules
            .into_iter()
            .map(|rule| {
                let has = |kind: &str| rule.sources.iter().any(|s| s.kind() == kind);
                let counter = |stat: &str, wanted: bool| {
                    wanted
                        .then(|| define(MetricKind::Counter, format!("{}.{stat}", rule.name)))
                        .flatten()
                };
                let metrics = RuleMetrics {
                    triggered: counter("triggered", true),
                    served_static: counter("served.static", has("static")),
                    served_stale: counter("served.stale", has("stale")),
                    served_service: counter("served.service", has("service")),
                    served_grpc: counter("served.grpc", has("grpc")),
                    service_failures: counter("service_failures", has("service")),
                    exhausted: counter("exhausted", true),
                    cache_stores: counter("cache.stores", has("stale")),
                    cache_hits: counter("cache.hits", has("stale")),
                    cache_misses: counter("cache.misses", has("stale")),
                };
                (rule, metrics)
            })
            .collect::<Vec<_>>();
        let uses_cache = rules.iter().any(|(r, _)| r.stale().is_some());
        let cache_metric = |kind, stat: &str| {
            uses_cache
                .then(|| define(kind, format!("cache.{stat}")))
                .flatten()
        };
        Engine {
            cache_metrics: CacheMetrics {
                evictions: cache_metric(MetricKind::Counter, "evictions"),
                entries: cache_metric(MetricKind::Gauge, "entries"),
                bytes: cache_metric(MetricKind::Gauge, "bytes"),
            },
            cache: Cache::new(plugin_name, config.cache),
            rules,
        }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn rule_name(&self, plan: &Plan) -> &str {
        self.rules
            .get(plan.rule)
            .map_or("", |(r, _)| r.name.as_str())
    }

    /// Finds the rule that owns a request, reading only what matching, the kind of request
    /// and the cache key need. `None` when no rule owns it, or when the owner has no source
    /// for its kind (a gRPC call and no `grpc` source, or an HTTP request and only `grpc`
    /// sources): such a request is left alone.
    pub fn on_request<S: AttributeSource + ?Sized>(&self, source: &S) -> Option<Plan> {
        let mut attrs = RequestAttributes::new(source);
        let (index, (rule, _)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, (r, _))| r.matcher.matches(&mut attrs))?;
        // Every rule's sources depend on it, so it is read for every request a rule owns: one
        // header, at request headers (the request's headers cannot be read later), unless the
        // rule's match already read a method that rules gRPC out.
        let grpc = attrs.may_be_grpc()
            && attrs
                .header("content-type")
                .is_some_and(|value| is_grpc(&value));
        if !rule.answers(grpc) {
            return None;
        }
        let mut plan = Plan {
            rule: index,
            key: None,
            storable_request: false,
            next_source: 0,
            grpc,
            trigger: None,
        };
        if grpc {
            // Never stored and never served stale: no cache key.
            return Some(plan);
        }
        if let Some(stale) = rule.stale() {
            let method = attrs.get(Attribute::Method).unwrap_or_default().to_vec();
            let authority = attrs.get(Attribute::Authority).unwrap_or_default().to_vec();
            let path = attrs.get(Attribute::Path).unwrap_or_default().to_vec();
            let mut vary: Vec<(&str, Option<Vec<u8>>)> = stale
                .vary
                .iter()
                .map(|name| (name.as_str(), attrs.header(name)))
                .collect();
            if stale.allow_credentials {
                // Responses to credentialed requests belong to their user: key them by it.
                for name in ["authorization", "cookie"] {
                    vary.push((name, attrs.header(name)));
                }
            }
            let has_credentials = !stale.allow_credentials
                && (attrs.header("authorization").is_some() || attrs.header("cookie").is_some());
            plan.storable_request = storable_request(&method, has_credentials, stale).is_ok();
            plan.key = Some(CacheKey::new(&rule.name, &method, &authority, &path, &vary));
        }
        Some(plan)
    }

    /// Decides at response headers: replace, keep for the cache, or leave alone.
    pub fn on_response_headers<H, V>(
        &self,
        host: &H,
        worker: &mut WorkerState,
        plan: &mut Plan,
        view: &V,
        all_headers: impl FnOnce() -> Vec<(Vec<u8>, Vec<u8>)>,
    ) -> OnResponse
    where
        H: Host + ?Sized,
        V: ResponseView + ?Sized,
    {
        let Some((rule, metrics)) = self.rules.get(plan.rule) else {
            return OnResponse::Pass;
        };
        let status = view.status().unwrap_or(0);
        // A gRPC call's `grpc-status` header, read at most once and only when a trigger asks.
        let grpc_status = OnceCell::new();
        let grpc_status = || *grpc_status.get_or_init(|| view.grpc_status());
        // A rejection is a local reply: an error status for HTTP, and for a gRPC call a
        // trailers-only 200 whose grpc-status is not OK. Only then is the breaker's state read.
        let trigger = if rule.on.breaker_open
            && (status >= 400 || (plan.grpc && grpc_status().is_some_and(|c| c != grpc::OK)))
            && view
                .breaker_decision()
                .as_deref()
                .and_then(|value| BreakerCall::parse(value).decision())
                .is_some_and(|decision| decision.answered_by_breaker())
        {
            Some(Trigger::BreakerOpen)
        } else if rule.on.statuses.contains(status) {
            Some(Trigger::Status)
        } else if plan.grpc
            && !rule.on.grpc_statuses.is_empty()
            && grpc_status().is_some_and(|c| rule.on.grpc_statuses.contains(c))
        {
            Some(Trigger::GrpcStatus)
        } else if rule.on.flags.0 != 0 && rule.on.flags.intersects(view.flags()) {
            Some(Trigger::ResponseFlags)
        } else {
            None
        };
        if let Some(trigger) = trigger {
            bump(host, metrics.triggered);
            plan.trigger = Some(trigger);
            return OnResponse::Fallback(trigger);
        }
        if plan.grpc {
            // A gRPC response is never stored.
            return OnResponse::Pass;
        }
        let (Some(stale), Some(key)) = (rule.stale(), &plan.key) else {
            return OnResponse::Pass;
        };
        if !plan.storable_request || !stale.statuses.contains(status) {
            return OnResponse::Pass;
        }
        let now = host.now_ms();
        let interval = self.cache.limits.min_store_interval_ms;
        if worker
            .recent
            .iter()
            .any(|(h, at)| *h == key.hash && now.saturating_sub(*at) < interval)
        {
            return OnResponse::Pass;
        }
        let Some(slot) = CaptureSlot::take(&worker.captures) else {
            return OnResponse::Pass;
        };
        // Counted from now: concurrent responses for a hot URL, or one too large to keep, are
        // collected at most once per interval.
        remember_store(&mut worker.recent, key.hash, now);
        // Only now, for a response worth keeping, fetch every header (one host call).
        let headers = all_headers();
        let joined = |name: &[u8]| {
            let values: Vec<&[u8]> = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
                .collect();
            (!values.is_empty()).then(|| values.join(&b","[..]))
        };
        let directives = joined(b"cache-control")
            .map(|v| parse_cache_control(&v))
            .unwrap_or_default();
        let sets_cookie = joined(b"set-cookie").is_some();
        let vary = joined(b"vary");
        if storable_response(status, directives, sets_cookie, vary.as_deref(), stale).is_err() {
            return OnResponse::Pass;
        }
        let age_ms = joined(b"age")
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u64>().ok())
            .map_or(0, |secs| secs.saturating_mul(1000));
        let kept = headers
            .into_iter()
            .filter(|(n, _)| keep_header(n))
            .collect();
        OnResponse::Capture(Capture {
            status: u16::try_from(status).unwrap_or(200),
            headers: kept,
            upstream_keep_ms: upstream_keep_ms(directives),
            age_ms,
            body: Vec::new(),
            limit: self.cache.limits.max_body_bytes as usize,
            abandoned: false,
            _slot: slot,
        })
    }

    /// Creates the shared cache's index before traffic.
    pub fn prepare<H: Host + ?Sized>(&self, host: &H) {
        if self.rules.iter().any(|(r, _)| r.stale().is_some()) {
            self.cache.prepare(host);
        }
    }

    /// The largest fallback-service answer accepted; larger ones count as failures.
    pub fn max_service_body(&self) -> usize {
        self.cache.limits.max_body_bytes as usize
    }

    /// Stores a completely received response.
    pub fn store<H: Host + ?Sized>(&self, host: &H, plan: &Plan, capture: Capture) -> bool {
        let (Some((_, metrics)), Some(key)) = (self.rules.get(plan.rule), &plan.key) else {
            return false;
        };
        if capture.abandoned {
            return false;
        }
        let now = host.now_ms();
        let entry = Entry {
            key: key.text.clone(),
            hash: key.hash,
            stored_ms: now.saturating_sub(capture.age_ms),
            upstream_keep_ms: capture.upstream_keep_ms,
            status: capture.status,
            headers: capture.headers,
            body: capture.body,
        };
        match self.cache.store(host, &entry) {
            Ok(report) => {
                bump(host, metrics.cache_stores);
                if report.evicted > 0 {
                    if let Some(id) = self.cache_metrics.evictions {
                        host.add_metric(id, i64::from(report.evicted));
                    }
                }
                if let Some(id) = self.cache_metrics.entries {
                    host.set_gauge(id, u64::from(report.entries));
                }
                if let Some(id) = self.cache_metrics.bytes {
                    host.set_gauge(id, report.bytes);
                }
                true
            }
            Err(StoreError::TooLarge) => false,
            Err(StoreError::Shared(err)) => {
                host.log(
                    Level::Warn,
                    &format!(
                        "breakwater fallback: response not cached, shared data unavailable ({err})"
                    ),
                );
                false
            }
        }
    }

    /// The next source's answer for a triggered response.
    pub fn next_step<'e, H: Host + ?Sized>(&'e self, host: &H, plan: &mut Plan) -> Step<'e> {
        let Some((rule, metrics)) = self.rules.get(plan.rule) else {
            return Step::Exhausted;
        };
        while let Some(source) = rule.sources.get(plan.next_source) {
            plan.next_source += 1;
            // A gRPC call never gets an HTTP body, nor an HTTP request a gRPC status.
            if source.for_grpc() != plan.grpc {
                continue;
            }
            match source {
                Source::Static(s) => {
                    bump(host, metrics.served_static);
                    return Step::Reply(reply(
                        s.status,
                        s.headers
                            .0
                            .iter()
                            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec())),
                        s.body.clone(),
                        FallbackServed::Static.as_str(),
                        None,
                    ));
                }
                Source::Stale(stale) => {
                    let Some(key) = &plan.key else { continue };
                    let now = host.now_ms();
                    let found = self.cache.lookup(host, key).and_then(|entry| {
                        let age = entry.age_if_servable(now, stale.max_age_ms)?;
                        Some((entry, age))
                    });
                    match found {
                        Some((entry, age_ms)) => {
                            bump(host, metrics.cache_hits);
                            bump(host, metrics.served_stale);
                            return Step::Reply(reply(
                                u32::from(entry.status),
                                entry
                                    .headers
                                    .into_iter()
                                    .filter_map(|(n, v)| Some((String::from_utf8(n).ok()?, v))),
                                entry.body,
                                FallbackServed::Stale.as_str(),
                                Some(age_ms / 1000),
                            ));
                        }
                        None => bump(host, metrics.cache_misses),
                    }
                }
                Source::Grpc(g) => {
                    bump(host, metrics.served_grpc);
                    return Step::Reply(Reply {
                        grpc_status: Some(g.status),
                        ..reply(
                            GRPC_REPLY_STATUS,
                            g.metadata
                                .iter()
                                .map(|(n, v)| (n.clone(), v.as_bytes().to_vec())),
                            g.message.clone(),
                            FallbackServed::Grpc.as_str(),
                            None,
                        )
                    });
                }
                Source::Service(s) => {
                    return Step::Call(Call {
                        cluster: &s.cluster,
                        headers: vec![
                            (":method", "GET"),
                            (":path", s.path.as_str()),
                            (":authority", s.authority.as_str()),
                        ],
                        timeout_ms: s.timeout_ms,
                    });
                }
            }
        }
        bump(host, metrics.exhausted);
        Step::Exhausted
    }

    /// The answer of the service source last returned by [`Engine::next_step`]: a 2xx becomes
    /// the reply; anything else (or `None`: the call could not be made or timed out) moves on.
    pub fn on_service_answer<'e, H: Host + ?Sized>(
        &'e self,
        host: &H,
        plan: &mut Plan,
        status: Option<u32>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Step<'e> {
        let Some((_, metrics)) = self.rules.get(plan.rule) else {
            return Step::Exhausted;
        };
        match status {
            Some(code @ 200..=299) => {
                bump(host, metrics.served_service);
                Step::Reply(reply(
                    code,
                    headers
                        .into_iter()
                        .filter(|(n, _)| keep_header(n))
                        .filter_map(|(n, v)| Some((String::from_utf8(n).ok()?, v))),
                    body,
                    FallbackServed::Service.as_str(),
                    None,
                ))
            }
            _ => {
                bump(host, metrics.service_failures);
                self.next_step(host, plan)
            }
        }
    }
}

/// A fallback reply: the source's headers (a gRPC reply's metadata) plus
/// `x-breakwater-fallback` (and `age` for stale).
fn reply(
    status: u32,
    headers: impl Iterator<Item = (String, Vec<u8>)>,
    body: Vec<u8>,
    source: &'static str,
    age_s: Option<u64>,
) -> Reply {
    let mut headers: Vec<(String, Vec<u8>)> = headers.collect();
    headers.push((
        "x-breakwater-fallback".to_string(),
        source.as_bytes().to_vec(),
    ));
    if let Some(age) = age_s {
        headers.push(("age".to_string(), age.to_string().into_bytes()));
    }
    Reply {
        status,
        headers,
        body,
        source,
        grpc_status: None,
    }
}

fn remember_store(recent: &mut Vec<(u64, u64)>, hash: u64, now: u64) {
    if let Some(slot) = recent.iter_mut().find(|(h, _)| *h == hash) {
        slot.1 = now;
        return;
    }
    if recent.len() >= RECENT_STORES {
        // Forget the longest-ago store.
        if let Some(oldest) = recent
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, at))| *at)
            .map(|(i, _)| i)
        {
            recent.swap_remove(oldest);
        }
    }
    recent.push((hash, now));
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
