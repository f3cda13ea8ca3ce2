"""breakwater's three filters written as Envoy Lua filters, for the benchmark's side-by-side runs.

The scripts are bench/lua/{circuit_breaker,fallback,log_enrichment}.lua; each starts with a
comment listing where it differs from the Wasm filter. This module gives the driver:

    lua_filter(name)              the http_filters entry for one script (read from its file)
    lua_chain()                   all three in the order of the Wasm chain:
                                  log_enrichment -> fallback -> circuit_breaker (-> router)
    lua_record_access_log(path)   a file access log printing log_enrichment.lua's record,
                                  one JSON line per request
    smoke_check()                 starts Envoy (1 and 2 workers) with the chain against the
                                  harness upstream and asserts the behaviours; raises on failure

Run the check on its own with `.venv/bin/python -m bench.lua_filters` (from the repository root,
after `make envoy`). Every process it starts is stopped when it returns or raises.

Stats of a script are `http.<hcm stat prefix>.lua.<script name>.<stat>` (the harness's HCM
prefix is `ingress`), e.g.
`http.ingress.lua.circuit_breaker.breakwater.circuit_breaker.recommendations.rejected`.
Decisions are in dynamic metadata, namespace `breakwater`: `circuit_breaker` {breaker, decision,
state, epoch, arrived, outcome}, `fallback` {rule, trigger, served} or {cache}, `log` (internal:
start time, correlation action) and `record` (the JSON line). The scripts' CONFIG tables hold
istio/base's configuration as bench/variants.py runs the Wasm filters.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import tempfile
import time
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
SCRIPTS = ("log_enrichment", "fallback", "circuit_breaker")  # filter-chain order
LUA_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
RECORD_FORMAT = "%DYNAMIC_METADATA(breakwater:record)%\n"
# For skip_without_record: requests without a record (sampled out, or no response headers).
RECORD_FILTER = "'breakwater' in metadata.filter_metadata && 'record' in metadata.filter_metadata['breakwater']"


def lua_source(name: str) -> str:
    if name not in SCRIPTS:
        raise ValueError(f"unknown Lua filter {name!r}; expected one of {SCRIPTS}")
    return (LUA_DIR / f"{name}.lua").read_text()


def lua_filter(name: str) -> dict:
    """The `envoy.filters.http.lua` http filter running bench/lua/<name>.lua.

    Its stats are under `http.<hcm prefix>.lua.<name>.` (the filter's `stat_prefix`)."""
    return {
        "name": f"breakwater.lua.{name}",
        "typed_config": {
            "@type": LUA_FILTER_TYPE,
            "stat_prefix": name,
            "default_source_code": {"inline_string": lua_source(name)},
        },
    }


def lua_chain() -> list[dict]:
    """log_enrichment -> fallback -> circuit_breaker; envoy_config appends the router."""
    return [lua_filter(name) for name in SCRIPTS]


def lua_record_access_log(path: str, skip_without_record: bool = False) -> dict:
    """A file access log of log_enrichment.lua's records, one JSON line per request.

    Like bench/variants.py's `record_log` for the Wasm filter it has no access-log filter: a
    request without a record (none when every request is sampled) prints `-`. With
    `skip_without_record`, a CEL filter leaves those out (as tests.harness's record_access_log
    does for the Wasm filter)."""
    log = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": RECORD_FORMAT}},
        },
    }
    if skip_without_record:
        log["filter"] = {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": RECORD_FILTER,
                },
            }
        }
    return log


# ----- smoke check ------------------------------------------------------------------------------

BREAKER_STATS = "http.ingress.lua.circuit_breaker.breakwater.circuit_breaker.recommendations."
FALLBACK_STATS = "http.ingress.lua.fallback.breakwater.fallback.recommendations."
BREAKER_REPLY = {"error": "recommendations unavailable"}
STATIC_BODY = b'["bestseller-1","bestseller-2"]'

