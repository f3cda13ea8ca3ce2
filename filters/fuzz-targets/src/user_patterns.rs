//! User-defined detectors on arbitrary regexes and texts. Invariants: compiling never panics;
//! the output is UTF-8 and capped; the pattern counts a find only when it matches the text
//! (outside identifiers), and a match is redacted; and redacting the output again keeps every marker (markers are
//! opaque to every pattern). A second pass may find more: a regex that looks at its
//! neighbours (`\b.`) can match next to a marker where it did not match next to the value,
//! so a fixed point is not promised for user patterns (the README says so).

use crate::bytes::Bytes;
use log_enrichment::config::Redaction;
use log_enrichment::detect::{keep_identifiers_whole, Detector};
use log_enrichment::patterns::{scan_patterns, Checksum, PatternRegex, UserPattern};
use log_enrichment::redact::{Counts, Redactor};

pub fn user_patterns(data: &[u8]) {
    let mut input = Bytes::new(data);
    let choice = input.byte();
    let regex = String::from_utf8_lossy(input.field(0));
    let keyword = String::from_utf8_lossy(input.field(0)).to_ascii_lowercase();
    let text = input.rest();
    let Ok(regex) = PatternRegex::compile(&regex) else {
        return;
    };
    let pattern = UserPattern {
        name: "fuzz".to_string(),
        regex,
        validate: [
            None,
            Some(Checksum::Luhn),
            Some(Checksum::Mod11),
            Some(Checksum::Mod97),
        ][usize::from(choice & 0x03)],
        keywords: if keyword.is_empty() || keyword.len() > 64 {
            Vec::new()
        } else {
            vec![keyword]
        },
        keyword_distance: usize::from(choice >> 2),
    };
    let config = Redaction {
        patterns: vec![pattern],
        ..Redaction::default()
    };
    let redactor = Redactor::new(&config);
    let max = 4096;
    let mut counts = Counts::default();
    let out = redactor.text(text, max, &mut counts);
    assert!(out.len() <= max + 3);
    // Counted only when the pattern matches the text as sent (no escapes to decode); when it
    // does, something is redacted (a built-in detector's overlapping find may take the count).
    // Checked where the built-in detectors change nothing: an address they truncate is new
    // text (`8::` becomes `8:0:0::/48`) that a pattern may match in a later pass.
    let built_ins_only = Redactor::new(&Redaction::default());
    let untouched = built_ins_only.text(text, usize::MAX, &mut Counts::default())
        == String::from_utf8_lossy(text);
    if untouched && !text.contains(&b'%') && !text.contains(&b'+') {
        let mut spans = Vec::new();
        scan_patterns(&config.patterns, text, b"", &mut spans);
        keep_identifiers_whole(text, &mut spans);
        let described = || format!("{:?} -> {out:?}", String::from_utf8_lossy(text));
        if spans.is_empty() {
            assert_eq!(counts.of(Detector::Pattern(0)), 0, "{}", described());
        } else {
            assert!(counts.total() > 0, "{}", described());
        }
    }
    if out.len() <= max && !out.ends_with('…') && !out.contains('%') {
        let again = redactor.text(out.as_bytes(), max, &mut Counts::default());
        let markers = |s: &str| s.matches("[REDACTED:").count();
        // A second pass can make the value longer (markers for more finds): a cut one is not
        // compared.
        assert!(
            again.ends_with('…') || markers(&again) >= markers(&out),
            "a marker was lost: {out:?} -> {again:?}"
        );
    }
}
