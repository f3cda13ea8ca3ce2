"""What redaction costs per request, measured in a real Envoy (`make bench`).

Envoy runs with one worker; a keep-alive client sends the same typical request through variants
that differ only in the log-enrichment filter's work:

    bare          no filter, no access log
    enrich        the filter with every field but no detectors and no query parameters, and
                  the access log of its records
    enrich+fields the same, also writing each field as its own filter-state key
    redact        the same with all eight detectors and the default query parameters
    enrich+pii    enrich, on a request that carries personal data (5 values to redact)
    redact+pii    redact, on that request

The figure is Envoy's CPU time per request (all threads, from /proc/<pid>/task/*/schedstat), which does not
depend on how fast this Python client is. Variants run interleaved, one batch each per round, for
several rounds; the table shows the median and the range over rounds. Costs are differences
taken within each round (redact − enrich, redact+pii − enrich+pii), median over rounds.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import Envoy, Upstream, envoy_config, log_filter, record_access_log

ROUNDS = int(os.environ.get("ROUNDS", "9"))
BATCH = int(os.environ.get("BATCH", "2000"))
OUT = Path(__file__).resolve().parent / "results-log-enrichment.md"

TYPICAL_PATH = "/api/v1/orders/12345?page=2&sort=desc"
PII_PATH = "/customers/ola.nordmann%40example.no/orders?fnr=01010012356&token=s3cret&page=2"
HEADERS = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "accept": "application/json",
    "accept-language": "nb-NO,nb;q=0.9,en;q=0.8",
    "x-tenant-id": "acme-retail",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "cookie": "session=7f3a9c1e; consent=yes",
}
PII_HEADERS = {**HEADERS, "x-tenant-id": "card 4111 1111 1111 1111", "x-customer": "ola.nordmann@example.no"}
ENRICH = {
    "service": {"name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1"},
    "correlation": {"echo_in_response": True},
    "request_headers": ["user-agent", "accept", "x-tenant-id", "x-customer"],
    "response_headers": ["content-type"],
}
NO_REDACTION = {**ENRICH, "redact": {"detectors": [], "query_params": []}}
FIELDS = {**NO_REDACTION, "separate_fields": True}

VARIANTS = {
    "bare": (None, TYPICAL_PATH, HEADERS),
    "enrich+fields": (FIELDS, TYPICAL_PATH, HEADERS),
    "enrich": (NO_REDACTION, TYPICAL_PATH, HEADERS),
    "redact": (ENRICH, TYPICAL_PATH, HEADERS),
    "enrich+pii": (NO_REDACTION, PII_PATH, PII_HEADERS),
    "redact+pii": (ENRICH, PII_PATH, PII_HEADERS),
}


def cpu_seconds(pid: int) -> float:
    """CPU time of all of Envoy's threads, in nanosecond resolution (schedstat's run time)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return total / 1e9


def batch(envoy: Envoy, path: str, headers: dict) -> float:
    """Envoy CPU microseconds per request over one batch on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
    try:
        for _ in range(50):  # warm up the connection and the VM
            connection.request("GET", path, headers=headers)
            connection.getresponse().read()
        before = cpu_seconds(envoy.process.pid)
        for _ in range(BATCH):
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: status {response.status}")
        return (cpu_seconds(envoy.process.pid) - before) / BATCH * 1e6
    finally:
        connection.close()


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="breakwater-bench-"))
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with Upstream() as upstream:
        envoys = {}
        try:
            for name, (configuration, _, _) in VARIANTS.items():
                filters = [log_filter(configuration)] if configuration is not None else []
                loggers = [record_access_log(str(tmp / f"{name}.log"))] if configuration is not None else []
                envoys[name] = Envoy(envoy_config(upstream.port, http_filters=filters, access_logs=loggers),
                                     concurrency=1, component_log_level=None, log_level="warning").start()  # fmt: skip
            for round_ in range(ROUNDS):
                for name, (_, path, headers) in VARIANTS.items():
                    results[name].append(batch(envoys[name], path, headers))
                print(f"round {round_ + 1}/{ROUNDS}: " + "  ".join(f"{n} {v[-1]:.1f} µs" for n, v in results.items()), flush=True)
            # The records really were written (and redacted) while we measured.
            line = (tmp / "redact+pii.log").read_text().splitlines()[-1]
            assert "ola.nordmann" not in line and "01010012356" not in line and "4111 1111" not in line, line
        finally:
            for envoy in envoys.values():
                envoy.stop()

    med = {name: statistics.median(values) for name, values in results.items()}
    rows = [
        f"| {name} | {med[name]:.1f} | {min(v):.1f}–{max(v):.1f} |" for name, v in results.items()
    ]
    def paired(a: str, b: str) -> tuple[float, float, float]:
        """a − b within each round (the variants ran back to back): median, min, max."""
        diffs = [x - y for x, y in zip(results[a], results[b])]
        return statistics.median(diffs), min(diffs), max(diffs)

    def line(text: str, a: str, b: str) -> str:
        mid, low, high = paired(a, b)
        return f"- {text}: {mid:+.1f} µs/request (per-round differences {low:+.1f} to {high:+.1f})"

    cost = paired("redact", "enrich")[0]
    cost_pii = paired("redact+pii", "enrich+pii")[0]
    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, {platform.platform()}"
    report = "\n".join([
        "# Log enrichment: Envoy CPU per request",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine}; Envoy `{envoy_version()}`;",
        f"{ROUNDS} rounds × {BATCH} requests per variant, interleaved; one worker; see bench/log_enrichment.py.",
        "",
        "| variant | Envoy CPU µs/request (median) | range over rounds |",
        "|---|---|---|",
        *rows,
        "",
        line("enrichment (filter, no detectors, and its access log) over bare Envoy", "enrich", "bare"),
        line("per-field filter-state keys (`separate_fields`)", "enrich+fields", "enrich"),
        line("redaction on a typical request without personal data", "redact", "enrich"),
        line("redaction on a request with 5 values to redact", "redact+pii", "enrich+pii"),
        "",
    ])  # fmt: skip
    OUT.write_text(report)
    print()
    print(report)
    print(json.dumps({"median_us": med, "redaction_us": cost, "redaction_pii_us": cost_pii}))
    return 0


def envoy_version() -> str:
    import subprocess

    from tests.harness.envoy import envoy_binary

    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout
    return out.split("version:", 1)[-1].strip().split("/")[1] if "/" in out else out.strip()


if __name__ == "__main__":
    sys.exit(main())
