//! Engine tests against the fake host: two "workers" share one fake shared-data store.

use super::*;
use crate::config::FallbackConfig;
use breakwater_common::host::fake::{FakeHost, FakeRequest};
use breakwater_common::testing::test;
use std::cell::RefCell;

const T0: u64 = 1_700_000_000_000;

/// A response as the adapter would present it, counting the host calls the engine makes.
struct Response {
    status: u32,
    flags: u64,
    breaker: Option<&'static str>,
    /// The `grpc-status` header (a trailers-only response).
    grpc_status: Option<u32>,
    headers: Vec<(&'static str, &'static str)>,
    reads: RefCell<Vec<&'static str>>,
}

impl Response {
    fn status(status: u32) -> Response {
        Response {
            status,
            flags: 0,
            breaker: None,
            grpc_status: None,
            headers: vec![("content-type", "application/json")],
            reads: RefCell::default(),
        }
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Response {
        self.headers.push((name, value));
        self
    }
    fn all_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.reads.borrow_mut().push("all headers");
        let mut out = vec![(b":status".to_vec(), self.status.to_string().into_bytes())];
        out.extend(
            self.headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())),
        );
        out
    }
}

impl ResponseView for Response {
    fn status(&self) -> Option<u32> {
        self.reads.borrow_mut().push(":status");
        Some(self.status)
    }
    fn flags(&self) -> u64 {
        self.reads.borrow_mut().push("flags");
        self.flags
    }
    fn breaker_decision(&self) -> Option<Vec<u8>> {
        self.reads.borrow_mut().push("breaker");
        // As the breaker writes it: decision, state, breaker.
        self.breaker.map(|d| format!("{d},open,recs").into_bytes())
    }
    fn grpc_status(&self) -> Option<u32> {
        self.reads.borrow_mut().push("grpc-status");
        self.grpc_status
    }
}

struct Setup {
    host: FakeHost,
    engine: Engine,
    workers: Vec<WorkerState>,
}

fn setup(config: &str) -> Setup {
    let host = FakeHost::new(T0);
    let engine = Engine::new(
        FallbackConfig::parse(config.as_bytes()).unwrap(),
        "test",
        &host,
    );
    Setup {
        host,
        engine,
        workers: vec![WorkerState::default(), WorkerState::default()],
    }
}

impl Setup {
    /// Runs one request through, returning what happened at response headers and, for a
    /// fallback, the first step.
    fn respond(
        &mut self,
        worker: usize,
        req: &FakeRequest,
        response: &Response,
        body: &[u8],
    ) -> (OnResponse, Option<Step<'_>>) {
        let Some(mut plan) = self.engine.on_request(req) else {
            return (OnResponse::Pass, None);
        };
        let decision = self.engine.on_response_headers(
            &self.host,
            &mut self.workers[worker],
            &mut plan,
            response,
            || response.all_headers(),
        );
        match &decision {
            OnResponse::Capture(capture) => {
                let mut capture = capture.clone();
                capture.push(body);
                self.engine.store(&self.host, &plan, capture);
                (decision, None)
            }
            OnResponse::Fallback(_) => {
                let step = self.engine.next_step(&self.host, &mut plan);
                (decision, Some(step))
            }
            OnResponse::Pass => (decision, None),
        }
    }

    fn metric(&self, name: &str) -> i64 {
        self.host.metric(&format!("breakwater.fallback.{name}"))
    }
}

/// The source that answers a failure of `req` now.
fn source_for_failure(s: &mut Setup, req: &FakeRequest) -> &'static str {
    reply(s.respond(0, req, &Response::status(500), b"").1).source
}

fn reply(step: Option<Step<'_>>) -> Reply {
    match step {
        Some(Step::Reply(r)) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

const STATIC_ONLY: &str = r#"{"rules":[{"name":"popular","match":{"path_prefix":"/rec"},
    "serve":[{"static":{"status":200,"headers":{"content-type":"application/json"},"body":"[\"best\"]"}}]}]}"#;

