"""gRPC unary calls through Envoy: what the breaker's gRPC path costs per call.

The breaker treats a request whose `content-type` is gRPC as a gRPC call: it reads `grpc-status`
from the response headers when they end the stream (a trailers-only answer) and otherwise, as
here, from the trailers in `on_http_response_trailers`; a gRPC call that ends without one is
"unanswered", not a success.

Upstream: `nghttpd` (Debian nghttp2-server) over h2c on 127.0.0.1, serving one file,
`shop.Catalog/GetItem`, whose contents is one uncompressed gRPC message frame, with the trailer
`grpc-status: 0` (`--trailer`); it answers a POST like a GET. Load: `h2load` (Debian
nghttp2-client), closed loop, 16 connections with 8 concurrent streams each, each call a POST of
one gRPC frame with `content-type: application/grpc` and `te: trailers`. Both are pinned to the
load CPU; each Envoy (`--concurrency 1`) to the Envoy CPU, with an HTTP/2 cluster to nghttpd and a
1 s route timeout. Variants are measured interleaved, round after round, as in bench/run.py.

Proof of work: `nghttp -v` must show `grpc-status: 0` arriving in trailers (a HEADERS frame after
the DATA), from nghttpd and through Envoy; one call through each breaker must raise its
`calls.success` (which only a grpc-status read from the trailers gives a gRPC call); after the
rounds, the breakers' `calls.success` and the chain's `log.records` must have grown by the calls
Envoy completed.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import load
from bench.variants import breaker, empty_filter, fallback, listener_config, log, plugin_config, record_log
from tests.harness import Envoy
from tests.harness.config import free_port
from tests.harness.grpc import http2_cluster

METHOD = "/shop.Catalog/GetItem"
HEADERS = {"content-type": "application/grpc", "te": "trailers"}
CONNECTIONS = 16
STREAMS = 8  # concurrent streams per connection
WARM_UP_SECONDS = 1
REPO_ROOT = Path(__file__).resolve().parents[1]


def frame(message: bytes) -> bytes:
    """One uncompressed gRPC message frame: flag 0, the message's length (4 bytes, big-endian), the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


# Protobuf bytes of a small GetItem exchange: {1: "item-123"} → {1: "item-123", 2: "Blue widget 42cm", 3: 1000}.
REQUEST = frame(b"\x0a\x08item-123")
REPLY = frame(b"\x0a\x08item-123\x12\x10Blue widget 42cm\x18\xe8\x07")


@dataclass
class GrpcVariant:
    name: str
    description: str
    filters: Callable[[], list[dict]] = lambda: []
    access_log: Callable[[str], dict] | None = None
    headers: dict[str, str] | None = None  # other request headers than HEADERS


VARIANTS = [
    GrpcVariant("grpc-bare", "Envoy, no filter"),
    GrpcVariant("grpc-empty-wasm", "the empty Rust proxy-wasm filter", lambda: [empty_filter()]),
    GrpcVariant("grpc-breaker", "circuit breaker, closed and matching: its gRPC path (grpc-status from the trailers)",
                lambda: [breaker()]),
    GrpcVariant("grpc-breaker-as-http", "the same breaker and calls sent with content-type application/octet-stream: "
                "its HTTP path (no grpc-status read)", lambda: [breaker()],
                headers={"content-type": "application/octet-stream", "te": "trailers"}),
    GrpcVariant("grpc-chain", "log enrichment → fallback (its rule matches GET only) → breaker, record access log",
                lambda: [log(), fallback(), breaker()], record_log),
]  # fmt: skip

BREAKER = plugin_config("circuit-breaker")["breakers"][0]["name"]
SUCCESS = f"breakwater.circuit_breaker.{BREAKER}.calls.success"
UNANSWERED = f"breakwater.circuit_breaker.{BREAKER}.calls.unanswered"
FAILURE = f"breakwater.circuit_breaker.{BREAKER}.calls.failure"
RECORDS = "breakwater.log.records"
# What each variant's filters must count for every call.
PER_CALL = {"grpc-breaker": SUCCESS, "grpc-breaker-as-http": SUCCESS, "grpc-chain": RECORDS}


