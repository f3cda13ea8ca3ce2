//! The filter's logic between Envoy and the state machine: which breaker owns a request, which
//! shared state it uses, the compare-and-swap round trips, stats and log lines. Everything the
//! host provides comes through [`Host`], so this is tested with a fake host.

use crate::config::{BreakerConfig, BreakerSpec, Mode, Split};
use crate::policy::{self, Admission, CallFacts, Grpc, Outcome, Transition, Verdict};
use crate::state::{BreakerState, Phase};
// A collision merely makes two split values share a state.
use breakwater_common::hash::fnv1a;
use breakwater_common::host::bump;
pub use breakwater_common::host::{Host, Level, MetricId, MetricKind};
use breakwater_common::request::{Attribute, AttributeSource, RequestAttributes};
use breakwater_common::rng::Rng;
use breakwater_common::shared::{cas_update, cas_update_remembering, Snapshot, Speculate, Update};
use std::borrow::Cow;

/// How many times a shared-state update is retried when other workers keep winning the race.
pub const CAS_ATTEMPTS: u32 = 16;
/// Per worker and breaker, how many split values known to be in overflow are remembered.
const OVERFLOW_CACHE: usize = 1024;
/// Split values are shown in log lines up to this many characters.
const LABEL_CHARS: usize = 64;

/// The decision taken for a request, as written to filter state.
pub use breakwater_common::filter_state::BreakerDecision as Decision;
use breakwater_common::filter_state::BreakerState as StateName;

/// Which shared state a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateKey {
    Single,
    Split(u64),
    Overflow,
}

/// A request the breaker let through; handed back at the end of the stream.
#[derive(Debug, Clone)]
pub struct Ticket {
    breaker: usize,
    key: StateKey,
    /// For log lines about split keys.
    label: Option<String>,
    epoch: u32,
    probe: bool,
    /// Whether the outcome feeds the state (not for disabled, dry-run-would-reject or failures
    /// to reach the shared state).
    accounted: bool,
    /// Whether the response's arrival time matters (the breaker judges slow calls).
    timed: bool,
    /// The worker's record of this call while it is in flight (hang detection).
    pending: Option<u64>,
    /// Already counted as a failure because it hung before its response headers came.
    counted_as_hung: bool,
    /// A gRPC call, and the status it ended with.
    grpc: Grpc,
    /// False when the request is known not to be a gRPC call
    /// ([`RequestAttributes::may_be_grpc`]).
    may_be_grpc: bool,
    pub arrived_ms: u64,
    pub decision: Decision,
    /// The breaker's state when the decision was taken, or the mode when it overrides it.
    pub state: &'static str,
}

/// A request the breaker answers itself.
#[derive(Debug, Clone)]
pub struct Rejection {
    breaker: usize,
    /// When a call may be admitted (as a probe) at the earliest; `None` when forced open.
    retry_after_ms: Option<u64>,
    pub state: &'static str,
    /// False when the request is known not to be a gRPC call
    /// ([`RequestAttributes::may_be_grpc`]).
    pub may_be_grpc: bool,
}

#[derive(Debug, Clone)]
pub enum RequestVerdict {
    /// No breaker matches: leave the request alone.
    NotMatched,
    Admitted(Ticket),
    Rejected(Rejection),
}

/// A local reply, borrowed from the configuration where possible.
pub struct Reply<'a> {
    pub status: u32,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    /// For a gRPC call: the grpc-status (the body is its grpc-message).
    pub grpc_status: Option<u32>,
    /// The header that says when to come back, and its value: `retry-after` in seconds, or for
    /// a gRPC call `grpc-retry-pushback-ms` (gRPC's own retry-pushback metadata).
    retry: Option<(&'static str, String)>,
}

impl Reply<'_> {
    pub fn retry(&self) -> Option<(&'static str, &str)> {
        self.retry
            .as_ref()
            .map(|(name, value)| (*name, value.as_str()))
    }
}

/// State each worker keeps to avoid shared-data round trips.
pub struct WorkerState {
    rng: Rng,
    /// Per breaker: split values (hashed) that have their own state.
    known: Vec<Vec<u64>>,
    /// Per breaker: split values known to be in the overflow state.
    overflowed: Vec<Vec<u64>>,
    overflow_logged: Vec<bool>,
    /// Calls this worker let through that have not finished yet, for breakers with
    /// `hang_after` (at most [`MAX_PENDING`]).
    pending: Vec<Pending>,
    next_pending: u64,
    /// The adapter's tick is on (it is switched on when a call is watched, off when none is).
    pub ticking: bool,
    /// The last shared state this worker read (admissions read it; the outcome that follows
    /// writes it back without reading it again when nobody wrote since).
    snapshot: Snapshot,
}

