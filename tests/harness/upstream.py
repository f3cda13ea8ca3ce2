"""A controllable HTTP/1.1 upstream on real sockets, for end-to-end tests and demos.

Modes (switch at any time with `Upstream.set_mode` or `GET /__upstream/mode?mode=...`):

    ok                 200 with a small JSON body (or `body`)
    status code=N      N with a small JSON body (or `body`)
    delay  ms=N        wait N ms, then 200 (or `code`)
    hang               read the request, never answer; hold the socket until the peer gives up
    close              read the request, close the connection without a response (FIN)
    reset              read the request, close with SO_LINGER 0 (RST)
    reset_mid_body     send the status line, headers announcing all of `body` (default 4 KiB of "x")
                       and half of it, then close with RST (an upstream dying mid-response)
    refuse             stop listening (connections are refused) and drop kept-alive connections;
                       the control endpoint goes too, so only set_mode() (or a restart) ends it
    noise  every=N     every N-th request since the switch gets `code` (default 500), others 200

Only the standard library is used, so this file also runs on its own:

    python3 -m tests.harness.upstream --port 8081 --mode ok      (from the repository root)
    python3 tests/harness/upstream.py --port 8081
    curl 'localhost:8081/__upstream/mode?mode=status&code=503'
    curl localhost:8081/__upstream/stats
"""

from __future__ import annotations

import argparse
import collections
import http
import json
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable
from urllib.parse import parse_qsl, urlsplit

CONTROL_PREFIX = "/__upstream/"

# Parameters each mode accepts; the values listed here are required.
_MODE_PARAMS: dict[str, set[str]] = {
    "ok": {"body", "cache_control"},
    "status": {"code", "body", "cache_control"},
    "delay": {"ms", "code", "body", "cache_control"},
    "hang": set(),
    "close": set(),
    "reset": set(),
    "reset_mid_body": {"code", "body"},
    "refuse": set(),
    "noise": {"every", "code"},
}
_REQUIRED_PARAMS = {"status": {"code"}, "delay": {"ms"}, "noise": {"every"}}
_INT_PARAMS = {"code", "ms", "every"}

_MAX_HEADER_LINE = 65536
_MAX_HEADER_LINES = 4096  # tests raise Envoy's own limit (100 by default) to 2000


