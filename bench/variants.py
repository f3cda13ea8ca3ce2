"""What is measured: the Envoy configurations compared side by side.

Every variant is Envoy (`--concurrency 1`) with one HTTP listener in front of the same upstream,
an Envoy `direct_response` listener (the cheapest upstream there is). They differ only in the
HTTP filters (and, for the native peers, the route or an access log). The breakwater filters run
in their common configuration: the one `istio/base` ships, matched to every request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from tests.harness.config import ROUTER_FILTER, dist_module, socket_address, static_cluster, wasm_filter
from tests.harness.contract import access_log_field, contract

REPO_ROOT = Path(__file__).resolve().parents[1]
EMPTY_FILTER = REPO_ROOT / "dist" / "bench" / "empty_filter.wasm"
FLOOR_FILTER = REPO_ROOT / "dist" / "bench" / "floor_filter.wasm"

TYPICAL_PATH = "/api/v1/recommendations/12345?page=2&sort=desc"
PII_PATH = "/customers/ola.nordmann%40example.no/recommendations?fnr=01010012356&token=s3cret&page=2"
FAIL_PATH = "/fail/recommendations"
HEADERS = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "accept": "application/json",
    "x-tenant-id": "acme-retail",
}
PII_HEADERS = {**HEADERS, "x-tenant-id": "card 4111 1111 1111 1111", "x-customer": "ola.nordmann@example.no"}
UPSTREAM_BODY = '["rec-1","rec-2","rec-3"]'
BREAKER_BODY = '{"error":"recommendations unavailable"}'
STATIC_BODY = '["bestseller-1","bestseller-2"]'


def plugin_config(name: str) -> dict:
    """`pluginConfig` of istio/base/<name>.yaml."""
    return yaml.safe_load((REPO_ROOT / "istio" / "base" / f"{name}.yaml").read_text())["spec"]["pluginConfig"]


def breaker_config(mode: str = "enforce", open_duration: str | None = None) -> dict:
    config = plugin_config("circuit-breaker")
    config["breakers"][0]["match"] = {"path_prefix": "/"}
    config["breakers"][0]["mode"] = mode
    if open_duration:
        config["breakers"][0]["open"].update(duration=open_duration, max_duration=open_duration)
    return config


def open_breaker() -> dict:
    """A breaker that stays open for an hour once `trip` has opened it."""
    return wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), breaker_config(open_duration="1h"))


def trip(url: Callable[[str], str]) -> None:
    """Opens the breaker: five consecutive upstream 503s."""
    from tests.harness import request

    for _ in range(5):
        request(url(FAIL_PATH))


def fallback_config(serve: tuple[str, ...] = ("stale", "static")) -> dict:
    config = plugin_config("fallback")
    rule = config["rules"][0]
    rule["match"] = {"path_prefix": "/", "methods": ["GET"]}
    rule["serve"] = [s for s in rule["serve"] if next(iter(s)) in serve]
    return config


def log_config() -> dict:
    config = plugin_config("log-enrichment")
    config["sampling"]["rate"] = 1.0  # every request makes its record
    config["request_headers"] = ["user-agent", "accept", "x-tenant-id", "x-customer"]
    return config


def log_lean_config() -> dict:
    """log_config with `envoy_fields: "access_log"`: Envoy's operators print what Envoy has."""
    return {**log_config(), "envoy_fields": "access_log"}


def breaker() -> dict:
    return wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), breaker_config())


def fallback() -> dict:
    return wasm_filter("fallback", str(dist_module("fallback")), fallback_config())


def log() -> dict:
    return wasm_filter("log-enrichment", str(dist_module("log_enrichment")), log_config())


def log_lean() -> dict:
    return wasm_filter("log-enrichment", str(dist_module("log_enrichment")), log_lean_config())


def lean_record_log(path: str) -> dict:
    """The access log of `envoy_fields: "access_log"`: Envoy's operators and the record's members
    in one JSON object per request (the contract's format)."""
    log = record_log(path)
    log["typed_config"]["log_format"]["text_format_source"]["inline_string"] = contract()["access_log_format"] + "\n"
    return log


def record_log(path: str) -> dict:
    """The access log of log-enrichment records (one line per request)."""
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": access_log_field("log_record") + "\n"}},
        },
    }


