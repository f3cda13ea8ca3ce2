//! Redaction of every logged string: detected values are replaced by a mask
//! (`[REDACTED:email]`) or a keyed pseudonym (`[REDACTED:email:1f0c…]`); IP addresses are
//! truncated to /24 and /48 instead. Text is checked as sent and again percent-decoded (two
//! levels, for URLs inside URLs), so `ola%40example.no` and `next=%2Fcb%3Ftoken%3D…` are found;
//! listed parameters (`token=…` in a query, a form body or a URL in a header) are always
//! redacted. Output is valid UTF-8 (invalid input bytes become U+FFFD) and capped in length.

use crate::config::{Mode, Redaction};
use crate::detect::{
    keep_identifiers_whole, merge, parse_ipv4, parse_ipv6, scan_detectors, Detector, Span, KINDS,
};
use crate::patterns::{scan_patterns, UserPattern, MAX_PATTERNS};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::borrow::Cow;

/// Redactions per kind (the detectors, listed parameters, field rules and user patterns) for
/// one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// In the order of [`KINDS`].
    pub by_kind: [u32; KINDS.len()],
    /// In the order of `redact.patterns`.
    pub by_pattern: [u32; MAX_PATTERNS],
}

impl Counts {
    pub fn total(&self) -> u32 {
        self.by_kind.iter().chain(&self.by_pattern).sum()
    }

    pub fn of(&self, kind: Detector) -> u32 {
        self.slot(kind).map_or(0, |n| n)
    }

    fn slot(&self, kind: Detector) -> Option<u32> {
        match kind {
            Detector::Pattern(i) => self.by_pattern.get(usize::from(i)).copied(),
            _ => kind.index().and_then(|i| self.by_kind.get(i)).copied(),
        }
    }

    pub fn add(&mut self, kind: Detector, n: u32) {
        let slot = match kind {
            Detector::Pattern(i) => self.by_pattern.get_mut(usize::from(i)),
            _ => kind.index().and_then(|i| self.by_kind.get_mut(i)),
        };
        if let Some(slot) = slot {
            *slot += n;
        }
    }
}

/// Bytes of a pseudonym shown (hex): 64 bits, enough to join lines, too few to invert.
const PSEUDONYM_BYTES: usize = 8;

/// Extra body bytes read past the excerpt limit so that a value crossing the limit is seen
/// whole by the detectors (the longest, an IBAN with spaces, is 42 bytes).
pub const BODY_LOOKAHEAD: usize = 64;

/// Percent-decoding levels checked after the text as sent.
const DECODE_LEVELS: usize = 2;

/// How decoded text that had to be redacted is written back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// As text (header values, bodies).
    Text,
    /// Re-encoded, so a URL component stays one component.
    Url,
}

pub struct Redactor {
    detectors: Vec<Detector>,
    patterns: Vec<UserPattern>,
    query_params: Vec<String>,
    key: Option<Vec<u8>>,
    pub max_value_bytes: usize,
}

/// Extra passes over a value that had something redacted (see `redact_once`).
const MAX_EXTRA_PASSES: usize = 3;

impl Redactor {
    pub fn new(config: &Redaction) -> Self {
        Redactor {
            // In a fixed order, not the configured one: where two detectors find the same
            // value (every fødselsnummer also passes the kontonummer check), the first in
            // `KINDS` names it, so its stat and pseudonym do not depend on the list's order.
            detectors: KINDS
                .iter()
                .copied()
                .filter(|k| config.detectors.contains(k))
                .collect(),
            patterns: config.patterns.clone(),
            query_params: config.query_params.clone(),
            key: match &config.mode {
                Mode::Mask => None,
                Mode::Hash { key } => Some(key.clone()),
            },
            max_value_bytes: config.max_value_bytes,
        }
    }

    /// Free text (a header value, a body excerpt), capped at `max` bytes. When decoding
    /// revealed something, the text is logged decoded, with the values redacted.
    pub fn text(&self, input: &[u8], max: usize, counts: &mut Counts) -> String {
        let mut out = String::with_capacity(input.len().min(max) + 16);
        self.layers(input, b"", true, Form::Text, counts, &mut out);
        cap(&mut out, max);
        out
    }

