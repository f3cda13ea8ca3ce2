//! What every breakwater filter needs, with no dependency on proxy-wasm so that it builds and
//! tests natively and on `wasm32-unknown-unknown`:
//!
//! - [`codec`]: bounds-checked binary encoding for values in shared data.
//! - [`base64`]: decoding for binary configuration values.
//! - [`hash`]: a stable 64-bit hash for keys in shared data.
//! - [`json`]: a small, strict JSON reader (serde_json costs 28 KB per module).
//! - [`config`]: JSON parsing that names the exact field of every error (`breakers[1].trip.failure_rate`).
//! - [`duration`]: `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
//! - [`status`]: status codes, classes (`"5xx"`) and ranges (`"500-504"`).
//! - [`flags`]: Envoy's response flags by short name (`UF`, `UT`, …) as read from `response.flags`.
//! - [`pairs`]: the proxy-wasm header-map encoding.
//! - [`host`]: the `Host` trait filters' engines use, its Envoy implementation and a fake.
//! - [`matcher`]: the request-matching vocabulary shared by all filters.
//! - [`request`]: lazy, read-once access to request attributes.
//! - [`shared`]: shared-data compare-and-swap with a bounded retry loop.
//! - [`headers`]: validated response headers for local replies.
//! - `abi` (wasm32-wasip1 only): the proxy-wasm exports, routing Envoy's callbacks to a filter.
//! - `hostcall` (wasm32-wasip1 only): proxy-wasm host calls that return errors instead of panicking.

#[cfg(target_os = "wasi")]
pub mod abi;
pub mod base64;
pub mod codec;
pub mod config;
pub mod duration;
pub mod flags;
pub mod hash;
pub mod headers;
pub mod host;
#[cfg(target_os = "wasi")]
pub mod hostcall;
pub mod json;
pub mod matcher;
pub mod pairs;
pub mod request;
pub mod rng;
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