def json_access_log(path: str) -> dict:
    """Envoy's own JSON access log with the record's fields Envoy can give without a filter
    (no redaction, no correlation ids, no decisions): the native peer of log enrichment."""
    fields = {
        "timestamp": "%START_TIME%", "request.id": "%REQ(X-REQUEST-ID)%",
        "http.request.method": "%REQ(:METHOD)%", "url.path": "%REQ(:PATH)%",
        "server.address": "%REQ(:AUTHORITY)%", "network.protocol.version": "%PROTOCOL%",
        "http.response.status_code": "%RESPONSE_CODE%", "envoy.response_flags": "%RESPONSE_FLAGS%",
        "envoy.response_code_details": "%RESPONSE_CODE_DETAILS%", "duration_ms": "%DURATION%",
        "http.request.body.size": "%BYTES_RECEIVED%", "http.response.body.size": "%BYTES_SENT%",
        "upstream.address": "%UPSTREAM_HOST%", "envoy.cluster": "%UPSTREAM_CLUSTER%",
        "envoy.route": "%ROUTE_NAME%", "client.address": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "user_agent.original": "%REQ(USER-AGENT)%", "http.request.header.x-tenant-id": "%REQ(X-TENANT-ID)%",
        "http.request.header.accept": "%REQ(ACCEPT)%", "http.response.header.content-type": "%RESP(CONTENT-TYPE)%",
    }  # fmt: skip
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"json_format": fields},
        },
    }


def empty_filter() -> dict:
    if not EMPTY_FILTER.exists():
        raise FileNotFoundError(f"{EMPTY_FILTER} is missing: make bench builds it")
    return wasm_filter("empty", str(EMPTY_FILTER), "")


# The floors: bench/floor-filter making exactly the host calls a breakwater filter makes on the
# measured path, at the same callbacks, and nothing else (bench/host_calls.py counts the filters'
# calls in the same run; the report checks that each floor makes as many). A filter's ratio to
# its floor is what its own Rust costs on top of the host calls it makes.
BREAKER_KEY = "floor.breaker_state"


def filter_state(key: str, value: str) -> dict:
    return {"filter_state": {"key": key, "bytes": len(value)}}


def breaker_floor_calls() -> dict:
    """The breaker, closed, healthy (istio/base: path matcher, hang_after and release)."""
    return {
        "request_headers": [
            {"request_header": ":path"}, {"request_header": ":method"}, "time", {"shared_get": BREAKER_KEY},
            filter_state("breakwater.circuit_breaker", "passed,closed,recommendations"),
        ],
        "response_headers": [{"response_header": ":status"}, "time"],
        "log": [{"property": ["response", "flags"]}, "time", {"metric": "breakwater.floor.calls"}, {"shared_set": BREAKER_KEY},
                filter_state("breakwater.circuit_breaker.outcome", "success")],
    }  # fmt: skip


def fallback_floor_calls() -> dict:
    """The fallback, rule matching (GET), stale source, a fresh copy already kept."""
    return {
        "request_headers": [{"request_header": h} for h in (":path", ":method", ":authority", "authorization", "cookie")],
        "response_headers": [{"response_header": ":status"}, {"property": ["response", "flags"]}, "time"],
    }


LOG_PROPERTIES = [["request", "time"], ["request", "protocol"], ["response", "code"], ["response", "flags"],
                  ["response", "code_details"], ["request", "duration"], ["request", "size"], ["response", "size"],
                  ["upstream", "address"], ["xds", "cluster_name"], ["xds", "route_name"], ["source", "address"],
                  ["breakwater.circuit_breaker"], ["breakwater.fallback"]]  # fmt: skip
# What `envoy_fields: "access_log"` leaves to the access log's operators.
LEFT_TO_ACCESS_LOG = [["request", "time"], ["request", "protocol"], ["response", "code"], ["response", "flags"],
                      ["request", "duration"], ["request", "size"], ["response", "size"], ["upstream", "address"],
                      ["xds", "cluster_name"], ["xds", "route_name"]]  # fmt: skip
# The record of the `log` variant's request (the chain's has the breaker's and fallback's fields),
# whole and (lean) as the members `envoy_fields: "access_log"` writes.
RECORD_BYTES = {"log": 1021, "chain": 1176, "log-lean": 751, "chain-lean": 906}


def log_floor_calls(record_bytes: int = RECORD_BYTES["log"], lean: bool = False) -> dict:
    """Log enrichment, every record kept, a correlation id generated (`lean`: under
    `envoy_fields: "access_log"`)."""
    properties = [p for p in LOG_PROPERTIES if not (lean and p in LEFT_TO_ACCESS_LOG)]
    return {
        "request_headers": [{"request_header": "x-correlation-id"}, "random", {"set_request_header": "x-correlation-id"},
                            {"metric": "breakwater.floor.generated"}],
        "log": [*({"property": p} for p in properties), {"header_map": "request"}, {"header_map": "response"},
                {"metric": "breakwater.floor.records"}, {"metric": "breakwater.floor.redactions"},
                {"filter_state": {"key": "breakwater_log", "bytes": record_bytes}}],
    }  # fmt: skip


