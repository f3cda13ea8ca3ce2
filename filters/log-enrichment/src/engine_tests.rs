//! The engine end to end with a fake host: records, redaction of every logged string,
//! sampling, correlation and stats.

use super::*;
use crate::config::{LogConfig, ACCESS_LOG_FIELDS, LEFT_TO_ACCESS_LOG};
use crate::correlation::Action as CorrelationAction;
use breakwater_common::host::fake::FakeHost;
use breakwater_common::testing::test;
use serde_json::Value as Json;

const FNR: &str = "01010012356";
const CARD: &str = "4111111111111111";

fn engine(json: &str) -> (Engine, FakeHost) {
    let host = FakeHost::new(1_000_000);
    let engine = Engine::new(LogConfig::parse(json.as_bytes()).unwrap(), &host);
    (engine, host)
}

fn h(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn exchange(path: &str) -> Exchange {
    Exchange {
        start_unix_nanos: Some(1_795_751_999_999_000_000),
        request_headers: vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":authority", "shop.example:8443"),
            h(":path", path),
            h("x-request-id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
            h("user-agent", "curl/8.5.0"),
        ],
        protocol: Some(b"HTTP/1.1".to_vec()),
        status: Some(200),
        duration_nanos: Some(12_345_678),
        request_body_bytes: Some(0),
        response_body_bytes: Some(42),
        upstream_address: Some(b"10.0.0.7:8080".to_vec()),
        cluster: Some(b"backend".to_vec()),
        route: Some(b"shop".to_vec()),
        source_address: Some(b"203.0.113.45:50123".to_vec()),
        ..Exchange::default()
    }
}

fn kept(id: &str) -> Decision {
    Decision {
        id: Some(id.to_string()),
        action: CorrelationAction::Kept,
    }
}

fn json_of(record: &Record) -> Json {
    serde_json::from_slice::<serde_json::Value>(record.to_json().as_bytes()).unwrap()
}

fn field<'a>(doc: &'a Json, key: &str) -> Option<&'a Json> {
    doc.get(key)
}

fn text<'a>(doc: &'a Json, key: &str) -> &'a str {
    field(doc, key)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("{key} missing in {doc:?}"))
}

