//! The Envoy side, on the proxy-wasm SDK: translates callbacks into engine calls and engine
//! decisions into host calls. No policy lives here.
//!
//! Host calls per request: a matched, closed breaker reads what its match and split need,
//! reads the shared state, reads `content-type` (is it a gRPC call? not when the method is
//! known and not POST), writes one filter-state value, reads `:status` at response headers (and
//! a gRPC call's `grpc-status`, there or in the trailers), the clock there and at the end, and
//! at the end `response.flags`, then writes the outcome to the shared state (without reading it
//! again when no other call wrote it since this one's admission) and to filter state. A
//! rejection writes one value, reads `content-type` and sends the reply. The SDK's other
//! callbacks (body chunks) return at once. Watching a call (`hang_after`, release) costs no
//! host call, except switching the worker's tick on for the first one; while it runs (every
//! [`TICK_MS`], only while calls are watched) the tick reads the shared state of each key with
//! calls due for release, and answers those calls on their own streams. `make bench` counts
//! these calls per path (bench/host_calls.py).

use crate::config::BreakerConfig;
use crate::engine::{Engine, RequestVerdict, Ticket, WorkerState};
use breakwater_common::filter_state::{breaker as keys, BreakerCall, BreakerDecision};
use breakwater_common::flags::decode_flags;
use breakwater_common::grpc;
use breakwater_envoy::{self as envoy, shim, Envoy};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

/// `%RESPONSE_CODE_DETAILS%` of the breaker's rejections.
pub const REJECTED_DETAILS: &str = "breakwater_circuit_open";
/// `%RESPONSE_CODE_DETAILS%` of calls answered while they waited, because their key opened.
pub const RELEASED_DETAILS: &str = "breakwater_circuit_released";
/// How often a worker that watches calls checks them (hang detection and release).
pub const TICK_MS: u64 = 50;

proxy_wasm::main! {{
    envoy::start(|context_id| -> Box<dyn RootContext> {
        Box::new(BreakerRoot {
            context_id,
            engine: None,
            worker: None,
        })
    });
}}

struct BreakerRoot {
    /// Seeds this worker's jitter source, together with the clock.
    context_id: u32,
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
}

impl Context for BreakerRoot {}

impl RootContext for BreakerRoot {
    fn on_configure(&mut self, _configuration_size: usize) -> bool {
        let Some((config, plugin_name)) = envoy::configure("circuit-breaker", BreakerConfig::parse)
        else {
            return false;
        };
        let engine = Engine::new(config, &plugin_name, &Envoy);
        engine.prepare(&Envoy);
        log::info!(
            "breakwater circuit-breaker: configured {} breaker(s) for plugin \"{plugin_name}\"",
            engine.breaker_count()
        );
        let seed = envoy::now_nanos() ^ u64::from(self.context_id);
        self.worker = Some(Rc::new(RefCell::new(WorkerState::new(&engine, seed))));
        self.engine = Some(Rc::new(engine));
        true
    }

