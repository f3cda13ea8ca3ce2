"""Fixtures for the filters' end-to-end tests: a real upstream and a real Envoy (2 workers)
loading the modules that `make build` wrote to dist/."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.harness import Envoy, Upstream, breaker_filter, envoy_config
from tests.harness.contract import access_log_field
from tests.harness.envoy import assert_no_wasm_failure

# Every access-log line carries the filters' filter state (Envoy prints "-" when unset), each
# field named as in the filter-state contract (`breakwater contract`); the parser adds the parts
# of `circuit_breaker` (`decision`, `state`, `breaker`) and `fallback` (`fallback_served`,
# `fallback_trigger`, `fallback_rule`).
_STATE_FIELDS = ("circuit_breaker", "outcome", "fallback", "fallback_cache")
ACCESS_LOG_FORMAT = (
    "path=%REQ(:PATH)% authority=%REQ(:AUTHORITY)% status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% "
    + " ".join(f"{name}={access_log_field(name)}" for name in _STATE_FIELDS)
    + "\n"
)


@pytest.fixture
def checked_envoys() -> list[Envoy]:
    """A list for the Envoys a test starts: each is stopped when the test ends, then its log is
    checked for Wasm failures, whatever the test asserted."""
    started: list[Envoy] = []
    yield started
    for envoy in started:
        envoy.stop()
    for envoy in started:
        assert_no_wasm_failure(envoy)


def start_checked_envoy(started: list[Envoy], tmp_path: Path, config_for: Callable[[Path, Path], dict]) -> Envoy:
    """Starts Envoy (2 workers) on `config_for(access_log, records)`: the paths of the key=value
    access log and of the log-enrichment records, kept as `.access_log` and `.records`.
    `started` is the test's `checked_envoys`, which stops and checks it when the test ends."""
    n = len(started)
    access_log, records = tmp_path / f"access-{n}.log", tmp_path / f"records-{n}.log"
    envoy = Envoy(config_for(access_log, records), concurrency=2)
    started.append(envoy)
    envoy.start()
    envoy.access_log, envoy.records = access_log, records
    return envoy


@pytest.fixture
def upstream():
    with Upstream() as up:
        yield up


@pytest.fixture
def start_envoy(upstream: Upstream, tmp_path: Path) -> Callable[..., Envoy]:
    """Starts Envoy (2 workers) with `http_filters` in front of the router; stopped after the
    test. The returned Envoy has `.access_log` (the file's path)."""
    started: list[Envoy] = []

    def start(http_filters: Sequence[dict], route_timeout: str = "5s", **config_args) -> Envoy:
        access_log = tmp_path / f"access-{len(started)}.log"
        config = envoy_config(
            upstream.port,
            http_filters=http_filters,
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


@pytest.fixture
def breaker_envoy(start_envoy) -> Callable[..., Envoy]:
    """Envoy with only the circuit breaker, configured with `breakers`."""

    def start(breakers: list[dict], **kwargs) -> Envoy:
        return start_envoy([breaker_filter(breakers)], **kwargs)

    return start
