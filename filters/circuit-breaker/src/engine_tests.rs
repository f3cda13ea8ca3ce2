//! Engine tests against a fake host: shared data with the host's CAS semantics, a settable
//! clock, captured logs and metrics, and requests whose attribute reads are recorded.

use super::*;
use crate::config::BreakerConfig;
use crate::state::BreakerState;
use breakwater_common::host::fake::{FakeHost, FakeRequest};
use breakwater_common::shared::SharedStore;
use breakwater_common::testing::test;

const T0: u64 = 1_700_000_000_000;

type Req = FakeRequest;

fn warn_lines(host: &FakeHost) -> Vec<String> {
    host.logs_at(Level::Warn)
}

struct Setup {
    host: FakeHost,
    engine: Engine,
    workers: Vec<WorkerState>,
}

fn setup(breakers: &str) -> Setup {
    let host = FakeHost::new(T0);
    let config =
        BreakerConfig::parse(format!(r#"{{"breakers":[{breakers}]}}"#).as_bytes()).unwrap();
    let engine = Engine::new(config, "test-plugin", &host);
    engine.prepare(&host);
    let workers = (0..2).map(|i| WorkerState::new(&engine, i)).collect();
    Setup {
        host,
        engine,
        workers,
    }
}

impl Setup {
    /// One full request on `worker`: admission, then the given response.
    fn call(&mut self, worker: usize, req: &Req, status: u32) -> RequestVerdict {
        let verdict = self
            .engine
            .on_request(&self.host, &mut self.workers[worker], req);
        if let RequestVerdict::Admitted(ticket) = &verdict {
            self.engine.on_complete(
                &self.host,
                &mut self.workers[worker],
                ticket,
                Some(status),
                0,
                None,
            );
        }
        verdict
    }

    fn admit(&mut self, worker: usize, req: &Req) -> RequestVerdict {
        self.engine
            .on_request(&self.host, &mut self.workers[worker], req)
    }

    fn complete(&mut self, worker: usize, ticket: &Ticket, status: u32) -> Option<Outcome> {
        self.engine.on_complete(
            &self.host,
            &mut self.workers[worker],
            ticket,
            Some(status),
            0,
            None,
        )
    }
}

/// SIMPLE's breaker opened by three failures, and the request it guards.
fn opened_simple() -> (Setup, Req) {
    let mut s = setup(SIMPLE);
    let req = Req::get("/recommendations");
    for _ in 0..3 {
        s.call(0, &req, 503);
    }
    (s, req)
}

fn is_rejected(v: &RequestVerdict) -> bool {
    matches!(v, RequestVerdict::Rejected(_))
}

fn ticket(v: RequestVerdict) -> Ticket {
    match v {
        RequestVerdict::Admitted(t) => t,
        other => panic!("expected admission, got {other:?}"),
    }
}

const SIMPLE: &str = r#"{"name":"recs","match":{"path_prefix":"/recommendations"},
    "trip":{"consecutive_failures":3},
    "open":{"duration":"5s","jitter":0,"max_duration":"20s"},
    "half_open":{"probes":2,"max_wait":"10s"}}"#;

#[test]
fn requests_no_breaker_matches_are_untouched() {
    let mut s = setup(SIMPLE);
    let req = Req::get("/checkout");
    assert!(matches!(s.admit(0, &req), RequestVerdict::NotMatched));
    assert_eq!(*req.reads.borrow(), vec![":path"]);
}

#[test]
fn opens_at_the_nth_consecutive_failure_across_workers_and_rejects() {
    let mut s = setup(SIMPLE);
    let req = Req::get("/recommendations/top");
    // Failures alternate between the two workers: the count is shared.
    assert!(!is_rejected(&s.call(0, &req, 503)));
    assert!(!is_rejected(&s.call(1, &req, 502)));
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.state"), 0);
    assert!(!is_rejected(&s.call(0, &req, 500)));
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.state"), 1);
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.transitions.opened"),
        1
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.calls.failure"),
        3
    );

    s.host.advance(1200);
    let RequestVerdict::Rejected(rejection) = s.admit(1, &req) else {
        panic!()
    };
    assert_eq!(rejection.state, "open");
    let reply = s.engine.reply(&rejection, false).unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.retry(), Some(("retry-after", "4")));
    assert_eq!(reply.grpc_status, None);
    assert!(reply.headers.contains(&("x-breakwater-breaker", "recs")));
    assert!(reply
        .headers
        .contains(&("content-type", "application/json")));
    assert_eq!(reply.body, br#"{"error":"circuit open","breaker":"recs"}"#);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.rejected"), 1);

    let warnings = warn_lines(&s.host);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("breakwater circuit-breaker \"recs\": closed -> open (reason: consecutive_failures; window: 3 calls, failure rate 100.0%"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("3 consecutive failures"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].ends_with("first probe in 5.0s"),
        "{}",
        warnings[0]
    );
}

