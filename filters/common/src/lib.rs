//! What every breakwater filter needs, with no dependency on proxy-wasm so that it builds and
//! tests natively and on `wasm32-unknown-unknown` (the SDK side is `breakwater-envoy`):
//!
//! - [`config`]: serde config reading that names the exact field of every error
//!   (`breakers[1].trip.failure_rate`), and shared config types.
//! - [`filter_state`]: the filter-state keys and values the filters exchange.
//! - [`codec`]: bounds-checked binary encoding for values in shared data.
//! - [`base64`]: decoding for binary configuration values.
//! - [`hash`]: a stable 64-bit hash for keys in shared data.
//! - [`duration`]: `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
//! - [`status`]: status codes, classes (`"5xx"`) and ranges (`"500-504"`).
//! - [`flags`]: Envoy's response flags by short name (`UF`, `UT`, …) as read from `response.flags`.
//! - [`grpc`]: gRPC calls, status codes by name, `grpc-status` values, service and method.
//! - [`host`]: the `Host` trait filters' engines use, and a fake for their tests.
//! - [`matcher`]: the request-matching vocabulary shared by all filters.
//! - [`request`]: lazy, read-once access to request attributes.
//! - [`shared`]: shared-data compare-and-swap with a bounded retry loop.
//! - [`headers`]: validated headers for local replies and upstream requests.
//! - `schema` (feature `schema`): patterns for the JSON Schemas of the configs.

pub mod base64;
pub mod codec;
pub mod config;
pub mod duration;
pub mod filter_state;
pub mod flags;
pub mod grpc;
pub mod hash;
pub mod headers;
pub mod host;
pub mod matcher;
pub mod request;
pub mod rng;
#[cfg(feature = "schema")]
pub mod schema;
pub mod shared;
pub mod status;

/// The test attribute every unit test uses: plain `#[test]` natively, `wasm_bindgen_test` on
/// wasm32, so the same tests also run in Node's V8 with 32-bit `usize`. Filters' tests use it
/// through the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    #[cfg(not(target_arch = "wasm32"))]
    pub use core::prelude::v1::test;
    #[cfg(target_arch = "wasm32")]
    pub use wasm_bindgen_test::wasm_bindgen_test as test;
}
