"""The log-enrichment filter end to end: real Envoy 1.40 with 2 worker threads, real upstreams, and
Envoy's file access logger writing the filter's record (`%FILTER_STATE(wasm.breakwater_log:PLAIN)%`)."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.harness import (
    Envoy,
    Upstream,
    breaker_filter,
    concurrent,
    dist_module,
    envoy_config,
    fallback_filter,
    log_filter,
    record_access_log,
    request,
    wasm_filter,
)
from tests.harness.envoy import envoy_version, refusal_log_lines

STAT = "wasmcustom.breakwater.log"
FNR = "01010012356"  # a valid fødselsnummer (1 January 1900)
D_NUMBER = "41019012040"  # a valid D-number (day + 40: 1 January 1990)
CARD = "4111111111111111"
EMAIL = "ola.nordmann@example.no"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Istio's node metadata, as a sidecar would have it.
NODE = {
    "id": "sidecar~10.0.0.5~checkout-7d9f-abc.shop~shop.svc.cluster.local",
    "cluster": "checkout.shop",
    "metadata": {
        "NAMESPACE": "shop",
        "NAME": "checkout-7d9f-abc",
        "WORKLOAD_NAME": "checkout",
        "CLUSTER_ID": "oslo-1",
        "LABELS": {"app": "checkout", "version": "v1"},
    },
}
EXAMPLE = {
    "service": {"name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1"},
    "correlation": {"header": "x-correlation-id", "generate": True, "trust_incoming": True, "echo_in_response": True},
    "workload_metadata": True,
    "request_headers": ["user-agent", "x-tenant-id"],
    "response_headers": ["content-type"],
    "redact": {
        "detectors": ["email", "payment_card", "iban", "no_national_id", "ipv4", "ipv6", "jwt", "bearer"],
        "query_params": ["token", "access_token", "password", "api_key"],
        "mode": "mask",
        "hmac_key": None,
    },
    "sampling": {"rate": 1.0, "always_keep": ["5xx", "fallback", "breaker_rejected", "slow"], "slow": "1s"},
    "upstream_headers": {"x-breakwater-service": "checkout"},
}


@pytest.fixture
def log_envoy(start_envoy, tmp_path):
    """Envoy with the log filter first (then `after`), writing records to `envoy.records`."""
    count = [0]

    def start(configuration: dict = EXAMPLE, after: list[dict] = (), json_format: dict | None = None, **kwargs) -> Envoy:
        count[0] += 1
        records = tmp_path / f"records-{count[0]}.log"
        loggers = [record_access_log(str(records))]
        if json_format is not None:
            loggers.append(record_access_log(str(tmp_path / f"fields-{count[0]}.log"), json_format))
        envoy = start_envoy([log_filter(configuration), *after], access_logs=loggers, node=NODE, **kwargs)
        envoy.records = records
        envoy.fields = tmp_path / f"fields-{count[0]}.log"
        return envoy

    return start


def read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def wait_for_records(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    """Exactly the JSON records in the file once `count` arrived (and no more came shortly after)."""
    deadline = time.monotonic() + timeout
    while len(read_lines(path)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(read_lines(path))} records in {path}, expected {count}")
        time.sleep(0.05)
    time.sleep(0.3)  # Envoy flushes access logs about every second; give extras a chance to show
    return [json.loads(line) for line in read_lines(path)]


def raw_request(port: int, head: str, body: bytes = b"") -> bytes:
    """Sends a hand-written HTTP/1.1 request (repeated headers, odd bytes) and returns the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


# --- the record --------------------------------------------------------------------------------------

DOCUMENTED = {
    "timestamp", "request.id", "correlation.id", "trace_id", "span_id", "http.request.method", "url.scheme",
    "server.address", "server.port", "url.path", "url.query", "network.protocol.version",
    "http.response.status_code", "envoy.response_code_details", "duration_ms", "http.request.body.size",
    "http.response.body.size", "upstream.address", "envoy.cluster", "envoy.route", "client.address",
    "user_agent.original", "http.request.header.x-tenant-id", "http.response.header.content-type",
    "service.name", "service.version", "deployment.environment.name", "cloud.region", "k8s.namespace.name",
    "k8s.pod.name", "k8s.workload.name", "k8s.cluster.name", "k8s.pod.label.app", "k8s.pod.label.version",
    "breakwater.correlation", "breakwater.sampling", "breakwater.redactions",
}  # fmt: skip