#[test]
fn a_record_carries_the_documented_fields() {
    let (mut engine, host) = engine(
        r#"{"service": {"name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1"},
            "request_headers": ["user-agent", "x-tenant-id"], "response_headers": ["content-type"]}"#,
    );
    engine.load_workload(|path| match path.last() {
        Some(&"NAMESPACE") => Some(b"shop".to_vec()),
        Some(&"app") => Some(b"checkout".to_vec()),
        Some(&"CLUSTER_ID") => Some(Vec::new()), // empty counts as absent
        _ => None,
    });
    let mut ex = exchange("/cart/items?page=2");
    ex.request_headers.push(h(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    ex.request_headers.push(h("x-tenant-id", "acme"));
    ex.request_headers.push(h("x-tenant-id", "globex"));
    ex.response_headers = vec![h(":status", "200"), h("content-type", "application/json")];
    let record = engine.finish(&host, &ex, &kept("corr-1")).unwrap();
    let doc = json_of(&record);
    assert_eq!(text(&doc, "timestamp"), "2026-11-27T03:59:59.999Z");
    assert_eq!(
        text(&doc, "request.id"),
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    );
    assert_eq!(text(&doc, "correlation.id"), "corr-1");
    assert_eq!(text(&doc, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(text(&doc, "span_id"), "00f067aa0ba902b7");
    assert_eq!(text(&doc, "http.request.method"), "GET");
    assert_eq!(text(&doc, "url.scheme"), "http");
    assert_eq!(text(&doc, "server.address"), "shop.example");
    assert_eq!(
        field(&doc, "server.port").and_then(Json::as_u64),
        Some(8443)
    );
    assert_eq!(text(&doc, "url.path"), "/cart/items");
    assert_eq!(text(&doc, "url.query"), "page=2");
    assert_eq!(text(&doc, "network.protocol.version"), "1.1");
    assert_eq!(
        field(&doc, "http.response.status_code").and_then(Json::as_u64),
        Some(200)
    );
    assert_eq!(
        field(&doc, "duration_ms").and_then(Json::as_f64),
        Some(12.345)
    );
    assert_eq!(
        field(&doc, "http.response.body.size").and_then(Json::as_u64),
        Some(42)
    );
    assert_eq!(text(&doc, "upstream.address"), "10.0.0.7:8080");
    assert_eq!(text(&doc, "envoy.cluster"), "backend");
    assert_eq!(text(&doc, "envoy.route"), "shop");
    assert_eq!(text(&doc, "client.address"), "203.0.113.0/24");
    assert_eq!(text(&doc, "user_agent.original"), "curl/8.5.0");
    let tenants: Vec<&str> = field(&doc, "http.request.header.x-tenant-id")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(
        tenants,
        ["acme", "globex"],
        "every value of a repeated header"
    );
    assert_eq!(
        field(&doc, "http.response.header.content-type")
            .and_then(Json::as_array)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(text(&doc, "service.name"), "checkout");
    assert_eq!(text(&doc, "service.version"), "1.4.0");
    assert_eq!(text(&doc, "deployment.environment.name"), "prod");
    assert_eq!(text(&doc, "cloud.region"), "no-oslo-1");
    assert_eq!(text(&doc, "k8s.namespace.name"), "shop");
    assert_eq!(text(&doc, "k8s.pod.label.app"), "checkout");
    assert!(
        field(&doc, "k8s.cluster.name").is_none() && field(&doc, "k8s.pod.name").is_none(),
        "absent, not invented"
    );
    assert!(
        field(&doc, "envoy.response_flags").is_none()
            && field(&doc, "breakwater.breaker.name").is_none()
    );
    assert_eq!(text(&doc, "breakwater.correlation"), "kept");
    assert_eq!(text(&doc, "breakwater.sampling"), "sampled");
    assert_eq!(
        field(&doc, "breakwater.redactions").and_then(Json::as_u64),
        Some(0)
    );
    assert_eq!(host.metric("breakwater.log.records"), 1);
}

#[test]
fn access_log_mode_leaves_envoys_fields_to_the_format_and_writes_members() {
    let (record_mode, host) = engine(r#"{"request_headers": ["user-agent"]}"#);
    let (access_log_mode, _) =
        engine(r#"{"request_headers": ["user-agent"], "envoy_fields": "access_log"}"#);
    let mut ex = exchange(&format!("/cart/{FNR}"));
    ex.response_flags = FlagSet::parse(&["UF"]).unwrap().0;
    ex.code_details = Some(b"upstream_reset_before_response_started".to_vec());
    let whole = json_of(&record_mode.finish(&host, &ex, &kept("c")).unwrap());
    let lean_record = access_log_mode.finish(&host, &ex, &kept("c")).unwrap();
    let members = access_log_mode.record_text(&lean_record);
    assert!(
        !members.starts_with('{') && !members.ends_with('}'),
        "{members}"
    );
    // Placed in the format's object, the members make one JSON object.
    let format = crate::config::access_log_format("wasm.breakwater_log");
    let line = format.replace("%FILTER_STATE(wasm.breakwater_log:PLAIN)%", &members);
    let envoy_printed = line
        .replace(
            "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
            "2026-11-27T03:59:59.999Z",
        )
        .replace("%RESPONSE_CODE%", "503")
        .replace("%DURATION%", "12")
        .replace("%BYTES_RECEIVED%", "0")
        .replace("%BYTES_SENT%", "91");
    let doc: Json = serde_json::from_str(&envoy_printed).unwrap();
    for left in LEFT_TO_ACCESS_LOG {
        assert!(
            field(&whole, left).is_some(),
            "{left} is in the whole record"
        );
        assert!(
            !members.contains(&format!("\"{left}\":")),
            "{left} is left to the access log"
        );
    }
    for (printed, _) in ACCESS_LOG_FIELDS {
        assert!(field(&doc, printed).is_some(), "{printed} is in the line");
    }
    // Everything else is the same, redaction included.
    let mut rest = whole.as_object().unwrap().clone();
    rest.retain(|key, _| !LEFT_TO_ACCESS_LOG.contains(&key.as_str()));
    for (key, value) in &rest {
        assert_eq!(field(&doc, key), Some(value), "{key}");
    }
    assert_eq!(text(&doc, "url.path"), "/cart/[REDACTED:no_national_id]");
    assert_eq!(
        text(&doc, "envoy.response_code_details"),
        "upstream_reset_before_response_started"
    );
}

#[test]
fn a_decision_taken_outside_the_rate_is_not_taken_again_on_a_lean_exchange() {
    let (engine, host) = engine(
        r#"{"envoy_fields": "access_log", "sampling": {"rate": 0.0, "always_keep": ["5xx"]}}"#,
    );
    let partial = Exchange {
        status: Some(502),
        ..Exchange::default()
    };
    let class = engine.kept_outside_rate(&host, &partial, false);
    assert_eq!(class, Some(Kept::Class("status")));
    // The record's exchange has no status: the access log prints it.
    let mut lean = exchange("/x");
    lean.status = None;
    let record = engine.finish_given(&host, &lean, &kept("c"), class, false);
    let members = engine.record_text(&record.unwrap());
    assert!(
        members.contains(r#""breakwater.sampling":"kept:status""#),
        "{members}"
    );
    assert!(
        engine.finish(&host, &lean, &kept("c")).is_none(),
        "no status, no class"
    );
    assert_eq!(
        engine.kept_outside_rate(&host, &Exchange::default(), false),
        None
    );
    assert_eq!(host.metric("breakwater.log.sampled_out"), 2);
}

#[test]
fn headers_not_listed_are_never_logged() {
    let (engine, host) = engine(r#"{"request_headers": ["x-tenant-id"]}"#);
    let mut ex = exchange("/");
    ex.request_headers
        .push(h("authorization", "Bearer secret-token"));
    ex.request_headers.push(h("cookie", "session=abc"));
    ex.request_headers.push(h("x-other", "value"));
    let line = engine.finish(&host, &ex, &kept("c")).unwrap().to_json();
    for absent in [
        "secret-token",
        "session=abc",
        "x-other",
        "authorization",
        "curl/8.5.0",
    ] {
        assert!(!line.contains(absent), "{absent} in {line}");
    }
}

#[test]
fn personal_data_is_removed_from_every_logged_string() {
    let (engine, host) =
        engine(r#"{"request_headers": ["x-customer", "referer"], "body": {"max_bytes": 256}}"#);
    let mut ex = exchange(&format!(
        "/customers/ola.nordmann%40example.no/cards/{CARD}?fnr={FNR}&token=abc&q=x"
    ));
    ex.request_headers
        .push(h("x-customer", &format!("fnr {} {}", &FNR[..6], &FNR[6..])));
    ex.request_headers
        .push(h("referer", "https://shop.example/?email=kari@example.com"));
    let mut body = BodyCapture::new(256);
    let payload = format!(r#"{{"iban": "NO93 8601 1117 947", "card": "{CARD}", "note": "ok"}}"#);
    body.add(payload.as_bytes(), payload.len(), true);
    ex.request_body = Some(body);
    let record = engine.finish(&host, &ex, &kept("c")).unwrap();
    let line = record.to_json();
    for secret in [
        FNR,
        "012356",
        CARD,
        "ola.nordmann",
        "kari@example.com",
        "NO93",
        "abc&",
        "203.0.113.45",
    ] {
        assert!(!line.contains(secret), "{secret} leaked: {line}");
    }
    let doc = json_of(&record);
    assert_eq!(
        text(&doc, "url.path"),
        "/customers/[REDACTED:email]/cards/[REDACTED:payment_card]"
    );
    assert_eq!(
        text(&doc, "url.query"),
        "fnr=[REDACTED:no_national_id]&token=[REDACTED:query_param]&q=x"
    );
    assert_eq!(
        text(&doc, "http.request.body.excerpt"),
        r#"{"iban": "[REDACTED:iban]", "card": "[REDACTED:payment_card]", "note": "ok"}"#
    );
    assert_eq!(
        field(&doc, "breakwater.redactions").and_then(Json::as_u64),
        Some(8)
    );
    assert_eq!(host.metric("breakwater.log.redactions.no_national_id"), 2);
    assert_eq!(host.metric("breakwater.log.redactions.payment_card"), 2);
    assert_eq!(host.metric("breakwater.log.redactions.email"), 2);
    assert_eq!(host.metric("breakwater.log.redactions.iban"), 1);
    assert_eq!(host.metric("breakwater.log.redactions.query_param"), 1);
    assert_eq!(host.metric("breakwater.log.redactions.jwt"), 0);
}

#[test]
fn long_values_and_many_values_are_bounded() {
    let (engine, host) =
        engine(r#"{"request_headers": ["x-big"], "redact": {"max_value_bytes": 64}}"#);
    let mut ex = exchange(&format!("/{}", "a/".repeat(500)));
    for _ in 0..20 {
        ex.request_headers.push(h("x-big", &"v".repeat(1000)));
    }
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    let values = field(&doc, "http.request.header.x-big")
        .and_then(Json::as_array)
        .unwrap();
    assert_eq!(values.len(), MAX_VALUES_PER_HEADER);
    assert!(values
        .iter()
        .all(|v| v.as_str().unwrap().len() <= 64 + '…'.len_utf8()));
    assert!(text(&doc, "url.path").len() <= 64 + '…'.len_utf8());
}

#[test]
fn body_excerpts_cut_by_the_limit_never_show_half_a_value() {
    let (engine, host) = engine(r#"{"body": {"max_bytes": 32}}"#);
    let mut ex = exchange("/");
    // The card starts before the excerpt limit and ends after it: the look-ahead sees it whole.
    let payload = format!(
        r#"{{"padding": "xxxxxxxx", "card": "{CARD}", "more": "{}"}}"#,
        "y".repeat(500)
    );
    let mut body = BodyCapture::new(32);
    let wanted = body.wanted(payload.len());
    assert_eq!(wanted, 32 + BODY_LOOKAHEAD);
    body.add(&payload.as_bytes()[..wanted], payload.len(), true);
    ex.response_body = Some(body);
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    let excerpt = text(&doc, "http.response.body.excerpt");
    assert!(!excerpt.contains("4111"), "{excerpt}");
    assert!(excerpt.ends_with('…'), "{excerpt}");
    assert!(excerpt.len() <= 32 + '…'.len_utf8(), "{excerpt}");

    // A value beyond the look-ahead, cut by the read limit, is dropped rather than shown in part.
    let payload = format!("{}{CARD}", "z ".repeat(47));
    let mut body = BodyCapture::new(32);
    let wanted = body.wanted(payload.len());
    body.add(&payload.as_bytes()[..wanted], payload.len(), true);
    let mut ex = exchange("/");
    ex.response_body = Some(body);
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert!(!text(&doc, "http.response.body.excerpt").contains("41"));
}

#[test]
fn body_capture_follows_content_type_and_encoding() {
    let (engine, _) = engine(
        r#"{"body": {"max_bytes": 10, "content_types": ["application/json", "text/plain"]}}"#,
    );
    assert!(engine
        .body_capture(Some(b"application/json; charset=utf-8"), None)
        .is_some());
    assert!(engine
        .body_capture(Some(b"Text/Plain"), Some(b"identity"))
        .is_some());
    assert!(engine
        .body_capture(Some(b"application/json"), Some(b"gzip"))
        .is_none());
    assert!(engine.body_capture(Some(b"image/png"), None).is_none());
    assert!(engine.body_capture(None, None).is_none());
    let (no_body, _) = self::engine("{}");
    assert!(no_body
        .body_capture(Some(b"application/json"), None)
        .is_none());

    // Chunks: reads stop at the limit; the capture knows the body went on.
    let mut capture = BodyCapture::new(10);
    let limit = 10 + BODY_LOOKAHEAD;
    capture.add(&[b'a'; 50], 50, false);
    assert_eq!(capture.wanted(100), limit - 50);
    capture.add(&[b'b'; 100], 100, false);
    assert_eq!(capture.wanted(100), 0);
    capture.add(&[], 100, true);
    assert!(!capture.complete && capture.overflowed && capture.bytes.len() == limit);
    let mut small = BodyCapture::new(10);
    small.add(b"{}", 2, true);
    assert!(small.complete);
}

#[test]
fn breaker_and_fallback_outcomes_are_recorded() {
    let (engine, host) = engine("{}");
    let mut ex = exchange("/recommendations");
    ex.status = Some(200);
    ex.breaker = Some(BreakerView {
        name: b"recs".to_vec(),
        decision: b"rejected".to_vec(),
        state: b"open".to_vec(),
    });
    ex.fallback = Some(FallbackView {
        served: b"stale".to_vec(),
        rule: b"popular".to_vec(),
        trigger: b"breaker_open".to_vec(),
    });
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert_eq!(text(&doc, "breakwater.breaker.name"), "recs");
    assert_eq!(text(&doc, "breakwater.breaker.state"), "open");
    assert_eq!(text(&doc, "breakwater.breaker.decision"), "rejected");
    assert_eq!(
        field(&doc, "breakwater.breaker_rejected").and_then(Json::as_bool),
        Some(true)
    );
    assert_eq!(text(&doc, "breakwater.fallback"), "stale");
    assert_eq!(text(&doc, "breakwater.fallback.rule"), "popular");
    assert_eq!(text(&doc, "breakwater.fallback.trigger"), "breaker_open");
}

#[test]
fn sampling_drops_and_keeps_by_class_and_counts() {
    let (engine, host) = engine(r#"{"sampling": {"rate": 0.0}}"#);
    let ex = exchange("/");
    assert!(engine.finish(&host, &ex, &kept("c")).is_none());
    assert_eq!(host.metric("breakwater.log.sampled_out"), 1);
    assert_eq!(host.metric("breakwater.log.records"), 0);

    let mut failed = exchange("/");
    failed.status = Some(503);
    failed.response_flags = 0x20;
    let doc = json_of(&engine.finish(&host, &failed, &kept("c")).unwrap());
    assert_eq!(text(&doc, "breakwater.sampling"), "kept:status");
    assert_eq!(text(&doc, "envoy.response_flags"), "UF");

    let mut slow = exchange("/");
    slow.duration_nanos = Some(1_500_000_000);
    assert!(engine.finish(&host, &slow, &kept("c")).is_some());
    let mut rejected = exchange("/");
    rejected.breaker = Some(BreakerView {
        decision: b"rejected".to_vec(),
        ..BreakerView::default()
    });
    assert!(engine.finish(&host, &rejected, &kept("c")).is_some());
    let mut passed = exchange("/");
    passed.breaker = Some(BreakerView {
        decision: b"passed".to_vec(),
        ..BreakerView::default()
    });
    assert!(engine.finish(&host, &passed, &kept("c")).is_none());
    let mut fell_back = exchange("/");
    fell_back.fallback = Some(FallbackView {
        served: b"static".to_vec(),
        ..FallbackView::default()
    });
    assert!(engine.finish(&host, &fell_back, &kept("c")).is_some());
    let mut none_served = exchange("/");
    none_served.fallback = Some(FallbackView {
        served: b"none".to_vec(),
        ..FallbackView::default()
    });
    assert!(engine.finish(&host, &none_served, &kept("c")).is_none());
    assert_eq!(host.metric("breakwater.log.records"), 4);
    assert_eq!(host.metric("breakwater.log.sampled_out"), 3);
}

#[test]
fn sampling_uses_the_request_id_then_the_correlation_id() {
    let (engine, host) = engine(r#"{"sampling": {"rate": 0.5, "always_keep": []}}"#);
    let mut kept_ids = 0;
    for n in 0..400 {
        let mut ex = exchange("/");
        ex.request_headers
            .retain(|(name, _)| name != b"x-request-id");
        ex.request_headers
            .push(h("x-request-id", &format!("id-{n}")));
        let first = engine.finish(&host, &ex, &kept("c")).is_some();
        // The same request id decides the same way whatever the correlation id.
        assert_eq!(
            engine
                .finish(&host, &ex, &kept(&format!("other-{n}")))
                .is_some(),
            first
        );
        kept_ids += usize::from(first);
    }
    assert!((150..250).contains(&kept_ids), "{kept_ids}");
    let mut no_request_id = exchange("/");
    no_request_id
        .request_headers
        .retain(|(name, _)| name != b"x-request-id");
    let decisions: Vec<bool> = (0..50)
        .map(|n| {
            engine
                .finish(&host, &no_request_id, &kept(&format!("c-{n}")))
                .is_some()
        })
        .collect();
    assert!(
        decisions.contains(&true) && decisions.contains(&false),
        "falls back to the correlation id"
    );
}

#[test]
fn correlation_decisions_are_counted() {
    let (engine, host) = engine("{}");
    let d = engine.on_request(&host, None, || "new".into());
    assert_eq!(
        (d.id.as_deref(), d.action),
        (Some("new"), CorrelationAction::Generated)
    );
    let d = engine.on_request(&host, Some(b"bad id\r\n"), || "new".into());
    assert_eq!(d.action, CorrelationAction::Replaced);
    let d = engine.on_request(&host, Some(b"good-id"), || "new".into());
    assert_eq!(d.action, CorrelationAction::Kept);
    // Well-formed, but personal data: replaced, so it is neither logged nor forwarded.
    for id in [
        &b"01010012356"[..],
        b"4111111111111111",
        b"10.1.2.3",
        b"ola.nordmann",
    ] {
        let d = engine.on_request(&host, Some(id), || "new".into());
        let expected = if id == b"ola.nordmann" {
            CorrelationAction::Kept
        } else {
            CorrelationAction::Replaced
        };
        assert_eq!(d.action, expected, "{}", String::from_utf8_lossy(id));
    }
    assert_eq!(host.metric("breakwater.log.correlation.generated"), 1);
    assert_eq!(host.metric("breakwater.log.correlation.replaced"), 4);
    let doc = json_of(
        &engine
            .finish(
                &host,
                &exchange("/"),
                &Decision {
                    id: Some("new".into()),
                    action: CorrelationAction::Replaced,
                },
            )
            .unwrap(),
    );
    assert_eq!(text(&doc, "breakwater.correlation"), "replaced");
}

#[test]
fn malformed_requests_still_give_a_record() {
    let (engine, host) = engine(r#"{"request_headers": ["x-a"]}"#);
    let ex = Exchange {
        request_headers: vec![
            (b":path".to_vec(), vec![0xff, b'/', b'?', 0xfe, b'=', 0x00]),
            (b":authority".to_vec(), b"[::1".to_vec()),
            (b"x-a".to_vec(), b"\"}{\"evil\":1,\"x\":\"\r\n".to_vec()),
            (b"traceparent".to_vec(), b"junk".to_vec()),
        ],
        ..Exchange::default()
    };
    let record = engine
        .finish(
            &host,
            &ex,
            &Decision {
                id: None,
                action: CorrelationAction::Absent,
            },
        )
        .unwrap();
    let doc = json_of(&record);
    assert!(field(&doc, "evil").is_none());
    assert!(field(&doc, "trace_id").is_none());
    assert_eq!(
        text(&doc, "server.address"),
        "[0:0:0::/48",
        "an IP host is truncated like any other"
    );
    assert!(!record.to_json().contains('\n'));
    // An exchange Envoy reported nothing about still yields valid JSON.
    let empty = engine
        .finish(
            &host,
            &Exchange::default(),
            &Decision {
                id: None,
                action: CorrelationAction::Absent,
            },
        )
        .unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(empty.to_json().as_bytes()).is_ok());
}

#[test]
fn authorities() {
    assert_eq!(
        split_authority(b"shop.example:8443"),
        (&b"shop.example"[..], Some(8443))
    );
    assert_eq!(
        split_authority(b"shop.example"),
        (&b"shop.example"[..], None)
    );
    assert_eq!(
        split_authority(b"[2001:db8::1]:443"),
        (&b"[2001:db8::1]"[..], Some(443))
    );
    assert_eq!(
        split_authority(b"[2001:db8::1]"),
        (&b"[2001:db8::1]"[..], None)
    );
    assert_eq!(
        split_authority(b"host:notaport"),
        (&b"host:notaport"[..], None)
    );
}

/// A whole body, captured the way the adapter would for this engine and content type.
fn captured(engine: &Engine, content_type: &str, payload: &str) -> BodyCapture {
    let mut capture = engine
        .body_capture(Some(content_type.as_bytes()), None)
        .unwrap();
    let wanted = capture.wanted(payload.len());
    capture.add(&payload.as_bytes()[..wanted], payload.len(), true);
    capture
}

#[test]
fn field_rules_mask_and_keep_json_bodies_and_fail_closed() {
    let (engine, host) = engine(
        r#"{"body": {"max_bytes": 200, "content_types": ["application/json", "application/problem+json", "text/plain"],
            "redact_fields": ["customer.ssn", "items[].card"], "keep_fields": ["customer", "items[].sku"], "parse_max_bytes": 256}}"#,
    );
    let payload = format!(
        r#"{{"customer": {{"name": "Ola", "ssn": "x", "mail": "ola@example.no"}}, "items": [{{"sku": "A1", "card": "{CARD}", "qty": 2}}], "secret": "s3cret"}}"#
    );
    let mut ex = exchange("/");
    ex.request_body = Some(captured(
        &engine,
        "application/json; charset=utf-8",
        &payload,
    ));
    ex.response_body = Some(captured(
        &engine,
        "application/problem+json",
        r#"{"detail": "no"}"#,
    ));
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert_eq!(
        text(&doc, "http.request.body.excerpt"),
        r#"{"customer":{"name":"Ola","ssn":"[REDACTED:field]","mail":"[REDACTED:email]"},"items":[{"sku":"A1","card":"[REDACTED:field]","qty":"[number]"}],"secret":"[string]"}"#
    );
    assert_eq!(
        text(&doc, "http.response.body.excerpt"),
        r#"{"detail":"[string]"}"#
    );
    assert_eq!(host.metric("breakwater.log.redactions.field"), 2);
    assert_eq!(host.metric("breakwater.log.redactions.email"), 1);
    assert_eq!(
        field(&doc, "breakwater.redactions").and_then(Json::as_u64),
        Some(3)
    );

    // Invalid JSON, or longer than parse_max_bytes: nothing of it is logged.
    for payload in [
        format!(r#"{{"ssn": "{FNR}""#),
        format!(r#"{{"a": "{}"}}"#, "b".repeat(300)),
    ] {
        let mut ex = exchange("/");
        ex.request_body = Some(captured(&engine, "application/json", &payload));
        let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
        assert_eq!(
            text(&doc, "http.request.body.excerpt"),
            "[REDACTED:body]",
            "{payload}"
        );
    }
    assert_eq!(host.metric("breakwater.log.redactions.body"), 2);

    // Bodies of other types get the detectors only, as without field rules.
    let mut ex = exchange("/");
    ex.request_body = Some(captured(&engine, "text/plain", &format!("ssn {FNR} {{")));
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert_eq!(
        text(&doc, "http.request.body.excerpt"),
        "ssn [REDACTED:no_national_id] {"
    );
}

#[test]
fn field_rules_read_up_to_parse_max_bytes_and_log_max_bytes_of_the_result() {
    let (engine, host) =
        engine(r#"{"body": {"max_bytes": 40, "redact_fields": ["ssn"], "parse_max_bytes": 4096}}"#);
    let capture = engine
        .body_capture(Some(b"application/json"), None)
        .unwrap();
    assert_eq!(
        capture.wanted(10_000),
        4096,
        "reads the whole bound, not max_bytes"
    );
    let payload = format!(
        r#"{{"ssn": "{FNR}", "list": [{}]}}"#,
        vec!["1"; 1000].join(", ")
    );
    assert!(payload.len() < 4096);
    let mut ex = exchange("/");
    ex.request_body = Some(captured(&engine, "application/json", &payload));
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    let excerpt = text(&doc, "http.request.body.excerpt");
    assert!(
        excerpt.starts_with(r#"{"ssn":"[REDACTED:field]","list":[1,1"#),
        "{excerpt}"
    );
    assert!(
        excerpt.ends_with('…') && excerpt.len() <= 40 + '…'.len_utf8(),
        "{excerpt}"
    );
    // Without field rules the excerpt limit decides how much is read, as before.
    let (plain, _) = self::engine(r#"{"body": {"max_bytes": 40}}"#);
    let capture = plain.body_capture(Some(b"application/json"), None).unwrap();
    assert_eq!(capture.wanted(10_000), 40 + BODY_LOOKAHEAD);
}

#[test]
fn hash_mode_pseudonymises_masked_fields() {
    let (engine, host) = engine(
        r#"{"redact": {"mode": "hash", "hmac_key": "0123456789abcdef"}, "body": {"redact_fields": ["ssn"]}}"#,
    );
    let excerpt = |payload: &str| {
        let mut ex = exchange("/");
        ex.request_body = Some(captured(&engine, "application/json", payload));
        let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
        text(&doc, "http.request.body.excerpt").to_string()
    };
    let a = excerpt(r#"{"ssn": "x-1"}"#);
    assert!(a.starts_with(r#"{"ssn":"[REDACTED:field:"#), "{a}");
    assert_eq!(
        a,
        excerpt(r#"{ "ssn" : "x-1" }"#),
        "the same value, the same pseudonym"
    );
    assert_ne!(a, excerpt(r#"{"ssn": "x-2"}"#));
}

#[test]
fn user_patterns_are_counted_under_their_names() {
    let (engine, host) = engine(
        r#"{"request_headers": ["x-customer"], "redact": {"patterns": [
            {"name": "customer_no", "regex": "\\bK-\\d{6}\\b", "keywords": ["kunde"]},
            {"name": "ticket", "regex": "TCK\\d{4}"}]}}"#,
    );
    let mut ex = exchange("/tickets/TCK1234/K-123456?kunde=K-654321");
    ex.request_headers.push(h(
        "x-customer",
        "kunde K-111111, and further on in this note K-222222",
    ));
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert_eq!(
        text(&doc, "url.path"),
        "/tickets/[REDACTED:ticket]/K-123456"
    );
    assert_eq!(text(&doc, "url.query"), "kunde=[REDACTED:customer_no]");
    assert_eq!(
        field(&doc, "http.request.header.x-customer"),
        Some(&serde_json::json!([
            "kunde [REDACTED:customer_no], and further on in this note K-222222"
        ]))
    );
    assert_eq!(host.metric("breakwater.log.redactions.customer_no"), 2);
    assert_eq!(host.metric("breakwater.log.redactions.ticket"), 1);
    assert_eq!(
        field(&doc, "breakwater.redactions").and_then(Json::as_u64),
        Some(3)
    );
}

/// The README's examples of user-defined detectors and JSON body field rules, run as written.
#[test]
fn the_readme_examples_of_patterns_and_field_rules_hold() {
    let readme = include_str!("../../../README.md");
    let block_after = |heading: &str| -> String {
        let section = &readme[readme.find(heading).unwrap()..];
        let block = &section[section.find("```json\n").unwrap() + 8..];
        format!("{{{}}}", &block[..block.find("```").unwrap()])
    };
    let redact = block_after("#### User-defined detectors");
    let body = block_after("#### JSON body field rules");
    let config = format!(
        "{{{}, {}}}",
        &redact[1..redact.len() - 1],
        &body[1..body.len() - 1]
    );
    let (engine, host) = engine(&config);

    let query_in = "kundenr=12345607&sak=SAK-2026-000123";
    let query_out = "kundenr=[REDACTED:customer_no]&sak=[REDACTED:case_ref]";
    assert!(readme.contains(&format!("`GET /orders?{query_in}`")));
    assert!(readme.contains(&format!("`{query_out}`")));
    let doc = json_of(
        &engine
            .finish(&host, &exchange(&format!("/orders?{query_in}")), &kept("c"))
            .unwrap(),
    );
    assert_eq!(text(&doc, "url.query"), query_out);
    for left_alone in ["kundenr=12345608", "q=ordre%2012345607"] {
        let doc = json_of(
            &engine
                .finish(
                    &host,
                    &exchange(&format!("/orders?{left_alone}")),
                    &kept("c"),
                )
                .unwrap(),
        );
        assert_eq!(text(&doc, "url.query"), left_alone);
    }

    let unwrap = |s: &str| s.replace('\n', " ");
    let body_in = r#"{"customer": {"name": "Ola", "ssn": "01010012356", "mail": "ola@example.no"}, "items": [{"sku": "A1", "card": "4111111111111111", "qty": 2}], "note": "call me"}"#;
    let body_out = r#"{"customer":{"name":"Ola","ssn":"[REDACTED:field]","mail":"[REDACTED:email]"},"items":[{"sku":"A1","card":"[REDACTED:field]","qty":"[number]"}],"note":"[string]"}"#;
    assert!(unwrap(readme).contains(&format!("`{body_in}`")));
    assert!(readme.contains(&format!("`{body_out}`")));
    let mut ex = exchange("/");
    ex.request_body = Some(captured(&engine, "application/json", body_in));
    let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
    assert_eq!(text(&doc, "http.request.body.excerpt"), body_out);
}

#[test]
fn in_json_bodies_under_field_rules_a_members_key_is_its_values_keyword_context() {
    let patterns = r#""redact": {"patterns": [{"name": "customer_no", "regex": "\\b\\d{8}\\b", "keywords": ["kundenr"]}]}"#;
    // "ordre" stands more than 30 bytes after the keyword, in the text too.
    let payload = r#"{"kundenr": 12345678, "filler": "abcdefghijklmnopqrstuvwxyz", "ordre": 12345678, "note": "kundenr 87654321"}"#;
    for body in [
        r#""body": {}"#,
        r#""body": {"redact_fields": ["password"]}"#,
    ] {
        let (engine, host) = engine(&format!("{{{patterns}, {body}}}"));
        let mut ex = exchange("/");
        ex.request_body = Some(captured(&engine, "application/json", payload));
        let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
        let excerpt = text(&doc, "http.request.body.excerpt");
        assert_eq!(
            excerpt.matches("[REDACTED:customer_no]").count(),
            2,
            "{body}: {excerpt}"
        );
        assert!(
            excerpt.contains("kundenr [REDACTED:customer_no]"),
            "{body}: {excerpt}"
        );
        assert!(
            excerpt.contains("12345678"),
            "ordre has no keyword: {excerpt}"
        );
        assert_eq!(
            host.metric("breakwater.log.redactions.customer_no"),
            2,
            "{body}"
        );
    }
}

/// A unary gRPC call as Envoy reports it at the end of the stream (HTTP/2, `:status` 200).
fn grpc_exchange(path: &str, grpc_status: Option<i64>) -> Exchange {
    let mut ex = exchange(path);
    ex.request_headers[0] = h(":method", "POST");
    ex.request_headers
        .push(h("content-type", "application/grpc"));
    ex.request_headers.push(h("te", "trailers"));
    ex.protocol = Some(b"HTTP/2".to_vec());
    ex.grpc_status = grpc_status;
    ex
}

fn number(doc: &Json, key: &str) -> Option<u64> {
    field(doc, key).and_then(Json::as_u64)
}

#[test]
fn a_long_grpc_path_gives_whole_names_or_none() {
    let (engine, host) = engine(r#"{"redact": {"max_value_bytes": 64}}"#);
    let finish = |path: &str| {
        json_of(
            &engine
                .finish(&host, &grpc_exchange(path, Some(0)), &kept("c"))
                .unwrap(),
        )
    };
    // The path is cut at 64 bytes, the method is not.
    let service = format!("shop.{}.Catalog", "v".repeat(40));
    let doc = finish(&format!("/{service}/GetItemWithAVeryLongName"));
    assert!(text(&doc, "url.path").ends_with('…'), "{doc:?}");
    assert_eq!(text(&doc, "rpc.service"), service);
    assert_eq!(text(&doc, "rpc.method"), "GetItemWithAVeryLongName");
    // A name longer than the cap is not logged at all.
    let doc = finish(&format!("/shop.Catalog/{}", "M".repeat(65)));
    assert!(field(&doc, "rpc.service").is_none() && field(&doc, "rpc.method").is_none());
    assert_eq!(text(&doc, "rpc.system"), "grpc");
}

#[test]
fn a_grpc_call_carries_the_rpc_fields() {
    let (engine, host) = engine("{}");
    let doc = json_of(
        &engine
            .finish(
                &host,
                &grpc_exchange("/shop.v1.Catalog/GetItem", Some(14)),
                &kept("c"),
            )
            .unwrap(),
    );
    assert_eq!(text(&doc, "rpc.system"), "grpc");
    assert_eq!(text(&doc, "rpc.service"), "shop.v1.Catalog");
    assert_eq!(text(&doc, "rpc.method"), "GetItem");
    assert_eq!(number(&doc, "rpc.grpc.status_code"), Some(14));
    assert_eq!(text(&doc, "url.path"), "/shop.v1.Catalog/GetItem");
    assert_eq!(number(&doc, "http.response.status_code"), Some(200));
    assert_eq!(text(&doc, "network.protocol.version"), "2");
    // OK is a status like any other; every content type Envoy takes for gRPC counts.
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let mut ex = grpc_exchange("/shop.v1.Catalog/GetItem", Some(0));
        ex.request_headers.retain(|(n, _)| n != b"content-type");
        ex.request_headers.push(h("content-type", content_type));
        let doc = json_of(&engine.finish(&host, &ex, &kept("c")).unwrap());
        assert_eq!(text(&doc, "rpc.system"), "grpc", "{content_type}");
        assert_eq!(
            number(&doc, "rpc.grpc.status_code"),
            Some(0),
            "{content_type}"
        );
    }
    // The fields come in this order, after the HTTP status.
    let record = engine
        .finish(&host, &grpc_exchange("/a.B/C", Some(0)), &kept("c"))
        .unwrap();
    let keys: Vec<&str> = record.fields.iter().map(|(k, _)| k.as_ref()).collect();
    let at = keys
        .iter()
        .position(|k| *k == "http.response.status_code")
        .unwrap();
    assert_eq!(
        keys[at + 1..at + 5],
        [
            "rpc.system",
            "rpc.service",
            "rpc.method",
            "rpc.grpc.status_code"
        ]
    );
}

#[test]
fn rpc_fields_are_left_out_when_envoy_does_not_know_them() {
    let (engine, host) = engine("{}");
    // No status at all (the client reset the stream before any response): no status field.
    let doc = json_of(
        &engine
            .finish(&host, &grpc_exchange("/a.B/C", None), &kept("c"))
            .unwrap(),
    );
    assert_eq!(text(&doc, "rpc.system"), "grpc");
    assert_eq!(text(&doc, "rpc.method"), "C");
    assert!(field(&doc, "rpc.grpc.status_code").is_none(), "{doc}");
    // Envoy's -1 (a grpc-status it cannot read) and values past the known codes are no code.
    for unreadable in [-1, 17, i64::MAX] {
        let doc = json_of(
            &engine
                .finish(
                    &host,
                    &grpc_exchange("/a.B/C", Some(unreadable)),
                    &kept("c"),
                )
                .unwrap(),
        );
        assert!(field(&doc, "rpc.grpc.status_code").is_none(), "{doc}");
    }
    // A path of another shape: a gRPC call still, without service and method.
    for path in ["/", "/health", "/a/b/c", "//m", "/a/", "*"] {
        let doc = json_of(
            &engine
                .finish(&host, &grpc_exchange(path, Some(12)), &kept("c"))
                .unwrap(),
        );
        assert_eq!(text(&doc, "rpc.system"), "grpc", "{path}");
        assert!(
            field(&doc, "rpc.service").is_none() && field(&doc, "rpc.method").is_none(),
            "{path}: {doc}"
        );
        assert_eq!(number(&doc, "rpc.grpc.status_code"), Some(12), "{path}");
    }
    // A query is not part of the method.
    let doc = json_of(
        &engine
            .finish(&host, &grpc_exchange("/a.B/C?x=1", Some(0)), &kept("c"))
            .unwrap(),
    );
    assert_eq!(text(&doc, "rpc.method"), "C");
}

#[test]
fn http_requests_have_no_rpc_fields() {
    let (engine, host) = engine("{}");
    for content_type in [
        None,
        Some("application/json"),
        Some("application/grpc-web+proto"),
        Some("application/grpc-web-text"),
    ] {
        let mut ex = exchange("/shop.v1.Catalog/GetItem");
        if let Some(content_type) = content_type {
            ex.request_headers.push(h("content-type", content_type));
        }
        // Even if a status were handed in, it is not a gRPC call's.
        ex.grpc_status = Some(14);
        let record = engine.finish(&host, &ex, &kept("c")).unwrap();
        assert!(
            !record.fields.iter().any(|(k, _)| k.starts_with("rpc.")),
            "{content_type:?}: {}",
            record.to_json()
        );
    }
    assert!(!is_grpc_call(&exchange("/").request_headers));
    assert!(is_grpc_call(&grpc_exchange("/", None).request_headers));
}

#[test]
fn service_and_method_are_redacted_like_the_path() {
    let (engine, host) =
        self::engine(r#"{"redact": {"patterns": [{"name": "order", "regex": "ord-\\d+/x"}]}}"#);
    let doc = json_of(
        &engine
            .finish(
                &host,
                &grpc_exchange(&format!("/ola%40example.no/{FNR}"), Some(5)),
                &kept("c"),
            )
            .unwrap(),
    );
    assert_eq!(
        text(&doc, "url.path"),
        "/[REDACTED:email]/[REDACTED:no_national_id]"
    );
    assert_eq!(text(&doc, "rpc.service"), "[REDACTED:email]");
    assert_eq!(text(&doc, "rpc.method"), "[REDACTED:no_national_id]");
    // Counted once each (the path's finds), not again for the RPC fields.
    assert_eq!(number(&doc, "breakwater.redactions"), Some(2));
    assert_eq!(host.metric("breakwater.log.redactions.email"), 1);
    assert!(!doc.to_string().contains(FNR) && !doc.to_string().contains("ola"));

    // A find across the `/`: redacted as one in the path, and neither part is logged.
    let doc = json_of(
        &engine
            .finish(&host, &grpc_exchange("/ord-42/x", Some(0)), &kept("c"))
            .unwrap(),
    );
    assert_eq!(text(&doc, "url.path"), "/[REDACTED:order]");
    assert!(field(&doc, "rpc.service").is_none() && field(&doc, "rpc.method").is_none());

    // Hash mode: the same keyed pseudonym as in the path.
    let (engine, host) =
        self::engine(r#"{"redact": {"mode": "hash", "hmac_key": "0123456789abcdef"}}"#);
    let doc = json_of(
        &engine
            .finish(
                &host,
                &grpc_exchange("/shop.Catalog/ola@example.no", Some(0)),
                &kept("c"),
            )
            .unwrap(),
    );
    let method = text(&doc, "rpc.method");
    assert!(method.starts_with("[REDACTED:email:"), "{method}");
    assert_eq!(text(&doc, "url.path"), format!("/shop.Catalog/{method}"));
}

#[test]
fn sampling_keeps_grpc_failures_by_class_and_by_code_name() {
    let (engine, host) =
        self::engine(r#"{"sampling": {"rate": 0.0, "always_keep": ["5xx", "grpc_error"]}}"#);
    let sampling = |ex: &Exchange| {
        engine
            .finish(&host, ex, &kept("c"))
            .map(|r| text(&json_of(&r), "breakwater.sampling").to_string())
    };
    assert_eq!(
        sampling(&grpc_exchange("/a.B/C", Some(0))),
        None,
        "OK is dropped"
    );
    for status in [Some(1), Some(2), Some(14), Some(16), Some(-1), None] {
        assert_eq!(
            sampling(&grpc_exchange("/a.B/C", status)).as_deref(),
            Some("kept:grpc_error"),
            "{status:?}"
        );
    }
    // An HTTP status class comes first; an HTTP request is no gRPC error.
    let mut local = grpc_exchange("/a.B/C", Some(14));
    local.status = Some(503);
    assert_eq!(sampling(&local).as_deref(), Some("kept:status"));
    let mut http = exchange("/a.B/C");
    http.grpc_status = Some(14);
    assert_eq!(sampling(&http), None);

    // By name, in any case: only those codes, named in the record as gRPC names them.
    let (engine, host) = self::engine(
        r#"{"sampling": {"rate": 0.0, "always_keep": ["unavailable", "Deadline_Exceeded", "breaker_rejected"]}}"#,
    );
    let sampling = |ex: &Exchange| {
        engine
            .finish(&host, ex, &kept("c"))
            .map(|r| text(&json_of(&r), "breakwater.sampling").to_string())
    };
    assert_eq!(
        sampling(&grpc_exchange("/a.B/C", Some(14))).as_deref(),
        Some("kept:UNAVAILABLE")
    );
    assert_eq!(
        sampling(&grpc_exchange("/a.B/C", Some(4))).as_deref(),
        Some("kept:DEADLINE_EXCEEDED")
    );
    for other in [Some(0), Some(13), Some(-1), None] {
        assert_eq!(sampling(&grpc_exchange("/a.B/C", other)), None, "{other:?}");
    }
    // A breaker's rejection of a gRPC call (trailers-only UNAVAILABLE): the code name first.
    let mut rejected = grpc_exchange("/a.B/C", Some(14));
    rejected.breaker = Some(BreakerView {
        decision: b"rejected".to_vec(),
        ..BreakerView::default()
    });
    assert_eq!(sampling(&rejected).as_deref(), Some("kept:UNAVAILABLE"));
    rejected.grpc_status = Some(8);
    assert_eq!(
        sampling(&rejected).as_deref(),
        Some("kept:breaker_rejected")
    );
    // Kept by a code name and by grpc_error: the name says more.
    let (engine, host) = self::engine(
        r#"{"sampling": {"rate": 0.0, "always_keep": ["grpc_error", "UNAVAILABLE"]}}"#,
    );
    let doc = json_of(
        &engine
            .finish(&host, &grpc_exchange("/a.B/C", Some(14)), &kept("c"))
            .unwrap(),
    );
    assert_eq!(text(&doc, "breakwater.sampling"), "kept:UNAVAILABLE");
    assert_eq!(number(&doc, "rpc.grpc.status_code"), Some(14));
    // The default classes keep no gRPC failure that answered HTTP 200.
    let (engine, host) = self::engine(r#"{"sampling": {"rate": 0.0}}"#);
    assert!(engine
        .finish(&host, &grpc_exchange("/a.B/C", Some(14)), &kept("c"))
        .is_none());
}

#[test]
fn every_fallback_answer_keeps_a_sampled_out_request_and_none_does_not() {
    let (engine, host) = engine(r#"{"sampling": {"rate": 0.0, "always_keep": ["fallback"]}}"#);
    for (served, keeps) in [
        ("static", true),
        ("stale", true),
        ("service", true),
        ("grpc", true),
        ("none", false),
        ("bogus", false),
    ] {
        let mut ex = exchange("/");
        ex.fallback = Some(FallbackView {
            served: served.as_bytes().to_vec(),
            rule: b"r".to_vec(),
            trigger: b"status".to_vec(),
        });
        let record = engine.finish(&host, &ex, &kept("c"));
        assert_eq!(record.is_some(), keeps, "{served}");
        if let Some(record) = record {
            assert_eq!(
                text(&json_of(&record), "breakwater.sampling"),
                "kept:fallback"
            );
        }
    }
}
