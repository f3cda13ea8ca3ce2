//! breakwater circuit breaker: a closed / open / half-open breaker per route or upstream,
//! shared by every Envoy worker through proxy-wasm shared data.
//!
//! - [`config`]: the JSON configuration and its validation.
//! - [`window`], [`state`], [`policy`]: the pure state machine.
//! - [`engine`]: matching, shared-state updates, stats and decisions, behind the [`engine::Host`]
//!   trait so it is tested with a fake host.
//! - `adapter` (wasm32-wasip1 only): the thin layer that translates Envoy callbacks.

pub mod config;
pub mod engine;

pub mod policy;
pub mod state;
pub mod window;

#[cfg(test)]
mod proptests;

#[cfg(target_os = "wasi")]
mod adapter;
