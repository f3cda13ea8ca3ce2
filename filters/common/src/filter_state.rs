//! The one contract between the filters: the filter-state keys they write and read, and the
//! values each key takes. Envoy stores a key written with `set_property` as `wasm.<key>`, so an
//! access log reads it as `%FILTER_STATE(wasm.<key>:PLAIN)%` and a later filter with
//! `get_property(["<key>"])`. Every filter, the tests (through `breakwater contract`) and the
//! README's tables use these definitions; no filter spells a key or a value itself.

/// Defines a closed set of filter-state values with their wire spelling.
macro_rules! values {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value as written to filter state.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Reads a value another filter wrote; `None` for anything else.
            pub fn from_bytes(bytes: &[u8]) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str().as_bytes() == bytes)
            }
        }
    };
}

/// Keys the circuit breaker writes for every request a breaker matched.
pub mod breaker {
    /// What the breaker did with the request, when it decided: a [`super::BreakerCall`]
    /// (decision, state and breaker in one value: one host call to write, one to read).
    pub const CALL: &str = "breakwater.circuit_breaker";
    /// How the call counted, written at the end of the stream: a [`super::BreakerOutcome`].
    pub const OUTCOME: &str = "breakwater.circuit_breaker.outcome";
}

/// Keys the fallback filter writes when a rule is triggered (`CACHE` when it stores).
pub mod fallback {
    /// What the fallback did for a triggered response: a [`super::FallbackAnswer`] (which source
    /// answered, the trigger and the rule in one value).
    pub const ANSWER: &str = "breakwater.fallback";
    /// What happened to a good response in the stale cache: a [`super::CacheEvent`].
    pub const CACHE: &str = "breakwater.fallback.cache";
}

/// Joins the parts of a value made of parts ([`KeySpec::parts`]) with commas.
fn join_parts(parts: &[&str]) -> String {
    let mut value = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            value.push(',');
        }
        value.push_str(part);
    }
    value
}

/// Splits a value made of `N` parts: missing parts are empty, the last one keeps any commas.
fn split_parts<const N: usize>(value: &[u8]) -> [&[u8]; N] {
    let mut parts = value.splitn(N, |b| *b == b',');
    std::array::from_fn(|_| parts.next().unwrap_or_default())
}

/// Keys the log-enrichment filter writes at the end of every logged request.
pub mod log {
    /// The whole redacted record as one JSON object.
    pub const RECORD: &str = "breakwater_log";
    /// With `separate_fields`, each record field `<field>` is also written as
    /// `breakwater.log.<field>`.
    pub const FIELD_PREFIX: &str = "breakwater.log.";
}

/// The value of [`breaker::CALL`]: `<decision>,<state>,<breaker>`, e.g.
/// `passed,closed,recommendations`. Breaker names never contain a comma (config refuses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreakerCall<'a> {
    /// A [`BreakerDecision`].
    pub decision: &'a [u8],
    /// The breaker's state when it decided, or its mode when that overrides it: a
    /// [`BreakerState`].
    pub state: &'a [u8],
    /// The name of the breaker that owned the request.
    pub breaker: &'a [u8],
}

impl<'a> BreakerCall<'a> {
    /// The value the breaker writes.
    pub fn encode(decision: BreakerDecision, state: &str, breaker: &str) -> String {
        join_parts(&[decision.as_str(), state, breaker])
    }