def floor(calls: dict) -> dict:
    if not FLOOR_FILTER.exists():
        raise FileNotFoundError(f"{FLOOR_FILTER} is missing: make bench builds it")
    return wasm_filter("floor", str(FLOOR_FILTER), calls)


def floor_call_count(calls: dict) -> int:
    return sum(len(calls.get(phase, [])) for phase in ("request_headers", "response_headers", "log"))


# Which floor stands for which filter, and the path of bench/host_calls.py it mirrors.
LEAN_PATH = 'lean (envoy_fields: "access_log")'
FLOORS = {
    "floor-breaker": ("breaker", "breaker", "healthy", [breaker_floor_calls()]),
    "floor-fallback": ("fallback", "fallback", "healthy (stale source keeps the response)", [fallback_floor_calls()]),
    "floor-log": ("log", "log", "typical (every record kept)", [log_floor_calls()]),
    "floor-chain": ("chain", "chain", "healthy (log → fallback → breaker)",
                    [log_floor_calls(RECORD_BYTES["chain"]), fallback_floor_calls(), breaker_floor_calls()]),
    "floor-log-lean": ("log-lean", "log", LEAN_PATH, [log_floor_calls(RECORD_BYTES["log-lean"], lean=True)]),
    "floor-chain-lean": ("chain-lean", "chain", f"healthy, {LEAN_PATH}",
                         [log_floor_calls(RECORD_BYTES["chain-lean"], lean=True), fallback_floor_calls(),
                          breaker_floor_calls()]),
}  # fmt: skip


def lua(name: str) -> dict:
    from bench.lua_filters import lua_filter

    return lua_filter(name)


def lua_record_log(path: str) -> dict:
    from bench.lua_filters import lua_record_access_log

    return lua_record_access_log(path)


def custom_response() -> dict:
    """Envoy's custom_response filter: a 5xx from upstream becomes the static fallback body."""
    return {
        "name": "envoy.filters.http.custom_response",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.custom_response.v3.CustomResponse",
            "custom_response_matcher": {
                "matcher_list": {
                    "matchers": [{
                        "predicate": {"single_predicate": {
                            "input": {"name": "status_code", "typed_config": {
                                "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpResponseStatusCodeClassMatchInput"}},
                            "value_match": {"exact": "5xx"},
                        }},
                        "on_match": {"action": {"name": "static", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.http.custom_response.local_response_policy.v3.LocalResponsePolicy",
                            "status_code": 200,
                            "body": {"inline_string": STATIC_BODY},
                            "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
                        }}},
                    }],
                },
            },
        },
    }  # fmt: skip


@dataclass
class Variant:
    name: str
    group: str  # baseline / breakwater / lua / native
    description: str
    filters: Callable[[], list[dict]] = lambda: []
    access_log: Callable[[str], dict] | None = None
    path: str = TYPICAL_PATH
    headers: dict[str, str] = field(default_factory=lambda: dict(HEADERS))
    direct_response: tuple[int, str] | None = None  # the route answers itself
    expect_status: int = 200
    prepare: Callable[[Callable[[str], str]], None] | None = None  # given the URL builder


