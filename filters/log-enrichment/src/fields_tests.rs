//! JSON body field rules: paths, masking, keeping, and fail-closed reading.

use super::*;
use breakwater_common::testing::test;

fn paths(list: &[&str]) -> Vec<FieldPath> {
    list.iter().map(|p| FieldPath::parse(p).unwrap()).collect()
}

fn rules(redact: &[&str], keep: Option<&[&str]>) -> FieldRules {
    FieldRules {
        redact: paths(redact),
        keep: keep.map(paths),
        parse_max_bytes: DEFAULT_PARSE_MAX_BYTES as usize,
    }
}

/// A scrubber that masks fields as `[REDACTED:field]`, records the values it was given, and
/// replaces the text `SECRET` wherever it stands.
#[derive(Default)]
struct Recorder {
    masked: Vec<String>,
    /// (value, its key)
    scrubbed: Vec<(String, String)>,
}

impl Scrub for Recorder {
    fn scrub(&mut self, value: &str, key: &str) -> Option<String> {
        self.scrubbed.push((value.to_string(), key.to_string()));
        value
            .contains("SECRET")
            .then(|| value.replace("SECRET", "[REDACTED:x]"))
    }

    fn mask(&mut self, value: &[u8], out: &mut Vec<u8>) {
        self.masked
            .push(String::from_utf8_lossy(value).into_owned());
        out.extend_from_slice(b"[REDACTED:field]");
    }
}

/// The rewrite as text.
fn rewritten(body: &str, rules: &FieldRules) -> Option<(String, u32)> {
    rewrite(body.as_bytes(), rules, 1 << 20, &mut Recorder::default())
        .map(|r| (String::from_utf8(r.json).unwrap(), r.redacted))
}

#[test]
fn field_paths_are_names_or_paths_from_the_top() {
    let name = FieldPath::parse("ssn").unwrap();
    assert!(!name.anchored);
    let path = FieldPath::parse("customer.ssn").unwrap();
    assert!(path.anchored);
    assert_eq!(path.keys, ["customer", "ssn"]);
    let items = FieldPath::parse("items[].card").unwrap();
    assert_eq!(items.keys, ["items", "card"]);
    assert!(items.anchored);
    let top = FieldPath::parse("[].id").unwrap();
    assert_eq!(
        (top.anchored, top.keys.as_slice()),
        (true, &["id".to_string()][..])
    );
    assert!(FieldPath::parse("tags[][]").unwrap().anchored);
    for bad in [
        "",
        ".",
        "a.",
        ".a",
        "a..b",
        "a[0]",
        "a[",
        "a]b",
        "[]",
        "[].",
        "a.[]",
        &"k".repeat(129),
    ] {
        let error = FieldPath::parse(bad).unwrap_err();
        assert!(
            error.contains("is not a field name or path"),
            "{bad:?}: {error}"
        );
    }
    let seventeen = ["k"; 17].join(".");
    assert!(FieldPath::parse(&seventeen).is_err());
    assert!(FieldPath::parse(&["k"; 16].join(".")).is_ok());
}

#[test]
fn listed_fields_are_masked_whatever_they_hold() {
    let body = r#"{"customer":{"name":"Ola","ssn":"01010012356","address":{"city":"Oslo"}},"items":[{"card":"4111","qty":2},{"card":{"pan":1},"qty":1}],"ssn":[1,2],"note":null}"#;
    let (out, redacted) = rewritten(
        body,
        &rules(&["customer.address", "items[].card", "ssn"], None),
    )
    .unwrap();
    assert_eq!(
        out,
        r#"{"customer":{"name":"Ola","ssn":"[REDACTED:field]","address":"[REDACTED:field]"},"items":[{"card":"[REDACTED:field]","qty":2},{"card":"[REDACTED:field]","qty":1}],"ssn":"[REDACTED:field]","note":null}"#
    );
    assert_eq!(redacted, 5);
}

#[test]
fn a_path_names_one_place_and_a_name_every_place() {
    let body = r#"{"id":1,"customer":{"id":2,"ssn":"x"},"ssn":"y"}"#;
    let (anchored, n) = rewritten(body, &rules(&["customer.ssn"], None)).unwrap();
    assert_eq!(
        anchored,
        r#"{"id":1,"customer":{"id":2,"ssn":"[REDACTED:field]"},"ssn":"y"}"#
    );
    assert_eq!(n, 1);
    let (anywhere, n) = rewritten(body, &rules(&["ssn"], None)).unwrap();
    assert_eq!(
        anywhere,
        r#"{"id":1,"customer":{"id":2,"ssn":"[REDACTED:field]"},"ssn":"[REDACTED:field]"}"#
    );
    assert_eq!(n, 2);
    // Keys are case-sensitive, as in JSON.
    assert_eq!(rewritten(body, &rules(&["SSN"], None)).unwrap().1, 0);
    // Arrays are transparent, with or without `[]`.
    let list = r#"[{"id":1,"ssn":"a"},{"id":2,"ssn":"b"}]"#;
    for rule in ["[].ssn", "ssn"] {
        assert_eq!(
            rewritten(list, &rules(&[rule], None)).unwrap().0,
            r#"[{"id":1,"ssn":"[REDACTED:field]"},{"id":2,"ssn":"[REDACTED:field]"}]"#,
            "{rule}"
        );
    }
}

