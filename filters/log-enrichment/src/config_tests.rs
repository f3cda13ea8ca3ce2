//! Configuration: the issue's example parses as named, defaults are documented values, and
//! every refusal names its field.

use super::*;
use breakwater_common::testing::test;

const EXAMPLE: &str = r#"{
  "service": { "name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1" },
  "correlation": { "header": "x-correlation-id", "generate": true, "trust_incoming": true, "echo_in_response": true },
  "workload_metadata": true,
  "request_headers": ["user-agent", "x-tenant-id"],
  "response_headers": ["content-type"],
  "redact": {
    "detectors": ["email", "payment_card", "iban", "no_national_id", "ipv4", "ipv6", "jwt", "bearer"],
    "query_params": ["token", "access_token", "password", "api_key"],
    "mode": "mask",
    "hmac_key": null
  },
  "sampling": { "rate": 1.0, "always_keep": ["5xx", "fallback", "breaker_rejected", "slow"] , "slow": "1s" },
  "upstream_headers": { "x-breakwater-service": "checkout" }
}"#;

fn refusal(json: &str) -> (String, String) {
    let err = LogConfig::parse(json.as_bytes()).unwrap_err();
    (err.field, err.reason)
}

#[test]
fn the_issue_example_parses_as_named() {
    let c = LogConfig::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(c.service.name.as_deref(), Some("checkout"));
    assert_eq!(c.service.region.as_deref(), Some("no-oslo-1"));
    assert!(c.correlation.echo_in_response);
    assert_eq!(c.request_headers, ["user-agent", "x-tenant-id"]);
    assert_eq!(c.response_headers, ["content-type"]);
    assert_eq!(c.redact.detectors, ALL.to_vec());
    assert_eq!(
        c.redact.query_params,
        ["token", "access_token", "password", "api_key"]
    );
    assert_eq!(c.redact.mode, Mode::Mask);
    assert_eq!(c.sampling.rate, 1.0);
    assert_eq!(c.sampling.slow_ms, 1000);
    let keep = c.sampling.always_keep;
    assert!(keep.statuses.contains(503) && !keep.statuses.contains(404));
    assert!(keep.fallback && keep.breaker_rejected && keep.slow && !keep.response_flags);
    assert_eq!(
        c.upstream_headers.0,
        [("x-breakwater-service".to_string(), "checkout".to_string())]
    );
    assert!(c.body.is_none());
}

