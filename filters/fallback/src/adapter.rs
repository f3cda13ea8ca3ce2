//! The Envoy side, on the proxy-wasm SDK: reads what Envoy reports, hands it to the engine,
//! and carries out the engine's steps (a local reply, a callout, resuming). No policy lives
//! here.
//!
//! Host calls per request: a matched request costs what its match needs and its
//! `content-type` (a gRPC call or not); its response costs `:status`, and `response.flags`,
//! the breaker's decision or (gRPC calls only) `grpc-status` only when a trigger needs them;
//! a good response worth keeping also reads all response headers and its body chunks. Body
//! callbacks return at once unless a response is being kept. A request whose rule has no
//! source for its kind costs nothing after its `content-type`.

use crate::config::FallbackConfig;
use crate::engine::{Capture, Engine, OnResponse, Plan, ResponseView, Step, WorkerState};
use breakwater_common::filter_state::{
    fallback as keys, CacheEvent, FallbackAnswer, FallbackServed,
};
use breakwater_common::flags::decode_flags;
use breakwater_common::grpc;
use breakwater_envoy::{self as envoy, shim, Envoy};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;

/// `%RESPONSE_CODE_DETAILS%` of the fallback's replies: this prefix and the source.
pub const DETAILS_PREFIX: &str = "breakwater_fallback_";

proxy_wasm::main! {{
    envoy::start(|_| -> Box<dyn RootContext> {
        Box::new(FallbackRoot {
            engine: None,
            worker: None,
        })
    });
}}

struct FallbackRoot {
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
}

impl Context for FallbackRoot {}

impl RootContext for FallbackRoot {
    fn on_configure(&mut self, _configuration_size: usize) -> bool {
        let Some((config, plugin_name)) = envoy::configure("fallback", FallbackConfig::parse)
        else {
            return false;
        };
        let engine = Engine::new(config, &plugin_name, &Envoy);
        engine.prepare(&Envoy);
        log::info!(
            "breakwater fallback: configured {} rule(s) for plugin \"{plugin_name}\"",
            engine.rule_count()
        );
        self.engine = Some(Rc::new(engine));
        self.worker = Some(Rc::new(RefCell::new(WorkerState::default())));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FallbackStream {
            engine: self.engine.clone(),
            worker: self.worker.clone(),
            plan: None,
            capture: None,
            replied: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FallbackStream {
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
    /// Set when a rule owns the request.
    plan: Option<Plan>,
    /// A good response being collected for the cache.
    capture: Option<Capture>,
    /// A fallback reply was sent: at most one local reply per stream.
    replied: bool,
}

/// The current response, read through the host only as far as the engine asks. Used only in
/// `on_http_response_headers`, while the response headers exist.
struct EnvoyResponse {
    /// The headers end the stream: for gRPC, a trailers-only response, the only one whose
    /// headers carry the call's status.
    end_of_stream: bool,
}

impl ResponseView for EnvoyResponse {
    fn status(&self) -> Option<u32> {
        let raw = envoy::response_header(":status")?;
        std::str::from_utf8(&raw).ok()?.parse().ok()
    }

    fn flags(&self) -> u64 {
        envoy::property(&["response", "flags"]).map_or(0, |b| decode_flags(&b))
    }

    fn breaker_decision(&self) -> Option<Vec<u8>> {
        envoy::property(&[breakwater_common::filter_state::breaker::CALL])
    }

    fn grpc_status(&self) -> Option<u32> {
        if !self.end_of_stream {
            return None;
        }
        // The status a gRPC client sees; the HTTP status is read again only when the response
        // has no grpc-status (then it decides, as in gRPC's mapping).
        match envoy::response_header("grpc-status") {
            Some(value) => Some(grpc::status_of_ended_response(Some(&value), None)),
            None => Some(grpc::status_of_ended_response(None, self.status())),
        }
    }
}

fn status_of(headers: &[(Vec<u8>, Vec<u8>)]) -> Option<u32> {
    let (_, value) = headers.iter().find(|(n, _)| n == b":status")?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// What the fallback did for a triggered response, in one filter-state value (written once the
/// source that answered, or that none did, is known).
fn write_answer(engine: &Engine, plan: &Plan, served: &str) {
    let value = FallbackAnswer::encode(served, plan.trigger, engine.rule_name(plan));
    envoy::set_filter_state(keys::ANSWER, value.as_bytes());
}

impl FallbackStream {
    /// Carries out engine steps until one replies, waits for a callout, or gives up.
    /// Returns whether the response stays paused.
    fn run<'e>(&mut self, engine: &'e Engine, mut step: Step<'e>) -> bool {
        let Some(plan) = self.plan.as_mut() else {
            return false;
        };
        loop {
            match step {
                Step::Reply(reply) => {
                    let headers: Vec<(&str, &[u8])> = reply
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_slice()))
                        .collect();
                    // `breakwater_fallback_static`, …, `breakwater_fallback_grpc`.
                    let details = format!("{DETAILS_PREFIX}{}", reply.source);
                    // With a gRPC status, Envoy answers the gRPC call trailers-only: that
                    // grpc-status, the body as grpc-message, the headers as metadata.
                    if shim::send_local_response(
                        reply.status,
                        &details,
                        &headers,
                        &reply.body,
                        reply.grpc_status,
                    )
                    .is_ok()
                    {
                        self.replied = true;
                        write_answer(engine, plan, reply.source);
                        return true;
                    }
                    // The reply could not be sent: the original response goes on.
                    write_answer(engine, plan, FallbackServed::None.as_str());
                    return false;
                }
                Step::Call(call) => {
                    match envoy::dispatch_http_call(call.cluster, call.headers, call.timeout_ms) {
                        Ok(_) => return true,
                        // Unknown cluster or bad headers: that source failed.
                        Err(_) => {
                            step =
                                engine.on_service_answer(&Envoy, plan, None, Vec::new(), Vec::new())
                        }
                    }
                }
                Step::Exhausted => {
                    write_answer(engine, plan, FallbackServed::None.as_str());
                    return false;
                }
            }
        }
    }

    fn store(&mut self, engine: &Engine) {
        let (Some(capture), Some(plan)) = (self.capture.take(), &self.plan) else {
            return;
        };
        if engine.store(&Envoy, plan, capture) {
            envoy::set_filter_state(keys::CACHE, CacheEvent::Stored.as_str().as_bytes());
        }
    }
}

impl Context for FallbackStream {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        // A timeout or reset arrives with no headers: no status. An answer larger than the
        // filter is willing to hold counts as a failure rather than being read.
        let headers = shim::header_map_pairs(MapType::HttpCallResponseHeaders);
        let too_large = body_size > engine.max_service_body();
        let status = status_of(&headers).filter(|_| !too_large);
        let body = if too_large {
            Vec::new()
        } else {
            envoy::http_call_response_body(body_size)
        };
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let step = engine.on_service_answer(&Envoy, plan, status, headers, body);
        if !self.run(&engine, step) {
            // Nothing replaced it: let the paused original response continue.
            envoy::resume_response();
        }
    }
}

