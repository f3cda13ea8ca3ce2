"""Measures the fallback cache's memory per stored entry in a real Envoy.

Two fresh Envoys (2 workers) receive the same N requests for distinct URLs; in one the responses
are cacheable, in the other they carry `Cache-Control: no-store`. The difference of the Envoy
processes' resident memory, divided by the entries stored, is the memory one entry costs
(shared-data value, key, map node and allocator slack; the index adds 24 bytes).

    .venv/bin/python -m tests.measure_cache_memory [requests] [body bytes ...]
"""

from __future__ import annotations

import http.client
import sys
import time

from tests.harness import Envoy, Upstream, envoy_config, fallback_filter

CACHE = {"max_entries": 10000, "max_bytes": 268435456, "max_body_bytes": 65536, "min_store_interval": "0s"}
RULES = [{"name": "r", "serve": [{"stale": {"max_age": "10m"}}]}]


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def run(requests: int, body_bytes: int, cacheable: bool) -> tuple[int, int]:
    """(Envoy's resident bytes after the requests, entries in the cache)."""
    with Upstream() as upstream, Envoy(envoy_config(upstream.port, http_filters=[fallback_filter(RULES, CACHE)])) as envoy:
        params = {"body": "x" * body_bytes, **({} if cacheable else {"cache_control": "no-store"})}
        upstream.set_mode("ok", **params)
        connection = http.client.HTTPConnection("127.0.0.1", envoy.port)
        for i in range(requests):
            connection.request("GET", f"/item/{i}")
            connection.getresponse().read()
        time.sleep(0.3)
        entries = envoy.stats(r"fallback\.cache\.entries$").get("wasmcustom.breakwater.fallback.cache.entries", 0)
        return resident_bytes(envoy.process.pid), entries


def main(argv: list[str]) -> int:
    requests = int(argv[0]) if argv else 8000
    bodies = [int(b) for b in argv[1:]] or [100, 1000, 4000]
    for body in bodies:
        cached, entries = run(requests, body, cacheable=True)
        uncached, _ = run(requests, body, cacheable=False)
        per_entry = (cached - uncached) / max(entries, 1)
        print(f"body {body:6d} B: {entries} entries, {per_entry:7.0f} B of Envoy memory per entry")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
