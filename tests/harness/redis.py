"""Redis with webdis in front of it (Redis over HTTP), on free ports, for the fallback recipe.

A Wasm filter can only make HTTP or gRPC calls, so the fallback's `service` source reaches
Redis through webdis: `GET /GET/<key>?type=application/json` answers the stored value as is.
Both come from Debian (`apt-get install redis-server webdis`); `available()` says whether they
are installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from .config import free_port
from .service import Service


def available() -> bool:
    return all(shutil.which(tool) for tool in ("redis-server", "redis-cli", "webdis"))


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout}s")


class RedisWebdis(Service):
    """`with RedisWebdis() as kv:` — Redis on `kv.redis_port`, webdis on `kv.http_port`."""

    def __init__(self) -> None:
        self.redis_port = free_port()
        self.http_port = free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="breakwater-redis-"))
        self._processes: list[subprocess.Popen] = []

    def _start(self) -> None:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._processes.append(redis)
        _wait_for_port(self.redis_port, redis, "redis-server")
        config = self._tmp / "webdis.json"
        config.write_text(json.dumps({
            "redis_host": "127.0.0.1", "redis_port": self.redis_port,
            "http_host": "127.0.0.1", "http_port": self.http_port,
            "threads": 1, "daemonize": False, "database": 0,
            "acl": [{"disabled": ["DEBUG", "FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN"]}],
            "verbosity": 1, "logfile": str(self._tmp / "webdis.log"),
        }))  # fmt: skip
        webdis = subprocess.Popen(["webdis", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._processes.append(webdis)
        _wait_for_port(self.http_port, webdis, "webdis")

    def set(self, key: str, value: str) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "SET", key, value], check=True,
                       capture_output=True, timeout=10)  # fmt: skip

    def get_over_http(self, key: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/GET/{key}?type=application/json", timeout=5) as r:
            return r.read()

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)
