//! Property tests of the pure parts of the breaker: the windows, the open-duration backoff, the
//! state encoding and the admission while open.
//!
//! They are plain `#[test]` fns (the crate's `test` attribute, so they also run under
//! wasm-bindgen-test in Node) that drive a [`TestRunner`] themselves: `proptest!` would only
//! emit native `#[test]`s. Each property checks it ran the number of cases it asked for, so a
//! runner that quietly did nothing fails.

use crate::config::{BreakerConfig, BreakerSpec, WindowSpec, MAX_COUNT_WINDOW, MAX_TIME_BUCKETS};
use crate::policy::{
    admit, open_duration_ms, record, retry_after_s, still_open, Admission, Outcome, Verdict,
    CLOCK_STEP_BACK_MS,
};
use crate::state::{BreakerState, Phase};
use crate::window::{Totals, Window};
use breakwater_common::codec::Reader;
use breakwater_common::duration::MAX_MILLIS;
use breakwater_common::testing::test;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};
use std::cell::Cell;
use std::fmt::Debug;

/// Cases per property: proptest's default on wasm32 (Node), more natively where it is cheap.
const CASES: u32 = if cfg!(target_arch = "wasm32") {
    256
} else {
    1024
};

/// Runs `property` on `cases` values of `strategy`; panics with the minimal failing input.
/// The seed is fixed (reproducible runs, no OS randomness needed on wasm32); set
/// `BREAKWATER_PROPTEST_RANDOM=1` natively for a fresh seed, `PROPTEST_CASES=N` for more cases.
fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    // Natively, PROPTEST_CASES=N runs N cases per property (for a longer exploration).
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(n) if !cfg!(target_arch = "wasm32") => n.parse().unwrap_or(cases),
        _ => cases,
    };
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let random = !cfg!(target_arch = "wasm32")
        && std::env::var("BREAKWATER_PROPTEST_RANDOM").is_ok_and(|v| v == "1");
    let mut runner = if random {
        TestRunner::new(config)
    } else {
        let algorithm = config.rng_algorithm;
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(algorithm))
    };
    let ran = Cell::new(0u32);
    let result = runner.run(&strategy, |value| {
        ran.set(ran.get() + 1);
        property(value)
    });
    if let Err(e) = result {
        panic!("property {name} failed: {e}");
    }
    assert!(
        ran.get() >= cases,
        "property {name} ran {} cases, wanted {cases}",
        ran.get()
    );
}

fn parse_spec(fields: &str) -> BreakerSpec {
    let json = format!(r#"{{"breakers":[{{"name":"b",{fields}}}]}}"#);
    match BreakerConfig::parse(json.as_bytes()) {
        Ok(mut c) => c.breakers.remove(0),
        Err(e) => panic!("{json}: {e:?}"),
    }
}

/// A count size, biased to small sizes (where wrapping happens often) but up to the maximum.
fn count_size() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 1u32..=20, 1 => 1u32..=MAX_COUNT_WINDOW]
}

/// A valid time window: `(size_ms, buckets)` with at least 10 ms per bucket.
fn time_spec() -> impl Strategy<Value = (u64, u32)> {
    (1u32..=MAX_TIME_BUCKETS).prop_flat_map(|buckets| {
        let min = u64::from(buckets) * 10;
        (
            prop_oneof![3 => min..=min + 5_000, 1 => min..=MAX_MILLIS],
            Just(buckets),
        )
    })
}

fn window_spec() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        count_size().prop_map(|size| WindowSpec::Count { size }),
        time_spec().prop_map(|(size_ms, buckets)| WindowSpec::Time { size_ms, buckets }),
    ]
}

fn roundtrip_window(w: &Window, spec: WindowSpec) -> Option<Window> {
    let mut out = Vec::new();
    w.encode(&mut out);
    let mut r = Reader::new(&out);
    let back = Window::decode(&mut r, spec);
    back.filter(|_| r.is_empty())
}

