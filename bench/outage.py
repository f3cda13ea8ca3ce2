"""The outage scenario: the upstream starts hanging mid-run, then heals.

Three Envoys (`--concurrency 1`, CPU 0, route timeout 1 s) run side by side, each in front of
its own upstream, each under the same open-loop load from oha: without the breaker, with it,
and with the breaker and the fallback (the `istio/base` configurations). All three upstreams
start hanging at the same moment and heal at the same moment. The client side (latency,
success) comes from oha's per-request records; the breaker's side (when it opened, what reached
the upstream while open, when it closed again) from Envoy's access log.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from bench import load
from bench.variants import breaker, breaker_config, fallback, listener_config
from tests.harness import Envoy, Upstream
from tests.harness.config import dist_module, static_cluster, wasm_filter
from tests.harness.contract import access_log_field

RATE = 100  # requests per second, well below every knee
CONNECTIONS = 300  # enough for every request hanging for the 1 s timeout

ACCESS_LOG = {
    "start": "%START_TIME(%s.%3f)%", "duration_ms": "%DURATION%", "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%", "upstream": "%UPSTREAM_HOST%",
    "decision": access_log_field("decision"), "state": access_log_field("state"),
}  # fmt: skip
def breaker_without_hang_detection() -> dict:
    config = breaker_config()
    config["breakers"][0]["failure"].pop("hang_after", None)
    return wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), config)


SCENARIOS = {
    "no breaker": lambda: [],
    "breaker without hang_after": lambda: [breaker_without_hang_detection()],
    "breaker": lambda: [breaker()],
    "breaker + fallback": lambda: [fallback(), breaker()],
}


def envoy_config(filters: list[dict], upstream_port: int, log_path: Path) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "1s"}}
    access_log = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(log_path),
            "log_format": {"json_format": ACCESS_LOG},
        },
    }
    return listener_config("bench", [route], filters, [access_log], [static_cluster("upstream", upstream_port)])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(tmp: Path, quick: bool) -> dict:
    healthy, hang, healed = (3, 12, 12) if quick else (5, 60, 30)
    total = healthy + hang + healed
    upstreams = {name: Upstream().start() for name in SCENARIOS}
    envoys: dict[str, Envoy] = {}
    try:
        for name, filters in SCENARIOS.items():
            upstreams[name].set_mode("ok", body='["rec-1","rec-2","rec-3"]')
            config = envoy_config(filters(), upstreams[name].port, tmp / f"outage-{len(envoys)}.log")
            envoys[name] = Envoy(config, concurrency=1, cpus=load.ENVOY_CPU, log_level="warning",
                                 component_log_level=None).start()  # fmt: skip
        results: dict[str, load.Latency] = {}
        dbs = {name: tmp / f"outage-{i}.sqlite" for i, name in enumerate(SCENARIOS)}
        threads = [
            threading.Thread(target=lambda n=name: results.__setitem__(n, load.oha_fixed_rate(
                envoys[n].url("/recommendations"), {}, RATE, total, CONNECTIONS, db=dbs[n])))
            for name in SCENARIOS
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(healthy)
        hang_at = time.time()
        for up in upstreams.values():
            up.set_mode("hang")
        counts_at_hang = {name: up.count() for name, up in upstreams.items()}
        time.sleep(hang)
        heal_at = time.time()
        for up in upstreams.values():
            up.set_mode("ok", body='["rec-1","rec-2","rec-3"]')
        counts_at_heal = {name: up.count() for name, up in upstreams.items()}
        for thread in threads:
            thread.join()
        time.sleep(0.3)  # the last access-log flush
        out = {
            "phases_seconds": {"healthy": healthy, "hanging": hang, "healed": healed},
            "rate_rps": RATE, "route_timeout_s": 1,
            "scenarios": {},
        }  # fmt: skip
        for i, name in enumerate(SCENARIOS):
            requests = load.oha_requests(dbs[name])
            entries = [json.loads(line) for line in (tmp / f"outage-{i}.log").read_text().splitlines() if line.strip()]
            out["scenarios"][name] = summarize(requests, entries, hang_at, heal_at,
                                               counts_at_heal[name] - counts_at_hang[name])  # fmt: skip
        return out
    finally:
        for envoy in envoys.values():
            envoy.stop()
        for up in upstreams.values():
            up.stop()


def summarize(requests, entries, hang_at: float, heal_at: float, upstream_during_hang: int) -> dict:
    """Client-side figures for the hanging period, and the breaker's timeline."""
    # oha's times count from its own start, which is some time after this script launched it;
    # Envoy's access log has wall-clock times. Its first request ties the two together.
    t0 = min(float(e["start"]) for e in entries) - min(s for s, _, _ in requests)
    hang_rel, heal_rel = hang_at - t0, heal_at - t0
    during = [(s, d, status) for s, d, status in requests if hang_rel <= s < heal_rel]
    latencies = [d * 1000 for _, d, _ in during]
    summary = {
        "requests_during_hang": len(during),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "waited_timeout": sum(1 for latency in latencies if latency >= 900),
        "success_rate": sum(1 for *_, status in during if 200 <= status < 300) / max(len(during), 1),
        "upstream_requests_during_hang": upstream_during_hang,
        "timeline": timeline(requests, hang_rel),
    }
    opened = [e for e in entries if e["decision"] == "rejected" and float(e["start"]) >= hang_at]
    if opened:
        first_reject = min(float(e["start"]) for e in opened)
        before_open = [e for e in entries if hang_at <= float(e["start"]) < first_reject]
        summary["time_to_open_ms"] = round((first_reject - hang_at) * 1000)
        summary["requests_before_open"] = len(before_open)
        # While open, only probes may reach the upstream.
        after = [e for e in entries if first_reject <= float(e["start"]) < heal_at and e["upstream"] not in ("-", None)]
        summary["upstream_requests_while_open"] = {
            "probes": sum(1 for e in after if e["decision"] == "probe"),
            "other": sum(1 for e in after if e["decision"] != "probe"),
        }
        closed_again = [float(e["start"]) for e in entries
                        if float(e["start"]) >= heal_at and e["decision"] == "passed" and e["state"] == "closed"]  # fmt: skip
        summary["recovery_after_heal_ms"] = round((min(closed_again) - heal_at) * 1000) if closed_again else None
        summary["p99_after_open_ms"] = percentile(
            [d * 1000 for s, d, _ in during if s >= first_reject - t0], 99
        )
    return summary


BUCKET_SECONDS = 0.5


def timeline(requests, hang_rel: float) -> list[list[float]]:
    """Latency over time in 0.5 s buckets of request start (seconds since the hang began):
    [start, requests, p50 ms, p99 ms, max ms, share of 2xx]."""
    buckets: dict[int, list[tuple[float, int]]] = {}
    for start, duration, status in requests:
        buckets.setdefault(int((start - hang_rel) // BUCKET_SECONDS), []).append((duration * 1000, status))
    return [
        [round(k * BUCKET_SECONDS, 2), len(b), round(percentile([d for d, _ in b], 50), 3),
         round(percentile([d for d, _ in b], 99), 3), round(max(d for d, _ in b), 3),
         round(sum(1 for _, st in b if 200 <= st < 300) / len(b), 3)]
        for k, b in sorted(buckets.items())
    ]  # fmt: skip
