//! Standard base64 (RFC 4648, with padding) decoding for configuration values such as
//! `body_base64`. Hand-written because it is needed once per config push and the `base64`
//! crate's generic engines cost more module size than this whole file.

/// Decodes standard base64; whitespace is ignored, padding is optional.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for (i, c) in text.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(format!(
                "invalid base64: data after padding at character {}",
                i + 1
            ));
        }
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 character at position {}", i + 1)),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xFF) as u8);
        }
    }
    // Leftover bits must be zero padding of the last group (2 or 4 bits).
    if bits >= 6 || buffer & ((1 << bits) - 1) != 0 || padding > 2 {
        return Err("invalid base64: truncated or badly padded".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes(), "{encoded}");
        }
    }

    #[test]
    fn binary_whitespace_and_missing_padding() {
        assert_eq!(decode("AP8=").unwrap(), vec![0x00, 0xFF]);
        assert_eq!(decode("AP8").unwrap(), vec![0x00, 0xFF]);
        assert_eq!(decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(decode("+/+/").unwrap(), vec![0xFB, 0xFF, 0xBF]);
    }

    #[test]
    fn refuses_invalid_input() {
        for bad in ["Zm9v!", "Z", "Zm9vY", "Zg==Zg", "Zh==", "Zg==="] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