const STALE_THEN_STATIC: &str = r#"{"rules":[{"name":"popular","match":{"path_prefix":"/rec"},
    "serve":[{"stale":{"max_age":"10m"}},{"static":{"body":"static"}}]}],
    "cache":{"min_store_interval":"1s"}}"#;

#[test]
fn static_reply_on_a_5xx() {
    let mut s = setup(STATIC_ONLY);
    let (decision, step) = s.respond(
        0,
        &FakeRequest::get("/rec/top"),
        &Response::status(503),
        b"",
    );
    assert_eq!(decision, OnResponse::Fallback(Trigger::Status));
    let r = reply(step);
    assert_eq!(
        (r.status, r.body.as_slice(), r.source),
        (200, &br#"["best"]"#[..], "static")
    );
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(header(&r, "x-breakwater-fallback"), Some("static"));
    assert_eq!(s.metric("popular.served.static"), 1);
    assert_eq!(s.metric("popular.triggered"), 1);
}

#[test]
fn good_responses_and_unmatched_requests_cost_almost_nothing() {
    let mut s = setup(STATIC_ONLY);
    let other = FakeRequest::get("/checkout");
    assert!(s.engine.on_request(&other).is_none());
    assert_eq!(*other.reads.borrow(), vec![":path"]);
    let ok = Response::status(200);
    let matched = FakeRequest::get("/rec");
    assert_eq!(s.respond(0, &matched, &ok, b"{}").0, OnResponse::Pass);
    // A matched request also reads its content-type: is it a gRPC call?
    assert_eq!(*matched.reads.borrow(), vec![":path", "content-type"]);
    // Without a stale source nothing is cached: no header map, no shared data.
    assert_eq!(*ok.reads.borrow(), vec![":status"]);
    assert!(s.host.store.keys().is_empty());
}

#[test]
fn the_last_good_response_is_served_stale_by_any_worker() {
    let mut s = setup(STALE_THEN_STATIC);
    let req = FakeRequest::get("/rec?n=3");
    let good = Response::status(200)
        .header("etag", "\"v1\"")
        .header("set-cookie-not", "x");
    let (decision, _) = s.respond(0, &req, &good, br#"["fresh"]"#);
    s.engine.prepare(&s.host);
    assert!(matches!(decision, OnResponse::Capture(_)));
    assert_eq!(s.metric("popular.cache.stores"), 1);
    assert_eq!(s.metric("cache.entries"), 1);
    s.host.advance(42_000);
    // The other worker sees the failure and serves what the first one stored.
    let (_, step) = s.respond(1, &req, &Response::status(502), b"");
    let r = reply(step);
    assert_eq!(
        (r.status, r.body.as_slice(), r.source),
        (200, &br#"["fresh"]"#[..], "stale")
    );
    assert_eq!(header(&r, "age"), Some("42"));
    assert_eq!(header(&r, "etag"), Some("\"v1\""));
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(header(&r, "x-breakwater-fallback"), Some("stale"));
    assert_eq!(s.metric("popular.cache.hits"), 1);
    // Another URL has nothing stored: the next source answers.
    let (_, step) = s.respond(
        1,
        &FakeRequest::get("/rec?n=4"),
        &Response::status(502),
        b"",
    );
    assert_eq!(reply(step).source, "static");
    assert_eq!(s.metric("popular.cache.misses"), 1);
}

#[test]
fn stale_expires_after_max_age_then_the_next_source_answers() {
    let mut s = setup(STALE_THEN_STATIC);
    let req = FakeRequest::get("/rec");
    s.respond(0, &req, &Response::status(200), b"old");
    s.host.advance(600_000);
    assert_eq!(source_for_failure(&mut s, &req), "stale");
    s.host.advance(1);
    assert_eq!(source_for_failure(&mut s, &req), "static");
}

#[test]
fn the_upstreams_stale_if_error_decides_how_long() {
    let mut s = setup(STALE_THEN_STATIC);
    let req = FakeRequest::get("/rec");
    let short = Response::status(200).header("cache-control", "max-age=5, stale-if-error=10");
    s.respond(0, &req, &short, b"x");
    s.host.advance(15_000);
    assert_eq!(source_for_failure(&mut s, &req), "stale");
    s.host.advance(1);
    assert_eq!(source_for_failure(&mut s, &req), "static");
}

#[test]
fn responses_that_must_not_be_kept_are_not() {
    let mut s = setup(STALE_THEN_STATIC);
    let cases = [
        (
            FakeRequest::get("/rec/1"),
            Response::status(200).header("cache-control", "no-store"),
        ),
        (
            FakeRequest::get("/rec/2"),
            Response::status(200).header("cache-control", "private, max-age=60"),
        ),
        (
            FakeRequest::get("/rec/3"),
            Response::status(200).header("set-cookie", "session=abc"),
        ),
        (
            FakeRequest::get("/rec/4").header("authorization", b"Bearer x"),
            Response::status(200),
        ),
        (
            FakeRequest::get("/rec/5").header("cookie", b"session=abc"),
            Response::status(200),
        ),
        (
            FakeRequest::new("POST", "/rec/6", "shop.example"),
            Response::status(200),
        ),
        (FakeRequest::get("/rec/7"), Response::status(201)),
        (FakeRequest::get("/rec/8"), Response::status(404)),
    ];
    for (req, response) in &cases {
        assert_eq!(s.respond(0, req, response, b"x").0, OnResponse::Pass);
    }
    assert!(s.host.store.keys().is_empty());
    // And so a failure later gets the static source, never one of those.
    for (req, _) in &cases {
        if let (OnResponse::Fallback(_), Some(step)) =
            s.respond(1, req, &Response::status(503), b"")
        {
            assert_eq!(reply(Some(step)).source, "static");
        }
    }
}

#[test]
fn credentials_can_be_allowed_per_rule_but_responses_stay_per_user() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m","allow_credentials":true}},{"static":{"body":"none"}}]}]}"#,
    );
    let alice = FakeRequest::get("/me").header("authorization", b"Bearer alice");
    let bob = FakeRequest::get("/me").header("authorization", b"Bearer bob");
    let anonymous = FakeRequest::get("/me");
    assert!(matches!(
        s.respond(0, &alice, &Response::status(200), b"alice's page")
            .0,
        OnResponse::Capture(_)
    ));
    assert_eq!(
        reply(s.respond(1, &alice, &Response::status(500), b"").1).body,
        b"alice's page"
    );
    // Another user, or nobody, never gets alice's stored page.
    assert_eq!(
        reply(s.respond(1, &bob, &Response::status(500), b"").1).body,
        b"none"
    );
    assert_eq!(
        reply(s.respond(1, &anonymous, &Response::status(500), b"").1).body,
        b"none"
    );
}

#[test]
fn large_bodies_are_abandoned() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m"}}]}],"cache":{"max_body_bytes":10}}"#,
    );
    let req = FakeRequest::get("/big");
    s.respond(0, &req, &Response::status(200), &[b'x'; 11]);
    assert_eq!(s.metric("r.cache.stores"), 0);
    // Too large once: not even collected again within the store interval.
    assert_eq!(
        s.respond(0, &req, &Response::status(200), &[b'x'; 10]).0,
        OnResponse::Pass
    );
    s.host.advance(1000);
    s.respond(0, &req, &Response::status(200), &[b'x'; 10]);
    assert_eq!(s.metric("r.cache.stores"), 1);
}

