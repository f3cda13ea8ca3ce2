"""`make push` into a real registry (Debian's docker-registry), then the images read back over
the registry API the way istio-agent reads them: the manifest by tag, its digest, the last layer.

Skipped when docker-registry or skopeo is missing, unless BREAKWATER_REQUIRE_REGISTRY is set
(CI sets it, so this cannot pass there by being skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from tests.harness import registry

from .images import IMAGES, LAYER_TYPE, MANIFEST_TYPE, REPO_ROOT, VERSION, module, pinned_digest, plugin_wasm, sha256

NAMESPACE = "breakwater"


@pytest.fixture(scope="module")
def pushed() -> Iterator[registry.Registry]:
    """A registry on a free port holding the images `make push` pushed there."""
    missing = [] if registry.available() else [registry.BINARY]
    missing += [] if shutil.which("skopeo") else ["skopeo"]
    if missing:
        tools, install = " and ".join(missing), "Debian: apt-get install docker-registry skopeo"
        # CI sets BREAKWATER_REQUIRE_REGISTRY so this can never pass there by being skipped.
        if os.environ.get("BREAKWATER_REQUIRE_REGISTRY"):
            pytest.fail(f"BREAKWATER_REQUIRE_REGISTRY is set but {tools} not installed ({install})")
        pytest.skip(f"{tools} not installed ({install})")
    with registry.Registry() as reg:
        # Builds the layouts if needed (make oci-layouts), then skopeo-copies each one.
        result = subprocess.run(
            ["make", "--no-print-directory", "push", f"REGISTRY={reg.host}/{NAMESPACE}", "TLS_VERIFY=false"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"make push failed:\n{result.stdout}\n{result.stderr}\nregistry log:\n{reg.log()}"
        )
        yield reg


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_pushed_image_is_what_istio_agent_fetches(pushed: registry.Registry, image: str):
    response = pushed.get(f"/v2/{NAMESPACE}/{image}/manifests/{VERSION}", accept=MANIFEST_TYPE)
    assert response.status == 200, f"{image}:{VERSION} is not in the registry: {response.status} {response.text}"
    assert response.headers["content-type"] == MANIFEST_TYPE
    # --preserve-digests: the registry serves the manifest bytes as built, so the digest Istio
    # checks spec.sha256 against is the one pinned.
    digest = response.headers["docker-content-digest"]
    assert digest == sha256(response.body), "the registry's digest is not that of the manifest it served"

    manifest = json.loads(response.body)
    assert manifest["mediaType"] == MANIFEST_TYPE
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    last = manifest["layers"][-1]
    assert last["mediaType"] == LAYER_TYPE
    blob = pushed.get(f"/v2/{NAMESPACE}/{image}/blobs/{last['digest']}")
    assert blob.status == 200, f"layer {last['digest']} of {image}: {blob.status} {blob.text}"
    assert sha256(blob.body) == last["digest"]
    assert plugin_wasm(blob.body) == module(image), f"plugin.wasm of the pushed {image} is not dist/{IMAGES[image]}"

    pinned = pinned_digest(image)
    assert digest == pinned, (
        f"the pushed {image} image is {digest} but istio/base/{image}.yaml pins {pinned}: "
        "run `make oci` to re-pin it (and commit the change)"
    )
