import os
import sys
import threading
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Makes `tests.harness` importable under a plain `pytest` too, not only `python -m pytest`.
sys.path.insert(0, str(REPO_ROOT))


def _child_pids() -> list[int]:
    """Processes whose parent is this test process (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) is in parentheses and may contain spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited while we looked
        if int(fields[1]) == os.getpid():
            children.append(int(stat.parent.name))
    return children


@pytest.fixture(scope="session", autouse=True)
def no_leaked_processes_or_threads():
    """Fail the run if any Envoy process or upstream thread outlives the tests."""
    yield
    leaked_threads = [t.name for t in threading.enumerate() if t.name.startswith("upstream-")]
    assert not leaked_threads, f"upstream threads still running: {leaked_threads}"
    if Path("/proc/self/stat").exists():
        assert not _child_pids(), f"child processes still running: {_child_pids()}"
