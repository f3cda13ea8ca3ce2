//! The log filter's redaction and record writer on arbitrary bytes. Invariants: the output is
//! UTF-8 (a `String`) and, written into a record, valid JSON that `serde_json`
//! reads back to the same strings; redacting the output again changes nothing; and a known
//! personal value planted in the text between spaces never survives.

use crate::bytes::Bytes;
use log_enrichment::config::{Mode, Redaction};
use log_enrichment::record::{Record, Value};
use log_enrichment::redact::{Counts, Redactor};
use serde_json::Value as Json;

/// Valid examples from the crate's own tests (detect_tests.rs, redact_tests.rs).
const PLANTS: &[&str] = &[
    "ola@example.no",
    "a@example.com",
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "5555-5555-5555-4444",
    "01010012356",
    "NO9386011117947",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
];

/// Whether `output` can be checked for idempotence. A value cut at the cap (`…`) is cut again,
/// or differently: only uncut values are checked.
fn checkable(output: &str, max: usize) -> bool {
    output.len() <= max && !output.ends_with('…')
}

pub fn redaction(data: &[u8]) {
    let mut input = Bytes::new(data);
    let choice = input.byte();
    let position = usize::from(input.u16());
    let text = input.rest();
    let mut config = Redaction::default();
    if choice & 0x80 != 0 {
        config.mode = Mode::Hash {
            key: b"0123456789abcdef".to_vec(),
        };
    }
    if choice & 0x40 != 0 {
        config.max_value_bytes = 64;
    }
    let redactor = Redactor::new(&config);
    let max = redactor.max_value_bytes;
    let mut counts = Counts::default();

    let as_text = redactor.text(text, max, &mut counts);
    let as_path = redactor.path(text, &mut counts);
    let as_query = redactor.query(text, &mut counts);
    for out in [&as_text, &as_path, &as_query] {
        // README: a cut value ends in `…`, 3 bytes past the limit.
        assert!(
            out.len() <= max + 3,
            "{} bytes over the cap {max}",
            out.len()
        );
    }
    // Text, paths and queries are checked as sent and at two percent-decoding levels, so
    // redacting an output that still holds escapes again looks one level deeper than the first
    // time: idempotence holds, and is checked, where the output has no escapes.
    if checkable(&as_text, max) && !as_text.contains('%') {
        let again = redactor.text(as_text.as_bytes(), max, &mut Counts::default());
        if checkable(&again, usize::MAX) {
            assert_eq!(
                again, as_text,
                "text redaction is not idempotent on {text:?}"
            );
        }
    }
    if checkable(&as_path, max) && !as_path.contains('%') {
        let again = redactor.path(as_path.as_bytes(), &mut Counts::default());
        if checkable(&again, usize::MAX) {
            assert_eq!(
                again, as_path,
                "path redaction is not idempotent on {text:?}"
            );
        }
    }
    if checkable(&as_query, max) && !as_query.contains('%') {
        let again = redactor.query(as_query.as_bytes(), &mut Counts::default());
        if checkable(&again, usize::MAX) {
            assert_eq!(
                again, as_query,
                "query redaction is not idempotent on {text:?}"
            );
        }
    }
    check_record_and_plant(
        &redactor, choice, position, text, as_text, as_path, as_query, counts,
    );
}

