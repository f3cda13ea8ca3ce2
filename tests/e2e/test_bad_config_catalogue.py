"""The bad-config catalogue: invalid configurations of all three filters, each with the exact
field path its refusal must name.

(a) Every case, as a complete Envoy bootstrap, through `breakwater validate` (the native CLI runs
    each Wasm filter's `configuration` through the filter's own parser): exit code 1 and
    ``…configuration.<field>: <reason>``.
(b) A sample (`ENVOY_SAMPLE`, at least two per filter) pushed to a running Envoy as a listener
    update over LDS: Envoy refuses it with exactly one ``breakwater <filter>: invalid
    configuration: <field>: …`` line and keeps serving with the previous configuration.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.harness import Envoy, breaker_filter, dist_module, envoy_config, fallback_filter, log_filter, request, wasm_filter
from tests.harness.config import free_port, lds_bootstrap, push_listener

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "target" / "debug" / "breakwater"
# Where `breakwater validate` finds the filter in an `envoy_config()` bootstrap.
PLUGIN_PATH = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config"

# The label each filter's refusal line uses ("breakwater <label>: invalid configuration: …").
LABELS = {"breaker": "circuit-breaker", "fallback": "fallback", "log": "log-enrichment"}
MODULES = {"breaker": "circuit_breaker", "fallback": "fallback", "log": "log_enrichment"}


@dataclass(frozen=True)
class Case:
    id: str
    filter: str  # breaker | fallback | log
    configuration: dict | str
    field: str
    # A fragment of the reason, where the reason is what makes the case (checked by the CLI run).
    reason: str = ""


def one_breaker(**fields: Any) -> dict:
    return {"breakers": [{"name": "api", **fields}]}


def one_rule(**fields: Any) -> dict:
    return {"rules": [{"name": "r", **fields}]}


def one_pattern(second: dict) -> dict:
    """`redact.patterns` with a valid pattern named "kid", then `second`."""
    return {"redact": {"patterns": [{"name": "kid", "regex": "\\b\\d{8}\\b"}, second]}}


STATIC = [{"static": {}}]
STALE = {"max_age": "1m"}
RATE = {"failure_rate": 50}

CATALOGUE: list[Case] = [
    # --- circuit breaker --------------------------------------------------------------------------
    Case("cb-unknown-top-key", "breaker", {"breakerz": []}, "breakerz", "unknown field"),
    Case("cb-unknown-breaker-key", "breaker", one_breaker(nope=1), "breakers[0].nope", "unknown field"),
    Case(
        "cb-unknown-window-key",
        "breaker",
        one_breaker(trip={**RATE, "window": {"kind": "count", "size": 10, "extra": 1}}),
        "breakers[0].trip.window.extra",
        "unknown field",
    ),
    Case("cb-breakers-not-a-list", "breaker", {"breakers": {"name": "api"}}, "breakers"),
    Case(
        "cb-consecutive-failures-string",
        "breaker",
        one_breaker(trip={"consecutive_failures": "3"}),
        "breakers[0].trip.consecutive_failures",
    ),
    Case("cb-failure-rate-150", "breaker", one_breaker(trip={"failure_rate": 150}), "breakers[0].trip.failure_rate", "150 is outside 0 to 100"),
    Case("cb-failure-rate-0", "breaker", one_breaker(trip={"failure_rate": 0}), "breakers[0].trip.failure_rate"),
    Case("cb-bad-duration", "breaker", one_breaker(open={"duration": "5 seconds"}), "breakers[0].open.duration", "invalid duration"),
    Case("cb-duration-unitless", "breaker", one_breaker(open={"duration": "5"}), "breakers[0].open.duration"),
    Case(
        "cb-max-duration-below-duration",
        "breaker",
        one_breaker(open={"duration": "10s", "max_duration": "5s"}),
        "breakers[0].open.max_duration",
        "shorter than open.duration",
    ),
    Case("cb-jitter-1", "breaker", one_breaker(open={"jitter": 1.0}), "breakers[0].open.jitter"),
    Case("cb-backoff-below-1", "breaker", one_breaker(open={"backoff_multiplier": 0.5}), "breakers[0].open.backoff_multiplier"),
    Case("cb-bad-status-class", "breaker", one_breaker(failure={"statuses": ["5xy"]}), "breakers[0].failure.statuses[0]", '"5xy"'),
    Case("cb-status-700", "breaker", one_breaker(failure={"statuses": [500, 700]}), "breakers[0].failure.statuses[1]"),
    Case(
        "cb-bad-response-flag",
        "breaker",
        one_breaker(failure={"response_flags": ["UF", "BOGUS"]}),
        "breakers[0].failure.response_flags[1]",
        "BOGUS",
    ),
    Case(
        "cb-duplicate-names",
        "breaker",
        {"breakers": [{"name": "api"}, {"name": "api"}]},
        "breakers[1].name",
    ),
    Case("cb-too-many-breakers", "breaker", {"breakers": [{"name": f"b{i}"} for i in range(65)]}, "breakers", "at most 64"),
    Case(
        "cb-count-window-with-buckets",
        "breaker",
        one_breaker(trip={**RATE, "window": {"kind": "count", "size": 10, "buckets": 2}}),
        "breakers[0].trip.window.buckets",
        'only applies to "kind": "time"',
    ),
    Case(
        "cb-count-window-too-big",
        "breaker",
        one_breaker(trip={**RATE, "window": {"kind": "count", "size": 1001}}),
        "breakers[0].trip.window.size",
        "outside 1 to 1000",
    ),
    Case(
        "cb-time-window-too-short",
        "breaker",
        one_breaker(trip={**RATE, "window": {"kind": "time", "size": "50ms"}}),
        "breakers[0].trip.window.size",
    ),
    Case(
        "cb-minimum-calls-unreachable",
        "breaker",
        one_breaker(trip={**RATE, "minimum_calls": 200}),
        "breakers[0].trip.minimum_calls",
        "can never be reached",
    ),
    Case(
        "cb-slow-rate-without-slow-call",
        "breaker",
        one_breaker(trip={"slow_call_rate": 50}),
        "breakers[0].trip.slow_call_rate",
        "needs failure.slow_call",
    ),
    Case("cb-no-trip-condition", "breaker", one_breaker(trip={}), "breakers[0].trip", "no trip condition"),
    Case("cb-probes-0", "breaker", one_breaker(half_open={"probes": 0}), "breakers[0].half_open.probes"),
    Case(
        "cb-managed-response-header",
        "breaker",
        one_breaker(response={"headers": {"retry-after": "1"}}),
        "breakers[0].response.headers.retry-after",
    ),
    Case("cb-bad-mode", "breaker", one_breaker(mode="off"), "breakers[0].mode"),
    Case("cb-invalid-json", "breaker", '{"breakers": [', "", "invalid JSON"),
    # gRPC
    Case(
        "cb-unknown-grpc-status",
        "breaker",
        one_breaker(failure={"grpc_statuses": ["UNAVAILABLE", "UNAVAILBLE"]}),
        "breakers[0].failure.grpc_statuses[1]",
        "UNAVAILBLE",
    ),
    Case("cb-grpc-status-17", "breaker", one_breaker(failure={"grpc_statuses": [17]}), "breakers[0].failure.grpc_statuses[0]"),
    Case(
        "cb-grpc-failure-ok",
        "breaker",
        one_breaker(failure={"grpc_statuses": ["UNAVAILABLE", "ok"]}),
        "breakers[0].failure.grpc_statuses[1]",
        "OK is a success, not a failure",
    ),
    Case("cb-grpc-reply-ok", "breaker", one_breaker(response={"grpc": {"status": "OK"}}), "breakers[0].response.grpc.status"),
    Case(
        "cb-grpc-message-too-long",
        "breaker",
        one_breaker(response={"grpc": {"message": "x" * 1025}}),
        "breakers[0].response.grpc.message",
    ),
    # --- fallback -------------------------------------------------------------------------------
    Case("fb-unknown-top-key", "fallback", {"rulez": []}, "rulez", "unknown field"),
    Case("fb-unknown-static-key", "fallback", one_rule(serve=[{"static": {"bdy": "x"}}]), "rules[0].serve[0].static.bdy", "unknown field"),
    Case("fb-unknown-source", "fallback", one_rule(serve=[{"stat1c": {}}]), "rules[0].serve[0]"),
    Case("fb-missing-serve", "fallback", {"rules": [{"name": "r"}]}, "rules[0].serve"),
    Case(
        "fb-allow-credentials-string",
        "fallback",
        one_rule(serve=[{"stale": {**STALE, "allow_credentials": "yes"}}]),
        "rules[0].serve[0].stale.allow_credentials",
    ),
    Case("fb-static-status-99", "fallback", one_rule(serve=[{"static": {"status": 99}}]), "rules[0].serve[0].static.status"),
    Case("fb-bad-max-age", "fallback", one_rule(serve=[{"stale": {"max_age": "10 m"}}]), "rules[0].serve[0].stale.max_age"),
    Case("fb-zero-max-age", "fallback", one_rule(serve=[{"stale": {"max_age": "0s"}}]), "rules[0].serve[0].stale.max_age"),
    Case(
        "fb-service-timeout-too-long",
        "fallback",
        one_rule(serve=[{"service": {"cluster": "c", "path": "/x", "timeout": "2m"}}]),
        "rules[0].serve[0].service.timeout",
    ),
    Case("fb-bad-status-class", "fallback", one_rule(on={"statuses": ["5xy"]}, serve=STATIC), "rules[0].on.statuses[0]", '"5xy"'),
    Case("fb-bad-response-flag", "fallback", one_rule(on={"response_flags": ["XX"]}, serve=STATIC), "rules[0].on.response_flags[0]"),
    Case(
        "fb-stale-statuses-1xx",
        "fallback",
        one_rule(serve=[{"stale": {**STALE, "statuses": ["1xx"]}}]),
        "rules[0].serve[0].stale.statuses",
    ),
    Case(
        "fb-duplicate-names",
        "fallback",
        {"rules": [{"name": "a", "serve": STATIC}, {"name": "a", "serve": STATIC}]},
        "rules[1].name",
    ),
    Case("fb-bad-base64", "fallback", one_rule(serve=[{"static": {"body_base64": "!!"}}]), "rules[0].serve[0].static.body_base64"),
    Case(
        "fb-body-and-body-base64",
        "fallback",
        one_rule(serve=[{"static": {"body": "a", "body_base64": "YQ=="}}]),
        "rules[0].serve[0].static.body_base64",
    ),
    Case(
        "fb-two-sources-in-one-item",
        "fallback",
        one_rule(serve=[{"static": {}, "stale": STALE}]),
        "rules[0].serve[0]",
    ),
    Case("fb-cache-too-many-entries", "fallback", {"rules": [], "cache": {"max_entries": 5000}}, "cache.max_entries"),
    Case(
        "fb-cache-body-bigger-than-cache",
        "fallback",
        {"rules": [], "cache": {"max_bytes": 2048, "max_body_bytes": 4096}},
        "cache.max_body_bytes",
    ),
    Case(
        "fb-managed-header",
        "fallback",
        one_rule(serve=[{"static": {"headers": {"x-breakwater-fallback": "x"}}}]),
        "rules[0].serve[0].static.headers.x-breakwater-fallback",
    ),
    Case("fb-relative-path-prefix", "fallback", one_rule(match={"path_prefix": "x"}, serve=STATIC), "rules[0].match.path_prefix"),
    # gRPC: every form that cannot work for a gRPC call
    Case(
        "fb-grpc-status-ok",
        "fallback",
        one_rule(serve=[{"grpc": {"status": "OK"}}]),
        "rules[0].serve[0].grpc.status",
        "OK cannot be a fallback",
    ),
    Case("fb-grpc-status-missing", "fallback", one_rule(serve=[{"grpc": {"message": "m"}}]), "rules[0].serve[0].grpc.status"),
    Case("fb-grpc-status-unknown", "fallback", one_rule(serve=[{"grpc": {"status": "DEGRADED"}}]), "rules[0].serve[0].grpc.status"),
    Case(
        "fb-grpc-statuses-ok",
        "fallback",
        one_rule(on={"grpc_statuses": ["UNAVAILABLE", "OK"]}, serve=[{"grpc": {"status": 9}}]),
        "rules[0].on.grpc_statuses[1]",
    ),
    Case(
        "fb-grpc-statuses-without-grpc-source",
        "fallback",
        one_rule(on={"grpc_statuses": ["UNAVAILABLE"]}, serve=[{"static": {"status": 200}}]),
        "rules[0].on.grpc_statuses",
        "only a grpc source answers gRPC calls",
    ),
    Case(
        "fb-grpc-reserved-metadata",
        "fallback",
        one_rule(serve=[{"grpc": {"status": 9, "metadata": {"grpc-status": "0"}}}]),
        "rules[0].serve[0].grpc.metadata.grpc-status",
    ),
    Case(
        "fb-grpc-bin-metadata-not-base64",
        "fallback",
        one_rule(serve=[{"grpc": {"status": 9, "metadata": {"trace-bin": "not base64!"}}}]),
        "rules[0].serve[0].grpc.metadata.trace-bin",
    ),
    Case(
        "fb-grpc-message-too-long",
        "fallback",
        one_rule(serve=[{"grpc": {"status": 9, "message": "x" * 1025}}]),
        "rules[0].serve[0].grpc.message",
    ),
    # --- log enrichment -------------------------------------------------------------------------
    Case("log-unknown-top-key", "log", {"servce": {}}, "servce", "unknown field"),
    Case("log-unknown-redact-key", "log", {"redact": {"mde": "mask"}}, "redact.mde", "unknown field"),
    Case("log-unknown-service-key", "log", {"service": {"name": "a", "team": "b"}}, "service.team", "unknown field"),
    Case("log-headers-not-a-list", "log", {"request_headers": "user-agent"}, "request_headers"),
    Case("log-generate-string", "log", {"correlation": {"generate": "yes"}}, "correlation.generate"),
    Case(
        "log-credential-request-header",
        "log",
        {"request_headers": ["user-agent", "Authorization"]},
        "request_headers[1]",
        "carries credentials",
    ),
    Case("log-credential-response-header", "log", {"response_headers": ["set-cookie"]}, "response_headers[0]", "carries credentials"),
    Case("log-credential-correlation-header", "log", {"correlation": {"header": "cookie"}}, "correlation.header", "credentials"),
    Case("log-duplicate-header", "log", {"request_headers": ["a", "A"]}, "request_headers[1]", "listed twice"),
    Case("log-hash-without-key", "log", {"redact": {"mode": "hash"}}, "redact.mode", "needs redact.hmac_key"),
    Case("log-short-hmac-key", "log", {"redact": {"mode": "hash", "hmac_key": "short"}}, "redact.hmac_key"),
    Case("log-sampling-rate-1.5", "log", {"sampling": {"rate": 1.5}}, "sampling.rate", "from 0.0 to 1.0"),
    Case("log-sampling-rate-negative", "log", {"sampling": {"rate": -0.1}}, "sampling.rate"),
    Case("log-bad-keep-class", "log", {"sampling": {"always_keep": ["5xx", "errors"]}}, "sampling.always_keep[1]"),
    Case(
        "log-bad-keep-grpc-name",
        "log",
        {"sampling": {"always_keep": ["grpc_error", "UNAVAILBLE"]}},
        "sampling.always_keep[1]",
    ),
    Case("log-bad-slow-duration", "log", {"sampling": {"slow": "fast"}}, "sampling.slow"),
    Case("log-unknown-detector", "log", {"redact": {"detectors": ["email", "ssn"]}}, "redact.detectors[1]", "no_national_id"),
    Case(
        "log-too-many-headers",
        "log",
        {"request_headers": [f"x-h{i}" for i in range(33)]},
        "request_headers",
        "at most 32",
    ),
    Case(
        "log-too-many-query-params",
        "log",
        {"redact": {"query_params": [f"p{i}" for i in range(65)]}},
        "redact.query_params",
        "at most 64",
    ),
    Case(
        "log-upstream-correlation-header",
        "log",
        {"upstream_headers": {"x-correlation-id": "fixed"}},
        "upstream_headers.x-correlation-id",
    ),
    Case("log-body-max-bytes", "log", {"body": {"max_bytes": 1000000}}, "body.max_bytes"),
    Case("log-max-value-bytes", "log", {"redact": {"max_value_bytes": 4}}, "redact.max_value_bytes"),
    Case(
        "log-pattern-regex-does-not-compile",
        "log",
        one_pattern({"name": "ticket", "regex": "(TCK-\\d+"}),
        "redact.patterns[1].regex",
        "does not compile (regex-lite syntax",
    ),
    Case(
        "log-pattern-built-in-name",
        "log",
        {"redact": {"patterns": [{"name": "email", "regex": "x"}]}},
        "redact.patterns[0].name",
        '"email" is a built-in detector\'s name; choose another',
    ),
    Case(
        "log-pattern-duplicate-name",
        "log",
        one_pattern({"name": "kid", "regex": "\\d{4}"}),
        "redact.patterns[1].name",
        '"kid" is given to two patterns',
    ),
    Case(
        "log-pattern-matches-empty-string",
        "log",
        {"redact": {"patterns": [{"name": "x_run", "regex": "x*"}]}},
        "redact.patterns[0].regex",
        "matches the empty string",
    ),
    Case(
        "log-pattern-distance-without-keywords",
        "log",
        {"redact": {"patterns": [{"name": "kid", "regex": "\\d{8}", "keyword_distance": 10}]}},
        "redact.patterns[0].keyword_distance",
        "needs keywords",
    ),
    Case(
        "log-too-many-patterns",
        "log",
        {"redact": {"patterns": [{"name": f"p{i}", "regex": f"x{i}"} for i in range(33)]}},
        "redact.patterns",
        "at most 32 patterns",
    ),
    Case(
        "log-bad-body-field-path",
        "log",
        {"body": {"redact_fields": ["ssn", "a..b"]}},
        "body.redact_fields[1]",
        '"a..b" is not a field name or path',
    ),
    Case("log-parse-max-bytes-0", "log", {"body": {"parse_max_bytes": 0}}, "body.parse_max_bytes", "0 is outside 1 to 65536"),
]

# The cases also pushed to a real Envoy (two or more per filter, of different kinds).
ENVOY_SAMPLE = [
    "cb-unknown-window-key",
    "cb-bad-status-class",
    "cb-duplicate-names",
    "cb-grpc-reply-ok",
    "fb-bad-base64",
    "fb-bad-response-flag",
    "fb-cache-too-many-entries",
    "fb-grpc-status-ok",
    "fb-grpc-statuses-without-grpc-source",
    "log-hash-without-key",
    "log-credential-request-header",
    "log-sampling-rate-1.5",
    "log-pattern-regex-does-not-compile",
]

BY_ID = {case.id: case for case in CATALOGUE}


def filter_entry(filter_kind: str, configuration: dict | str) -> dict:
    """The Envoy HTTP filter for `configuration`, through the harness's builders where they fit."""
    if isinstance(configuration, dict):
        keys = set(configuration)
        if filter_kind == "breaker" and keys == {"breakers"} and isinstance(configuration["breakers"], list):
            return breaker_filter(configuration["breakers"])
        if filter_kind == "fallback" and "rules" in keys and keys <= {"rules", "cache"} and isinstance(configuration["rules"], list):
            return fallback_filter(configuration["rules"], configuration.get("cache"))
        if filter_kind == "log":
            return log_filter(configuration)
    return wasm_filter(LABELS[filter_kind], str(dist_module(MODULES[filter_kind])), configuration)


