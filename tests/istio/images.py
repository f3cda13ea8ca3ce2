"""Helpers for the Istio image tests: build a layout with `breakwater oci build`, read it, open a
layer the way istio-agent does, and read the digest pinned in istio/base/."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = REPO_ROOT / "target" / "debug" / "breakwater"
DIST = REPO_ROOT / "dist"
ISTIO_BASE = REPO_ROOT / "istio" / "base"
# image name -> module in dist/
IMAGES = {
    "circuit-breaker": "circuit_breaker.wasm",
    "fallback": "fallback.wasm",
    "log-enrichment": "log_enrichment.wasm",
}
# The tag `make oci-layouts` and `make push` use: the workspace version.
VERSION = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "Cargo.toml").read_text(), re.M).group(1)

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def module(image: str) -> bytes:
    path = DIST / IMAGES[image]
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: run `make build`")
    return path.read_bytes()


def build_layout(image: str, out: Path, wasm: Path | None = None) -> str:
    """`breakwater oci build` into `out`; returns the manifest digest it printed."""
    if not CLI.exists():
        pytest.fail(f"{CLI.relative_to(REPO_ROOT)} is missing: run `make cli`")
    module(image)  # fails with a hint when dist/ is not built
    wasm = wasm or DIST / IMAGES[image]
    result = subprocess.run(
        [CLI, "oci", "build", "--wasm", wasm, "--name", image, "--tag", VERSION, "--out", out],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"breakwater oci build failed:\n{result.stderr}"
    digest = result.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"expected one sha256:<hex> line, got {result.stdout!r}"
    return digest


class Layout:
    """An OCI image layout directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = json.loads((path / "index.json").read_text())

    def blob(self, digest: str) -> bytes:
        return (self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    def blob_names(self) -> list[str]:
        return sorted(p.name for p in (self.path / "blobs" / "sha256").iterdir())


def plugin_wasm(layer: bytes) -> bytes:
    """What istio-agent's fetcher takes from a compat image's last layer: gunzip, untar, the first
    entry whose base name is plugin.wasm, which must be a Wasm module."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as tar:
        for member in tar:
            if posixpath.basename(member.name) == "plugin.wasm":
                data = tar.extractfile(member).read()
                assert data.startswith(b"\0asm"), "plugin.wasm in the layer is not a Wasm module"
                return data
    raise AssertionError("the last layer has no plugin.wasm: istio-agent would refuse the image")


def pinned_digest(image: str) -> str:
    """`spec.sha256` of the WasmPlugin for `image` in istio/base/<image>.yaml, as `sha256:<hex>`
    (read with a scan of the text: the venv has no YAML parser)."""
    path = ISTIO_BASE / f"{image}.yaml"
    shown = path.relative_to(REPO_ROOT)
    if not path.exists():
        pytest.fail(f"{shown} is missing: it holds the WasmPlugin for the {image} image")
    for doc in re.split(r"^---(?:\s.*)?$", path.read_text(), flags=re.M):
        url = re.search(r"^\s+url:\s*[\"']?([^\"'\s#]+)", doc, re.M)
        if not re.search(r"^kind:\s*WasmPlugin\s*$", doc, re.M) or not url:
            continue
        # oci://host/ns/<image>:<tag>@<digest>: the last path segment, without tag or digest.
        if url.group(1).split("@")[0].rsplit("/", 1)[-1].split(":")[0] != image:
            continue
        pinned = re.search(r"^\s+sha256:\s*[\"']?([0-9a-f]{64})[\"']?\s*(?:#.*)?$", doc, re.M)
        if not pinned:
            pytest.fail(f"{shown}: the WasmPlugin for {image} has no pinned spec.sha256: run `make oci` to pin it")
        return "sha256:" + pinned.group(1)
    pytest.fail(f"{shown} has no WasmPlugin whose spec.url names the {image} image")