#[test]
fn half_open_admits_exactly_the_probes_across_workers_then_closes() {
    let (mut s, req) = opened_simple();
    s.host.advance(5000);
    // Many requests on both workers while the probes are in flight.
    let mut probes = Vec::new();
    for i in 0..20 {
        match s.admit(i % 2, &req) {
            RequestVerdict::Admitted(t) => {
                assert_eq!(t.decision, Decision::Probe);
                probes.push((i % 2, t));
            }
            RequestVerdict::Rejected(r) => {
                assert_eq!(r.state, "half_open");
                assert_eq!(
                    s.engine.reply(&r, false).unwrap().retry(),
                    Some(("retry-after", "1"))
                );
            }
            RequestVerdict::NotMatched => panic!(),
        }
    }
    assert_eq!(probes.len(), 2);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.state"), 2);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.probes"), 2);
    for (worker, t) in &probes {
        s.complete(*worker, t, 200);
    }
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.state"), 0);
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.transitions.closed"),
        1
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.transitions.half_opened"),
        1
    );
    assert!(!is_rejected(&s.admit(1, &req)));
}

#[test]
fn an_outcome_is_written_without_reading_the_state_again_unless_another_call_wrote_since() {
    let mut s = setup(SIMPLE);
    let req = Req::get("/recommendations");
    s.call(0, &req, 200); // creates the key
    s.host.shared_calls.set((0, 0));
    let first = ticket(s.admit(0, &req));
    assert_eq!(s.host.shared_calls.get(), (1, 0), "admission reads");
    s.complete(0, &first, 503);
    assert_eq!(
        s.host.shared_calls.get(),
        (1, 1),
        "the failure is written on the admission's read"
    );
    // Two calls in flight: the second outcome finds the state written since its read.
    let a = ticket(s.admit(0, &req));
    let b = ticket(s.admit(0, &req));
    s.complete(0, &a, 503);
    s.complete(0, &b, 503);
    assert_eq!(
        s.host.shared_calls.get(),
        (4, 3),
        "b reads again: a wrote after b's read"
    );
    assert!(
        is_rejected(&s.admit(1, &req)),
        "three failures, none lost: open"
    );
}

#[test]
fn content_type_is_read_only_for_requests_that_may_be_grpc() {
    // The method is read only when something needs it (here the release check): a GET then
    // is known not to be gRPC, a POST may be, and with no method read anything may be.
    let mut s = setup(
        r#"{"name":"recs","match":{"path_prefix":"/r"},"failure":{"hang_after":"1s"},
            "trip":{"consecutive_failures":3}}"#,
    );
    assert!(!ticket(s.admit(0, &Req::get("/r"))).may_be_grpc());
    assert!(ticket(s.admit(0, &Req::new("POST", "/r", "h"))).may_be_grpc());
    let mut s = setup(SIMPLE);
    let req = Req::get("/recommendations");
    assert!(ticket(s.admit(0, &req)).may_be_grpc());
    assert_eq!(*req.reads.borrow(), vec![":path"], "no method read for it");
}

#[test]
fn a_competing_write_between_read_and_write_is_retried_not_lost() {
    let (mut s, req) = opened_simple();
    s.host.advance(5000);
    let key = "breakwater.circuit_breaker/test-plugin/recs";
    let window = crate::config::WindowSpec::Count { size: 100 };
    // Worker 1 claims the first of the two probes...
    assert_eq!(ticket(s.admit(1, &req)).decision, Decision::Probe);
    // ...and right before worker 0 writes its own claim, a third worker claims the second probe.
    let mut competing = BreakerState::load(s.host.store.raw(key).as_deref(), window);
    competing.probes_admitted += 1;
    s.host.store.interleave_write(key, &competing.encode());
    // Worker 0's write must fail, and on re-reading it finds both probes taken.
    assert!(is_rejected(&s.admit(0, &req)), "exactly two probes");
    let stored = BreakerState::load(s.host.store.raw(key).as_deref(), window);
    assert_eq!(stored.probes_admitted, 2);
}

#[test]
fn own_rejections_and_stale_calls_are_not_counted() {
    let mut s = setup(SIMPLE);
    let req = Req::get("/recommendations");
    let early = ticket(s.admit(0, &req));
    for _ in 0..3 {
        s.call(1, &req, 503);
    }
    // A call admitted before the breaker opened finishes afterwards: its outcome is counted
    // in the stats but does not touch the new phase.
    assert_eq!(
        s.complete(0, &early, 503).map(|o| o.as_str()),
        Some("failure")
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.transitions.opened"),
        1
    );
    s.host.advance(5000);
    assert_eq!(ticket(s.admit(0, &req)).decision, Decision::Probe);
}

#[test]
fn backoff_grows_with_each_failed_probe() {
    let (mut s, req) = opened_simple();
    let mut retry_afters = Vec::new();
    for _ in 0..4 {
        let RequestVerdict::Rejected(r) = s.admit(0, &req) else {
            panic!()
        };
        let reply = s.engine.reply(&r, false).unwrap();
        let secs: u64 = reply.retry().unwrap().1.parse().unwrap();
        retry_afters.push(secs);
        s.host.advance(secs * 1000);
        let probe = ticket(s.admit(1, &req));
        assert_eq!(probe.decision, Decision::Probe);
        s.complete(1, &probe, 503);
    }
    assert_eq!(retry_afters, vec![5, 10, 20, 20]);
}

