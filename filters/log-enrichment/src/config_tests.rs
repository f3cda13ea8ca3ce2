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
    assert_eq!(c.redact.detectors, DEFAULT.to_vec());
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
    assert_eq!(c.envoy_fields, EnvoyFields::Record);
    assert_eq!(
        LogConfig::parse(br#"{"envoy_fields": "access_log"}"#)
            .unwrap()
            .envoy_fields,
        EnvoyFields::AccessLog
    );
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
        (r#"{"envoy_fields": "envoy"}"#, "envoy_fields"),
        (r#"{"service": {"name": 5}}"#, "service.name"),
        (r#"{"service": []}"#, "service"),
        (r#"{"redact": {"mode": 1}}"#, "redact.mode"),
        (r#"{"redact": {"mode": {"mask": null}}}"#, "redact.mode"),
        (r#"{"redact": {"detectors": "email"}}"#, "redact.detectors"),
        (r#"{"redact": {"hmac_key": 16}}"#, "redact.hmac_key"),
        (
            r#"{"redact": {"max_value_bytes": 4.5}}"#,
            "redact.max_value_bytes",
        ),
        (r#"{"sampling": {"rate": "1"}}"#, "sampling.rate"),
        (r#"{"sampling": {"slow": "0s"}}"#, "sampling.slow"),
        (
            r#"{"sampling": {"always_keep": [503]}}"#,
            "sampling.always_keep[0]",
        ),
        (
            r#"{"upstream_headers": {"Content-Length": "1"}}"#,
            "upstream_headers.Content-Length",
        ),
        (
            r#"{"upstream_headers": {":authority": "x"}}"#,
            "upstream_headers.:authority",
        ),
        (
            r#"{"body": {"content_types": ["text/plain; charset=utf-8"]}}"#,
            "body.content_types[0]",
        ),
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

/// The `log-` cases of tests/e2e/test_bad_config_catalogue.py: the field and the reason's
/// fragment that the CLI run checks.
#[test]
fn grpc_classes_and_code_names_in_always_keep() {
    let c = LogConfig::parse(
        br#"{"sampling": {"rate": 0, "always_keep": ["grpc_error", "UNAVAILABLE", "deadline_exceeded", "Resource_Exhausted", "ok", "5xx", "fallback"]}}"#,
    )
    .unwrap();
    let keep = c.sampling.always_keep;
    assert!(keep.grpc_error && keep.fallback && !keep.slow);
    assert_eq!(
        keep.grpc_statuses.names(),
        [
            "OK",
            "DEADLINE_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE"
        ]
    );
    // Numbers stay HTTP statuses: "500" is not gRPC's, and gRPC codes are named, not numbered.
    assert!(keep.statuses.contains(500) && keep.statuses.contains(503));
    let only_http = LogConfig::parse(br#"{"sampling": {"always_keep": ["500", "503"]}}"#)
        .unwrap()
        .sampling
        .always_keep;
    assert!(only_http.grpc_statuses.is_empty() && !only_http.grpc_error);
    // Every gRPC code name is accepted, in any case; class names are exact.
    for name in breakwater_common::grpc::CODE_NAMES {
        for written in [name.to_string(), name.to_lowercase()] {
            let json = format!(r#"{{"sampling": {{"always_keep": ["{written}"]}}}}"#);
            let keep = LogConfig::parse(json.as_bytes())
                .unwrap()
                .sampling
                .always_keep;
            assert_eq!(keep.grpc_statuses.names(), [name], "{written}");
        }
    }
    for (json, field) in [
        (
            r#"{"sampling": {"always_keep": ["5xx", "NOPE"]}}"#,
            "sampling.always_keep[1]",
        ),
        (
            r#"{"sampling": {"always_keep": ["GRPC_ERROR"]}}"#,
            "sampling.always_keep[0]",
        ),
        (
            r#"{"sampling": {"always_keep": [" UNAVAILABLE"]}}"#,
            "sampling.always_keep[0]",
        ),
        (
            r#"{"sampling": {"always_keep": ["UNAVAILABLE_"]}}"#,
            "sampling.always_keep[0]",
        ),
        (
            r#"{"sampling": {"always_keep": ["14"]}}"#,
            "sampling.always_keep[0]",
        ),
        (
            r#"{"sampling": {"always_keep": [14]}}"#,
            "sampling.always_keep[0]",
        ),
    ] {
        let (got, reason) = refusal(json);
        assert_eq!(got, field, "{json}");
        assert!(
            reason.contains("gRPC status name") || reason.contains("invalid type"),
            "{json}: {reason}"
        );
    }
}

#[test]
fn the_bad_config_catalogue_holds() {
    let headers: Vec<String> = (0..33).map(|i| format!(r#""x-h{i}""#)).collect();
    let too_many_headers = format!(r#"{{"request_headers": [{}]}}"#, headers.join(","));
    let params: Vec<String> = (0..65).map(|i| format!(r#""p{i}""#)).collect();
    let too_many_params = format!(
        r#"{{"redact": {{"query_params": [{}]}}}}"#,
        params.join(",")
    );
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"servce": {}}"#, "servce", "unknown field"),
        (
            r#"{"redact": {"mde": "mask"}}"#,
            "redact.mde",
            "unknown field",
        ),
        (
            r#"{"service": {"name": "a", "team": "b"}}"#,
            "service.team",
            "unknown field",
        ),
        (
            r#"{"request_headers": "user-agent"}"#,
            "request_headers",
            "",
        ),
        (
            r#"{"correlation": {"generate": "yes"}}"#,
            "correlation.generate",
            "",
        ),
        (
            r#"{"request_headers": ["user-agent", "Authorization"]}"#,
            "request_headers[1]",
            "carries credentials",
        ),
        (
            r#"{"response_headers": ["set-cookie"]}"#,
            "response_headers[0]",
            "carries credentials",
        ),
        (
            r#"{"correlation": {"header": "cookie"}}"#,
            "correlation.header",
            "credentials",
        ),
        (
            r#"{"request_headers": ["a", "A"]}"#,
            "request_headers[1]",
            "listed twice",
        ),
        (
            r#"{"redact": {"mode": "hash"}}"#,
            "redact.mode",
            "needs redact.hmac_key",
        ),
        (
            r#"{"redact": {"mode": "hash", "hmac_key": "short"}}"#,
            "redact.hmac_key",
            "",
        ),
        (
            r#"{"sampling": {"rate": 1.5}}"#,
            "sampling.rate",
            "from 0.0 to 1.0",
        ),
        (r#"{"sampling": {"rate": -0.1}}"#, "sampling.rate", ""),
        (
            r#"{"sampling": {"always_keep": ["5xx", "errors"]}}"#,
            "sampling.always_keep[1]",
            "",
        ),
        (r#"{"sampling": {"slow": "fast"}}"#, "sampling.slow", ""),
        (
            r#"{"redact": {"detectors": ["email", "ssn"]}}"#,
            "redact.detectors[1]",
            "no_national_id",
        ),
        (&too_many_headers, "request_headers", "at most 32"),
        (&too_many_params, "redact.query_params", "at most 64"),
        (
            r#"{"upstream_headers": {"x-correlation-id": "fixed"}}"#,
            "upstream_headers.x-correlation-id",
            "",
        ),
        (r#"{"body": {"max_bytes": 1000000}}"#, "body.max_bytes", ""),
        (
            r#"{"redact": {"max_value_bytes": 4}}"#,
            "redact.max_value_bytes",
            "",
        ),
    ];
    for (json, field, fragment) in cases {
        let (got_field, reason) = refusal(json);
        assert_eq!(&got_field, field, "{json}");
        assert!(reason.contains(fragment), "{json}: {reason}");
    }
}

#[test]
fn errors_explain_themselves() {
    for (json, message) in [
        (
            r#"{"redact": {"mde": "mask"}}"#,
            "redact.mde: unknown field `mde`, expected one of `detectors`, `query_params`, `mode`, `hmac_key`, `max_value_bytes`, `patterns`",
        ),
        (
            r#"{"correlation": {"header": "cookie"}}"#,
            r#"correlation.header: "cookie" carries credentials; choose another header"#,
        ),
        (
            r#"{"request_headers": ["a", "A"]}"#,
            r#"request_headers[1]: "a" is listed twice"#,
        ),
        (
            r#"{"request_headers": ["user-agent", "Authorization"]}"#,
            r#"request_headers[1]: "authorization" carries credentials and is never logged; remove it from the list"#,
        ),
        (
            r#"{"request_headers": "user-agent"}"#,
            r#"request_headers: invalid type: string "user-agent", expected an array of header names"#,
        ),
        (
            r#"{"redact": {"mode": "encrypt"}}"#,
            r#"redact.mode: "encrypt" is not a mode (expected mask or hash)"#,
        ),
        (
            r#"{"redact": {"mode": "hash"}}"#,
            r#"redact.mode: "hash" needs redact.hmac_key (without a key, hashed ids can be found by trying every id)"#,
        ),
        (
            r#"{"redact": {"max_value_bytes": 4}}"#,
            "redact.max_value_bytes: 4 is outside 16 to 16384",
        ),
        (
            r#"{"sampling": {"rate": 1.5}}"#,
            "sampling.rate: must be from 0.0 to 1.0 (the fraction of requests logged), not 1.5",
        ),
        (
            r#"{"sampling": {"always_keep": ["5xx", "errors"]}}"#,
            r#"sampling.always_keep[1]: "errors" is not a status, gRPC status or class: use an HTTP status code ("503"), class ("5xx") or range ("500-504"), a gRPC status name ("UNAVAILABLE", "DEADLINE_EXCEEDED", ... in any case), or one of fallback, breaker_rejected, slow, response_flags, grpc_error"#,
        ),
        (
            r#"{"sampling": {"always_keep": ["grpc_error", "NOPE"]}}"#,
            r#"sampling.always_keep[1]: "NOPE" is not a status, gRPC status or class: use an HTTP status code ("503"), class ("5xx") or range ("500-504"), a gRPC status name ("UNAVAILABLE", "DEADLINE_EXCEEDED", ... in any case), or one of fallback, breaker_rejected, slow, response_flags, grpc_error"#,
        ),
        (
            r#"{"sampling": {"always_keep": ["14"]}}"#,
            r#"sampling.always_keep[0]: invalid status "14": HTTP status codes are 100 to 599; or a gRPC status name ("UNAVAILABLE", any case), or one of fallback, breaker_rejected, slow, response_flags, grpc_error"#,
        ),
        (
            r#"{"upstream_headers": {"Host": "x"}}"#,
            "upstream_headers.Host: this header is managed by Envoy",
        ),
        (
            r#"{"upstream_headers": {"x-correlation-id": "fixed"}}"#,
            "upstream_headers.x-correlation-id: is the correlation header, which the filter sets itself",
        ),
        (
            r#"{"body": {"max_bytes": 1000000}}"#,
            "body.max_bytes: 1000000 is outside 1 to 65536",
        ),
        (
            r#"{"body": {"content_types": []}}"#,
            "body.content_types: must list 1 to 16 media types",
        ),
        (
            r#"{"separate_fields": 1}"#,
            "separate_fields: invalid type: integer `1`, expected a boolean",
        ),
        (
            r#"{"envoy_fields": "Record"}"#,
            "envoy_fields: \"Record\" is not a choice (expected record or access_log)",
        ),
    ] {
        let err = LogConfig::parse(json.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), message, "{json}");
    }
}

#[test]
fn a_misspelled_key_is_reported_as_itself() {
    for (json, field) in [
        (r#"{"redact": {"mde": "mask"}}"#, "redact.mde"),
        (r#"{"correlation": {"headr": "x-id"}}"#, "correlation.headr"),
        (r#"{"sampling": {"rates": 0.5}}"#, "sampling.rates"),
        (r#"{"body": {"max_byte": 10}}"#, "body.max_byte"),
        (r#"{"request_header": ["a"]}"#, "request_header"),
    ] {
        let (got, reason) = refusal(json);
        assert_eq!(got, field, "{json}");
        assert!(reason.starts_with("unknown field"), "{json}: {reason}");
    }
}

#[test]
fn header_names_differing_in_case_are_duplicates() {
    let (field, reason) = refusal(r#"{"upstream_headers": {"x-a": "1", "X-A": "2"}}"#);
    assert_eq!(field, "upstream_headers.X-A");
    assert!(reason.contains("given twice"), "{reason}");
    let (field, reason) = refusal(r#"{"request_headers": ["a", "A"]}"#);
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("request_headers[1]", "\"a\" is listed twice")
    );
    let (field, reason) =
        refusal(r#"{"response_headers": ["Content-Type", "x-b", "content-type"]}"#);
    assert_eq!(field, "response_headers[2]");
    assert!(reason.contains("listed twice"), "{reason}");
    // Envoy's own headers and the correlation header are refused in any case; the correlation
    // header is named as the filter sets it.
    assert_eq!(
        refusal(r#"{"upstream_headers": {"Transfer-Encoding": "chunked"}}"#).0,
        "upstream_headers.Transfer-Encoding"
    );
    assert_eq!(
        refusal(r#"{"upstream_headers": {"X-Correlation-ID": "fixed"}}"#).0,
        "upstream_headers.x-correlation-id"
    );
    assert_eq!(
        refusal(r#"{"correlation": {"header": "X-Trace"}, "upstream_headers": {"x-trace": "1"}}"#)
            .0,
        "upstream_headers.x-trace"
    );
}

#[test]
fn null_means_absent() {
    let all_null = r#"{
      "service": null, "correlation": null, "workload_metadata": null,
      "request_headers": null, "response_headers": null, "redact": null, "sampling": null,
      "upstream_headers": null, "body": null, "separate_fields": null,
      "envoy_fields": null
    }"#;
    assert_eq!(
        LogConfig::parse(all_null.as_bytes()).unwrap(),
        LogConfig::default()
    );
    let inner_null = r#"{
      "service": {"name": null, "version": null, "environment": null, "region": null},
      "correlation": {"header": null, "generate": null, "trust_incoming": null, "echo_in_response": null},
      "redact": {"detectors": null, "query_params": null, "mode": null, "hmac_key": null, "max_value_bytes": null},
      "sampling": {"rate": null, "always_keep": null, "slow": null}
    }"#;
    assert_eq!(
        LogConfig::parse(inner_null.as_bytes()).unwrap(),
        LogConfig::default()
    );
    let body = LogConfig::parse(br#"{"body": {"max_bytes": null, "content_types": null}}"#)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(
        (body.max_bytes, body.content_types),
        (1024, vec!["application/json".to_string()])
    );
    // `hash` with a null key is `hash` without a key.
    assert_eq!(
        refusal(r#"{"redact": {"mode": "hash", "hmac_key": null}}"#).0,
        "redact.mode"
    );
    // Elements of lists are not optional.
    assert_eq!(
        refusal(r#"{"request_headers": [null]}"#).0,
        "request_headers[0]"
    );
}

#[test]
fn lists_are_bounded_before_their_extra_elements_are_read() {
    let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!(r#""x-h{i}""#)).collect() };
    let list = |n: usize, extra: &str| {
        format!(r#"{{"request_headers": [{}{extra}]}}"#, names(n).join(","))
    };
    assert_eq!(
        LogConfig::parse(list(MAX_LOGGED_HEADERS, "").as_bytes())
            .unwrap()
            .request_headers
            .len(),
        MAX_LOGGED_HEADERS
    );
    // The 33rd element would be refused on its own; the count is what is wrong.
    let (field, reason) = refusal(&list(MAX_LOGGED_HEADERS, r#", "cookie""#));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("request_headers", "at most 32 headers")
    );
    let types: Vec<&str> = vec![r#""text/plain""#; MAX_CONTENT_TYPES + 1];
    let (field, reason) = refusal(&format!(
        r#"{{"body": {{"content_types": [{}]}}}}"#,
        types.join(",")
    ));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("body.content_types", "must list 1 to 16 media types")
    );
    let params: Vec<String> = (0..=MAX_QUERY_PARAMS)
        .map(|i| format!(r#""p{i}""#))
        .collect();
    let (field, reason) = refusal(&format!(
        r#"{{"redact": {{"query_params": [{}]}}}}"#,
        params.join(",")
    ));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("redact.query_params", "at most 64 parameters")
    );
}

#[test]
fn values_are_normalised() {
    let c = LogConfig::parse(
        br#"{
          "correlation": {"header": "X-Request-Trace"},
          "request_headers": ["User-Agent"],
          "redact": {"detectors": ["jwt", "email", "jwt"], "query_params": ["Token"]},
          "upstream_headers": {"X-Breakwater": "On"},
          "body": {"content_types": [" Application/JSON ", "text/plain"]}
        }"#,
    )
    .unwrap();
    assert_eq!(c.correlation.header, "x-request-trace");
    assert_eq!(c.request_headers, ["user-agent"]);
    assert_eq!(c.redact.detectors, [Detector::Jwt, Detector::Email]);
    assert_eq!(c.redact.query_params, ["token"]);
    assert_eq!(
        c.upstream_headers.0,
        [("x-breakwater".to_string(), "On".to_string())]
    );
    assert_eq!(
        c.body.map(|b| b.content_types),
        Some(vec![
            "application/json".to_string(),
            "text/plain".to_string()
        ])
    );
}

#[test]
fn the_default_constants_are_what_the_parser_assumes() {
    // Every default class name is valid, and gives the documented classes.
    for name in DEFAULT_ALWAYS_KEEP {
        assert!(KeepItem::parse(name).is_ok(), "{name}");
    }
    let keep = Sampling::default().always_keep;
    assert_eq!(
        keep,
        KeepClasses {
            statuses: StatusSet::from_specs(&[StatusSpec {
                low: 500,
                high: 599
            }]),
            grpc_statuses: GrpcStatusSet::default(),
            grpc_error: false,
            fallback: true,
            breaker_rejected: true,
            slow: true,
            response_flags: false,
        }
    );
    // The defaults written out parse to the defaults.
    let explicit = format!(
        r#"{{
          "correlation": {{"header": "{DEFAULT_CORRELATION_HEADER}", "generate": {DEFAULT_GENERATE}, "trust_incoming": {DEFAULT_TRUST_INCOMING}, "echo_in_response": {DEFAULT_ECHO_IN_RESPONSE}}},
          "workload_metadata": {DEFAULT_WORKLOAD_METADATA}, "request_headers": [], "response_headers": [],
          "redact": {{"detectors": {detectors:?}, "query_params": {DEFAULT_QUERY_PARAMS:?}, "mode": "mask", "max_value_bytes": {DEFAULT_MAX_VALUE_BYTES}}},
          "sampling": {{"rate": {DEFAULT_SAMPLING_RATE}, "always_keep": {DEFAULT_ALWAYS_KEEP:?}, "slow": "{DEFAULT_SLOW_MS}ms"}},
          "upstream_headers": {{}}, "separate_fields": {DEFAULT_SEPARATE_FIELDS},
          "envoy_fields": "record"
        }}"#,
        detectors = DEFAULT.iter().map(|d| d.name()).collect::<Vec<_>>(),
    );
    assert_eq!(
        LogConfig::parse(explicit.as_bytes()).unwrap(),
        LogConfig::default()
    );
}

#[test]
fn check_takes_what_serde_read() {
    let raw: RawConfig =
        breakwater_common::config::parse(br#"{"sampling": {"rate": 0.25}}"#).unwrap();
    assert_eq!(LogConfig::check(raw).unwrap().sampling.rate, 0.25);
}

/// The schema carries the parser's defaults and bounds (it is derived from the same types).
#[cfg(feature = "schema")]
#[test]
fn the_schema_has_the_defaults_and_bounds() {
    let schema = serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap();
    assert_eq!(schema["title"], "breakwater log-enrichment configuration");
    assert_eq!(schema["additionalProperties"], false);
    let def = |name: &str| schema["$defs"][name].clone();
    let property = |object: &str, key: &str| def(object)["properties"][key].clone();
    assert_eq!(
        property("correlation", "header")["default"],
        DEFAULT_CORRELATION_HEADER
    );
    assert_eq!(
        property("sampling", "rate")["default"],
        DEFAULT_SAMPLING_RATE
    );
    assert_eq!(property("sampling", "slow")["default"], "1s");
    assert_eq!(
        property("sampling", "always_keep")["default"],
        serde_json::json!(DEFAULT_ALWAYS_KEEP)
    );
    assert_eq!(property("redact", "mode")["default"], "mask");
    assert_eq!(
        property("redact", "max_value_bytes")["minimum"],
        MIN_VALUE_BYTES
    );
    assert_eq!(
        property("redact", "max_value_bytes")["maximum"],
        MAX_VALUE_BYTES
    );
    assert_eq!(property("body", "max_bytes")["maximum"], MAX_BODY_BYTES);
    assert_eq!(def("logged_headers")["maxItems"], MAX_LOGGED_HEADERS);
    assert_eq!(def("query_params")["maxItems"], MAX_QUERY_PARAMS);
    assert_eq!(
        def("redact")["allOf"][0]["then"]["required"],
        serde_json::json!(["hmac_key"])
    );
    assert_eq!(
        def("redact_mode")["oneOf"][1]["const"],
        RedactMode::Hash.as_str()
    );
    // Every key serde reads is a property of the schema.
    let keys = |object: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = object["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&schema),
        [
            "body",
            "correlation",
            "envoy_fields",
            "redact",
            "request_headers",
            "response_headers",
            "sampling",
            "separate_fields",
            "service",
            "upstream_headers",
            "workload_metadata"
        ]
    );
    assert_eq!(
        keys(&def("redact")),
        [
            "detectors",
            "hmac_key",
            "max_value_bytes",
            "mode",
            "patterns",
            "query_params"
        ]
    );
    assert_eq!(
        keys(&def("body")),
        [
            "content_types",
            "keep_fields",
            "max_bytes",
            "parse_max_bytes",
            "redact_fields"
        ]
    );
    assert_eq!(
        keys(&def("pattern")),
        ["keyword_distance", "keywords", "name", "regex", "validate"]
    );
}