    fn on_tick(&mut self) {
        let (Some(engine), Some(worker)) = (&self.engine, &self.worker) else {
            envoy::set_tick_period_ms(0);
            return;
        };
        let releases = {
            let Ok(mut worker) = worker.try_borrow_mut() else {
                return;
            };
            let releases = engine.tick(&Envoy, &mut worker);
            if !worker.watching() {
                worker.ticking = false;
                envoy::set_tick_period_ms(0);
            }
            releases
        };
        for release in releases {
            // The stream may have ended since: then Envoy does not know it any more.
            if envoy::set_effective_context(release.context_id) {
                write_decision(
                    engine.breaker_name(&release.rejection.breaker()),
                    BreakerDecision::Released,
                    release.rejection.state,
                );
                send_reply(engine, &release.rejection, release.grpc, RELEASED_DETAILS);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BreakerStream {
            context_id,
            engine: self.engine.clone(),
            worker: self.worker.clone(),
            ticket: None,
            status: None,
            responded_ms: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct BreakerStream {
    context_id: u32,
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
    /// Set when the request was let through and its outcome must be recorded.
    ticket: Option<Ticket>,
    /// `:status` of the response as it passed the breaker; `None` if none did.
    status: Option<u32>,
    responded_ms: Option<u64>,
}

/// Whether the request is a gRPC call (its `content-type`). Only in `on_http_request_headers`.
fn is_grpc_call() -> bool {
    envoy::request_header("content-type").is_some_and(|v| grpc::is_grpc(&v))
}

/// Sends the breaker's reply to `rejection` on the current (or effective) stream; false when
/// Envoy refused it.
fn send_reply(
    engine: &Engine,
    rejection: &crate::engine::Rejection,
    grpc: bool,
    details: &str,
) -> bool {
    let Some(reply) = engine.reply(rejection, grpc) else {
        return false;
    };
    let mut headers: Vec<(&str, &[u8])> = reply
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_bytes()))
        .collect();
    if let Some((name, value)) = reply.retry() {
        headers.push((name, value.as_bytes()));
    }
    shim::send_local_response(
        reply.status,
        details,
        &headers,
        reply.body,
        reply.grpc_status,
    )
    .is_ok()
}

fn write_decision(name: &str, decision: BreakerDecision, state: &str) {
    envoy::set_filter_state(
        keys::CALL,
        BreakerCall::encode(decision, state, name).as_bytes(),
    );
}

impl Context for BreakerStream {}

impl HttpContext for BreakerStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(engine), Some(worker)) = (&self.engine, &self.worker) else {
            return Action::Continue;
        };
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return Action::Continue;
        };
        match engine.on_request(&Envoy, &mut worker, &Envoy) {
            RequestVerdict::NotMatched => Action::Continue,
            RequestVerdict::Admitted(mut ticket) => {
                write_decision(
                    engine.breaker_name(&ticket.breaker()),
                    ticket.decision,
                    ticket.state,
                );
                if ticket.is_accounted() && ticket.may_be_grpc() && is_grpc_call() {
                    ticket.set_grpc();
                }
                if ticket.is_watched() {
                    worker.attach(&ticket, self.context_id);
                    if !worker.ticking {
                        worker.ticking = true;
                        envoy::set_tick_period_ms(TICK_MS);
                    }
                }
                self.ticket = Some(ticket);
                Action::Continue
            }
            RequestVerdict::Rejected(rejection) => {
                write_decision(
                    engine.breaker_name(&rejection.breaker()),
                    BreakerDecision::Rejected,
                    rejection.state,
                );
                let grpc = rejection.may_be_grpc && is_grpc_call();
                if send_reply(engine, &rejection, grpc, REJECTED_DETAILS) {
                    Action::Pause
                } else {
                    // The reply could not be sent: serving the request beats hanging it.
                    Action::Continue
                }
            }
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let (Some(engine), Some(worker), Some(ticket)) =
            (&self.engine, &self.worker, &mut self.ticket)
        else {
            return Action::Continue;
        };
        if ticket.is_accounted() && self.status.is_none() {
            // The status as it passes the breaker: what the upstream (or the router) said. A
            // fallback filter placed before the breaker may replace the response on its way out,
            // and `response.code` at the end of the stream would report the replacement.
            self.status = envoy::response_header(":status")
                .and_then(|raw| std::str::from_utf8(&raw).ok()?.parse().ok());
            if ticket.wants_response_time() {
                self.responded_ms = Some(envoy::now_ms());
            }
            if ticket.awaits_grpc_status() && end_of_stream {
                // A trailers-only response (headers that end the stream) carries it here;
                // otherwise the trailers do, and a status in headers that do not end the
                // stream is not the call's (gRPC clients read the trailers').
                let status = envoy::response_header("grpc-status");
                ticket.set_grpc_status(grpc::status_of_ended_response(
                    status.as_deref(),
                    self.status,
                ));
            }
            if let Ok(mut worker) = worker.try_borrow_mut() {
                engine.on_response_headers(&mut worker, ticket);
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if let Some(ticket) = self.ticket.as_mut().filter(|t| t.awaits_grpc_status()) {
            let status = envoy::response_trailer("grpc-status");
            ticket.set_grpc_status(grpc::status_of_ended_response(
                status.as_deref(),
                self.status,
            ));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(engine), Some(worker), Some(ticket)) =
            (&self.engine, &self.worker, self.ticket.take())
        else {
            return;
        };
        if !ticket.is_accounted() {
            return;
        }
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return;
        };
        let flags = envoy::property(&["response", "flags"]).map_or(0, |b| decode_flags(&b));
        if let Some(outcome) = engine.on_complete(
            &Envoy,
            &mut worker,
            &ticket,
            self.status,
            flags,
            self.responded_ms,
        ) {
            envoy::set_filter_state(keys::OUTCOME, outcome.as_str().as_bytes());
        }
    }
}
