"""The circuit breaker end to end: real Envoy 1.40 with 2 worker threads, a real upstream,
real sockets. Each test starts its own Envoy and upstream on free ports."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest

from tests.harness import Envoy, Route, dist_module, envoy_config, request, wait_for_access_log, wasm_filter
from tests.harness.client import concurrent
from tests.harness.config import free_port, lds_bootstrap, push_listener
from tests.harness.envoy import REPO_ROOT, envoy_binary, refusal_log_lines

STAT = "wasmcustom.breakwater.circuit_breaker"
NO_JITTER = {"jitter": 0}


def get(envoy: Envoy, path: str = "/api", **kwargs):
    return request(envoy.url(path), **kwargs)


def rejected_by_breaker(response) -> bool:
    return "x-breakwater-breaker" in response.headers


def stat(envoy: Envoy, breaker: str, name: str) -> int:
    return envoy.stat(f"{STAT}.{breaker}.{name}")


def breaker(name: str = "api", **fields) -> dict:
    return {"name": name, **fields}


# --- tripping ----------------------------------------------------------------------------------


def test_trips_exactly_at_the_nth_consecutive_failure(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(trip={"consecutive_failures": 20}, open={"duration": "30s"})])
    for _ in range(5):
        assert get(envoy).status == 200
    upstream.set_mode("status", code=503)
    upstream.reset_counts()
    workers_before = envoy.worker_connection_counts()
    # One client, a fresh connection per request: the kernel spreads them over both workers, so
    # the count of consecutive failures must be shared to come out exact.
    for n in range(1, 21):
        response = get(envoy)
        assert response.status == 503 and not rejected_by_breaker(response), f"failure {n} must reach the upstream"
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    response = get(envoy)
    assert rejected_by_breaker(response), "the breaker opens at the 20th consecutive failure"
    assert upstream.count() == 20
    assert min(per_worker) > 0, f"the failures were counted on both workers: {per_worker}"
    assert stat(envoy, "api", "state") == 1
    assert stat(envoy, "api", "transitions.opened") == 1
    assert stat(envoy, "api", "calls.failure") == 20
    assert stat(envoy, "api", "calls.success") == 5


def test_one_percent_noise_never_opens_a_fifty_percent_breaker(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(trip={"failure_rate": 50, "minimum_calls": 20, "window": {"kind": "count", "size": 100}})]
    )
    upstream.set_mode("noise", every=100, code=500)
    statuses = [get(envoy).status for _ in range(400)]
    assert statuses.count(500) == 4
    assert statuses.count(200) == 396
    assert stat(envoy, "api", "transitions.opened") == 0
    assert stat(envoy, "api", "calls.failure") == 4
    # The same breaker does open when half the calls fail: the test above could have failed.
    upstream.set_mode("noise", every=2, code=500)
    responses = [get(envoy) for _ in range(100)]
    assert any(rejected_by_breaker(r) for r in responses)
    assert stat(envoy, "api", "transitions.opened") == 1


def test_slow_calls_trip_a_slow_call_rate_breaker(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [
            breaker(
                failure={"slow_call": "200ms"},
                trip={"slow_call_rate": 100, "minimum_calls": 3, "window": {"kind": "count", "size": 3}},
                open={"duration": "30s"},
            )
        ]
    )
    upstream.set_mode("delay", ms=400)
    for _ in range(3):
        assert get(envoy).status == 200, "slow, but successful"
    assert rejected_by_breaker(get(envoy))
    assert stat(envoy, "api", "calls.slow") == 3


def test_hang_after_opens_the_breaker_while_the_hung_calls_still_wait(breaker_envoy, upstream):
    # Without releasing them (test_release.py has that): the hung calls wait for their timeout.
    envoy = breaker_envoy(
        [breaker(failure={"hang_after": "200ms"}, trip={"consecutive_failures": 3},
                 open={"duration": "30s", "release_in_flight": False})],
        route_timeout="4s",
    )
    upstream.set_mode("hang")
    results: list = []
    hung: list[threading.Thread] = []

    def send(tag: str) -> None:
        response = get(envoy, timeout=10)
        results.append((tag, time.monotonic(), response))

    for i in range(3):
        hung.append(threading.Thread(target=send, args=(f"hung-{i}",)))
        hung[-1].start()
    upstream.wait_for_count(3)
    time.sleep(0.3)
    # Follow-up requests land on either worker; each worker counts its own hung calls, so the
    # breaker opens within a few of them, long before the 4 s timeout ends the first three.
    followers = []
    for i in range(8):
        followers.append(threading.Thread(target=send, args=(f"follow-{i}",)))
        followers[-1].start()
        time.sleep(0.05)
    for thread in hung + followers:
        thread.join()
    # In the order answers came back: a rejection before any of the hung calls timed out.
    order = [tag for tag, _, r in sorted(results, key=lambda x: x[1]) if rejected_by_breaker(r) or tag.startswith("hung")]
    assert order[0].startswith("follow"), f"the breaker opened only when the timeouts ended: {order}"
    assert sum(rejected_by_breaker(r) for tag, _, r in results) >= 1
    assert all(r.status == 504 for tag, _, r in results if tag.startswith("hung"))
    assert stat(envoy, "api", "calls.hung") >= 3
    assert stat(envoy, "api", "transitions.opened") == 1


def test_time_window_failure_rate(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(trip={"failure_rate": 50, "minimum_calls": 10, "window": {"kind": "time", "size": "10s"}})]
    )
    for _ in range(6):
        get(envoy)
    upstream.set_mode("status", code=502)
    results = [rejected_by_breaker(get(envoy)) for _ in range(7)]
    # 6 successes, then failures: at 6 of 12 calls (50 %) the breaker opens.
    assert results == [False] * 6 + [True]


# --- Envoy's own error flags ------------------------------------------------------------------


def test_connect_failures_count_through_response_flags(breaker_envoy, upstream):
    # No status counts as a failure, only the UF flag (connect failure): a plain 503 from the
    # upstream must not trip it, Envoy's 503 for a refused connection must.
    envoy = breaker_envoy(
        [breaker(failure={"statuses": [], "response_flags": ["UF"]}, trip={"consecutive_failures": 3})]
    )
    upstream.set_mode("status", code=503)
    assert not any(rejected_by_breaker(get(envoy)) for _ in range(6))
    upstream.set_mode("refuse")
    time.sleep(0.1)  # Envoy notices the closed pooled connections
    for _ in range(3):
        assert get(envoy).status == 503
    assert rejected_by_breaker(get(envoy))
    entries = wait_for_access_log(envoy.access_log, lambda e: e["flags"] == "UF", count=3)
    assert {e["outcome"] for e in entries} == {"failure"}


def test_timeouts_count_through_response_flags(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(failure={"statuses": [], "response_flags": ["UT"]}, trip={"consecutive_failures": 2})],
        route_timeout="0.3s",
    )
    upstream.set_mode("hang")
    assert get(envoy).status == 504
    assert get(envoy).status == 504
    response = get(envoy)
    assert rejected_by_breaker(response) and response.elapsed_ms < 250, "fast-fail instead of waiting for the timeout"
    assert len(wait_for_access_log(envoy.access_log, lambda e: e["flags"] == "UT", count=2)) == 2


def test_resets_after_the_response_started_count_as_failures(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(trip={"consecutive_failures": 2})])
    upstream.set_mode("close")  # the upstream closes the connection without answering: Envoy's 503 UC
    assert get(envoy).status == 503
    assert get(envoy).status == 503
    assert rejected_by_breaker(get(envoy))
    assert {e["flags"] for e in wait_for_access_log(envoy.access_log, lambda e: e["outcome"] == "failure", count=2)} == {"UC"}


# --- open -------------------------------------------------------------------------------------


def test_the_upstream_receives_no_request_while_open(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(trip={"consecutive_failures": 2}, open={"duration": "30s"})])
    upstream.set_mode("status", code=500)
    get(envoy), get(envoy)
    upstream.reset_counts()
    upstream.set_mode("ok")
    responses = concurrent(30, lambda i: get(envoy))
    assert all(r.status == 503 and rejected_by_breaker(r) for r in responses)
    assert upstream.count() == 0
    assert stat(envoy, "api", "rejected") == 30
    assert stat(envoy, "api", "calls.failure") == 2, "the breaker never counts its own rejections"
    body = responses[0].json()
    assert body == {"error": "circuit open", "breaker": "api"}
    assert responses[0].headers["content-type"] == "application/json"


def test_configured_response_and_retry_after(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [
            breaker(
                trip={"consecutive_failures": 1},
                open={"duration": "20s", **NO_JITTER},
                response={"status": 429, "headers": {"content-type": "text/plain", "x-fallback": "static"}, "body": "busy"},
            )
        ]
    )
    upstream.set_mode("status", code=500)
    get(envoy)
    response = get(envoy)
    assert response.status == 429
    assert response.body == b"busy"
    assert response.headers["x-fallback"] == "static"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["x-breakwater-breaker"] == "api"
    assert int(response.headers["retry-after"]) in (19, 20)


def test_backoff_grows_with_each_failed_probe(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [
            breaker(
                trip={"consecutive_failures": 1},
                open={"duration": "1s", "max_duration": "3s", "backoff_multiplier": 2, **NO_JITTER},
                half_open={"probes": 1},
            )
        ]
    )
    upstream.set_mode("status", code=503)
    get(envoy)
    waits = []
    for _ in range(3):
        seconds = int(get(envoy).headers["retry-after"])
        waits.append(seconds)
        time.sleep(seconds + 0.05)
        probe = get(envoy)
        assert not rejected_by_breaker(probe), "after Retry-After seconds a probe is admitted"
    waits.append(int(get(envoy).headers["retry-after"]))
    assert waits == [1, 2, 3, 3]
    assert stat(envoy, "api", "transitions.opened") == 4


# --- half-open and recovery ---------------------------------------------------------------------


def test_half_open_admits_exactly_the_probes_across_workers_then_closes(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(trip={"consecutive_failures": 2}, open={"duration": "1s", **NO_JITTER}, half_open={"probes": 3})]
    )
    upstream.set_mode("status", code=503)
    get(envoy), get(envoy)
    # The upstream heals but answers slowly, so the probes are still in flight while 40
    # concurrent clients (new connections, spread over both workers) arrive.
    upstream.set_mode("delay", ms=800)
    time.sleep(1.1)
    before_workers = envoy.worker_connection_counts()
    upstream.reset_counts()
    responses = concurrent(40, lambda i: get(envoy))
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), before_workers)]
    admitted = [r for r in responses if not rejected_by_breaker(r)]
    assert len(admitted) == 3, f"exactly 3 probes, got {len(admitted)}"
    assert all(r.status == 200 for r in admitted)
    assert upstream.count() == 3
    assert min(per_worker) > 0, f"both workers took part: {per_worker}"
    assert all(r.headers.get("retry-after") == "1" for r in responses if rejected_by_breaker(r))
    # All probes succeeded: closed.
    assert stat(envoy, "api", "state") == 0
    assert stat(envoy, "api", "transitions.closed") == 1
    assert stat(envoy, "api", "probes") == 3
    upstream.set_mode("ok")
    assert not any(rejected_by_breaker(get(envoy)) for _ in range(10))


def test_recovers_to_closed_after_the_probes_succeed(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(trip={"consecutive_failures": 2}, open={"duration": "1s", **NO_JITTER}, half_open={"probes": 2})]
    )
    upstream.set_mode("status", code=503)
    get(envoy), get(envoy)
    assert stat(envoy, "api", "state") == 1
    upstream.set_mode("ok")
    time.sleep(1.05)
    assert get(envoy).status == 200
    assert stat(envoy, "api", "state") == 2, "half-open after the first probe"
    assert get(envoy).status == 200
    assert stat(envoy, "api", "state") == 0, "closed after the second"
    assert all(get(envoy).status == 200 for _ in range(10))
    log = envoy.log_text()
    for transition in ("closed -> open", "open -> half_open", "half_open -> closed"):
        assert f'breakwater circuit-breaker "api": {transition}' in log


def test_a_probe_that_never_answers_is_written_off_after_max_wait(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [
            breaker(
                trip={"consecutive_failures": 1},
                open={"duration": "1s", **NO_JITTER},
                half_open={"probes": 1, "max_wait": "1s"},
            )
        ],
        route_timeout="3s",
    )
    upstream.set_mode("status", code=503)
    get(envoy)
    # t≈1.0 s: the first probe hangs; it will fail with a timeout (504 UT) at t≈4.0 s.
    upstream.set_mode("hang")
    time.sleep(1.05)
    stuck = threading.Thread(target=lambda: get(envoy))
    stuck.start()
    upstream.wait_for_count(2)
    assert rejected_by_breaker(get(envoy)), "its slot is taken"
    # t≈2.1 s: max_wait is over; the next request is a new probe, slow but successful (t≈4.6 s).
    upstream.set_mode("delay", ms=2500)
    time.sleep(1.05)
    second = []
    replacement = threading.Thread(target=lambda: second.append(get(envoy)))
    replacement.start()
    upstream.wait_for_count(3)
    stuck.join()
    # The stuck probe's timeout arrived while the new round was open: it belongs to an abandoned
    # round and must not re-open the breaker.
    replacement.join()
    assert second[0].status == 200 and not rejected_by_breaker(second[0])
    entries = wait_for_access_log(envoy.access_log, lambda e: e["decision"] == "probe", count=2)
    assert sorted(e["flags"] for e in entries) == ["-", "UT"]
    assert stat(envoy, "api", "probes_written_off") == 1
    assert stat(envoy, "api", "state") == 0, "closed by the replacement probe"
    assert stat(envoy, "api", "transitions.opened") == 1


# --- modes ------------------------------------------------------------------------------------


def test_dry_run_never_rejects_but_its_stats_and_logs_say_it_would(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(mode="dry_run", trip={"consecutive_failures": 2}, open={"duration": "30s"})])
    upstream.set_mode("status", code=503)
    responses = [get(envoy) for _ in range(10)]
    assert not any(rejected_by_breaker(r) for r in responses)
    assert upstream.count() == 10
    assert stat(envoy, "api", "dry_run_would_reject") == 8
    assert stat(envoy, "api", "rejected") == 0
    assert stat(envoy, "api", "state") == 1
    assert re.search(r'"api": closed -> open .*dry run: requests are not rejected', envoy.log_text())
    entries = wait_for_access_log(envoy.access_log, count=10)
    assert [e["decision"] for e in entries] == ["passed"] * 2 + ["dry_run_would_reject"] * 8


def test_forced_open_rejects_everything(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(mode="forced_open")])
    responses = [get(envoy) for _ in range(5)]
    assert all(r.status == 503 and rejected_by_breaker(r) for r in responses)
    assert all("retry-after" not in r.headers for r in responses)
    assert upstream.count() == 0
    entries = wait_for_access_log(envoy.access_log, count=5)
    assert {(e["decision"], e["state"]) for e in entries} == {("rejected", "forced_open")}


def test_disabled_passes_everything_without_accounting(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(mode="disabled", trip={"consecutive_failures": 1})])
    upstream.set_mode("status", code=500)
    assert not any(rejected_by_breaker(get(envoy)) for _ in range(5))
    assert stat(envoy, "api", "calls.failure") == 0


# --- scope -------------------------------------------------------------------------------------


def test_split_by_authority_keeps_two_authorities_apart(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(split_by="authority", trip={"consecutive_failures": 2}, open={"duration": "30s"})])
    upstream.set_mode("status", code=503)
    a, b = {"Host": "a.example"}, {"Host": "b.example"}
    get(envoy, headers=a), get(envoy, headers=a)
    assert rejected_by_breaker(get(envoy, headers=a))
    response = get(envoy, headers=b)
    assert not rejected_by_breaker(response) and response.status == 503, "b.example has its own state"
    assert stat(envoy, "api", "keys_tracked") == 2
    assert stat(envoy, "api", "keys_open") == 1
    assert 'breakwater circuit-breaker "api" [a.example]: closed -> open' in envoy.log_text()


def test_matching_by_path_method_route_and_cluster(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [
            breaker("reads", match={"path_prefix": "/api", "methods": ["GET"], "route": "api", "cluster": "upstream"},
                    trip={"consecutive_failures": 1}),
        ],
        routes=[Route("api", "/api"), Route("other", "/")],
    )
    upstream.set_mode("status", code=500)
    get(envoy, "/api/x", method="POST")
    get(envoy, "/other")
    assert not rejected_by_breaker(get(envoy, "/api/x")), "POST and /other are not the breaker's"
    assert rejected_by_breaker(get(envoy, "/api/y"))
    assert not rejected_by_breaker(get(envoy, "/other"))
    entries = wait_for_access_log(envoy.access_log, lambda e: e["path"] == "/other", count=2)
    assert {e["breaker"] for e in entries} == {"-"}, "unmatched requests carry no filter state"


# --- observability --------------------------------------------------------------------------------

DOCUMENTED_STATS = {
    "state",
    "calls.success",
    "calls.failure",
    "calls.slow",
    "calls.unanswered",
    "rejected",
    "dry_run_would_reject",
    "probes",
    "probes_written_off",
    "transitions.opened",
    "transitions.half_opened",
    "transitions.closed",
    "state_errors",
}
DOCUMENTED_SPLIT_STATS = DOCUMENTED_STATS - {"state"} | {"keys_tracked", "keys_open", "split_overflow"}


def test_stats_have_the_documented_names(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker("single"), breaker("per-host", split_by="authority", match={"path_prefix": "/split"})],
        stats_tags={"breaker": r"^wasmcustom\.breakwater\.circuit_breaker\.((.+?)\.)"},
    )
    get(envoy)
    names = envoy.stats(rf"^{re.escape(STAT)}\.")
    assert {n.removeprefix(f"{STAT}.single.") for n in names if ".single." in n} == DOCUMENTED_STATS
    assert {n.removeprefix(f"{STAT}.per-host.") for n in names if ".per-host." in n} == DOCUMENTED_SPLIT_STATS
    prometheus = envoy.prometheus()
    assert 'breakwater_circuit_breaker_state{breaker="single"} 0' in prometheus
    assert 'breakwater_circuit_breaker_calls_success{breaker="single"} 1' in prometheus


def test_decision_state_and_outcome_are_written_to_filter_state(breaker_envoy, upstream):
    envoy = breaker_envoy([breaker(trip={"consecutive_failures": 1}, open={"duration": "1s", **NO_JITTER})])
    get(envoy)
    upstream.set_mode("status", code=503)
    get(envoy)
    get(envoy)
    upstream.set_mode("ok")
    time.sleep(1.05)
    get(envoy)
    entries = wait_for_access_log(envoy.access_log, count=4)
    assert [(e["breaker"], e["decision"], e["state"], e["outcome"]) for e in entries] == [
        ("api", "passed", "closed", "success"),
        ("api", "passed", "closed", "failure"),
        ("api", "rejected", "open", "-"),
        ("api", "probe", "half_open", "success"),
    ]


# --- bad input --------------------------------------------------------------------------------------

INVALID_CONFIGS = [
    ({"breakers": [{"name": "a", "trip": {"failure_rate": 150}}]},
     "breakers[0].trip.failure_rate: 150 is outside 0 to 100"),
    ({"breakers": [{"name": "a", "tripp": {}}]}, "breakers[0].tripp: unknown field `tripp`"),
    ({"breakers": [{"name": "a", "open": {"duration": "5 seconds"}}]}, "breakers[0].open.duration: invalid duration"),
    ({"breakers": [{"name": "a", "half_open": {"probes": 0}}]}, "breakers[0].half_open.probes: 0 is outside 1 to 1000"),
    ({"breakers": [{"name": "a"}, {"name": "a"}]}, 'breakers[1].name: duplicate breaker name "a"'),
    ({"breakers": [{"name": "a", "failure": {"statuses": ["5xy"]}}]}, 'breakers[0].failure.statuses[0]: invalid status class "5xy"'),
    ({"breakers": [{"name": "a", "failure": {"response_flags": ["UF", "XX"]}}]},
     'breakers[0].failure.response_flags[1]: unknown response flag "XX"'),
    ('{"breakers": [', "invalid JSON: EOF while parsing a list at line 1 column 14"),
]


@pytest.mark.parametrize("configuration,message", INVALID_CONFIGS, ids=[m.split(":")[0] for _, m in INVALID_CONFIGS])
def test_an_invalid_config_is_refused_with_the_field_named(upstream, configuration, message):
    config = envoy_config(upstream.port, http_filters=[wasm_filter("cb", str(dist_module("circuit_breaker")), configuration)])
    lines = refusal_log_lines(config, "circuit-breaker")
    assert len(lines) == 1, "one log line names the field and the reason"
    assert message in lines[0], lines[0]


def test_malformed_and_odd_requests_are_served(breaker_envoy, upstream):
    envoy = breaker_envoy(
        [breaker(match={"path_prefix": "/api"}, split_by="header:x-tenant", trip={"consecutive_failures": 3}),
         breaker("root", match={"path_exact": "/"})]
    )
    odd_requests = [
        {"headers": {"x-tenant": "\xff\xfe\x80 binary"}},  # not UTF-8 on the wire (latin-1 bytes)
        {"headers": {"x-tenant": ""}},
        {"headers": {"x-tenant": "t" * 8000}},
        {},
        {"method": "DELETE", "headers": {"x-tenant": "a"}},
    ]
    for kwargs in odd_requests:
        assert get(envoy, "/api/%ff%00?x=%zz&&", **kwargs).status == 200
    assert get(envoy, "/").status == 200
    assert get(envoy, "/api", headers={"x-tenant": "\xff"}).status == 200
    assert stat(envoy, "api", "calls.success") == 6, "the filter kept working on every worker"
    assert stat(envoy, "root", "calls.success") == 1
    assert "panicked" not in envoy.log_text() and "wasm_fail_stream" not in envoy.log_text()


# --- shipped configs and module ------------------------------------------------------------------


def test_module_is_at_most_512_kib():
    assert dist_module("circuit_breaker").stat().st_size <= 512 * 1024


@pytest.mark.parametrize("config", ["envoy/demo.yaml", "envoy/circuit-breaker.yaml", "envoy/fallback.yaml", "envoy/fallback-redis.yaml", "envoy/log-enrichment.yaml", "envoy/log-enrichment-lean.yaml"])
def test_shipped_envoy_configs_validate(config):
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", config, "--use-dynamic-base-id"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_demo_runs_from_start_to_finish():
    """`make demo` itself: the narrated scenario on envoy/demo.yaml (fixed ports 10000/9901/8081)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.demo"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    steps = re.split(r"── \d\. ", output)
    assert len(steps) == 9, output
    assert steps[2].count("x-breakwater-fallback: stale") == 5, "failures answered with the last good answer"
    assert '"recommendations": closed -> open' in steps[2]
    assert "The upstream received 0 of those 4 requests." in steps[3]
    assert steps[3].count("x-breakwater-fallback: stale") == 4
    assert "x-breakwater-fallback: static" in steps[4], "too old for stale: the static list"
    assert '"recommendations": half_open -> closed' in steps[5]
    assert "breaker: closed" in steps[6] and "fresh-pick-1" in steps[6]
    # Every request's access-log record, and the redacted record of the request with personal data.
    assert steps[3].count("access log: status=200 breaker=rejected/open fallback=stale") == 4
    record = steps[7].split("indented here):", 1)[1]
    assert '"url.query": "email=[REDACTED:email]&fnr=[REDACTED:no_national_id]&token=[REDACTED:query_param]"' in record
    assert '"card [REDACTED:payment_card]"' in record and '"k8s.namespace.name": "shop"' in record
    for secret in ["ola.nordmann", "01010012356", "s3cret", "4111 1111", "eyJhbGciOiJIUzI1NiJ9"]:
        assert secret not in record, secret
    # Callers waiting on the hung upstream are answered by the fallback long before the 2 s timeout.
    answers = re.findall(r"→ (\d+) after (\d+\.\d+) s  x-breakwater-fallback: (\S+)", steps[8])
    assert len(answers) == 6, steps[8]
    assert all(status == "200" and float(elapsed) < 1.0 and served in ("stale", "static")
               for status, elapsed, served in answers), answers
    assert "(6 released)" in steps[8]


