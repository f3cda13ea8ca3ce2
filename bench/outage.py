"""The outage scenario: the upstream starts hanging mid-run, then heals.

Several Envoys (`--concurrency 1`, CPU 0, route timeout 1 s) run side by side, each in front of
its own upstream, each under the same open-loop load from oha: without any protection, with
Envoy's native outlier detection on the upstream cluster (with the default panic threshold, and
with the panic threshold at 0), with the breaker without `hang_after`, with the breaker, with the
breaker and the fallback (the `istio/base` configurations), and with the breaker releasing the
calls in flight when it opens (`open.release_in_flight`, when the module knows the key). All
upstreams start hanging at the same moment and heal at the same moment. The client side
(latency, success) comes from oha's per-request records; the proxy's side (when it started to
fail fast, what reached the upstream meanwhile, when upstream answers came back) from Envoy's
access log.

`python -m bench.outage --short` runs the issue's short scenario on its own: 40 GETs/s for 12 s,
the upstream hanging the whole time (no healthy or healed phase), and prints the table; `make
bench` runs it too, after the long scenario (results.json key `outage_short`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from bench import load
from bench.variants import breaker_config, fallback, listener_config
from tests.harness import Envoy, Upstream
from tests.harness.config import dist_module, static_cluster, wasm_filter
from tests.harness.contract import access_log_field, split_parts
from tests.harness.envoy import EnvoyError, interrupt_on_signals

RATE = 100  # requests per second, well below every knee
SHORT_RATE = 40  # the short scenario's rate
CONNECTIONS = 300  # enough for every request hanging for the 1 s timeout
ROUTE_TIMEOUT_S = 1
# A request "waited out the route timeout" if it took at least this much less than the timeout
# (or was answered 504, Envoy's reply to a route timeout).
TIMEOUT_MARGIN_S = 0.1
UPSTREAM_BODY = '["rec-1","rec-2","rec-3"]'

ACCESS_LOG = {
    "start": "%START_TIME(%s.%3f)%", "duration_ms": "%DURATION%", "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%", "details": "%RESPONSE_CODE_DETAILS%", "upstream": "%UPSTREAM_HOST%",
    "circuit_breaker": access_log_field("circuit_breaker"), "fallback": access_log_field("fallback"),
}  # fmt: skip

# Envoy's native passive health check on the one-host upstream cluster. In the default mode
# (split_external_local_origin_errors false) the router reports a route timeout as a local-origin
# failure mapped to 504, which counts as a gateway failure (and as a 5xx: consecutive_5xx keeps
# its default of 5, so either ejects the host after 5 timeouts in a row).
OUTLIER_DETECTION = {
    "consecutive_gateway_failure": 5,
    "enforcing_consecutive_gateway_failure": 100,  # Envoy's default 0 detects but never ejects
    "interval": "1s",
    "base_ejection_time": "30s",
    "max_ejection_percent": 100,
}
NO_PANIC = {"common_lb_config": {"healthy_panic_threshold": {"value": 0}}}


def hang_after_ms() -> float | None:
    """The `istio/base` breaker's `failure.hang_after` in ms (its `release_after` too, by default)."""
    value = breaker_config()["breakers"][0]["failure"].get("hang_after")
    if value is None:
        return None
    for unit, factor in (("ms", 1), ("s", 1000), ("m", 60_000)):
        if value.endswith(unit):
            return float(value.removesuffix(unit)) * factor
    raise ValueError(f"hang_after: unexpected duration {value!r}")


def absent(value) -> bool:
    """An access-log field Envoy had no value for."""
    return value in (None, "", "-")


def breaker_filter(hang_after: bool = True, release: bool | None = None) -> dict:
    """The `istio/base` breaker; `release` sets `open.release_in_flight` (None: leaves it out, for
    modules that do not know the key)."""
    config = breaker_config()
    breaker = config["breakers"][0]
    if not hang_after:
        breaker["failure"].pop("hang_after", None)
    if release is not None:
        open_ = breaker.setdefault("open", {})
        open_["release_in_flight"] = release
        if not release:  # the filter refuses these without release_in_flight
            open_.pop("release_after", None)
            open_.pop("release_methods", None)
    return wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), config)


