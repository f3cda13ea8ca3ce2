//! The Envoy side: translates proxy-wasm callbacks into engine calls and engine decisions into
//! host calls. No policy lives here.

use crate::config::FallbackConfig;
use crate::engine::{Capture, Engine, OnResponse, Plan, ResponseView, Step, WorkerState};
use breakwater_common::abi::{self, Action, Plugin, Stream};
use breakwater_common::flags::decode_flags;
use breakwater_common::host::{parse_configuration, Envoy, Host, Level};
use breakwater_common::hostcall;
use std::cell::RefCell;
use std::rc::Rc;

/// Filter-state keys (read them as `%FILTER_STATE(wasm.<key>:PLAIN)%`).
pub const FS_RULE: &str = "breakwater.fallback.rule";
pub const FS_TRIGGER: &str = "breakwater.fallback.trigger";
pub const FS_SERVED: &str = "breakwater.fallback.served";
pub const FS_CACHE: &str = "breakwater.fallback.cache";

/// The circuit breaker's documented filter state for its decision.
const BREAKER_DECISION: &str = "breakwater.circuit_breaker.decision";

breakwater_common::export_filter!(|_context_id| -> Box<dyn Plugin> {
    Box::new(FallbackRoot {
        engine: None,
        worker: None,
    })
});

struct FallbackRoot {
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
}

impl Plugin for FallbackRoot {
    fn configure(&mut self, configuration: &[u8]) -> bool {
        let Some((config, plugin_name)) =
            parse_configuration("fallback", configuration, FallbackConfig::parse)
        else {
            return false;
        };
        let engine = Engine::new(config, &plugin_name, &Envoy);
        engine.prepare(&Envoy);
        Envoy.log(
            Level::Info,
            &format!(
                "breakwater fallback: configured {} rule(s) for plugin \"{plugin_name}\"",
                engine.rule_count()
            ),
        );
        self.engine = Some(Rc::new(engine));
        self.worker = Some(Rc::new(RefCell::new(WorkerState::default())));
        true
    }

    fn create_stream(&self) -> Box<dyn Stream> {
        Box::new(FallbackStream {
            engine: self.engine.clone(),
            worker: self.worker.clone(),
            plan: None,
            capture: None,
            replied: false,
        })
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

/// The current response, read through the host only as far as the engine asks.
struct EnvoyResponse;

impl ResponseView for EnvoyResponse {
    fn status(&self) -> Option<u32> {
        let raw = hostcall::response_header(":status")?;
        std::str::from_utf8(&raw).ok()?.parse().ok()
    }

    fn flags(&self) -> u64 {
        hostcall::property(&["response", "flags"]).map_or(0, |b| decode_flags(&b))
    }

    fn breaker_decision(&self) -> Option<Vec<u8>> {
        hostcall::property(&[BREAKER_DECISION])
    }
}

fn set_filter_state(key: &str, value: &str) {
    // A failure only loses an access-log field; the response goes on.
    let _ = hostcall::set_filter_state(key, value.as_bytes());
}

fn status_of(headers: &[(Vec<u8>, Vec<u8>)]) -> Option<u32> {
    let (_, value) = headers.iter().find(|(n, _)| n == b":status")?;
    std::str::from_utf8(value).ok()?.parse().ok()
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
                    if hostcall::send_http_response(reply.status, &headers, &reply.body).is_ok() {
                        self.replied = true;
                        set_filter_state(FS_SERVED, reply.source);
                        return true;
                    }
                    // The reply could not be sent: the original response goes on.
                    set_filter_state(FS_SERVED, "none");
                    return false;
                }
                Step::Call(call) => {
                    match hostcall::dispatch_http_call(
                        call.cluster,
                        &call.headers,
                        b"",
                        call.timeout_ms,
                    ) {
                        Ok(token) => {
                            abi::track_callout(token);
                            return true;
                        }
                        // Unknown cluster or bad headers: that source failed.
                        Err(_) => {
                            step =
                                engine.on_service_answer(&Envoy, plan, None, Vec::new(), Vec::new())
                        }
                    }
                }
                Step::Exhausted => {
                    set_filter_state(FS_SERVED, "none");
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
            set_filter_state(FS_CACHE, "stored");
        }
    }
}

impl Stream for FallbackStream {
    fn on_request_headers(&mut self, _end_of_stream: bool) -> Action {
        if let Some(engine) = &self.engine {
            self.plan = engine.on_request(&Envoy);
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
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
                &EnvoyResponse,
                hostcall::response_headers,
            )
        };
        match decision {
            OnResponse::Fallback(trigger) => {
                set_filter_state(FS_RULE, engine.rule_name(plan));
                set_filter_state(FS_TRIGGER, trigger.as_str());
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

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(capture) = self.capture.as_mut() else {
            return Action::Continue;
        };
        if !capture.is_abandoned() {
            match hostcall::response_body(body_size) {
                Ok(chunk) => capture.push(&chunk),
                Err(_) => self.capture = None,
            }
        }
        if end_of_stream {
            if let Some(engine) = self.engine.clone() {
                self.store(&engine);
            }
        }
        Action::Continue
    }

    fn on_http_call_response(&mut self, _token: u32, body_size: usize) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let headers = hostcall::http_call_response_headers();
        // A timeout or reset arrives with no headers: no status. An answer larger than the
        // filter is willing to hold counts as a failure rather than being read.
        let too_large = body_size > engine.max_service_body();
        let status = status_of(&headers).filter(|_| !too_large);
        let body = if too_large {
            Vec::new()
        } else {
            hostcall::http_call_response_body(body_size).unwrap_or_default()
        };
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let step = engine.on_service_answer(&Envoy, plan, status, headers, body);
        if !self.run(&engine, step) {
            // Nothing replaced it: let the paused original response continue.
            let _ = hostcall::resume_response();
        }
    }
}
