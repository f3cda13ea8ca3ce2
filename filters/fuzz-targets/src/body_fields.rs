//! JSON body field rules on arbitrary bytes. Invariants: a body is rewritten exactly when
//! serde_json reads it as one document; the rewrite (uncut) is valid JSON of the same shape,
//! equal to the body where nothing is masked or replaced (a decimal number to within the
//! last digit: serde_json's default number reading is not exactly the nearest double, so the
//! rewrite read back can differ by a unit in the last place); with `keep_fields` empty no
//! string of the body survives.

use crate::bytes::Bytes;
use log_enrichment::fields::{rewrite, FieldPath, FieldRules, Scrub};
use serde_json::Value as Json;

/// Masks fields and counts them; scrubs nothing (the detectors are the redaction target's).
struct Masks(usize);

impl Scrub for Masks {
    fn scrub(&mut self, _: &str, _: &str) -> Option<String> {
        None
    }

    fn mask(&mut self, _: &[u8], out: &mut Vec<u8>) {
        self.0 += 1;
        out.extend_from_slice(b"[REDACTED:field]");
    }
}

/// Field rules chosen by the input's first byte.
const PATHS: &[&str] = &["ssn", "a.b", "items[].card", "[].id", "x", "customer", "a"];

pub fn body_fields(data: &[u8]) {
    let mut input = Bytes::new(data);
    let choice = input.byte();
    let body = input.rest();
    let path = FieldPath::parse(PATHS[usize::from(choice & 0x07) % PATHS.len()]).unwrap();
    let redact = if choice & 0x08 != 0 {
        vec![path.clone()]
    } else {
        Vec::new()
    };
    let keep = match choice & 0x30 {
        0x00 => None,
        0x10 => Some(Vec::new()),
        _ => Some(vec![path]),
    };
    let rules = FieldRules {
        redact,
        keep,
        parse_max_bytes: usize::MAX,
    };
    let mut scrub = Masks(0);
    let out = rewrite(body, &rules, usize::MAX, &mut scrub);
    let read = serde_json::from_slice::<Json>(body);
    assert_eq!(
        out.is_some(),
        read.is_ok(),
        "rewrite and serde_json disagree on {:?}",
        String::from_utf8_lossy(body)
    );
    let (Some(out), Ok(original)) = (out, read) else {
        return;
    };
    let rewritten: Json = serde_json::from_slice(&out.json)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.json)));
    assert_eq!(out.redacted as usize, scrub.0);
    if rules.redact.is_empty() && rules.keep.is_none() {
        assert!(
            nearly_equal(&original, &rewritten),
            "{original:?} became {rewritten:?}"
        );
    }
    assert!(same_shape(&original, &rewritten));
    if rules.keep == Some(Vec::new()) {
        let mut strings = Vec::new();
        collect_strings(&rewritten, &mut strings);
        assert!(
            strings
                .iter()
                .all(|s| s.starts_with('[') && s.ends_with(']')),
            "a value survived keep_fields []: {strings:?}"
        );
    }
}

/// Equal, but for decimal numbers, which may differ in the last place.
fn nearly_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| nearly_equal(v, w)))
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| nearly_equal(v, w))
        }
        (Json::Number(x), Json::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON
        }
        (a, b) => a == b,
    }
}

/// Objects keep their keys and arrays their lengths; a masked or replaced value is a string.
fn same_shape(original: &Json, rewritten: &Json) -> bool {
    match (original, rewritten) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same_shape(v, w))
        }
        (_, Json::String(_)) => true,
        (a, b) => nearly_equal(a, b),
    }
}

fn collect_strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
