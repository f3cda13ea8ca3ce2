//! Consistent sampling: the keep/drop decision is a pure function of the request id, so every
//! proxy on a request's path (each running this filter with the same rate) keeps or drops the
//! same request. Classes in `always_keep` are never dropped.

use crate::config::{KeepClasses, Sampling};
use breakwater_common::grpc::{code_name, OK};
use breakwater_common::hash::fnv1a;

/// A request's position in [0, 1): FNV-1a of the id, finished with splitmix64 so similar ids
/// (UUIDs differing in one digit) spread evenly.
pub fn position(request_id: &[u8]) -> f64 {
    let mut z = fnv1a(request_id);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What the sampling decision looks at once the response is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// The HTTP status (`response.code`).
    pub status: Option<u32>,
    /// A gRPC call (its request's `content-type`), and its status as Envoy reports it
    /// (`response.grpc_status`; `None` when the call ended without one, `-1` for one Envoy
    /// could not read).
    pub grpc: Option<GrpcOutcome>,
    pub response_flags: u64,
    pub duration_ms: u64,
    pub fallback_served: bool,
    pub breaker_rejected: bool,
}

/// A gRPC call's status as Envoy reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcOutcome {
    pub status: Option<i64>,
}

impl GrpcOutcome {
    /// The status when it is one of gRPC's codes (0 to 16).
    pub fn code(&self) -> Option<u32> {
        self.status
            .and_then(|s| u32::try_from(s).ok())
            .filter(|c| code_name(*c).is_some())
    }

    /// Not OK: another status, an unreadable one, or none at all (the call was reset or the
    /// client left before any response, so the client did not see OK either).
    pub fn is_error(&self) -> bool {
        self.status != Some(i64::from(OK))
    }
}

/// Why a request is logged, or `None` when it is sampled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Inside the sampled fraction.
    Sampled,
    /// An `always_keep` class.
    Class(&'static str),
}

pub fn decide(sampling: &Sampling, sampling_key: Option<&[u8]>, outcome: &Outcome) -> Option<Kept> {
    decide_given(sampling, in_rate(sampling, sampling_key), outcome)
}

/// The half of the decision that needs only the request's id: known when the request arrives.
pub fn in_rate(sampling: &Sampling, sampling_key: Option<&[u8]>) -> bool {
    match sampling_key {
        _ if sampling.rate >= 1.0 => true,
        Some(key) => position(key) < sampling.rate,
        None => false,
    }
}

/// [`decide`] once [`in_rate`] is known.
pub fn decide_given(sampling: &Sampling, in_rate: bool, outcome: &Outcome) -> Option<Kept> {
    if in_rate {
        return Some(Kept::Sampled);
    }
    keep_class(&sampling.always_keep, sampling.slow_ms, outcome).map(Kept::Class)
}

/// What the `always_keep` classes read of a request's outcome: all a request outside the rate
/// costs at its end, before it is known whether it is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepInputs {
    pub status: bool,
    /// gRPC classes: whether the call is gRPC, and its status.
    pub grpc: bool,
    pub response_flags: bool,
    pub duration: bool,
    pub fallback: bool,
    pub breaker: bool,
}

pub fn keep_inputs(keep: &KeepClasses) -> KeepInputs {
    KeepInputs {
        status: !keep.statuses.is_empty(),
        grpc: !keep.grpc_statuses.is_empty() || keep.grpc_error,
        response_flags: keep.response_flags,
        duration: keep.slow,
        fallback: keep.fallback,
        breaker: keep.breaker_rejected,
    }
}