def test_the_catalogue_covers_every_filter():
    counts = {kind: sum(1 for c in CATALOGUE if c.filter == kind) for kind in LABELS}
    assert len(CATALOGUE) >= 30 and min(counts.values()) >= 8, counts
    assert len(BY_ID) == len(CATALOGUE), "case ids are unique"
    sample_counts = {kind: sum(1 for i in ENVOY_SAMPLE if BY_ID[i].filter == kind) for kind in LABELS}
    assert min(sample_counts.values()) >= 2, sample_counts


# --- (a) every case through `breakwater validate` -------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> Path:
    """The native CLI, built (or brought up to date) once."""
    subprocess.run(["cargo", "build", "--locked", "-q", "-p", "breakwater-cli"], cwd=REPO, check=True, timeout=900)
    assert CLI.exists()
    return CLI


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_validate_names_the_field(case: Case, cli: Path, tmp_path: Path):
    bootstrap = envoy_config(9, http_filters=[filter_entry(case.filter, case.configuration)])
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(bootstrap))
    result = subprocess.run([str(cli), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"error {path}: ")]
    assert len(problems) == 1, result.stderr
    problem = problems[0].removeprefix(f"error {path}: ")
    # document 1 (Envoy config): <path of the Wasm PluginConfig>.configuration[.<field>]: <reason>
    match = re.fullmatch(r"document 1 \(Envoy config\): (\S+?)\.configuration(?:\.(\S+))?: (.+)", problem)
    assert match, problem
    plugin_path, field, reason = match.groups()
    assert plugin_path == PLUGIN_PATH, problem
    assert (field or "") == case.field, problem
    assert case.reason in reason, problem


