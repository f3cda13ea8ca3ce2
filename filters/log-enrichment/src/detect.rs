//! Detectors of personal data and secrets in logged text. They validate rather than just
//! pattern-match: a card number must pass Luhn and belong to a card scheme, an IBAN its
//! country's length and mod-97, a Norwegian national identity number a real date and both
//! mod-11 control digits. Numbers that fail (timestamps, order ids) are left alone.
//!
//! Each detector scans the whole text once and reports byte spans; [`merge`] joins them.
//!
//! Identifiers are opaque: nothing found strictly inside a UUID, a W3C `traceparent` or a run
//! of 32, 40, 64 or 128 hex characters with a letter in it is reported, so request and
//! correlation ids are logged whole (their digit groups can pass a Luhn check by chance).

/// The detectors, by their configuration names, and the other kinds of redaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Email,
    PaymentCard,
    Iban,
    NoNationalId,
    Ipv4,
    Ipv6,
    Jwt,
    Bearer,
    /// A Norwegian bank account number (kontonummer); not on by default.
    NoBankAccount,
    /// The value of a listed query or form parameter (configured by name, not selectable as
    /// a detector; see `redact`).
    QueryParam,
    /// The value of a JSON body field named in `body.redact_fields`.
    Field,
    /// A JSON body that field rules could not read whole (`body.parse_max_bytes`).
    Body,
    /// The user-defined detector at this index of `redact.patterns`.
    Pattern(u8),
}

/// Built-in detectors a configuration can choose (the first entries of [`KINDS`]).
const SELECTABLE: usize = 9;

/// Every built-in kind of redaction, for counting: the detectors, listed parameters and JSON
/// field rules (user-defined patterns are counted apart, by index).
pub const KINDS: [Detector; 12] = [
    Detector::Email,
    Detector::PaymentCard,
    Detector::Iban,
    Detector::NoNationalId,
    Detector::Ipv4,
    Detector::Ipv6,
    Detector::Jwt,
    Detector::Bearer,
    Detector::NoBankAccount,
    Detector::QueryParam,
    Detector::Field,
    Detector::Body,
];

/// The detectors a configuration can choose.
pub const ALL: &[Detector] = KINDS.split_at(SELECTABLE).0;

/// The detectors on when `redact.detectors` is not given: all but `no_bank_account` (a
/// kontonummer may belong to a business, and one random 11-digit number in 11 passes its
/// single control digit).
pub const DEFAULT: &[Detector] = KINDS.split_at(SELECTABLE - 1).0;

impl Detector {
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::NoNationalId => "no_national_id",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Jwt => "jwt",
            Detector::Bearer => "bearer",
            Detector::NoBankAccount => "no_bank_account",
            Detector::QueryParam => "query_param",
            Detector::Field => "field",
            Detector::Body => "body",
            // Named by the configuration (`redact.patterns[i].name`): see `Redactor`.
            Detector::Pattern(_) => "pattern",
        }
    }

    /// The position in [`KINDS`]; user-defined patterns have none.
    pub fn index(self) -> Option<usize> {
        KINDS.iter().position(|k| *k == self)
    }

    pub fn from_name(name: &str) -> Option<Detector> {
        ALL.iter().copied().find(|d| d.name() == name)
    }

    fn scan(self, text: &[u8], out: &mut Vec<Span>) {
        match self {
            Detector::Email => scan_emails(text, out),
            Detector::PaymentCard => scan_digit_groups(text, out, Detector::PaymentCard),
            Detector::Iban => scan_ibans(text, out),
            Detector::NoNationalId => scan_digit_groups(text, out, Detector::NoNationalId),
            Detector::Ipv4 => scan_ipv4(text, out),
            Detector::Ipv6 => scan_ipv6(text, out),
            Detector::Jwt => scan_jwts(text, out),
            Detector::Bearer => scan_bearer(text, out),
            Detector::NoBankAccount => scan_digit_groups(text, out, Detector::NoBankAccount),
            // These need the configuration: `redact`, the body rules and `patterns` find them.
            Detector::QueryParam | Detector::Field | Detector::Body | Detector::Pattern(_) => {}
        }
    }
}

/// A detected value: bytes `start..end` of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub detector: Detector,
}

/// All detections of the enabled detectors, sorted, without overlaps (an earlier or longer
/// span wins), and none strictly inside an identifier ([`opaque_identifiers`]).
pub fn find_all(text: &[u8], detectors: &[Detector]) -> Vec<Span> {
    let mut spans = Vec::new();
    scan_detectors(text, detectors, &mut spans);
    keep_identifiers_whole(text, &mut spans);
    merge(spans)
}