VARIANTS = [
    Variant("bare", "baseline", "Envoy, no filter"),
    Variant("empty-wasm", "baseline", "an empty Rust proxy-wasm filter (SDK 0.2.5, pass-through)", lambda: [empty_filter()]),
    Variant("floor-breaker", "floor", "only the breaker's host calls (healthy)",
            lambda: [floor(c) for c in FLOORS["floor-breaker"][3]]),
    Variant("floor-fallback", "floor", "only the fallback's host calls (healthy)",
            lambda: [floor(c) for c in FLOORS["floor-fallback"][3]]),
    Variant("floor-log", "floor", "only log enrichment's host calls (typical record)",
            lambda: [floor(c) for c in FLOORS["floor-log"][3]], record_log),
    Variant("floor-chain", "floor", "only the chain's host calls, as three filters",
            lambda: [floor(c) for c in FLOORS["floor-chain"][3]], record_log),
    Variant("floor-log-lean", "floor", "only lean log enrichment's host calls (typical record)",
            lambda: [floor(c) for c in FLOORS["floor-log-lean"][3]], lean_record_log),
    Variant("floor-chain-lean", "floor", "only the chain's host calls with lean log enrichment",
            lambda: [floor(c) for c in FLOORS["floor-chain-lean"][3]], lean_record_log),
    Variant("breaker", "breakwater", "circuit breaker, closed and matching", lambda: [breaker()]),
    Variant("fallback", "breakwater", "fallback, rule matching, stale source storing", lambda: [fallback()]),
    Variant("log", "breakwater", "log enrichment, all detectors, no PII in the request, record access log",
            lambda: [log()], record_log),
    Variant("log-pii", "breakwater", "log enrichment, all detectors, 5 values to redact, record access log",
            lambda: [log()], record_log, PII_PATH, dict(PII_HEADERS)),
    Variant("chain", "breakwater", "log enrichment → fallback → breaker, record access log",
            lambda: [log(), fallback(), breaker()], record_log),
    Variant("log-lean", "breakwater", 'log enrichment as `log`, `envoy_fields: "access_log"`, lean access log',
            lambda: [log_lean()], lean_record_log),
    Variant("chain-lean", "breakwater", "the chain with lean log enrichment, lean access log",
            lambda: [log_lean(), fallback(), breaker()], lean_record_log),
    Variant("lua-breaker", "lua", "the breaker in Lua", lambda: [lua("circuit_breaker")]),
    Variant("lua-fallback", "lua", "the fallback in Lua", lambda: [lua("fallback")]),
    Variant("lua-log", "lua", "log enrichment in Lua, record access log", lambda: [lua("log_enrichment")], lua_record_log),
    Variant("lua-chain", "lua", "the three in Lua, record access log",
            lambda: [lua("log_enrichment"), lua("fallback"), lua("circuit_breaker")], lua_record_log),
    Variant("json-access-log", "native", "Envoy's json_format access log, no filter", access_log=json_access_log),
    Variant("breaker-open", "breakwater", "an open breaker answering (opened by 5 upstream 503s)",
            lambda: [open_breaker()], expect_status=503, prepare=trip),
    Variant("direct-response", "native", "Envoy's direct_response with the breaker's reply and headers",
            direct_response=(503, BREAKER_BODY), expect_status=503),
    Variant("fallback-static", "breakwater", "fallback's static answer to an upstream 503",
            lambda: [wasm_filter("fallback", str(dist_module("fallback")), fallback_config(("static",)))],
            path=FAIL_PATH),
    Variant("custom-response", "native", "Envoy's custom_response answering an upstream 503",
            lambda: [custom_response()], path=FAIL_PATH),
]  # fmt: skip
BY_NAME = {v.name: v for v in VARIANTS}


def upstream_config() -> dict:
    """The upstream: Envoy answering by itself (200 with a JSON list; 503 under /fail)."""
    routes = [
        {"match": {"prefix": "/fail"}, "direct_response": {"status": 503, "body": {"inline_string": '{"error":"down"}'}}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_BODY}},
         "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}]},
    ]  # fmt: skip
    return listener_config("upstream", routes, [], [], [])


def variant_config(variant: Variant, upstream_port: int, access_log_path: str, route_timeout: str = "1s") -> dict:
    if variant.direct_response is not None:
        status, body = variant.direct_response
        headers = {"content-type": "application/json", "retry-after": "3600", "x-breakwater-breaker": "recommendations"}
        route = {"match": {"prefix": "/"}, "direct_response": {"status": status, "body": {"inline_string": body}},
                 "response_headers_to_add": [{"header": {"key": k, "value": v}} for k, v in headers.items()]}  # fmt: skip
    else:
        route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": route_timeout}}
    logs = [variant.access_log(access_log_path)] if variant.access_log else []
    return listener_config("bench", [route], variant.filters(), logs, [static_cluster("upstream", upstream_port)])


def listener_config(name: str, routes: list[dict], filters: list[dict], access_logs: list[dict],
                    clusters: list[dict]) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
        "http_filters": [*filters, ROUTER_FILTER],
        "access_log": access_logs,
    }
    return {
        "admin": {"address": socket_address(0)},
        "static_resources": {
            "listeners": [{
                "name": name, "stat_prefix": name, "address": socket_address(0),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": clusters,
        },
    }  # fmt: skip


def describe(variant: Variant) -> dict:
    return {"name": variant.name, "group": variant.group, "description": variant.description,
            "path": variant.path, "filters": len(variant.filters())}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps([describe(v) for v in VARIANTS], indent=1))