#[test]
fn count_window_holds_exactly_the_last_size_calls() {
    let calls = proptest::collection::vec((any::<bool>(), any::<bool>()), 0..2500);
    check(
        "count window",
        CASES,
        (count_size(), calls),
        |(size, calls)| {
            let spec = WindowSpec::Count { size };
            let mut w = Window::new(spec);
            let (mut failures, mut slow) = (0u32, 0u32);
            for (i, &(f, s)) in calls.iter().enumerate() {
                w.record(0, f, s);
                failures += u32::from(f);
                slow += u32::from(s);
                if let Some(&(old_f, old_s)) = i.checked_sub(size as usize).map(|j| &calls[j]) {
                    failures -= u32::from(old_f);
                    slow -= u32::from(old_s);
                }
                let held = (i as u32 + 1).min(size);
                let totals = w.totals(0);
                prop_assert_eq!(
                    totals,
                    Totals {
                        calls: held,
                        failures,
                        slow
                    },
                    "after call {}",
                    i
                );
                prop_assert!(totals.calls <= size);
                prop_assert!(totals.failure_rate() <= 100.0 && totals.slow_call_rate() <= 100.0);
            }
            prop_assert_eq!(roundtrip_window(&w, spec), Some(w.clone()));
            Ok(())
        },
    );
}

/// Calls at a clock that moves forward by small steps (same bucket, next bucket) and sometimes
/// jumps past the whole window.
fn timed_calls(bucket_ms: u64, span: u64) -> impl Strategy<Value = Vec<(u64, bool, bool)>> {
    let window_ms = bucket_ms.saturating_mul(span);
    let step = prop_oneof![
        4 => 0..=bucket_ms / 2,
        4 => 0..=bucket_ms.saturating_mul(2),
        1 => window_ms.saturating_sub(bucket_ms)..=window_ms.saturating_add(bucket_ms),
        1 => 0..=window_ms.saturating_mul(3),
    ];
    proptest::collection::vec((step, any::<bool>(), any::<bool>()), 0..300)
}

#[test]
fn time_window_counts_only_calls_inside_its_period() {
    let strategy = (time_spec(), 0u64..=1_800_000_000_000).prop_flat_map(|((size_ms, n), t0)| {
        let bucket_ms = size_ms.div_ceil(u64::from(n)).max(1);
        (Just((size_ms, n, t0)), timed_calls(bucket_ms, u64::from(n)))
    });
    check(
        "time window",
        CASES,
        strategy,
        |((size_ms, buckets, t0), calls)| {
            let spec = WindowSpec::Time { size_ms, buckets };
            let bucket_ms = size_ms.div_ceil(u64::from(buckets)).max(1);
            let span = u64::from(buckets);
            let mut w = Window::new(spec);
            let mut now = t0;
            let mut seen: Vec<(u64, bool, bool)> = Vec::new();
            for &(step, f, s) in &calls {
                now += step;
                w.record(now, f, s);
                seen.push((now, f, s));
                // Check at the call and a little later (nothing recorded in between).
                for probe in [now, now + bucket_ms / 2, now + size_ms] {
                    let totals = w.totals(probe);
                    // The exact rule: calls of the last `buckets` bucket periods.
                    let current = probe / bucket_ms;
                    let inside = seen
                        .iter()
                        .filter(|(t, _, _)| current - t / bucket_ms < span);
                    let expected = inside.fold(Totals::default(), |acc, &(_, f, s)| Totals {
                        calls: acc.calls + 1,
                        failures: acc.failures + u32::from(f),
                        slow: acc.slow + u32::from(s),
                    });
                    prop_assert_eq!(totals, expected, "at {}", probe);
                    // In plain time: every call younger than (buckets-1) bucket widths counts,
                    // none older than the buckets' whole span (≥ size) does.
                    let sure = seen
                        .iter()
                        .filter(|(t, _, _)| probe - t <= (span - 1) * bucket_ms)
                        .count();
                    let possible = seen
                        .iter()
                        .filter(|(t, _, _)| probe - t < span * bucket_ms)
                        .count();
                    prop_assert!(sure as u32 <= totals.calls && totals.calls <= possible as u32);
                    prop_assert!(totals.failures <= totals.calls && totals.slow <= totals.calls);
                }
            }
            prop_assert_eq!(roundtrip_window(&w, spec), Some(w.clone()));
            Ok(())
        },
    );
}