    /// Reads a value the breaker wrote; missing parts are empty.
    pub fn parse(value: &'a [u8]) -> BreakerCall<'a> {
        let [decision, state, breaker] = split_parts(value);
        BreakerCall {
            decision,
            state,
            breaker,
        }
    }

    pub fn decision(&self) -> Option<BreakerDecision> {
        BreakerDecision::from_bytes(self.decision)
    }
}

values! {
    /// [`BreakerCall::decision`].
    BreakerDecision {
        /// Let through while closed (or in a mode that never rejects).
        Passed => "passed",
        /// Answered by the breaker while open (or `forced_open`).
        Rejected => "rejected",
        /// Let through, then answered by the breaker with its rejection while still waiting
        /// for response headers, because its key opened (`open.release_in_flight`).
        Released => "released",
        /// Let through as one of the half-open probes.
        Probe => "probe",
        /// `dry_run`: would have been rejected, and was let through.
        DryRunWouldReject => "dry_run_would_reject",
    }
}

impl BreakerDecision {
    /// The breaker answered the request itself: it rejected it, or released it.
    pub const fn answered_by_breaker(self) -> bool {
        matches!(self, BreakerDecision::Rejected | BreakerDecision::Released)
    }
}

values! {
    /// [`BreakerCall::state`].
    BreakerState {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
        /// The breaker is configured `forced_open`.
        ForcedOpen => "forced_open",
        /// The breaker is configured `disabled`.
        Disabled => "disabled",
    }
}

values! {
    /// [`breaker::OUTCOME`].
    BreakerOutcome {
        Success => "success",
        Failure => "failure",
        /// A success slower than `failure.slow_call`.
        Slow => "slow",
        /// The stream ended without an answer that counts (the client left, for example).
        Unanswered => "unanswered",
    }
}

/// The value of [`fallback::ANSWER`]: `<served>,<trigger>,<rule>`, e.g.
/// `stale,status,recommendations`. Rule names never contain a comma (config refuses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FallbackAnswer<'a> {
    /// A [`FallbackServed`].
    pub served: &'a [u8],
    /// A [`FallbackTrigger`].
    pub trigger: &'a [u8],
    /// The name of the rule that was triggered.
    pub rule: &'a [u8],
}

impl<'a> FallbackAnswer<'a> {
    /// The value the fallback writes.
    pub fn encode(served: &str, trigger: Option<FallbackTrigger>, rule: &str) -> String {
        join_parts(&[served, trigger.map_or("", FallbackTrigger::as_str), rule])
    }

    /// Reads a value the fallback wrote; missing parts are empty.
    pub fn parse(value: &'a [u8]) -> FallbackAnswer<'a> {
        let [served, trigger, rule] = split_parts(value);
        FallbackAnswer {
            served,
            trigger,
            rule,
        }
    }
}

values! {
    /// [`FallbackAnswer::trigger`].
    FallbackTrigger {
        /// The response's status is in `on.statuses`.
        Status => "status",
        /// Envoy's response flags hit `on.response_flags`.
        ResponseFlags => "response_flags",
        /// The circuit breaker rejected the request.
        BreakerOpen => "breaker_open",
        /// A gRPC call's trailers-only response carried a status in `on.grpc_statuses`.
        GrpcStatus => "grpc_status",
    }
}

values! {
    /// [`FallbackAnswer::served`].
    FallbackServed {
        Static => "static",
        Stale => "stale",
        Service => "service",
        /// A gRPC call was answered with the configured gRPC status (a trailers-only reply).
        Grpc => "grpc",
        /// Every source failed or had nothing: the original response went on.
        None => "none",
    }
}

values! {
    /// [`fallback::CACHE`].
    CacheEvent {
        /// The response was stored as the last good response for its key.
        Stored => "stored",
    }
}

/// One key of the contract, for documentation and tests.
pub struct KeySpec {
    /// A short name for tools (`breakwater contract`), e.g. in access-log formats.
    pub name: &'static str,
    pub key: &'static str,
    pub writer: &'static str,
    /// The closed set of values, or empty when the value is free text (a name, a record) or
    /// made of parts.
    pub values: fn() -> Vec<&'static str>,
    /// A value of several comma-separated parts: each part's short name and values (empty:
    /// free text), in order.
    pub parts: &'static [PartSpec],
}

pub struct PartSpec {
    pub name: &'static str,
    pub values: fn() -> Vec<&'static str>,
}

fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| as_str(*v)).collect()
}

