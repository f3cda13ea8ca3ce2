"""gRPC and plain HTTP/2 end to end: real Envoy (2 workers), a real grpcio server behind an
HTTP/2 cluster, grpcio clients over h2c (a new connection per call unless a test says otherwise,
so that calls are spread over both workers), and an h2 client for plain h2c requests.

The server (tests/harness/grpc.py) answers a failure either in trailers after response headers
or trailers-only (the status in the only HEADERS frame); the access log shows which form reached
Envoy (`header_grpc_status` / `trailer_grpc_status`), so every test knows what it exercised.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from tests.e2e.conftest import ACCESS_LOG_FORMAT, start_checked_envoy
from tests.harness import (
    Envoy,
    Upstream,
    breaker_filter,
    envoy_config,
    fallback_filter,
    log_filter,
    record_access_log,
    request,
    wait_for_access_log,
)
from tests.harness.envoy import assert_no_wasm_failure
from tests.harness.grpc import (
    STREAM_METHOD,
    UNARY_METHOD,
    GrpcServer,
    H2Request,
    balance_connections,
    grpc_call,
    grpc_channel,
    grpc_envoy_config,
    grpc_request,
    grpc_stream,
    h2_requests,
)

BREAKER_STAT = "wasmcustom.breakwater.circuit_breaker"
FALLBACK_STAT = "wasmcustom.breakwater.fallback"
NO_JITTER = {"jitter": 0}
GET_ITEM = "/shop.Catalog/GetItem"
OTHER_METHOD = "/breakwater.test.Echo/Other"
GRPC_LOG_FORMAT = ACCESS_LOG_FORMAT.rstrip("\n") + (
    " cid=%REQ(x-correlation-id)% protocol=%PROTOCOL% details=%RESPONSE_CODE_DETAILS%"
    " grpc=%GRPC_STATUS(NUMBER)% header_grpc_status=%RESP(grpc-status)% trailer_grpc_status=%TRAILER(grpc-status)%\n"
)
# The fallback rule of the README's gRPC example, with binary metadata.
CATALOG_RULE = {
    "name": "catalog",
    "match": {"path_prefix": "/shop.Catalog/"},
    "on": {"grpc_statuses": ["UNAVAILABLE"], "response_flags": ["UF"]},
    "serve": [
        {"grpc": {"status": "FAILED_PRECONDITION", "message": "catalog degraded",
                  "metadata": {"x-degraded": "catalog", "trace-bin": "AP8="}}}
    ],
}  # fmt: skip
STATIC = {"static": {"status": 200, "headers": {"content-type": "application/json"}, "body": '{"fallback":true}'}}


@pytest.fixture
def grpc_server():
    with GrpcServer() as server:
        yield server


@pytest.fixture
def grpc_envoy(grpc_server: GrpcServer, tmp_path: Path, checked_envoys):
    """Starts Envoy (2 workers, connections balanced over them) with `filters` in front of the
    router, the gRPC server as cluster "upstream"; `.access_log` is the key=value log,
    `.records` the log-enrichment records. Checked for Wasm failures when the test ends."""

    def start(filters: list[dict], route_timeout: str = "5s", lean: bool = False) -> Envoy:
        return start_checked_envoy(checked_envoys, tmp_path, lambda access_log, records: grpc_envoy_config(
            grpc_server.port, http_filters=filters, route_timeout=route_timeout, access_log_path=str(access_log),
            access_log_format=GRPC_LOG_FORMAT, access_logs=[record_access_log(str(records), lean=lean)],
            balanced=True))  # fmt: skip

    return start


def breaker(name: str = "api", **fields) -> dict:
    return {"name": name, **fields}


def bstat(envoy: Envoy, name: str, breaker_name: str = "api") -> int:
    return envoy.stat(f"{BREAKER_STAT}.{breaker_name}.{name}")


def entries_for(envoy: Envoy, cid: str, count: int = 1) -> list[dict]:
    return wait_for_access_log(envoy.access_log, lambda e: e.get("cid") == cid, count=count)


def with_cid(cid: str) -> tuple:
    return (("x-correlation-id", cid),)


def wait_for_records(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        if len(lines) >= count:
            time.sleep(0.3)  # a record too many would show up now
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(lines)} records in {path}, expected {count}")
        time.sleep(0.05)


# --- circuit breaker --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["trailers", "trailers_only"])
def test_unavailable_opens_the_breaker_ok_and_other_statuses_do_not(grpc_envoy, grpc_server, where):
    envoy = grpc_envoy([breaker_filter([breaker(trip={"consecutive_failures": 5}, open={"duration": "30s", **NO_JITTER})])])
    for _ in range(20):
        assert grpc_call(envoy.port).ok
    # NOT_FOUND is an answer, not a failure of the service (not in the default grpc_statuses).
    grpc_server.set_mode("status", code="NOT_FOUND", where=where)
    for _ in range(10):
        assert grpc_call(envoy.port).name == "NOT_FOUND"
    assert (bstat(envoy, "calls.success"), bstat(envoy, "calls.failure"), bstat(envoy, "state")) == (30, 0, 0)

    grpc_server.set_mode("status", code="UNAVAILABLE", details="db down", where=where)
    for n in range(5):
        result = grpc_call(envoy.port, metadata=with_cid(f"fail-{n}"))
        assert (result.name, result.details) == ("UNAVAILABLE", "db down"), f"failure {n} reaches the server"
        assert "x-breakwater-breaker" not in result.trailing_metadata
    # The server used the form under test: the status in the response headers only when trailers-only.
    entry = entries_for(envoy, "fail-0")[0]
    form = (entry["header_grpc_status"], entry["trailer_grpc_status"])
    assert form == (("-", "14") if where == "trailers" else ("14", "-")), entry
    assert (entry["status"], entry["grpc"], entry["outcome"]) == ("200", "14", "failure")

    calls_before = grpc_server.count()
    rejected = grpc_call(envoy.port, metadata=with_cid("rejected"))
    assert (rejected.name, rejected.details) == ("UNAVAILABLE", "circuit open: breaker api")
    assert rejected.trailing_metadata["x-breakwater-breaker"] == "api"
    assert 29_000 <= int(rejected.trailing_metadata["grpc-retry-pushback-ms"]) <= 30_000
    assert grpc_server.count() == calls_before, "nothing reaches the server while open"
    assert (bstat(envoy, "calls.failure"), bstat(envoy, "state"), bstat(envoy, "rejected")) == (5, 1, 1)
    entry = entries_for(envoy, "rejected")[0]
    assert (entry["decision"], entry["details"], entry["grpc"], entry["header_grpc_status"]) == (
        "rejected", "breakwater_circuit_open", "14", "14")


def test_configured_grpc_rejection_and_http_callers_keep_their_reply(grpc_envoy, grpc_server):
    envoy = grpc_envoy([breaker_filter([breaker(
        trip={"consecutive_failures": 2},
        open={"duration": "20s", **NO_JITTER},
        failure={"grpc_statuses": ["RESOURCE_EXHAUSTED", 13]},
        response={"grpc": {"status": "RESOURCE_EXHAUSTED", "message": "orders is resting"}, "body": "busy"},
    )])])  # fmt: skip
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
    for _ in range(4):
        assert grpc_call(envoy.port).name == "UNAVAILABLE"
    assert bstat(envoy, "calls.failure") == 0, "UNAVAILABLE is not in this breaker's list"
    grpc_server.set_mode("status", code=13, where="trailers")
    for _ in range(2):
        assert grpc_call(envoy.port).name == "INTERNAL"
    result = grpc_call(envoy.port)
    assert (result.name, result.details) == ("RESOURCE_EXHAUSTED", "orders is resting")
    assert 19_000 <= int(result.trailing_metadata["grpc-retry-pushback-ms"]) <= 20_000
    # An HTTP/1.1 caller of the same breaker gets the HTTP reply, Retry-After in seconds.
    response = request(envoy.url(UNARY_METHOD))
    assert (response.status, response.body, response.headers["x-breakwater-breaker"]) == (503, b"busy", "api")
    assert int(response.headers["retry-after"]) in (19, 20)
    assert "grpc-retry-pushback-ms" not in response.headers


def test_probes_reopen_on_failure_and_recover_on_success(grpc_envoy, grpc_server):
    envoy = grpc_envoy([breaker_filter([breaker(
        trip={"consecutive_failures": 2}, open={"duration": "1s", **NO_JITTER}, half_open={"probes": 2},
    )])])  # fmt: skip
    grpc_server.set_mode("status", code="UNAVAILABLE")
    grpc_call(envoy.port), grpc_call(envoy.port)
    pushback = int(grpc_call(envoy.port).trailing_metadata["grpc-retry-pushback-ms"])
    assert 0 < pushback <= 1000
    time.sleep(pushback / 1000 + 0.05)
    probe = grpc_call(envoy.port)
    assert (probe.name, probe.details) == ("UNAVAILABLE", ""), "the probe reached the server, and failed"
    assert bstat(envoy, "transitions.opened") == 2
    reopened = grpc_call(envoy.port).trailing_metadata
    assert reopened["x-breakwater-breaker"] == "api", "open again"
    pushback = int(reopened["grpc-retry-pushback-ms"])
    assert 1000 < pushback <= 2000, "the default backoff doubled the open time"

    grpc_server.set_mode("ok")
    time.sleep(pushback / 1000 + 0.05)
    assert grpc_call(envoy.port).ok and bstat(envoy, "state") == 2, "half-open after the first good probe"
    assert grpc_call(envoy.port).ok and bstat(envoy, "state") == 0, "closed after the second"
    assert all(grpc_call(envoy.port).ok for _ in range(10))
    assert bstat(envoy, "probes") == 3


def test_calls_the_client_cancels_are_not_failures(grpc_envoy, grpc_server):
    envoy = grpc_envoy([breaker_filter([breaker(trip={"consecutive_failures": 2}, open={"duration": "30s"})])])
    # A server stream the client cancels after its first message (RST_STREAM after headers).
    grpc_server.set_mode("ok", interval_ms=100, duration_ms=3000)
    for n in range(3):
        result = grpc_stream(envoy.port, cancel_after=1, metadata=with_cid(f"stream-{n}"))
        assert (result.name, len(result.messages)) == ("CANCELLED", 1)
    # Unary calls cancelled before any answer (the server hangs).
    grpc_server.set_mode("hang")
    for n in range(3):
        with grpc_channel(envoy.port) as channel:
            future = channel.unary_unary(UNARY_METHOD).future(b"x", metadata=with_cid(f"cancel-{n}"))
            grpc_server.wait_for_count(4 + n)
            future.cancel()
            assert future.cancelled()
    grpc_server.wait_for_cancelled(6)
    entries = [entries_for(envoy, f"{kind}-{n}")[0] for kind in ("stream", "cancel") for n in range(3)]
    assert {(e["flags"], e["outcome"]) for e in entries} == {("DR", "unanswered")}, entries
    assert (bstat(envoy, "calls.failure"), bstat(envoy, "state")) == (0, 0)
    assert (bstat(envoy, "calls.unanswered"), bstat(envoy, "calls.success")) == (6, 0)
    # The same breaker does open on two failures: the test above could have failed.
    grpc_server.set_mode("status", code="UNAVAILABLE")
    grpc_call(envoy.port), grpc_call(envoy.port)
    assert "x-breakwater-breaker" in grpc_call(envoy.port).trailing_metadata


def test_hang_after_spares_calls_with_headers_and_catches_calls_without(grpc_envoy, grpc_server):
    envoy = grpc_envoy(
        [breaker_filter([breaker(failure={"hang_after": "200ms"}, trip={"consecutive_failures": 1}, open={"duration": "30s"})])],
        route_timeout="8s",
    )
    # A worker looks for hung calls when its next call arrives, so every call of this test goes
    # over one connection (one worker): the other calls are sure to see the long ones.
    channel = grpc_channel(envoy.port)
    try:
        # Server streams that last a second, five times hang_after, while other calls come and go.
        grpc_server.set_mode("ok", interval_ms=100, duration_ms=1000)
        results: list = []
        streams = [threading.Thread(target=lambda: results.append(grpc_stream(channel))) for _ in range(4)]
        for thread in streams:
            thread.start()
        grpc_server.wait_for_count(4)
        for _ in range(10):
            time.sleep(0.08)
            assert grpc_call(channel, OTHER_METHOD).ok
        for thread in streams:
            thread.join()
        assert [(r.name, len(r.messages)) for r in results] == [("OK", 10)] * 4
        # A unary call whose server sent its headers and then waits, like a long poll.
        grpc_server.set_mode("hang", method=UNARY_METHOD, initial={"x-long-poll": "1"})
        poll = channel.unary_unary(UNARY_METHOD).future(b"x")
        grpc_server.wait_for_count(15)
        for _ in range(10):
            time.sleep(0.05)
            assert grpc_call(channel, OTHER_METHOD).ok
        assert grpc_server.release() == 1
        assert poll.result(timeout=5) == b"x"
    finally:
        channel.close()
    assert (bstat(envoy, "calls.hung"), bstat(envoy, "calls.failure"), bstat(envoy, "state")) == (0, 0, 0)

    # Without headers the call is hung: the next call on its worker (over the same connection)
    # finds it and opens the breaker, while it still waits.
    grpc_server.set_mode("hang", method=UNARY_METHOD)
    with grpc_channel(envoy.port) as channel:
        hung = channel.unary_unary(UNARY_METHOD).future(b"x")
        grpc_server.wait_for_count(26)
        time.sleep(0.3)
        follower = grpc_call(channel, OTHER_METHOD)
        assert (follower.name, follower.trailing_metadata.get("x-breakwater-breaker")) == ("UNAVAILABLE", "api")
        assert not hung.done(), "the hung call still waits"
        grpc_server.release()
        assert hung.result(timeout=5) == b"x"
    assert (bstat(envoy, "calls.hung"), bstat(envoy, "state")) == (1, 1)


def test_connect_failures_count_for_grpc_calls(grpc_envoy, grpc_server):
    envoy = grpc_envoy([breaker_filter([breaker(trip={"consecutive_failures": 3}, open={"duration": "30s"})])])
    assert grpc_call(envoy.port).ok
    grpc_server.stop()
    for n in range(3):
        assert grpc_call(envoy.port, metadata=with_cid(f"uf-{n}")).name == "UNAVAILABLE"
    assert entries_for(envoy, "uf-0")[0]["flags"] == "UF"
    assert "x-breakwater-breaker" in grpc_call(envoy.port).trailing_metadata
    assert bstat(envoy, "calls.failure") == 3


# --- fallback ---------------------------------------------------------------------------------------


def test_grpc_fallback_answers_trailers_only_failures_with_the_configured_status(grpc_envoy, grpc_server):
    envoy = grpc_envoy([fallback_filter([CATALOG_RULE])])
    assert grpc_call(envoy.port, GET_ITEM, b"item-1").response == b"item-1", "good calls pass untouched"
    grpc_server.set_mode("status", code="UNAVAILABLE", details="db down", where="trailers_only")
    result = grpc_call(envoy.port, GET_ITEM, metadata=with_cid("degraded"))
    assert (result.name, result.details, result.response) == ("FAILED_PRECONDITION", "catalog degraded", None)
    metadata = result.trailing_metadata
    assert (metadata["x-degraded"], metadata["trace-bin"], metadata["x-breakwater-fallback"]) == (
        "catalog", b"\x00\xff", "grpc")
    entry = entries_for(envoy, "degraded")[0]
    assert (entry["fallback_rule"], entry["fallback_trigger"], entry["fallback_served"]) == ("catalog", "grpc_status", "grpc")
    assert (entry["details"], entry["grpc"], entry["status"]) == ("breakwater_fallback_grpc", "9", "200")
    assert envoy.stat(f"{FALLBACK_STAT}.catalog.served.grpc") == 1

    # Statuses the rule does not list pass as they are.
    grpc_server.set_mode("status", code="NOT_FOUND", where="trailers_only")
    assert grpc_call(envoy.port, GET_ITEM).name == "NOT_FOUND"
    # The documented limit: a status in the trailers comes after the headers went to the client.
    grpc_server.set_mode("status", code="UNAVAILABLE", details="db down", where="trailers")
    result = grpc_call(envoy.port, GET_ITEM, metadata=with_cid("too-late"))
    assert (result.name, result.details) == ("UNAVAILABLE", "db down")
    assert "x-breakwater-fallback" not in result.trailing_metadata
    assert entries_for(envoy, "too-late")[0]["fallback_served"] == "-"
    # Envoy's own reply to a connect failure (UF) is trailers-only UNAVAILABLE: replaced (the
    # status is looked at before the flags, as for HTTP).
    grpc_server.stop()
    result = grpc_call(envoy.port, GET_ITEM, metadata=with_cid("uf"))
    assert (result.name, result.trailing_metadata["x-breakwater-fallback"]) == ("FAILED_PRECONDITION", "grpc")
    entry = entries_for(envoy, "uf")[0]
    assert (entry["flags"], entry["fallback_trigger"], entry["fallback_served"]) == ("UF", "grpc_status", "grpc")
    assert envoy.stat(f"{FALLBACK_STAT}.catalog.served.grpc") == 2


def test_rules_never_answer_grpc_with_http_and_a_mixed_rule_answers_each_in_kind(grpc_envoy, grpc_server):
    mixed = {**CATALOG_RULE, "name": "mixed", "on": {"statuses": ["5xx"], "response_flags": ["UF"]}, "serve": [STATIC, *CATALOG_RULE["serve"]]}
    http_only = {"name": "http", "on": {"statuses": ["5xx"], "response_flags": ["UF"]}, "serve": [STATIC]}
    envoy = grpc_envoy([fallback_filter([mixed, http_only])])
    grpc_server.set_mode("status", code="UNAVAILABLE", details="db down", where="trailers_only")
    # The catch-all HTTP rule owns this gRPC call, and leaves it alone.
    result = grpc_call(envoy.port, UNARY_METHOD, metadata=with_cid("left-alone"))
    assert (result.name, result.details) == ("UNAVAILABLE", "db down")
    assert "x-breakwater-fallback" not in result.trailing_metadata
    assert entries_for(envoy, "left-alone")[0]["fallback_served"] == "-"
    grpc_server.stop()
    result = grpc_call(envoy.port, UNARY_METHOD)
    assert result.name == "UNAVAILABLE" and "x-breakwater-fallback" not in result.trailing_metadata, "Envoy's own reply"
    # The same rules answer HTTP requests over the same routes with the static response.
    for path in (UNARY_METHOD, GET_ITEM):
        response = request(envoy.url(path))
        assert (response.status, response.headers["x-breakwater-fallback"], response.text) == (200, "static", '{"fallback":true}')
    # The mixed rule answers a gRPC call with its grpc source, past the static one: on the flag,
    # as it has no on.grpc_statuses.
    result = grpc_call(envoy.port, GET_ITEM, metadata=with_cid("uf"))
    assert (result.name, result.trailing_metadata["x-breakwater-fallback"]) == ("FAILED_PRECONDITION", "grpc")
    entry = entries_for(envoy, "uf")[0]
    assert (entry["flags"], entry["fallback_trigger"], entry["fallback_served"]) == ("UF", "response_flags", "grpc")
    assert envoy.stat(f"{FALLBACK_STAT}.http.served.static") == 1
    assert (envoy.stat(f"{FALLBACK_STAT}.mixed.served.static"), envoy.stat(f"{FALLBACK_STAT}.mixed.served.grpc")) == (1, 1)


def test_grpc_fallback_replaces_the_breakers_rejection_and_grpc_is_never_kept_stale(grpc_envoy, grpc_server):
    rule = {**CATALOG_RULE, "on": {"breaker_open": True, "grpc_statuses": ["UNAVAILABLE"]},
            "serve": [{"stale": {"max_age": "10m"}}, *CATALOG_RULE["serve"]]}  # fmt: skip
    envoy = grpc_envoy([
        fallback_filter([rule], cache={"min_store_interval": "0s"}),
        breaker_filter([breaker(name="catalog", trip={"consecutive_failures": 3}, open={"duration": "30s"})]),
    ])  # fmt: skip
    for _ in range(5):
        assert grpc_call(envoy.port, GET_ITEM).ok
    assert envoy.stat(f"{FALLBACK_STAT}.catalog.cache.stores") == 0, "gRPC responses are never stored"
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
    for _ in range(3):
        assert grpc_call(envoy.port, GET_ITEM).name == "FAILED_PRECONDITION", "replaced, and counted by the breaker"
    assert bstat(envoy, "state", "catalog") == 1
    calls = grpc_server.count()
    result = grpc_call(envoy.port, GET_ITEM, metadata=with_cid("open"))
    assert (result.name, result.details) == ("FAILED_PRECONDITION", "catalog degraded")
    assert "x-breakwater-breaker" not in result.trailing_metadata, "the breaker's rejection was replaced"
    assert grpc_server.count() == calls
    entry = entries_for(envoy, "open")[0]
    assert (entry["decision"], entry["fallback_trigger"], entry["fallback_served"]) == ("rejected", "breaker_open", "grpc")
    assert entry["details"] == "breakwater_fallback_grpc"


# --- log enrichment ---------------------------------------------------------------------------------

LOG_CONFIG = {
    "service": {"name": "shop"},
    "correlation": {"header": "x-correlation-id", "trust_incoming": True},
    "sampling": {"rate": 1.0},
}


def test_the_record_carries_the_rpc_fields(grpc_envoy, grpc_server):
    envoy = grpc_envoy([log_filter(LOG_CONFIG), breaker_filter([breaker(mode="dry_run")])])
    assert grpc_call(envoy.port, GET_ITEM, metadata=with_cid("ok")).ok
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("trailers"))
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("trailers-only"))
    grpc_server.set_mode("ok", interval_ms=20, duration_ms=100)
    assert grpc_stream(envoy.port, metadata=with_cid("stream")).name == "OK"
    http = request(envoy.url("/plain"), headers={"x-correlation-id": "http"})
    records = {r["correlation.id"]: r for r in wait_for_records(envoy.records, 5)}

    def rpc(cid: str) -> tuple:
        r = records[cid]
        return (r.get("rpc.system"), r.get("rpc.service"), r.get("rpc.method"), r.get("rpc.grpc.status_code"),
                r.get("network.protocol.version"))  # fmt: skip

    assert rpc("ok") == ("grpc", "shop.Catalog", "GetItem", 0, "2")
    assert rpc("trailers") == ("grpc", "shop.Catalog", "GetItem", 14, "2")
    assert rpc("trailers-only") == ("grpc", "shop.Catalog", "GetItem", 14, "2")
    assert rpc("stream") == ("grpc", "breakwater.test.Echo", "ServerStream", 0, "2")
    assert rpc("http")[:4] == (None, None, None, None) and rpc("http")[4] == "1.1"


def test_the_lean_format_carries_the_rpc_fields_and_envoys_view_of_the_call(grpc_envoy, grpc_server):
    """`envoy_fields: "access_log"` on gRPC: the filter still reads the gRPC status (Envoy's
    text format would print it as a name); Envoy prints HTTP/2 and the :status."""
    envoy = grpc_envoy([log_filter({**LOG_CONFIG, "envoy_fields": "access_log"})], lean=True)
    assert grpc_call(envoy.port, GET_ITEM, metadata=with_cid("ok")).ok
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("trailers-only"))
    lines = {r["correlation.id"]: r for r in wait_for_records(envoy.records, 2)}
    for cid, code in (("ok", 0), ("trailers-only", 14)):
        line = lines[cid]
        assert (line["rpc.system"], line["rpc.service"], line["rpc.method"], line["rpc.grpc.status_code"]) == (
            "grpc", "shop.Catalog", "GetItem", code)  # fmt: skip
        assert (line["envoy.protocol"], line["http.response.status_code"], line["envoy.cluster"]) == (
            "HTTP/2", 200, "upstream")  # fmt: skip
        assert "network.protocol.version" not in line


@pytest.mark.parametrize("always_keep,kept", [
    (["grpc_error"], {"unavailable": "kept:grpc_error", "not-found": "kept:grpc_error"}),
    (["UNAVAILABLE"], {"unavailable": "kept:UNAVAILABLE"}),
])  # fmt: skip
def test_sampled_out_grpc_failures_are_kept(grpc_envoy, grpc_server, always_keep, kept):
    envoy = grpc_envoy([log_filter({**LOG_CONFIG, "sampling": {"rate": 0.0, "always_keep": always_keep}})])
    for n in range(5):
        assert grpc_call(envoy.port, GET_ITEM, metadata=with_cid(f"ok-{n}")).ok
    grpc_server.set_mode("status", code="NOT_FOUND", where="trailers")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("not-found"))
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("unavailable"))
    entries_for(envoy, "unavailable")  # every call has been logged by Envoy
    records = wait_for_records(envoy.records, len(kept))
    assert {r["correlation.id"]: r["breakwater.sampling"] for r in records} == kept


def test_the_record_says_why_a_reply_was_local(grpc_envoy, grpc_server):
    rule = {**CATALOG_RULE, "match": {"path_prefix": "/shop.Catalog/"}}
    envoy = grpc_envoy([
        log_filter(LOG_CONFIG),
        fallback_filter([rule]),
        breaker_filter([breaker(mode="forced_open", match={"path_prefix": "/breakwater.test."})]),
    ])  # fmt: skip
    grpc_call(envoy.port, UNARY_METHOD, metadata=with_cid("rejected"))
    grpc_server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
    grpc_call(envoy.port, GET_ITEM, metadata=with_cid("fallback"))
    records = {r["correlation.id"]: r for r in wait_for_records(envoy.records, 2)}
    assert records["rejected"]["envoy.response_code_details"] == "breakwater_circuit_open"
    assert records["rejected"]["rpc.grpc.status_code"] == 14
    assert records["fallback"]["envoy.response_code_details"] == "breakwater_fallback_grpc"
    assert records["fallback"]["rpc.grpc.status_code"] == 9, "the final status, the fallback's"


# --- the whole chain over HTTP/2 --------------------------------------------------------------------

CHAIN_RULE = {"name": "shop", "match": {"path_prefix": "/shop"}, "on": {"statuses": ["5xx"]}, "serve": [STATIC]}
CHAIN_BREAKER = breaker(match={"path_prefix": "/api"}, trip={"consecutive_failures": 20}, open={"duration": "30s", **NO_JITTER})


def chain() -> list[dict]:
    return [log_filter(LOG_CONFIG), fallback_filter([CHAIN_RULE]), breaker_filter([CHAIN_BREAKER])]


def comparable(status: int | None, headers: dict, body: bytes) -> tuple:
    """What must be the same over HTTP/1.1 and HTTP/2 (not dates, ids or timings)."""
    keep = ("content-type", "x-breakwater-fallback", "x-breakwater-breaker", "retry-after")
    return status, tuple(sorted((k, v) for k, v in headers.items() if k in keep)), body


def test_plain_h2c_goes_through_the_chain_like_http1(tmp_path: Path):
    with Upstream() as upstream:
        records = tmp_path / "records.log"
        config = envoy_config(upstream.port, http_filters=chain(), access_logs=[record_access_log(str(records))])
        with Envoy(balance_connections(config), concurrency=2) as envoy:
            workers_before = envoy.worker_connection_counts()
            # 4 connections x 50 concurrent streams, each stream with its own correlation id.
            requests = [H2Request(f"/api/{i}", headers=(("x-correlation-id", f"h2-{i}"),)) for i in range(200)]
            responses = h2_requests(envoy.port, requests, connections=4, timeout=20)
            per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
            assert min(per_worker) > 0, f"both workers served the connections: {per_worker}"
            assert [r.error for r in responses if r.error] == []
            assert {r.status for r in responses} == {200}
            one = request(envoy.url("/api/0"), headers={"x-correlation-id": "h1"})
            assert comparable(responses[0].status, responses[0].headers, responses[0].body) == comparable(
                one.status, one.headers, one.body)
            logged = wait_for_records(records, 201, timeout=10)
            versions = {r["correlation.id"]: r["network.protocol.version"] for r in logged}
            assert versions.pop("h1") == "1.1" and set(versions.values()) == {"2"} and len(versions) == 200
            assert not any("rpc.system" in r for r in logged), "plain h2c requests are not gRPC calls"

            # The fallback replaces 503s on HTTP/2 streams as on HTTP/1.1.
            upstream.set_mode("status", code=503)
            responses = h2_requests(envoy.port, [f"/shop/{i}" for i in range(40)], connections=4)
            one = request(envoy.url("/shop/0"))
            assert {comparable(r.status, r.headers, r.body) for r in responses} == {comparable(one.status, one.headers, one.body)}
            assert one.headers["x-breakwater-fallback"] == "static"

            # The breaker opens on HTTP/2 failures, and rejects HTTP/2 streams as HTTP/1.1 requests.
            responses = h2_requests(envoy.port, [f"/api/{i}" for i in range(60)], connections=4, timeout=20)
            assert {r.status for r in responses} == {503}
            assert envoy.stat(f"{BREAKER_STAT}.api.state") == 1, "open after 20 consecutive failures"
            upstream.reset_counts()
            responses = h2_requests(envoy.port, [f"/api/{i}" for i in range(40)], connections=4)
            one = request(envoy.url("/api/0"))
            assert upstream.count() == 0
            assert one.headers["x-breakwater-breaker"] == "api"
            assert {comparable(r.status, r.headers, r.body) for r in responses} == {comparable(one.status, one.headers, one.body)}
        assert_no_wasm_failure(envoy)


def test_grpc_calls_through_the_chain_on_both_workers(grpc_envoy, grpc_server):
    envoy = grpc_envoy(chain())
    workers_before = envoy.worker_connection_counts()
    channels = [grpc_channel(envoy.port) for _ in range(4)]
    try:
        futures = [
            channels[i % 4].unary_unary(GET_ITEM).future(b"item-%d" % i, metadata=with_cid(f"call-{i}"), timeout=10)
            for i in range(100)
        ]
        assert [f.result() for f in futures] == [b"item-%d" % i for i in range(100)]
    finally:
        for channel in channels:
            channel.close()
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    assert min(per_worker) > 0, f"both workers served the calls: {per_worker}"
    records = wait_for_records(envoy.records, 100, timeout=10)
    assert {(r["rpc.method"], r["rpc.grpc.status_code"]) for r in records} == {("GetItem", 0)}
    assert len({r["correlation.id"] for r in records}) == 100


# --- adversarial: what a broken gRPC server can send --------------------------------------------------

# Path -> (response headers, DATA, trailers): the response headers end the stream when there is
# neither DATA nor trailers (trailers-only). Values as bytes, as a broken server may send them.
_GRPC_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
WEIRD_RESPONSES = {
    "/weird.S/NotANumber": ([*_GRPC_HEADERS, (b"grpc-status", b"abc")], None, None),
    "/weird.S/Empty": ([*_GRPC_HEADERS, (b"grpc-status", b"")], None, None),
    "/weird.S/Huge": ([*_GRPC_HEADERS, (b"grpc-status", b"9" * 4000)], None, None),
    "/weird.S/Overflow": ([*_GRPC_HEADERS, (b"grpc-status", b"4294967310")], None, None),
    "/weird.S/Negative": ([*_GRPC_HEADERS, (b"grpc-status", b"-14")], None, None),
    "/weird.S/NotUtf8": ([*_GRPC_HEADERS, (b"grpc-status", b"\xff\xfe1")], None, None),
    "/weird.S/Twice": ([*_GRPC_HEADERS, (b"grpc-status", b"14"), (b"grpc-status", b"0")], None, None),
    "/weird.S/Padded": ([*_GRPC_HEADERS, (b"grpc-status", b" 14 ")], None, None),
    "/weird.S/TrailerNotANumber": (_GRPC_HEADERS, b"\x00\x00\x00\x00\x01x", [(b"grpc-status", b"fourteen")]),
    "/weird.S/TrailerWithoutStatus": (_GRPC_HEADERS, b"\x00\x00\x00\x00\x01x", [(b"x-other", b"1")]),
    "/weird.S/TrailerLongMessage": (_GRPC_HEADERS, None, [(b"grpc-status", b"14"), (b"grpc-message", b"m" * 8000)]),
    "/weird.S/HeadersAndTrailers": ([*_GRPC_HEADERS, (b"grpc-status", b"0")], b"\x00\x00\x00\x00\x01x", [(b"grpc-status", b"14")]),
    "/weird.S/NoContentType": ([(b":status", b"200"), (b"grpc-status", b"14")], None, None),
    "/weird.S/Http503": ([(b":status", b"503"), (b"content-type", b"text/plain")], b"overloaded", None),
}


class RawH2Server:
    """An h2c server that answers each path of WEIRD_RESPONSES with exactly those frames, which no
    gRPC library would send. Threads are named "upstream-rawh2-…" (the suite's leak check)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, name="upstream-rawh2-accept")]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            self.sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), name=f"upstream-rawh2-{len(self.threads)}")
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_outbound_headers=False,
                                           normalize_outbound_headers=False, validate_inbound_headers=False)  # fmt: skip
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        paths: dict[int, bytes] = {}
        try:
            sock.sendall(conn.data_to_send())
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        paths[event.stream_id] = dict(event.headers).get(b":path", b"")
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body, trailers = WEIRD_RESPONSES[paths.pop(event.stream_id).decode()]
                        conn.send_headers(event.stream_id, headers, end_stream=body is None and trailers is None)
                        if body is not None:
                            conn.send_data(event.stream_id, body, end_stream=trailers is None)
                        if trailers is not None:
                            conn.send_headers(event.stream_id, trailers, end_stream=True)
                sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass  # Envoy reset or closed the connection
        finally:
            sock.close()

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)