/// Appends every detection of the enabled detectors, unsorted and possibly overlapping.
pub fn scan_detectors(text: &[u8], detectors: &[Detector], spans: &mut Vec<Span>) {
    let traits = Traits::of(text);
    for d in detectors {
        if traits.may_contain(*d) {
            d.scan(text, spans);
        }
    }
}

/// Drops the spans that lie strictly inside an identifier of `text` (a span that is the whole
/// identifier stays: a user pattern may be written for one), and those that touch a redaction
/// marker without covering more than it: a marker is never redacted again, in part or whole,
/// so each byte of a value is replaced at most once and a value grows at most by the ratio of
/// a marker to the shortest find, however many passes run (a pattern such as `\b.` or `..`
/// would otherwise grow it at every pass).
pub fn keep_identifiers_whole(text: &[u8], spans: &mut Vec<Span>) {
    // Looked for only when something was found: most values have no finds at all.
    if spans.is_empty() {
        return;
    }
    let identifiers = opaque_identifiers(text);
    let markers = markers(text);
    if identifiers.is_empty() && markers.is_empty() {
        return;
    }
    spans.retain(|s| {
        let inside = |&(start, end): &(usize, usize)| {
            start <= s.start && s.end <= end && (s.start, s.end) != (start, end)
        };
        let touches_only = |&(start, end): &(usize, usize)| {
            let overlaps = s.start < end && start < s.end;
            let covers_more = s.start <= start && end <= s.end && (s.start, s.end) != (start, end);
            overlaps && !covers_more
        };
        !identifiers.iter().any(inside) && !markers.iter().any(touches_only)
    });
}

/// The byte ranges of the identifiers in `text`, each bounded by non-alphanumerics: UUIDs
/// (8-4-4-4-12 hex digits, any case), W3C `traceparent` values (2-32-16-2 hex digits), and
/// runs of 32, 40, 64 or 128 hex digits with at least one letter (trace ids, hashes, keys;
/// an all-digit run is a number and keeps its detection).
pub fn opaque_identifiers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        // A marker is no identifier, and nothing inside it is one either.
        if let Some(end) = marker_at(text, i) {
            i = end;
            continue;
        }
        if !at(text, i).is_ascii_alphanumeric() || before(text, i).is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        if let Some(end) = hex_groups_at(text, i, &[2, 32, 16, 2])
            .or_else(|| hex_groups_at(text, i, &[8, 4, 4, 4, 12]))
        {
            out.push((i, end));
            i = end;
            continue;
        }
        let mut end = i;
        while at(text, end).is_ascii_alphanumeric() {
            end += 1;
        }
        let run = text.get(i..end).unwrap_or_default();
        if matches!(run.len(), 32 | 40 | 64 | 128)
            && run.iter().all(u8::is_ascii_hexdigit)
            && run.iter().any(u8::is_ascii_alphabetic)
        {
            out.push((i, end));
        }
        i = end;
    }
    out
}

/// The byte ranges of the redaction markers in `text` (see [`marker_at`]).
pub fn markers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text.get(from..).and_then(|rest| {
        rest.windows(MARKER_OPEN.len())
            .position(|w| w == MARKER_OPEN)
    }) {
        let start = from + found;
        match marker_at(text, start) {
            Some(end) => {
                out.push((start, end));
                from = end;
            }
            None => from = start + 1,
        }
    }
    out
}

const MARKER_OPEN: &[u8] = b"[REDACTED:";

/// The end of a redaction marker starting at `i`: `[REDACTED:<name>]` or, in hash mode,
/// `[REDACTED:<name>:<16 hex>]`, the name as detectors and patterns have it (a lower-case
/// letter, then lower-case letters, digits and `_`). Opaque like an identifier, so that a
/// later pass, or a user pattern such as `[A-Z]{8}`, does not redact inside one. The 16 hex
/// digits must hold a letter, or a card number could hide in a forged marker; the one real
/// pseudonym in 1,850 that is all digits is then scanned like any text, which leaks nothing.
fn marker_at(text: &[u8], i: usize) -> Option<usize> {
    let rest = text.get(i..)?.strip_prefix(MARKER_OPEN)?;
    let name = rest
        .iter()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    if !(1..=32).contains(&name) || !rest.first()?.is_ascii_lowercase() {
        return None;
    }
    let after_name = rest.get(name..)?;
    let tail = match after_name.first()? {
        b']' => 0,
        b':' => {
            let hex = after_name.get(1..17)?;
            let hex_ok = hex
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                && hex.iter().any(u8::is_ascii_lowercase);
            (hex_ok && after_name.get(17) == Some(&b']')).then_some(17)?
        }
        _ => return None,
    };
    Some(i + MARKER_OPEN.len() + name + tail + 1)
}

