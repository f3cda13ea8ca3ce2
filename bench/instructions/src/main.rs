//! Drives N identical requests through one filter engine, so that `bench/instructions.py` can
//! count the instructions one request costs under callgrind: `(Ir(N2) - Ir(N1)) / (N2 - N1)`
//! cancels start-up and configuration.
//!
//! ```text
//! breakwater-instructions <scenario> <requests> [--fake-host]
//! breakwater-instructions --list
//! ```
//!
//! Every scenario calls the engines as the filter's adapter does for one request (minus the
//! proxy-wasm host calls themselves), with the configurations of `envoy/demo.yaml` and
//! `envoy/log-enrichment.yaml`. Nothing depends on time or randomness: the host's clock is set
//! by hand, the breaker's jitter has a fixed seed, the correlation id fixed random bits, and the
//! host keeps its state in vectors rather than randomly seeded hash maps (see [`hosts`];
//! `--fake-host` runs with `breakwater-common`'s `FakeHost` instead). Each scenario checks that
//! its requests took the intended path, so a change in behaviour fails here instead of silently
//! measuring something else; the unit test runs them all with both hosts.

// A benchmark driver, never loaded into Envoy: the workspace's no-panic lints guard filter
// code, while a scenario that no longer does what it says should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hosts;

use breakwater_common::host::fake::{FakeHost, FakeRequest};
use breakwater_common::host::Host;
use breakwater_common::request::AttributeSource;
use circuit_breaker::config::BreakerConfig;
use circuit_breaker::engine::{
    Engine as BreakerEngine, RequestVerdict, WorkerState as BreakerWorker,
};
use fallback::config::FallbackConfig;
use fallback::engine::{
    Engine as FallbackEngine, OnResponse, ResponseView, Step, WorkerState as FallbackWorker,
};
use hosts::{BenchHost, BenchRequest, ScenarioHost, ScenarioRequest};
use log_enrichment::config::LogConfig;
use log_enrichment::correlation::{uuid_v4, Decision};
use log_enrichment::engine::{BreakerView, Engine as LogEngine, Exchange};
use std::hint::black_box;
use std::process::ExitCode;

/// The scenarios, with what one request of each does.
pub const SCENARIOS: [(&str, &str); 10] = [
    (
        "breaker",
        "circuit breaker closed and matching; healthy 200 responses",
    ),
    ("breaker-open", "circuit breaker open; requests rejected"),
    (
        "fallback-store",
        "fallback rule matching; the stale source stores the 200 response",
    ),
    (
        "fallback-serve",
        "fallback rule matching; upstream 503, the stored response served",
    ),
    (
        "log-typical",
        "log enrichment, all detectors; typical request without personal data",
    ),
    (
        "log-pii",
        "log enrichment, all detectors; request with personal data",
    ),
    (
        "log-patterns",
        "log enrichment as log-typical, with four user-defined detectors",
    ),
    (
        "log-body",
        "log enrichment as log-typical, with a 1 KB JSON request body logged (detectors only)",
    ),
    (
        "log-body-fields",
        "log enrichment as log-body, with JSON field rules (redact_fields and keep_fields)",
    ),
    (
        "chain",
        "log enrichment, fallback and breaker for one healthy request, in Envoy's order",
    ),
];

/// The fake host's clock at start (any fixed value).
const T0: u64 = 1_795_752_000_000;

/// `envoy/demo.yaml`'s circuit breaker.
const BREAKER_CONFIG: &str = r#"{
  "breakers": [
    {
      "name": "recommendations",
      "match": { "path_prefix": "/recommendations", "methods": ["GET"] },
      "failure": { "statuses": ["5xx"], "response_flags": ["UF", "UT", "URX", "UC"], "slow_call": "1s" },
      "trip": {
        "consecutive_failures": 5,
        "failure_rate": 50, "minimum_calls": 10,
        "window": { "kind": "count", "size": 20 }
      },
      "open": { "duration": "3s", "max_duration": "12s", "backoff_multiplier": 2.0, "jitter": 0.1 },
      "half_open": { "probes": 2, "max_wait": "5s" },
      "response": {
        "status": 503,
        "headers": { "content-type": "application/json" },
        "body": "{\"error\":\"recommendations unavailable\",\"fallback\":[\"bestseller-1\",\"bestseller-2\"]}"
      },
      "mode": "enforce"
    }
  ]
}"#;