/// A call in flight, as hang detection and release see it.
struct Pending {
    id: u64,
    breaker: usize,
    key: StateKey,
    epoch: u32,
    arrived_ms: u64,
    /// A half-open probe: if it hangs, the key re-opens.
    probe: bool,
    /// Its method may be released (`open.release_methods`).
    releasable: bool,
    /// The stream's context, to answer it from the tick (0 until [`WorkerState::attach`]).
    context_id: u32,
    grpc: bool,
    /// Already counted as a failure because it hung: its late outcome is not counted again.
    counted: bool,
    /// Released (or, in `dry_run`, counted as one that would have been): never twice.
    released: bool,
}

/// What to watch of a call let through.
struct Watch {
    breaker: usize,
    key: StateKey,
    epoch: u32,
    now_ms: u64,
    probe: bool,
    releasable: bool,
}

/// A call the tick answers with its breaker's rejection: its key opened while it waited.
#[derive(Debug, Clone)]
pub struct Release {
    pub context_id: u32,
    pub grpc: bool,
    pub rejection: Rejection,
}

/// Calls in flight one worker keeps for hang detection; beyond it, new calls are not watched.
pub const MAX_PENDING: usize = 1024;

impl WorkerState {
    pub fn new(engine: &Engine, seed: u64) -> Self {
        let n = engine.breakers.len();
        WorkerState {
            rng: Rng::new(seed),
            known: vec![Vec::new(); n],
            overflowed: vec![Vec::new(); n],
            overflow_logged: vec![false; n],
            pending: Vec::new(),
            next_pending: 0,
            ticking: false,
            snapshot: Snapshot::default(),
        }
    }

    /// Starts watching a call; `None` when the list is full of calls still undecided.
    fn watch(&mut self, w: Watch) -> Option<u64> {
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|p| !p.counted);
            if self.pending.len() >= MAX_PENDING {
                return None;
            }
        }
        self.next_pending = self.next_pending.wrapping_add(1);
        self.pending.push(Pending {
            id: self.next_pending,
            breaker: w.breaker,
            key: w.key,
            epoch: w.epoch,
            arrived_ms: w.now_ms,
            probe: w.probe,
            releasable: w.releasable,
            context_id: 0,
            grpc: false,
            counted: false,
            released: false,
        });
        Some(self.next_pending)
    }

    /// Gives a watched call its stream context (and whether it is a gRPC call), so that the
    /// tick can answer it. Until then it is not released.
    pub fn attach(&mut self, ticket: &Ticket, context_id: u32) {
        if let Some(p) = ticket
            .pending
            .and_then(|id| self.pending.iter_mut().find(|p| p.id == id))
        {
            p.context_id = context_id;
            p.grpc = ticket.grpc != Grpc::NotGrpc;
        }
    }

    /// Whether any call is watched: the tick runs only then.
    pub fn watching(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Stops watching a call; whether it was already counted as hung. A watched call is
    /// removed only here or, once counted, by [`Self::watch`] making room, so one that is gone
    /// was counted (ids are never reused).
    fn unwatch(&mut self, id: u64) -> bool {
        match self.pending.iter().position(|p| p.id == id) {
            Some(i) => self.pending.swap_remove(i).counted,
            None => true,
        }
    }
}

struct Metrics {
    state: Option<MetricId>,
    keys_tracked: Option<MetricId>,
    keys_open: Option<MetricId>,
    calls_success: Option<MetricId>,
    calls_failure: Option<MetricId>,
    calls_slow: Option<MetricId>,
    calls_unanswered: Option<MetricId>,
    calls_hung: Option<MetricId>,
    calls_released: Option<MetricId>,
    dry_run_would_release: Option<MetricId>,
    rejected: Option<MetricId>,
    dry_run_would_reject: Option<MetricId>,
    probes: Option<MetricId>,
    probes_written_off: Option<MetricId>,
    opened: Option<MetricId>,
    half_opened: Option<MetricId>,
    closed: Option<MetricId>,
    split_overflow: Option<MetricId>,
    state_errors: Option<MetricId>,
}

/// The stat name prefix; every breaker's stats are `breakwater.circuit_breaker.<name>.<stat>`.
pub const STAT_PREFIX: &str = "breakwater.circuit_breaker";

