//! Detector tests: valid examples are found, near misses (one digit changed) and look-alikes
//! (timestamps, order ids, versions, MAC addresses) are not.

use super::*;
use breakwater_common::testing::test;

fn found(text: &str, detector: Detector) -> Vec<String> {
    find_all(text.as_bytes(), &[detector])
        .iter()
        .map(|s| text[s.start..s.end].to_string())
        .collect()
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// A valid fødselsnummer for the date; `variant` 0 is the classic first control digit,
/// 1..=3 the post-2032 ones. `None` when the control digits cannot be formed.
fn national_id(day: u32, month: u32, year: u32, individual: u32, variant: u32) -> Option<String> {
    let base = format!("{day:02}{month:02}{:02}{individual:03}", year % 100);
    let d: Vec<u32> = base.bytes().map(|b| u32::from(b - b'0')).collect();
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let s1: u32 = w1.iter().zip(&d).map(|(w, x)| w * x).sum();
    // (s1 + k1) % 11 == variant
    let k1 = (11 + variant - s1 % 11) % 11;
    if k1 > 9 {
        return None;
    }
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let s2: u32 = w2
        .iter()
        .zip(d.iter().chain([k1].iter()))
        .map(|(w, x)| w * x)
        .sum();
    let k2 = (11 - s2 % 11) % 11;
    if k2 > 9 {
        return None;
    }
    Some(format!("{base}{k1}{k2}"))
}

/// Valid national ids over many dates and individual numbers: (number, kind).
fn national_ids() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let dates = [
        (1, 1, 1900),
        (29, 2, 1904),
        (31, 12, 1999),
        (15, 6, 1985),
        (29, 2, 2000),
        (7, 7, 2024),
        (1, 3, 2039),
        (20, 5, 1870),
        (3, 11, 1955),
    ];
    for (day, month, year) in dates {
        let individuals: &[u32] = match year {
            1854..=1899 => &[500, 612, 749],
            1900..=1939 => &[0, 123, 499],
            1940..=1999 => &[1, 250, 499, 900, 999],
            _ => &[500, 777, 999],
        };
        for &individual in individuals {
            for variant in 0..=3 {
                let kind = if variant == 0 { "classic" } else { "2032" };
                if let Some(n) = national_id(day, month, year, individual, variant) {
                    out.push((n, kind));
                }
                if let Some(n) = national_id(day + 40, month, year, individual, variant) {
                    out.push((n, "d-number"));
                }
                if let Some(n) = national_id(day, month + 40, year, individual, variant) {
                    out.push((n, "h-number"));
                }
            }
        }
    }
    out
}

#[test]
fn national_ids_from_dates_are_found_in_every_form() {
    let ids = national_ids();
    for kind in ["classic", "2032", "d-number", "h-number"] {
        assert!(
            ids.iter().filter(|(_, k)| *k == kind).count() >= 20,
            "{kind}"
        );
    }
    for (id, kind) in &ids {
        assert!(is_norwegian_national_id(&digits(id)), "{id} ({kind})");
        assert_eq!(
            found(&format!("fnr={id}&x=1"), Detector::NoNationalId),
            vec![id.clone()],
            "{kind}"
        );
        let spaced = format!("{} {}", &id[..6], &id[6..]);
        assert_eq!(
            found(&format!("pnr: {spaced}."), Detector::NoNationalId),
            vec![spaced],
            "{kind}"
        );
    }
}

