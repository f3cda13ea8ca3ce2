//! The circuit breaker's engine driven by a fuzzed sequence of events on two workers sharing
//! one (fake) shared data: admit, complete a ticket with an outcome, advance the clock (or step
//! it back, as another worker's clock may be), switch worker. Invariants after every event:
//! the state gauge is 0, 1 or 2; counters never decrease or go negative (no wrap); and a
//! half-open period admits at most `half_open.probes` probes, plus one per probe it gave up on
//! (`probes_written_off`) or that ended unanswered (which frees its slot).

use crate::bytes::Bytes;
use breakwater_common::host::fake::{FakeHost, FakeRequest};
use circuit_breaker::config::BreakerConfig;
use circuit_breaker::engine::{Decision, Engine, RequestVerdict, Ticket, WorkerState};
use circuit_breaker::policy::Verdict;

const T0: u64 = 1_700_000_000_000;

/// Fixed configurations, chosen by the first byte, and their `half_open.probes`.
const CONFIGS: &[(&str, u64)] = &[
    (
        r#"{"name":"b","trip":{"consecutive_failures":3},
        "open":{"duration":"5s","jitter":0,"max_duration":"20s"},
        "half_open":{"probes":2,"max_wait":"10s"}}"#,
        2,
    ),
    (
        r#"{"name":"b","trip":{"failure_rate":50,"minimum_calls":4,"window":{"kind":"count","size":8}},
        "open":{"duration":"1s","backoff_multiplier":2,"max_duration":"30s","jitter":0.5},
        "half_open":{"probes":3,"max_wait":"2s"}}"#,
        3,
    ),
    (
        r#"{"name":"b","failure":{"hang_after":"300ms"},"trip":{"consecutive_failures":2},
        "open":{"duration":"1s","jitter":0.2},"half_open":{"probes":1,"max_wait":"1s"}}"#,
        1,
    ),
    (
        r#"{"name":"b","failure":{"slow_call":"100ms","hang_after":"2s","statuses":["5xx"]},
        "trip":{"slow_call_rate":50,"failure_rate":60,"minimum_calls":2,
        "window":{"kind":"time","size":"10s","buckets":5}},
        "open":{"duration":"500ms","backoff_multiplier":3,"max_duration":"1m"},
        "half_open":{"probes":5,"max_wait":"700ms"}}"#,
        5,
    ),
    (
        r#"{"name":"b","mode":"dry_run","failure":{"slow_call":"50ms"},
        "trip":{"consecutive_failures":1,"slow_call_rate":1,"minimum_calls":1},
        "open":{"duration":"200ms","jitter":0.9},"half_open":{"probes":2,"max_wait":"300ms"}}"#,
        2,
    ),
];

const COUNTERS: &[&str] = &[
    "calls.success",
    "calls.failure",
    "calls.slow",
    "calls.unanswered",
    "calls.hung",
    "rejected",
    "dry_run_would_reject",
    "probes",
    "probes_written_off",
    "transitions.opened",
    "transitions.half_opened",
    "transitions.closed",
    "state_errors",
];

const STATUSES: [Option<u32>; 8] = [
    Some(200),
    Some(503),
    Some(500),
    Some(404),
    Some(0),
    None,
    Some(502),
    Some(204),
];

const STEPS_MS: [u64; 8] = [1, 50, 101, 301, 999, 2_001, 5_000, 60_000];

fn stat(name: &str) -> String {
    format!("breakwater.circuit_breaker.b.{name}")
}

fn names(host: &FakeHost) -> Vec<Option<String>> {
    COUNTERS
        .iter()
        .chain(["state"].iter())
        .map(|n| Some(stat(n)).filter(|name| host.defined(name)))
        .collect()
}

struct Checker {
    /// The counters' stat names (`None`: not defined for this config), then the state gauge's.
    names: Vec<Option<String>>,
    probes: u64,
    last: Vec<i64>,
    transitions: i64,
    period_probes: u64,
    period_freed: u64,
}

impl Checker {
    /// Checks the stats after one event; `probe` and `unanswered_probe` describe that event.
    fn check(&mut self, host: &FakeHost, probe: bool, unanswered_probe: bool, what: &str) {
        let state = host.metric(
            self.names[COUNTERS.len()]
                .as_deref()
                .expect("a state gauge"),
        );
        assert!((0..=2).contains(&state), "state gauge {state} after {what}");
        let mut values = Vec::with_capacity(COUNTERS.len());
        for i in 0..COUNTERS.len() {
            let Some(name) = &self.names[i] else {
                values.push(0);
                continue;
            };
            let value = host.metric(name);
            assert!(value >= 0, "{name} = {value} after {what}");
            assert!(
                value >= self.last[i],
                "{name} went down from {} to {value} after {what}",
                self.last[i]
            );
            values.push(value);
        }
        let transitions = values[9] + values[10] + values[11];
        let written_off = (values[8] - self.last[8]) as u64;
        if transitions != self.transitions {
            // A new period; an admission that half-opened the breaker is its first probe.
            self.period_probes = 0;
            self.period_freed = 0;
        } else {
            self.period_freed += written_off + u64::from(unanswered_probe);
        }
        self.period_probes += u64::from(probe);
        assert!(
            self.period_probes <= self.probes + self.period_freed,
            "{} probes admitted in one half-open period (probes: {}, freed: {}) after {what}",
            self.period_probes,
            self.probes,
            self.period_freed
        );
        self.transitions = transitions;
        self.last = values;
    }
}

