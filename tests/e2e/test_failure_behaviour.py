"""What Envoy does when a filter's VM panics, under each failure policy (README "Failure
behaviour"). breakwater's filters are written not to panic; this uses a fixture built on the
same ABI layer (tests/fixtures/panic-filter) that panics when a request carries `x-panic` and
otherwise marks responses `x-fixture: alive`. One worker, so the panicked VM is the only one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import Envoy, envoy_config, request, wasm_filter

FIXTURE = Path(__file__).resolve().parents[2] / "dist" / "test" / "panic_filter.wasm"


def fixture_envoy(upstream_port: int, policy: str) -> Envoy:
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing: `make e2e` builds it")
    fixture = wasm_filter("fixture", str(FIXTURE), "")
    fixture["typed_config"]["config"]["failure_policy"] = policy
    return Envoy(envoy_config(upstream_port, http_filters=[fixture]), concurrency=1)


def marked(envoy: Envoy) -> tuple[int, str | None]:
    response = request(envoy.url("/x"))
    return response.status, response.headers.get("x-fixture")


def panic(envoy: Envoy) -> int:
    return request(envoy.url("/x"), headers={"x-panic": "1"}).status


def assert_panic_logged(envoy: Envoy) -> None:
    log = envoy.log_text()
    # The ABI layer's panic hook names the place before the VM dies.
    assert "wasm log fixture: panicked at tests/fixtures/panic-filter/src/lib.rs" in log, log[-2000:]
    assert "proxy_on_request_headers failed: Uncaught RuntimeError: unreachable" in log


def test_fail_open_bypasses_the_dead_filter_until_the_next_config(upstream):
    with fixture_envoy(upstream.port, "FAIL_OPEN") as envoy:
        assert marked(envoy) == (200, "alive")
        assert panic(envoy) == 503, "the request that panicked is answered 503"
        # From then on the filter is skipped: traffic flows, unfiltered.
        assert [marked(envoy) for _ in range(3)] == [(200, None)] * 3
        assert_panic_logged(envoy)


def test_fail_closed_answers_503_from_then_on(upstream):
    with fixture_envoy(upstream.port, "FAIL_CLOSED") as envoy:
        assert marked(envoy) == (200, "alive")
        assert panic(envoy) == 503
        assert [marked(envoy)[0] for _ in range(3)] == [503] * 3
        assert upstream.count() == 1, "only the request before the panic reached the upstream"
        assert_panic_logged(envoy)


def test_fail_reload_restarts_the_vm_after_a_backoff(upstream):
    with fixture_envoy(upstream.port, "FAIL_RELOAD") as envoy:
        assert marked(envoy) == (200, "alive")
        assert panic(envoy) == 503
        # Until the reload backoff has passed, requests fail closed; then a new VM serves them.
        assert marked(envoy)[0] == 503
        deadline = time.monotonic() + 10
        while (status := marked(envoy)) != (200, "alive"):
            assert status[0] == 503, status
            assert time.monotonic() < deadline, "the VM was not reloaded within 10 s"
            time.sleep(0.2)
        assert_panic_logged(envoy)
