"""What istiod and istio-agent make of the manifests in istio/, reproduced for a local Envoy.

Reproduced from Istio's source (istio 1.27, `pilot/pkg/model/extensions.go`,
`pilot/pkg/model/push_context.go`, `pkg/wasm/`), see the README's "Deploy on Istio":

- selection: the plugin's namespace is the workload's (or the root namespace), `selector`
  labels are a subset of the workload's, `match` mode (CLIENT = outbound, SERVER = inbound) and
  ports fit the listener;
- order: by phase (AUTHN, AUTHZ, STATS, then unset) and, within a phase, by descending
  priority, an unset priority sorting last;
- each plugin becomes a Wasm HTTP filter named `<namespace>.<name>`, `root_id` = `pluginName`,
  no `vm_id`, runtime V8, `configuration` = protojson of `pluginConfig` (a protobuf Struct) in a
  StringValue (nothing when empty), `failure_policy` from `failStrategy`;
- istio-agent: the module comes from the OCI image named by `url`, whose manifest digest must
  equal `sha256`; the last layer is a gzipped tar holding `plugin.wasm`, which must start with
  `\\0asm`; Envoy gets it as a local file.
- Telemetry access logging with an `envoyFileAccessLog` provider becomes a file access log with
  the provider's text format and the Telemetry filter's CEL expression.

`render_kustomization` applies the subset of kustomize that istio/ uses (resources, namespace,
images on WasmPlugin urls, JSON 6902 patches) so the overlay is exercised too.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
from pathlib import Path

import yaml

PHASE_ORDER = {"AUTHN": 0, "AUTHZ": 1, "STATS": 2, "UNSPECIFIED_PHASE": 3}
FAILURE_POLICY = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED", "FAIL_RELOAD": "FAIL_RELOAD"}
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
INT32_MIN = -(2**31)


def load_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --- kustomize (the subset istio/ uses) -----------------------------------------------------------


def render_kustomization(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    supported = {"apiVersion", "kind", "namespace", "resources", "images", "patches", "configurations"}
    unsupported = set(kustomization) - supported
    if unsupported:
        raise ValueError(f"{directory}: kustomize features not emulated here: {sorted(unsupported)}")
    documents: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        documents += render_kustomization(path) if path.is_dir() else load_documents(path)
    for image in kustomization.get("images", []):
        for doc in documents:
            if doc.get("kind") == "WasmPlugin":
                doc["spec"]["url"] = _set_image(doc["spec"]["url"], image)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        matched = [d for d in documents if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
        if not matched:
            raise ValueError(f"{directory}: patch target {target} matches nothing")
        for doc in matched:
            for operation in yaml.safe_load(patch["patch"]):
                _json_patch(doc, operation)
    if "namespace" in kustomization:
        for doc in documents:
            doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return documents


def _set_image(url: str, image: dict) -> str:
    name, _, tag = url.rpartition(":") if url.count(":") > 1 else (url, "", "")
    if name != image["name"]:
        return url
    return f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def _json_patch(doc: dict, operation: dict) -> None:
    """RFC 6902 `replace` and `add` (all the overlay needs); a missing path is an error, as in
    kustomize."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].lstrip("/").split("/")]
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if operation["op"] == "replace":
        node[key]  # noqa: B018 - raises if the path does not exist
        node[key] = operation["value"]
    elif operation["op"] == "add":
        if isinstance(node, list):
            node.insert(key, operation["value"])
        else:
            node[key] = operation["value"]
    else:
        raise ValueError(f"JSON patch op {operation['op']!r} not emulated")


# --- istiod ---------------------------------------------------------------------------------------


