"""Concurrency exactness of the circuit breaker with 4 Envoy workers (`--concurrency 4`).

Each scenario is one function of a run index, repeated STRESS_RUNS times (default 3, which
`make test` runs; `make stress` runs 100). Every run gets a breaker of its own (fresh shared
state, its own stats and its own path prefix); one Envoy carries up to 64 such breakers (the
per-plugin limit) and is replaced when they are used up, so the runs do not each pay for an
Envoy start.

What the design guarantees (README "Shared state and its consistency", engine.rs) and what is
asserted, per run:

Trip: with `consecutive_failures: N`, a failing upstream and C concurrent clients,
  - exactly one transition (`transitions.opened` == 1, nothing else), logged with exactly
    "window: N calls ... N consecutive failures": the N failures that opened it were each
    recorded once in shared state (compare-and-swap), none lost or doubled;
  - `calls.failure` == requests that reached the upstream == responses not rejected: every
    admitted call's outcome is counted in the stat, also those admitted a moment before the
    breaker opened (their outcome is ignored by the state, not by the counter);
  - N <= upstream requests <= N + C - 1: the overshoot is only the calls already admitted
    (at most one per client besides the one that opened it) when the open state was written;
  - `rejected` == rejected responses, `state_errors` == 0, every worker took connections.
Probes: after the open period, 40 concurrent clients arrive while the probes are held by the
  upstream (delay); exactly `half_open.probes` requests reach the upstream, all others are
  rejected with `Retry-After: 1`, across all 4 workers; the probes succeed and close it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.harness import Envoy, Route, Upstream, breaker_filter, envoy_config
from tests.harness.client import RequestError, Response, request

RUNS = int(os.environ.get("STRESS_RUNS", "3"))
WORKERS = 4
STAT = "wasmcustom.breakwater.circuit_breaker"
MAX_BREAKERS = 64  # per plugin (README "Keys")

# Trip scenario.
TRIP_N = 10
TRIP_CLIENTS = 32
TRIP_REQUESTS = 160
# Probe scenario.
PROBES = 3
PROBE_CLIENTS = 40
OPEN_S = 1.0
PROBE_DELAY_MS = 1500


def rejected_by_breaker(response: Response) -> bool:
    return "x-breakwater-breaker" in response.headers


def wait_until(condition, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class BreakerPool:
    """Hands out one fresh breaker per run: `<scenario>-<i>` matching `/<scenario>-<i>/`."""

    scenario: str
    spec: dict
    upstream: Upstream
    envoy: Envoy | None = None
    free: list[str] = field(default_factory=list)
    next_index: int = 0

    def take(self) -> tuple[Envoy, str]:
        if not self.free:
            self.stop()
            count = min(MAX_BREAKERS, RUNS)
            names = [f"{self.scenario}-{self.next_index + i}" for i in range(count)]
            self.next_index += count
            breakers = [{"name": n, "match": {"path_prefix": f"/{n}/"}, **self.spec} for n in names]
            config = envoy_config(
                self.upstream.port,
                http_filters=[breaker_filter(breakers)],
                routes=[Route(name="default", prefix="/")],
                route_timeout="5s",
            )
            # warn: the transition lines, without a debug line per request.
            self.envoy = Envoy(config, concurrency=WORKERS, component_log_level="wasm:warn")
            self.envoy.start()
            self.free = names
        return self.envoy, self.free.pop(0)

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
            self.envoy = None


@pytest.fixture(scope="module")
def trip_pool():
    with Upstream() as upstream:
        upstream.set_mode("status", code=503)
        pool = BreakerPool(
            "trip",
            {"trip": {"consecutive_failures": TRIP_N}, "open": {"duration": "60s", "jitter": 0}},
            upstream,
        )
        yield pool
        pool.stop()


@pytest.fixture(scope="module")
def probe_pool():
    with Upstream() as upstream:
        pool = BreakerPool(
            "probe",
            {
                "trip": {"consecutive_failures": 1},
                "open": {"duration": f"{OPEN_S}s", "jitter": 0},
                "half_open": {"probes": PROBES, "max_wait": "30s"},
            },
            upstream,
        )
        yield pool
        pool.stop()


def stats_of(envoy: Envoy, name: str) -> dict[str, int]:
    prefix = f"{STAT}.{name}."
    return {k[len(prefix) :]: v for k, v in envoy.stats(f"^{re.escape(prefix)}").items()}


def transition_lines(envoy: Envoy, name: str) -> list[str]:
    marker = f'breakwater circuit-breaker "{name}": '
    return [line for line in envoy.log_text().splitlines() if marker in line]


@dataclass
class Sent:
    started: float
    finished: float
    response: Response | None
    error: str | None


def fire(url: str, clients: int, total: int | None = None) -> list[Sent]:
    """`clients` threads released at once by a barrier; each sends requests one after another
    (a new connection each) until `total` were sent, or sends one if `total` is None."""
    barrier = threading.Barrier(clients)
    lock = threading.Lock()
    remaining = [total if total is not None else clients]
    results: list[Sent] = []

    def client() -> None:
        barrier.wait()
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            started = time.monotonic()
            try:
                response, error = request(url, timeout=10), None
            except RequestError as e:
                response, error = None, str(e)
            with lock:
                results.append(Sent(started, time.monotonic(), response, error))
            if total is None:
                return

    threads = [threading.Thread(target=client, name=f"stress-client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def check_exact_trip(run: int, pool: BreakerPool) -> None:
    envoy, name = pool.take()
    upstream = pool.upstream
    prefix = f"/{name}/"
    workers_before = envoy.worker_connection_counts()

    sent = fire(envoy.url(f"{prefix}x"), TRIP_CLIENTS, TRIP_REQUESTS)

    errors = [s.error for s in sent if s.error]
    assert not errors, f"run {run}: requests without an answer: {errors[:3]}"
    responses = [s.response for s in sent]
    assert len(responses) == TRIP_REQUESTS
    passed = [r for r in responses if not rejected_by_breaker(r)]
    rejected = [r for r in responses if rejected_by_breaker(r)]
    assert all(r.status == 503 for r in responses)
    reached = upstream.count(prefix)
    assert len(passed) == reached, f"run {run}: {len(passed)} answers from the upstream, it saw {reached}"
    assert TRIP_N <= reached <= TRIP_N + TRIP_CLIENTS - 1, (
        f"run {run}: {reached} requests reached the upstream; the breaker must open after {TRIP_N} "
        f"and let through at most the {TRIP_CLIENTS - 1} other calls in flight"
    )
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    assert min(per_worker) > 0, f"run {run}: not all {WORKERS} workers took connections: {per_worker}"

    # Outcomes are counted at the end of each stream, possibly just after the client got its
    # response: wait until the counters settle.
    settled = wait_until(lambda: stats_of(envoy, name).get("calls.failure") == reached)
    stats = stats_of(envoy, name)
    assert settled, f"run {run}: calls.failure {stats.get('calls.failure')} != {reached} upstream requests"
    assert stats["transitions.opened"] == 1, f"run {run}: {stats}"
    assert stats["transitions.half_opened"] == 0 and stats["transitions.closed"] == 0, f"run {run}: {stats}"
    assert stats["state"] == 1
    assert stats["rejected"] == len(rejected)
    assert stats["state_errors"] == 0
    assert stats["calls.success"] == 0 and stats["calls.unanswered"] == 0 and stats["calls.slow"] == 0
    assert stats["probes"] == 0

    # The transition line shows the shared state at the moment it opened: exactly N calls,
    # each recorded once.
    assert wait_until(lambda: len(transition_lines(envoy, name)) >= 1)
    lines = transition_lines(envoy, name)
    assert len(lines) == 1, f"run {run}: {lines}"
    assert "closed -> open (reason: consecutive_failures" in lines[0], lines[0]
    assert f"window: {TRIP_N} calls, failure rate 100.0%" in lines[0], lines[0]
    assert f", {TRIP_N} consecutive failures)" in lines[0], lines[0]
    print(f"trip run {run}: upstream {reached} (overshoot {reached - TRIP_N}), rejected {len(rejected)}, "
          f"workers {per_worker}")


def check_exact_probe_admission(run: int, pool: BreakerPool) -> None:
    envoy, name = pool.take()
    upstream = pool.upstream
    prefix = f"/{name}/"
    url = envoy.url(f"{prefix}x")

    upstream.set_mode("status", code=503)
    first = request(url)
    assert first.status == 503 and not rejected_by_breaker(first)
    second = request(url)
    assert rejected_by_breaker(second), f"run {run}: one failure opens the breaker"
    opened_by = time.monotonic()
    # The upstream heals but holds every request, so the probes are in flight together while
    # all clients arrive.
    upstream.set_mode("delay", ms=PROBE_DELAY_MS)
    time.sleep(max(0.0, opened_by + OPEN_S + 0.15 - time.monotonic()))
    stats_before = stats_of(envoy, name)
    workers_before = envoy.worker_connection_counts()
    reached_before = upstream.count(prefix)

    sent = fire(url, PROBE_CLIENTS)

    errors = [s.error for s in sent if s.error]
    assert not errors, f"run {run}: requests without an answer: {errors[:3]}"
    per_worker = [a - b for a, b in zip(envoy.worker_connection_counts(), workers_before)]
    probes = [s for s in sent if not rejected_by_breaker(s.response)]
    rejected = [s for s in sent if rejected_by_breaker(s.response)]
    # The scenario is only meaningful if every client arrived while the probes were held.
    first_answer = min(s.finished for s in probes) if probes else float("inf")
    last_start = max(s.started for s in sent)
    assert last_start < first_answer, (
        f"run {run}: a client started {last_start - first_answer:.3f}s after the first probe was "
        f"answered; raise PROBE_DELAY_MS (the machine is too slow for this spread)"
    )
    reached = upstream.count(prefix) - reached_before
    assert reached == PROBES, f"run {run}: {reached} requests reached the upstream, expected exactly {PROBES}"
    assert len(probes) == PROBES, f"run {run}: {len(probes)} admitted, expected {PROBES}"
    assert all(s.response.status == 200 for s in probes)
    assert len(rejected) == PROBE_CLIENTS - PROBES
    assert all(s.response.status == 503 and s.response.headers.get("retry-after") == "1" for s in rejected)
    assert min(per_worker) > 0, f"run {run}: not all {WORKERS} workers took connections: {per_worker}"

    assert wait_until(lambda: stats_of(envoy, name).get("transitions.closed") == 1), stats_of(envoy, name)
    stats = stats_of(envoy, name)
    delta = {k: stats[k] - stats_before.get(k, 0) for k in stats}
    assert delta["probes"] == PROBES, f"run {run}: {delta}"
    assert delta["rejected"] == PROBE_CLIENTS - PROBES, f"run {run}: {delta}"
    assert delta["transitions.half_opened"] == 1 and delta["transitions.opened"] == 0, f"run {run}: {delta}"
    assert wait_until(lambda: stats_of(envoy, name)["calls.success"] == PROBES)
    stats = stats_of(envoy, name)
    assert stats["state"] == 0 and stats["state_errors"] == 0 and stats["probes_written_off"] == 0, stats
    # One transition of each kind, each logged once, in order.
    assert wait_until(lambda: len(transition_lines(envoy, name)) >= 3)
    lines = transition_lines(envoy, name)
    expected = ["closed -> open (reason: consecutive_failures", "open -> half_open (reason: open_duration_elapsed",
                f"half_open -> closed (reason: probes_succeeded; all {PROBES} probe(s) succeeded)"]
    assert len(lines) == 3 and all(e in line for e, line in zip(expected, lines)), f"run {run}: {lines}"
    print(f"probe run {run}: upstream {reached}, rejected {len(rejected)}, workers {per_worker}, "
          f"spread {last_start - min(s.started for s in sent):.3f}s")


@pytest.mark.parametrize("run", range(RUNS))
def test_exact_trip_count_under_concurrent_load(run, trip_pool):
    check_exact_trip(run, trip_pool)


@pytest.mark.parametrize("run", range(RUNS))
def test_exact_probe_admission_across_four_workers(run, probe_pool):
    check_exact_probe_admission(run, probe_pool)
