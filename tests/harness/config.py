"""Build Envoy static bootstrap configs as plain Python dicts.

The dicts are written to JSON by `tests.harness.envoy.Envoy`. Every listening address uses port 0
so that several tests (and several Envoys) never collide; the real ports are discovered from the
admin API after start.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .contract import contract, key

DIST = Path(__file__).resolve().parents[2] / "dist"

ROUTER_FILTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}

# key=value pairs so that `tests.harness.envoy.parse_access_log_line` can read them back.
# Envoy prints "-" for empty values and replaces whitespace in code details with "_", so no value
# contains a space.
DEFAULT_ACCESS_LOG_FORMAT = (
    "method=%REQ(:METHOD)% path=%REQ(:PATH)% status=%RESPONSE_CODE% "
    "flags=%RESPONSE_FLAGS% details=%RESPONSE_CODE_DETAILS% "
    "upstream=%UPSTREAM_HOST% route=%ROUTE_NAME% duration_ms=%DURATION%\n"
)


@dataclass(frozen=True)
class Route:
    """One prefix route; `name` is what a filter reads as `xds.route_name`."""

    name: str
    prefix: str
    cluster: str = "upstream"
    timeout: str | None = None  # None: the `route_timeout` given to envoy_config
    retry_policy: dict | None = None  # Envoy's route retry_policy, e.g. {"retry_on": "5xx", "num_retries": 2}


def free_port() -> int:
    """A port that is free now, for the rare config that cannot use port 0 (another process, or
    an address that must stay the same across config updates)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socket_address(port: int, host: str = "127.0.0.1") -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def static_cluster(name: str, port: int, host: str = "127.0.0.1", connect_timeout: str = "1s") -> dict:
    """A plain-HTTP/1.1 cluster with one fixed endpoint (use for `extra_clusters`)."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(port, host)}}]}],
        },
    }


def file_access_log(path: str, text_format: str = DEFAULT_ACCESS_LOG_FORMAT) -> dict:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": text_format}},
        },
    }


def _route_entry(route: Route, default_timeout: str) -> dict:
    # No retry_policy unless the route asks for one: Envoy retries only when a route (or virtual
    # host) does, and the filters under test must see every upstream failure.
    action = {"cluster": route.cluster, "timeout": route.timeout or default_timeout}
    if route.retry_policy is not None:
        action["retry_policy"] = route.retry_policy
    return {"name": route.name, "match": {"prefix": route.prefix}, "route": action}


def envoy_config(
    upstream_port: int,
    http_filters: Sequence[dict] = (),
    route_timeout: str = "5s",
    access_log_path: str | None = None,
    access_log_format: str | None = None,
    extra_clusters: Sequence[dict] = (),
    routes: Sequence[Route] | None = None,
    listener_name: str = "main",
    stats_tags: Mapping[str, str] | None = None,
    access_logs: Sequence[dict] = (),
    node: dict | None = None,
) -> dict:
    """A complete static bootstrap: one HTTP listener routing to cluster "upstream".

    Durations use the protobuf JSON form: "0.5s", not "500ms".

    `http_filters` run in the given order; the router is appended last. `routes` defaults to a
    single catch-all route named "default". `stats_tags` maps a tag name to a regex whose first
    capture group is the tag value (Envoy's TagSpecifier), for Prometheus-label tests.
    `access_logs` are extra access loggers; `node` is the bootstrap's node (id, cluster, metadata).
    """
    routes = routes if routes is not None else [Route(name="default", prefix="/")]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [_route_entry(r, route_timeout) for r in routes],
                }
            ],
        },
        "http_filters": [*http_filters, ROUTER_FILTER],
    }
    if access_log_path is not None:
        hcm["access_log"] = [file_access_log(access_log_path, access_log_format or DEFAULT_ACCESS_LOG_FORMAT)]
    if access_logs:
        hcm["access_log"] = [*hcm.get("access_log", []), *access_logs]

    config = {
        "admin": {"address": socket_address(0)},
        "static_resources": {
            "listeners": [
                {
                    "name": listener_name,
                    # Without it, listener stats are named after the configured address
                    # ("127.0.0.1_0"), which is the same for every port-0 listener.
                    "stat_prefix": listener_name,
                    "address": socket_address(0),
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": [static_cluster("upstream", upstream_port), *extra_clusters],
        },
    }
    if node is not None:
        config["node"] = node
    if stats_tags:
        config["stats_config"] = {
            "stats_tags": [{"tag_name": name, "regex": regex} for name, regex in stats_tags.items()]
        }
    return config


def dist_module(name: str) -> Path:
    """A filter module built by `make build`, e.g. dist_module("circuit_breaker")."""
    path = DIST / f"{name}.wasm"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make build` (make e2e does it for you)")
    return path


def wasm_filter(
    name: str,
    wasm_path: str,
    configuration: dict | str,
    root_id: str | None = None,
    vm_id: str | None = None,
    fail_open: bool = False,
) -> dict:
    """An `envoy.filters.http.wasm` filter loading a local .wasm file into V8.

    `configuration` reaches the plugin's `on_configure` as a StringValue, the same way Istio's
    WasmPlugin delivers `pluginConfig`; a dict is serialised to JSON.
    """
    if not isinstance(configuration, str):
        configuration = json.dumps(configuration)
    plugin_config = {
        "name": name,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm_path}},
        },
        "failure_policy": "FAIL_OPEN" if fail_open else "FAIL_CLOSED",
    }
    if root_id is not None:
        plugin_config["root_id"] = root_id
    if vm_id is not None:
        plugin_config["vm_config"]["vm_id"] = vm_id
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin_config,
        },
    }


def record_access_log(path: str, json_format: dict | None = None, lean: bool = False) -> dict:
    """A file access log of log-enrichment records, one JSON line per request that the filter
    kept: the whole record (`wasm.breakwater_log`), `json_format` built from per-field keys, or
    (`lean`, for `envoy_fields: "access_log"`) the contract's format, in which Envoy's operators
    print what the record leaves out. The CEL filter skips requests sampling dropped (they have
    no record)."""
    record = key("log_record")
    if json_format is not None:
        log_format = {"json_format": json_format, "omit_empty_values": True}
    elif lean:
        log_format = {"text_format_source": {"inline_string": contract()["access_log_format"] + "\n"}}
    else:
        log_format = {"text_format_source": {"inline_string": f"%FILTER_STATE(wasm.{record}:PLAIN)%\n"}}
    return {
        "name": "envoy.access_loggers.file",
        "filter": {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": f"'wasm.{record}' in filter_state",
                },
            }
        },
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": log_format,
        },
    }


def log_filter(configuration: dict) -> dict:
    """breakwater's log-enrichment filter (dist/log_enrichment.wasm)."""
    return wasm_filter("log-enrichment", str(dist_module("log_enrichment")), configuration)


def breaker_filter(breakers: list[dict]) -> dict:
    """breakwater's circuit breaker (dist/circuit_breaker.wasm) with these breakers."""
    return wasm_filter("circuit-breaker", str(dist_module("circuit_breaker")), {"breakers": breakers})


def fallback_filter(rules: list[dict], cache: dict | None = None) -> dict:
    """breakwater's fallback filter (dist/fallback.wasm) with these rules."""
    configuration = {"rules": rules, **({"cache": cache} if cache else {})}
    return wasm_filter("fallback", str(dist_module("fallback")), configuration)


def push_listener(lds_path: Path, config: dict, port: int) -> None:
    """Writes the first listener of `config`, on `port`, as the LDS file at `lds_path`: Envoy
    picks it up when the file is moved into place, as a control plane's push."""
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    staged = lds_path.with_name(lds_path.name + ".next")
    resource = {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", **listener}
    staged.write_text(json.dumps({"resources": [resource]}))
    staged.rename(lds_path)


def lds_bootstrap(upstream_port: int, lds_path: Path) -> dict:
    """A bootstrap whose listeners come from the LDS file `lds_path` (see `push_listener`)."""
    bootstrap = envoy_config(upstream_port)
    del bootstrap["static_resources"]["listeners"]
    bootstrap["node"] = {"id": "breakwater-test", "cluster": "breakwater-test"}
    bootstrap["dynamic_resources"] = {
        "lds_config": {"path_config_source": {"path": str(lds_path)}, "resource_api_version": "V3"}
    }
    return bootstrap