/// `envoy/demo.yaml`'s fallback.
const FALLBACK_CONFIG: &str = r#"{
  "rules": [
    {
      "name": "recommendations",
      "match": { "path_prefix": "/recommendations", "methods": ["GET"] },
      "serve": [
        { "stale": { "max_age": "8s" } },
        { "static": { "headers": { "content-type": "application/json" },
                      "body": "[\"most-popular-1\",\"most-popular-2\"]" } }
      ]
    }
  ]
}"#;

/// `envoy/log-enrichment.yaml`'s log enrichment (every detector), logging `accept` too.
const LOG_CONFIG: &str = r#"{
  "service": { "name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1" },
  "correlation": { "header": "x-correlation-id", "generate": true, "trust_incoming": true, "echo_in_response": true },
  "workload_metadata": true,
  "request_headers": ["user-agent", "accept", "x-tenant-id"],
  "response_headers": ["content-type"],
  "redact": {
    "detectors": ["email", "payment_card", "iban", "no_national_id", "ipv4", "ipv6", "jwt", "bearer"],
    "query_params": ["token", "access_token", "password", "api_key"],
    "mode": "mask",
    "hmac_key": null
  },
  "sampling": { "rate": 1.0, "always_keep": ["5xx", "fallback", "breaker_rejected", "slow"], "slow": "1s" },
  "upstream_headers": { "x-breakwater-service": "checkout" },
  "separate_fields": true
}"#;

/// Four user-defined detectors, as a team might add them (`redact.patterns`).
const PATTERNS: &str = r#"[
    { "name": "customer_no", "regex": "\\b\\d{8}\\b", "validate": "mod11", "keywords": ["kundenr", "customer"] },
    { "name": "case_ref", "regex": "(?i)\\bSAK-\\d{4}-\\d{6}\\b" },
    { "name": "employee_id", "regex": "\\bEMP[0-9]{6}\\b" },
    { "name": "kid", "regex": "\\b\\d{10,25}\\b", "validate": "mod11", "keywords": ["kid"] }
]"#;

/// Body excerpts of JSON requests (`body`), without and with field rules.
const BODY: &str = r#"{ "max_bytes": 1024 }"#;
const BODY_FIELDS: &str = r#"{ "max_bytes": 1024, "redact_fields": ["customer.address", "payment"],
    "keep_fields": ["order_id", "customer.name", "items[].sku", "items[].qty"] }"#;

const TYPICAL_PATH: &str = "/api/v1/orders/12345?page=2&sort=desc";
const PII_PATH: &str =
    "/customers/ola.nordmann%40example.no/orders?fnr=01010012356&token=s3cret&page=2";
/// A request the breaker's and the fallback's rules own.
const RECOMMENDATIONS_PATH: &str = "/recommendations/top?page=2&sort=desc";
const TENANT: &str = "acme-retail";
const TENANT_WITH_CARD: &str = "acme-retail card 4111 1111 1111 1111";

/// The random bits of the correlation id the log filter generates (fixed, not random).
const ID_BITS: (u64, u64) = (0x4bf9_2f35_77b3_4da6, 0xa3ce_929d_0e0e_4736);