# --- (b) a sample through a real Envoy, as LDS updates --------------------------------------------


@dataclass
class Baseline:
    """A valid configuration for a filter, and how a request shows that it is running."""

    configuration: dict
    prepare: Callable[[Any], None]  # (upstream) -> None
    shows_old_behaviour: Callable[[Any], bool]  # (response) -> bool


def _status(code: int) -> Callable[[Any], None]:
    return lambda upstream: upstream.set_mode("status", code=code)


BASELINES = {
    # Two consecutive 503s open the breaker for a minute; its rejections carry the body "cb-v1".
    "breaker": Baseline(
        {"breakers": [{"name": "api", "trip": {"consecutive_failures": 2}, "open": {"duration": "60s"}, "response": {"body": "cb-v1"}}]},
        _status(503),
        lambda r: r.status == 503 and r.body == b"cb-v1",
    ),
    # A 503 from the upstream is replaced by a static 200 "fb-v1".
    "fallback": Baseline(
        {"rules": [{"name": "r", "on": {"statuses": [503]}, "serve": [{"static": {"status": 200, "body": "fb-v1"}}]}]},
        _status(503),
        lambda r: r.status == 200 and r.body == b"fb-v1",
    ),
    # The correlation id comes back in the response under a header only this config names.
    "log": Baseline(
        {"correlation": {"header": "x-trace-v1", "generate": True, "echo_in_response": True}},
        _status(200),
        lambda r: r.status == 200 and bool(r.headers.get("x-trace-v1")),
    ),
}