@functools.cache
def release_supported() -> bool:
    """Whether dist/circuit_breaker.wasm knows `open.release_in_flight`: an Envoy with the breaker
    configured with it either starts, or stops at once with the filter's refusal naming the key.
    Asking the module that is measured (not the CLI, which may have been built from other
    sources) keeps the answer true to the run; it costs one Envoy start."""
    config = listener_config("probe", [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                             [breaker_filter(release=False)], [], [])  # fmt: skip
    envoy = Envoy(config, concurrency=1, log_level="warning", component_log_level=None)
    try:
        envoy.start()
        return True
    except EnvoyError as error:
        if "unknown field `release_in_flight`" in str(error):
            return False
        raise
    finally:
        envoy.stop()


Scenario = tuple[Callable[[], list[dict]], dict]  # (HTTP filters, keys added to the upstream cluster)


def scenarios() -> dict[str, Scenario]:
    """The variants, in the order of the table. Once the module knows `open.release_in_flight`
    (default true), the breaker variants before the last set it to false, so they keep measuring
    what they measured before it existed."""
    release = False if release_supported() else None
    out: dict[str, Scenario] = {
        "no breaker": (lambda: [], {}),
        "outlier detection": (lambda: [], {"outlier_detection": OUTLIER_DETECTION}),
        "outlier detection, panic threshold 0": (lambda: [], {"outlier_detection": OUTLIER_DETECTION, **NO_PANIC}),
        "breaker without hang_after": (lambda: [breaker_filter(hang_after=False, release=release)], {}),
        "breaker": (lambda: [breaker_filter(release=release)], {}),
        "breaker + fallback": (lambda: [fallback(), breaker_filter(release=release)], {}),
    }
    if release_supported():
        out["breaker + fallback + release"] = (lambda: [fallback(), breaker_filter(release=True)], {})
    return out


def envoy_config(filters: list[dict], cluster_extra: dict, upstream_port: int, log_path: Path) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": f"{ROUTE_TIMEOUT_S}s"}}
    access_log = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(log_path),
            "log_format": {"json_format": ACCESS_LOG},
        },
    }
    cluster = {**static_cluster("upstream", upstream_port), **cluster_extra}
    return listener_config("bench", [route], filters, [access_log], [cluster])


