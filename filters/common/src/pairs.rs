//! The proxy-wasm encoding of header maps: a u32 count, then (name length, value length) u32
//! pairs, then each name and value followed by a NUL. Decoding is bounds-checked: a malformed
//! buffer yields the pairs read so far, never a panic.

/// Encodes `pairs` for the host.
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

/// Decodes a host-encoded map into (name, value) byte pairs.
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
    use crate::testing::test;

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
