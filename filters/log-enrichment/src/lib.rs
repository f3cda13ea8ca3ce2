//! breakwater log enrichment: one redacted, enriched JSON record per request in Envoy's access
//! log — correlation and trace ids, workload metadata, timings, the upstream, and the
//! circuit breaker's and fallback's decisions — with personal data and secrets removed inside
//! the pod.
//!
//! - [`config`]: the JSON configuration and its validation.
//! - [`detect`]: validating detectors (cards, IBANs, national ids, e-mail, IPs, tokens).
//! - [`patterns`]: user-defined detectors (a regex, a checksum, keywords).
//! - [`fields`]: field rules for JSON body excerpts.
//! - [`redact`]: masking, keyed pseudonyms, IP truncation, URL-aware redaction, length caps.
//! - [`correlation`]: correlation ids and W3C trace context.
//! - [`sampling`]: consistent sampling on the request id with always-kept classes.
//! - [`record`]: the record and its JSON form.
//! - [`engine`]: the filter's logic behind `Host`.
//! - `adapter` (wasm32-wasip1 only): the Envoy side.

pub mod config;
pub mod correlation;
pub mod detect;
pub mod engine;
pub mod fields;
pub mod patterns;
pub mod record;
pub mod redact;
pub mod sampling;

#[cfg(target_os = "wasi")]
mod adapter;