# --- configuration updates (LDS from a file, as a control plane would push them) ------------------


def test_config_updates_keep_state_and_invalid_ones_keep_the_previous_config(upstream, tmp_path):
    lds_path = tmp_path / "lds.json"
    port = free_port()

    def push(breakers: list[dict] | str) -> None:
        configuration = breakers if isinstance(breakers, str) else {"breakers": breakers}
        filters = [wasm_filter("cb", str(dist_module("circuit_breaker")), configuration)]
        push_listener(lds_path, envoy_config(upstream.port, http_filters=filters), port)

    def api(body: str) -> dict:
        return breaker(trip={"consecutive_failures": 2}, open={"duration": "30s"}, response={"body": body})

    push([api("v1")])
    bootstrap = lds_bootstrap(upstream.port, lds_path)
    with Envoy(bootstrap) as envoy:
        url = f"http://127.0.0.1:{port}/api"
        upstream.set_mode("status", code=503)
        request(url), request(url)
        assert request(url).body == b"v1"

        def wait_for(stat_name: str, value: int) -> None:
            deadline = time.monotonic() + 10
            while envoy.stats(f"^{re.escape(stat_name)}$").get(stat_name, 0) < value:
                assert time.monotonic() < deadline, f"{stat_name} never reached {value}"
                time.sleep(0.05)

        successes = envoy.stat("listener_manager.lds.update_success")
        push([api("v2")])
        wait_for("listener_manager.lds.update_success", successes + 1)
        response = request(url)
        assert rejected_by_breaker(response) and response.body == b"v2", "still open under the new config"

        push([{"name": "api", "trip": {"failure_rate": 150}}])
        wait_for("listener_manager.lds.update_rejected", 1)
        response = request(url)
        assert rejected_by_breaker(response) and response.body == b"v2", "the previous config still runs"
        refusals = [line for line in envoy.log_text().splitlines() if "invalid configuration:" in line]
        assert len(refusals) == 1 and "breakers[0].trip.failure_rate: 150 is outside 0 to 100" in refusals[0]