impl HttpContext for FallbackStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(engine) = &self.engine {
            self.plan = engine.on_request(&Envoy);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let (Some(engine), Some(worker)) = (self.engine.clone(), self.worker.clone()) else {
            return Action::Continue;
        };
        if self.replied {
            return Action::Continue;
        }
        let Some(plan) = self.plan.as_mut() else {
            return Action::Continue;
        };
        let decision = {
            let Ok(mut worker) = worker.try_borrow_mut() else {
                return Action::Continue;
            };
            engine.on_response_headers(
                &Envoy,
                &mut worker,
                plan,
                &EnvoyResponse { end_of_stream },
                || shim::header_map_pairs(MapType::HttpResponseHeaders),
            )
        };
        match decision {
            OnResponse::Fallback(_) => {
                let step = engine.next_step(&Envoy, plan);
                if self.run(&engine, step) {
                    Action::Pause
                } else {
                    Action::Continue
                }
            }
            OnResponse::Capture(capture) => {
                self.capture = Some(capture);
                if end_of_stream {
                    self.store(&engine);
                }
                Action::Continue
            }
            OnResponse::Pass => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(capture) = self.capture.as_mut() else {
            return Action::Continue;
        };
        if !capture.is_abandoned() && body_size > 0 {
            match envoy::response_body(body_size) {
                Some(chunk) => capture.push(&chunk),
                // A chunk that cannot be read must not be kept as a shorter body.
                None => self.capture = None,
            }
        }
        if end_of_stream {
            if let Some(engine) = self.engine.clone() {
                self.store(&engine);
            }
        }
        Action::Continue
    }
}