#[test]
fn captures_in_flight_are_bounded_per_worker() {
    let mut s = setup(r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m"}}]}]}"#);
    let mut held = Vec::new();
    for i in 0..MAX_CAPTURES_IN_FLIGHT + 3 {
        let req = FakeRequest::get(&format!("/{i}"));
        let mut plan = s.engine.on_request(&req).unwrap();
        let response = Response::status(200);
        let decision =
            s.engine
                .on_response_headers(&s.host, &mut s.workers[0], &mut plan, &response, || {
                    response.all_headers()
                });
        held.push(decision);
    }
    let captured = held
        .iter()
        .filter(|d| matches!(d, OnResponse::Capture(_)))
        .count();
    assert_eq!(captured, MAX_CAPTURES_IN_FLIGHT as usize);
    // Finished captures free their slots.
    held.clear();
    let mut plan = s.engine.on_request(&FakeRequest::get("/later")).unwrap();
    let response = Response::status(200);
    let decision =
        s.engine
            .on_response_headers(&s.host, &mut s.workers[0], &mut plan, &response, || {
                response.all_headers()
            });
    assert!(matches!(decision, OnResponse::Capture(_)));
}

#[test]
fn each_worker_stores_a_key_at_most_once_per_interval() {
    let mut s = setup(STALE_THEN_STATIC);
    let req = FakeRequest::get("/rec");
    let first = Response::status(200);
    assert!(matches!(
        s.respond(0, &req, &first, b"1").0,
        OnResponse::Capture(_)
    ));
    let again = Response::status(200);
    assert_eq!(s.respond(0, &req, &again, b"2").0, OnResponse::Pass);
    assert_eq!(
        *again.reads.borrow(),
        vec![":status"],
        "skipped before reading any header"
    );
    assert!(
        matches!(
            s.respond(1, &req, &Response::status(200), b"3").0,
            OnResponse::Capture(_)
        ),
        "other worker"
    );
    s.host.advance(1000);
    assert!(matches!(
        s.respond(0, &req, &Response::status(200), b"4").0,
        OnResponse::Capture(_)
    ));
    assert_eq!(s.metric("popular.cache.stores"), 3);
}

#[test]
fn vary_headers_are_part_of_the_key() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m","vary":["Accept-Language"]}},{"static":{"body":"none"}}]}]}"#,
    );
    let en = FakeRequest::get("/").header("accept-language", b"en");
    let nb = FakeRequest::get("/").header("accept-language", b"nb");
    s.respond(0, &en, &Response::status(200), b"hello");
    assert_eq!(
        reply(s.respond(0, &en, &Response::status(500), b"").1).body,
        b"hello"
    );
    assert_eq!(
        reply(s.respond(0, &nb, &Response::status(500), b"").1).body,
        b"none"
    );
}

