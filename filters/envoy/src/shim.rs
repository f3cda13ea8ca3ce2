//! The two host calls made over the raw proxy-wasm imports instead of the SDK (listed, with
//! their reasons and tests, in the README's "The SDK and its shims"):
//!
//! - [`send_local_response`]: the SDK's `send_http_response` passes no response code details
//!   (Envoy's `%RESPONSE_CODE_DETAILS%`, which says why a reply was local) and takes header
//!   values as `&str`, so a stale response whose upstream sent bytes outside UTF-8 (obs-text)
//!   could not be replayed as it was.
//! - [`header_map_pairs`]: the SDK's `get_map_bytes` `unwrap`s `String::from_utf8` on every
//!   header name, and Envoy does not promise UTF-8 names (a filter before ours may add any).
//!
//! Both decode and encode the ABI's header-map format with bounds checks: malformed host data
//! yields what was read so far, never a panic.

#[cfg(target_os = "wasi")]
pub use imports::{header_map_pairs, send_local_response};

#[cfg(target_os = "wasi")]
mod imports {
    use super::{deserialize, serialize};
    use proxy_wasm::types::MapType;
    use std::ptr::{null_mut, NonNull};

    #[link(wasm_import_module = "env")]
    extern "C" {
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

        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
    }

    /// The host's status for success.
    const OK: u32 = 0;

    /// Sends a local reply with `details` as its response code details (Envoy replaces spaces with
    /// `_`). Envoy defers the reply and reports success even when it will not take effect. For
    /// a gRPC request Envoy sends it trailers-only, with `grpc_status` (or, when `None`, a
    /// status derived from `status`) and the body as `grpc-message`.
    pub fn send_local_response(
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        grpc_status: Option<u32>,
    ) -> Result<(), u32> {
        let serialized = serialize(headers);
        crate::envoy::count_host_call("send_local_response");
        // SAFETY: every pointer and length pair describes a live slice for the duration of the
        // call; the host copies what it needs before returning.
        let status = unsafe {
            proxy_send_local_response(
                status,
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                serialized.as_ptr(),
                serialized.len(),
                // -1: none given, Envoy derives one for gRPC requests.
                grpc_status
                    .and_then(|s| i32::try_from(s).ok())
                    .unwrap_or(-1),
            )
        };
        if status == OK {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Every header of a map as `(name, value)` bytes, repeated headers included. Envoy answers
    /// every map type with `Ok` (a map that does not exist in the current phase is empty).
    pub fn header_map_pairs(map: MapType) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        crate::envoy::count_host_call("header_map");
        // SAFETY: the host writes a pointer to `size` bytes it allocated through the SDK's
        // `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes), or leaves it null.
        let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
        let Some(data) = NonNull::new(data) else {
            return Vec::new();
        };
        // SAFETY: see above; ownership of the allocation passes to this Vec, which frees it.
        let bytes = unsafe { Vec::from_raw_parts(data.as_ptr(), size, size) };
        if status != OK {
            return Vec::new();
        }
        deserialize(&bytes)
    }
}

/// The ABI's map encoding: a u32 count, then (name length, value length) u32 pairs, then each
/// name and value followed by a NUL.
pub fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| 10 + n.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len32(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len32(name.len()));
        out.extend_from_slice(&len32(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Decodes the ABI's map encoding (see [`serialize`]).
pub fn deserialize(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let Some(count) = read_u32(0) else {
        return Vec::new();
    };
    // Each pair takes at least 10 bytes; a larger count is corrupt.
    let count = count.min(bytes.len() / 10);
    let mut out = Vec::with_capacity(count);
    let Some(mut data) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
        return out;
    };
    for i in 0..count {
        let (Some(name_len), Some(value_len)) = (read_u32(4 + i * 8), read_u32(8 + i * 8)) else {
            break;
        };
        let name = data
            .checked_add(name_len)
            .and_then(|end| bytes.get(data..end));
        let value_start = data.saturating_add(name_len).saturating_add(1);
        let value = value_start
            .checked_add(value_len)
            .and_then(|end| bytes.get(value_start..end));
        let (Some(name), Some(value)) = (name, value) else {
            break;
        };
        out.push((name.to_vec(), value.to_vec()));
        data = value_start.saturating_add(value_len).saturating_add(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    #[test]
    fn roundtrip() {
        let pairs: Vec<(&str, &[u8])> = vec![
            (":status", b"200"),
            ("content-type", b"text/plain"),
            ("x-bin", b"\xff\x00"),
        ];
        let decoded = deserialize(&serialize(&pairs));
        let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        assert!(deserialize(&serialize(&[])).is_empty());
    }

    #[test]
    fn malformed_input_never_panics() {
        let good = serialize(&[("a", b"1"), ("bb", b"22")]);
        for len in 0..good.len() {
            let partial = deserialize(&good[..len]);
            assert!(partial.len() <= 2);
        }
        assert!(deserialize(&[]).is_empty());
        assert!(deserialize(&u32::MAX.to_le_bytes()).is_empty());
        let mut huge = 1u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 8]);
        assert!(deserialize(&huge).is_empty());
    }
}
