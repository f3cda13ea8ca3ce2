//! Correlation ids and trace context on arbitrary bytes: no panic; an id accepted as valid is
//! printable ASCII from `[A-Za-z0-9._:-]`, 1 to 128 bytes; `decide` keeps only valid ids and
//! otherwise makes a fresh one or none as configured; a parsed `traceparent` has ids of 32 and
//! 16 lower-case hex digits, not all zero.

use crate::bytes::Bytes;
use log_enrichment::config::{Correlation, MAX_CORRELATION_ID_BYTES};
use log_enrichment::correlation::{decide, is_valid_id, parse_traceparent, Action};

const FRESH: &str = "00000000-0000-4000-8000-000000000000";

pub fn correlation_id(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.byte();
    let value = input.rest();

    let valid = is_valid_id(value);
    if valid {
        assert!(!value.is_empty() && value.len() <= MAX_CORRELATION_ID_BYTES);
        assert!(
            value.iter().all(|b| b.is_ascii_graphic()),
            "accepted a non-printable id {value:?}"
        );
        assert!(value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(b)));
    }

    let config = Correlation {
        generate: flags & 1 != 0,
        trust_incoming: flags & 2 != 0,
        ..Correlation::default()
    };
    let safe_all = flags & 4 != 0;
    let incoming = (flags & 8 != 0).then_some(value);
    let safe = |id: &[u8]| safe_all || !id.contains(&b'7');
    let decision = decide(&config, incoming, safe, || FRESH.to_string());
    match decision.action {
        Action::Kept => {
            let id = decision.id.as_deref().expect("a kept id");
            assert!(config.trust_incoming && valid && safe(value));
            assert_eq!(id.as_bytes(), value);
        }
        Action::Replaced => {
            assert!(incoming.is_some() && !(valid && safe(value)));
            assert_eq!(decision.id.as_deref(), Some(FRESH));
        }
        Action::Generated => {
            assert!(config.generate);
            assert_eq!(decision.id.as_deref(), Some(FRESH));
        }
        Action::Absent => {
            assert!(!config.generate && decision.id.is_none());
        }
    }
    if let Some(id) = &decision.id {
        assert!(is_valid_id(id.as_bytes()), "decided an invalid id {id:?}");
    }

    if let Some(trace) = parse_traceparent(value) {
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert!(
            hex(&trace.trace_id, 32) && hex(&trace.span_id, 16),
            "{trace:?}"
        );
        assert!(trace.trace_id.bytes().any(|b| b != b'0'));
        assert!(trace.span_id.bytes().any(|b| b != b'0'));
        let text = String::from_utf8_lossy(value);
        assert!(text.contains(&format!("-{}-{}-", trace.trace_id, trace.span_id)));
    }
}