impl Metrics {
    fn define<H: Host + ?Sized>(host: &H, spec: &BreakerSpec) -> Metrics {
        let split = spec.split != Split::None;
        let release = spec.open.release_after_ms.is_some();
        let counter = |stat: &str| {
            host.define_metric(
                MetricKind::Counter,
                &format!("{STAT_PREFIX}.{}.{stat}", spec.name),
            )
        };
        let gauge = |stat: &str, wanted: bool| {
            if wanted {
                host.define_metric(
                    MetricKind::Gauge,
                    &format!("{STAT_PREFIX}.{}.{stat}", spec.name),
                )
            } else {
                None
            }
        };
        Metrics {
            state: gauge("state", !split),
            keys_tracked: gauge("keys_tracked", split),
            keys_open: gauge("keys_open", split),
            calls_success: counter("calls.success"),
            calls_failure: counter("calls.failure"),
            calls_slow: counter("calls.slow"),
            calls_unanswered: counter("calls.unanswered"),
            calls_hung: if spec.failure.hang_after_ms.is_some() {
                counter("calls.hung")
            } else {
                None
            },
            calls_released: release.then(|| counter("calls.released")).flatten(),
            dry_run_would_release: release.then(|| counter("dry_run_would_release")).flatten(),
            rejected: counter("rejected"),
            dry_run_would_reject: counter("dry_run_would_reject"),
            probes: counter("probes"),
            probes_written_off: counter("probes_written_off"),
            opened: counter("transitions.opened"),
            half_opened: counter("transitions.half_opened"),
            closed: counter("transitions.closed"),
            split_overflow: if split {
                counter("split_overflow")
            } else {
                None
            },
            state_errors: counter("state_errors"),
        }
    }
}

struct Breaker {
    spec: BreakerSpec,
    /// Shared-data key of the single state, or the prefix of split states.
    state_key: String,
    registry_key: String,
    overflow_key: String,
    metrics: Metrics,
}

impl Breaker {
    fn key(&self, key: StateKey) -> Cow<'_, str> {
        match key {
            StateKey::Single => Cow::Borrowed(&self.state_key),
            StateKey::Split(hash) => Cow::Owned(format!("{}#{hash:016x}", self.state_key)),
            StateKey::Overflow => Cow::Borrowed(&self.overflow_key),
        }
    }
}

/// A configured filter instance (one per worker; all share the state in shared data).
pub struct Engine {
    breakers: Vec<Breaker>,
}

/// Shared data has no create-if-absent; this runs at configuration time, before the key can
/// carry traffic's updates, so two workers creating it at once both write the same fresh value.
fn create_if_absent<H: Host + ?Sized>(host: &H, key: &str, value: &[u8]) {
    if let Ok(None) = host.get(key) {
        let _ = host.set(key, value, 0);
    }
}

/// One decimal, as in "55.5".
fn tenths(value: f64) -> String {
    format!("{value:.1}")
}

/// A printable, bounded rendering of a split value for log lines.
fn label(value: &[u8]) -> String {
    let mut out: String = value
        .iter()
        .take(LABEL_CHARS)
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect();
    if value.len() > LABEL_CHARS {
        out.push('…');
    }
    out
}

impl Engine {
    /// Builds the engine and defines its stats. `plugin_name` namespaces the shared-data keys:
    /// under Istio every plugin shares one `vm_id`.
    pub fn new<H: Host + ?Sized>(config: BreakerConfig, plugin_name: &str, host: &H) -> Engine {
        let breakers = config
            .breakers
            .into_iter()
            .map(|spec| {
                let base = format!("breakwater.circuit_breaker/{plugin_name}/{}", spec.name);
                Breaker {
                    metrics: Metrics::define(host, &spec),
                    registry_key: format!("{base}#keys"),
                    overflow_key: format!("{base}#overflow"),
                    state_key: base,
                    spec,
                }
            })
            .collect();
        Engine { breakers }
    }

    pub fn breaker_count(&self) -> usize {
        self.breakers.len()
    }

    /// Creates missing shared states (before traffic, so creation does not race with updates)
    /// and sets the state gauges from what shared data holds.
    pub fn prepare<H: Host + ?Sized>(&self, host: &H) {
        for b in &self.breakers {
            let window = b.spec.trip.window;
            if b.spec.split == Split::None {
                create_if_absent(host, &b.state_key, &BreakerState::fresh(window).encode());
            } else {
                create_if_absent(host, &b.overflow_key, &BreakerState::fresh(window).encode());
                create_if_absent(host, &b.registry_key, &0u32.to_le_bytes());
                if let (Some(gauge), Ok(Some((bytes, _)))) =
                    (b.metrics.keys_tracked, host.get(&b.registry_key))
                {
                    host.set_gauge(gauge, u64::from(decode_count(Some(&bytes))));
                }
            }
            if let Some(gauge) = b.metrics.state {
                let phase = match b.spec.mode {
                    Mode::ForcedOpen => Phase::Open,
                    Mode::Disabled => Phase::Closed,
                    Mode::Enforce | Mode::DryRun => match host.get(&b.state_key) {
                        Ok(Some((bytes, _))) => BreakerState::load(Some(&bytes), window).phase,
                        _ => Phase::Closed,
                    },
                };
                host.set_gauge(gauge, phase.gauge());
            }
        }
    }

