//! The record and its redaction on typical requests, natively (`make bench`). Reports
//! nanoseconds per request for the whole end-of-stream work with and without detectors, so the
//! difference is what redaction costs. The Envoy-level figure is in bench/log_enrichment.py.

// A native benchmark binary, never loaded into Envoy: the filter crates' panic lints do not apply.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use breakwater_common::host::fake::FakeHost;
use log_enrichment::config::LogConfig;
use log_enrichment::correlation::{Action, Decision};
use log_enrichment::engine::{Engine, Exchange};
use std::hint::black_box;
use std::time::Instant;

const ENRICH: &str = r#"{
  "service": {"name": "checkout", "version": "1.4.0", "environment": "prod", "region": "no-oslo-1"},
  "request_headers": ["user-agent", "accept", "x-tenant-id", "x-customer"],
  "response_headers": ["content-type"]"#;

fn h(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn exchange(path: &str, tenant: &str, customer: Option<&str>) -> Exchange {
    let mut headers = vec![
        h(":method", "GET"),
        h(":scheme", "http"),
        h(":authority", "checkout.shop.svc.cluster.local:8080"),
        h(":path", path),
        h("x-request-id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
        h("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"),
        h("accept", "application/json"),
        h("accept-language", "nb-NO,nb;q=0.9,en;q=0.8"),
        h("x-tenant-id", tenant),
        h("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        h("cookie", "session=7f3a9c1e; consent=yes"),
    ];
    if let Some(customer) = customer {
        headers.push(h("x-customer", customer));
    }
    Exchange {
        start_unix_nanos: Some(1_795_751_999_999_000_000),
        request_headers: headers,
        response_headers: vec![h(":status", "200"), h("content-type", "application/json")],
        protocol: Some(b"HTTP/1.1".to_vec()),
        status: Some(200),
        duration_nanos: Some(1_234_567),
        request_body_bytes: Some(0),
        response_body_bytes: Some(512),
        upstream_address: Some(b"10.0.3.17:8080".to_vec()),
        cluster: Some(b"outbound|8080||orders.shop.svc.cluster.local".to_vec()),
        route: Some(b"default".to_vec()),
        source_address: Some(b"10.0.1.23:51234".to_vec()),
        ..Exchange::default()
    }
}

fn nanos_per_call(engine: &Engine, host: &FakeHost, ex: &Exchange, iterations: u32) -> f64 {
    let decision = Decision {
        id: Some("4bf92f35-77b3-4da6-a3ce-929d0e0e4736".into()),
        action: Action::Kept,
    };
    let start = Instant::now();
    for _ in 0..iterations {
        let record = engine.finish(host, black_box(ex), &decision);
        black_box(record.map(|r| r.to_json()));
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let host = FakeHost::new(0);
    let enrich = Engine::new(
        LogConfig::parse(
            format!(r#"{ENRICH}, "redact": {{"detectors": [], "query_params": []}}}}"#).as_bytes(),
        )
        .unwrap(),
        &host,
    );
    let redact = Engine::new(
        LogConfig::parse(format!("{ENRICH}}}").as_bytes()).unwrap(),
        &host,
    );
    let typical = exchange("/api/v1/orders/12345?page=2&sort=desc", "acme-retail", None);
    let pii = exchange(
        "/customers/ola.nordmann%40example.no/orders?fnr=01010012356&token=s3cret&page=2",
        "card 4111 1111 1111 1111",
        Some("ola.nordmann@example.no"),
    );
    let iterations = 20_000;
    let mut rows = Vec::new();
    for (name, engine, ex) in [
        ("enrich (no detectors), typical", &enrich, &typical),
        ("redact (all detectors), typical", &redact, &typical),
        ("enrich (no detectors), with PII", &enrich, &pii),
        ("redact (all detectors), with PII", &redact, &pii),
    ] {
        nanos_per_call(engine, &host, ex, iterations / 10); // warm up
        let runs: Vec<f64> = (0..7)
            .map(|_| nanos_per_call(engine, &host, ex, iterations))
            .collect();
        rows.push((name, median(runs)));
    }
    println!("Native end-of-stream work per request (median of 7 runs × {iterations}):");
    for (name, ns) in &rows {
        println!("  {name:34} {:8.0} ns", ns);
    }
    println!(
        "  redaction cost, typical request:  {:8.0} ns",
        rows[1].1 - rows[0].1
    );
    println!(
        "  redaction cost, request with PII: {:8.0} ns",
        rows[3].1 - rows[2].1
    );
}