const WITH_SERVICE: &str = r#"{"rules":[{"name":"r","serve":[
    {"service":{"cluster":"popular-cache","path":"/popular.json","timeout":"300ms"}},
    {"static":{"body":"static"}}]}]}"#;

#[test]
fn service_answers_or_falls_through() {
    let mut s = setup(WITH_SERVICE);
    let req = FakeRequest::get("/rec");
    let mut plan = s.engine.on_request(&req).unwrap();
    let response = Response::status(503);
    s.engine
        .on_response_headers(&s.host, &mut s.workers[0], &mut plan, &response, Vec::new);
    let call = match s.engine.next_step(&s.host, &mut plan) {
        Step::Call(call) => call,
        other => panic!("{other:?}"),
    };
    assert_eq!(call.cluster, "popular-cache");
    assert_eq!(call.timeout_ms, 300);
    assert!(call.headers.contains(&(":path", "/popular.json")));
    assert!(call.headers.contains(&(":authority", "popular-cache")));
    assert!(call.headers.contains(&(":method", "GET")));
    let mut answered = plan.clone();
    let headers = vec![
        (b":status".to_vec(), b"200".to_vec()),
        (b"content-type".to_vec(), b"application/json".to_vec()),
        (b"content-length".to_vec(), b"9".to_vec()),
    ];
    let r = reply(Some(s.engine.on_service_answer(
        &s.host,
        &mut answered,
        Some(200),
        headers,
        b"[\"fromsvc\"]".to_vec(),
    )));
    assert_eq!((r.status, r.source), (200, "service"));
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(header(&r, "content-length"), None, "Envoy sets its own");
    assert_eq!(s.metric("r.served.service"), 1);
    // A failing or missing answer moves on to the static source.
    let mut failed = plan.clone();
    assert_eq!(
        reply(Some(s.engine.on_service_answer(
            &s.host,
            &mut failed,
            Some(500),
            vec![],
            vec![]
        )))
        .source,
        "static"
    );
    let mut timed_out = plan;
    assert_eq!(
        reply(Some(s.engine.on_service_answer(
            &s.host,
            &mut timed_out,
            None,
            vec![],
            vec![]
        )))
        .source,
        "static"
    );
    assert_eq!(s.metric("r.service_failures"), 2);
}