#[allow(clippy::too_many_arguments)]
fn check_record_and_plant(
    redactor: &Redactor,
    choice: u8,
    position: usize,
    text: &[u8],
    as_text: String,
    as_path: String,
    as_query: String,
    counts: Counts,
) {
    // The record writer: every string comes back unchanged, keys included.
    // A fuzzed key, prefixed so that it never repeats a fixed one (the parser rejects duplicates).
    let key = format!("k:{}", String::from_utf8_lossy(text));
    let mut record = Record::with_capacity(6);
    record.str("text", as_text.clone());
    record.str("path", as_path.clone());
    record.push(key.clone(), Value::Str(as_query.clone()));
    record.push(
        "list",
        Value::List(vec![as_text.clone(), key.clone(), String::new()]),
    );
    record.push("n", Value::Int(u64::from(counts.total())));
    record.push("ms", Value::Millis(position as u64 * 1_000_003));
    let written = record.to_json();
    // Read back in document order (the record's field order is part of what is checked).
    let parsed: InOrder = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("the record is not JSON ({e}): {written}"));
    let members = &parsed.0;
    assert_eq!(members.len(), 6, "{written}");
    assert_eq!(
        members[0],
        ("text".to_string(), Json::String(as_text.clone()))
    );
    assert_eq!(members[1], ("path".to_string(), Json::String(as_path)));
    assert_eq!(members[2], (key.clone(), Json::String(as_query)));
    let list: Vec<&str> = members[3]
        .1
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("strings"))
        .collect();
    assert_eq!(list, vec![as_text.as_str(), key.as_str(), ""]);
    assert!(
        written.bytes().all(|b| b >= 0x20),
        "a control byte in {written:?}"
    );

    // A planted personal value never survives (but see KNOWN_DIGIT_NEIGHBOUR_DEFECT).
    let plant = PLANTS[usize::from(choice & 0x3f) % PLANTS.len()];
    let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
    if lower.contains(&plant.to_ascii_lowercase()) {
        return;
    }
    let at = position % (text.len() + 1);
    let mut planted = Vec::with_capacity(text.len() + plant.len() + 2);
    planted.extend_from_slice(&text[..at]);
    planted.push(b' ');
    planted.extend_from_slice(plant.as_bytes());
    planted.push(b' ');
    planted.extend_from_slice(&text[at..]);
    let out = redactor.text(&planted, usize::MAX, &mut Counts::default());
    assert!(
        !out.to_ascii_lowercase()
            .contains(&plant.to_ascii_lowercase()),
        "{plant} survived in {out:?} (input {:?})",
        String::from_utf8_lossy(&planted)
    );
}

/// A JSON object's members in document order (serde_json's `Map` sorts them unless a feature
/// that the fuzz package does not enable is on).
struct InOrder(Vec<(String, Json)>);

impl<'de> serde::Deserialize<'de> for InOrder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = InOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InOrder, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = map.next_entry()? {
                    out.push(member);
                }
                Ok(InOrder(out))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(input: &str) -> String {
        Redactor::new(&Redaction::default()).text(input.as_bytes(), 1024, &mut Counts::default())
    }

    /// Defect: a truncated IPv6 address (`2001:db8:85a3::/48`) is detected again, so each pass
    /// appends another `/48`; IPv4 (`203.0.113.0/24`) is a fixed point.
    #[test]
    fn truncated_addresses_are_a_fixed_point() {
        for address in [
            "ip 203.0.113.45 x",
            "ip 2001:db8:85a3::8a2e:370:7334 x",
            "::",
        ] {
            let once = text(address);
            assert_eq!(text(&once), once, "{address}");
        }
    }

    /// Fixed defect: invalid UTF-8 around `@` passed, was logged as U+FFFD, and the U+FFFD
    /// text reads as an e-mail address on a second pass (`\xff@\xff\xff\xff.\xff` →
    /// `\u{fffd}@\u{fffd}\u{fffd}\u{fffd}.\u{fffd}` → `[REDACTED:email]`).
    #[test]
    fn replacement_characters_are_a_fixed_point() {
        let r = Redactor::new(&Redaction::default());
        let once = r.text(b"\xff@\xff\xff\xff.\xff", 1024, &mut Counts::default());
        assert_eq!(text(&once), once);
    }

    /// Fixed defect: an address whose local part could reach back into the previous address's
    /// domain (`x@example.co_y@example.com`) overlapped it and was dropped whole, so
    /// `y@example.com` was logged as is in text, paths and queries.
    #[test]
    fn adjacent_addresses_are_both_redacted() {
        let r = Redactor::new(&Redaction::default());
        for input in [
            "x@example.co_y@example.com",
            "x@example.co+y@example.com",
            "+_____a@example.co++_____a@example.com__=",
        ] {
            for out in [
                r.text(input.as_bytes(), 1024, &mut Counts::default()),
                r.path(input.as_bytes(), &mut Counts::default()),
                r.query(input.as_bytes(), &mut Counts::default()),
            ] {
                assert!(!out.contains("@example.com"), "{input} -> {out}");
            }
        }
    }

    /// Defect: a number just before a card (joined by one space) makes the digit-group scanner
    /// report a window that starts in that number; when another span (an IPv6 address) covers
    /// the number, `merge` drops the card span and the whole card is logged; otherwise the
    /// card's last group is (`2554 5555-5555-5555-4444` → `[REDACTED:payment_card]-4444`).
    #[test]
    fn a_card_after_a_number_is_redacted_whole() {
        for input in ["3::2554 5555-5555-5555-4444", "2554 5555-5555-5555-4444"] {
            let out = text(input);
            assert!(!out.contains("4444"), "{input} -> {out}");
        }
    }
}