def _envoy_sample_params():
    return [pytest.param(kind, [i for i in ENVOY_SAMPLE if BY_ID[i].filter == kind], id=kind) for kind in LABELS]


@pytest.mark.parametrize("filter_kind,case_ids", _envoy_sample_params())
def test_envoy_refuses_pushed_bad_configs_and_keeps_the_previous_one(filter_kind, case_ids, upstream, tmp_path):
    label = LABELS[filter_kind]
    baseline = BASELINES[filter_kind]
    lds_path = tmp_path / "lds.json"
    port = free_port()

    def push(configuration: dict | str) -> None:
        push_listener(lds_path, envoy_config(upstream.port, http_filters=[filter_entry(filter_kind, configuration)]), port)

    push(baseline.configuration)
    bootstrap = lds_bootstrap(upstream.port, lds_path)
    url = f"http://127.0.0.1:{port}/api"
    marker = f"breakwater {label}: invalid configuration:"

    with Envoy(bootstrap) as envoy:

        def stat(name: str) -> int:
            return envoy.stats(f"^{re.escape(name)}$").get(name, 0)

        def refusals() -> list[str]:
            return [line for line in envoy.log_text().splitlines() if marker in line]

        baseline.prepare(upstream)
        responses = [request(url) for _ in range(3)]
        assert baseline.shows_old_behaviour(responses[-1]), responses[-1]
        assert refusals() == []

        for rejected, case_id in enumerate(case_ids, start=1):
            case = BY_ID[case_id]
            before = len(refusals())
            push(case.configuration)
            deadline = time.monotonic() + 10
            while stat("listener_manager.lds.update_rejected") < rejected:
                assert time.monotonic() < deadline, f"{case_id}: Envoy never rejected the update\n{envoy.log_excerpt()}"
                time.sleep(0.05)
            # The refusal line is logged before the update is rejected; give the log a moment.
            deadline = time.monotonic() + 2
            while len(refusals()) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # a second (duplicate) line would show up by now
            new = refusals()[before:]
            assert len(new) == 1, f"{case_id}: {new}"
            assert f"{marker} {case.field}: " in new[0], f"{case_id}: {new[0]}"
            assert case.reason in new[0], f"{case_id}: {new[0]}"
            # The previous configuration still serves.
            response = request(url)
            assert baseline.shows_old_behaviour(response), f"{case_id}: {response}"
        assert stat("listener_manager.lds.update_rejected") == len(case_ids)