def test_each_request_yields_exactly_one_json_line_with_the_documented_fields(log_envoy, upstream):
    envoy = log_envoy()
    n = 40
    responses = concurrent(n, lambda i: request(envoy.url(f"/items/{i}?page=2"), headers={
        "host": "shop.example:8443", "x-tenant-id": "acme", "user-agent": "e2e/1.0", "traceparent": TRACEPARENT, "x-correlation-id": f"order-{i}"}))  # fmt: skip
    assert all(r.status == 200 for r in responses)
    assert len(envoy.worker_connection_counts()) == 2
    records = wait_for_records(envoy.records, n)
    assert len(records) == n, "one line per request, no more"
    assert sorted(r["correlation.id"] for r in records) == sorted(f"order-{i}" for i in range(n))
    by_id = {r["correlation.id"]: r for r in records}
    for i in range(n):
        record = by_id[f"order-{i}"]
        assert DOCUMENTED <= set(record), DOCUMENTED - set(record)
        assert record["url.path"] == f"/items/{i}" and record["url.query"] == "page=2"
        assert (record["server.address"], record["server.port"]) == ("shop.example", 8443)
        assert record["http.request.method"] == "GET" and record["http.response.status_code"] == 200
        assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and record["span_id"] == "00f067aa0ba902b7"
        assert record["user_agent.original"] == "e2e/1.0"
        assert record["http.request.header.x-tenant-id"] == ["acme"]
        assert record["http.response.header.content-type"] == ["application/json"]
        assert record["upstream.address"] == f"127.0.0.1:{upstream.port}"
        assert record["envoy.cluster"] == "upstream" and record["envoy.route"] == "default"
        assert record["client.address"] == "127.0.0.0/24", "the source address is truncated"
        assert record["network.protocol.version"] == "1.1"
        assert record["envoy.response_code_details"] == "via_upstream"
        assert 0 < record["duration_ms"] < 5000
        assert record["http.response.body.size"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
        uuid.UUID(record["request.id"])
        assert (record["service.name"], record["service.version"]) == ("checkout", "1.4.0")
        assert (record["deployment.environment.name"], record["cloud.region"]) == ("prod", "no-oslo-1")
        assert (record["k8s.namespace.name"], record["k8s.pod.name"], record["k8s.workload.name"]) == (
            "shop", "checkout-7d9f-abc", "checkout")  # fmt: skip
        assert (record["k8s.cluster.name"], record["k8s.pod.label.app"], record["k8s.pod.label.version"]) == (
            "oslo-1", "checkout", "v1")  # fmt: skip
        assert record["breakwater.correlation"] == "kept" and record["breakwater.redactions"] == 0
    assert envoy.stat(f"{STAT}.records") == n


def test_absent_workload_metadata_is_omitted_not_invented(start_envoy, tmp_path):
    records = tmp_path / "records.log"
    envoy = start_envoy([log_filter({})], access_logs=[record_access_log(str(records))],
                        node={"id": "plain-envoy", "cluster": "c", "metadata": {"NAMESPACE": "shop"}})  # fmt: skip
    request(envoy.url("/"))
    (record,) = wait_for_records(records, 1)
    assert record["k8s.namespace.name"] == "shop"
    assert not [k for k in record if k.startswith("k8s.") and k != "k8s.namespace.name"]
    assert not [k for k in record if k.startswith(("service.", "deployment.", "cloud."))]


def test_personal_data_and_credentials_never_reach_the_log(log_envoy, upstream):
    envoy = log_envoy({**EXAMPLE, "request_headers": ["user-agent", "x-tenant-id", "x-customer", "referer"],
                       "body": {"max_bytes": 512}})  # fmt: skip
    body = json.dumps({"email": EMAIL, "card": CARD, "note": "ring meg", "iban": "NO93 8601 1117 947"})
    response = request(
        envoy.url(f"/customers/{EMAIL.replace('@', '%40')}/orders?fnr={FNR}&token=s3cr3t&q=sko"),
        method="POST",
        headers={
            "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "cookie": "session=abc123",
            "x-api-key": "key-123",
            "x-customer": f"{D_NUMBER} / {EMAIL}",
            "referer": f"https://shop.example/?card={CARD}",
            "content-type": "application/json",
        },
        body=body,
    )
    assert response.status == 200
    assert upstream.received_headers()[-1]["authorization"].startswith("Bearer "), "the request itself is untouched"
    (line,) = read_lines_when(envoy.records, 1)
    for secret in [EMAIL, "ola.nordmann", FNR, D_NUMBER, CARD, "4111 1111", "s3cr3t", "session=abc123", "key-123",
                   "eyJhbGciOiJIUzI1NiJ9", "NO93", "8601 1117"]:  # fmt: skip
        assert secret not in line, f"{secret} leaked into {line}"
    record = json.loads(line)
    assert record["url.path"] == "/customers/[REDACTED:email]/orders"
    assert record["url.query"] == "fnr=[REDACTED:no_national_id]&token=[REDACTED:query_param]&q=sko"
    assert record["http.request.header.x-customer"] == ["[REDACTED:no_national_id] / [REDACTED:email]"]
    assert "[REDACTED:payment_card]" in record["http.request.header.referer"][0]
    excerpt = json.loads(record["http.request.body.excerpt"])
    assert excerpt == {"email": "[REDACTED:email]", "card": "[REDACTED:payment_card]", "note": "ring meg",
                       "iban": "[REDACTED:iban]"}  # fmt: skip
    assert not [k for k in record if "authorization" in k or "cookie" in k or "api-key" in k]
    # The upstream echoes the path in its body: the response excerpt is redacted as well.
    assert "[REDACTED:email]" in record["http.response.body.excerpt"]
    assert envoy.stat(f"{STAT}.redactions.no_national_id") == 2
    assert envoy.stat(f"{STAT}.redactions.email") == 4
    assert envoy.stat(f"{STAT}.redactions.payment_card") == 2
    assert envoy.stat(f"{STAT}.redactions.query_param") == 1


def read_lines_when(path: Path, count: int, timeout: float = 5.0) -> list[str]:
    wait_for_records(path, count, timeout)
    return read_lines(path)


def test_hash_mode_gives_the_same_person_the_same_pseudonym_across_lines(log_envoy):
    envoy = log_envoy({"redact": {"mode": "hash", "hmac_key": "a-long-enough-test-key"}})
    request(envoy.url(f"/patients/{FNR}"))
    request(envoy.url(f"/patients/{FNR[:6]}%20{FNR[6:]}/journal"))
    request(envoy.url("/patients/01010012437"))
    first, second, other = (r["url.path"] for r in wait_for_records(envoy.records, 3))
    pseudonym = re.fullmatch(r"/patients/(\[REDACTED:no_national_id:[0-9a-f]{16}\])", first).group(1)
    assert second == f"/patients/{pseudonym}/journal"
    assert pseudonym not in other


def test_every_value_of_a_repeated_header_is_logged_and_values_are_capped(log_envoy):
    envoy = log_envoy({"request_headers": ["x-tenant-id", "x-long"], "redact": {"max_value_bytes": 64}})
    answer = raw_request(envoy.port, "GET /repeat HTTP/1.1\nhost: shop\nx-tenant-id: acme\nx-tenant-id: globex\n"
                         f"x-long: {'a' * 5000}\nconnection: close\n")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200")
    (record,) = wait_for_records(envoy.records, 1)
    assert record["http.request.header.x-tenant-id"] == ["acme", "globex"]
    assert record["http.request.header.x-long"] == ["…"], "a cut value is not logged in part"


# --- correlation -------------------------------------------------------------------------------------


def test_correlation_ids_are_kept_generated_and_replaced(log_envoy, upstream):
    envoy = log_envoy()
    kept = request(envoy.url("/a"), headers={"x-correlation-id": "order-42:retry.1"})
    generated = request(envoy.url("/b"))
    invalid = ['"quoted"', "has space", "x" * 129, "semi;colon", "æøå"]
    replaced = [request(envoy.url("/c"), headers={"x-correlation-id": bad}) for bad in invalid]

    assert kept.headers["x-correlation-id"] == "order-42:retry.1"
    uuid.UUID(generated.headers["x-correlation-id"])
    for response, bad in zip(replaced, invalid):
        uuid.UUID(response.headers["x-correlation-id"])
        assert response.headers["x-correlation-id"] != bad
    # Upstream saw the same ids, and the configured upstream header.
    seen = upstream.received_headers()
    assert [h["x-correlation-id"] for h in seen] == [r.headers["x-correlation-id"] for r in [kept, generated, *replaced]]
    assert all(h["x-breakwater-service"] == "checkout" for h in seen)
    # The request id is echoed too.
    assert all(r.headers["x-request-id"] == h["x-request-id"] for r, h in zip([kept, generated, *replaced], seen))

    records = wait_for_records(envoy.records, 2 + len(invalid))
    assert [r["breakwater.correlation"] for r in records] == ["kept", "generated"] + ["replaced"] * len(invalid)
    assert envoy.stat(f"{STAT}.correlation.replaced") == len(invalid)
    assert envoy.stat(f"{STAT}.correlation.generated") == 1


# --- with the circuit breaker and the fallback --------------------------------------------------------


def test_breaker_rejections_and_stale_fallbacks_are_in_the_line(log_envoy, upstream):
    envoy = log_envoy(after=[
        fallback_filter([{"name": "popular", "match": {"path_prefix": "/recommendations"},
                          "serve": [{"stale": {"max_age": "10m"}}]}]),
        breaker_filter([{"name": "recs", "match": {"path_prefix": "/recommendations"},
                         "trip": {"consecutive_failures": 3}, "open": {"duration": "30s"}}]),
    ])  # fmt: skip
    upstream.set_mode("ok", body='["last-good"]')
    request(envoy.url("/recommendations"))
    upstream.set_mode("status", code=503)
    for _ in range(3):
        request(envoy.url("/recommendations"))
    rejected = request(envoy.url("/recommendations"))
    assert (rejected.status, rejected.text) == (200, '["last-good"]')
    first, *failures, last = wait_for_records(envoy.records, 5)
    assert first["breakwater.breaker.decision"] == "passed" and "breakwater.fallback" not in first
    assert first["breakwater.breaker_rejected"] is False
    for record in failures:
        assert record["breakwater.fallback"] == "stale" and record["breakwater.fallback.trigger"] == "status"
        assert record["breakwater.breaker.decision"] == "passed"
    assert last["breakwater.breaker_rejected"] is True
    assert (last["breakwater.breaker.name"], last["breakwater.breaker.state"]) == ("recs", "open")
    assert (last["breakwater.fallback"], last["breakwater.fallback.rule"]) == ("stale", "popular")
    assert last["breakwater.fallback.trigger"] == "breaker_open"
    assert last["http.response.status_code"] == 200, "the client got the fallback"


# --- sampling ----------------------------------------------------------------------------------------


def test_sampling_at_zero_still_keeps_5xx_and_dropped_requests_keep_correlation(log_envoy, upstream):
    envoy = log_envoy({**EXAMPLE, "sampling": {"rate": 0.0, "always_keep": ["5xx"]}})
    ok = [request(envoy.url(f"/ok/{i}")) for i in range(10)]
    assert all(r.status == 200 and "x-correlation-id" in r.headers for r in ok)
    assert all("x-correlation-id" in h for h in upstream.received_headers())
    upstream.set_mode("status", code=503)
    failed = [request(envoy.url(f"/fail/{i}")) for i in range(5)]
    assert all(r.status == 503 for r in failed)
    records = wait_for_records(envoy.records, 5)
    assert len(records) == 5
    assert {r["url.path"] for r in records} == {f"/fail/{i}" for i in range(5)}
    assert {r["breakwater.sampling"] for r in records} == {"kept:status"}
    assert envoy.stat(f"{STAT}.sampled_out") == 10 and envoy.stat(f"{STAT}.records") == 5


def test_sampling_is_consistent_across_proxies_on_the_path(upstream, tmp_path):
    """Two Envoys in a row, each sampling at 0.5: both keep exactly the same requests."""
    configuration = {"sampling": {"rate": 0.5, "always_keep": []}}
    inner_records, outer_records = tmp_path / "inner.log", tmp_path / "outer.log"
    inner_config = envoy_config(upstream.port, http_filters=[log_filter(configuration)],
                                access_logs=[record_access_log(str(inner_records))])  # fmt: skip
    with Envoy(inner_config, concurrency=2) as inner:
        outer_config = envoy_config(inner.port, http_filters=[log_filter(configuration)],
                                    access_logs=[record_access_log(str(outer_records))])  # fmt: skip
        with Envoy(outer_config, concurrency=2) as outer:
            n = 200
            concurrent(n, lambda i: request(outer.url(f"/s/{i}")))
            assert upstream.count("/s/") == n
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (outer.stat(f"{STAT}.records") + outer.stat(f"{STAT}.sampled_out") < n):
                time.sleep(0.05)
            outer_kept = outer.stat(f"{STAT}.records")
            inner_kept = [json.loads(line) for line in read_lines_when(inner_records, outer_kept)]
            outer_ids = {json.loads(line)["request.id"] for line in read_lines_when(outer_records, outer_kept)}
    assert 60 < outer_kept < 140, outer_kept
    assert {r["request.id"] for r in inner_kept} == outer_ids


# --- access-log formats -------------------------------------------------------------------------------

JSON_FORMAT_PATH = Path(__file__).resolve().parents[2] / "envoy" / "log-enrichment.yaml"


def test_json_format_of_separate_keys_matches_the_record(log_envoy):
    """envoy/log-enrichment.yaml's json_format logger, built from per-field keys, says what the record says."""
    json_format = shipped_json_format()
    envoy = log_envoy({**EXAMPLE, "separate_fields": True}, json_format=json_format)
    request(envoy.url(f"/x/{FNR}?q=1"), headers={"x-tenant-id": "acme", "user-agent": "e2e/1.0"})
    (record,) = wait_for_records(envoy.records, 1)
    (fields,) = wait_for_records(envoy.fields, 1)
    if envoy_version() < (1, 40, 0):
        # Envoy before 1.40 writes a json_format key whose filter state is absent as null, in
        # spite of omit_empty_values (seen on 1.36.2 to 1.39.3); 1.40 omits it.
        absent = {key for key, value in fields.items() if value is None}
        assert absent and not absent & set(record), absent & set(record)
        fields = {key: value for key, value in fields.items() if value is not None}
    assert set(fields) <= set(record), set(fields) - set(record)
    scalar = {k for k, v in record.items() if not isinstance(v, list)}
    assert scalar <= set(fields), scalar - set(fields)
    for key, value in fields.items():
        assert same_value(value, record[key]), (key, value, record[key])


def same_value(field, recorded) -> bool:
    """Per-field filter state is text: numbers and booleans arrive as their JSON spelling."""
    if isinstance(recorded, bool):
        return field == str(recorded).lower()
    if isinstance(recorded, (int, float)) and isinstance(field, str):
        return float(field) == recorded
    return field == recorded


def shipped_json_format() -> dict:
    """The json_format of the shipped config, read without a YAML library: it is written as one
    JSON object on the line after the marker comment."""
    lines = JSON_FORMAT_PATH.read_text().splitlines()
    (at,) = [i for i, line in enumerate(lines) if "json_format-of-separate-keys" in line]
    text = lines[at + 1].strip()
    return json.loads(text.removeprefix("json_format: "))


# --- configuration and module ------------------------------------------------------------------------

INVALID = [
    ({"redact": {"mode": "hash"}}, "redact.mode: \"hash\" needs redact.hmac_key"),
    ({"request_headers": ["user-agent", "authorization"]}, 'request_headers[1]: "authorization" carries credentials'),
    ({"sampling": {"rate": 2}}, "sampling.rate: must be from 0.0 to 1.0"),
    ({"redact": {"detectors": ["ssn"]}}, 'redact.detectors[0]: unknown detector "ssn"'),
    ({"loging": {}}, "loging: unknown field `loging`"),
]


@pytest.mark.parametrize("configuration,message", INVALID, ids=[m.split(":")[0] for _, m in INVALID])
def test_an_invalid_config_is_refused_with_the_field_named(upstream, configuration, message):
    config = envoy_config(upstream.port, http_filters=[wasm_filter("log", str(dist_module("log_enrichment")), configuration)])
    lines = refusal_log_lines(config, "log-enrichment")
    assert len(lines) == 1 and message in lines[0], lines


def test_malformed_requests_are_served_and_logged(log_envoy):
    envoy = log_envoy({"request_headers": ["x-odd"]})
    answer = raw_request(envoy.port, "GET /odd/%ff%fe?%zz=%&&=x HTTP/1.1\nhost: shop\n"
                         'x-odd: "}{\\u0000\xff\xfe\nconnection: close\n')  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200")
    (record,) = wait_for_records(envoy.records, 1)
    assert record["url.path"] == "/odd/%ff%fe"
    assert record["http.request.header.x-odd"] == ['"}{\\u0000\ufffd\ufffd']
    assert request(envoy.url("/still-fine")).status == 200


def test_module_is_at_most_512_kib():
    assert dist_module("log_enrichment").stat().st_size <= 512 * 1024


def test_correlation_ids_carrying_personal_data_or_repeated_are_not_forwarded(log_envoy, upstream):
    envoy = log_envoy()
    pii = request(envoy.url("/p"), headers={"x-correlation-id": FNR})
    assert pii.headers["x-correlation-id"] != FNR
    uuid.UUID(pii.headers["x-correlation-id"])
    answer = raw_request(envoy.port, 'GET /twice HTTP/1.1\nhost: shop\nx-correlation-id: order-7\n'
                         'x-correlation-id: bad"id\nconnection: close\n')  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200")
    first, second = upstream.received_headers()
    assert first["x-correlation-id"] == pii.headers["x-correlation-id"]
    assert second["x-correlation-id"] == "order-7", "the repeated header left as the one validated value"
    records = wait_for_records(envoy.records, 2)
    assert FNR not in json.dumps(records)
    assert [r["breakwater.correlation"] for r in records] == ["replaced", "kept"]