    /// Decides what happens to a request.
    pub fn on_request<H, S>(&self, host: &H, worker: &mut WorkerState, source: &S) -> RequestVerdict
    where
        H: Host + ?Sized,
        S: AttributeSource + ?Sized,
    {
        let mut attrs = RequestAttributes::new(source);
        let Some((index, b)) = self
            .breakers
            .iter()
            .enumerate()
            .find(|(_, b)| b.spec.matcher.matches(&mut attrs))
        else {
            return RequestVerdict::NotMatched;
        };
        let now = host.now_ms();
        let untracked = |decision, state| Ticket {
            breaker: index,
            key: StateKey::Single,
            label: None,
            epoch: 0,
            probe: false,
            accounted: false,
            timed: false,
            pending: None,
            counted_as_hung: false,
            grpc: Grpc::NotGrpc,
            may_be_grpc: true,
            arrived_ms: now,
            decision,
            state,
        };
        match b.spec.mode {
            Mode::Disabled => {
                return RequestVerdict::Admitted(untracked(
                    Decision::Passed,
                    StateName::Disabled.as_str(),
                ))
            }
            Mode::ForcedOpen => {
                bump(host, b.metrics.rejected);
                return RequestVerdict::Rejected(Rejection {
                    breaker: index,
                    retry_after_ms: None,
                    state: StateName::ForcedOpen.as_str(),
                    may_be_grpc: attrs.may_be_grpc(),
                });
            }
            Mode::Enforce | Mode::DryRun => {}
        }
        let (key, label) = self.resolve_key(host, worker, index, &mut attrs);
        let shared_key = b.key(key);
        let spec = &b.spec;
        if let Some(hang_after_ms) = spec.failure.hang_after_ms {
            // Before admitting: calls that hung may already have opened the breaker.
            self.count_hung_calls(host, worker, index, b, hang_after_ms, now);
        }
        // `now` was read just before the state: older than a stamp another worker wrote in
        // between by microseconds at most, which the policy tolerates (a clock may step back).
        let updated = cas_update_remembering(
            host,
            &shared_key,
            &mut worker.snapshot,
            Speculate::No, // an admission usually keeps the state: it reads anyway
            CAS_ATTEMPTS,
            |bytes| {
                // Hot paths: a closed breaker admits, and an open one rejects, without decoding
                // its window.
                if let Some(epoch) = bytes.and_then(BreakerState::closed_epoch) {
                    return Update::Keep((policy::Admitted::pass(epoch), Phase::Closed));
                }
                let open = bytes.and_then(BreakerState::open_times);
                if let Some(rejected) =
                    open.and_then(|(since, until)| policy::still_open(since, until, now))
                {
                    return Update::Keep((rejected, Phase::Open));
                }
                let mut state = BreakerState::load(bytes, spec.trip.window);
                let admitted = policy::admit(spec, &mut state, now);
                let result = (admitted.clone(), state.phase);
                if admitted.changed {
                    Update::Write(state.encode(), result)
                } else {
                    Update::Keep(result)
                }
            },
        );
        let (admitted, phase) = match updated {
            Ok(((admitted, phase), _)) => (admitted, phase),
            Err(err) => {
                // Shared state unreachable: let traffic through rather than guess.
                bump(host, b.metrics.state_errors);
                host.log(
                    Level::Warn,
                    &format!("breakwater circuit-breaker \"{}\": shared state unavailable ({err}); request passed", spec.name),
                );
                return RequestVerdict::Admitted(untracked(
                    Decision::Passed,
                    StateName::Closed.as_str(),
                ));
            }
        };
        if admitted.written_off > 0 {
            if let Some(id) = b.metrics.probes_written_off {
                host.add_metric(id, i64::from(admitted.written_off));
            }
        }
        if let Some(t) = &admitted.transition {
            self.on_transition(host, b, label.as_deref(), t);
        }
        let ticket = |epoch, probe, accounted, decision, state| Ticket {
            breaker: index,
            key,
            label: label.clone(),
            epoch,
            probe,
            accounted,
            timed: accounted && spec.failure.slow_call_ms.is_some(),
            pending: None,
            counted_as_hung: false,
            grpc: Grpc::NotGrpc,
            may_be_grpc: true,
            arrived_ms: now,
            decision,
            state,
        };
        // Calls are watched for hang detection, and to be released when their key opens. After
        // the release check, which may read the method, whether the call may be gRPC is known
        // as far as it can be without reading `content-type`.
        let watched = spec.failure.hang_after_ms.is_some() || spec.open.release_after_ms.is_some();
        let mut watch = |t: &mut Ticket, probe: bool, attrs: &mut RequestAttributes<_>| {
            if watched {
                let releasable = spec.open.release_after_ms.is_some()
                    && attrs.get(Attribute::Method).is_some_and(|m| {
                        spec.open.release_methods.iter().any(|r| r.as_slice() == m)
                    });
                t.pending = worker.watch(Watch {
                    breaker: index,
                    key,
                    epoch: t.epoch,
                    now_ms: now,
                    probe,
                    releasable,
                });
            }
            t.may_be_grpc = attrs.may_be_grpc();
        };
        match admitted.admission {
            Admission::Pass { epoch } => {
                let mut passed = ticket(epoch, false, true, Decision::Passed, phase.as_str());
                watch(&mut passed, false, &mut attrs);
                RequestVerdict::Admitted(passed)
            }
            Admission::Probe { epoch } => {
                bump(host, b.metrics.probes);
                let mut probe = ticket(epoch, true, true, Decision::Probe, phase.as_str());
                watch(&mut probe, true, &mut attrs);
                RequestVerdict::Admitted(probe)
            }
            Admission::Reject { retry_after_ms } => {
                if spec.mode == Mode::DryRun {
                    bump(host, b.metrics.dry_run_would_reject);
                    RequestVerdict::Admitted(ticket(
                        0,
                        false,
                        false,
                        Decision::DryRunWouldReject,
                        phase.as_str(),
                    ))
                } else {
                    bump(host, b.metrics.rejected);
                    RequestVerdict::Rejected(Rejection {
                        breaker: index,
                        retry_after_ms: Some(retry_after_ms),
                        state: phase.as_str(),
                        may_be_grpc: attrs.may_be_grpc(),
                    })
                }
            }
        }
    }