    /// `value` as it is to be logged (uncut), or `None` when nothing in it was redacted.
    /// `context` stood before it (a JSON member's key): the patterns' keywords count there too.
    pub fn scrub(&self, value: &[u8], context: &[u8], counts: &mut Counts) -> Option<String> {
        let found_before = counts.total();
        let mut out = String::with_capacity(value.len() + 16);
        self.layers(value, context, true, Form::Text, counts, &mut out);
        (counts.total() > found_before).then_some(out)
    }

    /// Whether the detectors or the parameter rule find anything in `text` (as sent or decoded).
    pub fn finds_anything(&self, text: &[u8]) -> bool {
        let mut counts = Counts::default();
        let mut out = String::new();
        self.layers(text, b"", true, Form::Text, &mut counts, &mut out);
        counts.total() > 0
    }

    /// A URL path (no query).
    pub fn path(&self, raw: &[u8], counts: &mut Counts) -> String {
        let mut out = self.whole_path(raw, counts);
        cap(&mut out, self.max_value_bytes);
        out
    }

    /// [`Self::path`] before the cap to `max_value_bytes`.
    pub fn whole_path(&self, raw: &[u8], counts: &mut Counts) -> String {
        let mut out = String::with_capacity(raw.len());
        self.layers(raw, b"", false, Form::Url, counts, &mut out);
        out
    }

