"""The manifests in istio/, run on real Envoy the way istiod and istio-agent would deliver them.

Each WasmPlugin becomes the Wasm filter istiod would send (see tests/harness/istio.py for what
is reproduced and from where), with the module pulled out of the OCI image that `breakwater oci
build` makes and checked against the pinned sha256, in the order Istio would chain them. The
demo's story then runs through it: checkout calls recommendations, recommendations fails, and
the breaker, the fallback and the log records must do what the manifests say.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.harness import Envoy, Upstream, request, static_cluster
from tests.harness.config import socket_address
from tests.harness.istio import (
    load_documents,
    pull_module,
    render_kustomization,
    selected_plugins,
    telemetry_access_log,
    wasm_http_filter,
)
from tests.istio.images import IMAGES, build_layout

REPO_ROOT = Path(__file__).resolve().parents[2]
ISTIO = REPO_ROOT / "istio"
CHECKOUT_LABELS = {"app": "checkout", "version": "v1"}


@pytest.fixture(scope="module")
def image_layouts(tmp_path_factory) -> Path:
    """The three images, as `make oci-layouts` builds them."""
    root = tmp_path_factory.mktemp("oci")
    for image in IMAGES:
        build_layout(image, root / image)
    return root


def sidecar_config(documents: list[dict], namespace: str, layouts: Path, tmp: Path, recommendations: int,
                   popular: int, access_log: Path, mode: str = "CLIENT", port: int = 8080) -> tuple[dict, list[str]]:
    """checkout's outbound listener for recommendations:8080, as its sidecar would get it."""
    plugins = selected_plugins(documents, namespace, CHECKOUT_LABELS, mode=mode, port=port)
    filters = [
        wasm_http_filter(p, pull_module(p["spec"]["url"], p["spec"]["sha256"], layouts, tmp)) for p in plugins
    ]
    by_kind = {d["kind"]: d for d in documents if d["kind"] in ("Telemetry", "VirtualService")}
    timeout = by_kind["VirtualService"]["spec"]["http"][0]["timeout"]
    mesh_config = load_documents(ISTIO / "mesh-config.yaml")[0]
    recommendations_cluster = f"outbound|8080||recommendations.{namespace}.svc.cluster.local"
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "outbound_0.0.0.0_8080",
        "route_config": {
            "name": "8080",
            "virtual_hosts": [{
                "name": f"recommendations.{namespace}.svc.cluster.local:8080",
                "domains": ["*"],
                "routes": [{"name": "default", "match": {"prefix": "/"},
                            "route": {"cluster": recommendations_cluster, "timeout": timeout}}],
            }],
        },
        "http_filters": [*filters, {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "access_log": [telemetry_access_log(mesh_config, by_kind["Telemetry"], str(access_log))],
    }  # fmt: skip
    config = {
        "node": {
            "id": f"sidecar~10.0.0.7~checkout-6c9f-xk2p.{namespace}~{namespace}.svc.cluster.local",
            "cluster": f"checkout.{namespace}",
            "metadata": {"NAMESPACE": namespace, "NAME": "checkout-6c9f-xk2p", "WORKLOAD_NAME": "checkout",
                         "CLUSTER_ID": "Kubernetes", "LABELS": CHECKOUT_LABELS},
        },  # fmt: skip
        "admin": {"address": socket_address(0)},
        "static_resources": {
            "listeners": [{
                "name": "outbound", "stat_prefix": "outbound", "address": socket_address(0),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": [
                static_cluster(recommendations_cluster, recommendations),
                static_cluster(f"outbound|80||popular-cache.{namespace}.svc.cluster.local", popular),
            ],
        },  # fmt: skip
    }
    return config, [f["name"] for f in filters]


def records(path: Path) -> list[dict]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for_records(path: Path, count: int, counted=lambda record: True, timeout: float = 5.0) -> list[dict]:
    """All records, once at least `count` of them are `counted` (Envoy flushes the file every
    second or so)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path)
        matching = sum(1 for r in found if counted(r))
        if matching >= count:
            return found
        assert time.monotonic() < deadline, f"{matching} of the {count} records expected in {path}"
        time.sleep(0.05)


def assert_every_filter_accepted_its_config(envoy: Envoy) -> None:
    log = envoy.log_text()
    refusals = [line for line in log.splitlines() if "invalid configuration" in line or "Failed to" in line]
    assert refusals == [], "\n".join(refusals)


def test_filters_are_selected_and_ordered_as_the_manifests_intend():
    documents = render_kustomization(ISTIO / "base")
    order = lambda **kw: [p["metadata"]["name"] for p in selected_plugins(documents, "shop", **kw)]  # noqa: E731
    assert order(labels=CHECKOUT_LABELS, mode="CLIENT", port=8080) == ["log-enrichment", "fallback", "circuit-breaker"]
    # Other outbound ports and inbound traffic: only the records.
    assert order(labels=CHECKOUT_LABELS, mode="CLIENT", port=9090) == ["log-enrichment"]
    assert order(labels=CHECKOUT_LABELS, mode="SERVER", port=8080) == ["log-enrichment"]
    assert order(labels={"app": "recommendations"}, mode="CLIENT", port=8080) == ["log-enrichment"]
    # Another namespace gets none of them.
    assert selected_plugins(documents, "payments", CHECKOUT_LABELS, mode="CLIENT", port=8080) == []


def test_base_manifests_on_envoy_breaker_fallback_and_records(image_layouts, tmp_path):
    documents = render_kustomization(ISTIO / "base")
    access_log = tmp_path / "access.log"
    with Upstream() as recommendations, Upstream() as popular:
        config, names = sidecar_config(documents, "shop", image_layouts, tmp_path, recommendations.port,
                                       popular.port, access_log)  # fmt: skip
        assert names == [f"extensions.istio.io/wasmplugin/shop.{n}" for n in ("log-enrichment", "fallback", "circuit-breaker")]
        with Envoy(config, concurrency=2) as envoy:
            assert_every_filter_accepted_its_config(envoy)
            recommendations.set_mode("ok", body='["for-you-1","for-you-2"]')
            popular.set_mode("ok", body='["popular-1"]')

            # Healthy: answers pass through; sampling (rate 0.25) keeps some of the 40 records.
            for i in range(40):
                assert request(envoy.url(f"/recommendations?user={i % 3}")).status == 200

            # recommendations fails: the last good answer is served (stale), and after 5
            # consecutive failures the breaker opens.
            recommendations.set_mode("status", code=503)
            recommendations.reset_counts()
            for _ in range(5):
                response = request(envoy.url("/recommendations?user=0"))
                assert (response.status, response.headers.get("x-breakwater-fallback")) == (200, "stale")
                assert response.text == '["for-you-1","for-you-2"]'
            assert recommendations.count() == 5

            # Open: nothing reaches recommendations; GETs get the stale answer, or the
            # popular-cache service for a URL never seen; other methods the breaker's 503.
            stale = request(envoy.url("/recommendations?user=0"))
            assert (stale.status, stale.headers.get("x-breakwater-fallback")) == (200, "stale")
            fresh = request(envoy.url("/recommendations?user=42"))
            assert (fresh.status, fresh.headers.get("x-breakwater-fallback"), fresh.text) == (200, "service", '["popular-1"]')
            assert popular.count(path_prefix="/popular.json") == 1
            assert popular.received_headers("/popular.json")[0]["host"] == "popular-cache.shop.svc.cluster.local"
            post = request(envoy.url("/recommendations"), method="POST", body="{}")
            assert post.status == 503 and json.loads(post.text) == {"error": "recommendations unavailable"}
            assert recommendations.count() == 5, "an open breaker sends nothing upstream"

            # The records: failures and rejections are always kept, with the decisions and the
            # workload from the node metadata.
            found = wait_for_records(access_log, 8, lambda r: "breakwater.fallback" in r or r["breakwater.breaker_rejected"])
            failures = [r for r in found if r.get("breakwater.fallback.trigger") == "status"]
            rejections = [r for r in found if r["breakwater.breaker_rejected"]]
            healthy = [r for r in found if r not in failures + rejections]
            assert (len(failures), len(rejections)) == (5, 3)
            assert 0 < len(healthy) < 40, f"sampling at 0.25 kept {len(healthy)} of 40 healthy requests"
            assert {r["http.response.status_code"] for r in healthy} == {200}
            stale_record = next(r for r in rejections if r.get("url.query") == "user=0")
            assert (stale_record["breakwater.fallback"], stale_record["breakwater.fallback.trigger"]) == ("stale", "breaker_open")
            assert stale_record["http.response.status_code"] == 200
            assert stale_record["envoy.cluster"] == "outbound|8080||recommendations.shop.svc.cluster.local"
            assert (stale_record["k8s.namespace.name"], stale_record["k8s.workload.name"]) == ("shop", "checkout")
            assert stale_record["deployment.environment.name"] == "production"
            assert re.fullmatch(r"[0-9a-f-]{36}", stale_record["correlation.id"])
            post_record = next(r for r in rejections if r["http.request.method"] == "POST")
            assert post_record["http.response.status_code"] == 503 and "breakwater.fallback" not in post_record
            assert_every_filter_accepted_its_config(envoy)


def test_staging_overlay_runs_the_breaker_in_dry_run_and_logs_everything(image_layouts, tmp_path):
    documents = render_kustomization(ISTIO / "overlays" / "staging")
    assert {d["metadata"]["namespace"] for d in documents} == {"shop-staging"}
    urls = sorted(d["spec"]["url"] for d in documents if d["kind"] == "WasmPlugin")
    assert all(u.startswith("oci://registry.staging.example:5000/breakwater/") for u in urls), urls
    access_log = tmp_path / "access.log"
    with Upstream() as recommendations, Upstream() as popular:
        config, _ = sidecar_config(documents, "shop-staging", image_layouts, tmp_path, recommendations.port,
                                   popular.port, access_log)  # fmt: skip
        with Envoy(config, concurrency=2) as envoy:
            assert_every_filter_accepted_its_config(envoy)
            for _ in range(10):
                assert request(envoy.url("/recommendations")).status == 200
            assert len(wait_for_records(access_log, 10)) == 10, "staging logs every request (rate 1.0)"

            recommendations.set_mode("status", code=503)
            recommendations.reset_counts()
            for _ in range(10):
                request(envoy.url("/recommendations"), method="POST", body="{}")
            assert recommendations.count() == 10, "dry_run never rejects"
            found = wait_for_records(access_log, 20)
            decisions = [r["breakwater.breaker.decision"] for r in found[-10:]]
            assert decisions[:5] == ["passed"] * 5
            assert decisions[5:] == ["dry_run_would_reject"] * 5
            assert {r["deployment.environment.name"] for r in found} == {"staging"}
            assert found[-1]["envoy.cluster"] == "outbound|8080||recommendations.shop-staging.svc.cluster.local"


def test_a_stale_pin_is_refused_like_istio_agent_would(image_layouts, tmp_path):
    plugin = next(d for d in render_kustomization(ISTIO / "base") if d["metadata"]["name"] == "fallback")
    with pytest.raises(ValueError, match="run `make oci`"):
        pull_module(plugin["spec"]["url"], "0" * 64, image_layouts, tmp_path)