    /// Enters a finished call's outcome; returns it for filter state (`None` when the call was
    /// not accounted).
    pub fn on_complete<H: Host + ?Sized>(
        &self,
        host: &H,
        worker: &mut WorkerState,
        ticket: &Ticket,
        status: Option<u32>,
        flags: u64,
        responded_ms: Option<u64>,
    ) -> Option<Outcome> {
        if !ticket.accounted {
            return None;
        }
        let b = self.breakers.get(ticket.breaker)?;
        if ticket.counted_as_hung || ticket.pending.is_some_and(|id| worker.unwatch(id)) {
            // Counted as a failure when it hung; its late outcome changes nothing.
            return Some(Outcome {
                verdict: Verdict::Failure,
                slow: true,
            });
        }
        let now = host.now_ms();
        let latency_ms = responded_ms
            .unwrap_or(now)
            .saturating_sub(ticket.arrived_ms);
        let outcome = policy::classify(
            &b.spec.failure,
            CallFacts {
                status,
                flags,
                latency_ms,
                grpc: ticket.grpc,
            },
        );
        let counter = match (outcome.verdict, outcome.slow) {
            (Verdict::Failure, _) => b.metrics.calls_failure,
            (_, true) => b.metrics.calls_slow,
            (Verdict::Success, false) => b.metrics.calls_success,
            (Verdict::Unanswered, false) => b.metrics.calls_unanswered,
        };
        bump(host, counter);
        let jitter = worker.rng.symmetric_unit();
        let spec = &b.spec;
        // One clock read serves the latency and the record (see `on_request` on its age).
        let updated = cas_update_remembering(
            host,
            &b.key(ticket.key),
            &mut worker.snapshot,
            Speculate::Yes,
            CAS_ATTEMPTS,
            |bytes| {
                let mut state = BreakerState::load(bytes, spec.trip.window);
                let recorded = policy::record(
                    spec,
                    &mut state,
                    ticket.epoch,
                    ticket.probe,
                    outcome,
                    now,
                    jitter,
                );
                if recorded.changed {
                    Update::Write(state.encode(), recorded)
                } else {
                    Update::Keep(recorded)
                }
            },
        );
        match updated {
            Ok((recorded, _)) => {
                if let Some(t) = &recorded.transition {
                    self.on_transition(host, b, ticket.label.as_deref(), t);
                }
            }
            Err(err) => {
                bump(host, b.metrics.state_errors);
                host.log(
                    Level::Warn,
                    &format!("breakwater circuit-breaker \"{}\": outcome not recorded, shared state unavailable ({err})", spec.name),
                );
            }
        }
        Some(outcome)
    }

