"""Self-tests of the end-to-end harness against a real Envoy with no Wasm filter (bare router).

What Envoy 1.40 reports for each upstream failure mode is pinned here, so that the filter tests
can rely on it.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.harness import (
    Envoy,
    EnvoyError,
    RequestError,
    Route,
    Upstream,
    concurrent,
    envoy_config,
    request,
    static_cluster,
    wait_for_access_log,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTE_TIMEOUT_S = 0.5
# Envoy 1.40's %RESPONSE_CODE_DETAILS% for failures before the upstream's response started.
CONNECTION_TERMINATION = "upstream_reset_before_response_started{connection_termination}"
CONNECTION_REFUSED = (
    "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
)


# ----- fixtures ------------------------------------------------------------------------------
# One upstream and one Envoy serve most tests; each test resets the upstream and uses its own
# request paths (the access log is shared), so tests stay independent.


@pytest.fixture(scope="module")
def shared_upstream():
    with Upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def access_log(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy") / "access.log"


@pytest.fixture(scope="module")
def envoy(shared_upstream, access_log):
    config = envoy_config(shared_upstream.port, route_timeout=f"{ROUTE_TIMEOUT_S}s", access_log_path=str(access_log))
    with Envoy(config, concurrency=2) as envoy:
        yield envoy


@pytest.fixture
def upstream(shared_upstream):
    shared_upstream.set_mode("ok")
    shared_upstream.reset_counts()
    return shared_upstream


def access_entry(access_log, path):
    """The access-log entry of the one request made to `path`."""
    (entry,) = wait_for_access_log(access_log, match=lambda e: e["path"] == path)
    return entry


# ----- upstream on its own -------------------------------------------------------------------


def test_upstream_keeps_connections_alive_and_reads_bodies(upstream):
    connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=5)
    try:
        connection.request("GET", "/first")
        assert connection.getresponse().read() == b'{"upstream": "ok", "path": "/first", "code": 200}'
        first_socket = connection.sock
        connection.request("POST", "/sized", body=b"x" * 10_000)
        assert b'"/sized"' in connection.getresponse().read()
        connection.request("POST", "/chunked", body=iter([b"abc", b"defg"]), encode_chunked=True)
        assert b'"/chunked"' in connection.getresponse().read()
        assert connection.sock is first_socket, "the upstream closed a keep-alive connection"
    finally:
        connection.close()
    assert upstream.count() == 3


def test_upstream_counts_requests_by_prefix_and_waits(upstream):
    for path in ("/a/1", "/a/2", "/b"):
        request(upstream.url + path)
    assert (upstream.count(), upstream.count(path_prefix="/a"), upstream.count(path_prefix="/c")) == (3, 2, 0)

    concurrent(5, lambda i: request(upstream.url + f"/c/{i}"))
    assert upstream.wait_for_count(8, timeout=1) == 8
    with pytest.raises(TimeoutError):
        upstream.wait_for_count(9, timeout=0.1)

    upstream.reset_counts()
    assert upstream.count() == 0


def test_upstream_control_endpoint_switches_mode_and_is_not_counted(upstream):
    switched = request(upstream.url + "/__upstream/mode?mode=status&code=503")
    assert (switched.status, switched.json()) == (200, {"mode": "status", "params": {"code": 503}})
    assert request(upstream.url + "/x").status == 503

    assert request(upstream.url + "/__upstream/mode?mode=nonsense").status == 400
    assert request(upstream.url + "/__upstream/mode?mode=delay&ms=soon").status == 400
    stats = request(upstream.url + "/__upstream/stats").json()
    assert stats == {"requests": 1, "mode": "status", "params": {"code": 503}}


def test_upstream_rejects_invalid_modes(upstream):
    with pytest.raises(ValueError, match="unknown mode"):
        upstream.set_mode("explode")
    with pytest.raises(ValueError, match="needs parameter"):
        upstream.set_mode("status")
    with pytest.raises(ValueError, match="takes no parameter"):
        upstream.set_mode("hang", ms=5)
    assert upstream.mode.name == "ok"


def _raw_request(port):
    """Send one request on a raw socket and return what the upstream answered (b"" = FIN)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
        return sock.recv(1024)