# What the breaker (failing on UNAVAILABLE only) and the fallback (answering UNAVAILABLE and
# UNKNOWN) make of each: the status a gRPC client would see. A value that is not a known code is
# UNKNOWN (4294967310 is 14 modulo 2^32, and not 14), a response without one has its HTTP
# status's gRPC status (200: UNKNOWN, 503: UNAVAILABLE), only trailers-only answers can be
# replaced, and a status in headers that do not end the stream is not the call's.
WEIRD_EXPECTED = {
    "NotANumber": ("success", "grpc"), "Empty": ("success", "grpc"), "Huge": ("success", "grpc"),
    "Overflow": ("success", "grpc"), "Negative": ("success", "grpc"), "NotUtf8": ("success", "grpc"),
    "Twice": ("success", "grpc"), "Padded": ("failure", "grpc"), "TrailerNotANumber": ("success", "-"),
    "TrailerWithoutStatus": ("success", "-"), "TrailerLongMessage": ("failure", "-"),
    "HeadersAndTrailers": ("failure", "-"), "NoContentType": ("failure", "grpc"), "Http503": ("failure", "grpc"),
}  # fmt: skip


def test_broken_grpc_responses_are_served_and_never_crash_a_filter(tmp_path: Path):
    assert set(WEIRD_EXPECTED) == {path.rsplit("/", 1)[1] for path in WEIRD_RESPONSES}
    server = RawH2Server()
    try:
        records, access_log = tmp_path / "records.log", tmp_path / "access.log"
        rule = {**CATALOG_RULE, "match": {"path_prefix": "/weird.S/"}, "on": {"grpc_statuses": ["UNAVAILABLE", "UNKNOWN"]}}
        breakers = [breaker(match={"path_prefix": "/weird.S/"}, failure={"grpc_statuses": ["UNAVAILABLE"]},
                            trip={"consecutive_failures": 1000})]  # fmt: skip
        config = grpc_envoy_config(
            server.port,
            http_filters=[log_filter(LOG_CONFIG), fallback_filter([rule]), breaker_filter(breakers)],
            access_log_path=str(access_log),
            access_log_format=GRPC_LOG_FORMAT,
            access_logs=[record_access_log(str(records))],
            balanced=True,
        )
        with Envoy(config, concurrency=2) as envoy:
            paths = list(WEIRD_RESPONSES) * 4
            cids = [f"weird-{path.rsplit('/', 1)[1]}-{i}" for i, path in enumerate(paths)]
            requests = [grpc_request(path, metadata={"x-correlation-id": cid}) for path, cid in zip(paths, cids)]
            responses = h2_requests(envoy.port, requests, connections=4, timeout=10)
            assert [(r.path, r.error) for r in responses if r.error or r.status is None] == []
            entries = wait_for_access_log(access_log, lambda e: e.get("cid", "").startswith("weird-"), count=len(paths))
            seen = {(e["cid"].split("-")[1], e["outcome"], e["fallback_served"]) for e in entries}
            assert seen == {(name, *expected) for name, expected in WEIRD_EXPECTED.items()}
            by_path = {r.path: r for r in responses}
            assert by_path["/weird.S/TrailerLongMessage"].grpc_status == 14, "a status in trailers is not replaced"
            assert by_path["/weird.S/HeadersAndTrailers"].trailers.get("grpc-status") == "14"
            assert len(wait_for_records(records, len(paths), timeout=10)) == len(paths), "one record per call"
            calls = [envoy.stat(f"{BREAKER_STAT}.api.calls.{kind}") for kind in ("failure", "success", "unanswered")]
            assert calls == [4 * 5, 4 * 9, 0]
        assert_no_wasm_failure(envoy)
    finally:
        server.stop()
