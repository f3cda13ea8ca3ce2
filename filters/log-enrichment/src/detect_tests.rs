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
    // Three scanners' ascending runs, as scan_all appends them.
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
