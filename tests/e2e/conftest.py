"""Fixtures for the filters' end-to-end tests: a real upstream and a real Envoy (2 workers)
loading the module that `make build` wrote to dist/."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.harness import Envoy, Upstream, dist_module, envoy_config, wasm_filter

# Every access-log line carries the breaker's filter state (Envoy prints "-" when unset).
ACCESS_LOG_FORMAT = (
    "path=%REQ(:PATH)% authority=%REQ(:AUTHORITY)% status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% "
    "breaker=%FILTER_STATE(wasm.breakwater.circuit_breaker.breaker:PLAIN)% "
    "decision=%FILTER_STATE(wasm.breakwater.circuit_breaker.decision:PLAIN)% "
    "state=%FILTER_STATE(wasm.breakwater.circuit_breaker.state:PLAIN)% "
    "outcome=%FILTER_STATE(wasm.breakwater.circuit_breaker.outcome:PLAIN)%\n"
)


@pytest.fixture
def upstream():
    with Upstream() as up:
        yield up


@pytest.fixture
def breaker_envoy(upstream: Upstream, tmp_path: Path) -> Callable[..., Envoy]:
    """Starts Envoy with the circuit breaker configured with `breakers`; stopped after the test.

    The returned Envoy has `.access_log` (the file's path).
    """
    started: list[Envoy] = []

    def start(breakers: list[dict], route_timeout: str = "5s", **config_args) -> Envoy:
        access_log = tmp_path / f"access-{len(started)}.log"
        config = envoy_config(
            upstream.port,
            http_filters=[wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), {"breakers": breakers})],
            route_timeout=route_timeout,
            access_log_path=str(access_log),
            access_log_format=ACCESS_LOG_FORMAT,
            **config_args,
        )
        envoy = Envoy(config, concurrency=2)
        started.append(envoy)
        envoy.start()
        envoy.access_log = access_log
        return envoy

    yield start
    for envoy in started:
        envoy.stop()
