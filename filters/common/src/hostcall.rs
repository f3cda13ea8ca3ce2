//! Non-panicking proxy-wasm host calls (wasm32-wasip1 only).
//!
//! The SDK's wrappers `panic!` on any status they do not expect, and a panic kills the Envoy
//! worker's VM. These declare the ABI imports (proxy-wasm spec, ABI 0.2.1) and turn every
//! status into a `Result`. Host-returned buffers come from [`crate::abi`]'s
//! `proxy_on_memory_allocate`.

use std::ptr::{null, null_mut};

/// A host status other than success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

pub const NOT_FOUND: Status = Status(1);
pub const CAS_MISMATCH: Status = Status(8);

const OK: u32 = 0;

/// proxy-wasm log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
}

const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
const MAP_HTTP_RESPONSE_HEADERS: u32 = 2;
const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const BUFFER_HTTP_REQUEST_BODY: u32 = 0;
const BUFFER_HTTP_RESPONSE_BODY: u32 = 1;
const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const STREAM_HTTP_RESPONSE: u32 = 1;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buffer: *mut u8, length: usize) -> u16;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

fn check(status: u32) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Takes ownership of a buffer the host wrote through the module's allocator.
///
/// # Safety
/// `data` must be null or come from `proxy_on_memory_allocate(size)`, which leaks a
/// `Vec::with_capacity(size)`; the host filled all `size` bytes.
unsafe fn take_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

pub fn log(level: LogLevel, message: &str) {
    // Nothing useful can be done if logging itself fails.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Wall-clock time in milliseconds since the Unix epoch (0 if the host refuses).
pub fn now_ms() -> u64 {
    let mut nanos: u64 = 0;
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK {
        nanos / 1_000_000
    } else {
        0
    }
}

/// Nanoseconds, for seeding.
pub fn now_nanos() -> u64 {
    let mut nanos: u64 = 0;
    let _ = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    nanos
}

fn buffer(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    let status =
        unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) };
    match status {
        OK => Ok(unsafe { take_buffer(data, size) }),
        // Nothing there (e.g. Istio with an empty pluginConfig, or an empty body).
        1 => Ok(Vec::new()),
        other => Err(Status(other)),
    }
}

pub fn plugin_configuration() -> Result<Vec<u8>, Status> {
    buffer(BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX)
}

/// Up to `size` bytes of the request body chunk Envoy just handed to `on_request_body`.
pub fn request_body(size: usize) -> Result<Vec<u8>, Status> {
    buffer(BUFFER_HTTP_REQUEST_BODY, 0, size)
}

/// The response body chunk Envoy just handed to `on_response_body` (`size` bytes).
pub fn response_body(size: usize) -> Result<Vec<u8>, Status> {
    buffer(BUFFER_HTTP_RESPONSE_BODY, 0, size)
}

/// The body of an HTTP callout's response, in `on_http_call_response`.
pub fn http_call_response_body(size: usize) -> Result<Vec<u8>, Status> {
    buffer(BUFFER_HTTP_CALL_RESPONSE_BODY, 0, size)
}

fn header_pairs(map: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut data = null_mut();
    let mut size = 0usize;
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    if status != OK {
        return Vec::new();
    }
    crate::pairs::deserialize(&unsafe { take_buffer(data, size) })
}

/// All request headers (one host call; the single-value getter returns only the first of a
/// repeated header).
pub fn request_headers() -> Vec<(Vec<u8>, Vec<u8>)> {
    header_pairs(MAP_HTTP_REQUEST_HEADERS)
}

/// All response headers (one host call; use only where every header is needed).
pub fn response_headers() -> Vec<(Vec<u8>, Vec<u8>)> {
    header_pairs(MAP_HTTP_RESPONSE_HEADERS)
}

/// All headers of an HTTP callout's response, in `on_http_call_response`.
pub fn http_call_response_headers() -> Vec<(Vec<u8>, Vec<u8>)> {
    header_pairs(MAP_HTTP_CALL_RESPONSE_HEADERS)
}

/// Calls another Envoy cluster; the answer arrives in `on_http_call_response` with the
/// returned token. `headers` must include `:method`, `:path` and `:authority`.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let serialized = crate::pairs::serialize(headers);
    let mut token = 0u32;
    check(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            serialized.as_ptr(),
            serialized.len(),
            body.as_ptr(),
            body.len(),
            null(),
            0,
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// Makes later host calls act on `context_id`. Envoy delivers HTTP callout answers on the
/// plugin's root context; replies and header reads must target the stream that called.
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Lets a response that a callback paused continue downstream unchanged.
pub fn resume_response() -> Result<(), Status> {
    check(unsafe { proxy_continue_stream(STREAM_HTTP_RESPONSE) })
}

fn header_value(map: u32, name: &str) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0usize;
    let status =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) };
    (status == OK).then(|| unsafe { take_buffer(data, size) })
}

/// A request header as raw bytes (never assumed UTF-8); `None` if absent or unavailable.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    header_value(MAP_HTTP_REQUEST_HEADERS, name)
}

/// A response header as raw bytes.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    header_value(MAP_HTTP_RESPONSE_HEADERS, name)
}

fn replace_header(map: u32, name: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// Sets a request header (replacing every value it had), before the request goes upstream.
pub fn replace_request_header(name: &str, value: &[u8]) -> Result<(), Status> {
    replace_header(MAP_HTTP_REQUEST_HEADERS, name, value)
}

/// Sets a response header (replacing every value it had), before the response goes downstream.
pub fn replace_response_header(name: &str, value: &[u8]) -> Result<(), Status> {
    replace_header(MAP_HTTP_RESPONSE_HEADERS, name, value)
}

/// Removes every value of a request header.
pub fn remove_request_header(name: &str) -> Result<(), Status> {
    check(unsafe {
        proxy_remove_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len())
    })
}

/// Fills `buffer` from the host's random source (WASI `random_get`; Envoy implements it).
pub fn random_bytes(buffer: &mut [u8]) -> Result<(), Status> {
    match unsafe { random_get(buffer.as_mut_ptr(), buffer.len()) } {
        0 => Ok(()),
        errno => Err(Status(u32::from(errno))),
    }
}

fn property_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// An Envoy attribute (`["response", "code"]`) or filter-state value; `None` if unavailable.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let path = property_path(path);
    let mut data = null_mut();
    let mut size = 0usize;
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    (status == OK && !data.is_null()).then(|| unsafe { take_buffer(data, size) })
}

/// Writes filter state `wasm.<name>`, readable by later filters and access logs.
pub fn set_filter_state(name: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// The value and CAS token of a shared-data key; `Ok(None)` if it does not exist.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        OK => Ok(Some((unsafe { take_buffer(data, size) }, cas))),
        1 => Ok(None),
        other => Err(Status(other)),
    }
}

pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Sends a local reply. Envoy defers it and reports success even if it will not take effect.
pub fn send_http_response(
    status: u32,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<(), Status> {
    let serialized = crate::pairs::serialize(headers);
    check(unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    })
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, delta: i64) -> Result<(), Status> {
    check(unsafe { proxy_increment_metric(id, delta) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    check(unsafe { proxy_record_metric(id, value) })
}
