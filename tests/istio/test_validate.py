"""`breakwater validate`: the repository's manifests pass, and each of a catalogue of broken ones
(the repository's own manifests with one defect each) fails naming the exact field."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness.istio import load_documents, render_kustomization

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = REPO_ROOT / "target" / "debug" / "breakwater"


def validate(*files: Path) -> subprocess.CompletedProcess:
    if not CLI.exists():
        pytest.fail(f"{CLI.relative_to(REPO_ROOT)} is missing: run `make cli`")
    return subprocess.run([CLI, "validate", *files], capture_output=True, text=True, timeout=60)


def test_the_repository_manifests_and_envoy_configs_pass():
    files = sorted((REPO_ROOT / "istio").rglob("*.yaml")) + sorted((REPO_ROOT / "envoy").glob("*.yaml"))
    result = validate(*files)
    assert result.returncode == 0, result.stderr
    summary = result.stdout
    assert summary.count("ok    ") == len(files)
    for name in ("circuit-breaker", "fallback", "log-enrichment"):
        assert f"istio/base/{name}.yaml: 1 WasmPlugin(s)" in summary
    assert "envoy/demo.yaml: 0 WasmPlugin(s), 3 Envoy Wasm filter config(s)" in summary


def test_the_rendered_staging_overlay_passes(tmp_path):
    rendered = tmp_path / "staging.yaml"
    rendered.write_text(yaml.safe_dump_all(render_kustomization(REPO_ROOT / "istio" / "overlays" / "staging")))
    result = validate(rendered)
    assert result.returncode == 0, result.stderr
    assert "3 WasmPlugin(s)" in result.stdout


def base(name: str) -> dict:
    return load_documents(REPO_ROOT / "istio" / "base" / f"{name}.yaml")[0]


def breaker(spec_change):
    doc = base("circuit-breaker")
    spec_change(doc["spec"])
    return doc


def fallback(spec_change):
    doc = base("fallback")
    spec_change(doc["spec"])
    return doc


def log(spec_change):
    doc = base("log-enrichment")
    spec_change(doc["spec"])
    return doc


def first_breaker(spec: dict) -> dict:
    return spec["pluginConfig"]["breakers"][0]


def pop(key):
    return lambda spec: spec.pop(key)


def put(key, value):
    return lambda spec: spec.__setitem__(key, value)


# (id, broken document, expected field path in the message, expected words of the reason)
CATALOGUE = [
    ("plugin-config-key-typo",
     breaker(lambda s: first_breaker(s)["trip"].__setitem__("failure_rat", 50)),
     "spec.pluginConfig.breakers[0].trip.failure_rat", "unknown"),
    ("plugin-config-bad-duration",
     breaker(lambda s: first_breaker(s)["open"].__setitem__("duration", "5 seconds")),
     "spec.pluginConfig.breakers[0].open.duration", ""),
    ("plugin-config-out-of-range",
     breaker(lambda s: first_breaker(s)["trip"].__setitem__("failure_rate", 150)),
     "spec.pluginConfig.breakers[0].trip.failure_rate", ""),
    ("plugin-config-unknown-mode",
     breaker(lambda s: first_breaker(s).__setitem__("mode", "enforcing")),
     "spec.pluginConfig.breakers[0].mode", ""),
    ("fallback-without-sources",
     fallback(lambda s: s["pluginConfig"]["rules"][0].__setitem__("serve", [])),
     "spec.pluginConfig.rules[0].serve", ""),
    ("fallback-service-without-cluster",
     fallback(lambda s: s["pluginConfig"]["rules"][0]["serve"][1]["service"].pop("cluster")),
     "spec.pluginConfig.rules[0].serve[1].service.cluster", "required"),
    ("log-credential-header",
     log(lambda s: s["pluginConfig"]["request_headers"].append("authorization")),
     "spec.pluginConfig.request_headers[2]", ""),
    ("log-sampling-rate",
     log(lambda s: s["pluginConfig"]["sampling"].__setitem__("rate", 1.5)),
     "spec.pluginConfig.sampling.rate", ""),
    ("missing-url", breaker(pop("url")), "spec.url", "required"),
    ("url-scheme", breaker(put("url", "ftp://ghcr.io/breakwater/circuit-breaker:0.1.0")), "spec.url", "scheme"),
    ("sha256-upper-case", breaker(put("sha256", "A" * 64)), "spec.sha256", "hex"),
    ("sha256-short", breaker(put("sha256", "abc123")), "spec.sha256", "hex"),
    ("sha256-missing", breaker(pop("sha256")), "spec.sha256", "pin"),
    ("sha256-differs-from-url-digest",
     breaker(put("url", "oci://ghcr.io/breakwater/circuit-breaker@sha256:" + "b" * 64)),
     "spec.sha256", "differs"),
    ("unknown-phase", breaker(put("phase", "AUTHORIZATION")), "spec.phase", "one of"),
    ("fail-strategy-typo", breaker(put("failStrategy", "FAIL_OPENN")), "spec.failStrategy", "one of"),
    ("fail-strategy-unset", breaker(pop("failStrategy")), "spec.failStrategy", "policy"),
    ("priority-unset", breaker(pop("priority")), "spec.priority", "policy"),
    ("priority-not-int32", breaker(put("priority", 2**40)), "spec.priority", "32-bit"),
    ("pull-policy", breaker(put("imagePullPolicy", "Never")), "spec.imagePullPolicy", "one of"),
    ("unknown-spec-field", breaker(put("pluginConfigs", {})), "spec.pluginConfigs", "unknown field"),
    ("selector-and-target-refs",
     breaker(put("targetRefs", [{"kind": "Service", "group": "", "name": "recommendations"}])),
     "spec", "only one of targetRefs or selector"),
    ("target-ref-other-namespace",
     breaker(lambda s: (s.pop("selector"), s.__setitem__(
         "targetRefs", [{"kind": "Service", "group": "", "name": "r", "namespace": "other"}]))),
     "spec.targetRefs[0].namespace", "cross namespace"),
    ("selector-wildcard", breaker(lambda s: s["selector"]["matchLabels"].__setitem__("app", "*")),
     "spec.selector.matchLabels.app", "wildcard"),
    ("match-port", breaker(lambda s: s["match"][0]["ports"][0].__setitem__("number", 70000)),
     "spec.match[0].ports[0].number", "port"),
    ("match-mode", breaker(lambda s: s["match"][0].__setitem__("mode", "SIDECAR_OUTBOUND")),
     "spec.match[0].mode", "one of"),
    ("env-istio-meta", breaker(put("vmConfig", {"env": [{"name": "ISTIO_META_X", "value": "1"}]})),
     "spec.vmConfig.env[0].name", "ISTIO_META"),
    ("env-host-with-value",
     breaker(put("vmConfig", {"env": [{"name": "ZONE", "valueFrom": "HOST", "value": "x"}]})),
     "spec.vmConfig.env[0].value", "INLINE"),
    ("metadata-name", breaker(lambda s: None) | {"metadata": {"name": "Circuit_Breaker", "namespace": "shop"}},
     "metadata.name", "DNS"),
    ("api-version", breaker(lambda s: None) | {"apiVersion": "extensions.istio.io/v1beta1"}, "apiVersion", ""),
]  # fmt: skip


@pytest.mark.parametrize("doc,path,reason", [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_a_broken_manifest_fails_naming_the_field(tmp_path, doc, path, reason):
    # The valid manifests come second: a problem in one document must not hide behind others.
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump_all([copy.deepcopy(doc), base("fallback")]))
    result = validate(manifest)
    assert result.returncode == 1, f"accepted:\n{result.stdout}"
    errors = result.stderr.strip().splitlines()[:-1]  # the last line is the count
    assert len(errors) == 1, result.stderr
    location, _, message = errors[0].partition(": document 1 (WasmPlugin ")
    assert location == f"error {manifest}", errors[0]
    field = message.split("): ", 1)[1]
    assert field.startswith(f"{path}: "), f"expected the field {path}, got: {errors[0]}"
    assert reason in field.removeprefix(f"{path}: "), errors[0]


def test_an_envoy_configuration_error_names_the_filter_field(tmp_path):
    original = (REPO_ROOT / "envoy" / "demo.yaml").read_text()
    text = original.replace('"consecutive_failures": 5', '"consecutive_failures": 0')
    assert text != original, "envoy/demo.yaml no longer has consecutive_failures 5"
    broken = tmp_path / "envoy.yaml"
    broken.write_text(text)
    result = validate(broken)
    assert result.returncode == 1
    assert ".typed_config.config.configuration.breakers[0].trip.consecutive_failures: " in result.stderr, result.stderr



def test_a_bare_on_key_is_caught_before_kubectl_turns_it_into_true(tmp_path):
    # PyYAML and kubectl read YAML 1.1: `on:` is the key True there, "true" in JSON, and the
    # fallback would refuse `rules[0].true` on every sidecar.
    original = (REPO_ROOT / "istio" / "base" / "fallback.yaml").read_text()
    text = original.replace('"on":', "on:")
    assert text != original
    assert True in load_documents_text(text)[0]["spec"]["pluginConfig"]["rules"][0]
    broken = tmp_path / "fallback.yaml"
    broken.write_text(text)
    result = validate(broken)
    assert result.returncode == 1
    assert "`on` is the boolean true/false for kubectl (YAML 1.1): quote it" in result.stderr, result.stderr


def load_documents_text(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]
