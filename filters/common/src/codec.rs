//! Little-endian binary encoding for values kept in shared data: compact, versioned by the
//! callers, and decoded with bounds checks so that anything malformed yields `None`.

/// Reads values front to back; every read fails cleanly on short input.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    /// A u32 length followed by that many bytes.
    pub fn sized(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.bytes(len)
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Appends a u32 length and the bytes (lengths beyond u32 are clamped by callers' limits).
pub fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn reads_what_was_written() {
        let mut out = vec![7u8];
        out.extend_from_slice(&513u16.to_le_bytes());
        out.extend_from_slice(&70_000u32.to_le_bytes());
        out.extend_from_slice(&u64::MAX.to_le_bytes());
        put_sized(&mut out, b"abc");
        let mut r = Reader::new(&out);
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.u16(), Some(513));
        assert_eq!(r.u32(), Some(70_000));
        assert_eq!(r.u64(), Some(u64::MAX));
        assert_eq!(r.sized(), Some(&b"abc"[..]));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
    }

    #[test]
    fn short_input_fails_cleanly() {
        let mut out = Vec::new();
        put_sized(&mut out, b"abcdef");
        assert_eq!(Reader::new(&out[..7]).sized(), None);
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), None);
        assert_eq!(Reader::new(&u32::MAX.to_le_bytes()).sized(), None);
    }
}