def protojson(value):
    """`pluginConfig` as istiod sends it: a protobuf Struct (numbers are doubles) marshalled
    with protojson (map keys sorted, integral doubles printed without a fraction)."""

    def convert(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            f = float(v)
            return int(f) if math.isfinite(f) and f.is_integer() and abs(f) < 1e21 else f
        if isinstance(v, list):
            return [convert(x) for x in v]
        return {k: convert(v[k]) for k in sorted(v)}

    return json.dumps(convert(value), separators=(",", ":"), ensure_ascii=False)


def selected_plugins(
    documents: list[dict], namespace: str, labels: dict[str, str], mode: str, port: int, root_namespace: str = "istio-system"
) -> list[dict]:
    """The WasmPlugins that apply to one listener of one workload, in filter-chain order."""
    chosen = []
    for doc in documents:
        if doc.get("kind") != "WasmPlugin":
            continue
        spec, meta = doc["spec"], doc["metadata"]
        if meta.get("namespace") not in (namespace, root_namespace):
            continue
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            continue
        if spec.get("type", "HTTP") not in ("HTTP", "UNSPECIFIED_PLUGIN_TYPE"):
            continue
        if spec.get("match") and not any(_match_fits(m, mode, port) for m in spec["match"]):
            continue
        chosen.append(doc)
    # Stable, like sort.SliceStable: phase first, then priority descending (unset = MinInt32).
    return sorted(
        chosen,
        key=lambda d: (
            PHASE_ORDER[d["spec"].get("phase", "UNSPECIFIED_PHASE")],
            -(d["spec"]["priority"] if d["spec"].get("priority") is not None else INT32_MIN),
        ),
    )


def _match_fits(match: dict, mode: str, port: int) -> bool:
    wanted = match.get("mode", "UNDEFINED")
    mode_ok = wanted in ("UNDEFINED", "CLIENT_AND_SERVER") or wanted == mode
    ports = [p["number"] for p in match.get("ports", [])]
    return mode_ok and (not ports or port in ports)


def wasm_http_filter(doc: dict, module: Path) -> dict:
    """The ECDS resource istiod sends for one WasmPlugin, after istio-agent made the module a
    local file, as a static HTTP filter."""
    spec, meta = doc["spec"], doc["metadata"]
    name = f"{meta['namespace']}.{meta['name']}"
    config = {
        "name": name,
        "root_id": spec.get("pluginName", ""),
        "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module)}}},
        "failure_policy": FAILURE_POLICY[spec.get("failStrategy", "FAIL_CLOSE")],
    }
    if spec.get("pluginConfig"):
        config["configuration"] = {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": protojson(spec["pluginConfig"]),
        }
    return {"name": f"extensions.istio.io/wasmplugin/{name}", "typed_config": {"@type": WASM_TYPE, "config": config}}


# --- istio-agent ----------------------------------------------------------------------------------


def pull_module(url: str, sha256: str, layouts: Path, into: Path) -> Path:
    """istio-agent's OCI fetch, from an OCI image layout named after the url's image: the
    manifest digest must be the pinned sha256; the module is `plugin.wasm` in the last layer."""
    image = url.split("://", 1)[-1].rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    layout = layouts / image
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][0]
    digest = descriptor["digest"].removeprefix("sha256:")
    if digest != sha256:
        raise ValueError(f"{url}: the image's manifest digest is {digest}, the WasmPlugin pins {sha256}: run `make oci`")
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())
    if manifest.get("mediaType", descriptor.get("mediaType")) != OCI_MANIFEST:
        raise ValueError(f"{url}: not an OCI image manifest")
    layer = manifest["layers"][-1]
    if layer["mediaType"] != OCI_LAYER_GZIP:
        raise ValueError(f"{url}: the last layer is {layer['mediaType']}, not {OCI_LAYER_GZIP}")
    blob = (layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == "plugin.wasm"), None)
        if member is None:
            raise ValueError(f"{url}: no plugin.wasm in the last layer")
        module = tar.extractfile(member).read()
    if not module.startswith(b"\0asm"):
        raise ValueError(f"{url}: plugin.wasm is not a Wasm module")
    path = into / f"{sha256}.wasm"
    path.write_bytes(module)
    return path


# --- Telemetry ------------------------------------------------------------------------------------


def telemetry_access_log(mesh_config: dict, telemetry: dict, path: str) -> dict:
    """A Telemetry resource's access logging through an `envoyFileAccessLog` provider of the mesh
    config, written to `path` instead of the provider's /dev/stdout."""
    logging = telemetry["spec"]["accessLogging"][0]
    provider_name = logging["providers"][0]["name"]
    providers = mesh_config["spec"]["meshConfig"]["extensionProviders"]
    provider = next(p for p in providers if p["name"] == provider_name)["envoyFileAccessLog"]
    text = provider["logFormat"]["text"]
    entry = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": text if text.endswith("\n") else text + "\n"}},
        },
    }
    if "filter" in logging:
        entry["filter"] = {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": logging["filter"]["expression"],
                },
            }
        }
    return entry

