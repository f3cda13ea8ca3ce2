"""gRPC and plain HTTP/2 (h2c) for end-to-end tests: a controllable gRPC server, gRPC and h2c
clients, and Envoy config builders for an HTTP/2 upstream.

    with GrpcServer() as server:
        config = grpc_envoy_config(server.port, http_filters=[...], access_log_path=str(log))
        with Envoy(config) as envoy:
            server.set_mode("status", code="UNAVAILABLE", where="trailers_only")
            assert grpc_call(envoy.port, UNARY_METHOD).name == "UNAVAILABLE"

The server and the gRPC clients use grpcio with raw bytes (no generated code). The h2c client uses
the `h2` state machine on plain sockets, so a test controls exactly how many connections carry how
many streams, and sees the frames a response came in (response headers that end the stream are a
trailers-only response; a second HEADERS frame is trailers).

Server modes (`GrpcServer.set_mode`, for every method or, with `method=`, for one):

    ok      body= initial= trailing= interval_ms= duration_ms=
            answer OK; a unary call gets `body` (default: the request echoed), a server stream a
            message every `interval_ms` (default 100) for `duration_ms` (default 0: one message)
    status  code= details= where= initial= trailing= interval_ms= duration_ms=
            end with `code` (a name such as "UNAVAILABLE", or a number). where="trailers" (default):
            response headers (`initial`, else HEADERS_FIRST_METADATA) first, then, for a server
            stream given `duration_ms`, its messages, then the status in trailers;
            where="trailers_only": the status in the only HEADERS frame, nothing before it
    delay   ms= plus the parameters of ok, or of status if `code` is given
            wait `ms`, then answer as ok or status
    hang    initial=
            never answer, until `release()`, the caller cancels, or the server stops

`initial` metadata is sent as response headers as soon as a call arrives (before a delay or a
hang), `trailing` metadata goes with the status. A call that ends before its handler finished was
cancelled by the caller (a client's RST_STREAM, Envoy resetting the upstream stream, or the
deadline the client sent in `grpc-timeout`): `GrpcServer.cancelled()` counts those.
"""

from __future__ import annotations

import base64
import collections
import itertools
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence, Union

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions

from .config import DEFAULT_ACCESS_LOG_FORMAT, envoy_config, static_cluster

UNARY_METHOD = "/breakwater.test.Echo/Unary"
STREAM_METHOD = "/breakwater.test.Echo/ServerStream"

# Sent as response headers before a status in trailers. grpc core (chttp2) turns *empty* initial
# metadata followed at once by a status into a trailers-only response, so the headers need content.
HEADERS_FIRST_METADATA = (("x-grpc-harness", "headers-first"),)

# New connection per channel (grpcio otherwise shares subchannels, hence TCP connections, between
# channels to the same target), no transparent retries (a retried call would reach Envoy twice),
# and never an HTTP proxy from the environment.
CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_retries", 0),
    ("grpc.enable_http_proxy", 0),
)

# The default access-log fields plus what a gRPC test needs: %GRPC_STATUS% is what Envoy made of
# the response; grpc-status in the response headers (a trailers-only response) or in the trailers
# shows which form the upstream (or a local reply) used.
GRPC_ACCESS_LOG_FORMAT = DEFAULT_ACCESS_LOG_FORMAT.rstrip("\n") + (
    " protocol=%PROTOCOL% grpc_status=%GRPC_STATUS(SNAKE_STRING)%"
    " header_grpc_status=%RESP(grpc-status)% trailer_grpc_status=%TRAILER(grpc-status)%\n"
)

Metadata = Union[Mapping[str, Union[str, bytes]], Sequence[tuple[str, Union[str, bytes]]]]


