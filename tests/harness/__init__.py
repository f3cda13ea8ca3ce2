"""End-to-end test harness: a controllable upstream, a real Envoy, config builders, a client.

Only the Python standard library is used here; the tests that use the harness need pytest. The
gRPC and h2c names (from `tests.harness.grpc`, which needs grpcio and h2 from tests/requirements.txt)
are imported on first use, so the rest, e.g. `python3 -m tests.harness.upstream`, runs without them.

    with Upstream() as upstream:
        config = envoy_config(upstream.port, http_filters=[wasm_filter(...)], route_timeout="0.5s",
                              access_log_path=str(tmp_path / "access.log"))
        with Envoy(config) as envoy:
            upstream.set_mode("status", code=503)
            assert request(envoy.url("/x")).status == 503
            entry, = wait_for_access_log(tmp_path / "access.log", lambda e: e["path"] == "/x")
"""

from .client import RequestError, Response, concurrent, request
from .config import (
    DEFAULT_ACCESS_LOG_FORMAT,
    Route,
    breaker_filter,
    dist_module,
    envoy_config,
    fallback_filter,
    log_filter,
    record_access_log,
    static_cluster,
    wasm_filter,
)
from .envoy import Envoy, EnvoyError, parse_access_log_line, read_access_log, wait_for_access_log
from .upstream import Mode, Upstream

# tests.harness.grpc's exports, loaded by __getattr__ below when first asked for.
_GRPC_NAMES = (
    "CHANNEL_OPTIONS",
    "GRPC_ACCESS_LOG_FORMAT",
    "GrpcCall",
    "GrpcMode",
    "GrpcResult",
    "GrpcServer",
    "GrpcStreamResult",
    "H2Request",
    "H2Response",
    "HEADERS_FIRST_METADATA",
    "STREAM_METHOD",
    "UNARY_METHOD",
    "balance_connections",
    "grpc_call",
    "grpc_channel",
    "grpc_envoy_config",
    "grpc_frame",
    "grpc_request",
    "grpc_stream",
    "grpc_unframe",
    "h2_requests",
    "http2_cluster",
    "status_code",
)


def __getattr__(name: str):
    if name in _GRPC_NAMES:
        from . import grpc

        return getattr(grpc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ACCESS_LOG_FORMAT",
    "Envoy",
    "EnvoyError",
    "Mode",
    "RequestError",
    "Response",
    "Route",
    "Upstream",
    "breaker_filter",
    "concurrent",
    "dist_module",
    "envoy_config",
    "fallback_filter",
    "log_filter",
    "record_access_log",
    "parse_access_log_line",
    "read_access_log",
    "request",
    "static_cluster",
    "wait_for_access_log",
    "wasm_filter",
    *_GRPC_NAMES,
]