/// Every key of the contract, in the README's order.
pub const CONTRACT: &[KeySpec] = &[
    KeySpec {
        name: "circuit_breaker",
        key: breaker::CALL,
        writer: "circuit-breaker",
        values: Vec::new,
        parts: &[
            PartSpec {
                name: "decision",
                values: || names(BreakerDecision::ALL, BreakerDecision::as_str),
            },
            PartSpec {
                name: "state",
                values: || names(BreakerState::ALL, BreakerState::as_str),
            },
            PartSpec {
                name: "breaker",
                values: Vec::new,
            },
        ],
    },
    KeySpec {
        name: "outcome",
        key: breaker::OUTCOME,
        writer: "circuit-breaker",
        values: || names(BreakerOutcome::ALL, BreakerOutcome::as_str),
        parts: &[],
    },
    KeySpec {
        name: "fallback",
        key: fallback::ANSWER,
        writer: "fallback",
        values: Vec::new,
        parts: &[
            PartSpec {
                name: "fallback_served",
                values: || names(FallbackServed::ALL, FallbackServed::as_str),
            },
            PartSpec {
                name: "fallback_trigger",
                values: || names(FallbackTrigger::ALL, FallbackTrigger::as_str),
            },
            PartSpec {
                name: "fallback_rule",
                values: Vec::new,
            },
        ],
    },
    KeySpec {
        name: "fallback_cache",
        key: fallback::CACHE,
        writer: "fallback",
        values: || names(CacheEvent::ALL, CacheEvent::as_str),
        parts: &[],
    },
    KeySpec {
        name: "log_record",
        key: log::RECORD,
        writer: "log-enrichment",
        values: Vec::new,
        parts: &[],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn values_read_back_and_nothing_else_does() {
        for decision in BreakerDecision::ALL {
            assert_eq!(
                BreakerDecision::from_bytes(decision.as_str().as_bytes()),
                Some(*decision)
            );
        }
        assert_eq!(BreakerDecision::from_bytes(b"Rejected"), None);
        assert_eq!(BreakerDecision::from_bytes(b""), None);
        assert_eq!(
            FallbackServed::from_bytes(b"stale"),
            Some(FallbackServed::Stale)
        );
    }

    #[test]
    fn a_breaker_call_reads_back_and_tolerates_missing_parts() {
        let value = BreakerCall::encode(BreakerDecision::Released, "open", "recs");
        assert_eq!(value, "released,open,recs");
        let call = BreakerCall::parse(value.as_bytes());
        assert_eq!(call.decision(), Some(BreakerDecision::Released));
        assert_eq!((call.state, call.breaker), (&b"open"[..], &b"recs"[..]));
        assert_eq!(
            BreakerCall::parse(b"rejected").decision(),
            Some(BreakerDecision::Rejected)
        );
        assert_eq!(BreakerCall::parse(b"rejected").breaker, b"");
        assert_eq!(BreakerCall::parse(b"").decision(), None);
        assert_eq!(BreakerCall::parse(b"passed,closed,a,b").breaker, b"a,b");
    }

    #[test]
    fn a_fallback_answer_reads_back() {
        let value = FallbackAnswer::encode("stale", Some(FallbackTrigger::BreakerOpen), "popular");
        assert_eq!(value, "stale,breaker_open,popular");
        let answer = FallbackAnswer::parse(value.as_bytes());
        assert_eq!(
            (answer.served, answer.trigger, answer.rule),
            (&b"stale"[..], &b"breaker_open"[..], &b"popular"[..])
        );
        assert_eq!(FallbackAnswer::encode("none", None, "r"), "none,,r");
    }

    #[test]
    fn keys_are_unique_and_namespaced() {
        let mut keys: Vec<&str> = CONTRACT.iter().map(|k| k.key).collect();
        assert!(keys.iter().all(|k| k.starts_with("breakwater")));
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), CONTRACT.len());
    }
}
