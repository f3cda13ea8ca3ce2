"""A real OCI registry on a free loopback port, for the Istio image round trip.

Debian's `docker-registry` (the CNCF distribution registry 2.8; `apt-get install
docker-registry`) serves plain HTTP on 127.0.0.1 with its storage in a temporary directory that
is removed on stop. `available()` says whether it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .client import RequestError, Response, request
from .config import free_port
from .service import Service

BINARY = "docker-registry"


def available() -> bool:
    return shutil.which(BINARY) is not None


class Registry(Service):
    """`with Registry() as registry:` — serves `registry.host` ("127.0.0.1:<port>");
    `registry.get("/v2/...")` reads from it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._tmp = Path(tempfile.mkdtemp(prefix="breakwater-registry-"))
        self._log = self._tmp / "registry.log"
        self._process: subprocess.Popen | None = None

    def _start(self) -> None:
        config = self._tmp / "config.yml"
        # JSON is YAML; the registry needs no more than storage and an address.
        config.write_text(json.dumps({
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self._tmp / "storage")}},
            "http": {"addr": self.host},
        }))  # fmt: skip
        # REGISTRY_* variables override the config file: keep the caller's out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"{BINARY} exited with code {self._process.returncode}:\n{self.log()}")
            try:
                if self.get("/v2/", timeout=1).status == 200:
                    return
            except RequestError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{BINARY} did not answer /v2/ on {self.host} within {timeout}s:\n{self.log()}")

    def get(self, path: str, accept: str | None = None, timeout: float = 10) -> Response:
        headers = {"Accept": accept} if accept else None
        return request(f"http://{self.host}{path}", headers=headers, timeout=timeout)

    def log(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self._tmp, ignore_errors=True)
