"""The log-enrichment filter end to end: real Envoy 1.40 with 2 worker threads, real upstreams, and
Envoy's file access logger writing the filter's record (`%FILTER_STATE(wasm.breakwater_log:PLAIN)%`)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.harness import (
    Envoy,
    Route,
    Upstream,
    breaker_filter,
    concurrent,
    dist_module,
    envoy_config,
    fallback_filter,
    log_filter,
    record_access_log,
    request,
    static_cluster,
    wasm_filter,
)
from tests.harness.contract import contract
from tests.harness.envoy import assert_no_wasm_failure, envoy_version, refusal_log_lines

STAT = "wasmcustom.breakwater.log"
FNR = "01010012356"  # a valid fødselsnummer (1 January 1900)
D_NUMBER = "41019012040"  # a valid D-number (day + 40: 1 January 1990)
CARD = "4111111111111111"
EMAIL = "ola.nordmann@example.no"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FH_NUMBER = "91234567883"  # a valid FH-number (felles hjelpenummer: first digit 8 or 9, no date)
BANK_ACCOUNT = "1234 56 78903"  # a valid kontonummer, as printed
# UUID-shaped ids whose digit groups pass the card detector's checks (a Maestro number in the
# first) when they are not seen as identifiers.
LUHN_UUIDS = ["d25a5880-5014-4654-8437-60c1c5030b38", "12345678-1234-1234-1234-123456789012"]
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
    """Envoy with the log filter first (then `after`), writing records to `envoy.records` (with
    `lean`, in the format of `envoy_fields: "access_log"`)."""
    count = [0]

    def start(configuration: dict = EXAMPLE, after: list[dict] = (), json_format: dict | None = None,
              lean: bool = False, **kwargs) -> Envoy:  # fmt: skip
        count[0] += 1
        records = tmp_path / f"records-{count[0]}.log"
        loggers = [record_access_log(str(records), lean=lean)]
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


def by_correlation_id(records: list[dict]) -> dict[str, dict]:
    """Records keyed by the correlation id each request was sent with (their order in the file is
    the order in which the two workers wrote them)."""
    return {r["correlation.id"]: r for r in records}


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
    request(envoy.url(f"/patients/{FNR}"), headers={"x-correlation-id": "first"})
    request(envoy.url(f"/patients/{FNR[:6]}%20{FNR[6:]}/journal"), headers={"x-correlation-id": "second"})
    request(envoy.url("/patients/01010012437"), headers={"x-correlation-id": "other"})
    records = by_correlation_id(wait_for_records(envoy.records, 3))
    first, second, other = (records[name]["url.path"] for name in ("first", "second", "other"))
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

    # Lines of requests served by different workers need not be in request order.
    records = by_correlation_id(wait_for_records(envoy.records, 2 + len(invalid)))
    actions = {r.headers["x-correlation-id"]: action for r, action in
               [(kept, "kept"), (generated, "generated"), *((r, "replaced") for r in replaced)]}  # fmt: skip
    assert {id_: record["breakwater.correlation"] for id_, record in records.items()} == actions
    assert envoy.stat(f"{STAT}.correlation.replaced") == len(invalid)
    assert envoy.stat(f"{STAT}.correlation.generated") == 1


def test_fh_numbers_are_redacted_and_bank_accounts_when_asked_for(log_envoy):
    default = log_envoy({**EXAMPLE, "request_headers": ["x-patient", "x-account"]})
    headers = {"x-patient": f"FH {FH_NUMBER}", "x-account": f"konto {BANK_ACCOUNT}"}
    assert request(default.url(f"/patients/{FH_NUMBER}"), headers=headers).status == 200
    asked = log_envoy({**EXAMPLE, "request_headers": ["x-patient", "x-account"],
                       "redact": {**EXAMPLE["redact"], "detectors": ["no_national_id", "no_bank_account"]}})  # fmt: skip
    assert request(asked.url(f"/patients/{FH_NUMBER}"), headers=headers).status == 200
    (by_default,) = wait_for_records(default.records, 1)
    (with_accounts,) = wait_for_records(asked.records, 1)
    for record in (by_default, with_accounts):
        assert record["url.path"] == "/patients/[REDACTED:no_national_id]"
        assert record["http.request.header.x-patient"] == ["FH [REDACTED:no_national_id]"]
        assert FH_NUMBER not in json.dumps(record)
    # Off by default: a kontonummer may belong to a business.
    assert by_default["http.request.header.x-account"] == [f"konto {BANK_ACCOUNT}"]
    assert with_accounts["http.request.header.x-account"] == ["konto [REDACTED:no_bank_account]"]
    assert asked.stat(f"{STAT}.redactions.no_bank_account") == 1


def test_uuid_shaped_request_and_correlation_ids_are_logged_whole(log_envoy):
    envoy = log_envoy()
    for id_ in LUHN_UUIDS:
        response = request(envoy.url(f"/orders/{id_}"), headers={"x-request-id": id_, "x-correlation-id": id_})
        assert response.headers["x-correlation-id"] == id_, "kept, not replaced as if it held personal data"
    records = {r["request.id"]: r for r in wait_for_records(envoy.records, len(LUHN_UUIDS))}
    assert sorted(records) == sorted(LUHN_UUIDS)
    for id_, record in records.items():
        assert record["correlation.id"] == id_
        assert record["url.path"] == f"/orders/{id_}"
        assert record["breakwater.correlation"] == "kept"
        assert "[REDACTED" not in json.dumps(record), record


# --- with the circuit breaker and the fallback --------------------------------------------------------


def test_breaker_rejections_and_stale_fallbacks_are_in_the_line(log_envoy, upstream):
    envoy = log_envoy(after=[
        fallback_filter([{"name": "popular", "match": {"path_prefix": "/recommendations"},
                          "serve": [{"stale": {"max_age": "10m"}}]}]),
        breaker_filter([{"name": "recs", "match": {"path_prefix": "/recommendations"},
                         "trip": {"consecutive_failures": 3}, "open": {"duration": "30s"}}]),
    ])  # fmt: skip
    upstream.set_mode("ok", body='["last-good"]')
    request(envoy.url("/recommendations"), headers={"x-correlation-id": "r0"})
    upstream.set_mode("status", code=503)
    for i in range(1, 4):
        request(envoy.url("/recommendations"), headers={"x-correlation-id": f"r{i}"})
    rejected = request(envoy.url("/recommendations"), headers={"x-correlation-id": "r4"})
    assert (rejected.status, rejected.text) == (200, '["last-good"]')
    records = by_correlation_id(wait_for_records(envoy.records, 5))
    first, *failures, last = (records[f"r{i}"] for i in range(5))
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


def test_outside_the_rate_each_class_still_keeps_what_it_names(log_envoy, upstream):
    # At rate 0 the filter reads only what the always_keep classes need at the end of a request
    # (the short path); each class must still find its requests, with whole records.
    envoy = log_envoy(
        {**EXAMPLE, "sampling": {"rate": 0.0, "always_keep": ["fallback", "breaker_rejected", "slow"], "slow": "300ms"}},
        after=[
            fallback_filter([{"name": "popular", "match": {"path_prefix": "/fb"},
                              "serve": [{"static": {"status": 200, "body": "popular"}}]}]),
            breaker_filter([{"name": "recs", "match": {"path_prefix": "/br"}, "trip": {"consecutive_failures": 2},
                             "open": {"duration": "30s"}}]),
        ],
    )  # fmt: skip
    dropped = [request(envoy.url("/plain"), headers={"x-correlation-id": f"d{i}"}) for i in range(3)]
    upstream.set_mode("status", code=503)
    served = request(envoy.url("/fb/1"), headers={"x-correlation-id": "served"})
    failed = [request(envoy.url("/br"), headers={"x-correlation-id": f"f{i}"}) for i in range(2)]
    rejected = request(envoy.url("/br"), headers={"x-correlation-id": "rejected"})
    upstream.set_mode("delay", ms=400)
    slow = request(envoy.url("/slow"), headers={"x-correlation-id": "slow"})
    assert [r.status for r in dropped] == [200] * 3 and [r.status for r in failed] == [503, 503]
    assert (served.status, served.text, rejected.status, slow.status) == (200, "popular", 503, 200)
    records = by_correlation_id(wait_for_records(envoy.records, 3))
    assert set(records) == {"served", "rejected", "slow"}, sorted(records)
    assert records["served"]["breakwater.sampling"] == "kept:fallback"
    assert records["served"]["breakwater.fallback.rule"] == "popular", "a kept record is whole"
    assert records["rejected"]["breakwater.sampling"] == "kept:breaker_rejected"
    assert (records["rejected"]["breakwater.breaker.name"], records["rejected"]["breakwater.breaker.state"]) == (
        "recs", "open")  # fmt: skip
    assert records["slow"]["breakwater.sampling"] == "kept:slow"
    assert records["slow"]["url.path"] == "/slow"
    assert envoy.stat(f"{STAT}.sampled_out") == 5 and envoy.stat(f"{STAT}.records") == 3


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


# --- user-defined detectors --------------------------------------------------------------------------

KID = "12345607"  # a KID number: passes mod 11
OTHER_KID = "12345615"  # passes mod 11 too
NOT_A_KID = "12345608"  # one digit off: fails mod 11
KID_PATTERN = {"name": "kid", "regex": r"\b\d{4}[ .]?\d{4}\b", "validate": "mod11",
               "keywords": ["kid", "kundenr"], "keyword_distance": 30}  # fmt: skip


def test_a_user_pattern_masks_matches_that_pass_its_checksum_with_a_keyword_in_reach(log_envoy):
    envoy = log_envoy({**EXAMPLE, "request_headers": ["x-customer", "x-near", "x-far"],
                       "redact": {**EXAMPLE["redact"], "patterns": [KID_PATTERN]}})  # fmt: skip
    headers = {
        "x-correlation-id": "found",
        "x-customer": f"KID {NOT_A_KID}, KID {OTHER_KID}",
        "x-near": f"Kundenr{' ' * 30}{KID}",  # the keyword ends 30 bytes before the match
        "x-far": f"kundenr{' ' * 31}{KID}",  # 31 bytes: out of reach
    }
    found = request(envoy.url(f"/kid/{KID}/receipt?kundenr=1234.5615&ordre={KID}"), headers=headers)
    without_keyword = request(envoy.url(f"/orders/{KID}"), headers={"x-correlation-id": "no-keyword"})
    assert (found.status, without_keyword.status) == (200, 200)

    records = by_correlation_id(wait_for_records(envoy.records, 2))
    record = records["found"]
    assert record["url.path"] == "/kid/[REDACTED:kid]/receipt"
    # The parameter's name is the keyword; another parameter's name is not.
    assert record["url.query"] == f"kundenr=[REDACTED:kid]&ordre={KID}"
    assert record["http.request.header.x-customer"] == [f"KID {NOT_A_KID}, KID [REDACTED:kid]"]
    assert record["http.request.header.x-near"] == [f"Kundenr{' ' * 30}[REDACTED:kid]"]
    assert record["http.request.header.x-far"] == [headers["x-far"]]
    assert records["no-keyword"]["url.path"] == f"/orders/{KID}"
    assert envoy.stat(f"{STAT}.redactions.kid") == 4
    assert_no_wasm_failure(envoy)


def test_hash_mode_gives_a_user_pattern_find_one_pseudonym_however_it_is_written(log_envoy):
    envoy = log_envoy({"redact": {"mode": "hash", "hmac_key": "a-long-enough-test-key", "patterns": [KID_PATTERN]}})
    targets = {"plain": f"/kid/{KID}", "dotted": "/kid/1234.5607", "query": f"/receipt?kundenr={KID}",
               "other": f"/kid/{OTHER_KID}"}  # fmt: skip
    for name, target in targets.items():
        assert request(envoy.url(target), headers={"x-correlation-id": name}).status == 200
    records = by_correlation_id(wait_for_records(envoy.records, len(targets)))
    pseudonym = r"(\[REDACTED:kid:[0-9a-f]{16}\])"
    plain = re.fullmatch(f"/kid/{pseudonym}", records["plain"]["url.path"]).group(1)
    # The checksum reads digits only, and the pseudonym is made of what it reads.
    assert records["dotted"]["url.path"] == f"/kid/{plain}"
    assert records["query"]["url.query"] == f"kundenr={plain}"
    other = re.fullmatch(f"/kid/{pseudonym}", records["other"]["url.path"]).group(1)
    assert other != plain
    assert envoy.stat(f"{STAT}.redactions.kid") == len(targets)
    assert_no_wasm_failure(envoy)


# --- JSON body field rules ---------------------------------------------------------------------------


class EchoUpstream(ThreadingHTTPServer):
    """An upstream that keeps every request body it receives, byte for byte, and answers with it
    (same content type): the harness's Upstream keeps only paths and headers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.bodies: dict[str, bytes] = {}  # by path
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as Envoy pools them

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.server.lock:
            self.server.bodies[self.path] = body
        self.send_response(200)
        self.send_header("content-type", self.headers.get("content-type", "application/octet-stream"))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # quiet