#[test]
fn triggers() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","on":{"statuses":[503],"response_flags":["UF"],"breaker_open":true},"serve":[{"static":{}}]}]}"#,
    );
    let req = FakeRequest::get("/");
    let mut breaker = Response::status(429);
    breaker.breaker = Some("rejected");
    assert_eq!(
        s.respond(0, &req, &breaker, b"").0,
        OnResponse::Fallback(Trigger::BreakerOpen)
    );
    let mut flagged = Response::status(200);
    flagged.flags = 0x20;
    assert_eq!(
        s.respond(0, &req, &flagged, b"").0,
        OnResponse::Fallback(Trigger::ResponseFlags)
    );
    assert_eq!(
        s.respond(0, &req, &Response::status(503), b"").0,
        OnResponse::Fallback(Trigger::Status)
    );
    assert_eq!(
        s.respond(0, &req, &Response::status(500), b"").0,
        OnResponse::Pass,
        "only 503 listed"
    );
    let mut passed = Response::status(500);
    passed.breaker = Some("passed");
    assert_eq!(s.respond(0, &req, &passed, b"").0, OnResponse::Pass);
}

#[test]
fn no_source_answering_leaves_the_response_alone() {
    let mut s = setup(r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m"}}]}]}"#);
    let (decision, step) = s.respond(0, &FakeRequest::get("/"), &Response::status(500), b"");
    assert_eq!(decision, OnResponse::Fallback(Trigger::Status));
    assert_eq!(step, Some(Step::Exhausted));
    assert_eq!(s.metric("r.exhausted"), 1);
}

#[test]
fn stats_have_the_documented_names() {
    let s = setup(
        r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m"}},{"service":{"cluster":"c","path":"/"}},{"static":{}}]},
                               {"name":"s","serve":[{"static":{}}]}]}"#,
    );
    for name in [
        "r.triggered",
        "r.served.static",
        "r.served.stale",
        "r.served.service",
        "r.service_failures",
        "r.exhausted",
        "r.cache.stores",
        "r.cache.hits",
        "r.cache.misses",
        "cache.evictions",
        "cache.entries",
        "cache.bytes",
        "s.triggered",
        "s.served.static",
        "s.exhausted",
    ] {
        assert!(
            s.host.defined(&format!("breakwater.fallback.{name}")),
            "{name}"
        );
    }
    assert!(!s.host.defined("breakwater.fallback.s.served.stale"));
}

#[test]
fn evictions_and_cache_gauges_are_reported() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","serve":[{"stale":{"max_age":"1m"}}]}],"cache":{"max_entries":2}}"#,
    );
    for path in ["/1", "/2", "/3"] {
        s.respond(0, &FakeRequest::get(path), &Response::status(200), b"body");
    }
    assert_eq!(s.metric("cache.evictions"), 1);
    assert_eq!(s.metric("cache.entries"), 2);
    assert!(s.metric("cache.bytes") > 0);
}

#[test]
fn responses_varying_on_unkeyed_headers_are_not_kept() {
    let mut s = setup(STALE_THEN_STATIC);
    let gzip = Response::status(200)
        .header("content-encoding", "gzip")
        .header("vary", "Accept-Encoding");
    assert_eq!(
        s.respond(0, &FakeRequest::get("/rec"), &gzip, b"\x1f\x8b")
            .0,
        OnResponse::Pass
    );
    assert!(s.host.store.keys().is_empty());
}