#[test]
fn dry_run_never_rejects_but_says_it_would() {
    let mut s = setup(
        r#"{"name":"dry","mode":"dry_run","trip":{"consecutive_failures":2},"open":{"jitter":0}}"#,
    );
    let req = Req::get("/x");
    s.call(0, &req, 500);
    s.call(1, &req, 500);
    for _ in 0..5 {
        let t = ticket(s.admit(0, &req));
        assert_eq!(t.decision, Decision::DryRunWouldReject);
        assert_eq!(t.state, "open");
        assert_eq!(
            s.complete(0, &t, 200),
            None,
            "would-be rejections are not accounted"
        );
    }
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.dry.dry_run_would_reject"),
        5
    );
    assert_eq!(s.host.metric("breakwater.circuit_breaker.dry.rejected"), 0);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.dry.state"), 1);
    let warnings = warn_lines(&s.host);
    assert!(
        warnings[0].ends_with("dry run: requests are not rejected"),
        "{}",
        warnings[0]
    );
    // Probes still run in dry-run mode and close the breaker.
    s.host.advance(5000);
    for _ in 0..3 {
        let t = ticket(s.admit(0, &req));
        assert_eq!(t.decision, Decision::Probe);
        s.complete(0, &t, 200);
    }
    assert_eq!(s.host.metric("breakwater.circuit_breaker.dry.state"), 0);
}

#[test]
fn forced_open_rejects_everything_without_touching_shared_state() {
    let mut s = setup(r#"{"name":"off","mode":"forced_open","match":{"path_prefix":"/a"}}"#);
    let keys_before = s.host.store.keys();
    for _ in 0..3 {
        let RequestVerdict::Rejected(r) = s.admit(0, &Req::get("/a")) else {
            panic!()
        };
        assert_eq!(r.state, "forced_open");
        let reply = s.engine.reply(&r, false).unwrap();
        assert_eq!(reply.retry(), None);
        assert!(reply.headers.contains(&("x-breakwater-breaker", "off")));
    }
    assert_eq!(s.host.store.keys(), keys_before);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.off.state"), 1);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.off.rejected"), 3);
}

#[test]
fn disabled_passes_everything_without_accounting() {
    let mut s = setup(r#"{"name":"off","mode":"disabled","trip":{"consecutive_failures":1}}"#);
    for _ in 0..5 {
        let t = ticket(s.admit(0, &Req::get("/")));
        assert_eq!((t.decision, t.state), (Decision::Passed, "disabled"));
        assert_eq!(s.complete(0, &t, 503), None);
    }
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.off.calls.failure"),
        0
    );
}

#[test]
fn split_by_authority_keeps_states_apart_and_bounds_them() {
    let mut s = setup(
        r#"{"name":"per-host","split_by":"authority","max_keys":2,"trip":{"consecutive_failures":2},"open":{"jitter":0}}"#,
    );
    let a = Req::new("GET", "/", "a.example");
    let a_upper = Req::new("GET", "/", "A.EXAMPLE");
    let b = Req::new("GET", "/", "b.example");
    s.call(0, &a, 503);
    s.call(1, &a_upper, 503);
    assert!(
        is_rejected(&s.admit(0, &a)),
        "a.example is open (authority is case-insensitive)"
    );
    assert!(!is_rejected(&s.call(1, &b, 200)), "b.example is not");
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.per-host.keys_tracked"),
        2
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.per-host.keys_open"),
        1
    );
    assert!(!s.host.defined("breakwater.circuit_breaker.per-host.state"));
    let warnings = warn_lines(&s.host);
    assert!(
        warnings[0].contains("\"per-host\" [a.example]: closed -> open"),
        "{}",
        warnings[0]
    );

    // A third authority exceeds max_keys: it and every later newcomer share the overflow state.
    let c = Req::new("GET", "/", "c.example");
    let d = Req::new("GET", "/", "d.example");
    s.call(0, &c, 503);
    s.call(1, &d, 503);
    assert!(is_rejected(&s.admit(0, &Req::new("GET", "/", "e.example"))));
    assert!(
        s.host
            .metric("breakwater.circuit_breaker.per-host.split_overflow")
            >= 3
    );
    assert!(warn_lines(&s.host)
        .iter()
        .any(|w| w.contains("max_keys (2) reached")));
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.per-host.keys_tracked"),
        2
    );
}

#[test]
fn a_value_another_worker_registered_is_found_by_its_state() {
    let mut s = setup(r#"{"name":"per-host","split_by":"authority","max_keys":5}"#);
    let a = Req::new("GET", "/", "a.example");
    s.call(0, &a, 200);
    s.call(1, &a, 200); // worker 1 has not seen a.example, but its state exists
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.per-host.keys_tracked"),
        1
    );
    let counter = s
        .host
        .store
        .raw("breakwater.circuit_breaker/test-plugin/per-host#keys");
    assert_eq!(counter, Some(1u32.to_le_bytes().to_vec()));
}

