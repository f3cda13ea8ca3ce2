"""The fallback filter end to end: real Envoy 1.40 with 2 worker threads, real upstreams."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.harness.envoy import refusal_log_lines
from tests.harness import (
    Envoy,
    Upstream,
    breaker_filter,
    dist_module,
    envoy_config,
    fallback_filter,
    redis,
    request,
    static_cluster,
    wait_for_access_log,
    wasm_filter,
)

STAT = "wasmcustom.breakwater.fallback"
POPULAR = '["bestseller-1","bestseller-2"]'
STATIC = {"static": {"status": 200, "headers": {"content-type": "application/json"}, "body": POPULAR}}


def rule(name: str = "recs", serve: list[dict] | None = None, **fields) -> dict:
    return {"name": name, "match": {"path_prefix": "/recommendations"}, "serve": serve or [STATIC], **fields}


def get(envoy: Envoy, path: str = "/recommendations", **kwargs):
    return request(envoy.url(path), **kwargs)


def served_by(response) -> str | None:
    return response.headers.get("x-breakwater-fallback")


def stat(envoy: Envoy, name: str) -> int:
    return envoy.stat(f"{STAT}.{name}")


def get_on_worker(envoy: Envoy, path: str):
    """One request on a new connection, and the worker thread that served it."""
    before = envoy.worker_connection_counts()
    response = get(envoy, path)
    after = envoy.worker_connection_counts()
    (worker,) = [i for i, (a, b) in enumerate(zip(after, before)) if a != b]
    return response, worker


# --- static -------------------------------------------------------------------------------------


def test_static_fallback_replaces_an_upstream_503(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule()])])
    upstream.set_mode("status", code=503)
    response = get(envoy)
    assert response.status == 200
    assert response.text == POPULAR
    assert response.headers["content-type"] == "application/json"
    assert served_by(response) == "static"
    assert get(envoy, "/other").status == 503, "unmatched paths are left alone"
    assert stat(envoy, "recs.served.static") == 1
    entries = wait_for_access_log(envoy.access_log, lambda e: e["path"] == "/recommendations")
    assert (entries[0]["fallback_rule"], entries[0]["fallback_trigger"], entries[0]["fallback_served"]) == (
        "recs", "status", "static")


@pytest.mark.parametrize("mode,params,flag,route_timeout", [
    ("refuse", {}, "UF", "5s"),
    ("hang", {}, "UT", "0.3s"),
])  # fmt: skip
def test_envoys_own_errors_trigger_through_response_flags(start_envoy, upstream, mode, params, flag, route_timeout):
    # No status triggers, only the flag: Envoy's own reply for a refused connection (503 UF) or
    # an upstream timeout (504 UT) must be recognised by its flag.
    envoy = start_envoy(
        [fallback_filter([rule(on={"statuses": [], "response_flags": [flag], "breaker_open": False})])],
        route_timeout=route_timeout,
    )
    upstream.set_mode("status", code=503)
    assert get(envoy).status == 503, "a plain upstream 503 is not this rule's trigger"
    upstream.set_mode(mode, **params)
    time.sleep(0.1)  # Envoy notices closed pooled connections
    response = get(envoy)
    assert (response.status, served_by(response), response.text) == (200, "static", POPULAR)
    entry = wait_for_access_log(envoy.access_log, lambda e: e["fallback_served"] == "static")[0]
    assert (entry["flags"], entry["fallback_trigger"]) == (flag, "response_flags")


def test_good_responses_pass_untouched(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule()])])
    responses = [get(envoy) for _ in range(5)]
    assert all(r.status == 200 and served_by(r) is None and b'"upstream": "ok"' in r.body for r in responses)
    assert stat(envoy, "recs.triggered") == 0


# --- stale ---------------------------------------------------------------------------------------


def test_stale_is_served_by_the_worker_that_did_not_store_it(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])])])
    upstream.set_mode("ok", body='["fresh-1","fresh-2"]')
    _, storing_worker = get_on_worker(envoy, "/recommendations?user=7")
    assert stat(envoy, "recs.cache.stores") == 1
    upstream.set_mode("status", code=503)
    for _ in range(40):  # new connections until one lands on the other worker
        response, worker = get_on_worker(envoy, "/recommendations?user=7")
        if worker != storing_worker:
            break
    else:
        pytest.fail("no request reached the other worker")
    assert (response.status, served_by(response), response.text) == (200, "stale", '["fresh-1","fresh-2"]')
    assert int(response.headers["age"]) >= 0
    # Another URL has nothing stored and gets the next source.
    assert served_by(get(envoy, "/recommendations?user=8")) == "static"
    assert stat(envoy, "cache.entries") == 1


def test_stale_expires_after_max_age_then_the_next_source_answers(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "1s"}}, STATIC])])])
    get(envoy)
    upstream.set_mode("status", code=500)
    assert served_by(get(envoy)) == "stale"
    time.sleep(1.1)
    response = get(envoy)
    assert (served_by(response), response.text) == ("static", POPULAR)
    assert stat(envoy, "recs.cache.misses") == 1


def test_no_store_responses_are_never_served_stale(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])])])
    upstream.set_mode("ok", cache_control="no-store")
    for _ in range(4):
        assert get(envoy).status == 200
    upstream.set_mode("status", code=500)
    assert served_by(get(envoy)) == "static"
    assert stat(envoy, "recs.cache.stores") == 0


def test_requests_with_credentials_are_not_stored(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])])])
    get(envoy, headers={"Authorization": "Bearer secret"})
    get(envoy, headers={"Cookie": "session=1"})
    upstream.set_mode("status", code=500)
    assert served_by(get(envoy)) == "static"
    assert stat(envoy, "recs.cache.stores") == 0


def test_upstream_stale_if_error_is_honoured(start_envoy, upstream):
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])])])
    upstream.set_mode("ok", cache_control="max-age=0, stale-if-error=1")
    get(envoy)
    upstream.set_mode("status", code=500)
    assert served_by(get(envoy)) == "stale"
    time.sleep(1.1)
    assert served_by(get(envoy)) == "static", "the upstream allowed 1 s, shorter than the rule's 10m"


def test_cache_bounds_hold_under_many_distinct_keys(start_envoy, upstream):
    cache = {"max_entries": 20, "max_bytes": 8192, "max_body_bytes": 1024, "min_store_interval": "0s"}
    envoy = start_envoy([fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])], cache)])
    for i in range(150):
        assert get(envoy, f"/recommendations/{i}").status == 200
    assert stat(envoy, "recs.cache.stores") == 150
    assert stat(envoy, "cache.entries") <= 20
    assert stat(envoy, "cache.bytes") <= 8192
    assert stat(envoy, "cache.evictions") >= 130
    upstream.set_mode("status", code=503)
    assert served_by(get(envoy, "/recommendations/149")) == "stale", "the newest entries stay"
    assert served_by(get(envoy, "/recommendations/0")) == "static", "the oldest were evicted"


# --- service -------------------------------------------------------------------------------------


def test_service_source_answers_from_a_second_upstream_and_falls_through_on_timeout(start_envoy, upstream):
    with Upstream() as popular:
        service = {"service": {"cluster": "popular-cache", "path": "/popular.json", "timeout": "300ms"}}
        envoy = start_envoy(
            [fallback_filter([rule(serve=[service, STATIC])])],
            extra_clusters=[static_cluster("popular-cache", popular.port)],
        )
        upstream.set_mode("status", code=503)
        popular.set_mode("ok", body='["from-service"]')
        response = get(envoy)
        assert (response.status, served_by(response), response.text) == (200, "service", '["from-service"]')
        assert popular.count(path_prefix="/popular.json") == 1
        popular.set_mode("hang")
        response = get(envoy)
        assert (served_by(response), response.text) == ("static", POPULAR)
        assert 250 < response.elapsed_ms < 2000, "waited for the service's own 300ms timeout"
        assert stat(envoy, "recs.service_failures") == 1


def test_an_unknown_service_cluster_falls_through(start_envoy, upstream):
    service = {"service": {"cluster": "no-such-cluster", "path": "/x"}}
    envoy = start_envoy([fallback_filter([rule(serve=[service, STATIC])])])
    upstream.set_mode("status", code=503)
    assert served_by(get(envoy)) == "static"


# --- with the circuit breaker ----------------------------------------------------------------------


def test_while_the_breaker_is_open_the_client_gets_the_fallback(start_envoy, upstream):
    # The fallback sits before the breaker, so it sees the breaker's rejection on the way out.
    envoy = start_envoy([
        fallback_filter([rule(serve=[{"stale": {"max_age": "10m"}}, STATIC])]),
        breaker_filter([{"name": "recs", "match": {"path_prefix": "/recommendations"},
                         "trip": {"consecutive_failures": 3}, "open": {"duration": "30s"}}]),
    ])  # fmt: skip
    upstream.set_mode("ok", body='["last-good"]')
    get(envoy)
    upstream.set_mode("status", code=503)
    for _ in range(3):
        assert served_by(get(envoy)) == "stale", "upstream failures get the stale answer"
    upstream.reset_counts()
    responses = [get(envoy) for _ in range(10)]
    assert upstream.count() == 0, "the breaker is open: nothing reaches the upstream"
    assert all((r.status, served_by(r), r.text) == (200, "stale", '["last-good"]') for r in responses)
    assert all("x-breakwater-breaker" not in r.headers for r in responses), "the breaker's 503 was replaced"
    entries = wait_for_access_log(envoy.access_log, lambda e: e["decision"] == "rejected", count=10)
    assert {(e["fallback_trigger"], e["fallback_served"], e["status"]) for e in entries} == {("breaker_open", "stale", "200")}
    assert envoy.stat("wasmcustom.breakwater.circuit_breaker.recs.rejected") == 10


# --- configuration ---------------------------------------------------------------------------------

INVALID = [
    ({"rules": [{"name": "r"}]}, "rules[0].serve: is required"),
    ({"rules": [{"name": "r", "serve": [{"stale": {}}]}]}, "rules[0].serve[0].stale.max_age: is required"),
    ({"rules": [{"name": "r", "serve": [{"statik": {}}]}]}, "rules[0].serve[0]: unknown source `statik`, give exactly one of static, stale, service"),
    ({"rules": [{"name": "r", "serve": [STATIC], "on": {"statuses": ["6xx"]}}]}, 'rules[0].on.statuses[0]: invalid status class "6xx"'),
    ({"cache": {"max_entries": 0}}, "cache.max_entries: 0 is outside 1 to 4096"),
]


@pytest.mark.parametrize("configuration,message", INVALID, ids=[m.split(":")[0] for _, m in INVALID])
def test_an_invalid_config_is_refused_with_the_field_named(upstream, configuration, message):
    config = envoy_config(upstream.port, http_filters=[wasm_filter("fb", str(dist_module("fallback")), configuration)])
    lines = refusal_log_lines(config, "fallback")
    assert len(lines) == 1 and message in lines[0], lines


def test_module_is_at_most_512_kib():
    assert dist_module("fallback").stat().st_size <= 512 * 1024


# --- the Redis recipe --------------------------------------------------------------------------------


def test_redis_recipe_serves_popular_items_from_redis_through_webdis(start_envoy, upstream):
    if not redis.available():
        # CI sets BREAKWATER_REQUIRE_REDIS so this can never pass there by being skipped.
        if os.environ.get("BREAKWATER_REQUIRE_REDIS"):
            pytest.fail("redis-server, redis-cli and webdis are required here")
        pytest.skip("redis-server, redis-cli and webdis are not installed (.ci/run installs them)")
    with redis.RedisWebdis() as kv:
        kv.set("popular-items", '["redis-1","redis-2"]')
        service = {"service": {"cluster": "popular-cache", "path": "/GET/popular-items?type=application/json",
                               "timeout": "500ms"}}  # fmt: skip
        envoy = start_envoy(
            [fallback_filter([rule(serve=[service, STATIC])])],
            extra_clusters=[static_cluster("popular-cache", kv.http_port)],
        )
        upstream.set_mode("status", code=503)
        response = get(envoy)
        assert (response.status, served_by(response), response.text) == (200, "service", '["redis-1","redis-2"]')
        assert response.headers["content-type"] == "application/json"
        kv.set("popular-items", '["redis-3"]')
        assert get(envoy).text == '["redis-3"]', "answers follow what is in Redis"


def test_shipped_redis_recipe_config_matches_the_test():
    text = (dist_module("fallback").parents[1] / "envoy" / "fallback-redis.yaml").read_text()
    assert re.search(r'"path": "/GET/popular-items\?type=application/json"', text)