def envoy_config(variant: GrpcVariant, upstream_port: int) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "1s"}}
    logs = [variant.access_log("/dev/null")] if variant.access_log else []
    return listener_config("bench", [route], variant.filters(), logs, [http2_cluster("upstream", upstream_port)])


class Nghttpd:
    """nghttpd over h2c on 127.0.0.1, pinned to the load CPU, serving `docroot` with the trailer
    `grpc-status: 0` after every body."""

    def __init__(self, docroot: Path):
        self.docroot = docroot
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> Nghttpd:
        self.port = free_port()
        command = ["taskset", "-c", load.LOAD_CPU, load.which("nghttpd") or "nghttpd", "--no-tls", "-a", "127.0.0.1",
                   "--trailer", "grpc-status: 0", "-d", str(self.docroot), str(self.port)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"nghttpd exited ({self.process.returncode}): {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"nghttpd did not listen on 127.0.0.1:{self.port} within 10 s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check_trailers(url: str, request_file: Path, what: str) -> None:
    """One call with `nghttp -v`: a 200, the reply frame, and `grpc-status: 0` in trailers (a
    HEADERS frame after the DATA), not in the response headers."""
    command = ["nghttp", "-v", "-d", str(request_file), *load.header_args("-H", HEADERS), url]
    out = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=10, check=True).stdout
    lines = out.splitlines()
    status = [i for i, line in enumerate(lines) if "recv (stream_id=" in line and ":status: 200" in line]
    data = [i for i, line in enumerate(lines) if "recv DATA frame" in line]
    grpc_status = [i for i, line in enumerate(lines) if "recv (stream_id=" in line and "grpc-status:" in line]
    if not (status and data and len(grpc_status) == 1 and status[0] < data[0] < grpc_status[0]
            and lines[grpc_status[0]].rstrip().endswith("grpc-status: 0") and "Blue widget 42cm" in out):  # fmt: skip
        raise SystemExit(f"{what}: expected a 200, the reply and grpc-status 0 in trailers (nghttp -v):\n{out}")


def breakwater_stats(envoy: Envoy) -> dict[str, int]:
    # /stats shows custom metrics with Envoy's `wasmcustom.` prefix.
    return {k.removeprefix("wasmcustom."): v for k, v in envoy.stats("breakwater").items()}


def completed_calls(envoy: Envoy) -> int:
    return envoy.stat("http.bench.downstream_rq_completed")


def check_call(variant: GrpcVariant, envoy: Envoy, request_file: Path) -> None:
    """One call; the filters must count it (the breaker a success: for a gRPC call, only a
    grpc-status it read gives one)."""
    counter = PER_CALL.get(variant.name)
    before = breakwater_stats(envoy)
    load.h2load(envoy.url(METHOD), variant.headers or HEADERS, request_file, requests=1)
    if counter is None:
        return
    deadline = time.monotonic() + 5
    while (stats := breakwater_stats(envoy)).get(counter, 0) <= before.get(counter, 0):
        if time.monotonic() > deadline:
            raise SystemExit(f"{variant.name}: {counter} did not rise for one call: "
                             f"{ {k: v for k, v in stats.items() if v} }")  # fmt: skip
        time.sleep(0.05)
    for name in (UNANSWERED, FAILURE):
        if stats.get(name, 0) != before.get(name, 0):
            raise SystemExit(f"{variant.name}: the check call counted in {name}")


def measured_at() -> dict:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO_ROOT)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit.stdout.strip()}


