//! The breaker state machine, free of any host: what to do with a request (admit) and what a
//! finished call changes (record). Callers load the state, call one of these, and write the
//! state back with compare-and-swap when it changed.

use crate::config::{BreakerSpec, FailurePolicy};
use crate::state::{BreakerState, Phase};
use crate::window::{Totals, Window};
use breakwater_common::filter_state::BreakerOutcome;
use breakwater_common::grpc;

/// How far the clock may appear to run backwards before it counts as a step back. Workers read
/// the clock a moment apart, so another worker's newer timestamp is normal, not a clock jump.
pub const CLOCK_STEP_BACK_MS: u64 = 1000;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: let it through; its outcome counts in `epoch`.
    Pass { epoch: u32 },
    /// Half-open: let it through as one of the probes of `epoch`.
    Probe { epoch: u32 },
    /// Open, or half-open with every probe taken: reject; a new call may be admitted (as a
    /// probe) in `retry_after_ms` at the earliest.
    Reject { retry_after_ms: u64 },
}

/// `Retry-After` of a rejection: whole seconds, rounded up, at least 1.
pub fn retry_after_s(retry_after_ms: u64) -> u64 {
    retry_after_ms.div_ceil(1000).max(1)
}

/// Why the breaker changed phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ConsecutiveFailures,
    FailureRate,
    SlowCallRate,
    OpenElapsed,
    ProbeFailed,
    ProbesSucceeded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::OpenElapsed => "open_duration_elapsed",
            Reason::ProbeFailed => "probe_failed",
            Reason::ProbesSucceeded => "probes_succeeded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub reason: Reason,
    /// The window as it was when the decision was taken.
    pub totals: Totals,
    pub consecutive_failures: u32,
    /// When the breaker opened: for how long.
    pub open_for_ms: Option<u64>,
}

/// Result of [`admit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub admission: Admission,
    pub transition: Option<Transition>,
    /// Unanswered probes given up on after `half_open.max_wait`.
    pub written_off: u32,
    /// The state changed and must be written back.
    pub changed: bool,
}

impl Admitted {
    /// A closed breaker's answer: pass, nothing changes.
    pub fn pass(epoch: u32) -> Admitted {
        Admitted {
            admission: Admission::Pass { epoch },
            transition: None,
            written_off: 0,
            changed: false,
        }
    }
}

/// How a finished call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// No response at all (client gone, stream reset before headers): neither.
    Unanswered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub slow: bool,
}

impl Outcome {
    /// The label used in stats and filter state.
    pub fn as_str(self) -> &'static str {
        let outcome = match (self.verdict, self.slow) {
            (Verdict::Failure, _) => BreakerOutcome::Failure,
            (_, true) => BreakerOutcome::Slow,
            (Verdict::Success, false) => BreakerOutcome::Success,
            (Verdict::Unanswered, false) => BreakerOutcome::Unanswered,
        };
        outcome.as_str()
    }
}

/// What Envoy reported about a finished call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    /// `:status` as the response passed the breaker; `None` or 0 when no response was sent.
    pub status: Option<u32>,
    /// `response.flags`.
    pub flags: u64,
    /// From the request's arrival to the response headers (or to the end, without response).
    pub latency_ms: u64,
    pub grpc: Grpc,
}

/// Whether a call was a gRPC call, and the status it ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grpc {
    #[default]
    NotGrpc,
    /// The status of its response once that ended (trailers-only headers, or trailers), as a
    /// gRPC client takes it (`grpc::status_of_ended_response`); `None` when the stream ended
    /// otherwise (reset, or a body without trailers).
    Call { status: Option<u32> },
}