@dataclass(frozen=True)
class Mode:
    name: str
    params: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, params: dict) -> Mode:
        """Validate a mode, converting numeric parameters given as strings (from a URL or CLI)."""
        if name not in _MODE_PARAMS:
            raise ValueError(f"unknown mode {name!r}; expected one of {sorted(_MODE_PARAMS)}")
        unknown = set(params) - _MODE_PARAMS[name]
        if unknown:
            raise ValueError(f"mode {name!r} takes no parameter(s) {sorted(unknown)}")
        missing = _REQUIRED_PARAMS.get(name, set()) - set(params)
        if missing:
            raise ValueError(f"mode {name!r} needs parameter(s) {sorted(missing)}")
        try:
            converted = {k: int(v) if k in _INT_PARAMS else str(v) for k, v in params.items()}
        except ValueError:
            raise ValueError(f"parameters {sorted(_INT_PARAMS & set(params))} must be integers") from None
        if converted.get("every", 1) < 1 or converted.get("ms", 0) < 0:
            raise ValueError(f"invalid parameters for mode {name!r}: {params}")
        return cls(name, converted)

    def to_json(self) -> dict:
        return {"mode": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    path: str
    query: dict
    keep_alive: bool


class _BadRequest(ValueError):
    pass


class Upstream:
    """An HTTP/1.1 server with a thread per connection whose behaviour is switchable at run time.

    `log`, if given, receives one line per request (the command line prints them).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] | None = None):
        self.host = host
        self.port = port  # replaced by the real port once bound
        self._log = log
        # _lock guards all mutable state below; _count_changed wakes wait_for_count.
        self._lock = threading.Lock()
        self._count_changed = threading.Condition(self._lock)
        # Serialises whole mode switches, which open/close the listener outside _lock.
        self._switch_lock = threading.Lock()
        self._mode = Mode("ok")
        self._noise_seen = 0
        # Requests in mode hang whose connection the proxy closed: requests it gave up on.
        self._abandoned = 0
        self._paths: collections.Counter[str] = collections.Counter()
        # (path, headers) of the latest requests, for tests of what a filter sent upstream.
        self._recent: collections.deque[tuple[str, dict[str, str]]] = collections.deque(maxlen=200)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: dict[socket.socket, bool] = {}  # socket -> idle (waiting for a request)
        self._handlers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._running = False

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> Upstream:
        with self._switch_lock:
            if self._running:
                return self
            self._stopping.clear()
            self._running = True
            # Always bind once so that port=0 resolves to a real port, even when starting refused.
            self._listen()
            if self._mode.name == "refuse":
                self._stop_listening()
        return self

    def stop(self) -> None:
        """Close everything and join all threads; hanging or delayed requests are cut short."""
        with self._switch_lock:
            if not self._running:
                return
            self._running = False
            self._stopping.set()
            self._stop_listening()
            with self._lock:
                connections = list(self._connections)
                handlers = list(self._handlers)
        # Outside _switch_lock: a handler serving a control request may be waiting for it.
        for conn in connections:
            _shutdown(conn)
        for thread in handlers:
            thread.join(timeout=5)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ----- control ---------------------------------------------------------------------------

    def set_mode(self, mode: str, **params) -> Mode:
        new_mode = Mode.parse(mode, params)
        with self._switch_lock:
            with self._lock:
                self._mode = new_mode
                self._noise_seen = 0
            if self._running:
                if new_mode.name == "refuse":
                    self._stop_listening()
                    self._drop_idle_connections()
                elif self._listener is None:
                    self._listen()
        return new_mode

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    def count(self, path_prefix: str | None = None) -> int:
        """Requests received (headers read), control requests excluded."""
        with self._lock:
            return self._count_locked(path_prefix)

    def reset_counts(self) -> None:
        with self._lock:
            self._paths.clear()
            self._recent.clear()
            self._abandoned = 0

    def abandoned(self) -> int:
        """Requests held in mode hang whose connection the proxy closed (it gave up on them:
        a timeout, or a filter answered the client), since the last reset_counts()."""
        with self._lock:
            return self._abandoned

    def wait_for_abandoned(self, n: int, timeout: float = 5.0) -> int:
        with self._count_changed:
            if not self._count_changed.wait_for(lambda: self._abandoned >= n, timeout):
                raise TimeoutError(f"upstream saw {self._abandoned} abandoned requests, expected {n}")
            return self._abandoned

    def received_headers(self, path_prefix: str = "/") -> list[dict[str, str]]:
        """Headers (names lower case) of the latest requests under `path_prefix`, oldest first."""
        with self._lock:
            return [dict(h) for path, h in self._recent if path.startswith(path_prefix)]

    def wait_for_count(self, n: int, timeout: float = 5.0, path_prefix: str | None = None) -> int:
        """Block until at least n requests arrived; raise TimeoutError otherwise."""
        with self._count_changed:
            if not self._count_changed.wait_for(lambda: self._count_locked(path_prefix) >= n, timeout):
                raise TimeoutError(f"upstream saw {self._count_locked(path_prefix)} requests, expected {n}")
            return self._count_locked(path_prefix)

    def _count_locked(self, path_prefix: str | None) -> int:
        if path_prefix is None:
            return sum(self._paths.values())
        return sum(n for path, n in self._paths.items() if path.startswith(path_prefix))

    # ----- listening -------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Needed to listen again on the same port after `refuse` while Envoy's old connections
        # to that port are still in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"upstream-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        # close() alone does not wake a thread blocked in accept(); shutdown() does (Linux), and
        # a closed listener makes the kernel answer new SYNs with RST: "connection refused".
        _shutdown(self._listener)
        self._listener.close()
        self._listener = None
        self._accept_thread.join(timeout=5)
        self._accept_thread = None

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # listener shut down
            handler = threading.Thread(
                target=self._serve_connection, args=(conn,), name=f"upstream-conn-{self.port}", daemon=True
            )
            with self._lock:
                self._connections[conn] = True
                self._handlers.add(handler)
            handler.start()

    def _drop_idle_connections(self) -> None:
        # Envoy would otherwise keep reusing its pooled connections and never see a refusal.
        with self._lock:
            idle = [conn for conn, is_idle in self._connections.items() if is_idle]
        for conn in idle:
            _shutdown(conn)

    # ----- serving ---------------------------------------------------------------------------

    def _serve_connection(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stopping.is_set() and self.mode.name != "refuse":
                self._set_idle(conn, True)
                head = _read_head(reader)
                self._set_idle(conn, False)
                if head is None:
                    return  # peer closed the connection between requests
                if not self._handle(conn, reader, head):
                    return
        except (OSError, ValueError):
            pass  # the peer vanished or sent something that is not HTTP/1.1: drop the connection
        finally:
            with self._lock:
                self._connections.pop(conn, None)
                self._handlers.discard(threading.current_thread())
            reader.close()
            conn.close()

    def _set_idle(self, conn: socket.socket, idle: bool) -> None:
        with self._lock:
            self._connections[conn] = idle

    def _handle(self, conn: socket.socket, reader: BinaryIO, head: tuple[_Request, dict]) -> bool:
        """Serve one request; return whether the connection may carry another one."""
        request, headers = head
        if request.path.startswith(CONTROL_PREFIX):
            _read_body(reader, headers)
            return self._handle_control(conn, request)

        noise_failure = False
        with self._count_changed:
            self._paths[request.path] += 1
            self._recent.append((request.path, headers))
            self._count_changed.notify_all()
            mode = self._mode
            if mode.name == "noise":
                self._noise_seen += 1
                noise_failure = self._noise_seen % mode.params["every"] == 0
        _read_body(reader, headers)

        name, params = mode.name, mode.params
        if name in ("close", "reset", "hang", "refuse"):
            self._log_request(request, name, mode)
            if name == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif name == "hang":
                _wait_until_peer_closes(conn)
                if not self._stopping.is_set():
                    with self._count_changed:
                        self._abandoned += 1
                        self._count_changed.notify_all()
            return False  # closing the socket (in _serve_connection) does the rest

        if name == "reset_mid_body":
            self._log_request(request, "reset mid body", mode)
            whole = params.get("body", "x" * 4096).encode()
            head = (
                f"HTTP/1.1 {params.get('code', 200)} Partial\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(whole)}\r\n\r\n"
            )
            conn.sendall(head.encode("latin-1") + whole[: len(whole) // 2])
            self._stopping.wait(0.2)  # let the proxy read the headers and half the body first
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False

        if name == "delay" and self._stopping.wait(params["ms"] / 1000):
            return False
        if name == "noise":
            code = params.get("code", 500) if noise_failure else 200
        else:
            code = params.get("code", 200)
        body = params.get("body")
        if body is None:
            body = json.dumps({"upstream": name, "path": request.path, "code": code})
        self._log_request(request, str(code), mode)
        extra = {"Cache-Control": params["cache_control"]} if "cache_control" in params else {}
        _send_response(conn, code, b"" if request.method == "HEAD" else body.encode(), request.keep_alive, extra)
        return request.keep_alive

    def _handle_control(self, conn: socket.socket, request: _Request) -> bool:
        command = request.path[len(CONTROL_PREFIX) :]
        if command == "mode":
            params = dict(request.query)
            try:
                code, payload = 200, self.set_mode(params.pop("mode", ""), **params).to_json()
            except ValueError as error:
                code, payload = 400, {"error": str(error)}
        elif command == "stats":
            with self._lock:
                code, payload = 200, {"requests": self._count_locked(None), **self._mode.to_json()}
        else:
            code, payload = 404, {"error": f"unknown control path {request.path}"}
        self._log_request(request, f"{code} (control)", self.mode)
        _send_response(conn, code, json.dumps(payload).encode(), request.keep_alive)
        return request.keep_alive

    def _log_request(self, request: _Request, outcome: str, mode: Mode) -> None:
        if self._log is not None:
            self._log(f"{request.method} {request.target} -> {outcome} [mode {mode.name}]")


# ----- HTTP/1.1 wire format --------------------------------------------------------------------


def _read_head(reader: BinaryIO) -> tuple[_Request, dict] | None:
    """Read a request line and headers; None on a clean EOF before any byte."""
    line = reader.readline(_MAX_HEADER_LINE)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(line)
    method, target, version = parts
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = reader.readline(_MAX_HEADER_LINE)
        if not line:
            raise _BadRequest("connection closed inside the request headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest("too many header lines")
    url = urlsplit(target)
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    request = _Request(method, target, url.path or "/", dict(parse_qsl(url.query)), keep_alive)
    return request, headers


def _read_body(reader: BinaryIO, headers: dict) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = reader.readline(_MAX_HEADER_LINE)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while reader.readline(_MAX_HEADER_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(chunks)
            chunks.append(_read_exactly(reader, size))
            reader.readline(_MAX_HEADER_LINE)  # CRLF after the chunk data
    return _read_exactly(reader, int(headers.get("content-length", "0")))


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise _BadRequest("connection closed inside the request body")
    return data


def _send_response(conn: socket.socket, code: int, body: bytes, keep_alive: bool, extra: dict | None = None) -> None:
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    extra_lines = "".join(f"{name}: {value}\r\n" for name, value in (extra or {}).items())
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"{extra_lines}"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    conn.sendall(head.encode("latin-1") + body)


def _wait_until_peer_closes(conn: socket.socket) -> None:
    # Whatever arrives is discarded; recv returns b"" when the peer (or stop()) ends the
    # connection, or raises when the peer resets it.
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


# ----- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--mode", default="ok", choices=sorted(_MODE_PARAMS))
    for param in sorted(set().union(*_MODE_PARAMS.values())):
        parser.add_argument(f"--{param}", help="mode parameter")
    args = parser.parse_args(argv)
    params = {p: getattr(args, p) for p in set().union(*_MODE_PARAMS.values()) if getattr(args, p) is not None}

    upstream = Upstream(args.host, args.port, log=lambda line: print(line, flush=True))
    try:
        upstream.set_mode(args.mode, **params)
    except ValueError as error:
        parser.error(str(error))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with upstream:
        print(f"upstream listening on {upstream.url} (mode {args.mode}); control: {CONTROL_PREFIX}mode, "
              f"{CONTROL_PREFIX}stats", flush=True)
        done.wait()
    print("upstream stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
