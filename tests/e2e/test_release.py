"""Releasing the callers already waiting (`open.release_in_flight`): real Envoy (2 workers), an
upstream that hangs, and the breaker answering the requests in flight when their key opens,
from the worker's tick, instead of letting them wait out the route timeout. Latencies here are
bounds with a wide margin (half the route timeout); the exact figures are in `make bench`."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.e2e.test_grpc import grpc_envoy, grpc_server  # noqa: F401 (fixtures)
from tests.harness import Envoy, breaker_filter, fallback_filter, log_filter, record_access_log, request, wait_for_access_log
from tests.harness.client import concurrent
from tests.harness.envoy import assert_no_wasm_failure
from tests.harness.grpc import STREAM_METHOD, UNARY_METHOD, grpc_call, grpc_channel, grpc_stream

STAT = "wasmcustom.breakwater.circuit_breaker.api"
ROUTE_TIMEOUT_S = 5.0
STATIC_BODY = '{"fallback":true}'
FALLBACK = {
    "name": "api",
    "on": {"statuses": [], "breaker_open": True},
    "serve": [{"static": {"status": 200, "headers": {"content-type": "application/json"}, "body": STATIC_BODY}}],
}


def breaker(**fields) -> dict:
    base = {"name": "api", "failure": {"hang_after": "300ms"}, "trip": {"consecutive_failures": 3},
            "open": {"duration": "30s", "jitter": 0}}  # fmt: skip
    for key, value in fields.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


def timed(send) -> tuple[float, object]:
    started = time.monotonic()
    response = send()
    return time.monotonic() - started, response


def send_get(envoy: Envoy, path: str = "/api/slow"):
    return timed(lambda: request(envoy.url(path), timeout=ROUTE_TIMEOUT_S + 5))


def test_callers_in_flight_get_the_fallback_long_before_the_route_timeout(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([FALLBACK]), breaker_filter([breaker()])], route_timeout=f"{ROUTE_TIMEOUT_S}s")
    upstream.set_mode("hang")
    workers_before = envoy.worker_connection_counts()
    # 12 callers, each on a new connection (so on both workers), all waiting when it hangs.
    results = concurrent(12, lambda i: send_get(envoy, f"/api/slow/{i}"))
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    assert min(per_worker) > 0, f"both workers had callers waiting: {per_worker}"
    latencies = sorted(elapsed for elapsed, _ in results)
    assert latencies[-1] < ROUTE_TIMEOUT_S / 2, f"every caller was answered early: {latencies}"
    assert {(r.status, r.text, r.headers.get("x-breakwater-fallback")) for _, r in results} == {(200, STATIC_BODY, "static")}
    assert envoy.stat(f"{STAT}.calls.released") == 12
    # Envoy gave up the upstream requests it had sent.
    assert upstream.wait_for_abandoned(12) == 12
    entries = wait_for_access_log(envoy.access_log, lambda e: e["path"].startswith("/api/slow/"), count=12)
    assert {(e["decision"], e["fallback_trigger"], e["fallback_served"]) for e in entries} == {
        ("released", "breaker_open", "static")}
    # New requests are rejected at once (and get the fallback), and nothing more is released.
    elapsed, response = send_get(envoy)
    assert elapsed < 1 and response.status == 200 and response.text == STATIC_BODY
    assert envoy.stat(f"{STAT}.calls.released") == 12
    assert_no_wasm_failure(envoy)


def test_without_a_fallback_the_released_caller_gets_the_rejection(start_envoy, upstream):
    envoy = start_envoy([breaker_filter([breaker(trip={"consecutive_failures": 1})])], route_timeout=f"{ROUTE_TIMEOUT_S}s")
    upstream.set_mode("hang")
    elapsed, response = send_get(envoy)
    assert elapsed < ROUTE_TIMEOUT_S / 2
    assert (response.status, response.headers["x-breakwater-breaker"]) == (503, "api")
    assert 29 <= int(response.headers["retry-after"]) <= 30
    entry = wait_for_access_log(envoy.access_log, lambda e: e["path"] == "/api/slow")[0]
    assert (entry["decision"], entry["outcome"]) == ("released", "failure")
    assert_no_wasm_failure(envoy)


def test_a_post_in_flight_is_not_released_by_default(start_envoy, upstream):
    envoy = start_envoy([breaker_filter([breaker(trip={"consecutive_failures": 2})])], route_timeout="2s")
    upstream.set_mode("hang")
    post: list = []
    thread = threading.Thread(target=lambda: post.append(timed(
        lambda: request(envoy.url("/api/order"), method="POST", body=b"{}", timeout=10))))  # fmt: skip
    thread.start()
    gets = concurrent(2, lambda i: send_get(envoy, f"/api/slow/{i}"))
    thread.join()
    assert all(elapsed < 1.5 and r.headers.get("x-breakwater-breaker") == "api" for elapsed, r in gets), gets
    (elapsed, response), = post
    assert response.status == 504 and elapsed >= 1.9, "the POST waited for its route timeout"
    assert envoy.stat(f"{STAT}.calls.released") == 2
    assert_no_wasm_failure(envoy)


def test_a_hung_probe_is_released_and_reopens_the_breaker(start_envoy, upstream):
    envoy = start_envoy(
        [breaker_filter([breaker(trip={"consecutive_failures": 1}, open={"duration": "1s"}, half_open={"probes": 1})])],
        route_timeout=f"{ROUTE_TIMEOUT_S}s",
    )
    upstream.set_mode("hang")
    elapsed, first = send_get(envoy)
    assert elapsed < ROUTE_TIMEOUT_S / 2 and first.status == 503
    time.sleep(1.05)
    elapsed, probe = send_get(envoy)
    assert elapsed < ROUTE_TIMEOUT_S / 2, "the probe was released, not left to its timeout"
    assert probe.headers.get("x-breakwater-breaker") == "api"
    assert envoy.stat(f"{STAT}.probes") == 1
    assert envoy.stat(f"{STAT}.transitions.opened") == 2, "the hung probe re-opened the breaker"
    entry = wait_for_access_log(envoy.access_log, lambda e: e["decision"] == "released", count=2)[-1]
    assert entry["state"] == "open"
    assert_no_wasm_failure(envoy)


@pytest.mark.parametrize("fields,stat", [
    ({"open": {"release_in_flight": False}}, None),
    ({"mode": "dry_run"}, "dry_run_would_release"),
])  # fmt: skip
def test_release_off_and_dry_run_leave_callers_to_their_timeout(start_envoy, upstream, fields, stat):
    envoy = start_envoy([breaker_filter([breaker(trip={"consecutive_failures": 1}, **fields)])], route_timeout="1.5s")
    upstream.set_mode("hang")
    results = concurrent(2, lambda i: send_get(envoy, f"/api/slow/{i}"))
    assert all(r.status == 504 and elapsed >= 1.4 for elapsed, r in results), results
    assert envoy.stat(f"{STAT}.transitions.opened") == 1, "the hang did open the breaker"
    assert envoy.stats("calls.released").get(f"{STAT}.calls.released", 0) == 0
    if stat:
        assert envoy.stat(f"{STAT}.{stat}") == 2
    assert_no_wasm_failure(envoy)


def test_the_record_says_released(start_envoy, upstream, tmp_path):
    records = tmp_path / "records.log"
    envoy = start_envoy(
        [log_filter({"sampling": {"rate": 0.0}}), breaker_filter([breaker(trip={"consecutive_failures": 1})])],
        route_timeout=f"{ROUTE_TIMEOUT_S}s",
        access_logs=[record_access_log(str(records))],
    )
    upstream.set_mode("hang")
    elapsed, response = send_get(envoy)
    assert elapsed < ROUTE_TIMEOUT_S / 2 and response.status == 503
    deadline = time.monotonic() + 5
    while not (records.exists() and records.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    record, = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    assert (record["breakwater.breaker.decision"], record["breakwater.breaker_rejected"]) == ("released", True)
    assert record["breakwater.sampling"].startswith("kept:"), "sampled out at rate 0, and kept"
    assert record["envoy.response_code_details"] == "breakwater_circuit_released"
    assert_no_wasm_failure(envoy)


def test_grpc_calls_are_released_in_grpc_form_and_flowing_streams_are_untouched(grpc_envoy, grpc_server):  # noqa: F811
    envoy = grpc_envoy([breaker_filter([breaker(trip={"consecutive_failures": 2}, open={"release_methods": ["POST"]})])],
                       route_timeout=f"{ROUTE_TIMEOUT_S}s")  # fmt: skip
    grpc_server.set_mode("ok", method=STREAM_METHOD, interval_ms=100, duration_ms=1500)
    grpc_server.set_mode("hang", method=UNARY_METHOD)
    # One connection: the stream, the hung calls and their release all on one worker.
    with grpc_channel(envoy.port) as channel:
        streamed: list = []
        stream = threading.Thread(target=lambda: streamed.append(grpc_stream(channel, timeout=10)))
        stream.start()
        calls = concurrent(2, lambda i: timed(lambda: grpc_call(channel, UNARY_METHOD, timeout=10)))
        stream.join()
    for elapsed, result in calls:
        assert elapsed < ROUTE_TIMEOUT_S / 2, calls
        assert (result.name, result.trailing_metadata.get("x-breakwater-breaker")) == ("UNAVAILABLE", "api")
        assert 29_000 <= int(result.trailing_metadata["grpc-retry-pushback-ms"]) <= 30_000
    (result,) = streamed
    assert (result.name, len(result.messages)) == ("OK", 15), "the stream had its headers: never released"
    assert envoy.stat(f"{STAT}.calls.released") == 2
