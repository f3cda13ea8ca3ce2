"""Self-tests of the gRPC and h2c harness (tests/harness/grpc.py), on its own and through a real
Envoy with no Wasm filter (2 workers).

They pin what the filter tests rely on: a status in trailers and a trailers-only response differ on
the wire and Envoy sees which one came; a client's cancel and Envoy's route timeout both reach the
upstream as a cancelled call; HTTP/1.1, gRPC and plain h2c share one listener, and h2c streams over
several connections reach both workers.
"""

import threading
import time

import grpc
import pytest

from tests.harness import (
    STREAM_METHOD,
    UNARY_METHOD,
    Envoy,
    GrpcServer,
    Route,
    Upstream,
    grpc_call,
    grpc_channel,
    grpc_envoy_config,
    grpc_request,
    grpc_stream,
    h2_requests,
    request,
    static_cluster,
    status_code,
    wait_for_access_log,
)

ROUTE_TIMEOUT_S = 0.5
# Routes of the shared Envoy: plain HTTP to the HTTP/1.1 upstream, a short route timeout for one
# gRPC service, every other path to the gRPC server over HTTP/2.
HTTP_PREFIX = "/http/"
SLOW_SERVICE = "/breakwater.test.Slow/"
# Server-streaming methods (each test has its own, so that its access-log entry is its own).
CANCELLED_STREAM = "/breakwater.test.Stream/Cancelled"
RELEASED_STREAM = "/breakwater.test.Stream/Released"
# Envoy's timers (libevent, coarse monotonic clock: ~4 ms ticks) can fire a few ms before the
# client's clock says the timeout is over.
TIMER_SLACK_MS = 10


# ----- fixtures ------------------------------------------------------------------------------
# One gRPC server, one HTTP upstream and one Envoy serve all tests; each test resets the servers
# and uses its own method paths (the access log is shared).


@pytest.fixture(scope="module")
def shared_grpc_server():
    with GrpcServer(stream_methods=(STREAM_METHOD, CANCELLED_STREAM, RELEASED_STREAM)) as server:
        yield server