#[test]
fn split_by_header_reads_it_as_bytes() {
    let mut s = setup(
        r#"{"name":"tenant","split_by":"header:x-tenant","trip":{"consecutive_failures":1}}"#,
    );
    let bad_bytes = Req::get("/").header("x-tenant", b"\xff\xfe\x00tenant");
    s.call(0, &bad_bytes, 503);
    assert!(is_rejected(&s.admit(1, &bad_bytes)));
    assert!(!is_rejected(
        &s.admit(1, &Req::get("/").header("x-tenant", b"other"))
    ));
    assert!(
        !is_rejected(&s.admit(1, &Req::get("/"))),
        "a missing header is its own value"
    );
    assert!(
        warn_lines(&s.host)[0].contains("[???tenant]"),
        "{}",
        warn_lines(&s.host)[0]
    );
}

#[test]
fn unreachable_shared_state_lets_traffic_through() {
    let (mut s, req) = opened_simple();
    s.host.advance(5000);
    s.host.store.fail_writes();
    // The probe claim cannot be written: pass, unaccounted, and say so.
    let t = ticket(s.admit(0, &req));
    assert_eq!(t.decision, Decision::Passed);
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.recs.state_errors"),
        1
    );
    assert_eq!(s.complete(0, &t, 503), None);
}

#[test]
fn slow_calls_are_timed_to_the_response_headers() {
    let mut s = setup(
        r#"{"name":"slow","failure":{"slow_call":"100ms"},"trip":{"slow_call_rate":100,"minimum_calls":2,"window":{"kind":"count","size":2}}}"#,
    );
    let req = Req::get("/");
    for _ in 0..2 {
        let t = ticket(s.admit(0, &req));
        let responded = s.host.now_ms() + 150;
        s.host.advance(1000);
        let o = s.engine.on_complete(
            &s.host,
            &mut s.workers[0],
            &t,
            Some(200),
            0,
            Some(responded),
        );
        assert_eq!(o.map(|o| o.as_str()), Some("slow"));
    }
    assert_eq!(
        s.host.metric("breakwater.circuit_breaker.slow.calls.slow"),
        2
    );
    assert!(is_rejected(&s.admit(0, &req)));
}

#[test]
fn response_flags_count_even_with_a_success_status() {
    let mut s = setup(r#"{"name":"f","trip":{"consecutive_failures":1}}"#);
    let t = ticket(s.admit(0, &Req::get("/")));
    // Headers were 200, then the upstream reset the stream mid-body (UR).
    let o = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &t, Some(200), 0x10, None);
    assert_eq!(o.map(|o| o.as_str()), Some("failure"));
    assert!(is_rejected(&s.admit(0, &Req::get("/"))));
}

#[test]
fn unanswered_calls_are_counted_separately() {
    let mut s = setup(r#"{"name":"u","trip":{"consecutive_failures":1}}"#);
    let t = ticket(s.admit(0, &Req::get("/")));
    let o = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &t, None, 0x4000, None);
    assert_eq!(o.map(|o| o.as_str()), Some("unanswered"));
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.u.calls.unanswered"),
        1
    );
    assert!(!is_rejected(&s.admit(0, &Req::get("/"))));
}