def oha(url: str, rate: int, seconds: float, db: Path) -> None:
    """oha in open loop (GET) at `rate` for `seconds`, latency corrected for coordinated omission,
    each answered request recorded in `db`. `-w` waits for the requests still in flight at the
    deadline: oha would otherwise abort them and leave them out of the records (the short
    scenario ends while the upstream still hangs)."""
    command = [
        "taskset", "-c", load.LOAD_CPU, str(load.OHA), "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-w",
        "-q", str(rate), "--latency-correction", "-c", str(CONNECTIONS), "--db-url", str(db), url,
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def phases(quick: bool, short: bool) -> tuple[int, int, int, int]:
    """(healthy, hanging, healed) seconds, and the rate."""
    if short:
        return 0, 12, 0, SHORT_RATE
    return (3, 12, 12, RATE) if quick else (5, 60, 30, RATE)


def run(tmp: Path, quick: bool, short: bool = False) -> dict:
    healthy, hang, healed, rate = phases(quick, short)
    total = healthy + hang + healed
    variants = scenarios()
    upstreams = {name: Upstream().start() for name in variants}
    envoys: dict[str, Envoy] = {}
    try:
        for i, (name, (filters, cluster_extra)) in enumerate(variants.items()):
            if healthy:
                upstreams[name].set_mode("ok", body=UPSTREAM_BODY)
            else:
                upstreams[name].set_mode("hang")
            config = envoy_config(filters(), cluster_extra, upstreams[name].port, tmp / f"outage-{i}.log")
            envoys[name] = Envoy(config, concurrency=1, cpus=load.ENVOY_CPU, log_level="warning",
                                 component_log_level=None).start()  # fmt: skip
        dbs = {name: tmp / f"outage-{i}.sqlite" for i, name in enumerate(variants)}
        threads = [threading.Thread(target=oha, args=(envoys[n].url("/recommendations"), rate, total, dbs[n])) for n in variants]
        counts_at_hang = {name: up.count() for name, up in upstreams.items()}
        hang_at: float | None = None  # no healthy phase: the upstreams hang from each run's first request
        for thread in threads:
            thread.start()
        if healthy:
            time.sleep(healthy)
            hang_at = time.time()
            for up in upstreams.values():
                up.set_mode("hang")
            counts_at_hang = {name: up.count() for name, up in upstreams.items()}
        time.sleep(hang)
        if healed:
            heal_at = time.time()
            for up in upstreams.values():
                up.set_mode("ok", body=UPSTREAM_BODY)
            counts_at_heal = {name: up.count() for name, up in upstreams.items()}
        for thread in threads:
            thread.join()
        if not healed:  # the hang lasts until every request is answered; healed only to stop cleanly
            heal_at = time.time()
            counts_at_heal = {name: up.count() for name, up in upstreams.items()}
            for up in upstreams.values():
                up.set_mode("ok", body=UPSTREAM_BODY)
        ejections = {name: envoys[name].stats("outlier_detection.ejections_enforced_total")
                     for name, (_, extra) in variants.items() if "outlier_detection" in extra}  # fmt: skip
        time.sleep(0.3)  # the last access-log flush
        out = {
            "phases_seconds": {"healthy": healthy, "hanging": hang, "healed": healed},
            "rate_rps": rate, "route_timeout_s": ROUTE_TIMEOUT_S, "hang_after_ms": hang_after_ms(),
            "release_in_flight_supported": release_supported(),
            "scenarios": {},
        }  # fmt: skip
        hang_after = hang_after_ms()
        hang_after_s = hang_after / 1000 if hang_after is not None else None
        for i, name in enumerate(variants):
            requests = load.oha_requests(dbs[name])
            lines = (tmp / f"outage-{i}.log").read_text().splitlines()
            # decision, state and breaker; fallback_served, fallback_trigger and fallback_rule
            entries = [split_parts(json.loads(line)) for line in lines if line.strip()]
            summary = summarize(requests, entries, hang_at, heal_at, healed > 0, counts_at_heal[name] - counts_at_hang[name],
                                hang_after_s)
            if name in ejections:
                summary["outlier_ejections"] = sum(ejections[name].values())
            out["scenarios"][name] = summary
        return out
    finally:
        for envoy in envoys.values():
            envoy.stop()
        for up in upstreams.values():
            up.stop()


def upstream_2xx(entry: dict) -> bool:
    """A 2xx the upstream itself gave (not the fallback's replacement of a failure, nor a reply
    of a filter)."""
    return (200 <= int(entry["status"]) < 300 and not absent(entry["upstream"]) and absent(entry["flags"])
            and (absent(entry["fallback_served"]) or entry["fallback_served"] == "none"))  # fmt: skip


def summarize(requests, entries, hang_at: float | None, heal_at: float, healed: bool, upstream_during_hang: int,
              hang_after_s: float | None = None) -> dict:
    """Client-side figures for the hanging period, and the proxy's timeline. `hang_at` None: the
    upstream hung from the first request on."""
    if hang_at is None:
        hang_at = min(float(e["start"]) for e in entries)
    # oha's times count from its own start, which is some time after this script launched it;
    # Envoy's access log has wall-clock times. Its first request ties the two together.
    t0 = min(float(e["start"]) for e in entries) - min(s for s, _, _ in requests)
    hang_rel, heal_rel = hang_at - t0, heal_at - t0
    during = [(s, d, status) for s, d, status in requests if hang_rel <= s < heal_rel]
    latencies = [d * 1000 for _, d, _ in during]
    waited = sum(1 for _, d, status in during if d >= ROUTE_TIMEOUT_S - TIMEOUT_MARGIN_S or status == 504)
    summary = {
        "requests_during_hang": len(during),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "waited_timeout": waited,
        "waited_timeout_share": waited / max(len(during), 1),
        "success_rate": sum(1 for *_, status in during if 200 <= status < 300) / max(len(during), 1),
        "upstream_requests_during_hang": upstream_during_hang,
        "timeline": timeline(requests, hang_rel),
    }
    if hang_after_s is not None:
        # Requests that reached the upstream before the first of them could have been waiting for
        # hang_after: no detector that waits hang_after can keep these away, so this is the floor
        # of "reached the hanging upstream" for every variant with that hang_after.
        summary["upstream_requests_before_hang_after"] = sum(
            1 for e in entries if hang_at <= float(e["start"]) < hang_at + hang_after_s and not absent(e["upstream"]))
    if healed:
        # The first answer from the healed upstream that reached a client (a breaker's probe
        # counts; a stale copy the fallback served does not).
        answers = [float(e["start"]) + float(e["duration_ms"]) / 1000 for e in entries if upstream_2xx(e)]
        after = [t for t in answers if t >= heal_at]
        summary["first_upstream_2xx_after_heal_ms"] = round((min(after) - heal_at) * 1000) if after else None
    breaker = any(not absent(e["decision"]) for e in entries)
    if breaker:
        summary["released"] = sum(1 for e in entries if e["decision"] == "released")
    # Failing fast: the breaker's rejections, or Envoy's "no healthy upstream" (UH) once outlier
    # detection has ejected the only host and no panic routing sends traffic to it anyway.
    fast = [e for e in entries if float(e["start"]) >= hang_at
            and (e["decision"] == "rejected" or "UH" in str(e["flags"]).split(","))]  # fmt: skip
    if fast:
        first_fast = min(float(e["start"]) for e in fast)
        before_open = [e for e in entries if hang_at <= float(e["start"]) < first_fast]
        summary["time_to_open_ms"] = round((first_fast - hang_at) * 1000)
        summary["requests_before_open"] = len(before_open)
        # While open, only probes may reach the upstream. A probe that hangs is released like
        # any other call when its failure reopens the breaker, so it ends as "released".
        after = [e for e in entries if first_fast <= float(e["start"]) < heal_at and not absent(e["upstream"])]
        probes = sum(1 for e in after if e["decision"] in ("probe", "released"))
        summary["upstream_requests_while_open"] = {"probes": probes, "other": len(after) - probes}
        if breaker and healed:
            closed_again = [float(e["start"]) for e in entries
                            if float(e["start"]) >= heal_at and e["decision"] == "passed" and e["state"] == "closed"]  # fmt: skip
            summary["recovery_after_heal_ms"] = round((min(closed_again) - heal_at) * 1000) if closed_again else None
        summary["p99_after_open_ms"] = percentile([d * 1000 for s, d, _ in during if s >= first_fast - t0], 99)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--short", action="store_true", help="40 GETs/s for 12 s, the upstream hanging throughout")
    length.add_argument("--quick", action="store_true", help="QUICK=1's outage: 3 s healthy, 12 s hanging, 12 s healed")
    parser.add_argument("--json", type=Path, help="also write the results (results.json's `outage` or `outage_short` shape) here")
    args = parser.parse_args(argv)
    from bench import report

    interrupt_on_signals()
    missing = [tool for tool in ("taskset",) if not load.which(tool)] + ([str(load.OHA)] if not load.OHA.exists() else [])
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: `make bench-tools` installs oha; taskset is util-linux")
    os.sched_setaffinity(0, {int(load.LOAD_CPU)})  # this script, its upstream threads, oha
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"breakwater-outage-{os.getpid()}"
    tmp.mkdir(parents=True)
    results = run(tmp, quick=args.quick, short=args.short)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    key = "outage_short" if args.short else "outage"
    print("\n".join(report.outage_section({key: results}, key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
