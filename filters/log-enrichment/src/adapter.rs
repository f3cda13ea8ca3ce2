//! The Envoy side, on the proxy-wasm SDK: reads what Envoy reports, hands it to the engine,
//! and writes the engine's answers back as headers and filter state. No policy lives here.
//!
//! Host calls per request: the correlation header (and what the configuration asks for) at
//! request headers, with `x-request-id` when the sampling rate is below 1 (the rate's half of
//! the decision is taken then); the response's content type when bodies are captured. At the
//! end of the stream, a request outside the rate reads only what the `always_keep` classes
//! need, and nothing more unless one keeps it (what it read is not read again); a logged one
//! reads the request (and, when logged, response) header maps, the other filters' filter state
//! and the attributes the record holds (`response.grpc_status` only for gRPC calls; under
//! `envoy_fields: "access_log"` none of the ten the access log prints), then writes the record
//! in one filter-state value. Body callbacks return at once unless `body` is configured.

use crate::config::LogConfig;
use crate::correlation::{uuid_v4, Action as CorrelationAction, Decision};
use crate::engine::{is_grpc_call, BodyCapture, BreakerView, Engine, Exchange, FallbackView};
use crate::sampling::{KeepInputs, Kept};
use breakwater_common::filter_state::{
    breaker, fallback, log as keys, BreakerCall, FallbackAnswer,
};
use breakwater_common::flags::{decode_flags, decode_u64};
use breakwater_common::grpc;
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
            in_rate: None,
            grpc: false,
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
    /// The sampling rate's decision, taken when the request arrived (`None`: rate 1, or the
    /// filter was not configured then).
    in_rate: Option<bool>,
    /// A gRPC call; read at request time only for a request outside the rate whose
    /// `always_keep` classes ask about gRPC.
    grpc: bool,
    request_body: Option<BodyCapture>,
    response_body: Option<BodyCapture>,
}

