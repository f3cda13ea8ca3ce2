//! Correlation ids and W3C trace context.

use crate::config::{Correlation, MAX_CORRELATION_ID_BYTES};

/// A correlation id that is safe to forward and log: 1 to 128 characters of
/// `[A-Za-z0-9._:-]` (no CR/LF, quotes, spaces or anything else a log parser could trip on).
pub fn is_valid_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CORRELATION_ID_BYTES
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// What happened to the request's correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A valid incoming id was kept.
    Kept,
    /// There was none (or incoming ids are not trusted): a fresh one was made.
    Generated,
    /// The incoming id was invalid: a fresh one replaced it.
    Replaced,
    /// None came and none was made.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: Option<String>,
    pub action: Action,
}

/// Decides the correlation id from the incoming header value; `safe` says whether an id may
/// be logged and forwarded (it carries no personal data), `fresh` makes a new id.
pub fn decide(
    config: &Correlation,
    incoming: Option<&[u8]>,
    safe: impl Fn(&[u8]) -> bool,
    fresh: impl FnOnce() -> String,
) -> Decision {
    let valid = |id: &[u8]| is_valid_id(id) && safe(id);
    match incoming {
        Some(id) if config.trust_incoming && valid(id) => Decision {
            // Valid ids are ASCII.
            id: Some(String::from_utf8_lossy(id).into_owned()),
            action: Action::Kept,
        },
        Some(id) if !valid(id) => Decision {
            id: Some(fresh()),
            action: Action::Replaced,
        },
        _ if config.generate => Decision {
            id: Some(fresh()),
            action: Action::Generated,
        },
        _ => Decision {
            id: None,
            action: Action::Absent,
        },
    }
}

/// A random (version 4) UUID from 128 random bits.
pub fn uuid_v4(high: u64, low: u64) -> String {
    let high = (high & !0xf000) | 0x4000; // version 4
    let low = (low & !(0xc000u64 << 48)) | (0x8000u64 << 48); // RFC 4122 variant
    let hex = format!("{high:016x}{low:016x}");
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The trace and parent span of a W3C `traceparent` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
}

/// Parses `version-traceid-spanid-flags` (W3C Trace Context): lower-case hex of 2-32-16-2
/// digits, version not `ff`, ids not all zero. Later versions may append fields.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceContext> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let well_formed = lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace_id, 32)
        && lower_hex(span_id, 16)
        && lower_hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    (well_formed && !zero(trace_id) && !zero(span_id)).then(|| TraceContext {
        trace_id: trace_id.to_string(),
        span_id: span_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    fn config(trust: bool, generate: bool) -> Correlation {
        Correlation {
            trust_incoming: trust,
            generate,
            ..Correlation::default()
        }
    }

    #[test]
    fn valid_ids() {
        for id in ["abc", "order-42:retry.1_x", "A", &"x".repeat(128)] {
            assert!(is_valid_id(id.as_bytes()), "{id}");
        }
        for id in [
            "",
            "a b",
            "a\r\nX-Evil: 1",
            "\"quoted\"",
            "a/b",
            "æ",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_id(id.as_bytes()), "{id:?}");
        }
        assert!(!is_valid_id(&[b'a', 0xff]));
    }

    #[test]
    fn decisions() {
        let fresh = || "fresh".to_string();
        let kept = decide(&config(true, true), Some(b"abc-1"), |_| true, fresh);
        assert_eq!(
            (kept.id.as_deref(), kept.action),
            (Some("abc-1"), Action::Kept)
        );

        let replaced = decide(&config(true, true), Some(b"bad\r\nid"), |_| true, fresh);
        assert_eq!(
            (replaced.id.as_deref(), replaced.action),
            (Some("fresh"), Action::Replaced)
        );
        // Invalid ids are replaced even when generating is off: they must not travel on.
        let replaced = decide(&config(true, false), Some(&[b'x'; 200]), |_| true, fresh);
        assert_eq!(replaced.action, Action::Replaced);

        let generated = decide(&config(true, true), None, |_| true, fresh);
        assert_eq!(
            (generated.id.as_deref(), generated.action),
            (Some("fresh"), Action::Generated)
        );
        let untrusted = decide(&config(false, true), Some(b"abc-1"), |_| true, fresh);
        assert_eq!(untrusted.action, Action::Generated);

        let absent = decide(&config(true, false), None, |_| true, fresh);
        assert_eq!((absent.id, absent.action), (None, Action::Absent));

        // A well-formed id that carries personal data is replaced like an invalid one.
        let unsafe_id = decide(&config(true, false), Some(b"01010012356"), |_| false, fresh);
        assert_eq!(
            (unsafe_id.id.as_deref(), unsafe_id.action),
            (Some("fresh"), Action::Replaced)
        );
    }

    #[test]
    fn uuids_are_version_4_and_valid_ids() {
        let id = uuid_v4(u64::MAX, u64::MAX);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = uuid_v4(0, 0);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
        assert!(is_valid_id(id.as_bytes()));
        assert_ne!(uuid_v4(1, 2), uuid_v4(1, 3));
    }

    #[test]
    fn traceparent() {
        let tc =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tc.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.span_id, "00f067aa0ba902b7");
        assert!(parse_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        )
        .is_some());
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
            "",
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(parse_traceparent(&[0xff, b'-']).is_none());
    }
}