fn keep_class(keep: &KeepClasses, slow_ms: u64, outcome: &Outcome) -> Option<&'static str> {
    let grpc_code = outcome.grpc.and_then(|g| g.code());
    if outcome.status.is_some_and(|s| keep.statuses.contains(s)) {
        Some("status")
    } else if let Some(name) = grpc_code
        .filter(|c| keep.grpc_statuses.contains(*c))
        .and_then(code_name)
    {
        Some(name)
    } else if keep.grpc_error && outcome.grpc.is_some_and(|g| g.is_error()) {
        Some("grpc_error")
    } else if keep.breaker_rejected && outcome.breaker_rejected {
        Some("breaker_rejected")
    } else if keep.fallback && outcome.fallback_served {
        Some("fallback")
    } else if keep.slow && outcome.duration_ms >= slow_ms {
        Some("slow")
    } else if keep.response_flags && outcome.response_flags != 0 {
        Some("response_flags")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlation::uuid_v4;
    use breakwater_common::grpc::GrpcStatusSet;
    use breakwater_common::rng::Rng;
    use breakwater_common::status::{StatusSet, StatusSpec};
    use breakwater_common::testing::test;

    fn sampling(rate: f64) -> Sampling {
        Sampling {
            rate,
            ..Sampling::default()
        }
    }

    fn ids(n: usize) -> Vec<String> {
        let mut rng = Rng::new(7);
        (0..n)
            .map(|_| uuid_v4(rng.next_u64(), rng.next_u64()))
            .collect()
    }

    #[test]
    fn the_same_id_always_gets_the_same_decision() {
        let s = sampling(0.3);
        for id in ids(500) {
            let first = decide(&s, Some(id.as_bytes()), &Outcome::default());
            for _ in 0..3 {
                assert_eq!(decide(&s, Some(id.as_bytes()), &Outcome::default()), first);
            }
        }
        // Deterministic across processes and targets: a fixed id, a fixed position.
        assert_eq!(
            position(b"4bf92f35-77b3-4da6-a3ce-929d0e0e4736").to_bits(),
            position(b"4bf92f35-77b3-4da6-a3ce-929d0e0e4736").to_bits()
        );
        assert!((0.0..1.0).contains(&position(b"")));
    }

    #[test]
    fn the_kept_fraction_follows_the_rate() {
        let ids = ids(20_000);
        for rate in [0.01, 0.1, 0.5, 0.9] {
            let kept = ids
                .iter()
                .filter(|id| {
                    decide(&sampling(rate), Some(id.as_bytes()), &Outcome::default()).is_some()
                })
                .count() as f64
                / ids.len() as f64;
            assert!((kept - rate).abs() < 0.015, "rate {rate}: kept {kept}");
        }
        // Sequential ids (a counter) spread as well.
        let kept = (0..20_000)
            .filter(|n| position(format!("req-{n}").as_bytes()) < 0.25)
            .count();
        assert!((4500..5500).contains(&kept), "{kept}");
    }

    #[test]
    fn a_lower_rate_keeps_a_subset_of_a_higher_one() {
        for id in ids(2000) {
            let low = decide(&sampling(0.1), Some(id.as_bytes()), &Outcome::default()).is_some();
            let high = decide(&sampling(0.5), Some(id.as_bytes()), &Outcome::default()).is_some();
            assert!(!low || high, "{id}");
        }
    }

    /// The short path of a request outside the rate reads only [`keep_inputs`]: for every
    /// combination of classes, an outcome reduced to those inputs is kept exactly when the
    /// whole one is.
    #[test]
    fn what_keep_inputs_leaves_out_never_changes_the_decision() {
        let mut rng = Rng::new(11);
        for mask in 0u32..128 {
            let on = |bit: u32| mask & (1 << bit) != 0;
            let mut s = sampling(0.0);
            s.slow_ms = 500;
            s.always_keep = KeepClasses {
                statuses: if on(0) {
                    StatusSet::from_specs(&[StatusSpec {
                        low: 500,
                        high: 599,
                    }])
                } else {
                    StatusSet::default()
                },
                grpc_statuses: if on(1) {
                    GrpcStatusSet::of(&[14])
                } else {
                    GrpcStatusSet::default()
                },
                grpc_error: on(2),
                fallback: on(3),
                breaker_rejected: on(4),
                slow: on(5),
                response_flags: on(6),
            };
            let needs = keep_inputs(&s.always_keep);
            for _ in 0..200 {
                let pick = |rng: &mut Rng, n: u64| rng.next_u64() % n;
                let full = Outcome {
                    status: [None, Some(200), Some(404), Some(503)][pick(&mut rng, 4) as usize],
                    grpc: (pick(&mut rng, 2) == 0).then(|| GrpcOutcome {
                        status: [None, Some(0), Some(14), Some(-1)][pick(&mut rng, 4) as usize],
                    }),
                    response_flags: pick(&mut rng, 3),
                    duration_ms: pick(&mut rng, 1000),
                    fallback_served: pick(&mut rng, 2) == 0,
                    breaker_rejected: pick(&mut rng, 2) == 0,
                };
                let reduced = Outcome {
                    status: full.status.filter(|_| needs.status),
                    grpc: full.grpc.filter(|_| needs.grpc),
                    response_flags: if needs.response_flags {
                        full.response_flags
                    } else {
                        0
                    },
                    duration_ms: if needs.duration { full.duration_ms } else { 0 },
                    fallback_served: full.fallback_served && needs.fallback,
                    breaker_rejected: full.breaker_rejected && needs.breaker,
                };
                assert_eq!(
                    decide_given(&s, false, &full),
                    decide_given(&s, false, &reduced),
                    "classes {mask:#09b}, {full:?}"
                );
            }
        }
    }

    #[test]
    fn always_keep_classes_survive_rate_zero() {
        let mut s = sampling(0.0);
        s.always_keep.statuses = StatusSet::from_specs(&[StatusSpec {
            low: 500,
            high: 599,
        }]);
        let id = Some(&b"id"[..]);
        let ok = Outcome {
            status: Some(200),
            duration_ms: 5,
            ..Outcome::default()
        };
        assert_eq!(decide(&s, id, &ok), None);
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    status: Some(503),
                    ..ok
                }
            ),
            Some(Kept::Class("status"))
        );
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    status: Some(404),
                    ..ok
                }
            ),
            None
        );
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    breaker_rejected: true,
                    ..ok
                }
            ),
            Some(Kept::Class("breaker_rejected"))
        );
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    fallback_served: true,
                    ..ok
                }
            ),
            Some(Kept::Class("fallback"))
        );
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    duration_ms: 1000,
                    ..ok
                }
            ),
            Some(Kept::Class("slow"))
        );
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    response_flags: 0x20,
                    ..ok
                }
            ),
            None,
            "not listed by default"
        );
        s.always_keep.response_flags = true;
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    response_flags: 0x20,
                    ..ok
                }
            ),
            Some(Kept::Class("response_flags"))
        );
        s.always_keep = KeepClasses::default();
        assert_eq!(
            decide(
                &s,
                id,
                &Outcome {
                    status: Some(503),
                    breaker_rejected: true,
                    ..ok
                }
            ),
            None
        );
        // Without any id to sample on, only the classes keep a request below rate 1.
        assert_eq!(decide(&sampling(0.99), None, &ok), None);
        assert_eq!(decide(&sampling(1.0), None, &ok), Some(Kept::Sampled));
    }

    #[test]
    fn grpc_failures_are_kept_by_class_and_by_name() {
        let mut s = sampling(0.0);
        s.always_keep = KeepClasses {
            grpc_error: true,
            ..KeepClasses::default()
        };
        let id = Some(&b"id"[..]);
        let call = |status: Option<i64>| Outcome {
            status: Some(200),
            grpc: Some(GrpcOutcome { status }),
            ..Outcome::default()
        };
        assert_eq!(decide(&s, id, &call(Some(0))), None);
        for status in [Some(1), Some(14), Some(16), Some(17), Some(-1), None] {
            assert_eq!(
                decide(&s, id, &call(status)),
                Some(Kept::Class("grpc_error")),
                "{status:?}"
            );
        }
        // Not a gRPC call: no gRPC status to judge.
        assert_eq!(decide(&s, id, &Outcome::default()), None);

        s.always_keep = KeepClasses {
            grpc_statuses: GrpcStatusSet::of(&[14, 4]),
            ..KeepClasses::default()
        };
        assert_eq!(
            decide(&s, id, &call(Some(14))),
            Some(Kept::Class("UNAVAILABLE"))
        );
        assert_eq!(
            decide(&s, id, &call(Some(4))),
            Some(Kept::Class("DEADLINE_EXCEEDED"))
        );
        for other in [Some(0), Some(13), Some(-1), Some(14 + (1 << 32)), None] {
            assert_eq!(decide(&s, id, &call(other)), None, "{other:?}");
        }
        assert_eq!(GrpcOutcome { status: Some(3) }.code(), Some(3));
        assert_eq!(GrpcOutcome { status: Some(-1) }.code(), None);
        assert_eq!(GrpcOutcome { status: None }.code(), None);
    }
}
