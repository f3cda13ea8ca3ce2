//! User-defined detectors: checksums, keywords, bounds, and how their finds are masked.

use super::*;
use crate::config::{LogConfig, Mode, Redaction};
use crate::redact::{Counts, Redactor};
use breakwater_common::testing::test;

fn pattern(name: &str, regex: &str, validate: Option<Checksum>, keywords: &[&str]) -> UserPattern {
    UserPattern {
        name: name.to_string(),
        regex: PatternRegex::compile(regex).unwrap(),
        validate,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        keyword_distance: DEFAULT_KEYWORD_DISTANCE as usize,
    }
}

/// A redactor with only these patterns (no built-in detector, no listed parameters).
fn only(patterns: Vec<UserPattern>) -> Redactor {
    Redactor::new(&Redaction {
        detectors: Vec::new(),
        query_params: Vec::new(),
        patterns,
        ..Redaction::default()
    })
}

fn redacted(r: &Redactor, input: &str) -> (String, Counts) {
    let mut counts = Counts::default();
    let out = r.text(input.as_bytes(), 4096, &mut counts);
    (out, counts)
}

#[test]
fn checksums_hold_for_valid_values_and_fail_for_one_digit_changes() {
    let valid = [
        (Checksum::Luhn, "4111 1111 1111 1111"),
        (Checksum::Luhn, "79927398713"),
        (Checksum::Mod11, "1234.56.78903"),       // a kontonummer
        (Checksum::Mod11, "12345607"),            // a KID number
        (Checksum::Mod97, "NO93 8601 1117 947"),  // IBAN: the first four move to the end
        (Checksum::Mod97, "RF18 5390 0754 7034"), // an RF creditor reference
    ];
    for (checksum, value) in valid {
        assert!(checksum.holds(value.as_bytes()), "{checksum:?} {value}");
        // Every one-digit change of a digit fails (Luhn, mod 11 and mod 97 all see these).
        for (i, b) in value.bytes().enumerate() {
            if !b.is_ascii_digit() {
                continue;
            }
            for other in (b'0'..=b'9').filter(|o| *o != b) {
                let mut miss = value.as_bytes().to_vec();
                miss[i] = other;
                // mod 11 cannot tell a changed digit whose weight times the change is a
                // multiple of 11; with weights 2..7 that never happens.
                assert!(
                    !checksum.holds(&miss),
                    "{checksum:?} {}",
                    String::from_utf8_lossy(&miss)
                );
            }
        }
    }
    assert!(!Checksum::Luhn.holds(b"0"), "a checksum needs two digits");
    assert!(!Checksum::Mod11.holds(b"abc"));
    assert!(!Checksum::Mod97.holds(b"01"));
    // Check digits last (an LEI) is not the IBAN convention.
    assert!(!Checksum::Mod97.holds(b"5493001KJTIIGC8Y1R12"));
    assert!(
        !Checksum::Mod11.holds(b"23456789"),
        "control digit 10: no valid number"
    );
}

#[test]
fn a_pattern_finds_its_matches_that_pass_the_checksum() {
    let r = only(vec![pattern(
        "customer_no",
        r"\b\d{4}[ -]?\d{4}\b",
        Some(Checksum::Mod11),
        &[],
    )]);
    let (out, counts) = redacted(&r, "kunde 1234 5607, ordre 1234 5608, id 1234-5615");
    assert_eq!(
        out,
        "kunde [REDACTED:customer_no], ordre 1234 5608, id [REDACTED:customer_no]"
    );
    assert_eq!(counts.of(Detector::Pattern(0)), 2);
    assert_eq!(counts.total(), 2);
}

#[test]
fn keywords_must_stand_within_the_distance_before_a_match() {
    let mut p = pattern("customer_no", r"\b\d{8}\b", None, &["kundenr", "customer"]);
    p.keyword_distance = 10;
    let r = only(vec![p]);
    for (input, expected) in [
        ("Kundenr: 12345678", "Kundenr: [REDACTED:customer_no]"),
        ("CUSTOMER 12345678", "CUSTOMER [REDACTED:customer_no]"),
        // The keyword ends 10 bytes before the match: in reach.
        (
            "kundenr-- no. -- 12345678",
            "kundenr-- no. -- [REDACTED:customer_no]",
        ),
        // 11 bytes: out of reach.
        ("kundenr--- no. -- 12345678", "kundenr--- no. -- 12345678"),
        // After the match does not count.
        ("12345678 kundenr", "12345678 kundenr"),
        ("ordre 12345678", "ordre 12345678"),
    ] {
        assert_eq!(redacted(&r, input).0, expected, "{input}");
    }
}