def status_code(code: grpc.StatusCode | str | int) -> grpc.StatusCode:
    """A gRPC status from its name ("UNAVAILABLE", any case), its number (14 or "14") or itself."""
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, str) and not code.strip().isdigit():
        try:
            return grpc.StatusCode[code.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown gRPC status {code!r}") from None
    number = int(code)
    for candidate in grpc.StatusCode:
        if candidate.value[0] == number:
            return candidate
    raise ValueError(f"unknown gRPC status number {number}")


def _metadata_pairs(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    if not metadata:
        return ()
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    return tuple((str(k).lower(), v) for k, v in items)


def _metadata_dict(pairs: Sequence[Any] | None) -> dict[str, str | bytes]:
    """grpcio metadata as a dict; repeated text values are joined with ", " like HTTP headers."""
    result: dict[str, str | bytes] = {}
    for item in pairs or ():
        name, value = item[0], item[1]
        previous = result.get(name)
        result[name] = f"{previous}, {value}" if isinstance(previous, str) and isinstance(value, str) else value
    return result


# ----- server ----------------------------------------------------------------------------------

_GRPC_MODE_PARAMS: dict[str, set[str]] = {
    "ok": {"body", "initial", "trailing", "interval_ms", "duration_ms"},
    "status": {"code", "details", "where", "initial", "trailing", "interval_ms", "duration_ms"},
    "delay": {"ms", "code", "details", "where", "body", "initial", "trailing", "interval_ms", "duration_ms"},
    "hang": {"initial"},
}
_GRPC_REQUIRED = {"status": {"code"}, "delay": {"ms"}}
_WHERE = ("trailers", "trailers_only")
_server_numbers = itertools.count(1)


@dataclass(frozen=True)
class GrpcMode:
    name: str
    params: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, params: dict) -> GrpcMode:
        """Validate a mode; `code` becomes a grpc.StatusCode, metadata a tuple of pairs."""
        if name not in _GRPC_MODE_PARAMS:
            raise ValueError(f"unknown mode {name!r}; expected one of {sorted(_GRPC_MODE_PARAMS)}")
        unknown = set(params) - _GRPC_MODE_PARAMS[name]
        if unknown:
            raise ValueError(f"mode {name!r} takes no parameter(s) {sorted(unknown)}")
        missing = _GRPC_REQUIRED.get(name, set()) - set(params)
        if missing:
            raise ValueError(f"mode {name!r} needs parameter(s) {sorted(missing)}")
        converted = dict(params)
        if "code" in converted:
            converted["code"] = status_code(converted["code"])
            if converted["code"] is grpc.StatusCode.OK:
                raise ValueError("code=OK is mode 'ok' (grpcio cannot abort with OK)")
        where = converted.setdefault("where", "trailers") if "code" in converted else converted.get("where")
        if where is not None and where not in _WHERE:
            raise ValueError(f"where must be one of {_WHERE}, got {where!r}")
        if where is not None and "code" not in converted:
            raise ValueError("where= needs code=")
        if where == "trailers_only" and {"initial", "interval_ms", "duration_ms"} & set(converted):
            raise ValueError("a trailers-only response has no headers or messages before the status")
        for key in ("initial", "trailing"):
            if key in converted:
                converted[key] = _metadata_pairs(converted[key])
        for key in ("ms", "interval_ms", "duration_ms"):
            if key in converted:
                converted[key] = int(converted[key])
                if converted[key] < 0 or (key == "interval_ms" and converted[key] == 0):
                    raise ValueError(f"{key} must be positive, got {converted[key]}")
        if isinstance(converted.get("body"), str):
            converted["body"] = converted["body"].encode()
        return cls(name, converted)


@dataclass(frozen=True)
class GrpcCall:
    """What the server saw of one call (a snapshot)."""

    method: str
    metadata: dict[str, str | bytes]  # invocation metadata, e.g. headers Envoy added
    started: float  # time.monotonic()
    ended: float | None  # when the call was over for grpcio (None: still running)
    cancelled: bool  # ended before the handler finished: the caller (or its deadline) cancelled


class _Call:
    def __init__(self, method: str, metadata: dict):
        self.method = method
        self.metadata = metadata
        self.started = time.monotonic()
        self.ended: float | None = None
        self.handler_done = False
        self.cancelled = False
        self.hanging = False
        self.released = False
        self.wake = threading.Event()  # set on release (of a hanging call), termination, server stop

    def snapshot(self) -> GrpcCall:
        return GrpcCall(self.method, dict(self.metadata), self.started, self.ended, self.cancelled)


class GrpcServer:
    """A grpcio server on a free port that serves every method path with raw bytes.

    Paths in `stream_methods` are server-streaming, all others unary. `max_workers` bounds the
    calls handled at once (hung calls hold a worker each); the worker threads are named
    `thread_name_prefix` + "_N" ("upstream-grpc-…", so the suite's leak check sees them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        stream_methods: Sequence[str] = (STREAM_METHOD,),
        max_workers: int = 32,
    ):
        self.host = host
        self.port = port
        self.stream_methods = frozenset(stream_methods)
        self.max_workers = max_workers
        self.thread_name_prefix = f"upstream-grpc-{next(_server_numbers)}"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._mode = GrpcMode("ok")
        self._method_modes: dict[str, GrpcMode] = {}
        self._calls: list[_Call] = []
        self._active: set[_Call] = set()
        self._stopping = False
        self._pool: ThreadPoolExecutor | None = None
        self._server: grpc.Server | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> GrpcServer:
        if self._server is not None:
            return self
        self._stopping = False
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.thread_name_prefix)
        server = grpc.server(self._pool, handlers=[_Dispatcher(self)], options=[("grpc.so_reuseport", 0)])
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            self._pool.shutdown(wait=False)
            raise OSError(f"gRPC server cannot listen on {self.host}:{self.port}")
        self.port = bound
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Cancel every call still running (hung and delayed ones included) and join the workers."""
        if self._server is None:
            return
        with self._lock:
            self._stopping = True
            active = list(self._active)
        self._server.stop(grace=None).wait(5)
        for call in active:
            call.wake.set()
        self._pool.shutdown(wait=True)
        self._server = None
        self._pool = None

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ----- control ---------------------------------------------------------------------------

    def set_mode(self, mode: str, *, method: str | None = None, **params) -> GrpcMode:
        """Switch every method (and forget per-method modes), or only `method` (a full path)."""
        new_mode = GrpcMode.parse(mode, params)
        with self._lock:
            if method is None:
                self._mode = new_mode
                self._method_modes.clear()
            else:
                self._method_modes[method] = new_mode
        return new_mode

    @property
    def mode(self) -> GrpcMode:
        with self._lock:
            return self._mode

    def mode_for(self, method: str) -> GrpcMode:
        with self._lock:
            return self._method_modes.get(method, self._mode)

    def release(self) -> int:
        """Answer every call in mode hang that has arrived (as mode ok with no parameters would:
        the echo, or one message); returns how many."""
        with self._lock:
            hung = [call for call in self._active if call.hanging and not call.released]
            for call in hung:
                call.released = True
                call.wake.set()
        return len(hung)

    def count(self, method: str | None = None) -> int:
        """Calls received (counted when the handler starts)."""
        with self._lock:
            return len(self._select(method))

    def cancelled(self, method: str | None = None) -> int:
        """Calls that ended before the server answered them."""
        with self._lock:
            return sum(call.cancelled for call in self._select(method))

    def calls(self, method: str | None = None) -> list[GrpcCall]:
        with self._lock:
            return [call.snapshot() for call in self._select(method)]

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for_count(self, n: int, timeout: float = 5.0, method: str | None = None) -> int:
        return self._wait_for(lambda: len(self._select(method)), n, timeout, "calls")

    def wait_for_cancelled(self, n: int, timeout: float = 5.0, method: str | None = None) -> int:
        return self._wait_for(lambda: sum(c.cancelled for c in self._select(method)), n, timeout, "cancelled calls")

    def _wait_for(self, value, n: int, timeout: float, what: str) -> int:
        with self._changed:
            if not self._changed.wait_for(lambda: value() >= n, timeout):
                raise TimeoutError(f"gRPC server saw {value()} {what}, expected {n}")
            return value()

    def _select(self, method: str | None) -> list[_Call]:
        return [call for call in self._calls if method is None or call.method == method]

    # ----- serving ---------------------------------------------------------------------------

    def _arrive(self, method: str, context: grpc.ServicerContext) -> tuple[_Call, GrpcMode]:
        call = _Call(method, _metadata_dict(context.invocation_metadata()))
        with self._changed:
            mode = self._method_modes.get(method, self._mode)
            # Releasable from the moment it is counted: a test that saw it arrive may release it.
            call.hanging = mode.name == "hang"
            self._calls.append(call)
            self._active.add(call)
            self._changed.notify_all()
        if not context.add_callback(lambda: self._terminated(call)):
            self._terminated(call)  # the call was already over
        return call, mode

    def _terminated(self, call: _Call) -> None:
        # grpcio runs the callbacks once the call is over for it: answered, or cancelled.
        with self._changed:
            call.ended = time.monotonic()
            call.cancelled = not call.handler_done and not self._stopping
            self._active.discard(call)
            self._changed.notify_all()
        call.wake.set()

    def _handler_done(self, call: _Call) -> None:
        with self._lock:
            call.handler_done = True

    def _interrupted(self, call: _Call) -> bool:
        with self._lock:
            return call.ended is not None or self._stopping

    def _prologue(self, call: _Call, context: grpc.ServicerContext, mode: GrpcMode) -> bool:
        """Headers, then the delay or hang; False if the call is over before it may answer."""
        params = mode.params
        if "initial" in params:
            context.send_initial_metadata(params["initial"])
        if mode.name == "hang":
            call.wake.wait()
            with self._lock:
                call.hanging = False
                if not call.released or call.ended is not None or self._stopping:
                    return False
                # From here on `wake` means only "the call is over" (set again by _terminated).
                call.wake.clear()
            return True
        if mode.name == "delay":
            call.wake.wait(params["ms"] / 1000)
            return not self._interrupted(call)
        return True

    def _fail(self, context: grpc.ServicerContext, params: dict, headers_sent: bool) -> None:
        """End the call with params["code"]: raises, as grpcio's abort() does."""
        if params["where"] == "trailers" and not headers_sent:
            context.send_initial_metadata(HEADERS_FIRST_METADATA)
        if "trailing" in params:
            context.set_trailing_metadata(params["trailing"])
        context.abort(params["code"], params.get("details", ""))

    def _unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes | None:
        call, mode = self._arrive(method, context)
        try:
            if not self._prologue(call, context, mode):
                return None  # cancelled or stopping: nobody reads the answer
            params = {} if call.released else mode.params
            if "code" in params:
                self._fail(context, params, "initial" in params)
            if "trailing" in params:
                context.set_trailing_metadata(params["trailing"])
            return params.get("body", request)
        finally:
            self._handler_done(call)

    def _stream(self, method: str, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        call, mode = self._arrive(method, context)
        try:
            if not self._prologue(call, context, mode):
                return
            params = {} if call.released else mode.params
            if params.get("where") == "trailers_only":
                self._fail(context, params, False)
            sent = 0
            if "code" not in params or "duration_ms" in params:
                interval = params.get("interval_ms", 100) / 1000
                count = max(1, math.ceil(params.get("duration_ms", 0) / 1000 / interval))
                started = time.monotonic()
                for index in range(count):
                    # Against the start time, so that the messages do not drift.
                    if call.wake.wait(max(0.0, started + index * interval - time.monotonic())):
                        return  # cancelled or stopping
                    yield params.get("body", request + b"/%d" % index)
                    sent += 1
                remaining = started + params.get("duration_ms", 0) / 1000 - time.monotonic()
                if remaining > 0 and call.wake.wait(remaining):
                    return
            if "code" in params:
                self._fail(context, params, "initial" in params or sent > 0)
            if "trailing" in params:
                context.set_trailing_metadata(params["trailing"])
        finally:
            self._handler_done(call)


class _Dispatcher(grpc.GenericRpcHandler):
    """Serves every method path: no generated code, identity (de)serializers (bytes in, bytes out)."""

    def __init__(self, server: GrpcServer):
        self._server = server

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        server = self._server
        if method in server.stream_methods:
            return grpc.unary_stream_rpc_method_handler(lambda request, ctx: server._stream(method, request, ctx))
        return grpc.unary_unary_rpc_method_handler(lambda request, ctx: server._unary(method, request, ctx))


# ----- gRPC clients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GrpcResult:
    code: grpc.StatusCode
    details: str
    initial_metadata: dict[str, str | bytes]  # the response headers' metadata: empty if trailers-only
    trailing_metadata: dict[str, str | bytes]
    response: bytes | None  # None unless OK
    elapsed_ms: float

    @property
    def name(self) -> str:
        """e.g. "UNAVAILABLE"."""
        return self.code.name

    @property
    def number(self) -> int:
        return self.code.value[0]

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK


@dataclass(frozen=True)
class GrpcStreamResult:
    code: grpc.StatusCode
    details: str
    initial_metadata: dict[str, str | bytes]
    trailing_metadata: dict[str, str | bytes]
    messages: list[bytes]
    arrival_ms: list[float]  # when each message arrived, since the call started
    elapsed_ms: float

    @property
    def name(self) -> str:
        return self.code.name


def grpc_channel(port: int, host: str = "127.0.0.1") -> grpc.Channel:
    """An insecure (h2c) channel with its own connection; close it (or use `with`)."""
    return grpc.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS)


def grpc_call(
    target: int | grpc.Channel,
    method: str = UNARY_METHOD,
    payload: bytes = b"x",
    metadata: Metadata = (),
    timeout: float | None = 5,
) -> GrpcResult:
    """One unary call; never raises for a non-OK status.

    `target` is a port (a new channel, hence a new connection, just for this call: new
    connections are spread over Envoy's workers) or a channel to reuse. `timeout` is the call's
    deadline (sent to the server as `grpc-timeout`); None means no deadline.
    """
    channel = grpc_channel(target) if isinstance(target, int) else target
    try:
        callable_ = channel.unary_unary(method)
        started = time.monotonic()
        try:
            response, call = callable_.with_call(payload, timeout=timeout, metadata=_metadata_pairs(metadata))
        except grpc.RpcError as error:
            response, call = None, error
        elapsed_ms = (time.monotonic() - started) * 1000
        return GrpcResult(
            code=call.code(),
            details=call.details() or "",
            initial_metadata=_metadata_dict(call.initial_metadata()),
            trailing_metadata=_metadata_dict(call.trailing_metadata()),
            response=response,
            elapsed_ms=elapsed_ms,
        )
    finally:
        if isinstance(target, int):
            channel.close()


def grpc_stream(
    target: int | grpc.Channel,
    method: str = STREAM_METHOD,
    payload: bytes = b"x",
    metadata: Metadata = (),
    timeout: float | None = 5,
    cancel_after: int | None = None,
) -> GrpcStreamResult:
    """One server-streaming call read to its end, or cancelled by the client (code CANCELLED)
    once `cancel_after` messages have arrived; never raises for a non-OK status."""
    channel = grpc_channel(target) if isinstance(target, int) else target
    try:
        started = time.monotonic()
        call = channel.unary_stream(method)(payload, timeout=timeout, metadata=_metadata_pairs(metadata))
        messages: list[bytes] = []
        arrival_ms: list[float] = []
        try:
            for message in call:
                messages.append(message)
                arrival_ms.append((time.monotonic() - started) * 1000)
                if cancel_after is not None and len(messages) >= cancel_after:
                    call.cancel()
                    break
        except grpc.RpcError:
            pass  # the status is read from the call below
        elapsed_ms = (time.monotonic() - started) * 1000
        return GrpcStreamResult(
            code=call.code(),
            details=call.details() or "",
            initial_metadata=_metadata_dict(call.initial_metadata()),
            trailing_metadata=_metadata_dict(call.trailing_metadata()),
            messages=messages,
            arrival_ms=arrival_ms,
            elapsed_ms=elapsed_ms,
        )
    finally:
        if isinstance(target, int):
            channel.close()


# ----- Envoy config ----------------------------------------------------------------------------


def http2_cluster(name: str, port: int, host: str = "127.0.0.1", connect_timeout: str = "1s") -> dict:
    """A cluster with one fixed endpoint that speaks HTTP/2 without TLS (h2c), as gRPC needs."""
    cluster = static_cluster(name, port, host, connect_timeout)
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return cluster


def balance_connections(config: dict) -> dict:
    """Makes every listener of `config` hand each new connection to the worker with the fewest
    (Envoy's exact balancer) instead of leaving the choice to the kernel's SO_REUSEPORT hash, so a
    few connections open at once are served by all workers. Returns `config`."""
    for listener in config["static_resources"]["listeners"]:
        listener["connection_balance_config"] = {"exact_balance": {}}
    return config


def grpc_envoy_config(
    grpc_port: int,
    http_filters: Sequence[dict] = (),
    route_timeout: str = "5s",
    access_log_path: str | None = None,
    access_log_format: str = GRPC_ACCESS_LOG_FORMAT,
    access_logs: Sequence[dict] = (),
    balanced: bool = False,
    **kwargs,
) -> dict:
    """`envoy_config` whose cluster "upstream" is the gRPC server at `grpc_port`, over HTTP/2.

    The listener's codec is AUTO: HTTP/1.1 and h2c (prior knowledge, as gRPC clients use) on the
    same port. `route_timeout` covers a whole call, server streams included. `balanced` spreads
    connections exactly over the workers (see `balance_connections`). Other keyword arguments
    (routes, extra_clusters, listener_name, stats_tags, node) go to `envoy_config`.
    """
    config = envoy_config(
        grpc_port,
        http_filters=http_filters,
        route_timeout=route_timeout,
        access_log_path=access_log_path,
        access_log_format=access_log_format,
        access_logs=access_logs,
        **kwargs,
    )
    clusters = config["static_resources"]["clusters"]
    clusters[0] = http2_cluster(clusters[0]["name"], grpc_port)
    return balance_connections(config) if balanced else config


# ----- h2c client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class H2Request:
    path: str
    method: str = "GET"
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


@dataclass(frozen=True)
class H2Response:
    path: str
    status: int | None  # None: no response headers (reset, connection lost, timeout)
    headers: dict[str, str]  # lower-case names without pseudo-headers; repeats joined with ", "
    body: bytes
    trailers: dict[str, str]
    headers_ended_stream: bool  # the response headers carried END_STREAM (gRPC: trailers-only)
    reset_code: int | None  # the RST_STREAM error code, if the server reset the stream
    connection: int  # which of the connections carried the stream (0-based)
    error: str | None  # why the stream did not complete, if it did not

    @property
    def grpc_status(self) -> int | None:
        """grpc-status from the trailers, or from the headers of a trailers-only response."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_messages(self) -> list[bytes]:
        return grpc_unframe(self.body)


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_unframe(body: bytes) -> list[bytes]:
    messages, offset = [], 0
    while offset + 5 <= len(body):
        size = int.from_bytes(body[offset + 1 : offset + 5], "big")
        messages.append(body[offset + 5 : offset + 5 + size])
        offset += 5 + size
    return messages


def grpc_request(method: str = UNARY_METHOD, payload: bytes = b"x", metadata: Metadata = ()) -> H2Request:
    """A raw gRPC unary call for `h2_requests`, to look at the frames of the answer."""
    headers = [("content-type", "application/grpc"), ("te", "trailers")]
    for name, value in _metadata_pairs(metadata):
        # Binary ("-bin") metadata travels base64-encoded (gRPC over HTTP/2).
        headers.append((name, base64.b64encode(value).decode() if isinstance(value, bytes) else value))
    return H2Request(method, "POST", tuple(headers), grpc_frame(payload))


class _Stream:
    def __init__(self, index: int, request: H2Request, connection: int):
        self.index = index
        self.request = request
        self.connection = connection
        self.unsent = request.body
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self.body = bytearray()
        self.headers_ended_stream = False
        self.reset_code: int | None = None
        self.error: str | None = None
        self.done = False

    def response(self) -> H2Response:
        return H2Response(
            self.request.path, self.status, self.headers, bytes(self.body), self.trailers,
            self.headers_ended_stream, self.reset_code, self.connection, self.error,
        )  # fmt: skip


def _header_dict(pairs) -> tuple[int | None, dict[str, str]]:
    """Header bytes as text: UTF-8 where they are, other bytes as \\xNN escapes."""
    status, headers = None, {}
    for raw_name, raw_value in pairs:
        name, value = (part.decode("utf-8", "backslashreplace") for part in (raw_name, raw_value))
        if name == ":status":
            status = int(value)
        elif not name.startswith(":"):
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return status, headers


def h2_requests(
    port: int,
    requests: Sequence[str | H2Request],
    connections: int = 1,
    timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> list[H2Response]:
    """Send `requests` (paths for GETs, or H2Requests) as concurrent streams over `connections`
    h2c connections (prior knowledge, no TLS); results in request order.

    Request i goes on connection i % connections. Every connection is open (its SETTINGS
    exchanged) before any of them sends a request, so the connections are concurrent, and each
    then sends all its requests at once (up to the server's SETTINGS_MAX_CONCURRENT_STREAMS).
    Streams that do not complete within `timeout` come back with `error` set; nothing raises
    for a failed stream.
    """
    if connections < 1:
        raise ValueError("connections must be at least 1")
    streams = [
        _Stream(i, H2Request(r) if isinstance(r, str) else r, i % connections) for i, r in enumerate(requests)
    ]
    deadline = time.monotonic() + timeout
    barrier = threading.Barrier(connections)
    with ThreadPoolExecutor(connections, thread_name_prefix="h2-client") as pool:
        futures = [
            pool.submit(_run_connection, host, port, [s for s in streams if s.connection == c], barrier, deadline)
            for c in range(connections)
        ]
    for future in futures:
        future.result()  # re-raises a bug in the client; network failures are per stream
    return [s.response() for s in streams]


def _run_connection(host: str, port: int, streams: list[_Stream], barrier: threading.Barrier, deadline: float) -> None:
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic()))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        by_id: dict[int, _Stream] = {}
        settled = False
        while not settled:  # the server's SETTINGS come first: they may limit concurrent streams
            for event in _receive(sock, conn, deadline):
                settled = settled or isinstance(event, h2.events.RemoteSettingsChanged)
            sock.sendall(conn.data_to_send())
        barrier.wait(timeout=max(0.01, deadline - time.monotonic()))
        pending = collections.deque(streams)
        while pending or any(not s.done for s in by_id.values()):
            while pending and conn.open_outbound_streams < conn.remote_settings.max_concurrent_streams:
                stream = pending.popleft()
                stream_id = conn.get_next_available_stream_id()
                by_id[stream_id] = stream
                request = stream.request
                headers = [
                    (":method", request.method), (":path", request.path), (":scheme", "http"),
                    (":authority", f"{host}:{port}"), *request.headers,
                ]  # fmt: skip
                conn.send_headers(stream_id, headers, end_stream=not request.body)
                _send_body(conn, stream_id, stream)
            sock.sendall(conn.data_to_send())
            for event in _receive(sock, conn, deadline):
                stream = by_id.get(getattr(event, "stream_id", None) or 0)
                if isinstance(event, h2.events.ResponseReceived) and stream:
                    stream.status, stream.headers = _header_dict(event.headers)
                    stream.headers_ended_stream = event.stream_ended is not None
                elif isinstance(event, h2.events.DataReceived) and stream:
                    stream.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived) and stream:
                    stream.trailers = _header_dict(event.headers)[1]
                elif isinstance(event, h2.events.StreamEnded) and stream:
                    stream.done = True
                elif isinstance(event, h2.events.StreamReset) and stream:
                    stream.reset_code, stream.done = int(event.error_code), True
                    stream.error = f"stream reset with error code {stream.reset_code}"
                elif isinstance(event, h2.events.WindowUpdated):
                    for stream_id, waiting in by_id.items():
                        if waiting.unsent and event.stream_id in (0, stream_id):
                            _send_body(conn, stream_id, waiting)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    for stream_id, lost in by_id.items():
                        if not lost.done and stream_id > (event.last_stream_id or 0):
                            lost.error, lost.done = f"GOAWAY with error code {int(event.error_code)}", True
            sock.sendall(conn.data_to_send())
    except (OSError, TimeoutError, threading.BrokenBarrierError, h2.exceptions.ProtocolError) as error:
        for stream in streams:
            if not stream.done:
                stream.error = stream.error or f"{type(error).__name__}: {error}"
        if not isinstance(error, threading.BrokenBarrierError):
            barrier.abort()  # the other connections must not wait for this one
    finally:
        if sock is not None:
            sock.close()


def _receive(sock: socket.socket, conn: h2.connection.H2Connection, deadline: float) -> list:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("h2c streams did not complete in time")
    sock.settimeout(remaining)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return conn.receive_data(data)


def _send_body(conn: h2.connection.H2Connection, stream_id: int, stream: _Stream) -> None:
    """Send as much of the body as the flow-control windows allow; END_STREAM with the last byte."""
    while stream.unsent:
        size = min(len(stream.unsent), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if size <= 0:
            return  # resumed on WINDOW_UPDATE
        chunk, stream.unsent = stream.unsent[:size], stream.unsent[size:]
        conn.send_data(stream_id, chunk, end_stream=not stream.unsent)