pub fn breaker_state_machine(data: &[u8]) {
    let mut input = Bytes::new(data);
    let (json, probes) = CONFIGS[usize::from(input.byte()) % CONFIGS.len()];
    let config = BreakerConfig::parse(format!(r#"{{"breakers":[{json}]}}"#).as_bytes())
        .expect("fixed configs are valid");
    let host = FakeHost::new(T0);
    let engine = Engine::new(config, "fuzz", &host);
    engine.prepare(&host);
    let mut workers = [WorkerState::new(&engine, 1), WorkerState::new(&engine, 2)];
    let mut current = 0usize;
    let mut tickets: Vec<(usize, Ticket)> = Vec::new();
    let request = FakeRequest::get("/anything");
    let mut checker = Checker {
        names: names(&host),
        probes,
        last: vec![0; COUNTERS.len()],
        transitions: 0,
        period_probes: 0,
        period_freed: 0,
    };
    checker.check(&host, false, false, "prepare");
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        steps += 1;
        let op = input.byte();
        let arg = input.byte();
        let (mut probe, mut unanswered_probe) = (false, false);
        let what = match op % 8 {
            0..=2 => {
                match engine.on_request(&host, &mut workers[current], &request) {
                    RequestVerdict::Admitted(ticket) => {
                        probe = ticket.decision == Decision::Probe;
                        if tickets.len() < 2048 {
                            tickets.push((current, ticket));
                        }
                    }
                    RequestVerdict::Rejected(rejection) => {
                        assert!(
                            engine.reply(&rejection, false).is_some(),
                            "a rejection without reply"
                        );
                    }
                    RequestVerdict::NotMatched => panic!("the catch-all breaker did not match"),
                }
                "admit"
            }
            3 | 4 => {
                if !tickets.is_empty() {
                    let (worker, ticket) = tickets.swap_remove(usize::from(arg) % tickets.len());
                    let status = STATUSES[usize::from(arg >> 5)];
                    let flags = if op & 0x80 != 0 {
                        1u64 << (arg % 24)
                    } else {
                        0
                    };
                    let responded =
                        (op & 0x40 != 0).then(|| ticket.arrived_ms + u64::from(arg % 8) * 30);
                    let outcome = engine.on_complete(
                        &host,
                        &mut workers[worker],
                        &ticket,
                        status,
                        flags,
                        responded,
                    );
                    unanswered_probe = ticket.decision == Decision::Probe
                        && outcome.is_some_and(|o| o.verdict == Verdict::Unanswered);
                }
                "complete"
            }
            5 => {
                host.advance(STEPS_MS[usize::from(arg % 8)] * (u64::from(arg >> 3) + 1));
                "advance"
            }
            6 => {
                // Another worker's clock may be a little behind; rarely, the clock jumps back.
                let back = if arg == 255 {
                    3_600_000
                } else {
                    u64::from(arg) * 4
                };
                host.now.set(host.now.get().saturating_sub(back));
                "step back"
            }
            _ => {
                current = 1 - current;
                "switch"
            }
        };
        checker.check(&host, probe, unanswered_probe, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(probes: u64) -> (FakeHost, Engine, Checker) {
        let host = FakeHost::new(T0);
        let config =
            BreakerConfig::parse(format!(r#"{{"breakers":[{}]}}"#, CONFIGS[0].0).as_bytes())
                .unwrap();
        let engine = Engine::new(config, "fuzz", &host);
        engine.prepare(&host);
        let checker = Checker {
            names: names(&host),
            probes,
            last: vec![0; COUNTERS.len()],
            transitions: 0,
            period_probes: 0,
            period_freed: 0,
        };
        (host, engine, checker)
    }

    #[test]
    #[should_panic(expected = "probes admitted in one half-open period")]
    fn too_many_probes_in_a_period_fail() {
        let (host, _engine, mut checker) = checker(2);
        for _ in 0..3 {
            checker.check(&host, true, false, "admit");
        }
    }

    #[test]
    fn a_written_off_or_unanswered_probe_frees_a_slot() {
        let (host, _engine, mut checker) = checker(1);
        checker.check(&host, true, false, "admit");
        checker.check(&host, false, true, "complete");
        checker.check(&host, true, false, "admit");
    }

    #[test]
    fn sequences_run_on_every_config() {
        // Admit/complete/advance/switch patterns long enough to open, half-open and close.
        for config in 0..CONFIGS.len() as u8 {
            let mut data = vec![config];
            for round in 0..40u8 {
                data.extend_from_slice(&[0, 0, 3, 0x20, 0, 0, 3, 0x20, 5, 6 + round % 3, 7, 0]);
                data.extend_from_slice(&[0, 0, 3, round, 6, 10]);
            }
            breaker_state_machine(&data);
        }
    }
}