#[test]
fn defaults() {
    let c = LogConfig::parse(b"").unwrap();
    assert_eq!(c, LogConfig::default());
    assert_eq!(c.correlation.header, "x-correlation-id");
    assert!(
        c.correlation.generate && c.correlation.trust_incoming && !c.correlation.echo_in_response
    );
    assert!(
        c.request_headers.is_empty(),
        "fail closed: no headers unless listed"
    );
    assert_eq!(c.redact.detectors.len(), 8);
    assert!(c
        .redact
        .query_params
        .contains(&"x-amz-signature".to_string()));
    assert_eq!(c.redact.max_value_bytes, 1024);
    assert!(!c.separate_fields && c.workload_metadata);
    let body = LogConfig::parse(br#"{"body": {}}"#).unwrap().body.unwrap();
    assert_eq!(
        (body.max_bytes, body.content_types),
        (1024, vec!["application/json".to_string()])
    );
}

#[test]
fn credential_headers_are_refused_by_name() {
    for name in NEVER_LOGGED {
        let (field, reason) = refusal(&format!(r#"{{"request_headers": ["x-a", "{name}"]}}"#));
        assert_eq!(field, "request_headers[1]");
        assert!(reason.contains("never logged"), "{reason}");
        let upper = name.to_ascii_uppercase();
        let (field, _) = refusal(&format!(r#"{{"response_headers": ["{upper}"]}}"#));
        assert_eq!(field, "response_headers[0]", "case does not matter");
    }
}

#[test]
fn hash_mode_needs_a_long_enough_key() {
    let (field, reason) = refusal(r#"{"redact": {"mode": "hash"}}"#);
    assert_eq!(field, "redact.mode");
    assert!(reason.contains("hmac_key"), "{reason}");
    let (field, _) = refusal(r#"{"redact": {"mode": "hash", "hmac_key": "short"}}"#);
    assert_eq!(field, "redact.hmac_key");
    let c = LogConfig::parse(br#"{"redact": {"mode": "hash", "hmac_key": "0123456789abcdef"}}"#)
        .unwrap();
    assert_eq!(
        c.redact.mode,
        Mode::Hash {
            key: b"0123456789abcdef".to_vec()
        }
    );
    // A key without hash mode is harmless: masking stays on.
    let c = LogConfig::parse(br#"{"redact": {"hmac_key": "0123456789abcdef"}}"#).unwrap();
    assert_eq!(c.redact.mode, Mode::Mask);
}

#[test]
fn refusals_name_the_field() {
    for (json, field) in [
        (r#"{"servce": {}}"#, "servce"),
        (r#"{"service": {"name": ""}}"#, "service.name"),
        (r#"{"service": {"name": "a\nb"}}"#, "service.name"),
        (
            r#"{"correlation": {"header": "x y"}}"#,
            "correlation.header",
        ),
        (
            r#"{"correlation": {"header": "cookie"}}"#,
            "correlation.header",
        ),
        (
            r#"{"correlation": {"generate": "yes"}}"#,
            "correlation.generate",
        ),
        (r#"{"request_headers": [":path"]}"#, "request_headers[0]"),
        (r#"{"request_headers": ["a", "A"]}"#, "request_headers[1]"),
        (r#"{"request_headers": "user-agent"}"#, "request_headers"),
        (
            r#"{"redact": {"detectors": ["email", "ssn"]}}"#,
            "redact.detectors[1]",
        ),
        (r#"{"redact": {"mode": "encrypt"}}"#, "redact.mode"),
        (
            r#"{"redact": {"query_params": [""]}}"#,
            "redact.query_params[0]",
        ),
        (
            r#"{"redact": {"max_value_bytes": 4}}"#,
            "redact.max_value_bytes",
        ),
        (r#"{"sampling": {"rate": 1.5}}"#, "sampling.rate"),
        (r#"{"sampling": {"rate": -0.1}}"#, "sampling.rate"),
        (
            r#"{"sampling": {"always_keep": ["5xx", "errors"]}}"#,
            "sampling.always_keep[1]",
        ),
        (r#"{"sampling": {"slow": "fast"}}"#, "sampling.slow"),
        (
            r#"{"upstream_headers": {"host": "x"}}"#,
            "upstream_headers.host",
        ),
        (
            r#"{"upstream_headers": {"x-a": "a\r\nb"}}"#,
            "upstream_headers.x-a",
        ),
        (
            r#"{"upstream_headers": {"x-correlation-id": "fixed"}}"#,
            "upstream_headers.x-correlation-id",
        ),
        (r#"{"body": {"max_bytes": 0}}"#, "body.max_bytes"),
        (r#"{"body": {"max_bytes": 1000000}}"#, "body.max_bytes"),
        (
            r#"{"body": {"content_types": ["json"]}}"#,
            "body.content_types[0]",
        ),
        (r#"{"body": {"content_types": []}}"#, "body.content_types"),
        (r#"{"separate_fields": 1}"#, "separate_fields"),
    ] {
        assert_eq!(refusal(json).0, field, "{json}");
    }
    let (_, reason) = refusal(r#"{"redact": {"detectors": ["ssn"]}}"#);
    assert!(
        reason.contains("no_national_id"),
        "lists the known detectors: {reason}"
    );
    assert!(LogConfig::parse(b"{")
        .unwrap_err()
        .reason
        .starts_with("invalid JSON"));
}

#[test]
fn status_lists_and_classes_mix_in_always_keep() {
    let c = LogConfig::parse(
        br#"{"sampling": {"rate": 0, "always_keep": ["429", "500-504", "response_flags"]}}"#,
    )
    .unwrap();
    let keep = c.sampling.always_keep;
    assert!(
        keep.statuses.contains(429) && keep.statuses.contains(504) && !keep.statuses.contains(505)
    );
    assert!(keep.response_flags && !keep.fallback && !keep.slow);
    assert_eq!(c.sampling.rate, 0.0);
}