#[test]
fn national_id_near_misses_are_left_alone() {
    let mut checked = 0;
    for (id, _) in national_ids() {
        let d = digits(&id);
        for position in 0..11 {
            for replacement in 0..10u8 {
                if replacement == d[position] {
                    continue;
                }
                let mut changed = d.clone();
                changed[position] = replacement;
                assert!(
                    !is_norwegian_national_id(&changed),
                    "{id} with digit {position} = {replacement}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}

#[test]
fn impossible_dates_and_individual_numbers_are_refused() {
    // 31 April, 29 February 1900 (not a leap year), month 13, day 0; and a 1800s individual
    // number with a year below 54.
    for (day, month, year, individual) in [
        (31, 4, 1985, 100),
        (29, 2, 1900, 100),
        (1, 13, 1985, 100),
        (0, 5, 1985, 100),
    ] {
        let base = format!("{day:02}{month:02}{:02}{individual:03}", year % 100);
        for k in 0..100 {
            let candidate = format!("{base}{k:02}");
            assert!(
                !is_norwegian_national_id(&digits(&candidate)),
                "{candidate}"
            );
        }
    }
    // Individual numbers 500-749 belong to 1854-1899: with year 50 no control digits help.
    for k in 0..100 {
        let candidate = format!("010150600{k:02}");
        assert!(
            !is_norwegian_national_id(&digits(&candidate)),
            "{candidate}"
        );
    }
}

#[test]
fn national_ids_inside_longer_numbers_are_not_found() {
    let id = &national_ids()[0].0;
    assert!(found(&format!("{id}9"), Detector::NoNationalId).is_empty());
    assert!(found(&format!("9{id}"), Detector::NoNationalId).is_empty());
    assert!(found(&format!("ab{id}"), Detector::NoNationalId).is_empty());
    assert!(found(&format!("order-{id}-x"), Detector::NoNationalId).len() == 1);
}

#[test]
fn payment_cards_by_scheme_length_and_luhn() {
    let valid = [
        "4111111111111111",
        "4012888888881881",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "30569309025904",
        "6200000000000005",
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
    ];
    for card in valid {
        assert_eq!(
            found(&format!("card={card};"), Detector::PaymentCard),
            vec![card.to_string()],
            "{card}"
        );
    }
    let invalid = [
        "4111111111111112",     // Luhn fails
        "1700000000000",        // an epoch timestamp in ms
        "1234567812345670",     // Luhn-valid, but no card scheme starts with 1
        "9999999999999995",     // likewise
        "411111111111",         // too short
        "41111111111111111111", // too long
        "4111  1111 1111 1111", // double space: two numbers
    ];
    for number in invalid {
        assert!(found(number, Detector::PaymentCard).is_empty(), "{number}");
    }
    // Every single-digit change of a valid card fails Luhn.
    let d = digits("4111111111111111");
    for position in 0..d.len() {
        for replacement in 0..10u8 {
            if replacement != d[position] {
                let mut changed = d.clone();
                changed[position] = replacement;
                assert!(!luhn_valid(&changed), "{position}={replacement}");
            }
        }
    }
}

#[test]
fn ibans_by_country_length_and_mod_97() {
    let valid = [
        "NO9386011117947",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "SE4550000000058398257466",
        "DK5000400440116243",
        "FI2112345600000785",
        "NL91ABNA0417164300",
        "NO93 8601 1117 947",
    ];
    for iban in valid {
        assert_eq!(
            found(&format!("konto {iban}, takk"), Detector::Iban),
            vec![iban.to_string()],
            "{iban}"
        );
    }
    for bad in [
        "NO9486011117947",
        "DE89370400440532013001",
        "XX89370400440532013000",
        "NO938601111794",
        "GB82 WEST",
    ] {
        assert!(found(bad, Detector::Iban).is_empty(), "{bad}");
    }
}

#[test]
fn emails() {
    for (text, expected) in [
        (
            "contact ola.nordmann@example.no today",
            "ola.nordmann@example.no",
        ),
        ("<kari+test@sub.example.com>", "kari+test@sub.example.com"),
        ("user_1%x@mail-server.co.uk.", "user_1%x@mail-server.co.uk"),
    ] {
        assert_eq!(
            found(text, Detector::Email),
            vec![expected.to_string()],
            "{text}"
        );
    }
    for text in [
        "@example.com",
        "a@b",
        "a@localhost",
        "a@b.c",
        "a@.com",
        "foo@bar.123",
    ] {
        assert!(found(text, Detector::Email).is_empty(), "{text}");
    }
}

#[test]
fn ip_addresses() {
    assert_eq!(
        found("from 203.0.113.45:443", Detector::Ipv4),
        vec!["203.0.113.45"]
    );
    for text in ["1.2.3", "1.2.3.4.5", "256.1.1.1", "v1.2.3.4b", "01.2.3.4"] {
        assert!(found(text, Detector::Ipv4).is_empty(), "{text}");
    }
    for (text, expected) in [
        (
            "client=2001:db8:85a3::8a2e:370:7334 ok",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        ("[fe80::1ff:fe23:4567:890a]", "fe80::1ff:fe23:4567:890a"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ] {
        assert_eq!(
            found(text, Detector::Ipv6),
            vec![expected.to_string()],
            "{text}"
        );
    }
    for text in ["12:30:45", "00:1a:2b:3c:4d:5e", "deadbeef", "a:b"] {
        assert!(found(text, Detector::Ipv6).is_empty(), "{text}");
    }
}

#[test]
fn tokens() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(
        found(&format!("token={jwt}&x"), Detector::Jwt),
        vec![jwt.to_string()]
    );
    assert_eq!(
        found("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", Detector::Jwt).len(),
        1,
        "alg none"
    );
    assert!(found("eyJ.not", Detector::Jwt).is_empty());
    assert_eq!(
        found("Authorization: Bearer abc.DEF-123_x==", Detector::Bearer),
        vec!["abc.DEF-123_x=="]
    );
    assert_eq!(found("bearer xyz", Detector::Bearer), vec!["xyz"]);
    assert!(found("forbearer xyz", Detector::Bearer).is_empty());
}

#[test]
fn overlapping_detections_merge() {
    let text = "mail 4111111111111111@example.com and 10.0.0.1";
    let spans = find_all(text.as_bytes(), ALL);
    let names: Vec<&str> = spans.iter().map(|s| s.detector.name()).collect();
    assert_eq!(names, ["email", "ipv4"]);
}

#[test]
fn hostile_input_stays_linear_and_safe() {
    let long =
        "1".repeat(100_000) + &"@".repeat(10_000) + &"a:".repeat(10_000) + &"eyJ.".repeat(10_000);
    let spans = find_all(long.as_bytes(), ALL);
    assert!(spans.len() < 10);
    assert!(find_all(&[0xff, 0xfe, b'@', 0x80], ALL).is_empty());
}

#[test]
fn detector_names_roundtrip() {
    for d in ALL {
        assert_eq!(Detector::from_name(d.name()), Some(*d));
    }
    assert_eq!(Detector::from_name("ssn"), None);
}

#[test]
fn merge_orders_runs_and_joins_overlaps() {
    let span = |start, end| Span {
        start,
        end,
        detector: Detector::Email,
    };
    // Three scanners' ascending runs, as scan_detectors appends them.
    let spans = vec![
        span(5, 8),
        span(10, 12),
        span(0, 3),
        span(6, 7),
        span(5, 9),
        span(11, 20),
    ];
    let merged: Vec<(usize, usize)> = merge(spans).iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(
        merged,
        [(0, 3), (5, 9), (10, 20)],
        "earlier wins, at the same start the longer, and a span reaching past it extends it"
    );
    assert!(merge(Vec::new()).is_empty());
    // Many spans in many runs (reversed input: every span its own run) still come out sorted.
    let reversed: Vec<Span> = (0..200).rev().map(|i| span(i * 2, i * 2 + 1)).collect();
    let starts: Vec<usize> = merge(reversed).iter().map(|s| s.start).collect();
    assert_eq!(starts, (0..200).map(|i| i * 2).collect::<Vec<_>>());
}

// --- identifiers are opaque ------------------------------------------------------------------------

/// A small deterministic generator (xorshift64).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn hex(&mut self, n: usize, upper: bool) -> String {
        (0..n)
            .map(|_| {
                let digit = char::from_digit((self.next() % 16) as u32, 16).unwrap_or('0');
                if upper {
                    digit.to_ascii_uppercase()
                } else {
                    digit
                }
            })
            .collect()
    }
}

fn random_uuid_v4(random: &mut Random, upper: bool) -> String {
    let variant = ['8', '9', 'a', 'b'][(random.next() % 4) as usize];
    let variant = if upper {
        variant.to_ascii_uppercase()
    } else {
        variant
    };
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        random.hex(8, upper),
        random.hex(4, upper),
        random.hex(3, upper),
        random.hex(3, upper),
        random.hex(12, upper)
    )
}

#[test]
fn nothing_is_found_inside_random_uuids_or_traceparents() {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    for i in 0..100_000 {
        let uuid = random_uuid_v4(&mut random, i % 2 == 1);
        let traceparent = format!(
            "00-{}-{}-0{}",
            random.hex(32, false),
            random.hex(16, false),
            i % 2
        );
        for text in [uuid, traceparent] {
            let spans = find_all(text.as_bytes(), ALL);
            assert!(spans.is_empty(), "{text}: {spans:?}");
        }
    }
}

#[test]
fn uuid_shaped_ids_whose_digit_groups_pass_a_check_are_left_whole() {
    // Found by the card detector as a Maestro number before identifiers were opaque (the
    // CI failure of test_each_request_yields_exactly_one_json_line...).
    for id in [
        "d25a5880-5014-4654-8437-60c1c5030b38",
        "342a83a9-6922-4906-9737-7d65eff2ecd4",
        "3822fbaa-6858-4040-9401-4ccd6a00a040",
        // All-decimal groups, as some id generators make them.
        "12345678-1234-1234-1234-123456789012",
    ] {
        for text in [id.to_string(), format!("id={id}&x=1"), format!("req-{id}")] {
            assert!(find_all(text.as_bytes(), ALL).is_empty(), "{text}");
        }
    }
    // The same digits outside an identifier's shape are still numbers.
    assert_eq!(
        found(
            "d25a5880 5014 4654 8437 60c1c5030b38",
            Detector::PaymentCard
        ),
        vec!["5014 4654 8437"]
    );
}

#[test]
fn hex_runs_with_a_letter_are_opaque_and_digit_runs_are_numbers() {
    // Each length is an identifier; one hex digit more or less is not.
    for len in [32, 40, 64, 128] {
        let run = format!("a{}", "4111111111111111".repeat(8));
        let text = format!("k={};", &run[..len]);
        assert_eq!(
            opaque_identifiers(text.as_bytes()),
            vec![(2, 2 + len)],
            "{len}"
        );
        for other in [len - 1, len + 1] {
            let text = format!("k={};", &run[..other]);
            assert_eq!(opaque_identifiers(text.as_bytes()), vec![], "{other}");
        }
    }
    // Not one of the lengths: a hex run of 33 is not an identifier.
    assert_eq!(
        opaque_identifiers(format!("a{}", "1".repeat(32)).as_bytes()),
        vec![]
    );
    // A card or a national id next to an identifier is still found, whole.
    let text = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736 4111 1111 1111 1111 01010012356";
    assert_eq!(
        found(text, Detector::PaymentCard),
        vec!["4111 1111 1111 1111"]
    );
    assert_eq!(found(text, Detector::NoNationalId), vec!["01010012356"]);
    // Bounded by non-alphanumerics only: glued to a letter it is not an identifier.
    assert_eq!(
        opaque_identifiers(b"x4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
        vec![]
    );
    assert_eq!(
        opaque_identifiers(b"id=4BF92F35-77B3-4DA6-A3CE-929D0E0E4736;"),
        vec![(3, 39)]
    );
}

// --- FH-numbers ------------------------------------------------------------------------------------

/// A valid FH-number from its first nine digits, or `None` when a control digit would be 10.
fn fh_number(first_nine: &str) -> Option<String> {
    let d: Vec<u32> = first_nine.bytes().map(|b| u32::from(b - b'0')).collect();
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let k1 = (11 - w1.iter().zip(&d).map(|(w, x)| w * x).sum::<u32>() % 11) % 11;
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let with_k1: Vec<u32> = d.iter().copied().chain([k1]).collect();
    let k2 = (11 - w2.iter().zip(&with_k1).map(|(w, x)| w * x).sum::<u32>() % 11) % 11;
    (k1 < 10 && k2 < 10).then(|| format!("{first_nine}{k1}{k2}"))
}

#[test]
fn fh_numbers_are_found_and_their_near_misses_are_not() {
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    let mut valid = Vec::new();
    while valid.len() < 200 {
        let nine = format!(
            "{}{:08}",
            8 + random.next() % 2,
            random.next() % 100_000_000
        );
        if let Some(n) = fh_number(&nine) {
            valid.push(n);
        }
    }
    for n in &valid {
        assert!(is_norwegian_national_id(&digits(n)), "{n}");
        assert_eq!(
            found(&format!("patient {n}."), Detector::NoNationalId),
            vec![n.clone()]
        );
        let grouped = format!("{} {}", &n[..6], &n[6..]);
        assert_eq!(
            found(&grouped, Detector::NoNationalId),
            vec![grouped.clone()]
        );
        // Every one-digit change fails a control digit.
        for position in 0..11 {
            for replacement in b'0'..=b'9' {
                let mut miss = n.clone().into_bytes();
                if miss[position] == replacement {
                    continue;
                }
                miss[position] = replacement;
                let miss = String::from_utf8(miss).unwrap();
                if miss.starts_with('8') || miss.starts_with('9') {
                    assert!(!is_norwegian_national_id(&digits(&miss)), "{miss}");
                }
            }
        }
    }
    // The 2032 rule is for fødselsnumre: an FH-number's first control digit stays classic.
    let n = &valid[0];
    let d = digits(n);
    let all: [u8; 11] = d.clone().try_into().unwrap();
    assert_eq!(national_id_remainders(&all), (0, 0));
}

// --- Norwegian bank account numbers -------------------------------------------------------------

fn bank_account(first_ten: &str) -> Option<String> {
    let w = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = w
        .iter()
        .zip(first_ten.bytes())
        .map(|(w, b)| w * u32::from(b - b'0'))
        .sum();
    let control = (11 - sum % 11) % 11;
    (control < 10).then(|| format!("{first_ten}{control}"))
}

#[test]
fn bank_accounts_in_their_printed_forms_only_when_asked_for() {
    assert_eq!(bank_account("1234567890").as_deref(), Some("12345678903"));
    for text in ["12345678903", "1234 56 78903", "1234.56.78903"] {
        assert_eq!(
            found(&format!("konto {text}"), Detector::NoBankAccount),
            vec![text]
        );
        assert!(
            find_all(text.as_bytes(), DEFAULT).is_empty() || text == "12345678903",
            "off by default: {text}"
        );
    }
    for text in [
        "1234 56.78903",
        "123 456 78903",
        "12345678904",
        "1234-56-78903",
    ] {
        assert!(found(text, Detector::NoBankAccount).is_empty(), "{text}");
    }
    assert!(!DEFAULT.contains(&Detector::NoBankAccount));
    assert!(ALL.contains(&Detector::NoBankAccount));
}

/// The documented rate: about 1 in 11 random 11-digit numbers passes the single control digit.
#[test]
fn random_eleven_digit_numbers_pass_the_bank_account_check_one_time_in_eleven() {
    let mut random = Random(0x1234_5678_9ABC_DEF1);
    let n = 110_000;
    let passing = (0..n)
        .filter(|_| {
            let number = format!("{:011}", random.next() % 100_000_000_000);
            is_norwegian_bank_account(&digits(&number))
        })
        .count();
    let rate = passing as f64 / n as f64;
    assert!((0.085..0.097).contains(&rate), "{rate}");
}