/// Opens SIMPLE's breaker, then configures a new engine (as a config push does) for `plugin`
/// on the same host and sends it one request.
fn reconfigure_after_opening(plugin: &str) -> (Setup, RequestVerdict) {
    let (s, req) = opened_simple();
    // Forget what the first engine reported, so the new one must read the shared state.
    let gauge = s
        .host
        .define_metric(MetricKind::Gauge, "breakwater.circuit_breaker.recs.state");
    s.host.set_gauge(gauge.unwrap(), 0);
    let config = BreakerConfig::parse(format!(r#"{{"breakers":[{SIMPLE}]}}"#).as_bytes()).unwrap();
    let engine = Engine::new(config, plugin, &s.host);
    engine.prepare(&s.host);
    let mut worker = WorkerState::new(&engine, 9);
    let verdict = engine.on_request(&s.host, &mut worker, &req);
    (s, verdict)
}

#[test]
fn state_survives_a_new_configuration() {
    // A config push creates new plugin instances; shared data outlives them.
    let (s, verdict) = reconfigure_after_opening("test-plugin");
    assert!(is_rejected(&verdict));
    assert_eq!(s.host.metric("breakwater.circuit_breaker.recs.state"), 1);
}

#[test]
fn plugins_do_not_share_state() {
    let (_, verdict) = reconfigure_after_opening("other-plugin");
    assert!(!is_rejected(&verdict));
}

#[test]
fn first_matching_breaker_owns_the_request() {
    let mut s = setup(
        r#"{"name":"a","match":{"path_prefix":"/api"},"trip":{"consecutive_failures":1}},
                        {"name":"b","trip":{"consecutive_failures":1}}"#,
    );
    s.call(0, &Req::get("/api/x"), 503);
    assert!(is_rejected(&s.admit(0, &Req::get("/api/y"))));
    assert!(!is_rejected(&s.admit(0, &Req::get("/other"))));
    assert_eq!(s.host.metric("breakwater.circuit_breaker.b.state"), 0);
}

#[test]
fn corrupt_shared_state_is_replaced_not_trusted() {
    let mut s = setup(SIMPLE);
    let key = "breakwater.circuit_breaker/test-plugin/recs";
    s.host.store.set(key, b"\x01\x01garbage", 0).unwrap();
    assert!(!is_rejected(&s.call(0, &Req::get("/recommendations"), 200)));
}

const HANGS: &str = r#"{"name":"hang","failure":{"hang_after":"300ms"},
    "trip":{"consecutive_failures":3},"open":{"duration":"5s","jitter":0}}"#;

#[test]
fn calls_that_hang_open_the_breaker_before_their_timeouts_end_them() {
    let mut s = setup(HANGS);
    let req = Req::get("/");
    let hung: Vec<Ticket> = (0..3).map(|i| ticket(s.admit(i % 2, &req))).collect();
    s.host.advance(300);
    // Not yet: exactly hang_after is not longer than it.
    assert!(!is_rejected(&s.admit(0, &req)));
    s.host.advance(1);
    // Each worker counts its own calls: worker 0 has two (its call admitted at 300 ms is only
    // 1 ms old), worker 1 one; together three consecutive failures.
    assert!(
        !is_rejected(&s.admit(1, &req)),
        "worker 1 counts its one hung call"
    );
    assert!(is_rejected(&s.admit(0, &req)), "worker 0's two make three");
    assert_eq!(
        s.host.metric("breakwater.circuit_breaker.hang.calls.hung"),
        3
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.hang.calls.failure"),
        3
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.hang.transitions.opened"),
        1
    );
    // When their timeouts finally end them, they are not counted again.
    for (i, t) in hung.iter().enumerate() {
        let o = s
            .engine
            .on_complete(&s.host, &mut s.workers[i % 2], t, Some(504), 0x2, None);
        assert_eq!(o.map(|o| o.as_str()), Some("failure"));
    }
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.hang.calls.failure"),
        3
    );
    let watched: Vec<bool> = s
        .workers
        .iter()
        .flat_map(|w| w.pending.iter().map(|p| p.counted))
        .collect();
    assert_eq!(
        watched,
        [false, false],
        "only the two calls admitted after 300 ms are still watched"
    );
}

#[test]
fn a_late_answer_to_a_call_counted_as_hung_is_not_counted_again() {
    let mut s = setup(HANGS);
    let req = Req::get("/");
    let late = ticket(s.admit(0, &req));
    s.host.advance(301);
    let next = ticket(s.admit(0, &req)); // counts `late` as the first failure
                                         // The late 200 does not reset the consecutive failures: it was already a failure.
    assert_eq!(
        s.complete(0, &late, 200).map(|o| o.as_str()),
        Some("failure")
    );
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.hang.calls.success"),
        0
    );
    s.complete(0, &next, 503);
    s.call(0, &req, 503);
    assert!(
        is_rejected(&s.admit(0, &req)),
        "1 hung + 2 failures = 3 consecutive"
    );
    assert!(
        s.workers[0].pending.is_empty(),
        "finished calls are no longer watched"
    );
}

#[test]
fn answered_calls_are_never_counted_as_hung_and_the_watch_list_is_bounded() {
    let mut s = setup(HANGS);
    let req = Req::get("/");
    for _ in 0..10 {
        s.call(0, &req, 200);
        s.host.advance(1000);
    }
    assert!(!is_rejected(&s.admit(1, &req)));
    assert_eq!(
        s.host.metric("breakwater.circuit_breaker.hang.calls.hung"),
        0
    );
    assert!(s.workers[0].pending.is_empty());
    // A client storm that never finishes: the list stops at MAX_PENDING, nothing panics.
    let mut s = setup(
        r#"{"name":"hang","failure":{"hang_after":"300ms"},"trip":{"consecutive_failures":100000}}"#,
    );
    let storm: Vec<Ticket> = (0..MAX_PENDING + 10)
        .map(|_| ticket(s.admit(0, &req)))
        .collect();
    assert_eq!(s.workers[0].pending.len(), MAX_PENDING);
    s.host.advance(301);
    ticket(s.admit(0, &req));
    assert_eq!(
        s.host.metric("breakwater.circuit_breaker.hang.calls.hung"),
        MAX_PENDING as i64
    );
    // Counted calls make room for new ones.
    assert!(s.workers[0].pending.len() <= MAX_PENDING);
    ticket(s.admit(0, &req));
    assert!(s.workers[0].pending.len() < MAX_PENDING);
    // A counted call that made room is not counted again when it ends, at its response headers
    // or at its end.
    let failures = s
        .host
        .metric("breakwater.circuit_breaker.hang.calls.failure");
    let mut late = storm[0].clone();
    s.engine.on_response_headers(&mut s.workers[0], &mut late);
    let outcome = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &late, Some(200), 0, None);
    assert_eq!(outcome.map(|o| o.as_str()), Some("failure"));
    let outcome = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &storm[1], Some(200), 0, None);
    assert_eq!(outcome.map(|o| o.as_str()), Some("failure"));
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.hang.calls.failure"),
        failures
    );
}