    /// Counts this worker's calls of breaker `index` that have had no answer for longer than
    /// `hang_after_ms` as failures now: a hanging upstream opens the breaker after
    /// `hang_after`, not after the route timeout, while the calls that hang are still few.
    fn count_hung_calls<H: Host + ?Sized>(
        &self,
        host: &H,
        worker: &mut WorkerState,
        index: usize,
        b: &Breaker,
        hang_after_ms: u64,
        now: u64,
    ) {
        let mut hung: Vec<(StateKey, u32, bool)> = Vec::new();
        for p in worker.pending.iter_mut() {
            if p.breaker == index && !p.counted && now.saturating_sub(p.arrived_ms) > hang_after_ms
            {
                p.counted = true;
                hung.push((p.key, p.epoch, p.probe));
            }
        }
        let Some(&(first_key, _, _)) = hung.first() else {
            return;
        };
        if let Some(id) = b.metrics.calls_hung {
            host.add_metric(id, hung.len() as i64);
        }
        if let Some(id) = b.metrics.calls_failure {
            host.add_metric(id, hung.len() as i64);
        }
        let jitter = worker.rng.symmetric_unit();
        let spec = &b.spec;
        let failure = Outcome {
            verdict: Verdict::Failure,
            slow: true,
        };
        // Usually one key; a split breaker records each key's calls into its own state.
        let mut keys = vec![first_key];
        for (key, _, _) in &hung {
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
        for key in keys {
            let updated = cas_update_remembering(
                host,
                &b.key(key),
                &mut worker.snapshot,
                Speculate::Yes,
                CAS_ATTEMPTS,
                |bytes| {
                    let mut state = BreakerState::load(bytes, spec.trip.window);
                    let mut changed = false;
                    let mut transition = None;
                    // A hung probe fails its half-open round: the key re-opens.
                    for (_, epoch, probe) in hung.iter().filter(|(k, _, _)| *k == key) {
                        let recorded =
                            policy::record(spec, &mut state, *epoch, *probe, failure, now, jitter);
                        changed |= recorded.changed;
                        transition = transition.or(recorded.transition);
                    }
                    if changed {
                        Update::Write(state.encode(), transition)
                    } else {
                        Update::Keep(transition)
                    }
                },
            );
            match updated {
                Ok((Some(t), _)) => self.on_transition(host, b, None, &t),
                Ok((None, _)) => {}
                Err(err) => {
                    bump(host, b.metrics.state_errors);
                    host.log(
                        Level::Warn,
                        &format!("breakwater circuit-breaker \"{}\": hung calls not recorded, shared state unavailable ({err})", spec.name),
                    );
                }
            }
        }
    }

    /// The periodic check of a worker's watched calls (the adapter's tick): counts those that
    /// hung (a hung probe re-opens its key), then returns the calls to release: those of a key
    /// that is open now, waiting without response headers for `open.release_after` or longer,
    /// of a releasable method, not released before. In `dry_run` they are counted and logged,
    /// not returned. Reads the shared state of each key with such calls, once per tick.
    pub fn tick<H: Host + ?Sized>(&self, host: &H, worker: &mut WorkerState) -> Vec<Release> {
        let mut released = Vec::new();
        for (index, b) in self.breakers.iter().enumerate() {
            if !worker.pending.iter().any(|p| p.breaker == index) {
                continue;
            }
            let now = host.now_ms();
            if let Some(hang_after_ms) = b.spec.failure.hang_after_ms {
                self.count_hung_calls(host, worker, index, b, hang_after_ms, now);
            }
            let Some(release_after_ms) = b.spec.open.release_after_ms else {
                continue;
            };
            let due = |p: &Pending| {
                p.breaker == index
                    && p.releasable
                    && !p.released
                    && p.context_id != 0
                    && now.saturating_sub(p.arrived_ms) >= release_after_ms
            };
            let mut keys: Vec<StateKey> = Vec::new();
            for p in worker.pending.iter().filter(|p| due(p)) {
                if !keys.contains(&p.key) {
                    keys.push(p.key);
                }
            }
            for key in keys {
                let Ok(Some((bytes, _))) = host.get(&b.key(key)) else {
                    continue;
                };
                let Some(retry_after_ms) = BreakerState::open_times(&bytes)
                    .and_then(|(since, until)| policy::still_open(since, until, now))
                    .and_then(|a| match a.admission {
                        Admission::Reject { retry_after_ms } => Some(retry_after_ms),
                        _ => None,
                    })
                else {
                    continue;
                };
                let dry_run = b.spec.mode == Mode::DryRun;
                let mut count = 0i64;
                for p in worker.pending.iter_mut().filter(|p| p.key == key && due(p)) {
                    p.released = true;
                    count += 1;
                    if !dry_run {
                        // Answered now: whatever comes later is not its outcome.
                        p.counted = true;
                        released.push(Release {
                            context_id: p.context_id,
                            grpc: p.grpc,
                            rejection: Rejection {
                                breaker: index,
                                retry_after_ms: Some(retry_after_ms),
                                state: StateName::Open.as_str(),
                                may_be_grpc: p.grpc,
                            },
                        });
                    }
                }
                let metric = if dry_run {
                    b.metrics.dry_run_would_release
                } else {
                    b.metrics.calls_released
                };
                if let Some(id) = metric {
                    host.add_metric(id, count);
                }
                host.log(
                    Level::Info,
                    &format!(
                        "breakwater circuit-breaker \"{}\": {} {count} call(s) in flight for {} ms or more",
                        b.spec.name,
                        if dry_run { "dry run: would release" } else { "released" },
                        release_after_ms
                    ),
                );
            }
        }
        released
    }

    /// The reply for a rejected request: the configured response plus `Retry-After` and
    /// `x-breakwater-breaker`; for a gRPC call, the configured gRPC status and message (Envoy
    /// sends them trailers-only) with `grpc-retry-pushback-ms` and `x-breakwater-breaker`.
    pub fn reply(&self, rejection: &Rejection, grpc: bool) -> Option<Reply<'_>> {
        let b = self.breakers.get(rejection.breaker)?;
        let response = &b.spec.response;
        let breaker = ("x-breakwater-breaker", b.spec.name.as_str());
        if grpc {
            return Some(Reply {
                status: response.status,
                headers: vec![breaker],
                body: &response.grpc_message,
                grpc_status: Some(response.grpc_status),
                retry: rejection
                    .retry_after_ms
                    .map(|ms| ("grpc-retry-pushback-ms", ms.to_string())),
            });
        }
        let mut headers: Vec<(&str, &str)> = response
            .headers
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(breaker);
        Some(Reply {
            status: response.status,
            headers,
            body: &response.body,
            grpc_status: None,
            retry: rejection
                .retry_after_ms
                .map(|ms| ("retry-after", policy::retry_after_s(ms).to_string())),
        })
    }