#[test]
fn upstream_age_and_a_lowered_max_age_apply() {
    let mut s = setup(STALE_THEN_STATIC);
    let req = FakeRequest::get("/rec");
    // An upstream cache says the response is already 9 minutes old.
    s.respond(0, &req, &Response::status(200).header("age", "540"), b"old");
    s.host.advance(60_000);
    let r = reply(s.respond(0, &req, &Response::status(500), b"").1);
    assert_eq!((r.source, header(&r, "age")), ("stale", Some("600")));
    s.host.advance(1);
    assert_eq!(source_for_failure(&mut s, &req), "static");
    // A config update lowering max_age applies to entries already stored.
    let req2 = FakeRequest::get("/rec/2");
    s.respond(0, &req2, &Response::status(200), b"x");
    s.host.advance(1001);
    assert_eq!(
        source_for_failure(&mut s, &req2),
        "stale",
        "10m under the old config"
    );
    let lowered = setup(
        r#"{"rules":[{"name":"popular","match":{"path_prefix":"/rec"},
        "serve":[{"stale":{"max_age":"1s"}},{"static":{"body":"static"}}]}]}"#,
    );
    let mut s2 = Setup {
        host: s.host,
        engine: lowered.engine,
        workers: lowered.workers,
    };
    assert_eq!(source_for_failure(&mut s2, &req2), "static");
}

// ---------------------------------------------------------------------------------------------
// gRPC calls.

/// A gRPC call (`POST`, `content-type: application/grpc`).
fn grpc_call(path: &str) -> FakeRequest {
    FakeRequest::new("POST", path, "shop.example").header("content-type", b"application/grpc")
}

/// A gRPC response at its headers: HTTP 200, and for a trailers-only one its `grpc-status`.
fn grpc_response(grpc_status: Option<u32>) -> Response {
    Response {
        grpc_status,
        headers: vec![("content-type", "application/grpc")],
        ..Response::status(200)
    }
}

const GRPC_RULE: &str = r#"{"rules":[{"name":"catalog","match":{"path_prefix":"/shop.Catalog/"},
    "on":{"grpc_statuses":["UNAVAILABLE","DEADLINE_EXCEEDED"],"response_flags":["UF"]},
    "serve":[
      {"static":{"body":"http only"}},
      {"grpc":{"status":"FAILED_PRECONDITION","message":"catalog degraded","metadata":{"x-degraded":"catalog"}}},
      {"stale":{"max_age":"1m"}}]}]}"#;

#[test]
fn a_trailers_only_failure_gets_the_configured_grpc_status() {
    let mut s = setup(GRPC_RULE);
    let call = grpc_call("/shop.Catalog/GetItem");
    let (decision, step) = s.respond(0, &call, &grpc_response(Some(14)), b"");
    assert_eq!(decision, OnResponse::Fallback(Trigger::GrpcStatus));
    let r = reply(step);
    assert_eq!(
        (r.status, r.grpc_status, r.body.as_slice(), r.source),
        (200, Some(9), &b"catalog degraded"[..], "grpc")
    );
    assert_eq!(header(&r, "x-degraded"), Some("catalog"));
    assert_eq!(header(&r, "x-breakwater-fallback"), Some("grpc"));
    assert_eq!(r.headers.len(), 2, "metadata and the marker, nothing else");
    assert_eq!(s.metric("catalog.triggered"), 1);
    assert_eq!(s.metric("catalog.served.grpc"), 1);
    assert_eq!(s.metric("catalog.served.static"), 0, "skipped for gRPC");
    assert_eq!(
        s.metric("catalog.cache.misses"),
        0,
        "stale not even looked up"
    );
    // A status not listed, or OK, goes through.
    for status in [Some(5), Some(0)] {
        assert_eq!(
            s.respond(0, &call, &grpc_response(status), b"").0,
            OnResponse::Pass
        );
    }
}