// --- gRPC ---------------------------------------------------------------------------------------

/// A finished gRPC call: HTTP 200 with this grpc-status (`None`: the stream ended without one).
fn grpc_call(
    s: &mut Setup,
    worker: usize,
    req: &Req,
    grpc_status: Option<u32>,
    flags: u64,
) -> Option<Outcome> {
    let RequestVerdict::Admitted(mut t) = s.admit(worker, req) else {
        panic!("not admitted")
    };
    t.set_grpc();
    if let Some(code) = grpc_status {
        t.set_grpc_status(code);
    }
    s.engine
        .on_complete(&s.host, &mut s.workers[worker], &t, Some(200), flags, None)
}

#[test]
fn grpc_calls_fail_by_their_grpc_status_not_their_http_200() {
    let mut s = setup(r#"{"name":"g","trip":{"consecutive_failures":100}}"#);
    let req = Req::get("/shop.Catalog/GetItem");
    let outcome = |o: Option<Outcome>| o.map(|o| o.as_str());
    // OK and a client error are successes; UNAVAILABLE is a failure by default.
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(0), 0)),
        Some("success")
    );
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(3), 0)),
        Some("success")
    );
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(14), 0)),
        Some("failure")
    );
    // A stream that ended without a status (the client cancelled it: DR) is neither.
    let dr = breakwater_common::flags::FlagSet::bit("DR").unwrap();
    assert_eq!(
        outcome(grpc_call(&mut s, 1, &req, None, dr)),
        Some("unanswered")
    );
    // A connect failure is still a failure (the router's reply carries UF).
    let uf = breakwater_common::flags::FlagSet::bit("UF").unwrap();
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(14), uf)),
        Some("failure")
    );
    for code in [4, 13, 2, 15] {
        assert_eq!(
            outcome(grpc_call(&mut s, 1, &req, Some(code), 0)),
            Some("failure")
        );
    }
    let metric = |stat: &str| {
        s.host
            .metric(&format!("breakwater.circuit_breaker.g.calls.{stat}"))
    };
    assert_eq!(
        (metric("success"), metric("failure"), metric("unanswered")),
        (2, 6, 1)
    );
    // And they open a breaker like any failure.
    let mut s = setup(r#"{"name":"g","trip":{"consecutive_failures":2}}"#);
    let _ = grpc_call(&mut s, 0, &req, Some(14), 0);
    let _ = grpc_call(&mut s, 1, &req, Some(14), 0);
    assert!(is_rejected(&s.admit(0, &req)));
}

#[test]
fn grpc_statuses_are_configurable_and_http_statuses_still_count_for_grpc_calls() {
    let mut s = setup(
        r#"{"name":"g","failure":{"grpc_statuses":["RESOURCE_EXHAUSTED"]},"trip":{"consecutive_failures":1}}"#,
    );
    let req = Req::get("/x.Y/Z");
    let outcome = |o: Option<Outcome>| o.map(|o| o.as_str());
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(14), 0)),
        Some("success")
    );
    assert_eq!(
        outcome(grpc_call(&mut s, 0, &req, Some(8), 0)),
        Some("failure")
    );
    let mut s = setup(r#"{"name":"g","trip":{"consecutive_failures":1}}"#);
    let RequestVerdict::Admitted(mut t) = s.admit(0, &req) else {
        panic!()
    };
    t.set_grpc();
    // A non-gRPC proxy's 503 on the way is a failure whatever (no) grpc-status it has.
    let o = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &t, Some(503), 0, None);
    assert_eq!(outcome(o), Some("failure"));
}

#[test]
fn grpc_calls_without_a_status_are_judged_by_their_http_status_as_clients_do() {
    // No HTTP status counts here, so only the gRPC mapping can make these failures.
    let mut s = setup(
        r#"{"name":"g","failure":{"statuses":[],"grpc_statuses":["UNAVAILABLE"]},"trip":{"consecutive_failures":100}}"#,
    );
    let req = Req::get("/x.Y/Z");
    let mut finish = |http: u32| {
        let RequestVerdict::Admitted(mut t) = s.admit(0, &req) else {
            panic!()
        };
        t.set_grpc();
        s.engine
            .on_complete(&s.host, &mut s.workers[0], &t, Some(http), 0, None)
            .map(|o| o.as_str())
    };
    // A proxy's 429 or 503 without grpc-status reaches a gRPC client as UNAVAILABLE; its 404
    // as UNIMPLEMENTED; a 200 whose stream ended without any status was cut.
    assert_eq!(finish(429), Some("failure"));
    assert_eq!(finish(503), Some("failure"));
    assert_eq!(finish(404), Some("success"));
    assert_eq!(finish(200), Some("unanswered"));
}