    /// The call's response headers arrived: it is answered, however long its body or stream
    /// goes on, so hang detection stops watching it. If it was counted as hung before, that
    /// stays its outcome.
    pub fn on_response_headers(&self, worker: &mut WorkerState, ticket: &mut Ticket) {
        if let Some(id) = ticket.pending.take() {
            ticket.counted_as_hung = worker.unwatch(id);
        }
    }

    pub fn breaker_name(&self, index_of: &BreakerRef) -> &str {
        self.breakers
            .get(index_of.0)
            .map_or("", |b| b.spec.name.as_str())
    }

    fn resolve_key<H, S>(
        &self,
        host: &H,
        worker: &mut WorkerState,
        index: usize,
        attrs: &mut RequestAttributes<'_, S>,
    ) -> (StateKey, Option<String>)
    where
        H: Host + ?Sized,
        S: AttributeSource + ?Sized,
    {
        let Some(b) = self.breakers.get(index) else {
            return (StateKey::Single, None);
        };
        let value: Vec<u8> = match &b.spec.split {
            Split::None => return (StateKey::Single, None),
            Split::Cluster => attrs.get(Attribute::Cluster).map(<[u8]>::to_vec),
            Split::Authority => attrs
                .get(Attribute::Authority)
                .map(<[u8]>::to_ascii_lowercase),
            Split::Header(name) => attrs.header(name),
        }
        .unwrap_or_default();
        let hash = fnv1a(&value);
        let text = Some(label(&value));
        if worker
            .known
            .get(index)
            .is_some_and(|k| k.binary_search(&hash).is_ok())
        {
            return (StateKey::Split(hash), text);
        }
        if worker
            .overflowed
            .get(index)
            .is_some_and(|k| k.contains(&hash))
        {
            bump(host, b.metrics.split_overflow);
            return (StateKey::Overflow, text);
        }
        match self.register(host, b, hash) {
            Registration::Known | Registration::Created => {
                if let Some(known) = worker.known.get_mut(index) {
                    insert_sorted(known, hash);
                }
                (StateKey::Split(hash), text)
            }
            Registration::Full => {
                if let Some(seen) = worker.overflowed.get_mut(index) {
                    if seen.len() >= OVERFLOW_CACHE {
                        seen.clear();
                    }
                    insert_sorted(seen, hash);
                }
                if let Some(logged) = worker.overflow_logged.get_mut(index) {
                    if !*logged {
                        *logged = true;
                        host.log(Level::Warn, &format!(
                            "breakwater circuit-breaker \"{}\": max_keys ({}) reached; new split values share one overflow state",
                            b.spec.name, b.spec.max_keys
                        ));
                    }
                }
                bump(host, b.metrics.split_overflow);
                (StateKey::Overflow, text)
            }
        }
    }

    /// Gives a new split value its own state if the breaker has fewer than `max_keys`. The
    /// state key itself says whether a value is known (a small read); the `#keys` counter only
    /// bounds how many exist, claimed by compare-and-swap before the state is created.
    fn register<H: Host + ?Sized>(&self, host: &H, b: &Breaker, hash: u64) -> Registration {
        let key = b.key(StateKey::Split(hash));
        match host.get(&key) {
            Ok(Some(_)) => return Registration::Known,
            Ok(None) => {}
            Err(_) => {
                bump(host, b.metrics.state_errors);
                return Registration::Full;
            }
        }
        let max = b.spec.max_keys;
        let claimed = cas_update(host, &b.registry_key, CAS_ATTEMPTS, |bytes| {
            let count = decode_count(bytes);
            if count >= max {
                Update::Keep(None)
            } else {
                Update::Write((count + 1).to_le_bytes().to_vec(), Some(count + 1))
            }
        });
        match claimed {
            Ok((Some(count), _)) => {
                // Two workers meeting the same new value at once both claim a slot (the bound
                // then admits slightly fewer values); only absent states are created.
                if let Ok(None) = host.get(&key) {
                    let _ = host.set(&key, &BreakerState::fresh(b.spec.trip.window).encode(), 0);
                }
                if let Some(id) = b.metrics.keys_tracked {
                    host.set_gauge(id, u64::from(count));
                }
                Registration::Created
            }
            Ok((None, _)) => Registration::Full,
            Err(_) => {
                bump(host, b.metrics.state_errors);
                Registration::Full
            }
        }
    }

