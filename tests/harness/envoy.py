"""Start and stop a real Envoy process for end-to-end tests.

Each `Envoy` gets a fresh temp dir holding its config (cfg.json), its log (envoy.log) and the admin
address file. Listener and admin ports are chosen by the kernel (port 0) and read back from the
admin API, so any number of Envoys can run side by side (`--use-dynamic-base-id` keeps their
shared-memory regions apart).

Set BREAKWATER_KEEP_TMP=1 (or pass keep_tmp=True) to keep the temp dirs for debugging.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEP_TMP_ENV = "BREAKWATER_KEEP_TMP"
# Access-log files are flushed on this interval (Envoy's default is 10 s), so tests can read them.
FILE_FLUSH_INTERVAL_MS = 100
_LOG_TAIL_LINES = 40
_ERROR_LINE = re.compile(r"\]\[(error|critical)\]\[")


class EnvoyError(RuntimeError):
    pass


def envoy_binary() -> str:
    """The Envoy to run: $ENVOY (a path or a command on PATH), else the repository's .venv."""
    configured = os.environ.get("ENVOY")
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise EnvoyError(f"ENVOY={configured!r} is neither an executable file nor a command on PATH")
        return found
    default = REPO_ROOT / ".venv" / "bin" / "envoy"
    if not os.access(default, os.X_OK):
        raise EnvoyError(f"Envoy not found at {default}: run `make envoy` (or set ENVOY=/path/to/envoy)")
    return str(default)


_VERSION = re.compile(r"/(\d+)\.(\d+)\.(\d+)(?:[-/]|$)")
_version_cache: dict[str, tuple[int, int, int]] = {}


def envoy_version() -> tuple[int, int, int]:
    """(major, minor, patch) of the Envoy the tests run (from `envoy --version`), for the few
    assertions whose documented behaviour differs between Envoy releases."""
    binary = envoy_binary()
    if binary not in _version_cache:
        output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        found = _VERSION.search(output)
        if found is None:
            raise EnvoyError(f"cannot read the version from `{binary} --version`: {output!r}")
        _version_cache[binary] = (int(found[1]), int(found[2]), int(found[3]))
    return _version_cache[binary]