#[test]
fn grpc_calls_trigger_on_flags_http_statuses_and_breaker_rejections() {
    let mut s = setup(GRPC_RULE);
    let call = grpc_call("/shop.Catalog/GetItem");
    // Envoy's own reply to a refused connection: trailers-only UNAVAILABLE with UF. With
    // UNAVAILABLE listed too, the status decides first (as 5xx does for HTTP).
    let mut refused = grpc_response(Some(14));
    refused.flags = 0x20;
    assert_eq!(
        s.respond(0, &call, &refused, b"").0,
        OnResponse::Fallback(Trigger::GrpcStatus)
    );
    let mut refused = grpc_response(Some(13));
    refused.flags = 0x20;
    assert_eq!(
        s.respond(0, &call, &refused, b"").0,
        OnResponse::Fallback(Trigger::ResponseFlags)
    );
    // A gRPC upstream behind something that answers HTTP 503: on.statuses (5xx by default).
    assert_eq!(
        reply(s.respond(0, &call, &Response::status(503), b"").1).grpc_status,
        Some(9)
    );
    // The breaker's rejection of a gRPC call is a trailers-only 200 (Envoy makes every local
    // reply to a gRPC call one): recognised by its filter state, read only for a failure.
    let mut rejected = grpc_response(Some(14));
    rejected.breaker = Some("rejected");
    assert_eq!(
        s.respond(0, &call, &rejected, b"").0,
        OnResponse::Fallback(Trigger::BreakerOpen)
    );
    assert_eq!(
        *rejected.reads.borrow(),
        vec![":status", "grpc-status", "breaker"]
    );
    let mut custom = grpc_response(Some(8));
    custom.breaker = Some("rejected");
    assert_eq!(
        s.respond(0, &call, &custom, b"").0,
        OnResponse::Fallback(Trigger::BreakerOpen),
        "whatever status the breaker's response.grpc.status gives"
    );
    assert_eq!(s.metric("catalog.served.grpc"), 5);
}

