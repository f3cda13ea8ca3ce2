"""`make bench`: every variant side by side (with the floors: only the host calls a filter
makes), the outage scenario and its short version (40 GETs/s for 12 s, the upstream hanging
throughout), gRPC unary calls (bench/grpc_unary.py), host calls per request
(bench/host_calls.py), instruction counts; writes bench/results.json, bench/RESULTS.md and
bench/plots/*.svg. `QUICK=1` for a short run.

Method (bench/README.md has the details): Envoy under test runs with `--concurrency 1`
pinned to CPU 0; the upstream (an Envoy direct_response listener), the load generators and this
script share CPU 1. All variants are started at once and measured interleaved, round after
round; ratios are taken within a round, then the median (and range) over rounds is reported.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import grpc_unary, host_calls, load, outage, report
from bench.variants import VARIANTS, Variant, upstream_config, variant_config
from tests.harness import Envoy, request
from tests.harness.envoy import interrupt_on_signals

QUICK = os.environ.get("QUICK", "") not in ("", "0")
ROUNDS = 1 if QUICK else 3
THROUGHPUT_SECONDS = 2 if QUICK else 4
LATENCY_SECONDS = 2 if QUICK else 5
CONNECTIONS = 16
BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    envoy_version = subprocess.run([os.environ.get("ENVOY", "envoy"), "--version"], capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "envoy": envoy_version.split("version:", 1)[-1].strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": QUICK,
        "commit": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO_ROOT).stdout.strip(),
    }


def check(variant: Variant, envoy: Envoy) -> None:
    """Each variant must do its work, or its numbers mean nothing."""
    response = request(envoy.url(variant.path), headers=variant.headers)
    if response.status != variant.expect_status:
        raise SystemExit(f"{variant.name}: status {response.status}, expected {variant.expect_status}\n{response.text}")
    if variant.name in ("fallback-static", "custom-response") and response.text != '["bestseller-1","bestseller-2"]':
        raise SystemExit(f"{variant.name}: expected the static fallback, got {response.text}")
    if variant.name == "breaker-open" and response.headers.get("x-breakwater-breaker") != "recommendations":
        raise SystemExit(f"breaker-open: the breaker did not answer: {response.headers}")


def work_done(variant: Variant, envoy: Envoy, completed: int) -> dict:
    """After the runs, the filters' own counters prove they ran on the measured requests."""
    # /stats shows custom metrics with Envoy's `wasmcustom.` prefix.
    stats = {k.removeprefix("wasmcustom."): v for k, v in envoy.stats("breakwater").items()}
    counters = {
        "breaker": ("breakwater.circuit_breaker.recommendations.calls.success", completed),
        "fallback": ("breakwater.fallback.recommendations.cache.stores", 1),
        "log": ("breakwater.log.records", completed),
        "log-pii": ("breakwater.log.records", completed),
        "chain": ("breakwater.log.records", completed),
        "log-lean": ("breakwater.log.records", completed),
        "chain-lean": ("breakwater.log.records", completed),
        "breaker-open": ("breakwater.circuit_breaker.recommendations.rejected", completed),
        "fallback-static": ("breakwater.fallback.recommendations.served.static", completed),
        "floor-breaker": ("breakwater.floor.calls", completed),
        "floor-log": ("breakwater.floor.records", completed),
        "floor-chain": ("breakwater.floor.records", completed),
        "floor-log-lean": ("breakwater.floor.records", completed),
        "floor-chain-lean": ("breakwater.floor.records", completed),
    }
    if variant.name not in counters:
        return {}
    name, at_least = counters[variant.name]
    value = stats.get(name, 0)
    if value < at_least * 0.99:
        raise SystemExit(f"{variant.name}: {name} = {value}, expected at least {at_least}: the filter did not do its work")
    if variant.name == "log-pii":
        redactions = sum(v for k, v in stats.items() if k.startswith("breakwater.log.redactions."))
        if redactions < 5 * completed * 0.99:
            raise SystemExit(f"log-pii: {redactions} redactions for {completed} requests, expected 5 each")
    return {name: value}


def module_bytes() -> dict[str, int]:
    """The measured modules: dist/*.wasm and the bench's and tests' own (not dist/profiles/)."""
    dist = REPO_ROOT / "dist"
    files = [*dist.glob("*.wasm"), *dist.glob("bench/*.wasm"), *dist.glob("test/*.wasm")]
    return {p.name: p.stat().st_size for p in sorted(files)}


def completed_requests(envoy: Envoy) -> int:
    return envoy.stat("http.bench.downstream_rq_completed")