/// The end of hex-digit groups of these lengths joined by `-` starting at `i`, if the text
/// there is exactly that (bounded by a non-alphanumeric after it).
fn hex_groups_at(text: &[u8], i: usize, lengths: &[usize]) -> Option<usize> {
    let mut at_byte = i;
    for (n, len) in lengths.iter().enumerate() {
        if n > 0 {
            if at(text, at_byte) != b'-' {
                return None;
            }
            at_byte += 1;
        }
        let group = text.get(at_byte..at_byte + len)?;
        if !group.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        at_byte += len;
    }
    (!at(text, at_byte).is_ascii_alphanumeric()).then_some(at_byte)
}

/// Orders spans and drops overlaps: an earlier or (at the same start) longer span wins.
///
/// Each scanner reports its spans left to right, so the input is a few ascending runs; they
/// are merged by always taking the earliest head (linear in spans × runs, and without the
/// standard library's sort, which would cost ~3 KB of module).
pub fn merge(spans: Vec<Span>) -> Vec<Span> {
    // Earliest first, then longest, then a masking detector before an address truncation:
    // a truncated address must not stand where another detector saw a secret (`Bearer ::b0`).
    let truncates = |s: &Span| matches!(s.detector, Detector::Ipv4 | Detector::Ipv6);
    let key = |s: &Span| (s.start, usize::MAX - s.end, truncates(s));
    let mut heads: Vec<(usize, usize)> = Vec::new(); // (next index, end of run)
    let mut run_start = 0;
    for i in 1..=spans.len() {
        let ascending = match (spans.get(i - 1), spans.get(i)) {
            (Some(a), Some(b)) => key(a) <= key(b),
            _ => false,
        };
        if !ascending {
            heads.push((run_start, i));
            run_start = i;
        }
    }
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    loop {
        let next = heads
            .iter_mut()
            .filter(|(at, end)| at < end)
            .filter_map(|head| spans.get(head.0).map(|span| (key(span), head)))
            .min_by_key(|(k, _)| *k);
        let Some((_, head)) = next else { break };
        let Some(span) = spans.get(head.0).copied() else {
            break;
        };
        head.0 += 1;
        match merged.last_mut() {
            // Overlapping finds are redacted as one: a span that only starts inside another
            // must not leave its tail in the clear ("2554 5555-5555-5555-4444").
            Some(last) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// What one pass over the text tells about which detectors can possibly match, so most values
/// (a user agent, a plain path) skip most scans.
struct Traits {
    digits: usize,
    at_signs: bool,
    dots: bool,
    colons: usize,
    letters: bool,
    b_letters: bool,
}

impl Traits {
    fn of(text: &[u8]) -> Traits {
        let mut t = Traits {
            digits: 0,
            at_signs: false,
            dots: false,
            colons: 0,
            letters: false,
            b_letters: false,
        };
        for &b in text {
            match b {
                b'0'..=b'9' => t.digits += 1,
                b'@' => t.at_signs = true,
                b'.' => t.dots = true,
                b':' => t.colons += 1,
                b'b' | b'B' => {
                    t.b_letters = true;
                    t.letters = true;
                }
                b'A'..=b'Z' | b'a'..=b'z' => t.letters = true,
                _ => {}
            }
        }
        t
    }

    fn may_contain(&self, detector: Detector) -> bool {
        match detector {
            Detector::Email => self.at_signs,
            Detector::PaymentCard => self.digits >= 12,
            Detector::NoNationalId => self.digits >= 11,
            Detector::Iban => self.letters && self.digits >= 2,
            Detector::Ipv4 => self.dots && self.digits >= 4,
            Detector::Ipv6 => self.colons >= 2,
            Detector::Jwt => self.dots && self.letters, // "eyJ" and two dots
            Detector::Bearer => self.b_letters,
            Detector::NoBankAccount => self.digits >= 11,
            Detector::QueryParam | Detector::Field | Detector::Body | Detector::Pattern(_) => false,
        }
    }
}

fn at(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

fn before(text: &[u8], i: usize) -> u8 {
    i.checked_sub(1).map_or(0, |j| at(text, j))
}

// --- e-mail --------------------------------------------------------------------------------------

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b) || b >= 0x80
}

/// Domain bytes, including UTF-8 (`blåbær.no`).
fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b >= 0x80
}

/// A top-level domain: letters (any script), or punycode `xn--…`.
fn is_tld(tld: &[u8]) -> bool {
    let punycode = tld.len() > 4
        && tld
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
        && tld.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    punycode || (tld.len() >= 2 && tld.iter().all(|b| b.is_ascii_alphabetic() || *b >= 0x80))
}

/// The length of the valid multi-byte UTF-8 character starting at `i`, if one does.
fn utf8_len_at(text: &[u8], i: usize) -> Option<usize> {
    let n = match at(text, i) {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    std::str::from_utf8(text.get(i..i + n)?).ok().map(|_| n)
}

fn scan_emails(text: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    // The end of the last address found: the next one's local part starts no earlier, or its
    // span would overlap and `merge` would drop it (`x@example.co_y@example.com`).
    let mut floor = 0;
    while i < text.len() {
        if at(text, i) != b'@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > floor && is_local_byte(before(text, start)) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < text.len() && is_domain_byte(at(text, end)) {
            // Non-ASCII only as whole UTF-8 characters: invalid bytes end the domain, or an
            // address followed by them (`ola@example.no\xff\xff2`) would not be found.
            end += match utf8_len_at(text, end) {
                Some(n) => n,
                None if at(text, end) < 0x80 => 1,
                None => break,
            };
        }
        // A domain ends on a letter run of at least two after its last dot.
        while end > i + 1
            && !(at(text, end - 1).is_ascii_alphanumeric() || at(text, end - 1) >= 0x80)
        {
            end -= 1;
        }
        let domain = text.get(i + 1..end).unwrap_or_default();
        let tld_ok = domain
            .iter()
            .rposition(|b| *b == b'.')
            .is_some_and(|dot| dot > 0 && is_tld(domain.get(dot + 1..).unwrap_or_default()));
        // U+FFFD is what invalid bytes became in an earlier pass, not part of an address.
        let replaced = text
            .get(start..end)
            .is_some_and(|t| t.windows(3).any(|w| w == "\u{fffd}".as_bytes()));
        if start < i && tld_ok && !replaced {
            out.push(Span {
                start,
                end,
                detector: Detector::Email,
            });
            i = end;
            floor = end;
        } else {
            i += 1;
        }
    }
}

// --- digit groups: payment cards and Norwegian national identity numbers -------------------------

/// A run of digits in the text: bytes `start..end`.
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

/// Finds runs of digit groups joined by single spaces or dashes ("4111 1111 1111 1111",
/// "2024 01010012356 5"; for bank accounts spaces or dots, "1234.56.78903"), bounded by
/// non-alphanumerics, and tests every window of whole groups that could hold the detector's
/// value, so a neighbouring number cannot hide one.
fn scan_digit_groups(text: &[u8], out: &mut Vec<Span>, detector: Detector) {
    let joiners: &[u8] = match detector {
        Detector::NoBankAccount => b" .",
        _ => b" -",
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !at(text, i).is_ascii_digit() || glued(before(text, i)) {
            i += 1;
            continue;
        }
        groups.clear();
        let mut end = i;
        loop {
            let start = end;
            while at(text, end).is_ascii_digit() {
                end += 1;
            }
            groups.push(Group { start, end });
            let joined = joiners.contains(&at(text, end)) && at(text, end + 1).is_ascii_digit();
            if !joined {
                break;
            }
            end += 1;
        }
        // A trailing group glued to letters ("12abc") is part of a token, not a number.
        if glued_after(at(text, end)) {
            groups.pop();
            while end < text.len() && at(text, end).is_ascii_alphanumeric() {
                end += 1;
            }
        }
        match_windows(text, &groups, detector, out);
        i = end.max(i + 1);
    }
}

/// Tests windows of consecutive groups, longest first from each start; overlapping matches are
/// all reported (`merge` joins them).
fn match_windows(text: &[u8], groups: &[Group], detector: Detector, out: &mut Vec<Span>) {
    let max_digits = match detector {
        Detector::PaymentCard => 19,
        _ => 11,
    };
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    let mut first = 0;
    while first < groups.len() {
        let mut found = None;
        let mut count = 0;
        let mut last = first;
        while let Some(g) = groups.get(last) {
            count += g.end - g.start;
            if count > max_digits {
                break;
            }
            last += 1;
        }
        // groups[first..last] hold at most max_digits digits; try the longest window first.
        for stop in (first + 1..=last).rev() {
            let window = groups.get(first..stop).unwrap_or_default();
            digits.clear();
            for g in window {
                digits.extend(
                    text.get(g.start..g.end)
                        .unwrap_or_default()
                        .iter()
                        .map(|b| b - b'0'),
                );
            }
            if window_matches(text, window, &digits, detector) {
                found = Some(stop);
                break;
            }
        }
        match (found, groups.get(first)) {
            (Some(stop), Some(head)) => {
                let tail = groups.get(stop - 1).map_or(head.end, |g| g.end);
                out.push(Span {
                    start: head.start,
                    end: tail,
                    detector,
                });
                // The next start is still tried: a number just before a card can form a window
                // that passes the check by chance and would otherwise hide the real card.
                first += 1;
            }
            _ => first += 1,
        }
    }
}

fn window_matches(text: &[u8], window: &[Group], digits: &[u8], detector: Detector) -> bool {
    let lengths = || window.iter().map(|g| g.end - g.start);
    match detector {
        // One group, or groups of 3 to 6 digits as cards are printed (4-4-4-4, 4-6-5).
        Detector::PaymentCard => {
            (window.len() == 1 || lengths().all(|n| (3..=6).contains(&n)))
                && is_payment_card(digits)
        }
        // 11 digits together, or "XXXX XX XXXXX" / "XXXX.XX.XXXXX" (one kind of separator).
        Detector::NoBankAccount => {
            let shape_ok = match window {
                [_] => true,
                [a, b, c] => {
                    a.end - a.start == 4
                        && b.end - b.start == 2
                        && c.end - c.start == 5
                        && at(text, a.end) == at(text, b.end)
                }
                _ => false,
            };
            digits.len() == 11 && shape_ok && is_norwegian_bank_account(digits)
        }
        // 11 digits together, or "DDMMYY IIIKK" (space or dash).
        Detector::NoNationalId => {
            let shape_ok = match window {
                [_] => true,
                [a, b] => {
                    a.end - a.start == 6
                        && b.end - b.start == 5
                        && matches!(at(text, a.end), b' ' | b'-')
                }
                _ => false,
            };
            digits.len() == 11 && shape_ok && is_norwegian_national_id(digits)
        }
        _ => false,
    }
}

/// Luhn checksum over digits (most significant first).
pub fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn prefix_number(digits: &[u8], n: usize) -> u32 {
    digits
        .iter()
        .take(n)
        .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
}

/// A card number: a scheme's prefix and length, and a valid Luhn checksum.
pub fn is_payment_card(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(12..=19).contains(&len) || !luhn_valid(digits) {
        return false;
    }
    let p1 = prefix_number(digits, 1);
    let p2 = prefix_number(digits, 2);
    let p3 = prefix_number(digits, 3);
    let p4 = prefix_number(digits, 4);
    let p6 = prefix_number(digits, 6);
    match p1 {
        4 => matches!(len, 13 | 16 | 19),              // Visa
        2 => (2221..=2720).contains(&p4) && len == 16, // Mastercard 2-series
        5 => {
            ((51..=55).contains(&p2) && len == 16)                          // Mastercard
            || (matches!(p2, 50 | 56..=59) && (12..=19).contains(&len))
        } // Maestro
        3 => {
            (matches!(p2, 34 | 37) && len == 15)                            // Amex
            || ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len) // Diners
            || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        } // JCB
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622_126..=622_925).contains(&p6))
            && (16..=19).contains(&len)                                      // Discover
            || (p2 == 62 && (16..=19).contains(&len))                        // UnionPay
            || (matches!(p2, 60 | 63 | 67 | 68 | 69) && (12..=19).contains(&len))
        } // Maestro
        _ => false,
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A Norwegian national identity number (fødselsnummer), D-number (day + 40) or H-number
/// (month + 40): 11 digits `DDMMYYIIIKK` with a real date (the individual number `III` gives
/// the century) and both mod-11 control digits. From 2032 the first control digit may be
/// computed with remainder 0, 1, 2 or 3 (Skatteetaten), so those are accepted too; the second
/// control digit is unchanged, which is what makes every one-digit error fail.
///
/// Also an FH-number (felles hjelpenummer, Norsk Helsenett: patients without a known national
/// id): 11 digits, the first 8 or 9, the others random (no date), with both control digits as
/// in a fødselsnummer. Skatteetaten's 2032 rule is for fødselsnumre and D-numbers; FH-numbers
/// keep the classic first control digit.
pub fn is_norwegian_national_id(digits: &[u8]) -> bool {
    let [d1, d2, m1, m2, y1, y2, i1, i2, i3, k1, k2] = match <[u8; 11]>::try_from(digits) {
        Ok(d) => d,
        Err(_) => return false,
    };
    let all = [d1, d2, m1, m2, y1, y2, i1, i2, i3, k1, k2];
    let (first, second) = national_id_remainders(&all);
    if d1 >= 8 {
        return first == 0 && second == 0;
    }
    let num = |a: u8, b: u8| u32::from(a) * 10 + u32::from(b);
    let mut day = num(d1, d2);
    let mut month = num(m1, m2);
    if day > 40 {
        day -= 40; // D-number
    }
    if month > 40 {
        month -= 40; // H-number
    }
    let yy = num(y1, y2);
    let individual = u32::from(i1) * 100 + num(i2, i3);
    let century = match individual {
        0..=499 => 1900,
        500..=749 if yy >= 54 => 1800,
        500..=999 if yy <= 39 => 2000,
        900..=999 if yy >= 40 => 1900,
        _ => return false,
    };
    let year = century + yy;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    first <= 3 && second == 0
}

