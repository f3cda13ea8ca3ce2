"""Soak: steady load through Envoy (2 workers) with all three filters while the upstream flaps.

    python -m tests.soak --duration 10m --out DIR

Filter chain: log enrichment -> fallback -> circuit breaker -> router, configured from the
`pluginConfig` of istio/base/*.yaml (matches on Istio cluster names replaced by path prefixes,
the fallback service pointed at the same upstream) plus a second breaker, `per-host`, with
`split_by: authority` and a small `max_keys`, fed with many more authorities than that.

The upstream cycles ok -> 503 -> ok -> hang (route timeout 1 s) every `--phase` seconds (20). A pool
of Python client threads (kept-alive connections, 5 s client timeout) sends about `--rate`
requests/s over thousands of distinct URLs (so the fallback's stale cache fills to
`max_entries`) and authorities (so `per-host` reaches `max_keys`).

Every 5 s it records Envoy's RSS (/proc/<pid>/status VmRSS) and the shared-data footprint
(gauges `breakwater.fallback.cache.entries` / `cache.bytes`, `per-host.keys_tracked`).

Exit status 1 when:
  - a request got no answer (client timeout or connection error): "stuck";
  - RSS after warm-up (the first 20 % of the run) grew by more than 5 % (last sample against
    the first one after warm-up);
  - a footprint exceeded its configured bound, or never reached it (the soak then did not
    exercise the bound it claims to check).
Writes DIR/soak.json (settings, samples, summary, failures) and DIR/soak.svg (RSS and key
counts over time).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from tests.harness import (
    Envoy,
    Upstream,
    envoy_config,
    fallback_filter,
    log_filter,
    record_access_log,
    static_cluster,
    wasm_filter,
)
from tests.harness.config import dist_module
from tests.harness.envoy import REPO_ROOT, interrupt_on_signals

SAMPLE_INTERVAL_S = 5.0
CLIENT_TIMEOUT_S = 5.0
WARMUP_FRACTION = 0.2
MAX_RSS_GROWTH_PCT = 5.0
PHASES = [("ok", {}), ("status", {"code": 503}), ("ok", {}), ("hang", {})]
RECOMMENDATION_URLS = 3000
ITEM_URLS = 2000
AUTHORITIES = 1500
PER_HOST_MAX_KEYS = 256
STAT_REGEX = r"^wasmcustom\.breakwater\.(fallback\.|circuit_breaker\.)"


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 10m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def plugin_config(name: str) -> dict:
    document = yaml.safe_load((REPO_ROOT / "istio" / "base" / f"{name}.yaml").read_text())
    return document["spec"]["pluginConfig"]


def filter_configs(popular_cluster: str) -> tuple[dict, dict, dict]:
    """(log enrichment, fallback, breaker) configurations from istio/base, adapted."""
    log = plugin_config("log-enrichment")

    fallback = plugin_config("fallback")
    for rule in fallback["rules"]:
        rule["match"].pop("cluster", None)  # every GET here goes to our one cluster
        for source in rule["serve"]:
            if "service" in source:
                source["service"]["cluster"] = popular_cluster
                source["service"]["authority"] = "popular-cache"

    breaker = plugin_config("circuit-breaker")
    recommendations = breaker["breakers"][0]
    recommendations["match"] = {"path_prefix": "/recommendations"}
    per_host = json.loads(json.dumps(recommendations))  # same policy, split by authority
    per_host.update(
        name="per-host",
        match={"path_prefix": "/items"},
        split_by="authority",
        max_keys=PER_HOST_MAX_KEYS,
    )
    per_host.pop("response", None)
    breaker["breakers"].append(per_host)
    return log, fallback, breaker


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Load:
    """Client threads sharing one schedule of `rate` requests/s; kept-alive connections."""

    def __init__(self, port: int, rate: float, threads: int, seed: int = 1):
        self.port = port
        self.rate = rate
        self.threads_n = threads
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.scheduled = 0
        self.started_at = 0.0
        self.sent = 0
        self.answered = 0
        self.stuck = 0  # client timeout: no answer within CLIENT_TIMEOUT_S
        self.errors = 0  # connection closed / reset without an answer
        self.error_samples: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.max_latency_s = 0.0
        self.seed = seed
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started_at = time.monotonic()
        for i in range(self.threads_n):
            t = threading.Thread(target=self._run, args=(i,), name=f"soak-client-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=CLIENT_TIMEOUT_S + 5)

    def _next_slot(self) -> float:
        with self.lock:
            slot = self.started_at + self.scheduled / self.rate
            self.scheduled += 1
            return slot

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        conn: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            delay = self._next_slot() - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            if rng.random() < 0.5:
                path, host = f"/recommendations/{rng.randrange(RECOMMENDATION_URLS)}", "shop.example"
            else:
                path, host = f"/items/{rng.randrange(ITEM_URLS)}", f"h{rng.randrange(AUTHORITIES)}.example"
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT_S)
            started = time.monotonic()
            with self.lock:
                self.sent += 1
            try:
                conn.request("GET", path, headers={"Host": host, "User-Agent": "breakwater-soak"})
                response = conn.getresponse()
                response.read()
            except (socket.timeout, TimeoutError) as error:
                self._failed("stuck", f"{path} {host}: {error!r}")
                conn.close()
                conn = None
                continue
            except (OSError, http.client.HTTPException) as error:
                self._failed("error", f"{path} {host}: {error!r}")
                conn.close()
                conn = None
                continue
            elapsed = time.monotonic() - started
            with self.lock:
                self.answered += 1
                self.statuses[response.status] += 1
                self.fallbacks[response.getheader("x-breakwater-fallback") or "-"] += 1
                self.max_latency_s = max(self.max_latency_s, elapsed)
            if response.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _failed(self, kind: str, detail: str) -> None:
        with self.lock:
            if kind == "stuck":
                self.stuck += 1
            else:
                self.errors += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{kind}: {detail}")

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "sent": self.sent,
                "answered": self.answered,
                "stuck": self.stuck,
                "errors": self.errors,
            }


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def plot(samples: list[dict], bounds: dict, warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(t, [s["rss_kb"] / 1024 for s in samples], color="tab:blue", label="Envoy RSS")
    top.axvline(warmup_s / 60, color="grey", linestyle=":", label="end of warm-up")
    top.set_ylabel("RSS (MiB)")
    top.legend(loc="lower right")
    top.set_title("breakwater soak: Envoy (2 workers), log enrichment -> fallback -> breaker")
    bottom.plot(t, [s["cache_entries"] for s in samples], color="tab:green", label="fallback cache.entries")
    bottom.axhline(bounds["cache_entries"], color="tab:green", linestyle="--", linewidth=0.8,
                   label=f"max_entries {bounds['cache_entries']}")
    bottom.plot(t, [s["keys_tracked"] for s in samples], color="tab:red", label="per-host keys_tracked")
    bottom.axhline(bounds["keys_tracked"], color="tab:red", linestyle="--", linewidth=0.8,
                   label=f"max_keys {bounds['keys_tracked']}")
    bottom.set_ylabel("entries / keys")
    bottom.set_xlabel("minutes")
    # Shade the failing phases.
    for s, nxt in zip(samples, samples[1:]):
        if s["mode"] != "ok":
            color = "tab:orange" if s["mode"] == "status" else "tab:purple"
            for ax in (top, bottom):
                ax.axvspan(s["t"] / 60, nxt["t"] / 60, color=color, alpha=0.08, linewidth=0)
    bottom.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("10m"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=300, help="requests per second (default 300)")
    parser.add_argument("--clients", type=int, default=64, help="client threads (default 64)")
    parser.add_argument("--phase", type=parse_duration, default=None,
                        help="seconds per upstream mode (default 20, shorter for runs under 80 s so "
                             "that every mode comes at least once)")
    args = parser.parse_args(argv)
    if args.phase is None:
        args.phase = min(20.0, args.duration / len(PHASES))
    interrupt_on_signals()
    args.out.mkdir(parents=True, exist_ok=True)

    with Upstream() as upstream:
        log, fallback, breaker = filter_configs("popular-cache")
        bounds = {
            "cache_entries": fallback["cache"]["max_entries"],
            "cache_bytes": fallback["cache"]["max_bytes"],
            "keys_tracked": PER_HOST_MAX_KEYS,
        }
        config = envoy_config(
            upstream.port,
            http_filters=[
                log_filter(log),
                fallback_filter(fallback["rules"], fallback["cache"]),
                wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), breaker),
            ],
            route_timeout="1s",
            extra_clusters=[static_cluster("popular-cache", upstream.port)],
            access_logs=[record_access_log("/dev/null")],
        )
        envoy = Envoy(config, concurrency=2, component_log_level="wasm:warn")
        envoy.start()
        try:
            result = soak(envoy, upstream, args, bounds)
        finally:
            envoy.stop()
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    plot(result["samples"], bounds, result["summary"]["warmup_s"], args.out / "soak.svg")
    summary = result["summary"]
    print(json.dumps(summary, indent=2))
    for failure in result["failures"]:
        print(f"FAIL: {failure}", file=sys.stderr)
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.svg'}")
    return 1 if result["failures"] else 0


def soak(envoy: Envoy, upstream: Upstream, args, bounds: dict) -> dict:
    pid = envoy.process.pid
    load = Load(envoy.port, args.rate, args.clients)
    samples: list[dict] = []
    phase_index = 0
    upstream.set_mode(PHASES[0][0], **PHASES[0][1])
    started = time.monotonic()
    next_phase = started + args.phase
    next_sample = started
    end = started + args.duration
    load.start()
    try:
        while True:
            now = time.monotonic()
            if now >= next_sample:
                stats = envoy.stats(STAT_REGEX)
                samples.append({
                    "t": round(now - started, 2),
                    "mode": PHASES[phase_index % len(PHASES)][0],
                    "rss_kb": rss_kb(pid),
                    "cache_entries": stats.get("wasmcustom.breakwater.fallback.cache.entries", 0),
                    "cache_bytes": stats.get("wasmcustom.breakwater.fallback.cache.bytes", 0),
                    "keys_tracked": stats.get("wasmcustom.breakwater.circuit_breaker.per-host.keys_tracked", 0),
                    "keys_open": stats.get("wasmcustom.breakwater.circuit_breaker.per-host.keys_open", 0),
                    **load.snapshot(),
                })
                next_sample += SAMPLE_INTERVAL_S
            if now >= end:
                break
            if now >= next_phase:
                phase_index += 1
                name, params = PHASES[phase_index % len(PHASES)]
                upstream.set_mode(name, **params)
                next_phase += args.phase
            time.sleep(max(0.0, min(next_sample, next_phase, end) - time.monotonic()))
    finally:
        load.finish()
        upstream.set_mode("ok")
    elapsed = time.monotonic() - started
    # Let the last calls (hanging ones end at the 1 s route timeout) finish, then read the stats.
    time.sleep(1.5)
    final_stats = envoy.stats(STAT_REGEX)
    final = load.snapshot()

    warmup_s = WARMUP_FRACTION * elapsed
    after = [s for s in samples if s["t"] >= warmup_s]
    failures = []
    rss_start, rss_end = after[0]["rss_kb"], after[-1]["rss_kb"]
    rss_max = max(s["rss_kb"] for s in after)
    growth_pct = 100 * (rss_end - rss_start) / rss_start
    slope = slope_per_min([(s["t"], s["rss_kb"]) for s in after])
    if growth_pct > MAX_RSS_GROWTH_PCT:
        failures.append(f"RSS grew {growth_pct:.1f}% after warm-up ({rss_start} -> {rss_end} kB), "
                        f"over {MAX_RSS_GROWTH_PCT}%")
    peaks = {k: max(s[k] for s in samples) for k in bounds}
    for key, bound in bounds.items():
        if peaks[key] > bound:
            failures.append(f"{key} reached {peaks[key]}, over its bound {bound}")
    for key in ("cache_entries", "keys_tracked"):
        if peaks[key] < bounds[key]:
            failures.append(f"{key} peaked at {peaks[key]}, never reaching its bound {bounds[key]}: "
                            "the bound was not exercised")
    if final["stuck"]:
        failures.append(f"{final['stuck']} requests got no answer within {CLIENT_TIMEOUT_S}s")
    if final["errors"]:
        failures.append(f"{final['errors']} requests ended with a connection error and no answer")
    if final["sent"] != final["answered"] + final["stuck"] + final["errors"]:
        failures.append(f"request accounting does not add up: {final}")

    summary = {
        "duration_s": round(elapsed, 1),
        "warmup_s": round(warmup_s, 1),
        "requests": final["sent"],
        "answered": final["answered"],
        "requests_per_s": round(final["sent"] / elapsed, 1),
        "stuck": final["stuck"],
        "connection_errors": final["errors"],
        "max_latency_s": round(load.max_latency_s, 3),
        "statuses": dict(sorted(load.statuses.items())),
        "fallback_served": dict(load.fallbacks),
        "rss_kb": {"first": samples[0]["rss_kb"], "after_warmup": rss_start, "end": rss_end,
                   "max_after_warmup": rss_max},
        "rss_growth_pct": round(growth_pct, 2),
        "rss_slope_kb_per_min": round(slope, 1),
        "footprint_peak": peaks,
        "footprint_end": {k: samples[-1][k] for k in bounds},
        "bounds": bounds,
        "phases": [f"{name}{params or ''}" for name, params in PHASES],
        "phase_s": args.phase,
        "stats": {k.removeprefix("wasmcustom.breakwater."): v for k, v in sorted(final_stats.items())
                  if any(w in k for w in ("transitions", "rejected", "split_overflow", "state_errors",
                                          "served", "triggered", "cache.", "keys_", "calls.", "exhausted",
                                          "service_failures"))},
        "error_samples": load.error_samples,
    }
    return {
        "settings": {"duration_s": args.duration, "rate": args.rate, "clients": args.clients,
                     "client_timeout_s": CLIENT_TIMEOUT_S, "sample_interval_s": SAMPLE_INTERVAL_S,
                     "max_rss_growth_pct": MAX_RSS_GROWTH_PCT, "envoy_workers": 2, "route_timeout": "1s"},
        "summary": summary,
        "failures": failures,
        "samples": samples,
    }


if __name__ == "__main__":
    sys.exit(main())