fn h(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// A typical request as it reaches the sidecar (Envoy has added `x-request-id`).
fn request_headers(path: &str, tenant: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        h(":method", "GET"),
        h(":scheme", "http"),
        h(":authority", "checkout.shop.svc.cluster.local:8080"),
        h(":path", path),
        h("x-request-id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
        h("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"),
        h("accept", "application/json"),
        h("x-tenant-id", tenant),
        h(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]
}

/// About 0.5 KB of JSON, a small API answer.
fn response_body() -> Vec<u8> {
    let items: Vec<String> = (1..=12)
        .map(|i| format!(r#"{{"id":"rec-{i:04}","title":"Recommendation {i}","score":0.{i:02}}}"#))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn response_headers(status: u32, body_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        h(":status", &status.to_string()),
        h("content-type", "application/json"),
        h("content-length", &body_len.to_string()),
        h("x-envoy-upstream-service-time", "12"),
    ]
}

/// The upstream response as the fallback reads it at response headers.
struct Response {
    status: u32,
}

impl ResponseView for Response {
    fn status(&self) -> Option<u32> {
        Some(self.status)
    }
    fn flags(&self) -> u64 {
        0
    }
    fn breaker_decision(&self) -> Option<Vec<u8>> {
        None
    }
    fn grpc_status(&self) -> Option<u32> {
        None
    }
}

struct Breaker {
    engine: BreakerEngine,
    worker: BreakerWorker,
}

impl Breaker {
    fn new(host: &impl Host) -> Breaker {
        let config = BreakerConfig::parse(BREAKER_CONFIG.as_bytes()).unwrap();
        let engine = BreakerEngine::new(config, "circuit-breaker", host);
        engine.prepare(host);
        let worker = BreakerWorker::new(&engine, 0x5eed);
        Breaker { engine, worker }
    }

    /// Request headers: the decision and its filter state (decision, breaker, state).
    fn on_request(&mut self, host: &impl Host, request: &impl AttributeSource) -> RequestVerdict {
        let verdict = self.engine.on_request(host, &mut self.worker, request);
        match &verdict {
            RequestVerdict::Admitted(ticket) => {
                black_box((
                    self.engine.breaker_name(&ticket.breaker()),
                    ticket.decision.as_str(),
                    ticket.state,
                ));
            }
            RequestVerdict::Rejected(rejection) => {
                black_box(self.engine.breaker_name(&rejection.breaker()));
                let reply = self.engine.reply(rejection, false).unwrap();
                black_box((reply.status, &reply.headers, reply.body, reply.retry()));
            }
            RequestVerdict::NotMatched => {}
        }
        verdict
    }

    /// Response headers and log: the outcome of an admitted request.
    fn on_response(
        &mut self,
        host: &impl Host,
        verdict: &RequestVerdict,
        status: u32,
    ) -> &'static str {
        let RequestVerdict::Admitted(ticket) = verdict else {
            panic!("the breaker did not admit the request: {verdict:?}");
        };
        let responded_ms = ticket.wants_response_time().then(|| host.now_ms());
        let outcome = self
            .engine
            .on_complete(
                host,
                &mut self.worker,
                ticket,
                Some(status),
                0,
                responded_ms,
            )
            .expect("the outcome is recorded");
        outcome.as_str()
    }
}

struct Fallback {
    engine: FallbackEngine,
    worker: FallbackWorker,
    body: Vec<u8>,
    /// The upstream's response headers, healthy and failed.
    ok: Vec<(Vec<u8>, Vec<u8>)>,
    failed: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Fallback {
    fn new(host: &impl Host) -> Fallback {
        let config = FallbackConfig::parse(FALLBACK_CONFIG.as_bytes()).unwrap();
        let engine = FallbackEngine::new(config, "fallback", host);
        engine.prepare(host);
        let body = response_body();
        Fallback {
            engine,
            worker: FallbackWorker::default(),
            ok: response_headers(200, body.len()),
            failed: response_headers(503, 0),
            body,
        }
    }

    /// A whole request with a healthy upstream: whether its response was stored.
    fn healthy(&mut self, host: &impl Host, request: &impl AttributeSource) -> bool {
        let mut plan = self.engine.on_request(request).expect("the rule matches");
        let decision = self.engine.on_response_headers(
            host,
            &mut self.worker,
            &mut plan,
            &Response { status: 200 },
            || self.ok.clone(),
        );
        match decision {
            OnResponse::Capture(mut capture) => {
                capture.push(&self.body);
                self.engine.store(host, &plan, capture)
            }
            OnResponse::Pass => false,
            OnResponse::Fallback(trigger) => panic!("a 200 triggered the fallback ({trigger:?})"),
        }
    }

    /// A whole request whose upstream answers 503: the source that served the reply.
    fn failing(&mut self, host: &impl Host, request: &impl AttributeSource) -> &'static str {
        let mut plan = self.engine.on_request(request).expect("the rule matches");
        let decision = self.engine.on_response_headers(
            host,
            &mut self.worker,
            &mut plan,
            &Response { status: 503 },
            || self.failed.clone(),
        );
        let OnResponse::Fallback(trigger) = decision else {
            panic!("a 503 did not trigger the fallback: {decision:?}");
        };
        black_box((self.engine.rule_name(&plan), trigger.as_str()));
        match self.engine.next_step(host, &mut plan) {
            Step::Reply(reply) => {
                let source = reply.source;
                black_box(reply);
                source
            }
            other => panic!("no reply: {other:?}"),
        }
    }
}

struct Log {
    engine: LogEngine,
}

impl Log {
    fn new(host: &impl Host) -> Log {
        Log::with(host, None, None)
    }

    /// `LOG_CONFIG` with these `redact.patterns` and `body`.
    fn with(host: &impl Host, patterns: Option<&str>, body: Option<&str>) -> Log {
        let mut config: serde_json::Value = serde_json::from_str(LOG_CONFIG).unwrap();
        let object = config.as_object_mut().unwrap();
        if let Some(patterns) = patterns {
            let redact = object.get_mut("redact").and_then(|r| r.as_object_mut());
            let patterns = serde_json::from_str(patterns).unwrap();
            redact.unwrap().insert("patterns".to_string(), patterns);
        }
        if let Some(body) = body {
            object.insert("body".to_string(), serde_json::from_str(body).unwrap());
        }
        let config = LogConfig::parse(config.to_string().as_bytes()).unwrap();
        let mut engine = LogEngine::new(config, host);
        // `envoy/demo.yaml`'s node metadata.
        engine.load_workload(|path| {
            let value = match path {
                ["xds", "node", "metadata", "NAMESPACE"] => "shop",
                ["xds", "node", "metadata", "NAME"] => "shop-frontend-7d9f-abc",
                ["xds", "node", "metadata", "WORKLOAD_NAME"] => "shop-frontend",
                ["xds", "node", "metadata", "LABELS", "app"] => "shop-frontend",
                ["xds", "node", "metadata", "LABELS", "version"] => "v1",
                _ => return None,
            };
            Some(value.as_bytes().to_vec())
        });
        Log { engine }
    }

    /// Request headers: no correlation id came in, so one is generated.
    fn on_request(&self, host: &impl Host) -> Decision {
        self.engine
            .on_request(host, None, || uuid_v4(ID_BITS.0, ID_BITS.1))
    }

    /// What Envoy reports at the end of the stream (the correlation header as the filter set it).
    fn exchange(path: &str, tenant: &str, breaker: Option<BreakerView>) -> Exchange {
        let mut request_headers = request_headers(path, tenant);
        request_headers.push(h("x-correlation-id", &uuid_v4(ID_BITS.0, ID_BITS.1)));
        request_headers.push(h("x-breakwater-service", "checkout"));
        Exchange {
            start_unix_nanos: Some(1_795_751_999_999_000_000),
            request_headers,
            response_headers: response_headers(200, 512),
            protocol: Some(b"HTTP/1.1".to_vec()),
            status: Some(200),
            duration_nanos: Some(12_345_678),
            request_body_bytes: Some(0),
            response_body_bytes: Some(512),
            upstream_address: Some(b"10.0.3.17:8080".to_vec()),
            cluster: Some(b"outbound|8080||recommendations.shop.svc.cluster.local".to_vec()),
            route: Some(b"default".to_vec()),
            source_address: Some(b"10.0.1.23:51234".to_vec()),
            breaker,
            ..Exchange::default()
        }
    }

    /// Log: the record, as one JSON string and (`separate_fields`) field by field.
    fn on_log(&self, host: &impl Host, exchange: &Exchange, correlation: &Decision) -> usize {
        let record = self
            .engine
            .finish(host, exchange, correlation)
            .expect("sampling keeps every request");
        black_box(record.to_json());
        for (field, value) in &record.fields {
            black_box((field, value.plain()));
        }
        record.fields.len()
    }
}

fn breaker<H: ScenarioHost, R: ScenarioRequest>(n: u64) {
    let host = H::at(T0);
    let mut breaker = Breaker::new(&host);
    let request = R::with_headers(&request_headers(RECOMMENDATIONS_PATH, TENANT));
    for _ in 0..n {
        let verdict = breaker.on_request(&host, &request);
        black_box(breaker.on_response(&host, &verdict, 200));
        request.reset();
    }
    expect_metric(&host, "circuit_breaker.recommendations.calls.success", n);
    expect_metric(&host, "circuit_breaker.recommendations.state", 0);
    expect_quiet(&host);
}

fn breaker_open<H: ScenarioHost, R: ScenarioRequest>(n: u64) {
    let host = H::at(T0);
    let mut breaker = Breaker::new(&host);
    let request = R::with_headers(&request_headers(RECOMMENDATIONS_PATH, TENANT));
    // `consecutive_failures: 5` opens it.
    for _ in 0..5 {
        let verdict = breaker.on_request(&host, &request);
        breaker.on_response(&host, &verdict, 503);
        request.reset();
    }
    expect_metric(&host, "circuit_breaker.recommendations.state", 1);
    // The transition's warning; no more after it.
    let warnings = host.warnings();
    // Well within the open duration (3 s, 10 % jitter): the clock stays here.
    host.advance(1000);
    for _ in 0..n {
        let verdict = breaker.on_request(&host, &request);
        if !matches!(verdict, RequestVerdict::Rejected(_)) {
            panic!("the open breaker admitted a request: {verdict:?}");
        }
        request.reset();
    }
    expect_metric(&host, "circuit_breaker.recommendations.rejected", n);
    assert_eq!(host.warnings(), warnings, "no warning while open");
}

fn fallback_store<H: ScenarioHost, R: ScenarioRequest>(n: u64) {
    let host = H::at(T0);
    let mut fallback = Fallback::new(&host);
    let request = R::with_headers(&request_headers(RECOMMENDATIONS_PATH, TENANT));
    for _ in 0..n {
        // A worker stores a URL at most once per `cache.min_store_interval` (1 s).
        host.advance(1500);
        if !fallback.healthy(&host, &request) {
            panic!("the response was not stored");
        }
        request.reset();
    }
    expect_metric(&host, "fallback.recommendations.cache.stores", n);
    expect_quiet(&host);
}

fn fallback_serve<H: ScenarioHost, R: ScenarioRequest>(n: u64) {
    let host = H::at(T0);
    let mut fallback = Fallback::new(&host);
    let request = R::with_headers(&request_headers(RECOMMENDATIONS_PATH, TENANT));
    assert!(fallback.healthy(&host, &request), "the response was stored");
    request.reset();
    // Two seconds later (within `max_age: 8s`) the upstream fails; the clock stays here.
    host.advance(2000);
    for _ in 0..n {
        let source = fallback.failing(&host, &request);
        if source != "stale" {
            panic!("served from {source}, not the stored response");
        }
        request.reset();
    }
    expect_metric(&host, "fallback.recommendations.served.stale", n);
    expect_quiet(&host);
}

fn log<H: ScenarioHost>(n: u64, path: &str, tenant: &str) {
    log_with::<H>(n, path, tenant, None, None);
}

/// A JSON order of about 1 KB, as a request body.
fn order_body() -> String {
    let items: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"sku": "SKU-{i:05}", "qty": {i}, "price": 199.5, "gift": false}}"#))
        .collect();
    format!(
        r#"{{"order_id": "A-2026-000017", "customer": {{"name": "Kari Nordmann", "address": {{"street": "Storgata 1", "zip": "0155", "city": "Oslo"}}, "phone": "+47 22 00 00 00"}}, "items": [{}], "payment": {{"method": "card", "last4": "1111"}}, "notes": "leave at the door, ring twice"}}"#,
        items.join(", ")
    )
}

