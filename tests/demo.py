"""`make demo`: a narrated resilience scenario against a real Envoy.

Starts the demo upstream on :8081 and Envoy with envoy/demo.yaml (listener :10000, admin :9901,
two worker threads; log enrichment, then the fallback filter in front of the circuit breaker),
then walks through: healthy traffic → the upstream fails and clients get the last good answer →
the breaker opens and the upstream is spared, still with the last good answer → that answer gets
too old and the static "most popular" list takes over → the upstream recovers, probes succeed,
the breaker closes → a request full of personal data, and the redacted access-log line it left.
Each request's access-log record is shown in short under it. Everything it starts is stopped on
exit, on Ctrl-C and on failure.
"""

from __future__ import annotations

import json
import re
import sys
import time

from tests.harness.client import concurrent, request
from tests.harness.envoy import REPO_ROOT, Envoy, EnvoyError, interrupt_on_signals
from tests.harness.upstream import Upstream

CONFIG = REPO_ROOT / "envoy" / "demo.yaml"
UPSTREAM_PORT = 8081
URL_PATH = "/recommendations/top"
FRESH = '["fresh-pick-1","fresh-pick-2"]'
BREAKER = "wasmcustom.breakwater.circuit_breaker.recommendations."
FALLBACK = "wasmcustom.breakwater.fallback.recommendations."
STATES = {0: "closed", 1: "open", 2: "half-open"}

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say()
    say(f"{BOLD}── {title}{RESET}")


class Demo:
    def __init__(self, envoy: Envoy, upstream: Upstream):
        self.envoy = envoy
        self.upstream = upstream
        self.log_lines_seen = 0
        self.records_seen = 0

    def get(self, label: str = ""):
        """One request through Envoy, printed as a newcomer would want to see it."""
        response = request(self.envoy.url(URL_PATH))
        extra = [f"{name}: {response.headers[name]}"
                 for name in ("x-breakwater-fallback", "age", "x-breakwater-breaker", "retry-after")
                 if name in response.headers]  # fmt: skip
        body = response.body.decode(errors="replace")
        say(f"  GET {URL_PATH} → {response.status}  {', '.join(extra):38} {DIM}{body[:60]}{RESET} {label}")
        self.show_transitions()
        for record in self.new_records():
            say(f"    {DIM}access log: {summary(record)}{RESET}")
        return response

    def new_records(self, wait_for: int = 1) -> list[dict]:
        """Access-log records (JSON lines on Envoy's stdout) that appeared since the last call."""
        deadline = time.monotonic() + 2
        while True:
            lines = [line for line in self.envoy.log_text().splitlines() if line.startswith('{"timestamp"')]
            if len(lines) - self.records_seen >= wait_for or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        new, self.records_seen = lines[self.records_seen :], len(lines)
        return [json.loads(line) for line in new]

    def stats(self, prefix: str) -> dict[str, int]:
        return {name.removeprefix(prefix): value for name, value in self.envoy.stats("^" + re.escape(prefix)).items()}

    def show_state(self) -> None:
        b = self.stats(BREAKER)
        f = self.stats(FALLBACK)
        say(
            f"  {DIM}breaker:{RESET} {STATES.get(b.get('state', 0))}"
            f" (success={b.get('calls.success', 0)} failure={b.get('calls.failure', 0)}"
            f" rejected={b.get('rejected', 0)} probes={b.get('probes', 0)})"
            f"   {DIM}fallback:{RESET} stale={f.get('served.stale', 0)} static={f.get('served.static', 0)}"
            f"   {DIM}upstream has seen {self.upstream.count()} requests{RESET}"
        )

    def show_transitions(self) -> None:
        """Prints the breaker's state-change lines from Envoy's log as they appear."""
        time.sleep(0.05)  # let Envoy write the line
        lines = [line for line in self.envoy.log_text().splitlines() if "circuit-breaker \"" in line]
        for line in lines[self.log_lines_seen :]:
            say(f"  {BOLD}Envoy log:{RESET} {line.split('wasm log ', 1)[-1].split(': ', 1)[-1]}")
        self.log_lines_seen = len(lines)


def timed_get(envoy: Envoy) -> tuple[float, object]:
    started = time.monotonic()
    response = request(envoy.url(URL_PATH), timeout=10)
    return time.monotonic() - started, response


def summary(record: dict) -> str:
    """The record's resilience story in one short line."""
    parts = [f"status={record.get('http.response.status_code')}"]
    if "breakwater.breaker.decision" in record:
        parts.append(f"breaker={record['breakwater.breaker.decision']}/{record['breakwater.breaker.state']}")
    if "breakwater.fallback" in record:
        parts.append(f"fallback={record['breakwater.fallback']}")
    if "envoy.response_flags" in record:
        parts.append(f"flags={record['envoy.response_flags']}")
    parts.append(f"correlation.id={record.get('correlation.id', '-')[:8]}…")
    parts.append(f"{record.get('duration_ms')} ms")
    return " ".join(parts)