def test_upstream_close_sends_fin_and_reset_sends_rst(upstream):
    upstream.set_mode("close")
    assert _raw_request(upstream.port) == b""
    upstream.set_mode("reset")
    with pytest.raises(ConnectionResetError):
        _raw_request(upstream.port)
    assert upstream.count() == 2


def test_upstream_refuse_then_listens_again_on_the_same_port(upstream):
    port = upstream.port
    upstream.set_mode("refuse")
    with pytest.raises(RequestError, match="ConnectionRefused"):
        request(upstream.url + "/refused")
    upstream.set_mode("ok")
    assert upstream.port == port
    assert request(upstream.url + "/back").status == 200


def _outcome(url):
    try:
        return request(url, timeout=30).status
    except RequestError as error:
        return type(error).__name__


def test_upstream_stop_cuts_hanging_and_delayed_requests_short():
    upstream = Upstream().start()
    try:
        upstream.set_mode("hang")
        hanging = [socket.create_connection(("127.0.0.1", upstream.port)) for _ in range(2)]
        for sock in hanging:
            sock.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        upstream.wait_for_count(2)
        upstream.set_mode("delay", ms=60_000)
        delayed_outcome = []
        delayed = threading.Thread(target=lambda: delayed_outcome.append(_outcome(upstream.url + "/slow")))
        delayed.start()
        upstream.wait_for_count(3)

        started = time.monotonic()
        upstream.stop()
        assert time.monotonic() - started < 2
        delayed.join(timeout=5)
        assert delayed_outcome == ["RequestError"]
        assert [sock.recv(1) for sock in hanging] == [b"", b""]  # closed without an answer
        for sock in hanging:
            sock.close()
    finally:
        upstream.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith(f"upstream-conn-{upstream.port}")]


@pytest.mark.parametrize("command", [["-m", "tests.harness.upstream"], ["tests/harness/upstream.py"]])
def test_upstream_command_line_logs_requests_and_exits_on_sigterm(command):
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0", "--mode", "status", "--code", "418"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()  # "upstream listening on http://127.0.0.1:PORT (mode ...)"
        url = banner.split()[3]
        assert request(url + "/teapot").status == 418
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=5)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    assert "GET /teapot -> 418 [mode status]" in output


# ----- through Envoy: what each failure mode looks like ----------------------------------------


MODE_CASES = [
    # mode, params, status, %RESPONSE_FLAGS%, %RESPONSE_CODE_DETAILS%, reaches the upstream
    ("ok", {}, 200, "-", "via_upstream", True),
    ("status", {"code": 503}, 503, "-", "via_upstream", True),
    ("delay", {"ms": 1500}, 504, "UT", "response_timeout", True),
    ("hang", {}, 504, "UT", "response_timeout", True),
    ("close", {}, 503, "UC", CONNECTION_TERMINATION, True),
    # A TCP RST looks exactly like a FIN to Envoy: both are a remote close.
    ("reset", {}, 503, "UC", CONNECTION_TERMINATION, True),
    ("refuse", {}, 503, "UF", CONNECTION_REFUSED, False),
]


@pytest.mark.parametrize(
    "mode, params, status, flags, details, reaches_upstream", MODE_CASES, ids=[case[0] for case in MODE_CASES]
)
def test_envoy_reports_upstream_behaviour(
    envoy, upstream, access_log, mode, params, status, flags, details, reaches_upstream
):
    upstream.set_mode(mode, **params)
    if mode == "refuse":
        time.sleep(0.1)  # let Envoy see its pooled upstream connections close
    path = f"/modes/{mode}"

    response = request(envoy.url(path))

    assert response.status == status
    entry = access_entry(access_log, path)
    assert (entry["status"], entry["flags"], entry["details"]) == (str(status), flags, details)
    assert entry["route"] == "default"
    assert upstream.count(path_prefix=path) == (1 if reaches_upstream else 0)
    if flags == "UT":
        assert ROUTE_TIMEOUT_S * 1000 * 0.9 <= response.elapsed_ms < ROUTE_TIMEOUT_S * 1000 + 700


def test_envoy_recovers_when_the_upstream_listens_again(envoy, upstream):
    upstream.set_mode("refuse")
    time.sleep(0.1)
    assert request(envoy.url("/recover/1")).status == 503
    upstream.set_mode("ok")
    assert request(envoy.url("/recover/2")).status == 200