#[test]
fn a_good_grpc_response_costs_one_header_more_and_is_never_kept() {
    let mut s = setup(GRPC_RULE);
    let call = grpc_call("/shop.Catalog/GetItem");
    let good = grpc_response(None);
    assert_eq!(
        s.respond(0, &call, &good, b"\0\0\0\0\0").0,
        OnResponse::Pass
    );
    assert_eq!(
        *call.reads.borrow(),
        vec![":path", "content-type"],
        "no cache key"
    );
    // grpc-status is read once for both the breaker and grpc_statuses; no flags: the status
    // decided nothing, the flags are asked last (a good response has none).
    assert_eq!(
        *good.reads.borrow(),
        vec![":status", "grpc-status", "flags"]
    );
    // Without grpc_statuses, breaker_open or flags: only the status.
    let mut s = setup(
        r#"{"rules":[{"name":"r","on":{"breaker_open":false},"serve":[{"grpc":{"status":14}}]}]}"#,
    );
    let good = grpc_response(None);
    assert_eq!(s.respond(0, &call, &good, b"").0, OnResponse::Pass);
    assert_eq!(*good.reads.borrow(), vec![":status"]);
    // A breaker-only rule: a normal response has no grpc-status, so no breaker state read.
    let mut s =
        setup(r#"{"rules":[{"name":"r","on":{"statuses":[]},"serve":[{"grpc":{"status":14}}]}]}"#);
    let good = grpc_response(None);
    assert_eq!(s.respond(0, &call, &good, b"").0, OnResponse::Pass);
    assert_eq!(*good.reads.borrow(), vec![":status", "grpc-status"]);
    assert!(s.host.store.keys().is_empty());
}

#[test]
fn http_requests_never_get_the_grpc_source() {
    let mut s = setup(
        r#"{"rules":[{"name":"r","serve":[{"grpc":{"status":14}},{"static":{"body":"http"}}]}]}"#,
    );
    let r = reply(
        s.respond(0, &FakeRequest::get("/"), &Response::status(503), b"")
            .1,
    );
    assert_eq!(
        (r.source, r.grpc_status, r.body.as_slice()),
        ("static", None, &b"http"[..])
    );
    // gRPC-Web is not gRPC: Envoy does not answer it trailers-only.
    let web =
        FakeRequest::new("POST", "/svc/M", "h").header("content-type", b"application/grpc-web");
    assert_eq!(
        reply(s.respond(0, &web, &Response::status(503), b"").1).source,
        "static"
    );
    assert_eq!(s.metric("r.served.grpc"), 0);
}

#[test]
fn a_rule_without_a_source_for_the_request_leaves_it_alone() {
    // No grpc source: gRPC calls are left alone, whatever fails. Nothing is counted and
    // nothing read after the content-type.
    let mut s = setup(STALE_THEN_STATIC);
    let call = grpc_call("/rec/items");
    assert!(s.engine.on_request(&call).is_none());
    assert_eq!(*call.reads.borrow(), vec![":path", "content-type"]);
    for response in [Response::status(503), grpc_response(Some(14))] {
        assert_eq!(s.respond(0, &call, &response, b"").0, OnResponse::Pass);
        assert!(response.reads.borrow().is_empty());
    }
    assert_eq!(s.metric("popular.triggered"), 0);
    // Only grpc sources: HTTP requests are left alone.
    let s = setup(r#"{"rules":[{"name":"r","serve":[{"grpc":{"status":14}}]}]}"#);
    assert!(s.engine.on_request(&FakeRequest::get("/")).is_none());
    assert!(s.engine.on_request(&grpc_call("/a.B/C")).is_some());
    // The first matching rule owns the request even when it leaves it alone.
    let s = setup(
        r#"{"rules":[{"name":"http","serve":[{"static":{}}]},{"name":"grpc","serve":[{"grpc":{"status":14}}]}]}"#,
    );
    assert!(s.engine.on_request(&grpc_call("/a.B/C")).is_none());
}

#[test]
fn grpc_responses_are_never_stored_whatever_the_method() {
    // The cache keeps only GET and HEAD; gRPC calls are POST, but a GET with a gRPC
    // content-type is a gRPC call to Envoy too, and must not be kept either.
    let get_grpc =
        || FakeRequest::get("/rec/items").header("content-type", b"application/grpc+proto");
    let good = || Response {
        headers: vec![("content-type", "application/grpc+proto")],
        ..Response::status(200)
    };
    // A rule with only HTTP sources leaves the call alone.
    let mut s = setup(STALE_THEN_STATIC);
    assert_eq!(
        s.respond(0, &get_grpc(), &good(), b"\0\0\0\0\0").0,
        OnResponse::Pass
    );
    // A rule with a grpc source answers it but keeps nothing.
    let mut s = setup(
        r#"{"rules":[{"name":"r","on":{"grpc_statuses":[14]},"serve":[{"stale":{"max_age":"1m"}},{"grpc":{"status":14}}]}],
            "cache":{"min_store_interval":"0s"}}"#,
    );
    assert_eq!(
        s.respond(0, &get_grpc(), &good(), b"\0\0\0\0\0").0,
        OnResponse::Pass
    );
    assert!(s.host.store.keys().is_empty());
    assert_eq!(s.metric("r.cache.stores"), 0);
    // So a plain GET of the same URL stored later is never served to the gRPC call.
    let plain = FakeRequest::get("/rec/items");
    assert!(matches!(
        s.respond(0, &plain, &Response::status(200), b"html").0,
        OnResponse::Capture(_)
    ));
    let r = reply(s.respond(0, &get_grpc(), &grpc_response(Some(14)), b"").1);
    assert_eq!((r.source, r.grpc_status), ("grpc", Some(14)));
    assert_eq!(
        reply(s.respond(0, &plain, &Response::status(503), b"").1).source,
        "stale"
    );
}

#[test]
fn grpc_stats_are_defined_for_rules_with_a_grpc_source() {
    let s = setup(GRPC_RULE);
    for name in [
        "catalog.served.grpc",
        "catalog.served.static",
        "catalog.triggered",
        "catalog.exhausted",
    ] {
        assert!(
            s.host.defined(&format!("breakwater.fallback.{name}")),
            "{name}"
        );
    }
    let s = setup(STATIC_ONLY);
    assert!(!s.host.defined("breakwater.fallback.popular.served.grpc"));
}
