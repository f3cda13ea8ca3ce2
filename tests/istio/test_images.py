"""The Istio Wasm OCI images `breakwater oci build` writes (no registry needed).

istio-agent accepts the *compat* variant: an OCI image manifest whose last layer is a gzipped tar
holding plugin.wasm. A WasmPlugin's spec.sha256 for an oci:// url is the manifest digest, so the
image must be reproducible and its digest pinned in istio/base/.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .images import (
    CLI,
    CONFIG_TYPE,
    DIST,
    IMAGES,
    LAYER_TYPE,
    MANIFEST_TYPE,
    VERSION,
    Layout,
    build_layout,
    module,
    pinned_digest,
    plugin_wasm,
    sha256,
)

each_image = pytest.mark.parametrize("image", sorted(IMAGES))


@each_image
def test_image_is_an_istio_compat_image(image: str, tmp_path: Path):
    digest = build_layout(image, tmp_path / image)
    layout = Layout(tmp_path / image)
    assert (layout.path / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'

    # skopeo finds the image by its tag (oci:DIR:TAG).
    [entry] = layout.index["manifests"]
    assert entry["mediaType"] == MANIFEST_TYPE
    assert entry["digest"] == digest
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == VERSION

    manifest_bytes = layout.blob(digest)
    assert entry["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MANIFEST_TYPE
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    [layer] = manifest["layers"]  # exactly one, so it is the last one, which istio-agent reads
    assert layer["mediaType"] == LAYER_TYPE

    # Every blob is stored under its own digest, with the size the manifest says.
    for name in layout.blob_names():
        assert sha256(layout.blob(name)) == f"sha256:{name}", f"blob {name} does not match its name"
    referenced = sorted([digest, manifest["config"]["digest"], layer["digest"]])
    assert referenced == [f"sha256:{name}" for name in layout.blob_names()], "the layout holds other blobs"
    layer_bytes = layout.blob(layer["digest"])
    assert layer["size"] == len(layer_bytes)

    config = json.loads(layout.blob(manifest["config"]["digest"]))
    assert (config["architecture"], config["os"]) == ("wasm", "wasip1")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer_bytes))]}

    assert plugin_wasm(layer_bytes) == module(image), f"plugin.wasm in the layer is not dist/{IMAGES[image]}"


@each_image
def test_same_module_gives_the_same_image_anywhere(image: str, tmp_path: Path):
    first = build_layout(image, tmp_path / "a" / image)
    # Another output directory, and the module read from another path.
    copy = tmp_path / "elsewhere" / "module.wasm"
    copy.parent.mkdir()
    shutil.copyfile(DIST / IMAGES[image], copy)
    second = build_layout(image, tmp_path / "b" / "layout", wasm=copy)
    assert first == second, "two builds of the same module gave different digests: the image is not reproducible"
    a, b = Layout(tmp_path / "a" / image), Layout(tmp_path / "b" / "layout")
    assert a.blob_names() == b.blob_names()
    assert (a.path / "index.json").read_bytes() == (b.path / "index.json").read_bytes()


@each_image
def test_digest_is_pinned_in_istio_base(image: str, tmp_path: Path):
    digest = build_layout(image, tmp_path / image)
    pinned = pinned_digest(image)
    assert pinned == digest, (
        f"istio/base/{image}.yaml pins {pinned}, but dist/{IMAGES[image]} builds the image {digest}: "
        "run `make oci` to re-pin it (and commit the change)"
    )


def test_refuses_a_file_that_is_not_wasm(tmp_path: Path):
    not_wasm = tmp_path / "module.wasm"
    not_wasm.write_bytes(b"#!/bin/sh\n")
    result = subprocess.run(
        [CLI, "oci", "build", "--wasm", not_wasm, "--name", "fallback", "--tag", VERSION, "--out", tmp_path / "out"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not a WebAssembly module" in result.stderr
    assert not (tmp_path / "out").exists()