    /// A query string (without `?`), pair by pair (`&` or `;`): a listed parameter's value is
    /// redacted whatever it holds; names and other values are checked like paths.
    pub fn query(&self, raw: &[u8], counts: &mut Counts) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        loop {
            let split = rest.iter().position(|b| *b == b'&' || *b == b';');
            let (pair, separator) = match split {
                Some(at) => (rest.get(..at).unwrap_or_default(), rest.get(at).copied()),
                None => (rest, None),
            };
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(eq) => (
                    pair.get(..eq).unwrap_or_default(),
                    Some(pair.get(eq + 1..).unwrap_or_default()),
                ),
                None => (pair, None),
            };
            self.layers(name, b"", true, Form::Url, counts, &mut out);
            if let Some(value) = value {
                out.push('=');
                let name = percent_decode(name, true);
                if !value.is_empty() && self.is_listed(&name) {
                    counts.add(Detector::QueryParam, 1);
                    let mut marker = Vec::new();
                    self.mask("query_param", &percent_decode(value, true), &mut marker);
                    push_lossy(&mut out, &marker);
                } else {
                    // The parameter's name stands before its value for the patterns'
                    // keywords (`kundenr=12345678`).
                    self.layers(value, &name, true, Form::Url, counts, &mut out);
                }
            }
            match (separator, split) {
                (Some(sep), Some(at)) => {
                    out.push(char::from(sep));
                    rest = rest.get(at + 1..).unwrap_or_default();
                }
                _ => break,
            }
        }
        cap(&mut out, self.max_value_bytes);
        out
    }

    /// A source address (`ip:port` or `[ip]:port`): the address truncated, the port dropped.
    pub fn client_address(address: &[u8]) -> Option<String> {
        let (host, _port) = split_authority(address);
        let host = host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(host);
        if let Some(v4) = parse_ipv4(host) {
            return Some(truncated_ipv4(v4));
        }
        parse_ipv6(host).map(truncated_ipv6)
    }

    /// A parameter name listed for redaction (case-insensitive; a `[]` suffix and spaces
    /// around it are ignored).
    fn is_listed(&self, name: &[u8]) -> bool {
        let name = name.trim_ascii();
        let name = match name.iter().position(|b| *b == b'[') {
            Some(bracket) if name.last() == Some(&b']') => name.get(..bracket).unwrap_or(name),
            _ => name,
        };
        self.query_params
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(name))
    }

    /// Redacts `raw` as sent, then percent-decoded up to [`DECODE_LEVELS`] times. The deepest
    /// level that found something is written (its decoded text in `form`); if no level found
    /// anything, `raw` is kept as sent. `before` is text that stood before `raw` (a query
    /// parameter's name), where the patterns' keywords are looked for too.
    fn layers(
        &self,
        raw: &[u8],
        before: &[u8],
        plus_is_space: bool,
        form: Form,
        counts: &mut Counts,
        out: &mut String,
    ) {
        let sent = self.redact_once(raw, before, counts);
        let mut layer: Cow<'_, [u8]> = match &sent {
            Some(redacted) => Cow::Borrowed(redacted.as_slice()),
            None => Cow::Borrowed(raw),
        };
        let mut decoded_hit: Option<Vec<u8>> = None;
        for _ in 0..DECODE_LEVELS {
            let Cow::Owned(decoded) = percent_decode(&layer, plus_is_space) else {
                break; // nothing left to decode
            };
            layer = match self.redact_once(&decoded, before, counts) {
                Some(redacted) => {
                    decoded_hit = Some(redacted.clone());
                    Cow::Owned(redacted)
                }
                None => Cow::Owned(decoded),
            };
        }
        match (decoded_hit, sent) {
            (Some(decoded), _) if form == Form::Url => percent_encode(out, &decoded),
            (Some(decoded), _) => push_lossy(out, &decoded),
            (None, Some(redacted)) => push_lossy(out, &redacted),
            (None, None) => push_lossy(out, raw),
        }
    }

    /// `text` with every detection replaced, or `None` when there is none.
    fn redact_once(&self, text: &[u8], before: &[u8], counts: &mut Counts) -> Option<Vec<u8>> {
        let mut out = self.redact_pass(text, before, counts)?;
        // A replacement can change what its neighbours look like to the detectors (the rest of
        // a token, now standing alone, reads as an address). Redacting the result again until
        // nothing changes (bounded; almost always one extra scan that finds nothing) makes a
        // logged value a fixed point: redacting it again changes nothing.
        for _ in 0..MAX_EXTRA_PASSES {
            match self.redact_pass(&out, before, counts) {
                Some(again) if again != out => out = again,
                _ => break,
            }
        }
        Some(out)
    }

    fn redact_pass(&self, text: &[u8], before: &[u8], counts: &mut Counts) -> Option<Vec<u8>> {
        let mut spans = Vec::new();
        scan_detectors(text, &self.detectors, &mut spans);
        scan_patterns(&self.patterns, text, before, &mut spans);
        keep_identifiers_whole(text, &mut spans);
        self.param_spans(text, &mut spans);
        if spans.is_empty() {
            return None;
        }
        let spans = merge(spans);
        let mut out = Vec::with_capacity(text.len() + 16 * spans.len());
        let mut at = 0;
        for span in &spans {
            out.extend_from_slice(text.get(at..span.start).unwrap_or_default());
            let value = text.get(span.start..span.end).unwrap_or_default();
            self.replacement(span.detector, value, &mut out);
            counts.add(span.detector, 1);
            at = span.end;
        }
        out.extend_from_slice(text.get(at..).unwrap_or_default());
        Some(out)
    }

    /// Values of listed parameters anywhere in the text (`…?token=abc&…`, `password=x` in a
    /// form body, a URL in a header): the value after `=` up to `&`, `;`, `#`, a quote, a bracket or white space.
    fn param_spans(&self, text: &[u8], out: &mut Vec<Span>) {
        if self.query_params.is_empty() {
            return;
        }
        let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        for (eq, _) in text.iter().enumerate().filter(|(_, b)| **b == b'=') {
            let mut name_end = eq;
            while name_end > 0 && text.get(name_end - 1) == Some(&b' ') {
                name_end -= 1;
            }
            if name_end > 0 && text.get(name_end - 1) == Some(&b']') {
                // `token[]=` / `token[0]=`: the name before the brackets.
                let window = text
                    .get(name_end.saturating_sub(16)..name_end)
                    .unwrap_or_default();
                if let Some(open) = window.iter().rposition(|b| *b == b'[') {
                    name_end = name_end.saturating_sub(16) + open;
                }
            }
            let mut name_start = name_end;
            while name_start > 0 && text.get(name_start - 1).copied().is_some_and(is_name_byte) {
                name_start -= 1;
            }
            let name = text.get(name_start..name_end).unwrap_or_default();
            if name.is_empty() || !self.is_listed(name) {
                continue;
            }
            let mut start = eq + 1;
            while text.get(start) == Some(&b' ') {
                start += 1;
            }
            let mut end = start;
            while text.get(end).is_some_and(|b| {
                !matches!(
                    b,
                    b'&' | b';' | b'#' | b'"' | b'\'' | b'<' | b'>' | b' ' | b'\t' | b'\r' | b'\n'
                )
            }) {
                end += 1;
            }
            if end > start {
                out.push(Span {
                    start,
                    end,
                    detector: Detector::QueryParam,
                });
            }
        }
    }

    fn replacement(&self, detector: Detector, value: &[u8], out: &mut Vec<u8>) {
        match detector {
            // A narrower network's prefix length (`/32`) goes with the address it follows.
            Detector::Ipv4 => match parse_ipv4(without_prefix_length(value)) {
                Some(octets) => out.extend_from_slice(truncated_ipv4(octets).as_bytes()),
                None => self.mask(detector.name(), value, out),
            },
            Detector::Ipv6 => match parse_ipv6(without_prefix_length(value)) {
                Some(segments) => out.extend_from_slice(truncated_ipv6(segments).as_bytes()),
                None => self.mask(detector.name(), value, out),
            },
            Detector::Pattern(i) => match self.patterns.get(usize::from(i)) {
                Some(pattern) => match pattern.validate {
                    Some(checksum) => self.mask(&pattern.name, &checksum.normalize(value), out),
                    None => self.mask(&pattern.name, value, out),
                },
                None => self.mask(detector.name(), value, out),
            },
            _ => self.mask(detector.name(), &normalize(detector, value), out),
        }
    }

    /// The replacement of a JSON body field's value (given as compact JSON) that
    /// `body.redact_fields` names.
    pub fn mask_field(&self, value: &[u8], out: &mut Vec<u8>) {
        self.mask(Detector::Field.name(), value, out);
    }

    /// `[REDACTED:<what>]`, or with a key `[REDACTED:<what>:<pseudonym>]`.
    fn mask(&self, what: &str, normalized: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"[REDACTED:");
        out.extend_from_slice(what.as_bytes());
        if let Some(key) = &self.key {
            out.push(b':');
            out.extend_from_slice(pseudonym(key, what, normalized).as_bytes());
        }
        out.push(b']');
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets; anything unclear stays whole).
/// An address without a CIDR suffix (`10.1.2.3/32` → `10.1.2.3`).
fn without_prefix_length(value: &[u8]) -> &[u8] {
    value.split(|b| *b == b'/').next().unwrap_or(value)
}