def run(quick: bool) -> dict:
    rounds, seconds = (1, 2) if quick else (3, 4)
    os.sched_setaffinity(0, {int(load.LOAD_CPU)})  # this script, as in bench/run.py
    started = time.monotonic()
    throughput: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    cpu_us: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    counters: dict[str, dict[str, int]] = {}
    envoys: dict[str, Envoy] = {}
    with tempfile.TemporaryDirectory(prefix="breakwater-grpc-") as tmp:
        docroot = Path(tmp) / "htdocs"
        (docroot / METHOD.lstrip("/")).parent.mkdir(parents=True)
        (docroot / METHOD.lstrip("/")).write_bytes(REPLY)
        request_file = Path(tmp) / "request.bin"
        request_file.write_bytes(REQUEST)
        upstream = Nghttpd(docroot)
        try:
            upstream.start()
            check_trailers(upstream.url(METHOD), request_file, "nghttpd")
            for v in VARIANTS:
                envoys[v.name] = Envoy(envoy_config(v, upstream.port), concurrency=1, cpus=load.ENVOY_CPU,
                                       log_level="warning", component_log_level=None).start()  # fmt: skip
            check_trailers(envoys["grpc-bare"].url(METHOD), request_file, "through Envoy")
            for v in VARIANTS:
                check_call(v, envoys[v.name], request_file)
            before = {name: (completed_calls(e), breakwater_stats(e)) for name, e in envoys.items()}
            for v in VARIANTS:  # warm up V8 and the connections
                load.h2load(envoys[v.name].url(METHOD), v.headers or HEADERS, request_file, 1, CONNECTIONS, STREAMS)
            for round_ in range(rounds):
                for v in VARIANTS:
                    envoy = envoys[v.name]
                    cpu0, done0 = load.cpu_seconds(envoy.process.pid), completed_calls(envoy)
                    throughput[v.name].append(load.h2load(envoy.url(METHOD), v.headers or HEADERS, request_file, seconds,
                                                          CONNECTIONS, STREAMS, WARM_UP_SECONDS))  # fmt: skip
                    done = completed_calls(envoy) - done0
                    cpu_us[v.name].append((load.cpu_seconds(envoy.process.pid) - cpu0) / max(done, 1) * 1e6)
                print(f"gRPC round {round_ + 1}/{rounds} ({time.monotonic() - started:.0f} s): "
                      + "  ".join(f"{n} {t[-1]:.0f}/s {cpu_us[n][-1]:.1f} µs" for n, t in throughput.items()), flush=True)  # fmt: skip
            time.sleep(0.3)  # the last calls' on_log
            for v in VARIANTS:
                done0, stats0 = before[v.name]
                completed = completed_calls(envoys[v.name]) - done0
                stats = breakwater_stats(envoys[v.name])
                grown = {k: stats.get(k, 0) - stats0.get(k, 0) for k in (SUCCESS, UNANSWERED, FAILURE, RECORDS) if k in stats}
                counters[v.name] = {"completed": completed, **grown}
                counter = PER_CALL.get(v.name)
                if counter and grown.get(counter, 0) < 0.99 * completed:
                    raise SystemExit(f"{v.name}: {counter} grew by {grown.get(counter, 0)} for {completed} calls: "
                                     "the filter did not do its work")  # fmt: skip
        finally:
            for envoy in envoys.values():
                envoy.stop()
            upstream.stop()
    return {
        "measured": measured_at(),
        "method": {
            "rounds": rounds, "seconds": seconds, "warm_up_seconds": WARM_UP_SECONDS, "connections": CONNECTIONS,
            "streams_per_connection": STREAMS, "request_bytes": len(REQUEST), "reply_bytes": len(REPLY),
            "upstream": "nghttpd --no-tls --trailer 'grpc-status: 0'", "load": "h2load (h2c, POST)",
            "envoy_concurrency": 1, "envoy_cpu": load.ENVOY_CPU, "load_cpu": load.LOAD_CPU, "route_timeout_s": 1,
        },
        "variants": {
            v.name: {"description": v.description, "content_type": (v.headers or HEADERS)["content-type"],
                     "throughput_rps": throughput[v.name], "envoy_cpu_us_per_call": cpu_us[v.name],
                     "counters": counters[v.name]}
            for v in VARIANTS
        },
        "duration_seconds": round(time.monotonic() - started),
    }  # fmt: skip