/// The mod-11 remainders of a national id's two control sums (both 0 for a classic number).
fn national_id_remainders(all: &[u8; 11]) -> (u32, u32) {
    const W1: [u32; 10] = [3, 7, 6, 1, 8, 9, 4, 5, 2, 1];
    const W2: [u32; 11] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1];
    (weighted(&W1, all) % 11, weighted(&W2, all) % 11)
}

fn weighted(weights: &[u32], digits: &[u8]) -> u32 {
    weights
        .iter()
        .zip(digits)
        .map(|(w, d)| w * u32::from(*d))
        .sum()
}

/// A Norwegian bank account number (kontonummer): 11 digits whose last is the mod-11 control
/// digit of the first ten (weights 5, 4, 3, 2, 7, 6, 5, 4, 3, 2, which is [`mod11_valid`]'s
/// 2..7 from the right).
pub fn is_norwegian_bank_account(digits: &[u8]) -> bool {
    digits.len() == 11 && mod11_valid(digits)
}

/// A mod-11 control digit as Norwegian account and KID numbers use it: the last digit is
/// 11 minus the remainder of the others weighted 2, 3, 4, 5, 6, 7, 2, … from the right (11
/// gives 0; 10 gives no valid number).
pub fn mod11_valid(digits: &[u8]) -> bool {
    let Some((&control, body)) = digits.split_last() else {
        return false;
    };
    if body.is_empty() {
        return false;
    }
    let sum: u32 = body
        .iter()
        .rev()
        .zip([2u32, 3, 4, 5, 6, 7].into_iter().cycle())
        .map(|(d, w)| w * u32::from(*d))
        .sum();
    let expected = (11 - sum % 11) % 11;
    expected < 10 && u32::from(control) == expected
}