/// Classifies a call. Envoy's error flags (connect failure, timeout, reset, …) count as
/// failures whatever the status; then the HTTP status list decides, then for a gRPC call its
/// gRPC status. A gRPC call whose response did not end with a status is judged by the status
/// its HTTP status maps to, unless that was 200: then its stream was cut (the client cancelled
/// it: Envoy's `DR`, an RST_STREAM) and it is unanswered, neither success nor failure.
pub fn classify(failure: &FailurePolicy, facts: CallFacts) -> Outcome {
    let slow = failure.slow_call_ms.is_some_and(|t| facts.latency_ms > t);
    let verdict = if failure.flags.intersects(facts.flags) {
        Verdict::Failure
    } else {
        match (facts.status, facts.grpc) {
            (Some(code), _) if code > 0 && failure.statuses.contains(code) => Verdict::Failure,
            (Some(code), Grpc::Call { status }) if code > 0 => {
                match status.or((code != 200).then(|| grpc::status_of_http(code))) {
                    Some(s) if failure.grpc_statuses.contains(s) => Verdict::Failure,
                    Some(_) => Verdict::Success,
                    None => Verdict::Unanswered,
                }
            }
            (Some(code), Grpc::NotGrpc) if code > 0 => Verdict::Success,
            _ => Verdict::Unanswered,
        }
    };
    Outcome { verdict, slow }
}

/// Result of [`record`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub transition: Option<Transition>,
    /// The outcome entered the state (it was current and countable).
    pub counted: bool,
    pub changed: bool,
}

/// Decides what to do with a new request at `now_ms`, claiming a half-open probe slot if one
/// is free. `jitter` is not needed here: only openings draw a duration.
pub fn admit(spec: &BreakerSpec, state: &mut BreakerState, now_ms: u64) -> Admitted {
    match state.phase {
        Phase::Closed => Admitted::pass(state.epoch),
        Phase::Open => {
            if let Some(rejected) = still_open(state.phase_since_ms, state.open_until_ms, now_ms) {
                return rejected;
            }
            let totals = state.window.totals(now_ms);
            enter(state, Phase::HalfOpen, now_ms);
            state.probes_admitted = 1;
            state.last_probe_ms = now_ms;
            Admitted {
                admission: Admission::Probe { epoch: state.epoch },
                transition: Some(Transition {
                    from: Phase::Open,
                    to: Phase::HalfOpen,
                    reason: Reason::OpenElapsed,
                    totals,
                    consecutive_failures: state.consecutive_failures,
                    open_for_ms: None,
                }),
                written_off: 0,
                changed: true,
            }
        }
        Phase::HalfOpen => {
            if state.probes_succeeded >= spec.half_open.probes {
                // Enough probes succeeded under a config that asked for more (a push lowered
                // `half_open.probes`): the breaker is healthy.
                let transition = close(spec, state, now_ms);
                return Admitted {
                    admission: Admission::Pass { epoch: state.epoch },
                    transition: Some(transition),
                    written_off: 0,
                    changed: true,
                };
            }
            if state.probes_admitted < spec.half_open.probes {
                state.probes_admitted += 1;
                state.last_probe_ms = now_ms;
                return Admitted {
                    admission: Admission::Probe { epoch: state.epoch },
                    transition: None,
                    written_off: 0,
                    changed: true,
                };
            }
            let in_flight = state.probes_admitted.saturating_sub(state.probes_succeeded);
            let overdue = now_ms
                >= state
                    .last_probe_ms
                    .saturating_add(spec.half_open.max_wait_ms)
                || stepped_back(now_ms, state.last_probe_ms);
            if in_flight > 0 && overdue {
                // Probes that never answered (client gone, stream reset, VM reloaded) must not
                // wedge the breaker: give up on them, ignore their late answers (new epoch) and
                // admit this request as a fresh probe.
                state.epoch = state.epoch.wrapping_add(1);
                state.probes_admitted = state.probes_succeeded + 1;
                state.last_probe_ms = now_ms;
                return Admitted {
                    admission: Admission::Probe { epoch: state.epoch },
                    transition: None,
                    written_off: in_flight,
                    changed: true,
                };
            }
            Admitted {
                // The breaker is deciding; the answer may come with the next probe response.
                admission: Admission::Reject {
                    retry_after_ms: 1000,
                },
                transition: None,
                written_off: 0,
                changed: false,
            }
        }
    }
}

