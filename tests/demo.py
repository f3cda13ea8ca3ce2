"""`make demo`: a narrated circuit-breaker scenario against a real Envoy.

Starts the demo upstream on :8081 and Envoy with envoy/demo.yaml (listener :10000, admin :9901,
two worker threads), then walks through: healthy traffic → the upstream fails → the breaker
opens and Envoy answers for it → half-open probes → closed again. Everything it starts is
stopped on exit, on Ctrl-C and on failure.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from tests.harness.client import request
from tests.harness.envoy import REPO_ROOT, Envoy, EnvoyError, interrupt_on_signals
from tests.harness.upstream import Upstream

CONFIG = REPO_ROOT / "envoy" / "demo.yaml"
UPSTREAM_PORT = 8081
URL_PATH = "/recommendations/top"
STAT = "wasmcustom.breakwater.circuit_breaker.recommendations."
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

    def get(self, label: str = "") -> int:
        """One request through Envoy, printed as a newcomer would want to see it."""
        response = request(self.envoy.url(URL_PATH))
        extra = []
        if "x-breakwater-breaker" in response.headers:
            extra.append(f"x-breakwater-breaker: {response.headers['x-breakwater-breaker']}")
        if "retry-after" in response.headers:
            extra.append(f"Retry-After: {response.headers['retry-after']}")
        body = response.body.decode(errors="replace")
        say(f"  GET {URL_PATH} → {response.status}  {', '.join(extra)}  {DIM}{body[:90]}{RESET} {label}")
        self.show_transitions()
        return response.status

    def stats(self) -> dict[str, int]:
        return {name.removeprefix(STAT): value for name, value in self.envoy.stats("^" + re.escape(STAT)).items()}

    def show_state(self) -> None:
        s = self.stats()
        say(
            f"  {DIM}Envoy stats:{RESET} state={s.get('state', 0)} ({STATES.get(s.get('state', 0))})"
            f"  success={s.get('calls.success', 0)} failure={s.get('calls.failure', 0)}"
            f"  rejected={s.get('rejected', 0)} probes={s.get('probes', 0)}"
            f"  opened={s.get('transitions.opened', 0)} closed={s.get('transitions.closed', 0)}"
            f"   {DIM}(upstream has seen {self.upstream.count()} requests){RESET}"
        )

    def show_transitions(self) -> None:
        """Prints the breaker's state-change lines from Envoy's log as they appear."""
        time.sleep(0.05)  # let Envoy write the line
        lines = [line for line in self.envoy.log_text().splitlines() if "circuit-breaker \"" in line]
        for line in lines[self.log_lines_seen :]:
            say(f"  {BOLD}Envoy log:{RESET} {line.split('wasm log ', 1)[-1].split(': ', 1)[-1]}")
        self.log_lines_seen = len(lines)

    def wait_retry_after(self) -> None:
        response = request(self.envoy.url(URL_PATH))
        seconds = int(response.headers.get("retry-after", "1"))
        say(f"  … waiting {seconds}s as Retry-After says (that request was rejected too)")
        time.sleep(seconds + 0.2)


def run() -> None:
    say(f"{BOLD}breakwater circuit breaker — demo{RESET}")
    say("Envoy (2 worker threads) runs envoy/demo.yaml: the breaker 'recommendations' guards GET /recommendations*.")
    say("It opens after 5 consecutive failures (or ≥ 50 % failures over the last 20 calls, at least 10),")
    say("stays open 3 s (doubling up to 12 s, ±10 % jitter), then lets 2 probe requests through.")
    with Upstream(port=UPSTREAM_PORT) as upstream, Envoy(CONFIG, component_log_level="wasm:info") as envoy:
        demo = Demo(envoy, upstream)
        say(f"Started the demo upstream on :{UPSTREAM_PORT} and Envoy on :{envoy.port} (admin {envoy.admin_url}).")

        step("1. Healthy traffic")
        for _ in range(3):
            demo.get()
        demo.show_state()

        step("2. The upstream starts failing (every request gets 503)")
        upstream.set_mode("status", code=503)
        for i in range(5):
            demo.get("← counted as a failure" if i < 4 else "← the 5th consecutive failure opens the breaker")
        demo.show_state()

        step("3. The breaker is open: Envoy answers at once, the upstream is spared")
        before = upstream.count()
        for _ in range(4):
            demo.get()
        say(f"  The upstream received {upstream.count() - before} of those 4 requests.")
        demo.show_state()

        step("4. Still failing: the first probe fails, so the breaker re-opens for longer (backoff)")
        demo.wait_retry_after()
        demo.get("← a probe, let through to the upstream")
        demo.get("← rejected again; note the longer Retry-After")
        demo.show_state()

        step("5. The upstream recovers; after the open period, 2 probes succeed and the breaker closes")
        upstream.set_mode("ok")
        demo.wait_retry_after()
        demo.get("← probe 1 of 2")
        demo.show_state()
        demo.get("← probe 2 of 2: all probes passed")
        demo.show_state()

        step("6. Closed again: traffic flows normally")
        for _ in range(3):
            demo.get()
        demo.show_state()

        say()
        say("Prometheus view (admin /stats/prometheus, breaker name as a label):")
        for line in envoy.prometheus().splitlines():
            if line.startswith("breakwater_circuit_breaker_") and ("_state" in line or "rejected" in line or "transitions" in line):
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
