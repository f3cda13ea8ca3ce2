//! breakwater fallback: when a response fails (status, Envoy error flag, or a rejection by
//! breakwater's circuit breaker), answer with a static response, the last good response
//! (stale-if-error, kept in shared data) or another service's answer.
//!
//! - [`config`]: the JSON configuration and its validation.
//! - [`cache`]: the shared last-good-response cache (index, entries, cacheability rules).
//! - [`engine`]: matching, triggers, the source chain, stats — behind `Host`.
//! - `adapter` (wasm32-wasip1 only): the Envoy side.

pub mod cache;
pub mod config;
pub mod engine;

#[cfg(target_os = "wasi")]
mod adapter;