#[test]
fn hash_mode_names_the_pattern_and_hashes_what_the_checksum_reads() {
    let r = Redactor::new(&Redaction {
        detectors: Vec::new(),
        patterns: vec![pattern(
            "kid",
            r"\d{4}[ .-]?\d{4}",
            Some(Checksum::Mod11),
            &[],
        )],
        mode: Mode::Hash {
            key: b"0123456789abcdef".to_vec(),
        },
        ..Redaction::default()
    });
    let (spaced, _) = redacted(&r, "1234 5607");
    let (dotted, _) = redacted(&r, "1234.5607");
    assert!(spaced.starts_with("[REDACTED:kid:"), "{spaced}");
    assert_eq!(spaced, dotted, "one number, two spellings, one pseudonym");
    assert_eq!(spaced.len(), "[REDACTED:kid:]".len() + 16);
}

#[test]
fn patterns_run_on_text_that_is_not_utf8_and_report_raw_offsets() {
    let r = only(vec![pattern("ticket", r"TCK-\d{6}", None, &[])]);
    let mut counts = Counts::default();
    let out = r.text(b"\xffTCK-123456\xfe TCK-654321", 4096, &mut counts);
    assert_eq!(out, "\u{fffd}[REDACTED:ticket]\u{fffd} [REDACTED:ticket]");
    assert_eq!(counts.of(Detector::Pattern(0)), 2);
}

#[test]
fn a_pattern_sees_invalid_bytes_as_the_replacement_character_they_are_logged_as() {
    // A match over U+FFFD covers the invalid bytes it stands for, whatever their number.
    let r = only(vec![pattern("odd", r"x.y", None, &[])]);
    for (input, expected) in [
        (&b"a x\xffy b"[..], "a [REDACTED:odd] b"),
        (b"x\xf0\x9f\x98y", "[REDACTED:odd]"),
        (
            b"\xfe\xfex\xe2\x82y\xff",
            "\u{fffd}\u{fffd}[REDACTED:odd]\u{fffd}",
        ),
    ] {
        let mut counts = Counts::default();
        assert_eq!(r.text(input, 4096, &mut counts), expected);
        assert_eq!(counts.total(), 1);
    }
    // The second pass over a logged value finds what the first one did: nothing new.
    let any = only(vec![pattern("any", r"[^a-z ]", None, &[])]);
    let once = redacted(&any, "ab \u{fffd}").0;
    let mut counts = Counts::default();
    assert_eq!(any.text(b"ab \xff", 4096, &mut counts), once);
}

#[test]
fn patterns_find_nothing_strictly_inside_an_identifier_but_may_name_a_whole_one() {
    let digits = only(vec![pattern("eight_digits", r"\d{8}", None, &[])]);
    let uuid = "12345678-1234-4234-9234-123456789012";
    assert_eq!(redacted(&digits, uuid).0, uuid);
    assert_eq!(
        redacted(&digits, "order 12345678").0,
        "order [REDACTED:eight_digits]"
    );
    // Eight digits in a row inside a hex id (a SHA-1 here) are part of the id.
    let sha1 = "4bf92f35770123456734da6a3ce929d0e0e47365";
    assert_eq!(
        redacted(&digits, &format!("etag {sha1}")).0,
        format!("etag {sha1}")
    );
    // The control: one letter past hex, it is no identifier, and the digits are found.
    assert_eq!(
        redacted(&digits, &format!("{}z", &sha1[..39])).0,
        "4bf92f[REDACTED:eight_digits]456734da6a3ce929d0e0e4736z"
    );
    let key = only(vec![pattern("api_key", r"\b[0-9a-f]{32}\b", None, &[])]);
    assert_eq!(
        redacted(&key, "key 4bf92f3577b34da6a3ce929d0e0e4736").0,
        "key [REDACTED:api_key]"
    );
}

