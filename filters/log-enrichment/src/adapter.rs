//! The Envoy side: reads what Envoy reports, hands it to the engine, and writes the engine's
//! answers back as headers and filter state. No policy lives here.

use crate::config::LogConfig;
use crate::correlation::{uuid_v4, Action as CorrelationAction, Decision};
use crate::engine::{BodyCapture, BreakerView, Engine, Exchange, FallbackView};
use breakwater_common::abi::{Action, Plugin, Stream};
use breakwater_common::flags::{decode_flags, decode_u64};
use breakwater_common::host::{parse_configuration, Envoy, Host, Level};
use breakwater_common::hostcall;
use breakwater_common::rng::Rng;
use std::cell::RefCell;
use std::rc::Rc;

/// The whole record as one JSON string: `%FILTER_STATE(wasm.breakwater_log:PLAIN)%`.
pub const FS_RECORD: &str = "breakwater_log";
/// Prefix of the per-field keys: `%FILTER_STATE(wasm.breakwater.log.url.path:PLAIN)%`.
pub const FS_FIELD_PREFIX: &str = "breakwater.log.";

/// The other filters' documented filter state.
const BREAKER_DECISION: &str = "breakwater.circuit_breaker.decision";
const BREAKER_NAME: &str = "breakwater.circuit_breaker.breaker";
const BREAKER_STATE: &str = "breakwater.circuit_breaker.state";
const FALLBACK_SERVED: &str = "breakwater.fallback.served";
const FALLBACK_RULE: &str = "breakwater.fallback.rule";
const FALLBACK_TRIGGER: &str = "breakwater.fallback.trigger";

breakwater_common::export_filter!(|context_id| -> Box<dyn Plugin> {
    Box::new(LogRoot {
        engine: None,
        rng: Rc::new(RefCell::new(Rng::new(
            hostcall::now_nanos() ^ u64::from(context_id),
        ))),
    })
});

struct LogRoot {
    engine: Option<Rc<Engine>>,
    /// Fallback randomness should the host refuse `random_get`.
    rng: Rc<RefCell<Rng>>,
}

impl Plugin for LogRoot {
    fn configure(&mut self, configuration: &[u8]) -> bool {
        let Some((config, plugin_name)) =
            parse_configuration("log-enrichment", configuration, LogConfig::parse)
        else {
            return false;
        };
        let mut engine = Engine::new(config, &Envoy);
        engine.load_workload(hostcall::property);
        Envoy.log(
            Level::Info,
            &format!("breakwater log-enrichment: configured plugin \"{plugin_name}\""),
        );
        self.engine = Some(Rc::new(engine));
        true
    }

    fn create_stream(&self) -> Box<dyn Stream> {
        Box::new(LogStream {
            engine: self.engine.clone(),
            rng: self.rng.clone(),
            correlation: None,
            request_id: None,
            request_body: None,
            response_body: None,
        })
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
        let mut halves = [[0u8; 8]; 2];
        let random = halves
            .iter_mut()
            .all(|half| hostcall::random_bytes(half).is_ok());
        let [high, low] = if random {
            halves.map(u64::from_le_bytes)
        } else {
            let mut rng = self.rng.borrow_mut();
            [rng.next_u64(), rng.next_u64()]
        };
        uuid_v4(high, low)
    }
}