fn log_with<H: ScenarioHost>(
    n: u64,
    path: &str,
    tenant: &str,
    patterns: Option<&str>,
    body: Option<&str>,
) {
    let host = H::at(T0);
    let log = Log::with(&host, patterns, body);
    let mut exchange = Log::exchange(path, tenant, None);
    if body.is_some() {
        let payload = order_body();
        let mut capture = log
            .engine
            .body_capture(Some(b"application/json"), None)
            .expect("JSON bodies are captured");
        let wanted = capture.wanted(payload.len());
        let read = payload.as_bytes().get(..wanted).unwrap_or_default();
        capture.add(read, payload.len(), true);
        exchange.request_body = Some(capture);
    }
    for _ in 0..n {
        let correlation = log.on_request(&host);
        black_box(log.on_log(&host, &exchange, &correlation));
    }
    expect_metric(&host, "log.records", n);
    expect_metric(&host, "log.correlation.generated", n);
    expect_quiet(&host);
}

/// One healthy request through the three filters as `envoy/demo.yaml` chains them: request
/// headers in filter order (log, fallback, breaker), response headers in reverse, then the log
/// callbacks. The URL was stored less than `cache.min_store_interval` ago (the clock
/// stands still), so the fallback keys and checks the response but does not store it again:
/// the steady state of a busy URL.
fn chain<H: ScenarioHost, R: ScenarioRequest>(n: u64) {
    let host = H::at(T0);
    let log = Log::new(&host);
    let mut fallback = Fallback::new(&host);
    let mut breaker = Breaker::new(&host);
    let headers = request_headers(RECOMMENDATIONS_PATH, TENANT);
    let request = R::with_headers(&headers);
    let exchange = Log::exchange(
        RECOMMENDATIONS_PATH,
        TENANT,
        Some(BreakerView {
            name: b"recommendations".to_vec(),
            decision: b"passed".to_vec(),
            state: b"closed".to_vec(),
        }),
    );
    assert!(fallback.healthy(&host, &request), "the response was stored");
    request.reset();
    for _ in 0..n {
        // Request headers.
        let correlation = log.on_request(&host);
        let mut plan = fallback
            .engine
            .on_request(&request)
            .expect("the rule matches");
        let verdict = breaker.on_request(&host, &request);
        // Response headers, then the body (nothing to store), then the log callbacks.
        let status = 200;
        let decision = fallback.engine.on_response_headers(
            &host,
            &mut fallback.worker,
            &mut plan,
            &Response { status },
            || fallback.ok.clone(),
        );
        if decision != OnResponse::Pass {
            panic!("the fallback did not pass the response: {decision:?}");
        }
        black_box(breaker.on_response(&host, &verdict, status));
        black_box(log.on_log(&host, &exchange, &correlation));
        request.reset();
    }
    expect_metric(&host, "circuit_breaker.recommendations.calls.success", n);
    expect_metric(&host, "fallback.recommendations.cache.stores", 1);
    expect_metric(&host, "log.records", n);
    expect_quiet(&host);
}