#[test]
fn patterns_see_percent_decoded_text_and_count_per_pattern() {
    let r = only(vec![
        pattern("ticket", r"TCK-\d{6}", None, &[]),
        pattern("case", r"CASE/\d{4}", None, &[]),
    ]);
    let mut counts = Counts::default();
    let out = r.path(b"/t/TCK%2D123456/CASE%2F2024", &mut counts);
    assert_eq!(out, "/t/[REDACTED:ticket]/[REDACTED:case]");
    assert_eq!(counts.by_pattern[..2], [1, 1]);
}

#[test]
fn regexes_outside_the_bounds_are_refused_with_the_reason() {
    for (regex, reason) in [
        ("", "must be 1 to 512 bytes long"),
        (
            &"a".repeat(MAX_REGEX_BYTES + 1),
            "must be 1 to 512 bytes long",
        ),
        ("(unclosed", "does not compile"),
        (r"(?<=x)y", "does not compile"),
        (r"\w{1000}{1000}", "does not compile"),
        (
            &format!("{}a{}", "(".repeat(40), ")".repeat(40)),
            "does not compile",
        ),
        ("a*", "matches the empty string"),
        ("x|", "matches the empty string"),
    ] {
        let error = PatternRegex::compile(regex).unwrap_err();
        assert!(error.contains(reason), "{regex}: {error}");
        assert!(!error.contains('\n'), "one log line: {error}");
    }
    assert!(PatternRegex::compile(&format!("{}a{}", "(".repeat(30), ")".repeat(30))).is_ok());
    assert!(PatternRegex::compile(&"a".repeat(MAX_REGEX_BYTES)).is_ok());
}

fn refusal(config: &str) -> String {
    LogConfig::parse(config.as_bytes()).unwrap_err().to_string()
}

