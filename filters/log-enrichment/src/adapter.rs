//! The Envoy side, on the proxy-wasm SDK: reads what Envoy reports, hands it to the engine,
//! and writes the engine's answers back as headers and filter state. No policy lives here.
//!
//! Host calls per request: the correlation header (and what the configuration asks for) at
//! request headers, the response's content type when bodies are captured, and at the end of
//! the stream the request (and, when logged, response) header maps, the other filters' filter
//! state and the attributes the record holds (`response.grpc_status` only for gRPC calls), then
//! one filter-state write of the record. Body callbacks return at once unless `body` is
//! configured.

use crate::config::LogConfig;
use crate::correlation::{uuid_v4, Action as CorrelationAction, Decision};
use crate::engine::{is_grpc_call, BodyCapture, BreakerView, Engine, Exchange, FallbackView};
use breakwater_common::filter_state::{breaker, fallback, log as keys};
use breakwater_common::flags::{decode_flags, decode_u64};
use breakwater_common::rng::Rng;
use breakwater_envoy::{self as envoy, shim, Envoy};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    envoy::start(|context_id| -> Box<dyn RootContext> {
        Box::new(LogRoot {
            engine: None,
            rng: Rc::new(RefCell::new(Rng::new(
                envoy::now_nanos() ^ u64::from(context_id),
            ))),
        })
    });
}}

struct LogRoot {
    engine: Option<Rc<Engine>>,
    /// Fallback randomness should the host refuse `random_get`.
    rng: Rc<RefCell<Rng>>,
}

impl Context for LogRoot {}

