//! The Envoy side: translates proxy-wasm callbacks into engine calls and engine decisions into
//! host calls. No policy lives here.

use crate::config::BreakerConfig;
use crate::engine::{Engine, Host, Level, RequestVerdict, Ticket, WorkerState};
use breakwater_common::abi::{Action, Plugin, Stream};
use breakwater_common::flags::decode_flags;
use breakwater_common::host::{parse_configuration, Envoy};
use breakwater_common::hostcall;
use std::cell::RefCell;
use std::rc::Rc;

/// Filter-state keys (read them as `%FILTER_STATE(wasm.<key>:PLAIN)%`).
pub const FS_BREAKER: &str = "breakwater.circuit_breaker.breaker";
pub const FS_DECISION: &str = "breakwater.circuit_breaker.decision";
pub const FS_STATE: &str = "breakwater.circuit_breaker.state";
pub const FS_OUTCOME: &str = "breakwater.circuit_breaker.outcome";

breakwater_common::export_filter!(|context_id| -> Box<dyn Plugin> {
    Box::new(BreakerRoot {
        context_id,
        engine: None,
        worker: None,
    })
});

struct BreakerRoot {
    /// Seeds this worker's jitter source, together with the clock.
    context_id: u32,
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
}

impl Plugin for BreakerRoot {
    fn configure(&mut self, configuration: &[u8]) -> bool {
        let Some((config, plugin_name)) =
            parse_configuration("circuit-breaker", configuration, BreakerConfig::parse)
        else {
            return false;
        };
        let engine = Engine::new(config, &plugin_name, &Envoy);
        engine.prepare(&Envoy);
        Envoy.log(
            Level::Info,
            &format!(
                "breakwater circuit-breaker: configured {} breaker(s) for plugin \"{plugin_name}\"",
                engine.breaker_count()
            ),
        );
        let seed = hostcall::now_nanos() ^ u64::from(self.context_id);
        self.worker = Some(Rc::new(RefCell::new(WorkerState::new(&engine, seed))));
        self.engine = Some(Rc::new(engine));
        true
    }

    fn create_stream(&self) -> Box<dyn Stream> {
        Box::new(BreakerStream {
            engine: self.engine.clone(),
            worker: self.worker.clone(),
            ticket: None,
            status: None,
            responded_ms: None,
        })
    }
}

struct BreakerStream {
    engine: Option<Rc<Engine>>,
    worker: Option<Rc<RefCell<WorkerState>>>,
    /// Set when the request was let through and its outcome must be recorded.
    ticket: Option<Ticket>,
    /// `:status` of the response as it passed the breaker; `None` if none did.
    status: Option<u32>,
    responded_ms: Option<u64>,
}

fn set_filter_state(key: &str, value: &str) {
    // A failure only loses an access-log field; the request goes on.
    let _ = hostcall::set_filter_state(key, value.as_bytes());
}

impl Stream for BreakerStream {
    fn on_request_headers(&mut self, _end_of_stream: bool) -> Action {
        let (Some(engine), Some(worker)) = (&self.engine, &self.worker) else {
            return Action::Continue;
        };
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return Action::Continue;
        };
        match engine.on_request(&Envoy, &mut worker, &Envoy) {
            RequestVerdict::NotMatched => Action::Continue,
            RequestVerdict::Admitted(ticket) => {
                set_filter_state(FS_BREAKER, engine.breaker_name(&ticket.breaker()));
                set_filter_state(FS_DECISION, ticket.decision.as_str());
                set_filter_state(FS_STATE, ticket.state);
                self.ticket = Some(ticket);
                Action::Continue
            }
            RequestVerdict::Rejected(rejection) => {
                set_filter_state(FS_BREAKER, engine.breaker_name(&rejection.breaker()));
                set_filter_state(FS_DECISION, "rejected");
                set_filter_state(FS_STATE, rejection.state);
                let Some(reply) = engine.reply(&rejection) else {
                    return Action::Continue;
                };
                let mut headers: Vec<(&str, &[u8])> = reply
                    .headers
                    .iter()
                    .map(|(n, v)| (*n, v.as_bytes()))
                    .collect();
                if let Some(seconds) = reply.retry_after() {
                    headers.push(("retry-after", seconds.as_bytes()));
                }
                match hostcall::send_http_response(reply.status, &headers, reply.body) {
                    Ok(()) => Action::Pause,
                    // The reply could not be sent: serving the request beats hanging it.
                    Err(_) => Action::Continue,
                }
            }
        }
    }

    fn on_response_headers(&mut self, _end_of_stream: bool) -> Action {
        let Some(ticket) = &self.ticket else {
            return Action::Continue;
        };
        if ticket.is_accounted() && self.status.is_none() {
            // The status as it passes the breaker: what the upstream (or the router) said. A
            // fallback filter placed before the breaker may replace the response on its way out,
            // and `response.code` at the end of the stream would report the replacement.
            self.status = hostcall::response_header(":status")
                .and_then(|raw| std::str::from_utf8(&raw).ok()?.parse().ok());
            if ticket.wants_response_time() {
                self.responded_ms = Some(hostcall::now_ms());
            }
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
        let status = self.status;
        let flags = hostcall::property(&["response", "flags"])
            .map(|b| decode_flags(&b))
            .unwrap_or(0);
        if let Some(outcome) = engine.on_complete(
            &Envoy,
            &mut worker,
            &ticket,
            status,
            flags,
            self.responded_ms,
        ) {
            set_filter_state(FS_OUTCOME, outcome.as_str());
        }
    }
}