pub fn split_authority(authority: &[u8]) -> (&[u8], Option<u16>) {
    let colon = if authority.first() == Some(&b'[') {
        match authority.iter().position(|b| *b == b']') {
            Some(close) if authority.get(close + 1) == Some(&b':') => close + 1,
            _ => return (authority, None),
        }
    } else {
        match authority.iter().position(|b| *b == b':') {
            Some(c) if !authority.get(c + 1..).unwrap_or_default().contains(&b':') => c,
            _ => return (authority, None),
        }
    };
    let port = std::str::from_utf8(authority.get(colon + 1..).unwrap_or_default())
        .ok()
        .and_then(|p| p.parse().ok());
    match port {
        Some(port) => (authority.get(..colon).unwrap_or_default(), Some(port)),
        None => (authority, None),
    }
}

/// HMAC-SHA-256 of `<what>:<value>` under `key`, first 8 bytes in hex.
pub fn pseudonym(key: &[u8], what: &str, value: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return "?".to_string(); // HMAC accepts every key length; kept total anyway
    };
    mac.update(what.as_bytes());
    mac.update(b":");
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(PSEUDONYM_BYTES * 2);
    for b in digest.iter().take(PSEUDONYM_BYTES) {
        hex.push(hex_digit(b >> 4));
        hex.push(hex_digit(b & 0xf));
    }
    hex
}