@pytest.fixture
def echo_upstream() -> Iterator[EchoUpstream]:
    """An `EchoUpstream`, served until the test ends (ask for it before `log_envoy`, so that
    Envoy, which pools connections to it, stops first)."""
    server = EchoUpstream()
    thread = threading.Thread(target=server.serve_forever, name="echo-upstream", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def body_envoy(log_envoy: Callable[..., Envoy], echo: EchoUpstream, body: dict) -> Envoy:
    """Envoy logging bodies under `body`; paths under /echo go to `echo`, the rest to `upstream`."""
    return log_envoy({**EXAMPLE, "body": body}, routes=[Route("echo", "/echo", cluster="echo"), Route("default", "/")],
                     extra_clusters=[static_cluster("echo", echo.port)])  # fmt: skip


PARSE_MAX_BYTES = 2048
FIELD_RULES = {
    "max_bytes": 1024,
    "content_types": ["application/json", "application/merge-patch+json", "text/plain"],
    "redact_fields": ["ssn", "customer.address", "items[].card"],
    "keep_fields": ["order.id", "customer", "items[].sku"],
    "parse_max_bytes": PARSE_MAX_BYTES,
}
ORDER = {
    "order": {"id": "A-17", "total": 99.5, "paid": True, "coupon": None},
    "customer": {"name": "Åse Ødegård", "email": EMAIL, "ssn": FNR, "address": {"street": "Storgata 1", "city": "Oslo"}},
    "items": [{"sku": "X1", "card": CARD, "qty": 2}, {"sku": "Y2", "card": {"pan": CARD, "cvc": "123"}, "qty": 1}],
    "payer": {"ssn": FNR},
    "note": f"call me on {FNR}",
}
# ORDER under FIELD_RULES: compact, in the order sent, non-ASCII as UTF-8; the masked fields'
# values whatever they hold (also outside the kept ones); the values not kept as their type;
# then the detectors over the result.
ORDER_EXCERPT = (
    '{"order":{"id":"A-17","total":"[number]","paid":"[boolean]","coupon":"[null]"},'
    '"customer":{"name":"Åse Ødegård","email":"[REDACTED:email]","ssn":"[REDACTED:field]","address":"[REDACTED:field]"},'
    '"items":[{"sku":"X1","card":"[REDACTED:field]","qty":"[number]"},{"sku":"Y2","card":"[REDACTED:field]","qty":"[number]"}],'
    '"payer":{"ssn":"[REDACTED:field]"},"note":"[string]"}'
)  # fmt: skip
ORDER_MASKED_FIELDS = 5


def test_json_bodies_are_logged_under_the_field_rules_and_forwarded_unchanged(echo_upstream, log_envoy):
    envoy = body_envoy(log_envoy, echo_upstream, FIELD_RULES)
    # Indented, with \u escapes, the e-mail address's @ among them: the detectors see the text.
    sent = json.dumps(ORDER, indent=2).replace("@", "\\u0040").encode()
    assert len(sent) <= PARSE_MAX_BYTES
    content_types = ["application/json; charset=utf-8", "application/merge-patch+json"]
    for i, content_type in enumerate(content_types):
        response = request(envoy.url(f"/echo/orders/{i}"), method="POST", body=sent,
                           headers={"content-type": content_type, "x-correlation-id": f"order-{i}"})  # fmt: skip
        assert response.status == 200
        assert response.headers["content-type"] == content_type
        assert response.body == sent, "the echo's answer reached the client unchanged"
    assert echo_upstream.bodies == {f"/echo/orders/{i}": sent for i in range(len(content_types))}

    records = by_correlation_id(wait_for_records(envoy.records, len(content_types)))
    for i in range(len(content_types)):
        record = records[f"order-{i}"]
        assert record["http.request.body.excerpt"] == ORDER_EXCERPT
        assert record["http.response.body.excerpt"] == ORDER_EXCERPT, "the echo answered the same JSON"
        assert record["http.request.body.size"] == len(sent)
        for secret in (FNR, CARD, EMAIL, "ola.nordmann", "Storgata", "99.5"):
            assert secret not in json.dumps(record, ensure_ascii=False), secret
    assert envoy.stat(f"{STAT}.redactions.field") == 2 * len(content_types) * ORDER_MASKED_FIELDS
    assert envoy.stat(f"{STAT}.redactions.email") == 2 * len(content_types)
    assert envoy.stat(f"{STAT}.redactions.body") == 0
    assert_no_wasm_failure(envoy)


def test_json_bodies_that_cannot_be_read_whole_are_not_logged_but_still_served(echo_upstream, log_envoy):
    envoy = body_envoy(log_envoy, echo_upstream, FIELD_RULES)

    def note_of_size(size: int) -> bytes:
        """A JSON document of exactly `size` bytes."""
        body = json.dumps({"ssn": FNR, "note": ""})
        return json.dumps({"ssn": FNR, "note": "n" * (size - len(body))}).encode()

    unreadable = {
        "truncated": f'{{"ssn": "{FNR}"'.encode(),
        "two-documents": f'{{"a": 1}} {{"ssn": "{FNR}"}}'.encode(),
        "trailing-comma": f'{{"ssn": "{FNR}",}}'.encode(),
        "over-parse-max-bytes": note_of_size(PARSE_MAX_BYTES + 1),
        "256-kib-in-many-chunks": note_of_size(256 * 1024),
    }
    bodies = {**unreadable, "at-the-bound": note_of_size(PARSE_MAX_BYTES)}
    for name, body in bodies.items():
        response = request(envoy.url(f"/echo/{name}"), method="POST", body=body,
                           headers={"content-type": "application/json", "x-correlation-id": name})  # fmt: skip
        assert (response.status, response.body) == (200, body), name
    assert echo_upstream.bodies == {f"/echo/{name}": body for name, body in bodies.items()}

    records = by_correlation_id(wait_for_records(envoy.records, len(bodies)))
    for name in unreadable:
        record = records[name]
        # The request, and the echo's answer of the same bytes.
        assert record["http.request.body.excerpt"] == "[REDACTED:body]", name
        assert record["http.response.body.excerpt"] == "[REDACTED:body]", name
    assert records["at-the-bound"]["http.request.body.excerpt"] == '{"ssn":"[REDACTED:field]","note":"[string]"}'
    assert FNR not in envoy.records.read_text()
    assert envoy.stat(f"{STAT}.redactions.body") == 2 * len(unreadable)
    assert envoy.stat(f"{STAT}.redactions.field") == 2, "the document at the bound, both ways"
    assert_no_wasm_failure(envoy)


def test_bodies_of_other_listed_types_get_the_detectors_only(echo_upstream, log_envoy):
    envoy = body_envoy(log_envoy, echo_upstream, FIELD_RULES)
    # A JSON document, but not of a JSON media type: logged as sent, but for what the detectors find.
    sent = json.dumps({"ssn": FNR, "customer": {"address": "Storgata 1"}}).encode()
    response = request(envoy.url("/echo/note"), method="POST", body=sent, headers={"content-type": "text/plain"})
    assert (response.status, response.body) == (200, sent)
    assert echo_upstream.bodies == {"/echo/note": sent}
    (record,) = wait_for_records(envoy.records, 1)
    excerpt = '{"ssn": "[REDACTED:no_national_id]", "customer": {"address": "Storgata 1"}}'
    assert record["http.request.body.excerpt"] == excerpt
    assert record["http.response.body.excerpt"] == excerpt
    assert envoy.stat(f"{STAT}.redactions.no_national_id") == 2
    assert (envoy.stat(f"{STAT}.redactions.field"), envoy.stat(f"{STAT}.redactions.body")) == (0, 0)
    assert_no_wasm_failure(envoy)


def test_json_responses_are_logged_under_the_field_rules_and_served_unchanged(echo_upstream, log_envoy, upstream):
    envoy = body_envoy(log_envoy, echo_upstream, FIELD_RULES)
    answer = json.dumps({"order": {"id": "A-17", "total": 10}, "customer": {"name": "Ola", "ssn": FNR}})
    upstream.set_mode("ok", body=answer)
    readable = request(envoy.url("/orders/A-17"), headers={"x-correlation-id": "readable"})
    broken = '{"customer": {"ssn": "%s"' % FNR
    upstream.set_mode("ok", body=broken)
    unreadable = request(envoy.url("/orders/A-18"), headers={"x-correlation-id": "unreadable"})
    assert (readable.status, readable.text) == (200, answer)
    assert (unreadable.status, unreadable.text) == (200, broken)

    records = by_correlation_id(wait_for_records(envoy.records, 2))
    assert records["readable"]["http.response.body.excerpt"] == (
        '{"order":{"id":"A-17","total":"[number]"},"customer":{"name":"Ola","ssn":"[REDACTED:field]"}}')  # fmt: skip
    assert records["unreadable"]["http.response.body.excerpt"] == "[REDACTED:body]"
    assert not [r for r in records.values() if "http.request.body.excerpt" in r], "a GET has no body"
    assert FNR not in json.dumps(records)
    assert (envoy.stat(f"{STAT}.redactions.field"), envoy.stat(f"{STAT}.redactions.body")) == (1, 1)
    assert_no_wasm_failure(envoy)


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


# The record's fields that `envoy_fields: "access_log"` leaves to Envoy's operators.
LEFT_TO_ACCESS_LOG = {
    "timestamp", "network.protocol.version", "http.response.status_code", "envoy.response_flags", "duration_ms",
    "http.request.body.size", "http.response.body.size", "upstream.address", "envoy.cluster", "envoy.route",
}  # fmt: skip


def as_whole_record(line: dict) -> dict:
    """A line of the lean format spelled as the whole record spells it: `network.protocol.version`
    without "HTTP/", and the fields Envoy prints as "-" (unset) left out."""
    record = {k: v for k, v in line.items() if v != "-"}
    record["network.protocol.version"] = record.pop("envoy.protocol").removeprefix("HTTP/")
    return record


def test_access_log_mode_gives_the_whole_records_line_with_envoys_operators(log_envoy, upstream):
    """`envoy_fields: "access_log"`: the filter reads none of the fields Envoy's operators print,
    and the format's line says what the whole record says, redaction included."""
    headers = {"host": "shop.example:8443", "x-tenant-id": "acme", "user-agent": "e2e/1.0", "traceparent": TRACEPARENT}
    lines = {}
    for lean in (False, True):
        config = {**EXAMPLE, "envoy_fields": "access_log"} if lean else EXAMPLE
        envoy = log_envoy(config, lean=lean)
        upstream.set_mode("ok")
        assert request(envoy.url(f"/customers/{EMAIL}?fnr={FNR}"), headers={
            **headers, "x-request-id": "r-ok", "x-correlation-id": "ok"}).status == 200  # fmt: skip
        upstream.set_mode("status", code=503)
        assert request(envoy.url("/customers"), method="POST", body="{}", headers={
            **headers, "x-request-id": "r-503", "x-correlation-id": "failed"}).status == 503  # fmt: skip
        lines[lean] = by_correlation_id(wait_for_records(envoy.records, 2))
        for line in read_lines(envoy.records):
            keys = [k for k, _ in json.loads(line, object_pairs_hook=lambda pairs: pairs)]
            assert len(keys) == len(set(keys)), f"a field printed twice: {line}"
        assert_no_wasm_failure(envoy)
    for cid in ("ok", "failed"):
        whole, lean = lines[False][cid], as_whole_record(lines[True][cid])
        assert set(lines[True][cid]) & LEFT_TO_ACCESS_LOG <= set(ACCESS_LOG_KEYS)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lean.pop("timestamp"))
        assert isinstance(lean.pop("duration_ms"), int)
        whole.pop("timestamp"), whole.pop("duration_ms")
        assert lean == whole, {k: (lean.get(k), whole.get(k)) for k in set(lean) | set(whole) if lean.get(k) != whole.get(k)}
    assert lines[True]["ok"]["url.path"] == "/customers/[REDACTED:email]"
    assert lines[True]["failed"]["http.response.status_code"] == 503
    assert lines[True]["failed"]["http.request.body.size"] == 2


