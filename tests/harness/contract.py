"""The filter-state contract between the filters, as `breakwater contract` prints it from
`breakwater_common::filter_state`: the tests build access-log formats from it instead of
spelling the keys."""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "target" / "debug" / "breakwater"


@lru_cache(maxsize=None)
def contract() -> dict:
    """{"keys": {key: {"name", "writer", "values"}}, "log_field_prefix": ...}."""
    out = subprocess.run([str(CLI), "contract"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def key(name: str) -> str:
    """The filter-state key with this short name (`decision`, `fallback_served`, ...)."""
    for k, spec in contract()["keys"].items():
        if spec["name"] == name:
            return k
    raise KeyError(f"no filter-state key named {name!r} in the contract")


def values(name: str) -> list[str]:
    return contract()["keys"][key(name)]["values"]


def split_parts(entry: dict) -> dict:
    """Adds the parts of every field named after a key made of parts (`circuit_breaker` →
    `decision`, `state`, `breaker`). Unset, Envoy prints "-" in a text format and null in a
    JSON one: each part is then the same."""
    for spec in contract()["keys"].values():
        names = [part["name"] for part in spec.get("parts", [])]
        if not names or spec["name"] not in entry:
            continue
        value = entry[spec["name"]]
        if value is None or value == "-":
            values = [value] * len(names)
        else:
            values = value.split(",", len(names) - 1)
        entry.update(zip(names, values + [""] * (len(names) - len(values))))
    return entry


def access_log_field(name: str) -> str:
    """`%FILTER_STATE(wasm.<key>:PLAIN)%` for the key with this short name."""
    return f"%FILTER_STATE(wasm.{key(name)}:PLAIN)%"


def log_field_key(field: str) -> str:
    """The per-field key of a log record field (with `separate_fields`)."""
    return contract()["log_field_prefix"] + field