def run() -> None:
    say(f"{BOLD}breakwater — demo{RESET}")
    say("Envoy (2 worker threads) runs envoy/demo.yaml. For GET /recommendations*:")
    say("  • the fallback filter replaces failures with the last good answer (up to 8 s old),")
    say("    else with a static \"most popular\" list;")
    say("  • the circuit breaker opens after 5 consecutive failures (a call without an answer after")
    say("    300 ms is one), stays open 3 s (doubling, ±10 % jitter), then lets 2 probe requests")
    say("    through; when it opens, it answers the calls still waiting instead of letting them wait;")
    say("  • log enrichment writes one redacted JSON access-log line per request (shown in short).")
    with Upstream(port=UPSTREAM_PORT) as upstream, Envoy(CONFIG, component_log_level="wasm:info") as envoy:
        demo = Demo(envoy, upstream)
        say(f"Started the demo upstream on :{UPSTREAM_PORT} and Envoy on :{envoy.port} (admin {envoy.admin_url}).")

        step("1. Healthy traffic (the fallback keeps a copy of the last good answer)")
        upstream.set_mode("ok", body=FRESH)
        for _ in range(3):
            demo.get()
        demo.show_state()

        step("2. The upstream starts failing: clients get the last good answer instead of a 503")
        upstream.set_mode("status", code=503)
        for i in range(5):
            demo.get("← the breaker counts a failure" if i < 4 else "← the 5th consecutive failure opens the breaker")
        demo.show_state()

        step("3. The breaker is open: the upstream is spared, clients still get the last good answer")
        before = upstream.count()
        for _ in range(4):
            demo.get("← the breaker rejected it; the fallback replaced its 503")
        say(f"  The upstream received {upstream.count() - before} of those 4 requests.")
        demo.show_state()

        step("4. The last good answer is now older than 8 s: the static list takes over")
        time.sleep(8.2)
        demo.get("← stale is too old (a probe may have gone to the failing upstream meanwhile)")
        demo.show_state()

        step("5. The upstream recovers; once the breaker lets probes through, they succeed")
        upstream.set_mode("ok", body=FRESH)
        waited = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = request(envoy.url(URL_PATH))
            if "x-breakwater-fallback" not in response.headers:
                break
            waited += 1
            time.sleep(0.5)
        say(f"  … {waited} requests every 0.5 s got the static list while the breaker stayed open")
        demo.show_transitions()
        say(f"  GET {URL_PATH} → {response.status}  {DIM}{response.text[:60]}{RESET} ← probe 1 of 2 reached the healed upstream")
        demo.get("← probe 2 of 2")
        demo.show_state()

        step("6. Closed again: fresh answers from the upstream")
        for _ in range(3):
            demo.get()
        demo.show_state()

        step("7. A request full of personal data, and the access-log line it leaves")
        pii_path = "/recommendations/top?email=ola.nordmann%40example.no&fnr=01010012356&token=s3cret"
        say(f"  GET {pii_path}")
        say("      Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln   x-tenant-id: card 4111 1111 1111 1111")
        demo.new_records(wait_for=0)
        request(envoy.url(pii_path), headers={
            "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "x-tenant-id": "card 4111 1111 1111 1111", "user-agent": "demo/1.0"})  # fmt: skip
        (record,) = demo.new_records()
        say("  The whole record (Envoy's stdout access log, one line; indented here):")
        for line in json.dumps(record, indent=2, ensure_ascii=False).splitlines():
            say(f"  {DIM}{line}{RESET}")
        say("  The e-mail, the national id, the token and the card number are gone; Authorization is")
        say("  never logged; the client address is cut to its /24. The request itself went on unchanged.")

        step("8. The upstream hangs: the callers already waiting are answered at once, not after 2 s")
        upstream.set_mode("hang")
        say("  6 clients call at the same moment; the upstream never answers (the route timeout is 2 s).")
        results = concurrent(6, lambda i: timed_get(envoy))
        for elapsed, response in sorted(results, key=lambda r: r[0]):
            say(f"  GET {URL_PATH} → {response.status} after {elapsed:.2f} s  "
                f"x-breakwater-fallback: {response.headers.get('x-breakwater-fallback', '-')}"
                f"   {DIM}{response.text[:40]}{RESET}")  # fmt: skip
        demo.show_transitions()
        released = demo.stats(BREAKER).get("calls.released", 0)
        say("  After hang_after (300 ms) the breaker counted them as failures and opened; within 50 ms both")
        say(f"  workers answered their waiting calls ({released} released) with the rejection, which the")
        say("  fallback replaced. Envoy cancelled the requests to the upstream.")
        upstream.set_mode("ok", body=FRESH)
        demo.show_state()

        say()
        say("Prometheus view (admin /stats/prometheus, breaker name as a label):")
        for line in envoy.prometheus().splitlines():
            if line.startswith("breakwater_circuit_breaker_") and re.search(r"_(state|rejected|transitions_\w+)\{", line):
                say(f"  {line}")
        say()
        say("Done. `make run` starts the same setup for you to try by hand.")


def main() -> int:
    interrupt_on_signals()
    try:
        run()
    except KeyboardInterrupt:
        say("\nInterrupted; Envoy and the upstream were stopped.")
        return 130
    except (EnvoyError, OSError) as error:
        say(f"\nThe demo failed: {error}")
        say("Are ports 10000, 9901 and 8081 free? Everything the demo started has been stopped.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
