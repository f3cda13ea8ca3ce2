"""Host calls per request: each filter on each of its paths, counted by the filters themselves.

The modules under dist/host-calls/ are the filters built with breakwater-envoy's
`count-host-calls` feature: every host call a filter makes adds one to the Envoy counter
`breakwater.host_calls.<kind>` (the counting itself excluded). Each path runs on its
own Envoy (`--concurrency 1`) in the configuration `make bench` measures, in front of the
controllable test upstream; after a few warm-up requests, `REQUESTS` sequential requests take
the path and

    host calls per request = Δ breakwater.host_calls.* / REQUESTS

(by kind, and in all). Calls a worker makes outside any request while the requests run (the
breaker's tick) count too: they are part of what the requests cost.

Host calls, not the filters' Rust, are most of their cost (bench/README.md): this is the count
to keep down, and the list bench/variants.py's floor filters make.

    python -m bench.host_calls            # the table
    python -m bench.host_calls --json F   # also results.json's `host_calls` shape, to F
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.variants import (
    FAIL_PATH,
    HEADERS,
    LEAN_PATH,
    PII_HEADERS,
    PII_PATH,
    TYPICAL_PATH,
    UPSTREAM_BODY,
    breaker_config,
    fallback_config,
    log_config,
    log_lean_config,
)
from tests.harness import Envoy, Upstream, request
from tests.harness.config import ROUTER_FILTER, socket_address, static_cluster, wasm_filter

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULES = REPO_ROOT / "dist" / "host-calls"
REQUESTS = 50
WARM_UP = 5
COUNTERS = "wasmcustom.breakwater.host_calls."


def counting(name: str, config: dict) -> dict:
    module = MODULES / f"{name.replace('-', '_')}.wasm"
    if not module.exists():
        raise SystemExit(f"{module} is missing: `make dist/host-calls/.built` builds the counting modules")
    return wasm_filter(name, str(module), config)


def breaker(config: dict | None = None) -> dict:
    return counting("circuit-breaker", config or breaker_config())


def breaker_without_watching() -> dict:
    config = breaker_config()
    config["breakers"][0]["failure"].pop("hang_after", None)
    config["breakers"][0]["open"]["release_in_flight"] = False
    return breaker(config)


def breaker_never_tripping() -> dict:
    """Counts failures without ever opening: the failing path, call after call."""
    config = breaker_config()
    config["breakers"][0]["trip"] = {"consecutive_failures": 1_000_000}
    return breaker(config)


def fallback(serve: tuple[str, ...] = ("stale", "static")) -> dict:
    return counting("fallback", fallback_config(serve))


def log(rate: float = 1.0, lean: bool = False) -> dict:
    config = log_lean_config() if lean else log_config()
    config["sampling"]["rate"] = rate
    return counting("log-enrichment", config)


@dataclass
class Case:
    filter: str
    path: str  # the path's name
    filters: Callable[[], list[dict]]
    mode: tuple[str, dict]  # the upstream's mode for the counted requests
    # Requests (and upstream modes) before the counted ones, e.g. to store a response or trip
    # the breaker: [(mode, params, requests)].
    prepare: tuple[tuple[str, dict, int], ...] = ()
    url_path: str = TYPICAL_PATH
    headers: dict | None = None
    expect_status: int = 200


OK = ("ok", {"body": UPSTREAM_BODY})
FAILING = ("status", {"code": 503})

CASES = [
    Case("breaker", "healthy", lambda: [breaker()], OK),
    Case("breaker", "healthy, without hang_after and release", lambda: [breaker_without_watching()], OK),
    Case("breaker", "failing (upstream 503, not tripping)", lambda: [breaker_never_tripping()], FAILING,
         expect_status=503),
    Case("breaker", "open (rejecting)", lambda: [breaker(breaker_config(open_duration="1h"))], FAILING,
         prepare=(("status", {"code": 503}, 5),), expect_status=503),
    Case("fallback", "healthy (stale source keeps the response)", lambda: [fallback()], OK),
    Case("fallback", "upstream 503, static answer", lambda: [fallback(("static",))], FAILING),
    Case("fallback", "upstream 503, stale copy served", lambda: [fallback()], FAILING,
         prepare=(("ok", {"body": UPSTREAM_BODY}, 1),)),
    Case("log", "typical (every record kept)", lambda: [log()], OK),
    Case("log", "personal data to redact", lambda: [log()], OK, url_path=PII_PATH, headers=PII_HEADERS),
    Case("log", "sampled out (rate 0, a 200)", lambda: [log(0.0)], OK),
    Case("log", "kept outside the rate (rate 0, a 503)", lambda: [log(0.0)], FAILING, expect_status=503),
    Case("log", LEAN_PATH, lambda: [log(lean=True)], OK),
    Case("chain", "healthy (log → fallback → breaker)", lambda: [log(), fallback(), breaker()], OK),
    Case("chain", f"healthy, {LEAN_PATH}", lambda: [log(lean=True), fallback(), breaker()], OK),
]  # fmt: skip


def envoy_config(filters: list[dict], upstream_port: int) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "host_calls",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "2s"}}]}]},
        "http_filters": [*filters, ROUTER_FILTER],
    }  # fmt: skip
    return {
        "admin": {"address": socket_address(0)},
        "static_resources": {
            "listeners": [{"name": "host_calls", "address": socket_address(0), "filter_chains": [
                {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}],
            "clusters": [static_cluster("upstream", upstream_port)],
        },
    }  # fmt: skip


def counters(envoy: Envoy) -> dict[str, int]:
    return {k.removeprefix(COUNTERS): v for k, v in envoy.stats("breakwater.host_calls").items() if k.startswith(COUNTERS)}


def count(case: Case) -> dict[str, float]:
    """Host calls per request by kind."""
    with Upstream() as upstream:
        envoy = Envoy(envoy_config(case.filters(), upstream.port), concurrency=1, log_level="warning",
                      component_log_level=None).start()  # fmt: skip
        try:
            url = envoy.url(case.url_path)
            headers = dict(case.headers or HEADERS)
            for mode, params, n in case.prepare:
                upstream.set_mode(mode, **params)
                for _ in range(n):
                    request(url, headers=headers)
            upstream.set_mode(case.mode[0], **case.mode[1])
            for _ in range(WARM_UP):
                request(url, headers=headers)
            before = counters(envoy)
            for _ in range(REQUESTS):
                response = request(url, headers=headers)
                if response.status != case.expect_status:
                    raise SystemExit(f"{case.filter}, {case.path}: status {response.status}, expected {case.expect_status}")
            after = counters(envoy)
            per_request = {k: (v - before.get(k, 0)) / REQUESTS for k, v in sorted(after.items())}
            return {k: v for k, v in per_request.items() if v}
        finally:
            envoy.stop()


def run() -> list[dict]:
    rows = []
    for case in CASES:
        by_kind = count(case)
        rows.append({"filter": case.filter, "path": case.path, "host_calls": sum(by_kind.values()), "by_kind": by_kind})
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| filter | path | host calls per request | by kind |", "|---|---|---|---|"]
    for r in rows:
        kinds = ", ".join(f"{k} {v:g}" for k, v in sorted(r.get("by_kind", {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r['filter']} | {r['path']} | {r['host_calls']:.4g} | {kinds} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.host_calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = run()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
