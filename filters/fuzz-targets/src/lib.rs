//! The logic of breakwater's fuzz targets, one `pub fn <target>(data: &[u8])` each. Each drives
//! filter code with arbitrary bytes and *asserts invariants*: a violation panics, which
//! libFuzzer (`fuzz/`) reports as a crash. The committed corpus and crash reproducers
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) run through the same functions as
//! unit tests (`corpus_tests`), so every input that ever found a defect stays a regression test.

// This crate's whole point is to panic on a violated invariant; the filters' no-panic rules
// do not apply to it.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod body_fields;
mod breaker;
mod bytes;
mod config;
mod correlation;
mod matching;
mod redaction;
mod user_patterns;

pub use body_fields::body_fields;
pub use breaker::breaker_state_machine;
pub use config::{config_circuit_breaker, config_fallback, config_log_enrichment};
pub use correlation::correlation_id;
pub use matching::request_matching;
pub use redaction::redaction;
pub use user_patterns::user_patterns;

/// A fuzz target: panics when an invariant does not hold.
pub type Target = fn(&[u8]);

/// Every target by name, as the corpus directories are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_circuit_breaker", config_circuit_breaker),
    ("config_fallback", config_fallback),
    ("config_log_enrichment", config_log_enrichment),
    ("request_matching", request_matching),
    ("breaker_state_machine", breaker_state_machine),
    ("redaction", redaction),
    ("correlation_id", correlation_id),
    ("body_fields", body_fields),
    ("user_patterns", user_patterns),
];

#[cfg(all(test, not(target_arch = "wasm32")))]
mod corpus_tests;