def main() -> int:
    interrupt_on_signals()
    load.require_tools()
    os.sched_setaffinity(0, {int(load.LOAD_CPU)})  # this script, its upstream threads, the tools
    started = time.monotonic()
    info = machine()
    print(f"breakwater bench ({'QUICK' if QUICK else 'full'}): {info['cpus']} CPUs, {info['cpu_model']}, Envoy {info['envoy']}", flush=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"breakwater-bench-{os.getpid()}"
    tmp.mkdir(parents=True)

    throughput: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    cpu_us: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    latency: dict[str, list[load.Latency]] = {v.name: [] for v in VARIANTS}
    envoys: dict[str, Envoy] = {}
    upstream = Envoy(upstream_config(), concurrency=1, cpus=load.LOAD_CPU, log_level="warning", component_log_level=None)
    try:
        upstream.start()
        for v in VARIANTS:
            config = variant_config(v, upstream.port, "/dev/null")
            envoys[v.name] = Envoy(config, concurrency=1, cpus=load.ENVOY_CPU, log_level="warning",
                                   component_log_level=None).start()  # fmt: skip
            if v.prepare:
                v.prepare(envoys[v.name].url)
            check(v, envoys[v.name])
        for v in VARIANTS:  # warm up V8 and the connections
            load.wrk(envoys[v.name].url(v.path), v.headers, 1, CONNECTIONS, v.expect_status)
        before = {name: completed_requests(e) for name, e in envoys.items()}
        rate = None
        for round_ in range(ROUNDS):
            for v in VARIANTS:
                envoy = envoys[v.name]
                cpu0, done0 = load.cpu_seconds(envoy.process.pid), completed_requests(envoy)
                throughput[v.name].append(
                    load.wrk(envoy.url(v.path), v.headers, THROUGHPUT_SECONDS, CONNECTIONS, v.expect_status)
                )
                done = completed_requests(envoy) - done0
                cpu_us[v.name].append((load.cpu_seconds(envoy.process.pid) - cpu0) / max(done, 1) * 1e6)
            if rate is None:
                # One rate for every variant, below every knee: half the slowest maximum.
                rate = round(0.5 * min(t[0] for t in throughput.values()))
            for v in VARIANTS:
                envoy = envoys[v.name]
                latency[v.name].append(load.oha_fixed_rate(envoy.url(v.path), v.headers, rate, LATENCY_SECONDS, CONNECTIONS))
            print(f"round {round_ + 1}/{ROUNDS} ({time.monotonic() - started:.0f} s): "
                  + "  ".join(f"{n} {t[-1]:.0f}/s" for n, t in throughput.items()), flush=True)  # fmt: skip
        counters = {}
        memory = {}
        for v in VARIANTS:
            envoy = envoys[v.name]
            counters[v.name] = work_done(v, envoy, completed_requests(envoy) - before[v.name])
            memory[v.name] = load.rss_bytes(envoy.process.pid)
    finally:
        for envoy in envoys.values():
            envoy.stop()
        upstream.stop()

    print(f"steady-state variants done in {time.monotonic() - started:.0f} s; outage scenario…", flush=True)
    outages = outage.run(tmp, quick=QUICK)
    print(f"outage done ({time.monotonic() - started:.0f} s); short outage…", flush=True)
    short_tmp = tmp / "outage-short"  # its own access logs and oha databases: both would append to the first run's
    short_tmp.mkdir()
    outages_short = outage.run(short_tmp, quick=QUICK, short=True)
    print(f"short outage done ({time.monotonic() - started:.0f} s); gRPC unary…", flush=True)
    grpc = grpc_unary.run(quick=QUICK)
    print(f"gRPC done ({time.monotonic() - started:.0f} s); host calls…", flush=True)
    calls = host_calls.run()
    print(f"host calls done ({time.monotonic() - started:.0f} s); instruction counts…", flush=True)
    instructions = subprocess.run([sys.executable, "-m", "bench.instructions", "--json"], capture_output=True, text=True, cwd=REPO_ROOT)
    results = {
        "machine": info,
        "method": {"rounds": ROUNDS, "throughput_seconds": THROUGHPUT_SECONDS, "latency_seconds": LATENCY_SECONDS,
                   "connections": CONNECTIONS, "latency_rate_rps": rate, "envoy_concurrency": 1,
                   "envoy_cpu": load.ENVOY_CPU, "load_cpu": load.LOAD_CPU},
        "variants": {
            v.name: {
                "group": v.group, "description": v.description,
                "throughput_rps": throughput[v.name], "envoy_cpu_us_per_request": cpu_us[v.name],
                "latency": [vars(l) for l in latency[v.name]], "rss_bytes": memory[v.name], "counters": counters[v.name],
            }
            for v in VARIANTS
        },
        "module_bytes": module_bytes(),
        "outage": outages,
        "outage_short": outages_short,
        "grpc": grpc,
        "host_calls": calls,
        "instructions": json.loads(instructions.stdout) if instructions.returncode in (0, 1) and instructions.stdout else
                        {"error": instructions.stderr[-2000:]},
        "duration_seconds": round(time.monotonic() - started),
    }  # fmt: skip
    report.write(results, BENCH)
    print(f"wrote bench/results.json, bench/RESULTS.md, bench/plots/ in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