#[test]
fn keep_fields_logs_only_the_listed_values_and_the_types_of_the_rest() {
    let body = r#"{"order":{"id":"A-17","total":99.5,"paid":true,"customer":{"name":"Ola","email":"ola@example.no"}},"lines":[{"sku":"X1","qty":2}],"coupon":null}"#;
    let keep = rules(&[], Some(&["order.id", "lines[].sku", "order.customer"]));
    let (out, redacted) = rewritten(body, &keep).unwrap();
    assert_eq!(
        out,
        r#"{"order":{"id":"A-17","total":"[number]","paid":"[boolean]","customer":{"name":"Ola","email":"ola@example.no"}},"lines":[{"sku":"X1","qty":"[number]"}],"coupon":"[null]"}"#
    );
    assert_eq!(redacted, 0);
    // Redaction wins over keeping.
    let both = rules(&["email"], Some(&["order.customer"]));
    let (out, redacted) = rewritten(body, &both).unwrap();
    assert!(
        out.contains(r#""customer":{"name":"Ola","email":"[REDACTED:field]"}"#),
        "{out}"
    );
    assert_eq!(redacted, 1);
    // An empty list keeps nothing but the shape.
    assert_eq!(
        rewritten(r#"{"a":"x","b":[1,"y"]}"#, &rules(&[], Some(&[])))
            .unwrap()
            .0,
        r#"{"a":"[string]","b":["[number]","[string]"]}"#
    );
}

#[test]
fn only_one_complete_valid_document_is_read() {
    let r = rules(&["ssn"], None);
    for body in [
        "",
        "{",
        r#"{"ssn":"01010012356""#,
        r#"{"ssn":"01010012356"} {"b":1}"#,
        r#"{"ssn":"01010012356",}"#,
        "{\"ssn\":\"\u{1}\"}",
        "not json",
        r#"{"a":"\ud800"}"#,
    ] {
        assert_eq!(rewritten(body, &r), None, "{body:?}");
    }
    // Deeper than serde_json's limit of 128 levels.
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(rewritten(&deep, &r), None);
    let fine = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    assert!(rewritten(&fine, &r).is_some());
    assert_eq!(rewritten(" 7 ", &r).unwrap().0, "7");
    assert!(rewrite(b"{\"a\":\"\xff\"}", &r, 100, &mut Recorder::default()).is_none());
}

#[test]
fn values_keep_their_meaning_and_strings_their_escapes() {
    let body = r#"{"s":"a\"b\\c\n\u00e5\u2028","big":18446744073709551615,"neg":-9223372036854775808,"f":1.5e300,"t":false}"#;
    let (out, _) = rewritten(body, &rules(&[], None)).unwrap();
    let before: serde_json::Value = serde_json::from_str(body).unwrap();
    let after: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(before, after, "{out}");
    // Duplicate keys stay as they were sent (a later filter may read either).
    assert_eq!(
        rewritten(r#"{"a":1,"a":2}"#, &rules(&[], None)).unwrap().0,
        r#"{"a":1,"a":2}"#
    );
}

#[test]
fn writing_stops_at_the_limit_but_the_document_is_still_checked() {
    let body = format!(r#"{{"items":[{}]}}"#, vec![r#""abcdefgh""#; 1000].join(","));
    let mut scrub = Recorder::default();
    let out = rewrite(body.as_bytes(), &rules(&[], Some(&[])), 100, &mut scrub).unwrap();
    assert!(out.json.len() < 120, "{}", out.json.len());
    let broken = format!("{}]", &body[..body.len() - 2]);
    assert!(rewrite(broken.as_bytes(), &rules(&[], Some(&[])), 100, &mut scrub).is_none());
}

#[test]
fn the_mask_is_given_the_value_as_compact_json() {
    let mut scrub = Recorder::default();
    let out = rewrite(
        br#"{"a": {"x" : [1, "y"]}, "b": "z"}"#,
        &rules(&["a", "b"], None),
        1000,
        &mut scrub,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out.json).unwrap(),
        r#"{"a":"[REDACTED:field]","b":"[REDACTED:field]"}"#
    );
    assert_eq!(scrub.masked, [r#"{"x":[1,"y"]}"#, r#""z""#]);
}

#[test]
fn keys_strings_and_numbers_are_scrubbed_one_by_one_and_stay_json() {
    let mut scrub = Recorder::default();
    let body = br#"{"SECRET-key": "a SECRET b", "n": 12, "big": -7, "f": 2.5, "ok": true, "none": null, "list": ["x"]}"#;
    let out = rewrite(body, &rules(&[], None), 1000, &mut scrub).unwrap();
    let json = String::from_utf8(out.json).unwrap();
    assert_eq!(
        json,
        r#"{"[REDACTED:x]-key":"a [REDACTED:x] b","n":12,"big":-7,"f":2.5,"ok":true,"none":null,"list":["x"]}"#
    );
    // Keys are scrubbed alone; values with their key, the context of the patterns' keywords.
    let pairs: Vec<(&str, &str)> = scrub
        .scrubbed
        .iter()
        .map(|(v, k)| (v.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("SECRET-key", ""),
            ("a SECRET b", "SECRET-key"),
            ("n", ""),
            ("12", "n"),
            ("big", ""),
            ("-7", "big"),
            ("f", ""),
            ("2.5", "f"),
            ("ok", ""),
            ("none", ""),
            ("list", ""),
            ("x", "list"),
        ]
    );
    // A number in which something is redacted becomes a string: the rewrite stays JSON.
    struct Cards;
    impl Scrub for Cards {
        fn scrub(&mut self, value: &str, _key: &str) -> Option<String> {
            (value == "4111111111111111").then(|| "[REDACTED:payment_card]".to_string())
        }
        fn mask(&mut self, _: &[u8], _: &mut Vec<u8>) {}
    }
    let out = rewrite(
        br#"{"card": 4111111111111111, "n": 1}"#,
        &rules(&[], None),
        1000,
        &mut Cards,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out.json).unwrap(),
        r#"{"card":"[REDACTED:payment_card]","n":1}"#
    );
    // Values replaced by their type are not scrubbed (nothing of them is logged).
    let mut scrub = Recorder::default();
    rewrite(
        br#"{"a": "SECRET"}"#,
        &rules(&[], Some(&[])),
        1000,
        &mut scrub,
    )
    .unwrap();
    assert_eq!(scrub.scrubbed, [("a".to_string(), String::new())]);
}

#[test]
fn the_configuration_names_the_field_of_a_bad_rule() {
    use crate::config::LogConfig;
    let refusal = |json: &str| LogConfig::parse(json.as_bytes()).unwrap_err().to_string();
    for (config, expected) in [
        (
            r#"{"body":{"redact_fields":["ssn","a..b"]}}"#,
            "body.redact_fields[1]: \"a..b\" is not a field name or path",
        ),
        (
            r#"{"body":{"keep_fields":["items[0].id"]}}"#,
            "body.keep_fields[0]: \"items[0].id\" is not a field name or path",
        ),
        (
            r#"{"body":{"redact_fields":"ssn"}}"#,
            "body.redact_fields: invalid type",
        ),
        (
            r#"{"body":{"parse_max_bytes":0}}"#,
            "body.parse_max_bytes: 0 is outside 1 to 65536",
        ),
        (
            r#"{"body":{"parse_max_bytes":65537}}"#,
            "body.parse_max_bytes: 65537 is outside 1 to 65536",
        ),
    ] {
        let error = refusal(config);
        assert!(error.starts_with(expected), "{config}\n{error}");
    }
    let many: Vec<String> = (0..=MAX_FIELD_RULES).map(|i| format!("\"f{i}\"")).collect();
    let error = refusal(&format!(
        r#"{{"body":{{"keep_fields":[{}]}}}}"#,
        many.join(",")
    ));
    assert!(
        error.starts_with("body.keep_fields: at most 32 fields"),
        "{error}"
    );

    let body = |json: &str| LogConfig::parse(json.as_bytes()).unwrap().body.unwrap();
    assert_eq!(body(r#"{"body":{}}"#).fields, None);
    assert_eq!(
        body(r#"{"body":{"redact_fields":[]}}"#).fields,
        None,
        "the default"
    );
    let error = refusal(r#"{"body":{"parse_max_bytes":100}}"#);
    assert_eq!(
        error,
        "body.parse_max_bytes: needs redact_fields or keep_fields (it bounds what field rules read)"
    );
    assert!(
        refusal(r#"{"body":{"redact_fields":[],"parse_max_bytes":100}}"#)
            .starts_with("body.parse_max_bytes: needs")
    );
    let checked = body(r#"{"body":{"redact_fields":["ssn"]}}"#)
        .fields
        .unwrap();
    assert_eq!(checked, rules(&["ssn"], None));
    let checked = body(r#"{"body":{"keep_fields":[],"parse_max_bytes":100}}"#)
        .fields
        .unwrap();
    assert_eq!(
        (checked.keep, checked.parse_max_bytes),
        (Some(Vec::new()), 100)
    );
}