def test_noise_fails_exactly_every_nth_request(envoy, upstream):
    upstream.set_mode("noise", every=10)
    statuses = [request(envoy.url(f"/noise/{i}")).status for i in range(50)]
    assert statuses.count(500) == 5 and statuses.count(200) == 45
    assert [i + 1 for i, s in enumerate(statuses) if s == 500] == [10, 20, 30, 40, 50]
    assert upstream.count() == 50


def test_concurrent_requests_are_all_counted(envoy, upstream):
    responses = concurrent(20, lambda i: request(envoy.url(f"/parallel/{i}")))
    assert [r.status for r in responses] == [200] * 20
    assert [r.json()["path"] for r in responses] == [f"/parallel/{i}" for i in range(20)]
    assert upstream.count(path_prefix="/parallel/") == 20


def test_new_connections_reach_both_workers(envoy, upstream):
    before = envoy.worker_connection_counts()
    for i in range(40):
        request(envoy.url(f"/spread/{i}"))
    after = envoy.worker_connection_counts()
    per_worker = [a - b for a, b in zip(after, before)]
    assert sum(per_worker) == 40
    assert len(per_worker) == 2 and min(per_worker) > 0, per_worker


def test_stats_and_prometheus(envoy, upstream):
    before = envoy.stat("cluster.upstream.upstream_rq_200")
    for i in range(3):
        request(envoy.url(f"/stats/{i}"))
    assert envoy.stat("cluster.upstream.upstream_rq_200") == before + 3
    assert envoy.stats(r"^http\.ingress\.downstream_rq_2xx$")["http.ingress.downstream_rq_2xx"] >= 3
    with pytest.raises(KeyError):
        envoy.stat("no.such.stat")
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="upstream"}' in envoy.prometheus("upstream_rq_total")


# ----- config builder --------------------------------------------------------------------------


def test_routes_and_extra_clusters(tmp_path):
    access_log = tmp_path / "access.log"
    with Upstream() as main, Upstream() as other:
        other.set_mode("status", code=202)
        config = envoy_config(
            main.port,
            access_log_path=str(access_log),
            extra_clusters=[static_cluster("other", other.port)],
            routes=[Route("to-other", "/other", cluster="other", timeout="2s"), Route("catch-all", "/")],
            listener_name="edge",
        )
        with Envoy(config) as envoy:
            assert list(envoy.ports) == ["edge"]
            assert request(envoy.url("/other/x")).status == 202
            assert request(envoy.url("/x", listener="edge")).status == 200
            assert sum(envoy.worker_connection_counts("edge")) == 2
        assert (main.count(), other.count()) == (1, 1)
    routes = {e["path"]: e["route"] for e in wait_for_access_log(access_log, count=2)}
    assert routes == {"/other/x": "to-other", "/x": "catch-all"}


# ----- Envoy process management ----------------------------------------------------------------


def test_run_expecting_failure_returns_exit_code_and_log():
    config = envoy_config(1)
    config["static_resources"]["clusters"][0]["type"] = "NOT_A_CLUSTER_TYPE"
    returncode, log = Envoy.run_expecting_failure(config)
    assert returncode != 0
    assert "NOT_A_CLUSTER_TYPE" in log


def test_start_failure_raises_with_the_error_lines():
    with pytest.raises(EnvoyError, match="duration"):
        Envoy(envoy_config(1, route_timeout="500ms")).start()  # protobuf wants "0.5s"


def test_missing_binary_is_reported(monkeypatch):
    monkeypatch.setenv("ENVOY", "/nonexistent/envoy")
    with pytest.raises(EnvoyError, match="ENVOY"):
        Envoy(envoy_config(1)).start()


def test_stop_leaves_no_process_and_no_temp_dir():
    envoy = Envoy(envoy_config(1)).start()
    pid, tmp_dir = envoy.process.pid, envoy.tmp_dir
    assert json.loads((tmp_dir / "cfg.json").read_text())["admin"]
    envoy.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not tmp_dir.exists()
    assert "starting main dispatch loop" in envoy.log_text()  # the log outlives the temp dir
    envoy.stop()  # idempotent


def test_keep_tmp_keeps_config_and_log():
    envoy = Envoy(envoy_config(1), keep_tmp=True).start()
    try:
        envoy.stop()
        assert (envoy.tmp_dir / "cfg.json").exists() and (envoy.tmp_dir / "envoy.log").exists()
    finally:
        shutil.rmtree(envoy.tmp_dir)
