//! The filters' one door to Envoy (wasm32-wasip1 only): the proxy-wasm SDK's host calls behind
//! `breakwater-common`'s `Host`, `SharedStore` and `AttributeSource` traits, for the adapters.
//!
//! The SDK's `hostcalls` functions `panic!` on any host status they do not list, and its
//! `Context`/`HttpContext` helpers `unwrap` those results; a panic kills the worker's VM. So
//! nothing here uses the helpers, and each `hostcalls` function is called only where Envoy
//! answers with a status it lists (checked against proxy-wasm 0.2.5 and Envoy's
//! `source/extensions/common/wasm/context.cc`):
//!
//! - header maps exist only while their callback runs (Envoy drops its pointer to the request
//!   headers when `on_http_request_headers` returns `Continue`, likewise for the response) and
//!   answer `BadArgument` otherwise. [`request_header`] and [`replace_request_header`] are for
//!   `on_http_request_headers`, [`response_header`] and [`replace_response_header`] for
//!   `on_http_response_headers` (or while it is paused); in `on_log` Envoy answers `NotFound`,
//!   which the SDK handles, and the adapters read maps there only through [`shim`].
//! - properties answer `Ok`, `NotFound`, `SerializationFailure` or `InternalFailure`, all
//!   handled; `set_property` answers `NotFound` only without a stream (a root context), where
//!   the adapters never call [`set_filter_state`].
//! - shared data answers `Ok`/`NotFound` (get) and `Ok`/`CasMismatch` (set); stats, the clock,
//!   logging, buffers (`Ok`/`NotFound`), callouts (`Ok`/`BadArgument`/`InternalFailure`) and
//!   `continue_stream` (`Ok`) likewise.
//!
//! [`shim`] has the two calls the SDK cannot make without that risk or at all.

//!
//! On other targets (native tests and clippy, the wasm32-unknown-unknown unit-test run) only the
//! shims' header-map codec is compiled, for its tests.

#[cfg(target_os = "wasi")]
mod envoy;
#[cfg(target_os = "wasi")]
pub use envoy::*;

pub mod shim;