/// Enters a call's outcome. `epoch` and `probe` come from its admission; `jitter_sample` is a
/// random value in [-1, 1] used if the breaker opens.
pub fn record(
    spec: &BreakerSpec,
    state: &mut BreakerState,
    epoch: u32,
    probe: bool,
    outcome: Outcome,
    now_ms: u64,
    jitter_sample: f64,
) -> Recorded {
    let ignored = Recorded {
        transition: None,
        counted: false,
        changed: false,
    };
    if epoch != state.epoch {
        // Admitted under a phase that has since ended.
        return ignored;
    }
    match state.phase {
        Phase::Open => ignored,
        Phase::Closed => {
            if probe || (outcome.verdict == Verdict::Unanswered && !outcome.slow) {
                return ignored;
            }
            // An unanswered call that already took longer than slow_call counts as slow: that is
            // how a hanging upstream shows when clients give up first.
            let failed = outcome.verdict == Verdict::Failure;
            state.window.record(now_ms, failed, outcome.slow);
            state.consecutive_failures = if failed {
                state.consecutive_failures.saturating_add(1)
            } else {
                0
            };
            let totals = state.window.totals(now_ms);
            let transition = trip_reason(spec, state, totals).map(|reason| {
                let open_for_ms = open(spec, state, now_ms, 0, jitter_sample);
                Transition {
                    from: Phase::Closed,
                    to: Phase::Open,
                    reason,
                    totals,
                    consecutive_failures: if reason == Reason::ConsecutiveFailures {
                        spec.trip.consecutive_failures.unwrap_or(0)
                    } else {
                        0
                    },
                    open_for_ms: Some(open_for_ms),
                }
            });
            Recorded {
                transition,
                counted: true,
                changed: true,
            }
        }
        Phase::HalfOpen => {
            if !probe {
                return ignored;
            }
            let probe_failed = outcome.verdict == Verdict::Failure
                || (outcome.slow && spec.trip.slow_call_rate.is_some());
            if probe_failed {
                let level = state.reopen_count.saturating_add(1);
                let totals = state.window.totals(now_ms);
                let open_for_ms = open(spec, state, now_ms, level, jitter_sample);
                return Recorded {
                    transition: Some(Transition {
                        from: Phase::HalfOpen,
                        to: Phase::Open,
                        reason: Reason::ProbeFailed,
                        totals,
                        consecutive_failures: 0,
                        open_for_ms: Some(open_for_ms),
                    }),
                    counted: true,
                    changed: true,
                };
            }
            if outcome.verdict == Verdict::Unanswered {
                // Free the slot at once so another probe can take it.
                state.probes_admitted = state.probes_admitted.saturating_sub(1);
                return Recorded {
                    transition: None,
                    counted: false,
                    changed: true,
                };
            }
            state.probes_succeeded = state.probes_succeeded.saturating_add(1);
            if state.probes_succeeded < spec.half_open.probes {
                return Recorded {
                    transition: None,
                    counted: true,
                    changed: true,
                };
            }
            Recorded {
                transition: Some(close(spec, state, now_ms)),
                counted: true,
                changed: true,
            }
        }
    }
}

fn trip_reason(spec: &BreakerSpec, state: &BreakerState, totals: Totals) -> Option<Reason> {
    let trip = &spec.trip;
    if trip
        .consecutive_failures
        .is_some_and(|n| state.consecutive_failures >= n)
    {
        return Some(Reason::ConsecutiveFailures);
    }
    if totals.calls < trip.minimum_calls {
        return None;
    }
    if trip
        .failure_rate
        .is_some_and(|r| totals.failure_rate() >= r)
    {
        return Some(Reason::FailureRate);
    }
    if trip
        .slow_call_rate
        .is_some_and(|r| totals.slow_call_rate() >= r)
    {
        return Some(Reason::SlowCallRate);
    }
    None
}

/// An open breaker's answer before its open period has elapsed: reject, with the seconds until
/// the first probe may go. `None` once it has elapsed (or the clock stepped back: that must not
/// hold the breaker open for the jump's length). The engine calls this on the state's header
/// alone, so rejections do not decode the window.
pub fn still_open(phase_since_ms: u64, open_until_ms: u64, now_ms: u64) -> Option<Admitted> {
    if now_ms >= open_until_ms || stepped_back(now_ms, phase_since_ms) {
        return None;
    }
    Some(Admitted {
        admission: Admission::Reject {
            retry_after_ms: open_until_ms - now_ms,
        },
        transition: None,
        written_off: 0,
        changed: false,
    })
}

fn stepped_back(now_ms: u64, stamp_ms: u64) -> bool {
    now_ms.saturating_add(CLOCK_STEP_BACK_MS) < stamp_ms
}