# The keys of the lean format's own part (Envoy's operators), as `breakwater contract` gives it.
ACCESS_LOG_KEYS = ["timestamp", "envoy.protocol", "http.response.status_code", "envoy.response_flags", "duration_ms",
                   "http.request.body.size", "http.response.body.size", "upstream.address", "envoy.cluster",
                   "envoy.route"]  # fmt: skip


def test_access_log_mode_keeps_only_what_sampling_keeps(log_envoy, upstream):
    """At rate 0 the filter reads the status for `always_keep` only, and a dropped request
    prints nothing though the format has Envoy's own fields."""
    envoy = log_envoy({**EXAMPLE, "envoy_fields": "access_log", "sampling": {"rate": 0.0, "always_keep": ["5xx"]}},
                      lean=True)  # fmt: skip
    for n in range(5):
        assert request(envoy.url(f"/fine/{n}"), headers={"x-correlation-id": f"fine-{n}"}).status == 200
    upstream.set_mode("status", code=502)
    assert request(envoy.url("/broken"), headers={"x-correlation-id": "broken"}).status == 502
    (line,) = wait_for_records(envoy.records, 1)
    assert (line["correlation.id"], line["http.response.status_code"], line["breakwater.sampling"]) == (
        "broken", 502, "kept:status")  # fmt: skip
    assert envoy.stat(f"{STAT}.sampled_out") == 5


def test_the_lean_format_is_the_contracts():
    """envoy/log-enrichment-lean.yaml prints its lines with `breakwater contract`'s format, whose
    own keys are the ones above."""
    text = (JSON_FORMAT_PATH.parent / "log-enrichment-lean.yaml").read_text()
    format = contract()["access_log_format"]
    assert format in text
    assert re.findall(r'"([^"]+)":', format.split("%FILTER_STATE")[0]) == ACCESS_LOG_KEYS


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
    records = {r["url.path"]: r for r in wait_for_records(envoy.records, 2)}
    assert FNR not in json.dumps(records)
    assert {path: r["breakwater.correlation"] for path, r in records.items()} == {"/p": "replaced", "/twice": "kept"}