impl LogStream {
    fn fresh_id(&self) -> String {
        let (high, low) = match envoy::random_u128() {
            Some(bits) => ((bits >> 64) as u64, bits as u64),
            None => {
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

// `on_log` readers, for the record and for the short path of a request outside the rate.

fn status() -> Option<u32> {
    property_u64(&["response", "code"]).and_then(|c| u32::try_from(c).ok())
}

/// The final response's gRPC status (a CEL int64: eight little-endian bytes; absent when there
/// was no response).
fn grpc_status() -> Option<i64> {
    property_u64(&["response", "grpc_status"]).map(|v| i64::from_le_bytes(v.to_le_bytes()))
}

fn response_flags() -> u64 {
    envoy::property(&["response", "flags"]).map_or(0, |b| decode_flags(&b))
}

fn duration_nanos() -> Option<u64> {
    property_u64(&["request", "duration"])
}

/// The breaker's filter state (one value: decision, state and name).
fn breaker_view() -> Option<BreakerView> {
    let value = envoy::property(&[breaker::CALL])?;
    let call = BreakerCall::parse(&value);
    Some(BreakerView {
        decision: call.decision.to_vec(),
        name: call.breaker.to_vec(),
        state: call.state.to_vec(),
    })
}

/// The fallback's filter state (one value: served, trigger and rule).
fn fallback_view() -> Option<FallbackView> {
    let value = envoy::property(&[fallback::ANSWER])?;
    let answer = FallbackAnswer::parse(&value);
    Some(FallbackView {
        served: answer.served.to_vec(),
        rule: answer.rule.to_vec(),
        trigger: answer.trigger.to_vec(),
    })
}

impl LogStream {
    /// End of stream, outside the sampling rate: reads only what the `always_keep` classes
    /// need, and says which one keeps the request, if one does; with what it read (`needs`
    /// says which fields), for the record to reuse.
    fn kept_outside_rate(&self, engine: &Engine) -> (Option<Kept>, Exchange, KeepInputs) {
        let needs = engine.keep_inputs();
        let grpc = needs.grpc && self.grpc;
        let partial = Exchange {
            status: needs.status.then(status).flatten(),
            grpc_status: grpc.then(grpc_status).flatten(),
            response_flags: if needs.response_flags {
                response_flags()
            } else {
                0
            },
            duration_nanos: needs.duration.then(duration_nanos).flatten(),
            breaker: needs.breaker.then(breaker_view).flatten(),
            fallback: needs.fallback.then(fallback_view).flatten(),
            ..Exchange::default()
        };
        let kept = engine.kept_outside_rate(&Envoy, &partial, grpc);
        (kept, partial, needs)
    }
}

/// A field the sampling decision already read (`already`), or else read now.
fn or_read<T>(already: bool, value: T, read: impl FnOnce() -> T) -> T {
    if already {
        value
    } else {
        read()
    }
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
        // `x-request-id` as the end of the stream will see it: this filter's own value when
        // it is the correlation header.
        let request_id = if !(config.correlation.echo_in_response || engine.samples()) {
            None
        } else if header.eq_ignore_ascii_case("x-request-id") {
            decision.id.as_ref().map(|id| id.as_bytes().to_vec())
        } else {
            envoy::request_header("x-request-id")
        };
        if engine.samples() {
            let key = request_id
                .as_deref()
                .or(decision.id.as_deref().map(str::as_bytes));
            let in_rate = engine.in_rate(key);
            self.in_rate = Some(in_rate);
            if !in_rate && engine.keep_inputs().grpc {
                self.grpc =
                    envoy::request_header("content-type").is_some_and(|v| grpc::is_grpc(&v));
            }
        }
        if config.correlation.echo_in_response {
            self.request_id = request_id;
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
        // What deciding sampling outside the rate read is not read again for the record.
        let (decided, read, already) = match self.in_rate {
            Some(false) => match self.kept_outside_rate(&engine) {
                (Some(kept), read, already) => (Some(kept), read, already),
                (None, ..) => return,
            },
            // Inside the rate (`Some(true)`), or decided with the record (`None`: rate 1).
            in_rate => (
                in_rate.map(|_| Kept::Sampled),
                Exchange::default(),
                KeepInputs::default(),
            ),
        };
        // In `on_log` a map that is gone (the client left) is empty, never an error.
        let request_headers = shim::header_map_pairs(MapType::HttpRequestHeaders);
        let grpc = is_grpc_call(&request_headers);
        // Read for gRPC calls only: HTTP requests pay no host call for it.
        let grpc_status = or_read(already.grpc, read.grpc_status, || {
            grpc.then(grpc_status).flatten()
        });
        // Under `envoy_fields: "access_log"` the access log prints these itself.
        let envoy_fields = engine.records_envoy_fields();
        let property_if = |path: &[&str]| envoy_fields.then(|| envoy::property(path)).flatten();
        let property_u64_if = |path: &[&str]| envoy_fields.then(|| property_u64(path)).flatten();
        let exchange = Exchange {
            start_unix_nanos: property_u64_if(&["request", "time"]),
            request_headers,
            response_headers: if engine.config().response_headers.is_empty() {
                Vec::new()
            } else {
                shim::header_map_pairs(MapType::HttpResponseHeaders)
            },
            protocol: property_if(&["request", "protocol"]),
            status: or_read(already.status, read.status, || {
                envoy_fields.then(status).flatten()
            }),
            grpc_status,
            response_flags: or_read(already.response_flags, read.response_flags, || {
                if envoy_fields {
                    response_flags()
                } else {
                    0
                }
            }),
            code_details: envoy::property(&["response", "code_details"]),
            duration_nanos: or_read(already.duration, read.duration_nanos, || {
                envoy_fields.then(duration_nanos).flatten()
            }),
            request_body_bytes: property_u64_if(&["request", "size"]),
            response_body_bytes: property_u64_if(&["response", "size"]),
            upstream_address: property_if(&["upstream", "address"]),
            cluster: property_if(&["xds", "cluster_name"]),
            route: property_if(&["xds", "route_name"]),
            source_address: envoy::property(&["source", "address"]),
            breaker: or_read(already.breaker, read.breaker, breaker_view),
            fallback: or_read(already.fallback, read.fallback, fallback_view),
            request_body: self.request_body.take(),
            response_body: self.response_body.take(),
        };
        let Some(record) = engine.finish_given(&Envoy, &exchange, &correlation, decided, grpc)
        else {
            return;
        };
        envoy::set_filter_state(keys::RECORD, engine.record_text(&record).as_bytes());
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