/// Encodes a time window by hand, with arbitrary bucket contents (counts near `u32::MAX`, which
/// real traffic would take years to reach).
fn time_window_bytes(bucket_ms: u64, buckets: &[(u64, u32, u32, u32)]) -> Vec<u8> {
    let mut out = vec![2u8];
    out.extend_from_slice(&bucket_ms.to_le_bytes());
    out.extend_from_slice(&(buckets.len() as u32).to_le_bytes());
    for &(period, calls, failures, slow) in buckets {
        out.extend_from_slice(&period.to_le_bytes());
        out.extend_from_slice(&calls.to_le_bytes());
        out.extend_from_slice(&failures.to_le_bytes());
        out.extend_from_slice(&slow.to_le_bytes());
    }
    out
}

#[test]
fn time_window_totals_saturate_instead_of_overflowing() {
    let big = prop_oneof![
        Just(u32::MAX),
        Just(u32::MAX - 1),
        u32::MAX - 1000..=u32::MAX,
        any::<u32>()
    ];
    // One bucket: its round relative to the current one (-1: old, 0: current, 1: from the
    // future), calls near u32::MAX, failures and slow calls among them.
    let bucket = (-1i64..=1, big.clone(), any::<u32>(), any::<u32>());
    let strategy = (1u32..=MAX_TIME_BUCKETS, 1u64..=1000, 0u64..=1_000_000).prop_flat_map(
        move |(n, bucket_ms, current)| {
            (
                Just((n, bucket_ms, current)),
                proptest::collection::vec(bucket.clone(), n as usize),
                any::<(bool, bool)>(),
            )
        },
    );
    check(
        "time window saturation",
        CASES,
        strategy,
        |((n, bucket_ms, current), raw, (f, s))| {
            let span = u64::from(n);
            let buckets: Vec<(u64, u32, u32, u32)> = raw
                .iter()
                .enumerate()
                .map(|(slot, &(round, calls, fi, si))| {
                    let base = (current / span) as i64 + round;
                    let period = (base.max(0) as u64) * span + slot as u64;
                    // A share of the calls (u64 arithmetic: usize is 32 bits on wasm32).
                    let part = |share: u32| {
                        (u64::from(share) * u64::from(calls) / u64::from(u32::MAX)) as u32
                    };
                    (period, calls, part(fi), part(si))
                })
                .collect();
            let spec = WindowSpec::Time {
                size_ms: bucket_ms * span,
                buckets: n,
            };
            let bytes = time_window_bytes(bucket_ms, &buckets);
            let Some(mut w) = Window::decode(&mut Reader::new(&bytes), spec) else {
                return Err(TestCaseError::fail("a well-formed time window was refused"));
            };
            let now = current * bucket_ms;
            let inside: Vec<_> = buckets
                .iter()
                .filter(|b| b.1 > 0 && b.0 <= current && current - b.0 < span)
                .collect();
            let sum = |pick: fn(&(u64, u32, u32, u32)) -> u32| {
                inside
                    .iter()
                    .fold(0u32, |acc, b| acc.saturating_add(pick(b)))
            };
            let expected = Totals {
                calls: sum(|b| b.1),
                failures: sum(|b| b.2),
                slow: sum(|b| b.3),
            };
            prop_assert_eq!(w.totals(now), expected);
            // Recording one more call saturates too: the current period's slot either already
            // counts for now, or held a period outside the window (old, or from the future).
            w.record(now, f, s);
            prop_assert_eq!(
                w.totals(now),
                Totals {
                    calls: expected.calls.saturating_add(1),
                    failures: expected.failures.saturating_add(u32::from(f)),
                    slow: expected.slow.saturating_add(u32::from(s)),
                }
            );
            Ok(())
        },
    );
}