#[test]
fn the_configuration_names_the_field_of_a_bad_pattern() {
    let p = |fields: &str| {
        format!(r#"{{"redact":{{"patterns":[{{"name":"a","regex":"x"}},{fields}]}}}}"#)
    };
    for (config, expected) in [
        (
            p(r#"{"name":"email","regex":"x"}"#),
            "redact.patterns[1].name: \"email\" is a built-in detector's name",
        ),
        (
            p(r#"{"name":"query_param","regex":"x"}"#),
            "redact.patterns[1].name: \"query_param\" is a built-in",
        ),
        (
            p(r#"{"name":"field","regex":"x"}"#),
            "redact.patterns[1].name: \"field\" is a built-in",
        ),
        (
            p(r#"{"name":"a","regex":"y"}"#),
            "redact.patterns[1].name: \"a\" is given to two patterns",
        ),
        (
            p(r#"{"name":"Kunde","regex":"x"}"#),
            "redact.patterns[1].name: \"Kunde\" is not a pattern name",
        ),
        (
            p(r#"{"name":"b","regex":"(x"}"#),
            "redact.patterns[1].regex: does not compile",
        ),
        (
            p(r#"{"name":"b","regex":"x?"}"#),
            "redact.patterns[1].regex: matches the empty string",
        ),
        (
            p(r#"{"name":"b"}"#),
            "redact.patterns[1].regex: is required",
        ),
        (
            p(r#"{"name":"b","regex":"x","validate":"crc"}"#),
            "redact.patterns[1].validate: \"crc\" is not a checksum",
        ),
        (
            p(r#"{"name":"b","regex":"x","keywords":[]}"#),
            "redact.patterns[1].keywords: must list 1 to 16 keywords",
        ),
        (
            p(r#"{"name":"b","regex":"x","keyword_distance":5}"#),
            "redact.patterns[1].keyword_distance: needs keywords",
        ),
        (
            p(r#"{"name":"b","regex":"x","keywords":["k"],"keyword_distance":257}"#),
            "redact.patterns[1].keyword_distance: 257 is outside 1 to 256",
        ),
        (
            p(r#"{"name":"b","regex":"x","flags":"i"}"#),
            "redact.patterns[1].flags: unknown field `flags`, expected one of `name`, `regex`",
        ),
    ] {
        let error = refusal(&config);
        assert!(error.starts_with(expected), "{config}\n{error}");
    }
    let many: Vec<String> = (0..=MAX_PATTERNS)
        .map(|i| format!(r#"{{"name":"p{i}","regex":"x{i}"}}"#))
        .collect();
    let error = refusal(&format!(
        r#"{{"redact":{{"patterns":[{}]}}}}"#,
        many.join(",")
    ));
    assert!(
        error.starts_with("redact.patterns: at most 32 patterns"),
        "{error}"
    );
}

#[test]
fn a_configured_pattern_is_checked_into_its_parts() {
    let config = LogConfig::parse(
        br#"{"redact":{"patterns":[{"name":"customer_no","regex":"\\b\\d{8}\\b","validate":"mod11","keywords":["Kundenr"],"keyword_distance":12}]}}"#,
    )
    .unwrap();
    let [p] = config.redact.patterns.as_slice() else {
        panic!("one pattern")
    };
    assert_eq!(p.name, "customer_no");
    assert_eq!(p.regex.source(), r"\b\d{8}\b");
    assert_eq!(p.validate, Some(Checksum::Mod11));
    assert_eq!(p.keywords, ["kundenr"]);
    assert_eq!(p.keyword_distance, 12);
    let defaults =
        LogConfig::parse(br#"{"redact":{"patterns":[{"name":"x","regex":"y"}]}}"#).unwrap();
    assert_eq!(defaults.redact.patterns[0].keyword_distance, 30);
    assert_eq!(defaults.redact.patterns[0].validate, None);
}

#[test]
fn patterns_do_not_redact_inside_the_markers_of_earlier_finds() {
    let r = Redactor::new(&Redaction {
        patterns: vec![pattern("code", r"\b[A-Z]{8}\b", None, &[])],
        ..Redaction::default()
    });
    let (out, counts) = redacted(&r, "mail ola@example.no code ABCDEFGH");
    assert_eq!(out, "mail [REDACTED:email] code [REDACTED:code]");
    assert_eq!(counts.total(), 2);
    let (again, counts) = redacted(&r, &out);
    assert_eq!((again.as_str(), counts.total()), (out.as_str(), 0));
    // Hash-mode markers too; but a forged marker holding a number does not hide it.
    let words = only(vec![pattern("word", r"\w+", None, &[])]);
    let hashed = "[REDACTED:email:0123456789abcdef]";
    assert_eq!(redacted(&words, hashed).0, hashed);
    let defaults = Redactor::new(&Redaction::default());
    assert_eq!(
        redacted(&defaults, "[REDACTED:01010012356]").0,
        "[REDACTED:[REDACTED:no_national_id]]"
    );
    assert_eq!(
        redacted(&defaults, "[REDACTED:x:4111111111111111]").0,
        "[REDACTED:x:[REDACTED:payment_card]]"
    );
}

#[test]
fn keywords_inside_markers_do_not_count() {
    let r = Redactor::new(&Redaction {
        patterns: vec![pattern("word", r"\b[a-z]{4}\b", None, &["red", "]"])],
        ..Redaction::default()
    });
    let (out, counts) = redacted(&r, "ola@example.no mail");
    assert_eq!(out, "[REDACTED:email] mail");
    assert_eq!(counts.total(), 1);
    assert_eq!(redacted(&r, "red mail").0, "red [REDACTED:word]");
}

#[test]
fn a_pattern_cannot_make_a_value_grow_pass_after_pass() {
    // Any two characters, markers' brackets included: each pass would find pairs across the
    // markers of the last one. Markers are never redacted again, so every byte is replaced
    // once at most: two bytes become one marker.
    let pairs = only(vec![pattern("pair", r"[\x00-\u{10ffff}]{2}", None, &[])]);
    let input = "KRED\u{d5} UUUDGATC%UUUH [RED?TECAD:em";
    let (out, counts) = redacted(&pairs, input);
    assert!(
        out.len() <= input.len() / 2 * "[REDACTED:pair]".len() + 4,
        "{out}"
    );
    assert!(counts.total() as usize <= input.len() / 2 + 1);
    // A pattern whose find covers a marker and more still replaces it (the marker with it).
    let all = only(vec![pattern("all", r"x.+", None, &[])]);
    assert_eq!(redacted(&all, "x [REDACTED:email] y").0, "[REDACTED:all]");
}
