//! Redaction of every logged string: detected values are replaced by a mask
//! (`[REDACTED:email]`) or a keyed pseudonym (`[REDACTED:email:1f0c…]`); IP addresses are
//! truncated to /24 and /48 instead. URL paths and queries are also checked after
//! percent-decoding, so `ola%40example.no` is found, and listed query parameters are always
//! redacted. Output is valid UTF-8 (invalid input bytes become U+FFFD) and capped in length.

use crate::config::{Mode, Redaction};
use crate::detect::{find_all, parse_ipv4, parse_ipv6, Detector, Span, ALL};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::borrow::Cow;

/// Redactions per detector, plus listed query parameters, for one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_detector: [u32; ALL.len()],
    pub query_params: u32,
}

impl Counts {
    pub fn total(&self) -> u32 {
        self.by_detector.iter().sum::<u32>() + self.query_params
    }

    fn add(&mut self, detector: Detector) {
        if let Some(slot) = self.by_detector.get_mut(detector as usize) {
            *slot += 1;
        }
    }
}

/// Bytes of a pseudonym shown (hex): 64 bits, enough to join lines, too few to invert.
const PSEUDONYM_BYTES: usize = 8;

/// Extra body bytes read past the excerpt limit so that a value crossing the limit is seen
/// whole by the detectors (the longest, an IBAN with spaces, is 42 bytes).
pub const BODY_LOOKAHEAD: usize = 64;

pub struct Redactor {
    detectors: Vec<Detector>,
    query_params: Vec<String>,
    key: Option<Vec<u8>>,
    pub max_value_bytes: usize,
}

impl Redactor {
    pub fn new(config: &Redaction) -> Self {
        Redactor {
            detectors: config.detectors.clone(),
            query_params: config.query_params.clone(),
            key: match &config.mode {
                Mode::Mask => None,
                Mode::Hash { key } => Some(key.clone()),
            },
            max_value_bytes: config.max_value_bytes,
        }
    }

    /// Free text (a header value, a body excerpt), capped at `max` bytes. Values hidden by
    /// percent-encoding (a form body, a URL in a header) are found too; the text is then
    /// logged decoded, with the values redacted.
    pub fn text(&self, input: &[u8], max: usize, counts: &mut Counts) -> String {
        let mut out = String::with_capacity(input.len().min(max) + 16);
        self.component(input, false, counts, &mut out, push_lossy);
        cap(&mut out, max);
        out
    }

    /// A URL path (no query), checked raw and percent-decoded.
    pub fn path(&self, raw: &[u8], counts: &mut Counts) -> String {
        let mut out = String::with_capacity(raw.len());
        self.component(raw, false, counts, &mut out, percent_encode);
        cap(&mut out, self.max_value_bytes);
        out
    }

    /// A query string (without `?`): listed parameters are redacted whatever their value, the
    /// rest are checked like paths, each name and value on its own.
    pub fn query(&self, raw: &[u8], counts: &mut Counts) -> String {
        let mut out = String::with_capacity(raw.len());
        for (i, pair) in raw.split(|b| *b == b'&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(eq) => (
                    pair.get(..eq).unwrap_or_default(),
                    Some(pair.get(eq + 1..).unwrap_or_default()),
                ),
                None => (pair, None),
            };
            self.component(name, true, counts, &mut out, percent_encode);
            let Some(value) = value else { continue };
            out.push('=');
            let decoded_name = percent_decode(name, true);
            let listed = self
                .query_params
                .iter()
                .any(|p| p.as_bytes().eq_ignore_ascii_case(&decoded_name));
            if listed && !value.is_empty() {
                counts.query_params += 1;
                self.replacement_for_param(&percent_decode(value, true), &mut out);
            } else {
                self.component(value, true, counts, &mut out, percent_encode);
            }
        }
        cap(&mut out, self.max_value_bytes);
        out
    }

    /// A source address (`ip:port` or `[ip]:port`): the address truncated, the port dropped.
    pub fn client_address(address: &[u8]) -> Option<String> {
        let host = match address.strip_prefix(b"[") {
            Some(rest) => rest.split(|b| *b == b']').next().unwrap_or_default(),
            None => match address.iter().filter(|b| **b == b':').count() {
                1 => address.split(|b| *b == b':').next().unwrap_or_default(),
                _ => address,
            },
        };
        if let Some(v4) = parse_ipv4(host) {
            return Some(truncated_ipv4(v4));
        }
        parse_ipv6(host).map(truncated_ipv6)
    }

    /// Redacts `raw`, checked as sent and percent-decoded. Without detections the raw text is
    /// kept as sent; otherwise the text in which the detectors found values is written with
    /// them replaced, its other parts through `keep` (re-encoding for URLs).
    fn component(
        &self,
        raw: &[u8],
        plus_is_space: bool,
        counts: &mut Counts,
        out: &mut String,
        keep: fn(&mut String, &[u8]),
    ) {
        let decoded = percent_decode(raw, plus_is_space);
        let mut spans = find_all(&decoded, &self.detectors);
        if spans.is_empty() {
            if let Cow::Owned(_) = decoded {
                spans = find_all(raw, &self.detectors);
            }
            if !spans.is_empty() {
                self.splice(raw, &spans, counts, out, push_lossy);
            } else {
                push_lossy(out, raw);
            }
            return;
        }
        let keep = if matches!(decoded, Cow::Borrowed(_)) {
            push_lossy
        } else {
            keep
        };
        self.splice(&decoded, &spans, counts, out, keep);
    }

    /// Writes `text` with each span replaced; the parts between spans go through `keep`.
    fn splice(
        &self,
        text: &[u8],
        spans: &[Span],
        counts: &mut Counts,
        out: &mut String,
        mut keep: impl FnMut(&mut String, &[u8]),
    ) {
        let mut at = 0;
        for span in spans {
            keep(out, text.get(at..span.start).unwrap_or_default());
            let value = text.get(span.start..span.end).unwrap_or_default();
            self.replacement(span.detector, value, out);
            counts.add(span.detector);
            at = span.end;
        }
        keep(out, text.get(at..).unwrap_or_default());
    }

    fn replacement(&self, detector: Detector, value: &[u8], out: &mut String) {
        match detector {
            Detector::Ipv4 => match parse_ipv4(value) {
                Some(octets) => out.push_str(&truncated_ipv4(octets)),
                None => self.mask(detector.name(), value, out),
            },
            Detector::Ipv6 => match parse_ipv6(value) {
                Some(segments) => out.push_str(&truncated_ipv6(segments)),
                None => self.mask(detector.name(), value, out),
            },
            _ => self.mask(detector.name(), &normalize(detector, value), out),
        }
    }

    fn replacement_for_param(&self, value: &[u8], out: &mut String) {
        self.mask("query_param", value, out);
    }

    /// `[REDACTED:<what>]`, or with a key `[REDACTED:<what>:<pseudonym>]`.
    fn mask(&self, what: &str, normalized: &[u8], out: &mut String) {
        out.push_str("[REDACTED:");
        out.push_str(what);
        if let Some(key) = &self.key {
            out.push(':');
            out.push_str(&pseudonym(key, what, normalized));
        }
        out.push(']');
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
    let [a, b, c, ..] = segments;
    format!("{a:x}:{b:x}:{c:x}::/48")
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
        let plain = b.is_ascii_graphic() && !b"%\"#&+=?<>\\^`{|}[]".contains(&b);
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