/// An arbitrary `(spec, window)` built by recording calls.
fn filled_window() -> impl Strategy<Value = (WindowSpec, Window)> {
    (
        window_spec(),
        proptest::collection::vec((0u64..=100_000, any::<bool>(), any::<bool>()), 0..200),
        0u64..=1_800_000_000_000,
    )
        .prop_map(|(spec, calls, t0)| {
            let mut w = Window::new(spec);
            let mut now = t0;
            for (step, f, s) in calls {
                now += step;
                w.record(now, f, s);
            }
            (spec, w)
        })
}

fn any_phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Closed),
        Just(Phase::Open),
        Just(Phase::HalfOpen)
    ]
}

fn any_state() -> impl Strategy<Value = (WindowSpec, BreakerState)> {
    (
        filled_window(),
        any_phase(),
        any::<(u32, u32, u64, u64, u64)>(),
        any::<(u32, u32, u32)>(),
    )
        .prop_map(
            |((spec, window), phase, (e, r, since, until, probe), (pa, ps, cf))| {
                (
                    spec,
                    BreakerState {
                        phase,
                        epoch: e,
                        reopen_count: r,
                        phase_since_ms: since,
                        open_until_ms: until,
                        last_probe_ms: probe,
                        probes_admitted: pa,
                        probes_succeeded: ps,
                        consecutive_failures: cf,
                        window,
                    },
                )
            },
        )
}

#[test]
fn state_encoding_round_trips() {
    check("state round trip", CASES, any_state(), |(spec, state)| {
        let bytes = state.encode();
        prop_assert_eq!(BreakerState::decode(&bytes, spec), Some(state.clone()));
        prop_assert_eq!(BreakerState::load(Some(&bytes), spec), state.clone());
        // The header-only readers agree with the full decoding.
        let closed = (state.phase == Phase::Closed).then_some(state.epoch);
        prop_assert_eq!(BreakerState::closed_epoch(&bytes), closed);
        let open =
            (state.phase == Phase::Open).then_some((state.phase_since_ms, state.open_until_ms));
        prop_assert_eq!(BreakerState::open_times(&bytes), open);
        Ok(())
    });
}

/// Whatever the stored bytes (another version, corruption, a torn write), decoding neither
/// panics nor yields a window whose totals contradict themselves.
#[test]
fn decoding_damaged_state_is_safe() {
    let strategy = (
        any_state(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    check(
        "damaged state",
        CASES,
        strategy,
        |((spec, state), flips, cut, truncate)| {
            let mut bytes = state.encode();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let _ = BreakerState::closed_epoch(&bytes);
            let _ = BreakerState::open_times(&bytes);
            let loaded = BreakerState::load(Some(&bytes), spec);
            prop_assert!(loaded.window.fits(spec));
            let mut w = loaded.window.clone();
            for now in [0, loaded.phase_since_ms, u64::MAX] {
                let t = w.totals(now);
                prop_assert!(
                    t.failures <= t.calls && t.slow <= t.calls,
                    "decoded totals {:?}",
                    t
                );
            }
            // And the decoded window keeps working.
            for i in 0..20u64 {
                w.record(i, i % 2 == 0, i % 3 == 0);
                let t = w.totals(i);
                prop_assert!(
                    t.failures <= t.calls && t.slow <= t.calls,
                    "after record {:?}",
                    t
                );
            }
            Ok(())
        },
    );
}

#[derive(Debug, Clone, Copy)]
struct OpenCfg {
    duration_ms: u64,
    max_duration_ms: u64,
    multiplier: f64,
    jitter: f64,
}

/// Any open policy the config accepts, built through the real parser.
fn open_cfg() -> impl Strategy<Value = OpenCfg> {
    let duration = prop_oneof![1u64..=60_000, 1u64..=MAX_MILLIS];
    // Short decimals, as configurations write them: the config's JSON parser is exact for those
    // (it trades exactness on 17-digit decimals for module size, see common::json).
    let multiplier = prop_oneof![
        Just(1.0),
        Just(2.0),
        Just(100.0),
        (100u32..=10_000).prop_map(|k| f64::from(k) / 100.0)
    ];
    let jitter = prop_oneof![
        Just(0.0),
        Just(0.9999),
        (0u32..10_000).prop_map(|k| f64::from(k) / 10_000.0)
    ];
    (duration, multiplier, jitter)
        .prop_flat_map(|(d, m, j)| {
            let max = prop_oneof![
                Just(d),
                d..=MAX_MILLIS.min(d.saturating_mul(100)),
                d..=MAX_MILLIS
            ];
            (Just(d), max, Just(m), Just(j))
        })
        .prop_map(
            |(duration_ms, max_duration_ms, multiplier, jitter)| OpenCfg {
                duration_ms,
                max_duration_ms,
                multiplier,
                jitter,
            },
        )
}

fn open_spec(c: OpenCfg) -> BreakerSpec {
    let spec = parse_spec(&format!(
        r#""open":{{"duration":"{}ms","max_duration":"{}ms","backoff_multiplier":{:?},"jitter":{:?}}}"#,
        c.duration_ms, c.max_duration_ms, c.multiplier, c.jitter
    ));
    assert_eq!(
        (
            spec.open.duration_ms,
            spec.open.max_duration_ms,
            spec.open.backoff_multiplier,
            spec.open.jitter
        ),
        (c.duration_ms, c.max_duration_ms, c.multiplier, c.jitter),
        "the parser kept the values"
    );
    spec
}

fn level() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..=40, 1 => any::<u32>(), 1 => Just(u32::MAX)]
}