@pytest.fixture(scope="module")
def shared_http_upstream():
    with Upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def access_log(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy") / "access.log"


@pytest.fixture(scope="module")
def envoy(shared_grpc_server, shared_http_upstream, access_log):
    config = grpc_envoy_config(
        shared_grpc_server.port,
        access_log_path=str(access_log),
        extra_clusters=[static_cluster("http", shared_http_upstream.port)],
        routes=[
            Route("http", HTTP_PREFIX, cluster="http"),
            Route("slow", SLOW_SERVICE, timeout=f"{ROUTE_TIMEOUT_S}s"),
            Route("grpc", "/"),
        ],
        balanced=True,
    )
    with Envoy(config, concurrency=2) as envoy:
        yield envoy


@pytest.fixture
def server(shared_grpc_server):
    shared_grpc_server.set_mode("ok")
    shared_grpc_server.reset_counts()
    return shared_grpc_server


@pytest.fixture
def upstream(shared_http_upstream):
    shared_http_upstream.set_mode("ok")
    shared_http_upstream.reset_counts()
    return shared_http_upstream


def access_entry(access_log, path):
    """The access-log entry of the one request made to `path`."""
    (entry,) = wait_for_access_log(access_log, match=lambda e: e["path"] == path)
    return entry


# ----- the server and clients on their own ---------------------------------------------------


def test_status_codes_by_name_number_or_code():
    assert status_code("UNAVAILABLE") is status_code("unavailable") is status_code(14) is status_code("14")
    assert status_code(grpc.StatusCode.NOT_FOUND) is grpc.StatusCode.NOT_FOUND
    for wrong in ("NOPE", 17):
        with pytest.raises(ValueError):
            status_code(wrong)


def test_server_rejects_invalid_modes(server):
    with pytest.raises(ValueError, match="unknown mode"):
        server.set_mode("explode")
    with pytest.raises(ValueError, match="needs parameter"):
        server.set_mode("status")
    with pytest.raises(ValueError, match="takes no parameter"):
        server.set_mode("hang", ms=5)
    with pytest.raises(ValueError, match="no headers or messages"):
        server.set_mode("status", code=14, where="trailers_only", initial={"x": "1"})
    with pytest.raises(ValueError, match="where must be"):
        server.set_mode("status", code=14, where="headers")
    with pytest.raises(ValueError, match="mode 'ok'"):
        server.set_mode("status", code="OK")
    assert server.mode.name == "ok"


def test_status_in_trailers_and_trailers_only_differ_on_the_wire(server):
    """Straight to the server: the status after separate response headers, every time (grpc core
    would fold empty headers and an immediate status into one trailers-only HEADERS frame)."""
    server.set_mode("status", code="UNAVAILABLE", details="down", trailing={"x-why": "test"})
    in_trailers = h2_requests(server.port, [grpc_request(UNARY_METHOD) for _ in range(100)], connections=4)
    assert {(r.status, r.headers_ended_stream, r.grpc_status) for r in in_trailers} == {(200, False, 14)}
    assert {(r.headers.get("grpc-status"), r.trailers["grpc-message"], r.trailers["x-why"]) for r in in_trailers} == {
        (None, "down", "test")
    }

    server.set_mode("status", code="UNAVAILABLE", where="trailers_only", trailing={"x-why": "test"})
    only = h2_requests(server.port, [grpc_request(UNARY_METHOD) for _ in range(100)], connections=4)
    assert {(r.status, r.headers_ended_stream, r.grpc_status, r.headers["x-why"]) for r in only} == {
        (200, True, 14, "test")
    }
    assert all(r.trailers == {} and r.body == b"" for r in only)
    assert server.count(UNARY_METHOD) == 200


def test_per_method_modes_and_counts(server):
    other = "/breakwater.test.Other/Call"
    server.set_mode("status", method=other, code="NOT_FOUND")
    assert grpc_call(server.port, UNARY_METHOD, b"hello").response == b"hello"
    assert grpc_call(server.port, other).name == "NOT_FOUND"
    assert (server.count(), server.count(UNARY_METHOD), server.count(other), server.cancelled()) == (2, 1, 1, 0)
    server.set_mode("ok")  # every method again
    assert grpc_call(server.port, other).ok
    server.reset_counts()
    assert server.count() == 0


def test_stop_ends_hung_calls_and_joins_its_threads():
    with GrpcServer() as server:
        server.set_mode("hang")
        with grpc_channel(server.port) as channel:
            pending = channel.unary_unary(UNARY_METHOD).future(b"x", timeout=10)
            server.wait_for_count(1)
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 2
            assert pending.exception(timeout=5).code() is grpc.StatusCode.UNAVAILABLE
    assert not [t.name for t in threading.enumerate() if t.name.startswith(server.thread_name_prefix + "_")]


# ----- gRPC through Envoy --------------------------------------------------------------------


def test_unary_ok_through_envoy(envoy, server, access_log):
    method = "/breakwater.test.Echo/Ok"
    result = grpc_call(envoy.port, method, b"ping", metadata={"x-caller": "selftest"})
    assert (result.name, result.number, result.response, result.details) == ("OK", 0, b"ping", "")
    assert "x-envoy-upstream-service-time" in result.initial_metadata
    (call,) = server.calls(method)
    assert call.metadata["x-caller"] == "selftest" and "x-request-id" in call.metadata  # via Envoy
    assert not call.cancelled
    entry = access_entry(access_log, method)
    assert (entry["status"], entry["protocol"], entry["grpc_status"], entry["route"]) == ("200", "HTTP/2", "OK", "grpc")
    assert (entry["header_grpc_status"], entry["trailer_grpc_status"]) == ("-", "0")


def test_unavailable_in_trailers_vs_trailers_only_through_envoy(envoy, server, access_log):
    server.set_mode("status", code="UNAVAILABLE", details="down", trailing={"x-why": "test"})
    trailers = grpc_call(envoy.port, "/breakwater.test.Fail/InTrailers")
    (raw_trailers,) = h2_requests(envoy.port, [grpc_request("/breakwater.test.Fail/RawInTrailers")])
    server.set_mode("status", code="UNAVAILABLE", details="down", where="trailers_only", trailing={"x-why": "test"})
    only = grpc_call(envoy.port, "/breakwater.test.Fail/TrailersOnly")
    (raw_only,) = h2_requests(envoy.port, [grpc_request("/breakwater.test.Fail/RawTrailersOnly")])

    # The client: both UNAVAILABLE with the details; headers before the status only in the first.
    assert (trailers.name, trailers.details, only.name, only.details) == ("UNAVAILABLE", "down", "UNAVAILABLE", "down")
    assert trailers.initial_metadata["x-grpc-harness"] == "headers-first"
    assert "x-envoy-upstream-service-time" in trailers.initial_metadata
    assert trailers.trailing_metadata == {"x-why": "test"}
    assert only.initial_metadata == {}  # Envoy's own response headers end up with the trailers
    assert only.trailing_metadata["x-why"] == "test" and "x-envoy-upstream-service-time" in only.trailing_metadata
    # The frames Envoy sent on.
    assert (raw_trailers.headers_ended_stream, raw_trailers.trailers["grpc-status"]) == (False, "14")
    assert (raw_only.headers_ended_stream, raw_only.headers["grpc-status"], raw_only.trailers) == (True, "14", {})
    # What Envoy saw: grpc-status in the trailers, or in the response headers.
    for path, in_headers, in_trailers in [
        ("/breakwater.test.Fail/InTrailers", "-", "14"),
        ("/breakwater.test.Fail/RawInTrailers", "-", "14"),
        ("/breakwater.test.Fail/TrailersOnly", "14", "-"),
        ("/breakwater.test.Fail/RawTrailersOnly", "14", "-"),
    ]:
        entry = access_entry(access_log, path)
        assert (entry["status"], entry["flags"], entry["grpc_status"]) == ("200", "-", "UNAVAILABLE"), entry
        assert (entry["header_grpc_status"], entry["trailer_grpc_status"]) == (in_headers, in_trailers), entry


def test_hang_until_the_client_deadline_cancels_the_upstream_call(envoy, server, access_log):
    method = "/breakwater.test.Hang/Deadline"
    server.set_mode("hang", method=method)
    result = grpc_call(envoy.port, method, timeout=0.3)
    assert result.name == "DEADLINE_EXCEEDED" and result.elapsed_ms >= 300 - TIMER_SLACK_MS
    server.wait_for_cancelled(1, method=method)
    (call,) = server.calls(method)
    assert call.cancelled and call.ended - call.started >= 0.25
    assert access_entry(access_log, method)["grpc_status"] != "OK"


def test_client_cancel_of_a_stream_reaches_the_server_through_envoy(envoy, server, access_log):
    """No deadline: only the client's RST_STREAM, passed on by Envoy, can end the call early."""
    server.set_mode("ok", interval_ms=50, duration_ms=3000)
    result = grpc_stream(envoy.port, CANCELLED_STREAM, timeout=None, cancel_after=2)
    assert (result.name, result.messages) == ("CANCELLED", [b"x/0", b"x/1"])
    server.wait_for_cancelled(1, timeout=2, method=CANCELLED_STREAM)
    (call,) = server.calls(CANCELLED_STREAM)
    assert call.ended - call.started < 1
    assert access_entry(access_log, CANCELLED_STREAM)["flags"] == "DR"  # downstream remote reset


def test_envoy_route_timeout_cancels_the_upstream_call(envoy, server, access_log):
    method = SLOW_SERVICE + "Hang"
    server.set_mode("hang")
    result = grpc_call(envoy.port, method, timeout=None)
    # Envoy's local reply to a gRPC call: trailers-only, status from the HTTP code 504.
    assert (result.name, result.details, result.initial_metadata) == ("UNAVAILABLE", "upstream request timeout", {})
    assert ROUTE_TIMEOUT_S * 1000 - TIMER_SLACK_MS <= result.elapsed_ms < ROUTE_TIMEOUT_S * 1000 + 1000
    server.wait_for_cancelled(1, method=method)
    entry = access_entry(access_log, method)
    assert (entry["flags"], entry["details"], entry["header_grpc_status"]) == ("UT", "response_timeout", "14")


def test_released_and_delayed_calls_answer(envoy, server):
    server.set_mode("hang", method=RELEASED_STREAM, initial={"x-early": "1"})
    server.set_mode("delay", method="/breakwater.test.Delay/Ok", ms=300, trailing={"x-late": "1"})
    server.set_mode("delay", method="/breakwater.test.Delay/Fail", ms=300, code="RESOURCE_EXHAUSTED")
    with grpc_channel(envoy.port) as channel:
        # A streaming call, because grpcio hands a unary call's response headers over only with
        # its end (one batch).
        pending = channel.unary_stream(RELEASED_STREAM)(b"x", timeout=5)
        # The response headers arrive while the call hangs: Envoy passes them on at once.
        assert dict(pending.initial_metadata())["x-early"] == "1" and not pending.done()
        assert server.release() == 1
        assert list(pending) == [b"x/0"] and pending.code() is grpc.StatusCode.OK
    delayed = grpc_call(envoy.port, "/breakwater.test.Delay/Ok")
    assert (delayed.name, delayed.trailing_metadata, delayed.elapsed_ms >= 300) == ("OK", {"x-late": "1"}, True)
    failed = grpc_call(envoy.port, "/breakwater.test.Delay/Fail")
    assert (failed.name, failed.elapsed_ms >= 300) == ("RESOURCE_EXHAUSTED", True)
    assert server.cancelled() == 0


def test_server_stream_longer_than_a_second(envoy, server, access_log):
    server.set_mode("ok", interval_ms=100, duration_ms=1200, trailing={"x-done": "yes"})
    result = grpc_stream(envoy.port, STREAM_METHOD, b"s")
    assert (result.name, result.trailing_metadata) == ("OK", {"x-done": "yes"})
    assert result.messages == [b"s/%d" % i for i in range(12)]
    assert result.arrival_ms[-1] >= 1000 and result.elapsed_ms >= 1200
    assert server.cancelled() == 0
    entry = access_entry(access_log, STREAM_METHOD)
    assert (entry["grpc_status"], entry["flags"], int(entry["duration_ms"]) >= 1200) == ("OK", "-", True)


# ----- plain HTTP/2 (h2c) and HTTP/1.1 on the same listener ---------------------------------


def test_h2c_streams_over_several_connections_reach_both_workers(envoy, upstream):
    workers_before = envoy.worker_connection_counts()
    http2_before = envoy.stats(r"^http\.ingress\.downstream_(cx|rq)_http2_total$")
    paths = [f"{HTTP_PREFIX}h2/{i}" for i in range(200)]
    responses = h2_requests(envoy.port, paths, connections=4)
    assert [(r.status, r.error) for r in responses] == [(200, None)] * 200
    expected_bodies = [b'{"upstream": "ok", "path": "%s", "code": 200}' % path.encode() for path in paths]
    assert [r.body for r in responses] == expected_bodies
    assert {r.headers["content-type"] for r in responses} == {"application/json"}
    assert [sum(r.connection == c for r in responses) for c in range(4)] == [50] * 4
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    # The listener balances exactly and the 4 connections are open at once: 2 and 2, unless
    # connections of earlier tests were still being closed.
    assert sum(per_worker) == 4 and min(per_worker) > 0, per_worker
    http2 = envoy.stats(r"^http\.ingress\.downstream_(cx|rq)_http2_total$")
    assert http2["http.ingress.downstream_cx_http2_total"] - http2_before["http.ingress.downstream_cx_http2_total"] == 4
    assert http2["http.ingress.downstream_rq_http2_total"] - http2_before["http.ingress.downstream_rq_http2_total"] == 200
    assert upstream.count(path_prefix=f"{HTTP_PREFIX}h2/") == 200


def test_h2c_bodies_larger_than_the_flow_control_windows(server):
    """Straight to the gRPC server, whose HTTP/2 windows start at 64 KiB: the client waits for
    WINDOW_UPDATEs while sending and acknowledges what it receives (1 MiB echoed per call)."""
    payload = bytes(range(256)) * 4096
    responses = h2_requests(server.port, [grpc_request(UNARY_METHOD, payload) for _ in range(4)])
    assert [(r.status, r.grpc_status, r.grpc_messages == [payload]) for r in responses] == [(200, 0, True)] * 4


def test_http1_h2c_and_grpc_share_the_listener(envoy, server, upstream, access_log):
    assert request(envoy.url(f"{HTTP_PREFIX}one")).status == 200
    (h2c,) = h2_requests(envoy.port, [f"{HTTP_PREFIX}two"])
    assert h2c.status == 200
    assert grpc_call(envoy.port, "/breakwater.test.Echo/Shared").ok
    paths = (f"{HTTP_PREFIX}one", f"{HTTP_PREFIX}two", "/breakwater.test.Echo/Shared")
    assert [access_entry(access_log, path)["protocol"] for path in paths] == ["HTTP/1.1", "HTTP/2", "HTTP/2"]
