"""Load generators and Envoy-side measurements for the benchmarks.

- throughput: `wrk` (Debian), closed loop at saturation; over HTTP/2 (gRPC), `h2load` (Debian
  nghttp2-client), also closed loop, several streams per connection;
- latency: `oha` (crates.io), open loop at a fixed rate with `--latency-correction`, so a
  stalled server is charged for the requests that should have been sent meanwhile
  (coordinated omission);
- Envoy CPU time per request: the process's on-CPU time from /proc/<pid>/task/*/schedstat,
  divided by the requests Envoy completed (its own counter), whatever the client's speed.

Every tool runs pinned to the load CPU with taskset; Envoy under test has the other one.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OHA_VERSION = "1.16.0"
OHA = REPO_ROOT / ".tools" / f"oha-{OHA_VERSION}" / "bin" / "oha"
LOAD_CPU = "1"
ENVOY_CPU = "0"


def which(tool: str) -> str | None:
    """The tool's path; also from the sbin directories (Debian's nghttpd is /usr/sbin/nghttpd, not
    on an ordinary user's PATH)."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/local/sbin:/usr/sbin:/sbin")


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset", "valgrind", "h2load", "nghttp", "nghttpd") if not which(tool)]
    if missing:
        raise SystemExit(f"make bench needs {', '.join(missing)} "
                         "(Debian: apt-get install wrk util-linux valgrind nghttp2-client nghttp2-server)")  # fmt: skip
    if not OHA.exists():
        raise SystemExit(f"{OHA} is missing: make bench installs it (cargo install oha)")


def header_args(flag: str, headers: dict[str, str]) -> list[str]:
    return [arg for name, value in headers.items() for arg in (flag, f"{name}: {value}")]


def wrk(url: str, headers: dict[str, str], seconds: float, connections: int, expect_status: int = 200) -> float:
    """Requests per second, closed loop (each connection sends its next request on the reply)."""
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *header_args("-H", headers), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bool(errors) != (expect_status >= 300) or "Socket errors" in out:
        raise RuntimeError(f"wrk on {url} expected status {expect_status}:\n{out}")
    return float(match.group(1))


def h2load(url: str, headers: dict[str, str], data: Path, seconds: float | None = None, connections: int = 1,
           streams: int = 1, warm_up: float = 0, requests: int = 1) -> float:
    """Requests per second over HTTP/2, closed loop: `connections` connections with `streams`
    concurrent streams each, each request a POST of `data`, for `seconds` after `warm_up` (or
    `requests` in all). An http:// URL is h2c with prior knowledge. Fails unless every request
    got a 2xx answer."""
    timing = ["-D", f"{seconds:g}", *(["--warm-up-time", f"{warm_up:g}"] if warm_up else [])] if seconds else ["-n", str(requests)]
    command = ["taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{connections}", f"-m{streams}", *timing, "-d", str(data),
               *header_args("-H", headers), url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=(seconds or 0) + warm_up + 30, check=True).stdout
    rate = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (rate and counts and codes):
        raise RuntimeError(f"h2load printed no rate, request counts or status codes:\n{out}")
    _, _, _, succeeded, failed, errored, timed_out = map(int, counts.groups())
    ok, *other = map(int, codes.groups())
    if failed or errored or timed_out or any(other) or not ok or ok != succeeded:
        raise RuntimeError(f"h2load on {url}: a request failed or was not answered with a 2xx:\n{out}")
    return float(rate.group(1))


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    p999_ms: float
    rps: float
    success_rate: float


def oha_fixed_rate(url: str, headers: dict[str, str], rate: float, seconds: float, connections: int,
                   method: str = "GET", db: Path | None = None) -> Latency:
    """Open loop at `rate` requests per second, latency corrected for coordinated omission."""
    command = [
        "taskset", "-c", LOAD_CPU, str(OHA), "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
        "-q", str(rate), "--latency-correction", "-c", str(connections), "-m", method,
        *header_args("-H", headers),
    ]  # fmt: skip
    if db is not None:
        command += ["--db-url", str(db)]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    result = json.loads(out)
    percentiles = result["latencyPercentiles"]
    summary = result["summary"]
    return Latency(
        p50_ms=percentiles["p50"] * 1000,
        p99_ms=percentiles["p99"] * 1000,
        p999_ms=percentiles["p99.9"] * 1000,
        rps=summary["requestsPerSec"],
        success_rate=summary["successRate"],
    )


def oha_requests(db: Path) -> list[tuple[float, float, int]]:
    """Each request oha recorded: (start s, latency s, status)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT COALESCE(start_latency_correction, start), duration, status FROM oha").fetchall()
    return [(float(s), float(d), int(status)) for s, d, status in rows]


def cpu_seconds(pid: int) -> float:
    """On-CPU time of every thread of a process, from schedstat (nanoseconds, first field)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that exited meanwhile
    return total / 1e9


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