impl RootContext for LogRoot {
    fn on_configure(&mut self, _configuration_size: usize) -> bool {
        let Some((config, plugin_name)) = envoy::configure("log-enrichment", LogConfig::parse)
        else {
            return false;
        };
        let mut engine = Engine::new(config, &Envoy);
        engine.load_workload(envoy::property);
        log::info!("breakwater log-enrichment: configured plugin \"{plugin_name}\"");
        self.engine = Some(Rc::new(engine));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(LogStream {
            engine: self.engine.clone(),
            rng: self.rng.clone(),
            correlation: None,
            request_id: None,
            request_body: None,
            response_body: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct LogStream {
    engine: Option<Rc<Engine>>,
    rng: Rc<RefCell<Rng>>,
    correlation: Option<Decision>,
    /// Kept only to echo it in the response.
    request_id: Option<Vec<u8>>,
    request_body: Option<BodyCapture>,
    response_body: Option<BodyCapture>,
}

impl LogStream {
    fn fresh_id(&self) -> String {
        let (high, low) = match (envoy::random_u64(), envoy::random_u64()) {
            (Some(high), Some(low)) => (high, low),
            _ => {
                let mut rng = self.rng.borrow_mut();
                (rng.next_u64(), rng.next_u64())
            }
        };
        uuid_v4(high, low)
    }
}

/// Reads a body chunk into a capture (only as much as it still wants).
fn capture_chunk(
    capture: &mut Option<BodyCapture>,
    size: usize,
    end_of_stream: bool,
    read: fn(usize) -> Option<Vec<u8>>,
) {
    if let Some(capture) = capture.as_mut() {
        let wanted = capture.wanted(size);
        let bytes = if wanted > 0 {
            read(wanted).unwrap_or_default()
        } else {
            Vec::new()
        };
        capture.add(&bytes, size, end_of_stream);
    }
}

fn property_u64(path: &[&str]) -> Option<u64> {
    envoy::property(path).as_deref().and_then(decode_u64)
}

impl Context for LogStream {}

impl HttpContext for LogStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(engine) = self.engine.clone() else {
            return Action::Continue;
        };
        let config = engine.config();
        let header = config.correlation.header.as_str();
        let incoming = envoy::request_header(header);
        let decision = engine.on_request(&Envoy, incoming.as_deref(), || self.fresh_id());
        match &decision.id {
            // Set even when kept: a repeated header collapses to the one validated value.
            Some(id) => envoy::replace_request_header(header, id.as_bytes()),
            // Not trusted and nothing to put in its place: it does not travel on.
            None if incoming.is_some() => envoy::remove_request_header(header),
            None => {}
        }
        for (name, value) in &config.upstream_headers.0 {
            envoy::replace_request_header(name, value.as_bytes());
        }
        if config.correlation.echo_in_response {
            self.request_id = envoy::request_header("x-request-id");
        }
        if config.body.is_some() {
            self.request_body = engine.body_capture(
                envoy::request_header("content-type").as_deref(),
                envoy::request_header("content-encoding").as_deref(),
            );
        }
        self.correlation = Some(decision);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        capture_chunk(
            &mut self.request_body,
            body_size,
            end_of_stream,
            envoy::request_body,
        );
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(engine) = self.engine.clone() else {
            return Action::Continue;
        };
        let config = engine.config();
        if config.correlation.echo_in_response {
            if let Some(id) = self.correlation.as_ref().and_then(|d| d.id.as_ref()) {
                envoy::replace_response_header(&config.correlation.header, id.as_bytes());
            }
            if let Some(request_id) = &self.request_id {
                envoy::replace_response_header("x-request-id", request_id);
            }
        }
        if config.body.is_some() {
            self.response_body = engine.body_capture(
                envoy::response_header("content-type").as_deref(),
                envoy::response_header("content-encoding").as_deref(),
            );
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        capture_chunk(
            &mut self.response_body,
            body_size,
            end_of_stream,
            envoy::response_body,
        );
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let correlation = self.correlation.take().unwrap_or(Decision {
            id: None,
            action: CorrelationAction::Absent,
        });
        let breaker = envoy::property(&[breaker::DECISION]).map(|decision| BreakerView {
            decision,
            name: envoy::property(&[breaker::NAME]).unwrap_or_default(),
            state: envoy::property(&[breaker::STATE]).unwrap_or_default(),
        });
        let fallback = envoy::property(&[fallback::SERVED]).map(|served| FallbackView {
            served,
            rule: envoy::property(&[fallback::RULE]).unwrap_or_default(),
            trigger: envoy::property(&[fallback::TRIGGER]).unwrap_or_default(),
        });
        // In `on_log` a map that is gone (the client left) is empty, never an error.
        let request_headers = shim::header_map_pairs(MapType::HttpRequestHeaders);
        // The final response's status (a CEL int64: eight little-endian bytes; absent when
        // there was no response). Read for gRPC calls only: HTTP requests pay no host call.
        let grpc_status = if is_grpc_call(&request_headers) {
            property_u64(&["response", "grpc_status"]).map(|v| i64::from_le_bytes(v.to_le_bytes()))
        } else {
            None
        };
        let exchange = Exchange {
            start_unix_nanos: property_u64(&["request", "time"]),
            request_headers,
            response_headers: if engine.config().response_headers.is_empty() {
                Vec::new()
            } else {
                shim::header_map_pairs(MapType::HttpResponseHeaders)
            },
            protocol: envoy::property(&["request", "protocol"]),
            status: property_u64(&["response", "code"]).and_then(|c| u32::try_from(c).ok()),
            grpc_status,
            response_flags: envoy::property(&["response", "flags"]).map_or(0, |b| decode_flags(&b)),
            code_details: envoy::property(&["response", "code_details"]),
            duration_nanos: property_u64(&["request", "duration"]),
            request_body_bytes: property_u64(&["request", "size"]),
            response_body_bytes: property_u64(&["response", "size"]),
            upstream_address: envoy::property(&["upstream", "address"]),
            cluster: envoy::property(&["xds", "cluster_name"]),
            route: envoy::property(&["xds", "route_name"]),
            source_address: envoy::property(&["source", "address"]),
            breaker,
            fallback,
            request_body: self.request_body.take(),
            response_body: self.response_body.take(),
        };
        let Some(record) = engine.finish(&Envoy, &exchange, &correlation) else {
            return;
        };
        envoy::set_filter_state(keys::RECORD, record.to_json().as_bytes());
        if engine.config().separate_fields {
            let mut key = String::with_capacity(64);
            for (field, value) in &record.fields {
                if let Some(text) = value.plain() {
                    key.clear();
                    key.push_str(keys::FIELD_PREFIX);
                    key.push_str(field);
                    envoy::set_filter_state(&key, text.as_bytes());
                }
            }
        }
    }
}
