//! Redaction: masks, keyed pseudonyms, IP truncation, URL decoding, caps.

use super::*;
use crate::config::Redaction;
use breakwater_common::testing::test;

const FNR: &str = "01010012356"; // a valid fødselsnummer (1 January 1900, individual 123)
const CARD: &str = "4111111111111111";

fn masking() -> Redactor {
    Redactor::new(&Redaction::default())
}

fn hashing(key: &str) -> Redactor {
    Redactor::new(&Redaction {
        mode: Mode::Hash {
            key: key.as_bytes().to_vec(),
        },
        ..Redaction::default()
    })
}

fn text(r: &Redactor, input: &str) -> (String, Counts) {
    let mut counts = Counts::default();
    let out = r.text(input.as_bytes(), 4096, &mut counts);
    (out, counts)
}

#[test]
fn the_example_national_id_is_valid() {
    let digits: Vec<u8> = FNR.bytes().map(|b| b - b'0').collect();
    assert!(crate::detect::is_norwegian_national_id(&digits));
}

#[test]
fn every_detector_masks_its_value() {
    let input = format!(
        "mail ola@example.no fnr {FNR} card {CARD} iban NO9386011117947 jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln auth Bearer abc123 ip 203.0.113.45 ip6 2001:db8:85a3::8a2e:370:7334"
    );
    let (out, counts) = text(&masking(), &input);
    assert_eq!(
        out,
        "mail [REDACTED:email] fnr [REDACTED:no_national_id] card [REDACTED:payment_card] iban [REDACTED:iban] jwt [REDACTED:jwt] auth Bearer [REDACTED:bearer] ip 203.0.113.0/24 ip6 2001:db8:85a3::/48"
    );
    assert_eq!(counts.by_kind, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(counts.total(), 8);
}

#[test]
fn numbers_that_fail_their_checksums_are_left_alone() {
    for input in [
        "order 01010012357 shipped", // fnr with the last digit changed
        "ts=1764220812345",          // epoch milliseconds
        "card 4111111111111112",     // Luhn fails
        "ref NO9486011117947",       // mod-97 fails
        "version 1.2.3.4.5",
        "at 12:30:45",
    ] {
        let (out, counts) = text(&masking(), input);
        assert_eq!(out, input);
        assert_eq!(counts.total(), 0, "{input}");
    }
}

#[test]
fn detectors_can_be_chosen() {
    let r = Redactor::new(&Redaction {
        detectors: vec![Detector::Email],
        ..Redaction::default()
    });
    let (out, _) = text(&r, &format!("a@example.com {CARD}"));
    assert_eq!(out, format!("[REDACTED:email] {CARD}"));
}

#[test]
fn pseudonyms_are_keyed_stable_and_normalised() {
    let r = hashing("0123456789abcdef");
    let (a, _) = text(&r, &format!("fnr {FNR}"));
    let (b, _) = text(&r, &format!("pnr: {} {}", &FNR[..6], &FNR[6..]));
    let pseudonym = a.strip_prefix("fnr ").unwrap();
    assert!(
        pseudonym.starts_with("[REDACTED:no_national_id:")
            && pseudonym.len() == "[REDACTED:no_national_id:".len() + 16 + 1,
        "{pseudonym}"
    );
    assert_eq!(
        b.strip_prefix("pnr: ").unwrap(),
        pseudonym,
        "spacing does not change the pseudonym"
    );
    let (upper, _) = text(&r, "OLA@Example.NO");
    let (lower, _) = text(&r, "ola@example.no");
    assert_eq!(upper, lower);
    // Another key, another pseudonym; another person, another pseudonym.
    let (other_key, _) = text(&hashing("fedcba9876543210"), &format!("fnr {FNR}"));
    assert_ne!(other_key, a);
    let (other_person, _) = text(&r, "fnr 01010012437");
    assert_ne!(other_person, a);
    assert!(!a.contains(FNR));
    // IP addresses are truncated in hash mode too.
    assert_eq!(text(&r, "10.1.2.3").0, "10.1.2.0/24");
}

#[test]
fn hmac_matches_a_published_test_vector() {
    // RFC 4231 test case 2: HMAC-SHA-256(key "Jefe", "what do ya want for nothing?").
    // pseudonym() MACs "<what>:<value>", so split the message at its first ':'-free point.
    let full = pseudonym(b"Jefe", "what do ya want for nothing?", b"");
    // Our input is "what do ya want for nothing?:" — check the construction with a vector
    // of our own instead: key, what and value joined by ':' must equal a direct HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?:");
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(full, expected);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn urls_are_checked_after_percent_decoding() {
    let r = masking();
    let mut counts = Counts::default();
    assert_eq!(
        r.path(b"/users/ola%40example.no/orders", &mut counts),
        "/users/[REDACTED:email]/orders"
    );
    assert_eq!(
        r.path(format!("/patients/{FNR}").as_bytes(), &mut counts),
        "/patients/[REDACTED:no_national_id]"
    );
    assert_eq!(
        r.path(b"/plain/path%20with%20spaces", &mut counts),
        "/plain/path%20with%20spaces",
        "kept as sent"
    );
    assert_eq!(counts.of(Detector::Email), 1);

    let query = format!("q=shoes&email=kari%2Bx%40example.com&token=abc&Access_Token=x&fnr={FNR}&page=2&flag&password=");
    let out = r.query(query.as_bytes(), &mut counts);
    assert_eq!(
        out,
        "q=shoes&email=[REDACTED:email]&token=[REDACTED:query_param]&Access_Token=[REDACTED:query_param]&fnr=[REDACTED:no_national_id]&page=2&flag&password="
    );
    assert_eq!(counts.of(Detector::QueryParam), 2);
    // Listed names are matched after decoding too; '+' is a space in queries.
    let out = r.query(
        b"api%5Fkey=s3cret&msg=hello+ola%40example.no+%26+more",
        &mut counts,
    );
    assert_eq!(
        out,
        "api%5Fkey=[REDACTED:query_param]&msg=hello%20[REDACTED:email]%20%26%20more"
    );
}

#[test]
fn hash_mode_pseudonymises_query_params() {
    let r = hashing("0123456789abcdef");
    let mut counts = Counts::default();
    let a = r.query(b"token=abc", &mut counts);
    let b = r.query(b"token=abc", &mut counts);
    let c = r.query(b"token=abd", &mut counts);
    assert!(a.starts_with("token=[REDACTED:query_param:"), "{a}");
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn client_addresses_are_truncated_and_lose_their_port() {
    assert_eq!(
        Redactor::client_address(b"203.0.113.45:51234").as_deref(),
        Some("203.0.113.0/24")
    );
    assert_eq!(
        Redactor::client_address(b"[2001:db8:1:2::5]:443").as_deref(),
        Some("2001:db8:1::/48")
    );
    assert_eq!(
        Redactor::client_address(b"2001:db8:1:2::5").as_deref(),
        Some("2001:db8:1::/48")
    );
    assert_eq!(Redactor::client_address(b"unix:/tmp/x"), None);
    assert_eq!(Redactor::client_address(b""), None);
}

#[test]
fn caps_cut_on_character_boundaries_and_drop_a_cut_token() {
    let mut s = "abc def ghijkl".to_string();
    cap(&mut s, 10);
    assert_eq!(s, "abc def …", "the cut token 'gh' is dropped");
    let mut s = "æøå æøå".to_string();
    cap(&mut s, 5);
    assert!(s.ends_with('…') && !s.contains('\u{fffd}'), "{s}");
    let mut s = "short".to_string();
    cap(&mut s, 5);
    assert_eq!(s, "short");
    let (out, _) = {
        let mut counts = Counts::default();
        (
            masking().text(format!("x {CARD} y").as_bytes(), 12, &mut counts),
            counts,
        )
    };
    assert_eq!(
        out, "x …",
        "a marker cut in half is dropped whole, never half a value"
    );
}

#[test]
fn body_tails_cut_by_the_read_limit_are_dropped() {
    assert_eq!(
        strip_partial_tail(b"{\"card\": \"4111 1111 1111 11"),
        b"{\"card\": \""
    );
    assert_eq!(
        strip_partial_tail(b"{\"mail\": \"ola@exam"),
        b"{\"mail\": \""
    );
    assert_eq!(strip_partial_tail(b"ends with space "), b"ends with space ");
    assert_eq!(strip_partial_tail(b"41111"), b"");
    assert_eq!(strip_partial_tail(b""), b"");
}

#[test]
fn invalid_utf8_is_replaced_not_passed_through() {
    let mut counts = Counts::default();
    let out = masking().text(&[b'a', 0xff, b' ', b'b'], 100, &mut counts);
    assert_eq!(out, "a\u{fffd} b");
    // Non-ASCII bytes belong to an address (internationalised mail), so they go with it.
    let out = masking().path(b"/x%ff%40example.no", &mut counts);
    assert_eq!(out, "/[REDACTED:email]");
    let out = masking().path(b"/%ff/ola%40example.no", &mut counts);
    assert_eq!(
        out, "/%FF/[REDACTED:email]",
        "decoded text is re-encoded, invalid bytes too"
    );
}

#[test]
fn percent_decoding() {
    assert_eq!(&*percent_decode(b"a%20b%zz%4", false), b"a b%zz%4");
    assert_eq!(&*percent_decode(b"a+b", true), b"a b");
    assert_eq!(&*percent_decode(b"a+b", false), b"a+b");
}

#[test]
fn percent_encoded_values_in_free_text_are_found() {
    let (out, counts) = text(&masking(), "email=ola%40example.no&note=a%20b");
    assert_eq!(
        out, "email=[REDACTED:email]&note=a b",
        "logged decoded, value redacted"
    );
    assert_eq!(counts.total(), 1);
    let (out, _) = text(&masking(), "plain%20text stays as sent");
    assert_eq!(out, "plain%20text stays as sent");
}

/// Values a review found logged as sent; each must now be redacted.
#[test]
fn review_findings_are_redacted() {
    let r = masking();
    for (input, expected) in [
        // A neighbouring number must not hide a card or a national id.
        ("4111 1111 1111 1111 12/26", "[REDACTED:payment_card] 12/26"),
        (
            "card 4111111111111111 12/26",
            "card [REDACTED:payment_card] 12/26",
        ),
        ("1 4111111111111111", "1 [REDACTED:payment_card]"),
        ("2024 01010012356", "2024 [REDACTED:no_national_id]"),
        (
            "fnr 01010012356 5 items",
            "fnr [REDACTED:no_national_id] 5 items",
        ),
        ("010100-12356", "[REDACTED:no_national_id]"),
        (
            "1 2 3 4 5 6 7 8 9 10 11 12 13 4111111111111111",
            "1 2 3 4 5 6 7 8 9 10 11 12 13 [REDACTED:payment_card]",
        ),
        // Form bodies and URLs inside headers: '+' as space, listed parameters.
        ("card=4111+1111+1111+1111", "card=[REDACTED:payment_card]"),
        (
            "username=ola&password=hunter2",
            "username=ola&password=[REDACTED:query_param]",
        ),
        (
            "https://x/cb?access_token=s3cr3tvalue",
            "https://x/cb?access_token=[REDACTED:query_param]",
        ),
        ("a=1;token=secret", "a=1;token=[REDACTED:query_param]"),
        ("token[]=secret", "token[]=[REDACTED:query_param]"),
        // Detector edges.
        ("client 10.1.2.3.", "client 10.1.2.0/24."),
        ("10.1.2.3.nip.io", "10.1.2.0/24.nip.io"),
        ("addr:fe80::1234:5678", "addr:fe80:0:0::/48"),
        ("ip:2001:db8::1", "ip:2001:db8:0::/48"),
        ("no9386011117947", "[REDACTED:iban]"),
        ("ola@blåbær.no", "[REDACTED:email]"),
        ("ola@example.xn--p1ai", "[REDACTED:email]"),
        ("Bearer  abc", "Bearer  [REDACTED:bearer]"),
        ("Bearer\tabc", "Bearer\t[REDACTED:bearer]"),
        (
            "jwt_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "jwt_[REDACTED:jwt]",
        ),
    ] {
        assert_eq!(text(&r, input).0, expected, "{input}");
    }
    // Encoded once or twice, in a query value.
    let mut counts = Counts::default();
    assert_eq!(
        r.query(b"next=%2Fcb%3Faccess_token%3Ds3cr3t", &mut counts),
        "next=/cb%3Faccess_token%3D[REDACTED:query_param]"
    );
    assert_eq!(
        r.query(b"next=%2Fcustomers%2Fola%2540example.no", &mut counts),
        "next=/customers/[REDACTED:email]"
    );
    assert_eq!(
        r.query(b"token%5B%5D=secret", &mut counts),
        "token%5B%5D=[REDACTED:query_param]"
    );
    // A detection in the raw text survives one that decoding reveals.
    assert_eq!(
        r.path(b"/ola%40example.no/01010012356%2D1", &mut counts),
        "/[REDACTED:email]/[REDACTED:no_national_id]-1"
    );
    assert_eq!(
        Redactor::client_address(b"[::ffff:10.1.2.3]:80").as_deref(),
        Some("10.1.2.0/24")
    );
}

#[test]
fn twelve_digit_maestro_cards_are_found() {
    // 50180000000 plus its Luhn check digit.
    let body: Vec<u8> = b"50180000000".iter().map(|b| b - b'0').collect();
    let check = (0..10u8)
        .find(|c| crate::detect::luhn_valid(&[body.clone(), vec![*c]].concat()))
        .unwrap();
    let card = format!("50180000000{check}");
    assert_eq!(text(&masking(), &card).0, "[REDACTED:payment_card]");
}

#[test]
fn what_the_fuzzer_found_stays_fixed() {
    let r = masking();
    let redacted = |input: &str| text(&r, input).0;
    // A card right after a number that forms a Luhn-valid window with its first groups.
    for input in ["2554 5555-5555-5555-4444", "3::2554 5555-5555-5555-4444"] {
        let out = redacted(input);
        assert!(
            !out.contains("4444") && !out.contains("5555"),
            "{input} -> {out}"
        );
    }
    // Digits after a literal `%` that is also an escape (`%41` is `A`) are still a card.
    assert!(!redacted(&format!("discount 50%{CARD}")).contains(CARD));
    // Networks as wide as the truncation stay; narrower ones are truncated; neither grows.
    assert_eq!(
        redacted("net 10.0.0.0/8 and 203.0.113.0/24"),
        "net 10.0.0.0/8 and 203.0.113.0/24"
    );
    assert_eq!(redacted("host 203.0.113.45/32"), "host 203.0.113.0/24");
    assert_eq!(redacted("net 2001:db8:85a3::/48"), "net 2001:db8:85a3::/48");
    // An address glued to a token taken by another detector is taken with it.
    assert_eq!(redacted("Bearer ::b0"), "Bearer [REDACTED:bearer]");
    // Addresses after one another, and one followed by invalid bytes.
    assert_eq!(
        redacted("x@example.co_y@example.com"),
        "[REDACTED:email][REDACTED:email]"
    );
    let out = r.text(b"to ola@example.no\xff\xff2", 4096, &mut Counts::default());
    assert!(!out.contains("ola@example.no"), "{out}");
    // Every output above is a fixed point.
    for input in [
        "2554 5555-5555-5555-4444",
        "host 203.0.113.45",
        "ip6 2001:db8::1",
        "Bearer ::b0",
    ] {
        let once = redacted(input);
        assert_eq!(redacted(&once), once, "{input}");
    }
}

#[test]
fn the_detectors_name_a_find_in_a_fixed_order_whatever_the_configured_one() {
    // Every fødselsnummer also passes the kontonummer check; the national id names it.
    for detectors in [
        vec![Detector::NoBankAccount, Detector::NoNationalId],
        vec![Detector::NoNationalId, Detector::NoBankAccount],
    ] {
        let r = Redactor::new(&Redaction {
            detectors,
            ..Redaction::default()
        });
        let (out, counts) = text(&r, &format!("id {FNR}"));
        assert_eq!(out, "id [REDACTED:no_national_id]");
        assert_eq!(counts.of(Detector::NoNationalId), 1);
    }
}