    fn on_transition<H: Host + ?Sized>(
        &self,
        host: &H,
        b: &Breaker,
        key: Option<&str>,
        t: &Transition,
    ) {
        let m = &b.metrics;
        bump(
            host,
            match t.to {
                Phase::Open => m.opened,
                Phase::HalfOpen => m.half_opened,
                Phase::Closed => m.closed,
            },
        );
        if let Some(gauge) = m.state {
            host.set_gauge(gauge, t.to.gauge());
        }
        if let Some(gauge) = m.keys_open {
            match (t.from, t.to) {
                (Phase::Closed, _) => host.add_metric(gauge, 1),
                (_, Phase::Closed) => host.add_metric(gauge, -1),
                _ => {}
            }
        }
        let mut line = format!(
            "breakwater circuit-breaker \"{}\"{}: {} -> {} (reason: {}",
            b.spec.name,
            key.map(|k| format!(" [{k}]")).unwrap_or_default(),
            t.from.as_str(),
            t.to.as_str(),
            t.reason.as_str(),
        );
        match (t.from, t.to) {
            (Phase::Closed, _) => {
                line.push_str(&format!(
                    "; window: {} calls, failure rate {}%, slow-call rate {}%",
                    t.totals.calls,
                    tenths(t.totals.failure_rate()),
                    tenths(t.totals.slow_call_rate()),
                ));
                if t.consecutive_failures > 0 {
                    line.push_str(&format!(
                        ", {} consecutive failures",
                        t.consecutive_failures
                    ));
                }
            }
            (_, Phase::HalfOpen) => {
                line.push_str(&format!("; admitting {} probe(s)", b.spec.half_open.probes));
            }
            (_, Phase::Closed) => {
                line.push_str(&format!(
                    "; all {} probe(s) succeeded",
                    b.spec.half_open.probes
                ));
            }
            _ => {}
        }
        line.push(')');
        if let Some(ms) = t.open_for_ms {
            line.push_str(&format!("; first probe in {}s", tenths(ms as f64 / 1000.0)));
        }
        if b.spec.mode == Mode::DryRun {
            line.push_str("; dry run: requests are not rejected");
        }
        host.log(Level::Warn, &line);
    }
}

/// Identifies a breaker in a ticket or rejection, for callers that only need its name.
pub struct BreakerRef(usize);

impl Ticket {
    pub fn breaker(&self) -> BreakerRef {
        BreakerRef(self.breaker)
    }

    /// Whether the call's outcome is recorded (otherwise the host need not read it).
    pub fn is_accounted(&self) -> bool {
        self.accounted
    }

    /// Whether the time the response headers arrived is needed (slow-call detection).
    pub fn wants_response_time(&self) -> bool {
        self.timed
    }

    /// False when the request is known not to be a gRPC call: its `content-type` need not be
    /// read.
    pub fn may_be_grpc(&self) -> bool {
        self.may_be_grpc
    }

    /// Marks the call as a gRPC call: its outcome then depends on its grpc-status.
    pub fn set_grpc(&mut self) {
        self.grpc = Grpc::Call { status: None };
    }

    /// Whether the worker watches it (hang detection, release).
    pub fn is_watched(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether it is a gRPC call whose grpc-status has not been seen yet.
    pub fn awaits_grpc_status(&self) -> bool {
        self.grpc == Grpc::Call { status: None }
    }

    /// Records a gRPC call's grpc-status: from a trailers-only response's headers, or from
    /// the trailers (the first one seen counts).
    pub fn set_grpc_status(&mut self, code: u32) {
        if self.awaits_grpc_status() {
            self.grpc = Grpc::Call { status: Some(code) };
        }
    }
}

impl Rejection {
    pub fn breaker(&self) -> BreakerRef {
        BreakerRef(self.breaker)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Known,
    Created,
    Full,
}

/// Per-worker caches are sorted vectors: small, and searched without hashing.
fn insert_sorted(set: &mut Vec<u64>, value: u64) {
    if let Err(at) = set.binary_search(&value) {
        set.insert(at, value);
    }
}

/// The `#keys` counter: a little-endian u32 (missing or malformed reads as 0).
fn decode_count(bytes: Option<&[u8]>) -> u32 {
    bytes
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