/// Reads a body chunk into a capture (only as much as it still wants).
fn capture_chunk(
    capture: &mut Option<BodyCapture>,
    size: usize,
    end_of_stream: bool,
    read: fn(usize) -> Result<Vec<u8>, hostcall::Status>,
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

fn set_filter_state(key: &str, value: &[u8]) {
    // A failure only loses an access-log field.
    let _ = hostcall::set_filter_state(key, value);
}

fn property_u64(path: &[&str]) -> Option<u64> {
    hostcall::property(path).as_deref().and_then(decode_u64)
}

impl Stream for LogStream {
    fn on_request_headers(&mut self, _end_of_stream: bool) -> Action {
        let Some(engine) = self.engine.clone() else {
            return Action::Continue;
        };
        let config = engine.config();
        let header = config.correlation.header.as_str();
        let incoming = hostcall::request_header(header);
        let decision = engine.on_request(&Envoy, incoming.as_deref(), || self.fresh_id());
        match &decision.id {
            // Set even when kept: a repeated header collapses to the one validated value.
            Some(id) => {
                let _ = hostcall::replace_request_header(header, id.as_bytes());
            }
            // Not trusted and nothing to put in its place: it does not travel on.
            None if incoming.is_some() => {
                let _ = hostcall::remove_request_header(header);
            }
            None => {}
        }
        for (name, value) in &config.upstream_headers.0 {
            let _ = hostcall::replace_request_header(name, value.as_bytes());
        }
        if config.correlation.echo_in_response {
            self.request_id = hostcall::request_header("x-request-id");
        }
        if config.body.is_some() {
            self.request_body = engine.body_capture(
                hostcall::request_header("content-type").as_deref(),
                hostcall::request_header("content-encoding").as_deref(),
            );
        }
        self.correlation = Some(decision);
        Action::Continue
    }

    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        capture_chunk(
            &mut self.request_body,
            body_size,
            end_of_stream,
            hostcall::request_body,
        );
        Action::Continue
    }

    fn on_response_headers(&mut self, _end_of_stream: bool) -> Action {
        let Some(engine) = self.engine.clone() else {
            return Action::Continue;
        };
        let config = engine.config();
        if config.correlation.echo_in_response {
            if let Some(id) = self.correlation.as_ref().and_then(|d| d.id.as_ref()) {
                let _ =
                    hostcall::replace_response_header(&config.correlation.header, id.as_bytes());
            }
            if let Some(request_id) = &self.request_id {
                let _ = hostcall::replace_response_header("x-request-id", request_id);
            }
        }
        if config.body.is_some() {
            self.response_body = engine.body_capture(
                hostcall::response_header("content-type").as_deref(),
                hostcall::response_header("content-encoding").as_deref(),
            );
        }
        Action::Continue
    }

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        capture_chunk(
            &mut self.response_body,
            body_size,
            end_of_stream,
            hostcall::response_body,
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
        let breaker = hostcall::property(&[BREAKER_DECISION]).map(|decision| BreakerView {
            decision,
            name: hostcall::property(&[BREAKER_NAME]).unwrap_or_default(),
            state: hostcall::property(&[BREAKER_STATE]).unwrap_or_default(),
        });
        let fallback = hostcall::property(&[FALLBACK_SERVED]).map(|served| FallbackView {
            served,
            rule: hostcall::property(&[FALLBACK_RULE]).unwrap_or_default(),
            trigger: hostcall::property(&[FALLBACK_TRIGGER]).unwrap_or_default(),
        });
        let exchange = Exchange {
            start_unix_nanos: property_u64(&["request", "time"]),
            request_headers: hostcall::request_headers(),
            response_headers: if engine.config().response_headers.is_empty() {
                Vec::new()
            } else {
                hostcall::response_headers()
            },
            protocol: hostcall::property(&["request", "protocol"]),
            status: property_u64(&["response", "code"]).and_then(|c| u32::try_from(c).ok()),
            response_flags: hostcall::property(&["response", "flags"])
                .map_or(0, |b| decode_flags(&b)),
            code_details: hostcall::property(&["response", "code_details"]),
            duration_nanos: property_u64(&["request", "duration"]),
            request_body_bytes: property_u64(&["request", "size"]),
            response_body_bytes: property_u64(&["response", "size"]),
            upstream_address: hostcall::property(&["upstream", "address"]),
            cluster: hostcall::property(&["xds", "cluster_name"]),
            route: hostcall::property(&["xds", "route_name"]),
            source_address: hostcall::property(&["source", "address"]),
            breaker,
            fallback,
            request_body: self.request_body.take(),
            response_body: self.response_body.take(),
        };
        let Some(record) = engine.finish(&Envoy, &exchange, &correlation) else {
            return;
        };
        set_filter_state(FS_RECORD, record.to_json().as_bytes());
        if engine.config().separate_fields {
            let mut key = String::with_capacity(64);
            for (field, value) in &record.fields {
                if let Some(text) = value.plain() {
                    key.clear();
                    key.push_str(FS_FIELD_PREFIX);
                    key.push_str(field);
                    set_filter_state(&key, text.as_bytes());
                }
            }
        }
    }
}