# --- retries -------------------------------------------------------------------------------------


def test_router_retries_are_inside_one_call_and_rejections_are_not_retried(breaker_envoy, upstream):
    """The client-side case: the breaker before the router of the caller's proxy. Envoy retries
    inside the router, so the breaker sees one call per request (its final attempt), and a
    request the breaker rejects never reaches the router, so it is not retried."""
    retried = Route(name="retried", prefix="/", retry_policy={"retry_on": "5xx", "num_retries": 2})
    envoy = breaker_envoy([breaker(trip={"consecutive_failures": 3}, open={"duration": "30s"})], routes=[retried])
    upstream.set_mode("status", code=503)
    for _ in range(3):
        assert get(envoy).status == 503
    assert upstream.count() == 9, "each of the three calls was tried three times"
    assert stat(envoy, "api", "calls.failure") == 3, "one failure per call, not per attempt"
    rejected = get(envoy)
    assert rejected_by_breaker(rejected) and rejected.status == 503
    assert upstream.count() == 9, "the rejection was not retried upstream"
    # A success on retry is a success: every second upstream request fails, so the first call
    # succeeds at once and the second on its retry.
    envoy = breaker_envoy([breaker(name="flaky", trip={"consecutive_failures": 1})], routes=[retried])
    upstream.reset_counts()
    upstream.set_mode("noise", every=2, code=503)
    assert [get(envoy).status for _ in range(2)] == [200, 200]
    assert upstream.count() == 3
    assert (stat(envoy, "flaky", "calls.success"), stat(envoy, "flaky", "calls.failure")) == (2, 0)