/// Closes a half-open breaker: fresh window, backoff reset.
fn close(spec: &BreakerSpec, state: &mut BreakerState, now_ms: u64) -> Transition {
    let totals = state.window.totals(now_ms);
    enter(state, Phase::Closed, now_ms);
    state.reopen_count = 0;
    state.window = Window::new(spec.trip.window);
    Transition {
        from: Phase::HalfOpen,
        to: Phase::Closed,
        reason: Reason::ProbesSucceeded,
        totals,
        consecutive_failures: 0,
        open_for_ms: None,
    }
}

/// Moves to `phase` at `now_ms`, starting a new epoch with no probes.
fn enter(state: &mut BreakerState, phase: Phase, now_ms: u64) {
    state.phase = phase;
    state.epoch = state.epoch.wrapping_add(1);
    state.phase_since_ms = now_ms;
    state.probes_admitted = 0;
    state.probes_succeeded = 0;
    state.consecutive_failures = 0;
}

/// Opens the breaker at backoff `level`; returns the open duration drawn.
fn open(
    spec: &BreakerSpec,
    state: &mut BreakerState,
    now_ms: u64,
    level: u32,
    jitter_sample: f64,
) -> u64 {
    let duration = open_duration_ms(spec, level, jitter_sample);
    enter(state, Phase::Open, now_ms);
    state.reopen_count = level;
    state.open_until_ms = now_ms.saturating_add(duration);
    duration
}