#[test]
fn grpc_rejections_carry_the_configured_status_message_and_pushback() {
    let (mut s, req) = opened_simple();
    s.host.advance(1200);
    let RequestVerdict::Rejected(rejection) = s.admit(1, &req) else {
        panic!()
    };
    let reply = s.engine.reply(&rejection, true).unwrap();
    assert_eq!(reply.grpc_status, Some(14));
    assert_eq!(reply.body, b"circuit open: breaker recs");
    assert_eq!(reply.headers, vec![("x-breakwater-breaker", "recs")]);
    // The time until a probe may be admitted, in milliseconds (Retry-After says 4 s).
    assert_eq!(reply.retry(), Some(("grpc-retry-pushback-ms", "3800")));
    let mut s = setup(
        r#"{"name":"g","mode":"forced_open","response":{"grpc":{"status":"RESOURCE_EXHAUSTED","message":"try later"}}}"#,
    );
    let RequestVerdict::Rejected(rejection) = s.admit(0, &Req::get("/a.B/C")) else {
        panic!()
    };
    let reply = s.engine.reply(&rejection, true).unwrap();
    assert_eq!(
        (reply.grpc_status, reply.body),
        (Some(8), &b"try later"[..])
    );
    assert_eq!(reply.retry(), None, "forced open: no time to come back at");
}

#[test]
fn a_call_with_response_headers_is_never_counted_as_hung() {
    let mut s =
        setup(r#"{"name":"h","failure":{"hang_after":"300ms"},"trip":{"consecutive_failures":1}}"#);
    let req = Req::get("/stream.S/Watch");
    let RequestVerdict::Admitted(mut streaming) = s.admit(0, &req) else {
        panic!()
    };
    // Headers came at once; the stream then runs for a minute.
    s.engine
        .on_response_headers(&mut s.workers[0], &mut streaming);
    s.host.advance(60_000);
    // Another request triggers the hang check: nothing is counted.
    let RequestVerdict::Admitted(mut next) = s.admit(0, &req) else {
        panic!("the streaming call was counted as hung")
    };
    s.engine.on_response_headers(&mut s.workers[0], &mut next);
    assert_eq!(s.host.metric("breakwater.circuit_breaker.h.calls.hung"), 0);
    let o = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &streaming, Some(200), 0, None);
    assert_eq!(o.map(|o| o.as_str()), Some("success"));
    // A call still without headers after hang_after is counted once, when its headers come
    // late too.
    let RequestVerdict::Admitted(mut late) = s.admit(0, &req) else {
        panic!()
    };
    s.host.advance(400);
    assert!(is_rejected(&s.admit(0, &req)), "the hung call opened it");
    s.engine.on_response_headers(&mut s.workers[0], &mut late);
    let o = s
        .engine
        .on_complete(&s.host, &mut s.workers[0], &late, Some(200), 0, None);
    assert_eq!(o.map(|o| o.as_str()), Some("failure"));
    assert_eq!(s.host.metric("breakwater.circuit_breaker.h.calls.hung"), 1);
    assert_eq!(
        s.host.metric("breakwater.circuit_breaker.h.calls.failure"),
        1
    );
}

// --- releasing calls in flight ------------------------------------------------------------------

/// A breaker that opens on two hung calls and releases what waits 300 ms.
const RELEASES: &str = r#"{"name":"rel","failure":{"hang_after":"300ms"},
    "trip":{"consecutive_failures":2},"open":{"duration":"5s","jitter":0},"half_open":{"probes":1}}"#;

/// Admits `req` on `worker` as the stream `context_id`.
fn in_flight(s: &mut Setup, worker: usize, req: &Req, context_id: u32) -> Ticket {
    let t = ticket(s.admit(worker, req));
    s.workers[worker].attach(&t, context_id);
    t
}