/// Nothing went wrong on the way: no warning was logged.
fn expect_quiet(host: &impl ScenarioHost) {
    let warnings = host.warnings();
    if warnings > 0 {
        panic!("{warnings} warning(s) logged");
    }
}

fn expect_metric(host: &impl ScenarioHost, name: &str, value: u64) {
    let actual = host.metric(&format!("breakwater.{name}"));
    if u64::try_from(actual).ok() != Some(value) {
        panic!("breakwater.{name} is {actual}, expected {value}");
    }
}

/// Runs `requests` requests of a scenario; false if there is no such scenario.
pub fn run<H: ScenarioHost, R: ScenarioRequest>(scenario: &str, requests: u64) -> bool {
    match scenario {
        "breaker" => breaker::<H, R>(requests),
        "breaker-open" => breaker_open::<H, R>(requests),
        "fallback-store" => fallback_store::<H, R>(requests),
        "fallback-serve" => fallback_serve::<H, R>(requests),
        "log-typical" => log::<H>(requests, TYPICAL_PATH, TENANT),
        "log-pii" => log::<H>(requests, PII_PATH, TENANT_WITH_CARD),
        "log-patterns" => log_with::<H>(requests, TYPICAL_PATH, TENANT, Some(PATTERNS), None),
        "log-body" => log_with::<H>(requests, TYPICAL_PATH, TENANT, None, Some(BODY)),
        "log-body-fields" => log_with::<H>(requests, TYPICAL_PATH, TENANT, None, Some(BODY_FIELDS)),
        "chain" => chain::<H, R>(requests),
        _ => return false,
    }
    true
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: breakwater-instructions <scenario> <requests> [--fake-host]
       breakwater-instructions --list

--fake-host runs with breakwater-common's FakeHost and FakeRequest instead of the
deterministic BenchHost and BenchRequest (their HashMaps make counts vary slightly from
run to run).

scenarios:"
    );
    for (name, about) in SCENARIOS {
        eprintln!("  {name:16} {about}");
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let fake_host = args.iter().any(|a| a == "--fake-host");
    args.retain(|a| a != "--fake-host");
    match args.as_slice() {
        [list] if list == "--list" => {
            for (name, _) in SCENARIOS {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        [scenario, requests] => {
            let Ok(requests) = requests.parse::<u64>() else {
                return usage();
            };
            let known = if fake_host {
                run::<FakeHost, FakeRequest>(scenario, requests)
            } else {
                run::<BenchHost, BenchRequest>(scenario, requests)
            };
            if known {
                println!("{scenario}: {requests} requests");
                ExitCode::SUCCESS
            } else {
                usage()
            }
        }
        _ => usage(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    /// Each scenario checks its own outcome; both hosts must lead to the same ones.
    #[test]
    fn every_scenario_runs_and_checks_itself_with_both_hosts() {
        for (name, _) in SCENARIOS {
            assert!(run::<BenchHost, BenchRequest>(name, 25), "{name}");
            assert!(run::<FakeHost, FakeRequest>(name, 25), "{name}");
        }
        assert!(!run::<BenchHost, BenchRequest>("no-such-scenario", 1));
    }
}