class Envoy:
    """One Envoy process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        config: dict | Path,
        concurrency: int = 2,
        log_level: str = "info",
        component_log_level: str | None = "wasm:debug",
        keep_tmp: bool | None = None,
        cpus: str | None = None,
    ):
        self.config = config
        self.cpus = cpus  # e.g. "0": run pinned to those CPUs with taskset (benchmarks)
        self.concurrency = concurrency
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.keep_tmp = keep_tmp if keep_tmp is not None else os.environ.get(KEEP_TMP_ENV, "") not in ("", "0")
        self.tmp_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.admin_url = ""
        self.ports: dict[str, int] = {}
        self._final_log = ""

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Envoy:
        try:
            self._launch()
            self._wait_until_live(timeout)
            self.ports = self._listener_ports()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Envoy has not exited within 10 s; removes the temp dir."""
        _running.discard(self)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.tmp_dir is not None:
            self._final_log = self.log_text()
            if not self.keep_tmp:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
                self.tmp_dir = None

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @classmethod
    def run_expecting_failure(cls, config: dict, timeout: float = 20.0, **kwargs) -> tuple[int, str]:
        """Run Envoy with a config it should refuse; return (exit code, log text).

        Raises EnvoyError (after killing it) if Envoy is still running after `timeout` seconds.
        """
        envoy = cls(config, **kwargs)
        try:
            envoy._launch()
            returncode = envoy.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EnvoyError(
                f"Envoy accepted the config and was still running after {timeout}s\n{envoy.log_excerpt()}"
            ) from None
        finally:
            envoy.stop()
        return returncode, envoy.log_text()

    def _launch(self) -> None:
        binary = envoy_binary()
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="breakwater-envoy-"))
        if isinstance(self.config, Path):
            config_path = self.config  # a file from envoy/, with its own fixed ports
        else:
            config_path = self.tmp_dir / "cfg.json"
            config_path.write_text(json.dumps(self.config, indent=2))
        command = [
            binary,
            "-c", str(config_path),
            "--concurrency", str(self.concurrency),
            "--use-dynamic-base-id",
            "--admin-address-path", str(self._admin_address_file),
            "--file-flush-interval-msec", str(FILE_FLUSH_INTERVAL_MS),
            "-l", self.log_level,
        ]  # fmt: skip
        if self.component_log_level:
            command += ["--component-log-level", self.component_log_level]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]
        with open(self._log_path, "wb") as log:
            # From the repository root, so relative paths in configs (dist/*.wasm) resolve.
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _running.add(self)

    def _wait_until_live(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvoyError(f"Envoy exited with code {self.process.returncode} at startup\n{self.log_excerpt()}")
            address = self._admin_address_file.read_text().strip() if self._admin_address_file.exists() else ""
            if address:
                self.admin_url = f"http://{address}"
                try:
                    if self.admin_get("/ready").strip() == "LIVE":
                        return
                except OSError:
                    pass  # /ready answers 503 until initialisation is done (urllib's HTTPError)
            time.sleep(0.05)
        raise EnvoyError(f"Envoy was not LIVE after {timeout}s\n{self.log_excerpt()}")

    def _listener_ports(self) -> dict[str, int]:
        statuses = json.loads(self.admin_get("/listeners?format=json"))["listener_statuses"]
        return {s["name"]: s["local_address"]["socket_address"]["port_value"] for s in statuses}

    # ----- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port of the first listener in the config."""
        if isinstance(self.config, Path):
            return next(iter(self.ports.values()))
        first = self.config["static_resources"]["listeners"][0]["name"]
        return self.ports[first]

    def url(self, path: str = "/", listener: str | None = None) -> str:
        port = self.ports[listener] if listener else self.port
        return f"http://127.0.0.1:{port}{path}"

    # ----- admin API -------------------------------------------------------------------------

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=5) as response:
            return response.read().decode()

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges (histograms are skipped), optionally filtered by a regex."""
        query = "?format=json"
        if filter_regex:
            query += "&filter=" + urllib.parse.quote(filter_regex)
        entries = json.loads(self.admin_get("/stats" + query))["stats"]
        return {e["name"]: e["value"] for e in entries if isinstance(e.get("value"), int)}

    def stat(self, name: str) -> int:
        found = self.stats(f"^{re.escape(name)}$")
        if name not in found:
            raise KeyError(f"Envoy has no counter or gauge named {name!r}")
        return found[name]

    def prometheus(self, filter: str | None = None) -> str:
        query = "?filter=" + urllib.parse.quote(filter) if filter else ""
        return self.admin_get("/stats/prometheus" + query)

    def worker_connection_counts(self, listener: str | None = None) -> list[int]:
        """Connections accepted by each worker thread (index = worker number) on one listener.

        Read from `listener.<stat prefix>.worker_<N>.downstream_cx_total`; the stat prefix is the
        listener's `stat_prefix`, or else its configured address ("127.0.0.1_0" for port 0).
        """
        prefix = re.escape(self._listener_stat_prefix(listener))
        pattern = re.compile(rf"^listener\.{prefix}\.worker_(\d+)\.downstream_cx_total$")
        counts = [0] * self.concurrency
        for name, value in self.stats(pattern.pattern).items():
            counts[int(pattern.match(name).group(1))] = value
        return counts

    def _listener_stat_prefix(self, name: str | None) -> str:
        listeners = self.config["static_resources"]["listeners"]
        listener = next(lst for lst in listeners if name in (None, lst["name"]))
        if listener.get("stat_prefix"):
            return listener["stat_prefix"]
        address = listener["address"]["socket_address"]
        return f"{address['address']}_{address['port_value']}"

    # ----- logs ------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Envoy's stdout+stderr so far (still available after stop())."""
        if self.tmp_dir is None or not self._log_path.exists():
            return self._final_log
        return self._log_path.read_text(errors="replace")

    def log_excerpt(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The error and critical lines of the log, or else its last lines.

        Envoy follows a config error with a dump of the whole config, so a plain tail would
        show only the dump.
        """
        text = self.log_text().splitlines()
        errors = [line for line in text if _ERROR_LINE.search(line)]
        return "\n".join(errors[-lines:] or text[-lines:])

    @property
    def _log_path(self) -> Path:
        return self.tmp_dir / "envoy.log"

    @property
    def _admin_address_file(self) -> Path:
        return self.tmp_dir / "admin.txt"


def refusal_log_lines(config: dict, filter_label: str) -> list[str]:
    """Runs Envoy with a config one of breakwater's filters must refuse; returns the filter's
    refusal lines (``breakwater <filter_label>: invalid configuration: …``)."""
    returncode, log = Envoy.run_expecting_failure(config)
    if returncode == 0:
        raise EnvoyError("Envoy exited 0 with a config that should have been refused")
    marker = f"breakwater {filter_label}: invalid configuration:"
    return [line for line in log.splitlines() if marker in line]


def interrupt_on_signals() -> None:
    """Makes SIGTERM behave like Ctrl-C, so `with Envoy(...)` blocks unwind and stop everything;
    SIGINT is restored too, in case a shell started the program with it ignored."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


# Last resort for interrupted test runs: never leave an Envoy behind when Python exits.
_running: set[Envoy] = set()


@atexit.register
def _stop_all() -> None:
    for envoy in list(_running):
        envoy.stop()


# ----- access logs -----------------------------------------------------------------------------

_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_access_log_line(line: str) -> dict[str, str]:
    """Parse a key=value access-log line (see config.DEFAULT_ACCESS_LOG_FORMAT); a field of a
    filter-state key made of parts also gives each part (contract.split_parts)."""
    from .contract import split_parts

    return split_parts(dict(_FIELD.findall(line)))


def read_access_log(path: str | Path) -> list[dict[str, str]]:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []  # Envoy creates the file on the first flush
    return [parse_access_log_line(line) for line in text.splitlines() if line.strip()]


def wait_for_access_log(
    path: str | Path,
    match: Callable[[dict[str, str]], bool] = lambda entry: True,
    count: int = 1,
    timeout: float = 5.0,
) -> list[dict[str, str]]:
    """Wait until at least `count` entries satisfy `match`; return all matching entries."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [e for e in read_access_log(path) if match(e)]
        if len(entries) >= count:
            return entries
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(entries)} matching access-log entries in {path} after {timeout}s, expected {count}"
            )
        time.sleep(0.05)


# Envoy log lines that mean a filter failed: a trapped VM, a Rust panic, a critical wasm line.
WASM_FAILURE = re.compile(r"Function: proxy_on_\w+ failed|panicked|RuntimeError|\]\[critical\]\[")


def assert_no_wasm_failure(envoy: Envoy) -> None:
    failures = [line for line in envoy.log_text().splitlines() if WASM_FAILURE.search(line)]
    assert not failures, "a filter failed:\n" + "\n".join(failures[:20])