/// `duration × multiplier^level`, capped at `max_duration`, then spread by ± `jitter`.
pub fn open_duration_ms(spec: &BreakerSpec, level: u32, jitter_sample: f64) -> u64 {
    let open = &spec.open;
    let exponent = i32::try_from(level).unwrap_or(i32::MAX);
    let grown = open.duration_ms as f64 * open.backoff_multiplier.powi(exponent);
    let capped = grown.min(open.max_duration_ms as f64);
    let spread = 1.0 + open.jitter * jitter_sample.clamp(-1.0, 1.0);
    // `as` saturates for f64 → u64; NaN cannot occur with validated inputs but maps to 0.
    ((capped * spread).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BreakerConfig, WindowSpec};
    use breakwater_common::testing::test;

    const T0: u64 = 1_700_000_000_000;
    const OK: Outcome = Outcome {
        verdict: Verdict::Success,
        slow: false,
    };
    const FAIL: Outcome = Outcome {
        verdict: Verdict::Failure,
        slow: false,
    };
    const SLOW: Outcome = Outcome {
        verdict: Verdict::Success,
        slow: true,
    };
    const GONE: Outcome = Outcome {
        verdict: Verdict::Unanswered,
        slow: false,
    };

    fn spec(fields: &str) -> BreakerSpec {
        let json = format!(r#"{{"breakers":[{{"name":"b",{fields}}}]}}"#);
        BreakerConfig::parse(json.as_bytes())
            .unwrap()
            .breakers
            .remove(0)
    }

    fn simple() -> BreakerSpec {
        spec(
            r#""trip":{"consecutive_failures":3},"open":{"duration":"5s","jitter":0,"backoff_multiplier":2,"max_duration":"30s"},"half_open":{"probes":2,"max_wait":"10s"}"#,
        )
    }

    /// Admits then records one call, as the engine does.
    fn call(
        spec: &BreakerSpec,
        s: &mut BreakerState,
        now: u64,
        outcome: Outcome,
    ) -> (Admission, Option<Transition>) {
        let a = admit(spec, s, now);
        let (epoch, probe) = match a.admission {
            Admission::Pass { epoch } => (epoch, false),
            Admission::Probe { epoch } => (epoch, true),
            Admission::Reject { .. } => return (a.admission, a.transition),
        };
        let r = record(spec, s, epoch, probe, outcome, now, 0.0);
        (a.admission, r.transition.or(a.transition))
    }

    /// The `simple()` breaker, opened at `now` by three failures.
    fn opened_at(now: u64) -> (BreakerSpec, BreakerState) {
        let spec = simple();
        let mut s = BreakerState::fresh(spec.trip.window);
        open_breaker(&spec, &mut s, now);
        (spec, s)
    }

    fn open_breaker(spec: &BreakerSpec, s: &mut BreakerState, now: u64) {
        for _ in 0..3 {
            call(spec, s, now, FAIL);
        }
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn trips_exactly_at_the_nth_consecutive_failure() {
        let spec = simple();
        let mut s = BreakerState::fresh(spec.trip.window);
        assert_eq!(call(&spec, &mut s, T0, FAIL).1, None);
        assert_eq!(call(&spec, &mut s, T0, FAIL).1, None);
        let (_, t) = call(&spec, &mut s, T0, FAIL);
        let t = t.unwrap();
        assert_eq!(
            (t.from, t.to, t.reason),
            (Phase::Closed, Phase::Open, Reason::ConsecutiveFailures)
        );
        assert_eq!(t.open_for_ms, Some(5000));
        assert_eq!(s.open_until_ms, T0 + 5000);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let spec = simple();
        let mut s = BreakerState::fresh(spec.trip.window);
        for _ in 0..10 {
            call(&spec, &mut s, T0, FAIL);
            call(&spec, &mut s, T0, FAIL);
            call(&spec, &mut s, T0, OK);
        }
        assert_eq!(s.phase, Phase::Closed);
    }

    #[test]
    fn rejects_while_open_with_retry_after() {
        let (spec, mut s) = opened_at(T0);
        let a = admit(&spec, &mut s, T0 + 1);
        assert_eq!(
            a.admission,
            Admission::Reject {
                retry_after_ms: 4999
            }
        );
        assert_eq!(retry_after_s(4999), 5);
        assert!(!a.changed);
        assert_eq!(
            admit(&spec, &mut s, T0 + 4001).admission,
            Admission::Reject {
                retry_after_ms: 999
            }
        );
        assert_eq!(retry_after_s(999), 1);
        assert_eq!(
            admit(&spec, &mut s, T0 + 3999).admission,
            Admission::Reject {
                retry_after_ms: 1001
            }
        );
        assert_eq!(retry_after_s(1001), 2);
    }

    #[test]
    fn outcomes_of_calls_admitted_before_opening_are_ignored() {
        let spec = simple();
        let mut s = BreakerState::fresh(spec.trip.window);
        let Admission::Pass { epoch } = admit(&spec, &mut s, T0).admission else {
            panic!()
        };
        open_breaker(&spec, &mut s, T0);
        let r = record(&spec, &mut s, epoch, false, OK, T0, 0.0);
        assert!(!r.counted && !r.changed);
    }

    #[test]
    fn half_open_admits_exactly_the_probes() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        let first = admit(&spec, &mut s, t);
        assert!(matches!(first.admission, Admission::Probe { .. }));
        assert_eq!(
            first.transition.map(|t| (t.from, t.to, t.reason)),
            Some((Phase::Open, Phase::HalfOpen, Reason::OpenElapsed))
        );
        assert!(matches!(
            admit(&spec, &mut s, t).admission,
            Admission::Probe { .. }
        ));
        for _ in 0..100 {
            assert_eq!(
                admit(&spec, &mut s, t).admission,
                Admission::Reject {
                    retry_after_ms: 1000
                }
            );
        }
        assert_eq!(s.probes_admitted, 2);
    }

    #[test]
    fn all_probes_succeeding_closes_and_resets_backoff() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        let Admission::Probe { epoch } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        admit(&spec, &mut s, t);
        assert_eq!(
            record(&spec, &mut s, epoch, true, OK, t, 0.0).transition,
            None
        );
        assert_eq!(s.phase, Phase::HalfOpen);
        let r = record(&spec, &mut s, epoch, true, OK, t, 0.0);
        assert_eq!(
            r.transition.map(|t| (t.to, t.reason)),
            Some((Phase::Closed, Reason::ProbesSucceeded))
        );
        assert_eq!(s.reopen_count, 0);
        assert_eq!(
            s.window.totals(t).calls,
            0,
            "a closed breaker starts with an empty window"
        );
        assert!(matches!(
            admit(&spec, &mut s, t).admission,
            Admission::Pass { .. }
        ));
    }

    #[test]
    fn a_failed_probe_reopens_with_backoff_up_to_the_cap() {
        let (spec, mut s) = opened_at(T0);
        let mut now = T0;
        let mut durations = vec![s.open_until_ms - now];
        for _ in 0..5 {
            now = s.open_until_ms;
            let (adm, t) = call(&spec, &mut s, now, FAIL);
            assert!(matches!(adm, Admission::Probe { .. }));
            assert_eq!(t.map(|t| t.reason), Some(Reason::ProbeFailed));
            durations.push(s.open_until_ms - now);
        }
        assert_eq!(
            durations,
            vec![5000, 10_000, 20_000, 30_000, 30_000, 30_000]
        );
        // Recovery resets the backoff: the next opening lasts the base duration again.
        now = s.open_until_ms;
        call(&spec, &mut s, now, OK);
        call(&spec, &mut s, now, OK);
        assert_eq!(s.phase, Phase::Closed);
        open_breaker(&spec, &mut s, now);
        assert_eq!(s.open_until_ms - now, 5000);
    }

    #[test]
    fn late_answers_from_an_earlier_half_open_round_are_ignored() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        let Admission::Probe { epoch: old } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        // A second probe fails → open again; the first probe's success arrives late.
        let Admission::Probe { epoch } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        record(&spec, &mut s, epoch, true, FAIL, t, 0.0);
        assert_eq!(s.phase, Phase::Open);
        let r = record(&spec, &mut s, old, true, OK, t, 0.0);
        assert!(!r.counted);
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn unanswered_probes_are_written_off_after_max_wait() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        let Admission::Probe { epoch: stuck } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        admit(&spec, &mut s, t);
        assert_eq!(
            admit(&spec, &mut s, t + 9_999).admission,
            Admission::Reject {
                retry_after_ms: 1000
            }
        );
        let a = admit(&spec, &mut s, t + 10_000);
        assert_eq!(a.written_off, 2);
        let Admission::Probe { epoch } = a.admission else {
            panic!()
        };
        assert_ne!(epoch, stuck);
        // The stuck probe answering now changes nothing.
        assert!(!record(&spec, &mut s, stuck, true, OK, t + 10_001, 0.0).counted);
        // One more probe slot is free, then the round is full again.
        assert!(matches!(
            admit(&spec, &mut s, t + 10_001).admission,
            Admission::Probe { .. }
        ));
        assert!(matches!(
            admit(&spec, &mut s, t + 10_001).admission,
            Admission::Reject { .. }
        ));
        record(&spec, &mut s, epoch, true, OK, t + 10_002, 0.0);
        record(&spec, &mut s, epoch, true, OK, t + 10_002, 0.0);
        assert_eq!(s.phase, Phase::Closed);
    }

    #[test]
    fn a_probe_without_response_frees_its_slot_at_once() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        let Admission::Probe { epoch } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        admit(&spec, &mut s, t);
        let r = record(&spec, &mut s, epoch, true, GONE, t, 0.0);
        assert!(r.changed && !r.counted && r.transition.is_none());
        assert!(matches!(
            admit(&spec, &mut s, t).admission,
            Admission::Probe { .. }
        ));
    }

    #[test]
    fn failure_rate_needs_minimum_calls() {
        let spec = spec(
            r#""trip":{"failure_rate":50,"minimum_calls":10,"window":{"kind":"count","size":20}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        for _ in 0..9 {
            call(&spec, &mut s, T0, FAIL);
        }
        assert_eq!(s.phase, Phase::Closed, "9 failures < minimum_calls");
        let (_, t) = call(&spec, &mut s, T0, FAIL);
        let t = t.unwrap();
        assert_eq!(t.reason, Reason::FailureRate);
        assert_eq!(t.totals.calls, 10);
    }

    #[test]
    fn failure_rate_trips_at_the_threshold_not_below() {
        let spec = spec(
            r#""trip":{"failure_rate":50,"minimum_calls":10,"window":{"kind":"count","size":10}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        // 4 failures in 10 calls (40 %), then alternate: the rate stays at 40–50 %.
        for i in 0..10 {
            call(&spec, &mut s, T0, if i < 4 { FAIL } else { OK });
        }
        assert_eq!(s.phase, Phase::Closed);
        // The next failure replaces a failure (slot 0): still 4/10.
        call(&spec, &mut s, T0, FAIL);
        assert_eq!(s.phase, Phase::Closed);
        assert_eq!(s.window.totals(T0).failures, 4);
        // Failures replacing successes push it to 50 %.
        for _ in 0..3 {
            call(&spec, &mut s, T0, FAIL);
        }
        assert_eq!(s.window.totals(T0).failures, 4);
        call(&spec, &mut s, T0, FAIL);
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn one_percent_noise_never_opens_a_fifty_percent_breaker() {
        let spec = spec(
            r#""trip":{"failure_rate":50,"minimum_calls":20,"window":{"kind":"count","size":100}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        for i in 1..=100_000u64 {
            call(&spec, &mut s, T0 + i, if i % 100 == 0 { FAIL } else { OK });
        }
        assert_eq!(s.phase, Phase::Closed);
        assert_eq!(s.window.totals(T0).failures, 1);
    }

    #[test]
    fn slow_call_rate_trips() {
        let spec = spec(
            r#""failure":{"slow_call":"100ms"},"trip":{"slow_call_rate":80,"minimum_calls":5,"window":{"kind":"count","size":5}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        call(&spec, &mut s, T0, OK);
        for _ in 0..3 {
            call(&spec, &mut s, T0, SLOW);
        }
        let (_, t) = call(&spec, &mut s, T0, OK);
        assert!(t.is_none(), "3 of 5 slow = 60 %");
        // The next slow call pushes the oldest (fast) call out of the window.
        let (_, t) = call(&spec, &mut s, T0, SLOW);
        assert_eq!(
            t.map(|t| t.reason),
            Some(Reason::SlowCallRate),
            "4 of 5 slow = 80 %"
        );
    }

    #[test]
    fn unanswered_calls_count_only_when_slow() {
        let spec = spec(
            r#""failure":{"slow_call":"100ms"},"trip":{"slow_call_rate":100,"minimum_calls":2,"window":{"kind":"count","size":2}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        call(&spec, &mut s, T0, GONE);
        assert_eq!(s.window.totals(T0).calls, 0);
        let slow_gone = Outcome {
            verdict: Verdict::Unanswered,
            slow: true,
        };
        call(&spec, &mut s, T0, slow_gone);
        call(&spec, &mut s, T0, slow_gone);
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn time_window_rate() {
        let spec = spec(
            r#""trip":{"failure_rate":50,"minimum_calls":4,"window":{"kind":"time","size":"10s","buckets":10}}"#,
        );
        let mut s = BreakerState::fresh(spec.trip.window);
        // Old failures age out of the window before new ones arrive.
        call(&spec, &mut s, T0, FAIL);
        call(&spec, &mut s, T0, FAIL);
        call(&spec, &mut s, T0, FAIL);
        let later = T0 + 11_000;
        call(&spec, &mut s, later, OK);
        call(&spec, &mut s, later, OK);
        call(&spec, &mut s, later, OK);
        assert_eq!(s.phase, Phase::Closed);
        call(&spec, &mut s, later, FAIL);
        call(&spec, &mut s, later, FAIL);
        assert_eq!(s.phase, Phase::Closed, "2 of 5 = 40 %");
        call(&spec, &mut s, later, FAIL);
        assert_eq!(s.phase, Phase::Open, "3 of 6 = 50 %");
    }

    #[test]
    fn a_slow_probe_fails_only_when_slowness_trips() {
        let lenient = spec(
            r#""failure":{"slow_call":"100ms"},"trip":{"consecutive_failures":1},"open":{"jitter":0},"half_open":{"probes":1}"#,
        );
        let mut s = BreakerState::fresh(lenient.trip.window);
        call(&lenient, &mut s, T0, FAIL);
        let until = s.open_until_ms;
        call(&lenient, &mut s, until, SLOW);
        assert_eq!(s.phase, Phase::Closed);
        let strict = spec(
            r#""failure":{"slow_call":"100ms"},"trip":{"consecutive_failures":1,"slow_call_rate":50},"open":{"jitter":0},"half_open":{"probes":1}"#,
        );
        let mut s = BreakerState::fresh(strict.trip.window);
        call(&strict, &mut s, T0, FAIL);
        let until = s.open_until_ms;
        call(&strict, &mut s, until, SLOW);
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn lowering_probes_in_a_config_push_does_not_wedge_half_open() {
        let (spec, mut s) = opened_at(T0);
        let t = T0 + 5000;
        // Under `probes: 2`, one probe was admitted and succeeded...
        let Admission::Probe { epoch } = admit(&spec, &mut s, t).admission else {
            panic!()
        };
        record(&spec, &mut s, epoch, true, OK, t, 0.0);
        // ...then a push lowers it to 1: the next request closes the breaker.
        let mut lowered = spec.clone();
        lowered.half_open.probes = 1;
        let a = admit(&lowered, &mut s, t + 1);
        assert!(matches!(a.admission, Admission::Pass { .. }));
        assert_eq!(a.transition.map(|t| t.to), Some(Phase::Closed));
        assert_eq!(s.phase, Phase::Closed);
    }

    #[test]
    fn another_workers_newer_timestamp_is_not_a_clock_step() {
        // Worker A read the clock at T; worker B opened the breaker at T + 1 ms.
        let (spec, mut s) = opened_at(T0 + 1);
        assert!(matches!(
            admit(&spec, &mut s, T0).admission,
            Admission::Reject { .. }
        ));
        // Half-open, all slots taken by a probe stamped 1 ms after A's clock reading.
        let t = s.open_until_ms;
        admit(&spec, &mut s, t + 1);
        admit(&spec, &mut s, t + 1);
        let a = admit(&spec, &mut s, t);
        assert_eq!(a.written_off, 0, "live probes are not written off");
        assert!(matches!(a.admission, Admission::Reject { .. }));
    }

    #[test]
    fn clock_stepping_back_does_not_wedge_open() {
        let (spec, mut s) = opened_at(T0);
        assert!(matches!(
            admit(&spec, &mut s, T0 - 3_600_000).admission,
            Admission::Probe { .. }
        ));
    }

    #[test]
    fn classification() {
        let failure = spec(
            r#""failure":{"statuses":["5xx", 429],"response_flags":["UF","UT"],"slow_call":"1s"}"#,
        )
        .failure;
        let c = |status: Option<u32>, flags: u64, latency_ms: u64| {
            classify(
                &failure,
                CallFacts {
                    status,
                    flags,
                    latency_ms,
                    grpc: Grpc::NotGrpc,
                },
            )
        };
        assert_eq!(c(Some(200), 0, 5), OK);
        assert_eq!(c(Some(503), 0, 5), FAIL);
        assert_eq!(c(Some(429), 0, 5), FAIL);
        assert_eq!(c(Some(404), 0, 5), OK);
        assert_eq!(
            c(Some(200), 0x20, 5).verdict,
            Verdict::Failure,
            "flags win over the status"
        );
        assert_eq!(
            c(Some(200), 0x4000, 5),
            OK,
            "flags outside the list do not count"
        );
        assert_eq!(c(None, 0, 5), GONE);
        assert_eq!(c(Some(0), 0, 5), GONE);
        assert_eq!(c(Some(200), 0, 1000), OK, "at the threshold is not slow");
        assert_eq!(c(Some(200), 0, 1001), SLOW);
        assert_eq!(c(Some(200), 0, 1001).as_str(), "slow");
        assert_eq!(c(Some(500), 0, 1001).as_str(), "failure");
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let spec = spec(r#""open":{"duration":"10s","jitter":0.2}"#);
        assert_eq!(open_duration_ms(&spec, 0, 0.0), 10_000);
        assert_eq!(open_duration_ms(&spec, 0, 1.0), 12_000);
        assert_eq!(open_duration_ms(&spec, 0, -1.0), 8000);
        assert_eq!(
            open_duration_ms(&spec, 0, 7.0),
            12_000,
            "samples are clamped"
        );
        // Huge levels saturate at the cap instead of overflowing.
        assert_eq!(open_duration_ms(&spec, u32::MAX, 0.0), 60_000);
    }

    #[test]
    fn dry_run_and_window_specs_are_independent_of_policy() {
        // The policy never looks at the mode: dry_run and enforce share one state machine.
        let spec = spec(r#""mode":"dry_run","trip":{"consecutive_failures":1}"#);
        let mut s = BreakerState::fresh(WindowSpec::Count { size: 100 });
        call(&spec, &mut s, T0, FAIL);
        assert_eq!(s.phase, Phase::Open);
    }
}