PII_PATH = "/customers/ola.nordmann%40example.no/orders?fnr=01010012356&token=s3cret&page=2"
PII_HEADERS = {
    "user-agent": "breakwater-smoke/1.0",
    "accept": "application/json",
    "x-tenant-id": "card 4111 1111 1111 1111",
    "x-customer": "ola.nordmann@example.no",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
SECRETS = ("ola.nordmann", "01010012356", "s3cret", "4111 1111")

# (input, expected) from the Wasm filter's redaction tests (filters/log-enrichment/src/
# redact_tests.rs), sent as header values and as paths / queries.
TEXT_VECTORS: list[tuple[bytes, str]] = [
    (b"mail ola@example.no fnr 01010012356 card 4111111111111111 iban NO9386011117947 jwt "
     b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln auth Bearer abc123 ip 203.0.113.45 "
     b"ip6 2001:db8:85a3::8a2e:370:7334",
     "mail [REDACTED:email] fnr [REDACTED:no_national_id] card [REDACTED:payment_card] iban "
     "[REDACTED:iban] jwt [REDACTED:jwt] auth Bearer [REDACTED:bearer] ip 203.0.113.0/24 "
     "ip6 2001:db8:85a3::/48"),
    *[(v, v.decode()) for v in (b"order 01010012357 shipped", b"ts=1764220812345", b"card 4111111111111112",
                                b"ref NO9486011117947", b"version 1.2.3.4.5", b"at 12:30:45")],
    (b"4111 1111 1111 1111 12/26", "[REDACTED:payment_card] 12/26"),
    (b"1 4111111111111111", "1 [REDACTED:payment_card]"),
    (b"2024 01010012356", "2024 [REDACTED:no_national_id]"),
    (b"fnr 01010012356 5 items", "fnr [REDACTED:no_national_id] 5 items"),
    (b"010100-12356", "[REDACTED:no_national_id]"),
    (b"card=4111+1111+1111+1111", "card=[REDACTED:payment_card]"),
    (b"username=ola&password=hunter2", "username=ola&password=[REDACTED:query_param]"),
    (b"https://x/cb?access_token=s3cr3tvalue", "https://x/cb?access_token=[REDACTED:query_param]"),
    (b"token[]=secret", "token[]=[REDACTED:query_param]"),
    (b"10.1.2.3.nip.io", "10.1.2.0/24.nip.io"),
    (b"addr:fe80::1234:5678", "addr:fe80:0:0::/48"),
    (b"ip:2001:db8::1", "ip:2001:db8:0::/48"),
    (b"no9386011117947", "[REDACTED:iban]"),
    ("ola@blåbær.no".encode(), "[REDACTED:email]"),
    (b"ola@example.xn--p1ai", "[REDACTED:email]"),
    (b"Bearer\tabc", "Bearer\t[REDACTED:bearer]"),
    (b"jwt_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "jwt_[REDACTED:jwt]"),
    (b"email=ola%40example.no&note=a%20b", "email=[REDACTED:email]&note=a b"),
    (b"plain%20text stays as sent", "plain%20text stays as sent"),
    (b"a\xff b", "a\ufffd b"),
    (b"501800000009", "[REDACTED:payment_card]"),  # a 12-digit Maestro number
]
PATH_VECTORS: list[tuple[str, str, str | None]] = [  # target, url.path, url.query
    ("/users/ola%40example.no/orders", "/users/[REDACTED:email]/orders", None),
    ("/plain/path%20with%20spaces", "/plain/path%20with%20spaces", None),
    ("/%ff/ola%40example.no", "/%FF/[REDACTED:email]", None),
    ("/ola%40example.no/01010012356%2D1", "/[REDACTED:email]/[REDACTED:no_national_id]-1", None),
    ("/q?q=shoes&email=kari%2Bx%40example.com&token=abc&Access_Token=x&fnr=01010012356&page=2&flag&password=", "/q",
     "q=shoes&email=[REDACTED:email]&token=[REDACTED:query_param]&Access_Token=[REDACTED:query_param]"
     "&fnr=[REDACTED:no_national_id]&page=2&flag&password="),
    ("/q?api%5Fkey=s3cret&msg=hello+ola%40example.no+%26+more", "/q",
     "api%5Fkey=[REDACTED:query_param]&msg=hello%20[REDACTED:email]%20%26%20more"),
    ("/q?next=%2Fcb%3Faccess_token%3Ds3cr3t", "/q", "next=/cb%3Faccess_token%3D[REDACTED:query_param]"),
    ("/q?next=%2Fcustomers%2Fola%2540example.no", "/q", "next=/customers/[REDACTED:email]"),
]


class _Connection:
    """One keep-alive connection, so every request reaches the same Envoy worker (and so the
    same per-worker Lua state). Fails if Envoy closes it."""

    def __init__(self, port: int):
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method: str, path: str, headers: dict | list | None = None):
        """`headers` is a dict, or a list of (name, value) pairs to repeat a header."""
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        self._conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in pairs:
            self._conn.putheader(name, value)
        if method in ("POST", "PUT"):
            self._conn.putheader("content-length", "0")
        self._conn.endheaders()
        response = self._conn.getresponse()
        body = response.read()
        if response.will_close:
            raise AssertionError(f"Envoy closed the connection after {method} {path}: worker pinning lost")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def close(self) -> None:
        self._conn.close()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _records(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            _check(len(lines) == count, f"{len(lines)} record lines in {path}, expected {count}")
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def _no_script_errors(envoy) -> None:
    errors = {k: v for k, v in envoy.stats(r"^http\.ingress\.lua\..*\.errors$").items() if v}
    _check(not errors, f"Lua script errors: {errors}\n{envoy.log_excerpt()}")


def _check_chain(concurrency: int, tmp: Path, half_open: bool) -> dict:
    from tests.harness import Envoy, Upstream, envoy_config

    records_path = tmp / f"records-{concurrency}.log"
    facts: dict = {"workers": concurrency}
    with Upstream() as upstream:
        config = envoy_config(
            upstream.port,
            http_filters=lua_chain(),
            route_timeout="2s",
            access_logs=[lua_record_access_log(str(records_path))],
        )
        with Envoy(config, concurrency=concurrency, component_log_level="lua:info") as envoy:
            c = _Connection(envoy.port)
            try:
                facts.update(_run_sequence(envoy, upstream, c, half_open))
                records = _records(records_path, facts.pop("requests"))
                facts.update(_check_records(records))
                _no_script_errors(envoy)
            except AssertionError as error:
                raise AssertionError(f"{concurrency} worker(s): {error}\n{envoy.log_excerpt()}") from None
            finally:
                c.close()
            facts["transitions"] = [
                line.split("script log: ", 1)[1]
                for line in envoy.log_text().splitlines()
                if "breakwater circuit-breaker" in line and "script log: " in line
            ]
            for reason in ("consecutive_failures", "failure_rate") if half_open else ("consecutive_failures",):
                _check(
                    any(f"closed -> open (reason: {reason}" in t for t in facts["transitions"]),
                    f"no closed -> open ({reason}) transition logged: {facts['transitions']}",
                )
    return facts


def _run_sequence(envoy, upstream, c: _Connection, half_open: bool) -> dict:
    sent = 0

    def send(method, path, headers=None):
        nonlocal sent
        sent += 1
        return c.send(method, path, headers)

    # 1. A request carrying personal data passes with a generated correlation id.
    status, _, _ = send("GET", PII_PATH, PII_HEADERS)
    _check(status == 200, f"PII request: {status}")
    forwarded = upstream.received_headers("/customers/")[-1].get("x-correlation-id", "")
    _check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", forwarded)
           is not None, f"no UUID v4 correlation id sent upstream: {forwarded!r}")

    # 2. A good response is stored (per worker), then served stale when the upstream fails.
    status, _, good_body = send("GET", "/items/1")
    _check(status == 200, f"/items/1: {status}")
    stores = envoy.stat(FALLBACK_STATS + "cache.stores")
    _check(stores == 2, f"cache.stores = {stores}, expected 2 (both GETs so far)")
    upstream.set_mode("status", code=503)
    status, headers, body = send("GET", "/items/1")  # breaker failure 1
    _check(status == 200 and headers.get("x-breakwater-fallback") == "stale" and body == good_body,
           f"stale fallback: {status} {headers} {body!r}")
    _check("age" in headers, "stale reply has no age header")
    status, headers, body = send("GET", "/never-seen")  # failure 2
    _check(status == 200 and headers.get("x-breakwater-fallback") == "static" and body == STATIC_BODY,
           f"static fallback: {status} {headers} {body!r}")

    # 3. POSTs are not the fallback's (GET only): failures 3-5 reach the client, then the breaker opens.
    for _ in range(3):
        status, _, _ = send("POST", "/orders")
        _check(status == 503, f"POST /orders while failing: {status}")
    before = upstream.count()
    status, headers, body = send("POST", "/orders")
    _check(status == 503 and headers.get("x-breakwater-breaker") == "recommendations" and "retry-after" in headers,
           f"breaker rejection: {status} {headers}")
    _check(json.loads(body) == BREAKER_REPLY, f"rejection body {body!r}")
    # 4. A rejected GET is replaced by the fallback (trigger breaker_open).
    status, headers, body = send("GET", "/items/1")
    _check(status == 200 and headers.get("x-breakwater-fallback") == "stale" and body == good_body,
           f"fallback over rejection: {status} {headers}")
    _check(upstream.count() == before, "an open breaker let a request reach the upstream")
    rejected = envoy.stat(BREAKER_STATS + "rejected")
    _check(rejected == 2, f"rejected = {rejected}, expected 2")
    facts = {
        "failures_before_open": envoy.stat(BREAKER_STATS + "calls.failure"),
        "rejected": rejected,
        "stale_served": envoy.stat(FALLBACK_STATS + "served.stale"),
        "static_served": envoy.stat(FALLBACK_STATS + "served.static"),
    }
    _check(facts["failures_before_open"] == 5, f"calls.failure = {facts['failures_before_open']}")

    # 5. Half-open after the open period (5 s ± 10 %): 3 successful probes close the breaker.
    if half_open:
        upstream.set_mode("ok")
        time.sleep(5.8)
        for i in range(3):
            status, headers, _ = send("POST", "/orders")
            _check(status == 200, f"probe {i + 1}: {status} {headers}")
        status, _, _ = send("POST", "/orders")
        _check(status == 200, f"after closing: {status}")
        facts["probes"] = envoy.stat(BREAKER_STATS + "probes")
        _check(facts["probes"] == 3, f"probes = {facts['probes']}")
        _check(envoy.stat(BREAKER_STATS + "transitions.closed") == 1, "breaker did not close")
        # 6. Closed again with a fresh window holding that one success: every other call failing
        # (never 5 in a row) reaches the 50 % failure rate at the 20th call (minimum_calls).
        for i in range(19):
            if i % 2 == 0:
                upstream.set_mode("status", code=500)
            else:
                upstream.set_mode("ok")
            status, headers, _ = send("POST", "/orders")
            _check(status == (500 if i % 2 == 0 else 200), f"call {i + 1}: {status} {headers}")
        status, headers, _ = send("POST", "/orders")
        _check(status == 503 and headers.get("x-breakwater-breaker") == "recommendations",
               f"not rejected after a 50 % failure rate: {status} {headers}")
    facts["requests"] = sent
    return facts


def _check_records(records: list[dict]) -> dict:
    pii = records[0]
    line = json.dumps(pii)
    for secret in SECRETS:
        _check(secret not in line, f"{secret!r} logged: {line}")
    expected = {
        "url.path": "/customers/[REDACTED:email]/orders",
        "url.query": "fnr=[REDACTED:no_national_id]&token=[REDACTED:query_param]&page=2",
        "http.request.header.x-tenant-id": ["card [REDACTED:payment_card]"],
        "http.request.header.x-customer": ["[REDACTED:email]"],
        "user_agent.original": "breakwater-smoke/1.0",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "http.response.status_code": 200,
        "breakwater.correlation": "generated",
        "server.address": "127.0.0.0/24",  # the authority 127.0.0.1 is truncated like any IPv4
        "breakwater.redactions": 6,
        "deployment.environment.name": "production",
        "breakwater.breaker.decision": "passed",
        "client.address": "127.0.0.0/24",
    }
    for key, value in expected.items():
        _check(pii.get(key) == value, f"record[{key!r}] = {pii.get(key)!r}, expected {value!r}\n{line}")
    _check(isinstance(pii.get("duration_ms"), float), f"duration_ms: {pii.get('duration_ms')!r}")
    stale = records[2]
    _check(stale.get("breakwater.fallback") == "stale" and stale.get("breakwater.fallback.trigger") == "status",
           f"stale record: {stale}")
    rejected = [r for r in records if r.get("breakwater.breaker.decision") == "rejected"]
    _check(len(rejected) >= 2, f"{len(rejected)} rejected records, expected 2 (3 with the half-open steps)")
    _check(rejected[0].get("http.response.status_code") == 503 and rejected[0].get("breakwater.breaker_rejected") is True,
           f"rejected record: {rejected[0]}")
    _check(rejected[1].get("breakwater.fallback.trigger") == "breaker_open"
           and rejected[1].get("http.response.status_code") == 200, f"fallback-over-rejection record: {rejected[1]}")
    return {"records": len(records), "pii_record": pii}


def _check_redaction(tmp: Path) -> int:
    """The Wasm filter's redaction test vectors through log_enrichment.lua in Envoy."""
    from tests.harness import Envoy, Upstream, envoy_config

    records_path = tmp / "redaction.log"
    with Upstream() as upstream:
        config = envoy_config(upstream.port, http_filters=[lua_filter("log_enrichment")],
                              access_logs=[lua_record_access_log(str(records_path))])
        with Envoy(config, concurrency=1) as envoy:
            c = _Connection(envoy.port)
            try:
                chunks = [TEXT_VECTORS[i:i + 8] for i in range(0, len(TEXT_VECTORS), 8)]
                for chunk in chunks:  # up to 8 values of one header are logged
                    c.send("GET", "/r", [("x-tenant-id", value) for value, _ in chunk])
                for target, _, _ in PATH_VECTORS:
                    c.send("GET", target)
            finally:
                c.close()
            records = _records(records_path, len(chunks) + len(PATH_VECTORS))
            _no_script_errors(envoy)
    checked = 0
    for chunk, record in zip(chunks, records):
        logged = record.get("http.request.header.x-tenant-id", [])
        for (value, expected), got in zip(chunk, logged, strict=True):
            _check(got == expected, f"redaction of {value!r}: {got!r}, expected {expected!r}")
            checked += 1
    for (target, path, query), record in zip(PATH_VECTORS, records[len(chunks):]):
        got = (record.get("url.path"), record.get("url.query"))
        _check(got == (path, query), f"redaction of {target!r}: {got}, expected {(path, query)}")
        checked += 1
    return checked


def smoke_check(half_open: bool = True, verbose: bool = False) -> list[dict]:
    """Asserts the Lua chain's behaviours with 1 and 2 workers, and log_enrichment.lua's
    redaction on the Wasm filter's test vectors; returns what was observed (raises
    AssertionError on a failure). Takes about 15 s (5.8 s per run waiting for half-open;
    `half_open=False` skips that step)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="breakwater-lua-smoke-") as tmp:
        checked = _check_redaction(Path(tmp))
        if verbose:
            print(f"redaction: {checked} test vectors of the Wasm filter give the same output")
        for concurrency in (1, 2):
            facts = _check_chain(concurrency, Path(tmp), half_open)
            facts["redaction_vectors"] = checked
            results.append(facts)
            if verbose:
                print(f"{concurrency} worker(s): {facts['records']} records; "
                      f"breaker opened after {facts['failures_before_open']} failures, "
                      f"{facts['rejected']} rejected; fallback served {facts['stale_served']} stale, "
                      f"{facts['static_served']} static"
                      + (f"; {facts['probes']} probes closed it" if half_open else ""))
                for t in facts["transitions"]:
                    print("   ", t)
    return results


def main() -> int:
    from tests.harness.envoy import interrupt_on_signals

    interrupt_on_signals()
    results = smoke_check(verbose=True)
    print("record with personal data (redacted):", json.dumps(results[-1]["pii_record"]))
    print("Lua chain smoke check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