fn sample() -> impl Strategy<Value = f64> {
    prop_oneof![Just(-1.0), Just(0.0), Just(1.0), -1.0f64..=1.0]
}

#[test]
fn open_duration_stays_within_its_bounds() {
    check(
        "open duration bounds",
        CASES,
        (open_cfg(), level(), sample()),
        |(c, level, s)| {
            let spec = open_spec(c);
            let got = open_duration_ms(&spec, level, s);
            // duration × multiplier^level, capped at max_duration, then × (1 + jitter × s).
            let capped = (c.duration_ms as f64
                * c.multiplier.powi(level.min(i32::MAX as u32) as i32))
            .min(c.max_duration_ms as f64);
            let expected = ((capped * (1.0 + c.jitter * s)).round() as u64).max(1);
            prop_assert_eq!(got, expected);
            let low = (c.duration_ms as f64 * (1.0 - c.jitter)).floor() as u64;
            let high = (c.max_duration_ms as f64 * (1.0 + c.jitter)).ceil() as u64;
            prop_assert!(got >= low.max(1), "{} < {}", got, low);
            prop_assert!(got <= high, "{} > {}", got, high);
            if c.jitter == 0.0 {
                prop_assert!(got >= c.duration_ms && got <= c.max_duration_ms);
                if level == 0 {
                    prop_assert_eq!(got, c.duration_ms);
                }
            }
            // Samples outside [-1, 1] are clamped.
            prop_assert_eq!(
                open_duration_ms(&spec, level, s * 7.0),
                open_duration_ms(&spec, level, (s * 7.0).clamp(-1.0, 1.0))
            );
            Ok(())
        },
    );
}

#[test]
fn open_duration_grows_with_the_reopen_level_and_the_sample() {
    check(
        "open duration monotonic",
        CASES,
        (open_cfg(), level(), level(), sample(), sample()),
        |(c, l1, l2, s1, s2)| {
            let spec = open_spec(c);
            let (lo, hi) = (l1.min(l2), l1.max(l2));
            let (slo, shi) = (s1.min(s2), s1.max(s2));
            prop_assert!(open_duration_ms(&spec, lo, s1) <= open_duration_ms(&spec, hi, s1));
            prop_assert!(open_duration_ms(&spec, lo, slo) <= open_duration_ms(&spec, lo, shi));
            // Without jitter, a high enough level reaches max_duration exactly.
            let mut flat = spec.clone();
            flat.open.jitter = 0.0;
            prop_assert!(open_duration_ms(&flat, lo, s1) <= open_duration_ms(&flat, hi, s2));
            if c.multiplier >= 2.0 {
                prop_assert_eq!(open_duration_ms(&flat, 64, s1), c.max_duration_ms);
            }
            if c.multiplier == 1.0 {
                prop_assert_eq!(open_duration_ms(&flat, hi, s1), c.duration_ms);
            }
            Ok(())
        },
    );
}