// --- IBAN ------------------------------------------------------------------------------------------

/// IBAN lengths by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// An IBAN (spaces removed, upper case): the country's length and mod-97 == 1.
pub fn is_iban(compact: &[u8]) -> bool {
    let Some(country) = compact.get(..2) else {
        return false;
    };
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.as_slice() == country)
        .map(|(_, len)| *len);
    if expected != Some(compact.len()) || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    // Move the first four characters to the end.
    mod97(
        compact
            .iter()
            .skip(4)
            .chain(compact.iter().take(4))
            .copied(),
    ) == 1
}

/// ISO 7064 MOD 97-10 remainder of letters and digits read as one number, letters counting
/// as 10..35 (either case); other bytes are not expected.
pub fn mod97(chars: impl Iterator<Item = u8>) -> u32 {
    let mut remainder: u32 = 0;
    for c in chars {
        let value = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c.to_ascii_uppercase().wrapping_sub(b'A')) % 26 + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder
}

fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(country))
        .map(|(_, len)| *len)
}

fn scan_ibans(text: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i + 4 <= text.len() {
        let starts = at(text, i).is_ascii_alphabetic()
            && at(text, i + 1).is_ascii_alphabetic()
            && at(text, i + 2).is_ascii_digit()
            && at(text, i + 3).is_ascii_digit()
            && !before(text, i).is_ascii_alphanumeric();
        let Some(length) = starts
            .then(|| text.get(i..i + 2).and_then(iban_length))
            .flatten()
        else {
            i += 1;
            continue;
        };
        // Collect the country's length in alphanumerics, allowing single spaces (printed
        // IBANs come in groups of four).
        let mut compact = Vec::with_capacity(length);
        let mut end = i;
        while end < text.len() && compact.len() < length {
            let b = at(text, end);
            if b.is_ascii_alphanumeric() {
                compact.push(b.to_ascii_uppercase());
                end += 1;
            } else if b == b' ' && at(text, end + 1).is_ascii_alphanumeric() {
                end += 1;
            } else {
                break;
            }
        }
        if compact.len() == length && !at(text, end).is_ascii_alphanumeric() && is_iban(&compact) {
            out.push(Span {
                start: i,
                end,
                detector: Detector::Iban,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

// --- IP addresses ------------------------------------------------------------------------------

/// Parses a dotted-quad IPv4 address.
pub fn parse_ipv4(text: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|b| *b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if part.len() > 1 && part.first() == Some(&b'0') {
            return None; // leading zeros: probably not an address
        }
        let value = part.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

fn scan_ipv4(text: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < text.len() {
        let b = at(text, i);
        if !b.is_ascii_digit() || glued(before(text, i)) || before(text, i) == b'.' {
            i += 1;
            continue;
        }
        // Four dot-separated digit runs; a fifth ("1.2.3.4.5", a version) disqualifies, a dot
        // followed by a name ("10.1.2.3.nip.io") or ending a sentence does not.
        let mut end = i;
        let mut dots = 0;
        while end < text.len() {
            let c = at(text, end);
            if c.is_ascii_digit() {
                end += 1;
            } else if c == b'.' && dots < 3 && at(text, end + 1).is_ascii_digit() {
                dots += 1;
                end += 1;
            } else {
                break;
            }
        }
        let next = at(text, end);
        let continues = glued_after(next) || (next == b'.' && at(text, end + 1).is_ascii_digit());
        let candidate = text.get(i..end).unwrap_or_default();
        if !continues && parse_ipv4(candidate).is_some() {
            match prefix_length(text, end) {
                // A network of /24 or wider tells no more than the /24 it is logged as.
                Some((bits, _)) if bits <= 24 => {}
                suffix => out.push(Span {
                    start: i,
                    end: suffix.map_or(end, |(_, suffix_end)| suffix_end),
                    detector: Detector::Ipv4,
                }),
            }
        }
        i = end.max(i + 1);
    }
}

/// Whether a number or address starting after `b` would be the tail of a longer token: after a
/// letter or digit, or after the `]` of an earlier pass's `[REDACTED:…]`, whose covered text
/// was glued to it. So redacting the output again finds nothing new.
fn glued(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b']'
}

/// The same on the right: before a letter or digit, or before the `[` of a `[REDACTED:…]`.
fn glued_after(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'['
}

/// A CIDR prefix length right after an address (`/24`): its value and where it ends.
fn prefix_length(text: &[u8], at_slash: usize) -> Option<(u32, usize)> {
    if at(text, at_slash) != b'/' {
        return None;
    }
    let digits = text
        .get(at_slash + 1..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = at_slash + 1 + digits;
    if !(1..=3).contains(&digits) || at(text, end).is_ascii_alphanumeric() {
        return None;
    }
    let bits = text
        .get(at_slash + 1..end)?
        .iter()
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some((bits, end))
}

fn is_ipv6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// The longest IPv6 text form (with an IPv4 tail).
const MAX_IPV6_TEXT: usize = 45;

fn scan_ipv6(text: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < text.len() {
        if !is_ipv6_byte(at(text, i)) {
            i += 1;
            continue;
        }
        // A maximal run of hex digits, colons and dots; the address may start at the run's
        // start or after any single colon in it ("ip:2001:db8::1", "addr:fe80::1").
        let mut end = i;
        while end < text.len() && is_ipv6_byte(at(text, end)) {
            end += 1;
        }
        let mut run_end = end;
        while run_end > i && at(text, run_end - 1) == b'.' {
            run_end -= 1; // a sentence's full stop
        }
        let bounded = !glued_after(at(text, end));
        let mut start = i;
        while bounded && start < run_end {
            // Hex right after `%` is an escape's (`%FF::`); the decoded layers see what it
            // encodes. (Digits after `%` are still checked: `50%4111…` must not hide a card.)
            let left_ok = start == i && !glued(before(text, i)) && before(text, i) != b'%'
                || (before(text, start) == b':'
                    && before(text, start - 1) != b':'
                    && at(text, start) != b':');
            let candidate = text.get(start..run_end).unwrap_or_default();
            if left_ok
                && candidate.len() <= MAX_IPV6_TEXT
                && candidate.iter().filter(|b| **b == b':').count() >= 2
                && candidate.iter().any(u8::is_ascii_hexdigit) // "::" alone names nobody
                && parse_ipv6(candidate).is_some()
            {
                match prefix_length(text, run_end).filter(|_| run_end == end) {
                    // A /48 or wider network tells no more than the /48 it is logged as.
                    Some((bits, _)) if bits <= 48 => {}
                    suffix => out.push(Span {
                        start,
                        end: suffix.map_or(run_end, |(_, suffix_end)| suffix_end),
                        detector: Detector::Ipv6,
                    }),
                }
                break;
            }
            // Next start: just after the next colon.
            match text
                .get(start..run_end)
                .and_then(|t| t.iter().position(|b| *b == b':'))
            {
                Some(colon) => start += colon + 1,
                None => break,
            }
        }
        i = end.max(i + 1);
    }
}

/// Parses an IPv6 address (RFC 4291 text forms, including `::` and an embedded IPv4 tail).
/// (Hand-written: std's parser costs ~3.5 KB of module.)
pub fn parse_ipv6(text: &[u8]) -> Option<[u16; 8]> {
    let (head, tail) = match find_double_colon(text) {
        Some(at) => (text.get(..at)?, Some(text.get(at + 2..)?)),
        None => (text, None),
    };
    let mut head_groups = [0u16; 8];
    let head_len = parse_groups(head, &mut head_groups, tail.is_none())?;
    let mut segments = [0u16; 8];
    match tail {
        None => {
            if head_len != 8 {
                return None;
            }
            segments = head_groups;
        }
        Some(tail) => {
            let mut tail_groups = [0u16; 8];
            let tail_len = parse_groups(tail, &mut tail_groups, true)?;
            // "::" stands for at least one zero group.
            if head_len + tail_len > 7 {
                return None;
            }
            for (dst, src) in segments.iter_mut().zip(head_groups.iter().take(head_len)) {
                *dst = *src;
            }
            let offset = 8 - tail_len;
            for (i, src) in tail_groups.iter().take(tail_len).enumerate() {
                *segments.get_mut(offset + i)? = *src;
            }
        }
    }
    Some(segments)
}

fn find_double_colon(text: &[u8]) -> Option<usize> {
    text.windows(2).position(|w| w == b"::")
}

/// Parses `h16(:h16)*` with an optional dotted-quad last part (two groups) when
/// `ipv4_tail_allowed`; returns the number of groups. Empty text is zero groups.
fn parse_groups(text: &[u8], out: &mut [u16; 8], ipv4_tail_allowed: bool) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let parts: Vec<&[u8]> = text.split(|b| *b == b':').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && ipv4_tail_allowed && part.contains(&b'.') {
            let [a, b, c, d] = parse_ipv4(part)?;
            *out.get_mut(count)? = u16::from_be_bytes([a, b]);
            *out.get_mut(count + 1)? = u16::from_be_bytes([c, d]);
            return Some(count + 2);
        }
        if part.is_empty() || part.len() > 4 || !part.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let value = part.iter().fold(0u16, |acc, b| {
            let digit = (*b as char).to_digit(16).unwrap_or(0);
            (acc << 4) | digit as u16
        });
        *out.get_mut(count)? = value;
        count += 1;
    }
    Some(count)
}

// --- tokens ----------------------------------------------------------------------------------------

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn scan_jwts(text: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i + 3 <= text.len() {
        if text.get(i..i + 3) != Some(b"eyJ") || before(text, i).is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        // header.payload.signature; the signature may be empty (alg "none").
        let mut end = i;
        let mut dots = 0;
        while end < text.len()
            && (is_base64url(at(text, end)) || (at(text, end) == b'.' && dots < 2))
        {
            if at(text, end) == b'.' {
                dots += 1;
            }
            end += 1;
        }
        if dots == 2 && end - i >= 16 {
            out.push(Span {
                start: i,
                end,
                detector: Detector::Jwt,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

fn scan_bearer(text: &[u8], out: &mut Vec<Span>) {
    const WORD: &[u8] = b"bearer";
    let mut i = 0;
    while i + WORD.len() < text.len() {
        let matches = matches!(at(text, i), b'b' | b'B')
            && text
                .get(i..i + WORD.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(WORD))
            && matches!(at(text, i + WORD.len()), b' ' | b'\t')
            && !before(text, i).is_ascii_alphanumeric();
        if !matches {
            i += 1;
            continue;
        }
        let mut start = i + WORD.len();
        while matches!(at(text, start), b' ' | b'\t') {
            start += 1;
        }
        let mut end = start;
        // RFC 6750's token characters, and `:` too: whatever follows "Bearer" up to a space is
        // taken as the credential, so no part of it is left to other detectors (`Bearer ::b`
        // would otherwise become `Bearer 0:0:0::/48`, and that a token the next time).
        while end < text.len()
            && (is_base64url(at(text, end)) || b".~+/=:".contains(&at(text, end)))
        {
            end += 1;
        }
        if end > start {
            // Only the credential: "Bearer " stays readable.
            out.push(Span {
                start,
                end,
                detector: Detector::Bearer,
            });
        }
        i = end.max(i + 1);
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
