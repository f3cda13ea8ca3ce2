//! The SDK-backed host and helpers (wasm32-wasip1 only).

use breakwater_common::config::ConfigError;
use breakwater_common::host::{Host, Level, MetricId, MetricKind};
use breakwater_common::request::AttributeSource;
use breakwater_common::shared::{SetError, SharedStore};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use std::time::{Duration, UNIX_EPOCH};

pub use proxy_wasm;

/// The `count-host-calls` build (for `make bench`'s host-call counts, never shipped) adds one
/// to the Envoy counter `breakwater.host_calls.<kind>` for each host call a filter makes
/// (configuration's too: bench/host_calls.py counts per request as a difference over requests;
/// the counting's own calls are not counted); in every other build this is nothing.
#[cfg(feature = "count-host-calls")]
pub(crate) fn count_host_call(kind: &'static str) {
    use std::cell::RefCell;
    // The counters by kind of call (`breakwater.host_calls.<kind>`), defined on first use.
    thread_local!(static METRICS: RefCell<Vec<(&'static str, Option<u32>)>> = const { RefCell::new(Vec::new()) });
    let id = METRICS.with(|metrics| {
        let mut metrics = metrics.borrow_mut();
        if let Some((_, id)) = metrics.iter().find(|(k, _)| *k == kind) {
            return *id;
        }
        let name = format!("breakwater.host_calls.{kind}");
        let id = hostcalls::define_metric(MetricType::Counter, &name).ok();
        metrics.push((kind, id));
        id
    });
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

#[cfg(not(feature = "count-host-calls"))]
#[inline(always)]
pub(crate) fn count_host_call(_kind: &'static str) {}

/// The real host: every call goes through the SDK's `hostcalls` where it cannot panic.
pub struct Envoy;

impl SharedStore for Envoy {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        count_host_call("shared_get");
        match hostcalls::get_shared_data(key) {
            // The SDK reads a CAS of 0 as "no such key" and an empty value as no bytes.
            Ok((value, Some(cas))) => Ok(Some((value.unwrap_or_default(), cas))),
            Ok((_, None)) => Ok(None),
            Err(status) => Err(format!("get_shared_data: {status:?}")),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let cas = (cas != 0).then_some(cas);
        count_host_call("shared_set");
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(status) => Err(SetError::Host(format!("set_shared_data: {status:?}"))),
        }
    }
}

impl Host for Envoy {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log!(level, "{message}");
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn add_metric(&self, id: MetricId, delta: i64) {
        // NotFound or BadArgument (a counter going down) only lose a stat.
        count_host_call("metric");
        let _ = hostcalls::increment_metric(id, delta);
    }

    fn set_gauge(&self, id: MetricId, value: u64) {
        count_host_call("metric");
        let _ = hostcalls::record_metric(id, value);
    }
}

impl AttributeSource for Envoy {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        request_header(name)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        property(path)
    }
}

/// Installs the SDK's logger (and its panic hook, which logs the panic at `critical` before the
/// VM traps) and the filter's root context. Call from `proxy_wasm::main!`.
///
/// The logger passes every level and Envoy's `wasm` logger decides what is printed, so lines
/// follow Envoy's level, including changes made through its admin `/logging`. (The SDK's
/// `get_log_level` is not used: it stores the host's answer in a Rust enum without a variant
/// for Envoy's `off`.) The filters log rarely (configuration, state transitions, warnings).
pub fn start(root: proxy_wasm::types::NewRootContext) {
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(root);
}

/// Reads the plugin configuration and parses it; on error logs the one line that names the
/// field and the reason (`on_configure` then returns false and Envoy keeps the previous
/// config). Returns the configuration and the plugin's name, which namespaces shared data.
pub fn configure<T>(
    filter: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, ConfigError>,
) -> Option<(T, String)> {
    let configuration = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default();
    match parse(&configuration) {
        Ok(config) => {
            let plugin_name = property(&["plugin_name"])
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Some((config, plugin_name))
        }
        Err(err) => {
            log::error!("breakwater {filter}: invalid configuration: {err}");
            None
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch, for seeding.
pub fn now_nanos() -> u64 {
    u64::try_from(since_epoch().as_nanos()).unwrap_or(u64::MAX)
}

fn since_epoch() -> Duration {
    count_host_call("time");
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// 128 random bits from the host (WASI `random_get`, one call); `None` if it refuses.
pub fn random_u128() -> Option<u128> {
    let mut bytes = [0u8; 16];
    count_host_call("random");
    getrandom::fill(&mut bytes).ok()?;
    Some(u128::from_le_bytes(bytes))
}

/// A request header as raw bytes (never assumed UTF-8; the first value if repeated). Only in
/// `on_http_request_headers`.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    count_host_call("request_header");
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// A response header as raw bytes. Only in `on_http_response_headers`, or while it is paused.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    count_host_call("response_header");
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
        .ok()
        .flatten()
}

/// A response trailer as raw bytes. Only in `on_http_response_trailers` (the map exists then;
/// Envoy answers NotFound for a missing trailer, which the SDK maps to `None`).
pub fn response_trailer(name: &str) -> Option<Vec<u8>> {
    count_host_call("response_trailer");
    hostcalls::get_map_value_bytes(MapType::HttpResponseTrailers, name)
        .ok()
        .flatten()
}

/// Sets a request header (replacing every value) before the request goes upstream. Only in
/// `on_http_request_headers`.
pub fn replace_request_header(name: &str, value: &[u8]) {
    count_host_call("set_request_header");
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
}

/// Removes every value of a request header. Only in `on_http_request_headers`.
pub fn remove_request_header(name: &str) {
    count_host_call("set_request_header");
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, None);
}

/// Sets a response header before the response goes downstream. Only in
/// `on_http_response_headers`.
pub fn replace_response_header(name: &str, value: &[u8]) {
    count_host_call("set_response_header");
    let _ = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, Some(value));
}

/// An Envoy attribute (`["response", "code"]`) or another filter's filter state; `None` if
/// unavailable.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    count_host_call("property");
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// Writes filter state `wasm.<key>`, readable by later filters and the access log. A failure
/// only loses a log field, so it is ignored. Only in stream callbacks.
pub fn set_filter_state(key: &str, value: &[u8]) {
    count_host_call("set_filter_state");
    let _ = hostcalls::set_property(vec![key], Some(value));
}

fn buffer(kind: BufferType, max_size: usize) -> Option<Vec<u8>> {
    count_host_call("body");
    hostcalls::get_buffer(kind, 0, max_size).ok().flatten()
}

/// Up to `max_size` bytes of the request body chunk `on_http_request_body` was called with;
/// `None` if Envoy has none (the SDK also says `None` for an empty chunk: do not ask for 0).
pub fn request_body(max_size: usize) -> Option<Vec<u8>> {
    buffer(BufferType::HttpRequestBody, max_size)
}

/// Up to `max_size` bytes of the response body chunk `on_http_response_body` was called with;
/// `None` as for [`request_body`].
pub fn response_body(max_size: usize) -> Option<Vec<u8>> {
    buffer(BufferType::HttpResponseBody, max_size)
}

/// The body of an HTTP callout's answer, in `on_http_call_response`.
pub fn http_call_response_body(max_size: usize) -> Vec<u8> {
    buffer(BufferType::HttpCallResponseBody, max_size).unwrap_or_default()
}

/// Calls another Envoy cluster; the answer arrives in the calling stream's
/// `on_http_call_response` (the SDK routes it by token). `headers` must include `:method`,
/// `:path` and `:authority`.
pub fn dispatch_http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    timeout_ms: u32,
) -> Result<u32, Status> {
    count_host_call("http_call");
    hostcalls::dispatch_http_call(
        cluster,
        headers,
        None,
        Vec::new(),
        Duration::from_millis(u64::from(timeout_ms)),
    )
}

/// Lets a response that `on_http_response_headers` paused go on unchanged.
pub fn resume_response() {
    count_host_call("resume");
    let _ = hostcalls::resume_http_response();
}

/// Sets how often the root context's `on_tick` runs in this worker (0 stops it). Callable from
/// a stream's callbacks too: Envoy applies it to the stream's root context.
pub fn set_tick_period_ms(ms: u64) {
    // Envoy answers Ok to any period.
    count_host_call("tick_period");
    let _ = hostcalls::set_tick_period(Duration::from_millis(ms));
}

/// Makes the stream `context_id` the one the following host calls act on (from `on_tick`, to
/// answer a waiting request). False when Envoy no longer knows that stream (BadArgument, the
/// only other status it answers).
pub fn set_effective_context(context_id: u32) -> bool {
    count_host_call("effective_context");
    hostcalls::set_effective_context(context_id).is_ok()
}