#[test]
fn still_open_rejects_exactly_until_open_until() {
    let t = prop_oneof![any::<u64>(), 0u64..=10_000, u64::MAX - 10_000..=u64::MAX];
    check(
        "still_open",
        CASES,
        (t.clone(), t.clone(), t),
        |(since, until, now)| {
            let stepped_back = now.saturating_add(CLOCK_STEP_BACK_MS) < since;
            match still_open(since, until, now) {
                Some(a) => {
                    prop_assert!(now < until && !stepped_back);
                    let Admission::Reject { retry_after_ms } = a.admission else {
                        return Err(TestCaseError::fail("still_open admitted"));
                    };
                    prop_assert_eq!(retry_after_ms, until - now);
                    prop_assert!(retry_after_s(retry_after_ms) * 1000 >= until - now);
                    prop_assert!(!a.changed && a.transition.is_none());
                }
                None => prop_assert!(now >= until || stepped_back),
            }
            Ok(())
        },
    );
}

/// The breaker specs the state-machine property runs with.
fn machine_spec() -> impl Strategy<Value = BreakerSpec> {
    let trip = prop_oneof![
        (1u32..=5).prop_map(|n| format!(r#""consecutive_failures":{n}"#)),
        (1u32..=100, 1u32..=10, 1u32..=20).prop_map(|(rate, min, size)| format!(
            r#""failure_rate":{rate},"minimum_calls":{},"window":{{"kind":"count","size":{size}}}"#,
            min.min(size)
        )),
        (1u32..=100, 1u32..=10, 1u32..=6).prop_map(|(rate, min, n)| format!(
            r#""failure_rate":{rate},"minimum_calls":{min},"window":{{"kind":"time","size":"{}ms","buckets":{n}}}"#,
            u64::from(n) * 500
        )),
    ];
    (trip, open_cfg(), 1u32..=3, 1u64..=5_000).prop_map(|(trip, open, probes, wait)| {
        let open = OpenCfg {
            duration_ms: open.duration_ms.min(20_000),
            max_duration_ms: open.max_duration_ms.clamp(open.duration_ms.min(20_000), 120_000),
            ..open
        };
        parse_spec(&format!(
            r#""trip":{{{trip}}},"open":{{"duration":"{}ms","max_duration":"{}ms","backoff_multiplier":{:?},"jitter":{:?}}},"half_open":{{"probes":{probes},"max_wait":"{wait}ms"}}"#,
            open.duration_ms, open.max_duration_ms, open.multiplier, open.jitter
        ))
    })
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A request `dt` ms later that completes at once with this outcome.
    Call(u64, Verdict),
    /// A request `dt` ms later whose outcome never comes (client gone).
    Lost(u64),
    /// The clock steps back by this much.
    Back(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let verdict = prop_oneof![
        Just(Verdict::Success),
        Just(Verdict::Failure),
        Just(Verdict::Unanswered)
    ];
    let dt = prop_oneof![4 => 0u64..=50, 2 => 0u64..=3_000, 1 => 0u64..=150_000];
    prop_oneof![
        8 => (dt.clone(), verdict).prop_map(|(dt, v)| Step::Call(dt, v)),
        1 => dt.prop_map(Step::Lost),
        1 => prop_oneof![0u64..=CLOCK_STEP_BACK_MS, 0u64..=100_000].prop_map(Step::Back),
    ]
}

/// Runs admit/record as the engine does over random traffic: an open breaker never lets a
/// request through before `open_until_ms` unless the clock stepped back more than the
/// tolerance, opening draws a duration within the backoff bounds, and half-open never has
/// more probes out than configured.
#[test]
fn the_breaker_never_admits_early() {
    let strategy = (
        machine_spec(),
        proptest::collection::vec((step(), -1.0f64..=1.0), 1..300),
    );
    check("state machine", CASES / 2, strategy, |(spec, steps)| {
        let mut s = BreakerState::fresh(spec.trip.window);
        let mut now: u64 = 1_700_000_000_000;
        for (i, (step, jitter)) in steps.into_iter().enumerate() {
            let (dt, verdict) = match step {
                Step::Call(dt, v) => (dt, Some(v)),
                Step::Lost(dt) => (dt, None),
                Step::Back(back) => {
                    now -= back;
                    continue;
                }
            };
            now += dt;
            let before = s.clone();
            let a = admit(&spec, &mut s, now);
            if before.phase == Phase::Open && !matches!(a.admission, Admission::Reject { .. }) {
                prop_assert!(
                    now >= before.open_until_ms || now + CLOCK_STEP_BACK_MS < before.phase_since_ms,
                    "step {}: admitted at {} while open until {}",
                    i,
                    now,
                    before.open_until_ms
                );
            }
            if !a.changed {
                prop_assert_eq!(&s, &before, "step {}: unchanged state was modified", i);
            }
            if s.phase == Phase::HalfOpen {
                prop_assert!(s.probes_admitted <= spec.half_open.probes, "step {}", i);
            }
            let (epoch, probe) = match a.admission {
                Admission::Pass { epoch } => (epoch, false),
                Admission::Probe { epoch } => (epoch, true),
                Admission::Reject { retry_after_ms } => {
                    prop_assert!(retry_after_ms >= 1);
                    continue;
                }
            };
            let Some(verdict) = verdict else { continue };
            let r = record(
                &spec,
                &mut s,
                epoch,
                probe,
                Outcome {
                    verdict,
                    slow: false,
                },
                now,
                jitter,
            );
            if let Some(t) = r.transition {
                if t.to == Phase::Open {
                    let d = t.open_for_ms.unwrap_or(0);
                    let low = (spec.open.duration_ms as f64 * (1.0 - spec.open.jitter)).floor();
                    let high = (spec.open.max_duration_ms as f64 * (1.0 + spec.open.jitter)).ceil();
                    prop_assert!(
                        d as f64 >= low.max(1.0) && d as f64 <= high,
                        "open for {}",
                        d
                    );
                    prop_assert_eq!(s.open_until_ms, now + d);
                    prop_assert_eq!(s.phase, Phase::Open);
                }
            }
            let totals = s.window.totals(now);
            prop_assert!(totals.failures <= totals.calls && totals.slow <= totals.calls);
        }
        Ok(())
    });
}

/// Whatever a stored header says (another writer's bug, corruption that still decodes), admit
/// and record neither panic nor overflow, and leave a state that encodes and decodes.
#[test]
fn any_decodable_state_is_handled_without_panicking() {
    let header = (
        any_phase(),
        any::<(u32, u32, u64, u64, u64)>(),
        any::<(u32, u32, u32)>(),
    );
    let t = prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just(u64::MAX),
        1_700_000_000_000u64..=1_700_000_100_000
    ];
    let strategy = (
        machine_spec(),
        header,
        proptest::collection::vec((t, any::<bool>(), step(), -1.0f64..=1.0), 1..20),
    );
    check(
        "arbitrary header",
        CASES,
        strategy,
        |(spec, (phase, (e, r, since, until, probe), (pa, ps, cf)), steps)| {
            let mut s = BreakerState {
                phase,
                epoch: e,
                reopen_count: r,
                phase_since_ms: since,
                open_until_ms: until,
                last_probe_ms: probe,
                probes_admitted: pa,
                probes_succeeded: ps,
                consecutive_failures: cf,
                window: Window::new(spec.trip.window),
            };
            for (now, stale_epoch, step, jitter) in steps {
                let a = admit(&spec, &mut s, now);
                let verdict = match step {
                    Step::Call(_, v) => v,
                    _ => Verdict::Failure,
                };
                let (epoch, probe) = match a.admission {
                    Admission::Pass { epoch } => (epoch, false),
                    Admission::Probe { epoch } => (epoch, true),
                    Admission::Reject { .. } => (s.epoch, stale_epoch),
                };
                let epoch = if stale_epoch {
                    epoch.wrapping_sub(1)
                } else {
                    epoch
                };
                let outcome = Outcome {
                    verdict,
                    slow: stale_epoch,
                };
                record(&spec, &mut s, epoch, probe, outcome, now, jitter);
                let back = BreakerState::decode(&s.encode(), spec.trip.window);
                prop_assert_eq!(back.as_ref(), Some(&s));
            }
            Ok(())
        },
    );
}

// Regressions found by `decoding_damaged_state_is_safe`: decoding accepted windows whose totals
// contradicted themselves, which then reported more failures than calls (a failure rate above
// 100 %) and, for bits in unwritten count slots, kept a phantom failure forever.

#[test]
fn decode_refuses_a_time_bucket_with_more_failures_than_calls() {
    let spec = WindowSpec::Time {
        size_ms: 10_000,
        buckets: 10,
    };
    let mut buckets = vec![(0u64, 0u32, 0u32, 0u32); 10];
    buckets[0] = (0, 0, 2, 0);
    let bytes = time_window_bytes(1000, &buckets);
    assert_eq!(Window::decode(&mut Reader::new(&bytes), spec), None);
    buckets[0] = (0, 1, 0, 2);
    let bytes = time_window_bytes(1000, &buckets);
    assert_eq!(Window::decode(&mut Reader::new(&bytes), spec), None);
}

#[test]
fn decode_refuses_a_time_bucket_in_another_periods_slot() {
    let spec = WindowSpec::Time {
        size_ms: 10_000,
        buckets: 10,
    };
    // Two slots both counting period 5: the calls would be counted twice.
    let mut buckets = vec![(0u64, 0u32, 0u32, 0u32); 10];
    buckets[5] = (5, 3, 1, 0);
    buckets[6] = (5, 3, 1, 0);
    let bytes = time_window_bytes(1000, &buckets);
    assert_eq!(Window::decode(&mut Reader::new(&bytes), spec), None);
    buckets[6] = (16, 3, 1, 0);
    let bytes = time_window_bytes(1000, &buckets);
    assert!(Window::decode(&mut Reader::new(&bytes), spec).is_some());
}

/// A count window by hand: size 8 (one byte of bits each), given header and bit bytes.
fn count_window_bytes(head: u32, filled: u32, failures: u32, failed_bits: u8) -> Vec<u8> {
    let mut out = vec![1u8];
    for v in [8, head, filled, failures, 0] {
        out.extend_from_slice(&u32::to_le_bytes(v));
    }
    out.extend_from_slice(&[failed_bits, 0]);
    out
}

#[test]
fn decode_refuses_count_bits_in_slots_without_a_call() {
    let spec = WindowSpec::Count { size: 8 };
    let decode = |bytes: Vec<u8>| Window::decode(&mut Reader::new(&bytes), spec);
    // Two calls recorded (slots 0 and 1), but a failure bit in slot 5.
    assert_eq!(decode(count_window_bytes(2, 2, 1, 0b0010_0000)), None);
    // More failures than calls.
    assert_eq!(decode(count_window_bytes(1, 1, 2, 0b0000_0011)), None);
    // A partly filled window whose next slot is not the one after the last call.
    assert_eq!(decode(count_window_bytes(5, 2, 1, 0b0000_0001)), None);
    // The same shapes written by the window itself decode.
    let mut w = Window::new(spec);
    w.record(0, true, false);
    w.record(0, false, false);
    assert_eq!(decode(count_window_bytes(2, 2, 1, 0b0000_0001)), Some(w));
}

#[test]
fn decode_refuses_count_padding_bits() {
    // size 9 uses two bytes per ring; bits 9..15 of the second byte are padding.
    let spec = WindowSpec::Count { size: 9 };
    let mut w = Window::new(spec);
    for _ in 0..9 {
        w.record(0, false, false);
    }
    let mut bytes = Vec::new();
    w.encode(&mut bytes);
    assert!(Window::decode(&mut Reader::new(&bytes), spec).is_some());
    // failures = 1 (offset 1 + 4 × 3) and a bit in padding slot 12.
    bytes[13] = 1;
    bytes[1 + 20 + 1] = 0b0001_0000;
    assert_eq!(Window::decode(&mut Reader::new(&bytes), spec), None);
}
