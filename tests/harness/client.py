"""HTTP client helpers for end-to-end tests.

Every request opens a new connection and sends "Connection: close": Envoy's workers each accept
from their own SO_REUSEPORT socket, so new connections are spread over all workers by the kernel,
whereas a kept-alive connection would pin every request to one worker (and one Wasm VM).
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class RequestError(Exception):
    """The request got no HTTP response: refused, reset, timed out, ..."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    elapsed_ms: float

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


def request(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    timeout: float = 10,
) -> Response:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if isinstance(body, str):
        body = body.encode()
    send_headers = {"Connection": "close", **(headers or {})}

    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(method, target, body=body, headers=send_headers)
        response = connection.getresponse()
        response_body = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise RequestError(f"{method} {url} failed: {error!r}") from error
    finally:
        connection.close()
    elapsed_ms = (time.monotonic() - started) * 1000

    received: dict[str, str] = {}
    for name, value in response.getheaders():
        name = name.lower()
        received[name] = f"{received[name]}, {value}" if name in received else value
    return Response(response.status, received, response_body, elapsed_ms)


def concurrent(n: int, fn: Callable[[int], T]) -> list[T]:
    """Call fn(0) ... fn(n-1) in n threads at once; results in call order.

    If calls fail, the exception of the lowest-numbered failing call is re-raised once all have
    finished.
    """
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
    return [future.result() for future in futures]