fn released_contexts(s: &mut Setup, worker: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = s
        .engine
        .tick(&s.host, &mut s.workers[worker])
        .iter()
        .map(|r| r.context_id)
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_key_that_opens_releases_its_waiting_gets_on_every_worker() {
    let mut s = setup(RELEASES);
    let get = Req::get("/slow");
    let post = FakeRequest::new("POST", "/slow", "shop.example");
    let _a = in_flight(&mut s, 0, &get, 11);
    let _b = in_flight(&mut s, 0, &get, 12);
    let _c = in_flight(&mut s, 0, &post, 13);
    let answered = in_flight(&mut s, 0, &get, 14);
    let mut answered = answered;
    s.engine
        .on_response_headers(&mut s.workers[0], &mut answered);
    let _d = in_flight(&mut s, 1, &get, 21);
    // Not yet: nothing has waited 300 ms, and the key is closed.
    s.host.advance(200);
    assert!(released_contexts(&mut s, 0).is_empty());
    s.host.advance(101);
    // Worker 0 counts its three hung calls (the key opens) and releases its GETs, not the
    // POST, nor the call that has its response headers.
    assert_eq!(released_contexts(&mut s, 0), [11, 12]);
    assert!(released_contexts(&mut s, 0).is_empty(), "never twice");
    // Worker 1 learns from the shared state that the key is open.
    assert_eq!(released_contexts(&mut s, 1), [21]);
    let metric = |s: &Setup, stat: &str| {
        s.host
            .metric(&format!("breakwater.circuit_breaker.rel.{stat}"))
    };
    assert_eq!(metric(&s, "calls.released"), 3);
    // The rejection says when to come back, and a released call's late end is not counted.
    let failures = metric(&s, "calls.failure");
    let outcome = s.complete(0, &_a, 503);
    assert_eq!(outcome.map(|o| o.as_str()), Some("failure"));
    assert_eq!(metric(&s, "calls.failure"), failures);
}

#[test]
fn released_calls_carry_the_rejection_in_their_form() {
    let mut s = setup(RELEASES);
    let get = Req::get("/slow");
    let mut t = ticket(s.admit(0, &get));
    t.set_grpc();
    s.workers[0].attach(&t, 7);
    let _other = in_flight(&mut s, 0, &get, 8);
    s.host.advance(301);
    let released = s.engine.tick(&s.host, &mut s.workers[0]);
    let grpc = released.iter().find(|r| r.context_id == 7).unwrap();
    assert!(grpc.grpc);
    let reply = s.engine.reply(&grpc.rejection, true).unwrap();
    assert_eq!(reply.grpc_status, Some(14));
    assert_eq!(reply.retry(), Some(("grpc-retry-pushback-ms", "5000")));
    let http = released.iter().find(|r| r.context_id == 8).unwrap();
    let reply = s.engine.reply(&http.rejection, false).unwrap();
    assert_eq!(
        (reply.status, reply.retry()),
        (503, Some(("retry-after", "5")))
    );
}

#[test]
fn a_probe_that_hangs_reopens_its_key_and_is_released() {
    let mut s = setup(RELEASES);
    let get = Req::get("/slow");
    let _a = in_flight(&mut s, 0, &get, 1);
    let _b = in_flight(&mut s, 0, &get, 2);
    s.host.advance(301);
    assert_eq!(released_contexts(&mut s, 0), [1, 2]);
    s.host.advance(5000);
    let probe = in_flight(&mut s, 1, &get, 3);
    assert_eq!(probe.decision.as_str(), "probe");
    assert!(is_rejected(&s.admit(0, &get)), "one probe at a time");
    s.host.advance(301);
    assert_eq!(released_contexts(&mut s, 1), [3]);
    assert_eq!(
        s.host
            .metric("breakwater.circuit_breaker.rel.transitions.opened"),
        2,
        "the hung probe re-opened the key"
    );
}

#[test]
fn without_release_or_in_dry_run_nothing_is_answered() {
    for (config, stat) in [
        (
            r#"{"name":"rel","failure":{"hang_after":"300ms"},"trip":{"consecutive_failures":1},"open":{"release_in_flight":false}}"#,
            None,
        ),
        (
            r#"{"name":"rel","mode":"dry_run","failure":{"hang_after":"300ms"},"trip":{"consecutive_failures":1}}"#,
            Some("dry_run_would_release"),
        ),
    ] {
        let mut s = setup(config);
        let get = Req::get("/slow");
        let _a = in_flight(&mut s, 0, &get, 1);
        let _b = in_flight(&mut s, 0, &get, 2);
        s.host.advance(301);
        assert!(released_contexts(&mut s, 0).is_empty(), "{config}");
        assert!(released_contexts(&mut s, 0).is_empty(), "{config}");
        assert_eq!(
            s.host
                .metric("breakwater.circuit_breaker.rel.transitions.opened"),
            1,
            "{config}"
        );
        if let Some(stat) = stat {
            assert_eq!(
                s.host
                    .metric(&format!("breakwater.circuit_breaker.rel.{stat}")),
                2,
                "counted once each"
            );
        }
    }
}

#[test]
fn release_options_are_checked() {
    let parse = |open: &str| {
        BreakerConfig::parse(
            format!(
                r#"{{"breakers":[{{"name":"b","failure":{{"hang_after":"1s"}},"open":{open}}}]}}"#
            )
            .as_bytes(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert!(parse(r#"{"release_after":"200ms","release_methods":["GET","POST"]}"#).is_ok());
    assert!(parse(r#"{"release_methods":["get"]}"#)
        .unwrap_err()
        .starts_with(
            "breakers[0].open.release_methods[0]: \"get\" is not an upper-case HTTP method"
        ));
    assert!(parse(r#"{"release_in_flight":false,"release_after":"1s"}"#)
        .unwrap_err()
        .starts_with(
            "breakers[0].open.release_after: only applies when release_in_flight is true"
        ));
    assert!(parse(r#"{"release_methods":[]}"#).is_err());
}
