"""`make bench-compare`: the same filters built several ways (release `opt-level` z, s and 3,
and optionally an earlier build given as BASELINE=<dir of .wasm files>), side by side in one
run. Placement as in `make bench` (bench/README.md): every Envoy `--concurrency 1` on CPU 0,
load on CPU 1, all started at once. Each measurement of a variant is paired with one of the
empty SDK filter just before it, and the ratio is taken within the pair, so that a change in
the shared machine's speed (other tenants) between variants does not enter the ratio; medians
and ranges over the rounds. Writes bench/results-compare.json and bench/COMPARE.md.

    python -m bench.compare --build z=dist/profiles/z --build s=dist/profiles/s ... [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench import load
from bench.run import CONNECTIONS, machine
from bench.variants import (
    HEADERS,
    TYPICAL_PATH,
    breaker_config,
    empty_filter,
    fallback_config,
    listener_config,
    log_config,
    record_log,
    upstream_config,
)
from tests.harness import Envoy, request
from tests.harness.config import static_cluster, wasm_filter
from tests.harness.envoy import interrupt_on_signals

BENCH = Path(__file__).resolve().parent
FILTERS = {
    # module file, root id, configuration, access log, the counter that proves the work
    "breaker": ("circuit_breaker.wasm", "circuit-breaker", breaker_config, None,
                "breakwater.circuit_breaker.recommendations.calls.success"),
    "fallback": ("fallback.wasm", "fallback", fallback_config, None, "breakwater.fallback.recommendations.cache.stores"),
    "log": ("log_enrichment.wasm", "log-enrichment", log_config, record_log, "breakwater.log.records"),
}  # fmt: skip


def config(filters: list[dict], access_log, upstream_port: int) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "1s"}}
    logs = [access_log("/dev/null")] if access_log else []
    return listener_config("bench", [route], filters, logs, [static_cluster("upstream", upstream_port)])


def variants(builds: dict[str, Path]) -> dict[str, tuple[list[dict], object, str | None]]:
    out: dict[str, tuple[list[dict], object, str | None]] = {"empty-wasm": ([empty_filter()], None, None)}
    for filter_name, (module, root_id, configure, access_log, counter) in FILTERS.items():
        for build, directory in builds.items():
            path = directory / module
            if not path.exists():
                raise SystemExit(f"{path} is missing")
            out[f"{filter_name}@{build}"] = ([wasm_filter(root_id, str(path), configure())], access_log, counter)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", action="append", required=True, help="NAME=DIR of .wasm modules")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=2)
    args = parser.parse_args()
    builds = {name: Path(directory) for name, directory in (b.split("=", 1) for b in args.build)}
    interrupt_on_signals()
    load.require_tools()
    os.sched_setaffinity(0, {int(load.LOAD_CPU)})
    started = time.monotonic()
    chosen = variants(builds)
    throughput: dict[str, list[float]] = {name: [] for name in chosen}
    cpu_us: dict[str, list[float]] = {name: [] for name in chosen}
    envoys: dict[str, Envoy] = {}
    upstream = Envoy(upstream_config(), concurrency=1, cpus=load.LOAD_CPU, log_level="warning", component_log_level=None)
    rss: dict[str, int] = {}
    counters: dict[str, int] = {}
    paired: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen if name != "empty-wasm"}
    try:
        upstream.start()
        for name, (filters, access_log, _) in chosen.items():
            envoys[name] = Envoy(config(filters, access_log, upstream.port), concurrency=1, cpus=load.ENVOY_CPU,
                                 log_level="warning", component_log_level=None).start()  # fmt: skip
            response = request(envoys[name].url(TYPICAL_PATH), headers=HEADERS)
            if response.status != 200:
                raise SystemExit(f"{name}: status {response.status}")
        for name, envoy in envoys.items():
            load.wrk(envoy.url(TYPICAL_PATH), HEADERS, 1, CONNECTIONS)

        def measure(name: str) -> tuple[float, float]:
            envoy = envoys[name]
            cpu0, done0 = load.cpu_seconds(envoy.process.pid), envoy.stat("http.bench.downstream_rq_completed")
            rps = load.wrk(envoy.url(TYPICAL_PATH), HEADERS, args.seconds, CONNECTIONS)
            done = envoy.stat("http.bench.downstream_rq_completed") - done0
            return rps, (load.cpu_seconds(envoy.process.pid) - cpu0) / max(done, 1) * 1e6

        for round_ in range(args.rounds):
            for name in envoys:
                if name == "empty-wasm":
                    continue
                empty_rps, empty_cpu = measure("empty-wasm")
                rps, cpu = measure(name)
                throughput["empty-wasm"].append(empty_rps)
                cpu_us["empty-wasm"].append(empty_cpu)
                throughput[name].append(rps)
                cpu_us[name].append(cpu)
                paired[name].append((rps / empty_rps, empty_cpu / cpu))
            print(f"round {round_ + 1}/{args.rounds} ({time.monotonic() - started:.0f} s)", flush=True)
        for name, envoy in envoys.items():
            rss[name] = load.rss_bytes(envoy.process.pid)
            counter = chosen[name][2]
            if counter:
                stats = {k.removeprefix("wasmcustom."): v for k, v in envoy.stats("breakwater").items()}
                counters[name] = stats.get(counter, 0)
                if counters[name] < 1:
                    raise SystemExit(f"{name}: {counter} is {counters[name]}: the filter did not work")
    finally:
        for envoy in envoys.values():
            envoy.stop()
        upstream.stop()

    results = {
        "machine": machine(),
        "method": {"rounds": args.rounds, "throughput_seconds": args.seconds, "connections": CONNECTIONS},
        "builds": {name: {p.name: p.stat().st_size for p in sorted(d.glob("*.wasm"))} for name, d in builds.items()},
        "variants": {
            name: {
                "throughput_rps": throughput[name], "envoy_cpu_us_per_request": cpu_us[name],
                # Within each pair: this one's throughput / the empty filter's, and the empty
                # filter's CPU per request / this one's.
                "throughput_vs_empty": [t for t, _ in paired.get(name, [])],
                "cpu_vs_empty": [c for _, c in paired.get(name, [])],
                "rss_bytes": rss[name], "work_counter": counters.get(name),
            }
            for name in chosen
        },
        "duration_seconds": round(time.monotonic() - started),
    }  # fmt: skip
    (BENCH / "results-compare.json").write_text(json.dumps(results, indent=2) + "\n")
    (BENCH / "COMPARE.md").write_text(report(results))
    print((BENCH / "COMPARE.md").read_text())
    return 0


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def report(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Builds side by side",
        "",
        f"`make bench-compare`, {m['date']}, commit {m['commit']}: {m['cpus']} CPUs ({m['cpu_model']}), "
        f"Envoy {m['envoy']}, {results['method']['rounds']} rounds of {results['method']['throughput_seconds']:g} s "
        "per variant, each measured right after the empty SDK filter: ratios within each pair, "
        "median (min–max) over the rounds.",
        "",
        "| variant | throughput × empty | CPU/request: empty ÷ this | µs/request | RSS MiB | module bytes |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in results["variants"].items():
        filter_name, _, build = name.partition("@")
        module = FILTERS.get(filter_name, ("",))[0]
        size = results["builds"].get(build, {}).get(module, "")
        throughput = "1" if name == "empty-wasm" else median_range(v["throughput_vs_empty"])
        cpu = "1" if name == "empty-wasm" else median_range(v["cpu_vs_empty"])
        lines.append(
            f"| {name} | {throughput} | {cpu} | {statistics.median(v['envoy_cpu_us_per_request']):.1f} "
            f"| {v['rss_bytes'] / 2**20:.1f} | {size} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