/// The lower-case hex digit of a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble & 0xf), 16).unwrap_or('0')
}

/// The same person's value written differently hashes the same: digits only for numbers,
/// upper case without spaces for IBANs, lower case for e-mail addresses.
fn normalize(detector: Detector, value: &[u8]) -> Cow<'_, [u8]> {
    match detector {
        Detector::PaymentCard | Detector::NoNationalId => {
            Cow::Owned(value.iter().copied().filter(u8::is_ascii_digit).collect())
        }
        Detector::Iban => Cow::Owned(
            value
                .iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_uppercase)
                .collect(),
        ),
        Detector::Email => Cow::Owned(value.to_ascii_lowercase()),
        _ => Cow::Borrowed(value),
    }
}

fn truncated_ipv4(octets: [u8; 4]) -> String {
    let [a, b, c, _] = octets;
    format!("{a}.{b}.{c}.0/24")
}

fn truncated_ipv6(segments: [u16; 8]) -> String {
    match segments {
        // IPv4-mapped (`::ffff:10.1.2.3`): the IPv4 address is what identifies the client.
        [0, 0, 0, 0, 0, 0xffff, high, low] => {
            let [a, b] = high.to_be_bytes();
            let [c, d] = low.to_be_bytes();
            truncated_ipv4([a, b, c, d])
        }
        [a, b, c, ..] => format!("{a:x}:{b:x}:{c:x}::/48"),
    }
}

/// Appends bytes as UTF-8, replacing invalid sequences with U+FFFD.
pub fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+` as a space in queries); malformed escapes stay as they are.
pub fn percent_decode(raw: &[u8], plus_is_space: bool) -> Cow<'_, [u8]> {
    if !raw
        .iter()
        .any(|b| *b == b'%' || (plus_is_space && *b == b'+'))
    {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex_value(*raw.get(i + 1)?)? << 4) | hex_value(*raw.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if plus_is_space && b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Re-encodes decoded text so the logged URL stays one unambiguous component.
fn percent_encode(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        let plain = b.is_ascii_graphic() && !b"%\"#&+=?<>\\^`{|};".contains(&b);
        if plain {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4).to_ascii_uppercase());
            out.push(hex_digit(b & 0xf).to_ascii_uppercase());
        }
    }
}

/// Characters of a value or of a redaction marker (a cut marker is dropped whole).
fn is_token_char(c: char) -> bool {
    !c.is_ascii()
        || c.is_ascii_alphanumeric()
        || matches!(c, '@' | '.' | '+' | '_' | '%' | ':' | '-' | '[' | ']')
}

/// Caps `text` at `max` bytes on a character boundary. If the cut falls inside a token, the
/// token's remaining head is dropped too (a partial value is not logged), and `…` marks the cut.
pub fn cap(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut_inside_token = text
        .get(cut..)
        .and_then(|t| t.chars().next())
        .is_some_and(is_token_char);
    text.truncate(cut);
    if cut_inside_token {
        let keep = text.trim_end_matches(is_token_char).len();
        text.truncate(keep);
    }
    text.push('…');
}

/// Drops a trailing token (and digit groups before it) from a body excerpt whose source goes
/// on: a card number split by the read limit must not leave its first digits behind.
pub fn strip_partial_tail(bytes: &[u8]) -> &[u8] {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"@.+_%:-".contains(&b) || b >= 0x80;
    let mut end = bytes.len();
    while end > 0 && bytes.get(end - 1).copied().is_some_and(is_token) {
        end -= 1;
    }
    // Digit groups "4111 1111 1111 " before the cut belong to the same number.
    loop {
        let separator = end >= 2
            && matches!(bytes.get(end - 1), Some(b' ' | b'-'))
            && bytes.get(end - 2).is_some_and(u8::is_ascii_digit);
        if !separator {
            break;
        }
        end -= 1;
        while end > 0 && bytes.get(end - 1).is_some_and(u8::is_ascii_digit) {
            end -= 1;
        }
    }
    bytes.get(..end).unwrap_or_default()
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "recall_tests.rs"]
mod recall_tests;
