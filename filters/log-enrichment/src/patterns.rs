//! User-defined detectors (`redact.patterns`): a regular expression, optionally a checksum the
//! match must pass and keywords one of which must stand shortly before it. The regexes are
//! `regex-lite`'s: matching takes time linear in the text (no exponential backtracking), and
//! every compiled program and nesting depth is bounded.

use crate::detect::{luhn_valid, markers, mod11_valid, mod97, Detector, Span};
use regex_lite::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::fmt;

/// Bounds documented in the README.
pub const MAX_PATTERNS: usize = 32;
pub const MAX_PATTERN_NAME_BYTES: usize = 32;
pub const MAX_REGEX_BYTES: usize = 512;
/// regex-lite's estimate of one compiled program's heap size.
pub const MAX_COMPILED_BYTES: usize = 64 * 1024;
/// Nesting of groups and repetitions in one regex.
pub const MAX_NESTING: u32 = 32;
pub const MAX_KEYWORDS: usize = 16;
pub const MAX_KEYWORD_BYTES: usize = 64;
pub const DEFAULT_KEYWORD_DISTANCE: u32 = 30;
pub const MAX_KEYWORD_DISTANCE: u32 = 256;

/// A checksum a match must pass (`validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// ISO/IEC 7812 (Luhn) over the digits.
    Luhn,
    /// The last digit is the mod-11 control digit of the others, weights 2..7 from the right
    /// (Norwegian account and KID numbers).
    Mod11,
    /// ISO 7064 MOD 97-10 over the letters and digits, the first four moved to the end as
    /// for IBAN (and RF creditor references).
    Mod97,
}

impl Checksum {
    pub const ALL: [Checksum; 3] = [Checksum::Luhn, Checksum::Mod11, Checksum::Mod97];

    pub fn name(self) -> &'static str {
        match self {
            Checksum::Luhn => "luhn",
            Checksum::Mod11 => "mod11",
            Checksum::Mod97 => "mod97",
        }
    }

    /// The characters the checksum reads: digits, or for `mod97` letters (upper case) and
    /// digits. Hash mode pseudonymises these, so `1234 5678` and `1234-5678` hash alike.
    pub fn normalize(self, value: &[u8]) -> Vec<u8> {
        match self {
            Checksum::Luhn | Checksum::Mod11 => {
                value.iter().copied().filter(u8::is_ascii_digit).collect()
            }
            Checksum::Mod97 => value
                .iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_uppercase)
                .collect(),
        }
    }

    /// Whether `value` (a match, separators and all) passes.
    pub fn holds(self, value: &[u8]) -> bool {
        let chars = self.normalize(value);
        match self {
            Checksum::Luhn => chars.len() >= 2 && luhn_valid(&digit_values(&chars)),
            Checksum::Mod11 => chars.len() >= 2 && mod11_valid(&digit_values(&chars)),
            // As IBAN (ISO 13616) and RF creditor references (ISO 11649) apply ISO 7064: the
            // first four characters (a code and the check digits) move to the end.
            Checksum::Mod97 => {
                chars.len() >= 5
                    && mod97(chars.iter().skip(4).chain(chars.iter().take(4)).copied()) == 1
            }
        }
    }
}

/// ASCII digits as their values.
fn digit_values(digits: &[u8]) -> Vec<u8> {
    digits.iter().map(|d| d.wrapping_sub(b'0')).collect()
}

/// A compiled regex and its source (compared and shown by its source).
#[derive(Clone)]
pub struct PatternRegex {
    source: String,
    regex: Regex,
}

impl PatternRegex {
    /// Compiles `source` within the bounds, or says why not.
    pub fn compile(source: &str) -> Result<PatternRegex, String> {
        if source.is_empty() || source.len() > MAX_REGEX_BYTES {
            return Err(format!("must be 1 to {MAX_REGEX_BYTES} bytes long"));
        }
        let regex = RegexBuilder::new(source)
            .size_limit(MAX_COMPILED_BYTES)
            .nest_limit(MAX_NESTING)
            .build()
            .map_err(|e| {
                // regex-lite's messages span lines (the pattern, a caret); one log line each.
                let message = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                format!("does not compile (regex-lite syntax, at most {MAX_COMPILED_BYTES} bytes compiled and {MAX_NESTING} levels of nesting): {message}")
            })?;
        if regex.is_match("") {
            return Err(
                "matches the empty string; a detector must match at least one character"
                    .to_string(),
            );
        }
        Ok(PatternRegex {
            source: source.to_string(),
            regex,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PartialEq for PatternRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PatternRegex {}

impl fmt::Debug for PatternRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

/// One checked `redact.patterns` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPattern {
    /// Names the mask (`[REDACTED:<name>]`) and the stat; never a built-in detector's name.
    pub name: String,
    pub regex: PatternRegex,
    pub validate: Option<Checksum>,
    /// Lower-case (ASCII); empty: no keyword needed.
    pub keywords: Vec<String>,
    /// How far before a match (from a keyword's end to the match's start) a keyword may stand.
    pub keyword_distance: usize,
}

impl UserPattern {
    /// Where each keyword ends (ASCII case-insensitively) in `before` followed by `context`, as
    /// offsets into the two joined (`before.len()` is where `context` starts), ascending per
    /// keyword; one search per value, however many matches it has.
    fn keyword_ends(&self, before: &[u8], context: &[u8]) -> Vec<Vec<usize>> {
        if self.keywords.is_empty() {
            return Vec::new();
        }
        let joined: Cow<'_, [u8]> = if before.is_empty() {
            Cow::Borrowed(context)
        } else {
            Cow::Owned([before, context].concat())
        };
        self.keywords
            .iter()
            .map(|keyword| {
                let keyword = keyword.as_bytes();
                joined
                    .windows(keyword.len())
                    .enumerate()
                    .filter(|(_, w)| w.eq_ignore_ascii_case(keyword))
                    .map(|(at, _)| at + keyword.len())
                    .collect()
            })
            .collect()
    }

    /// Whether a match at `start..end` of `text` passes the checksum and, given where the
    /// keywords end (`keyword_ends`, offsets shifted by `shift`), has one ending at most
    /// `keyword_distance` bytes before it.
    fn accepts(
        &self,
        text: &[u8],
        (start, end): (usize, usize),
        ends: &[Vec<usize>],
        shift: usize,
    ) -> bool {
        let value = text.get(start..end).unwrap_or_default();
        let at = shift + start;
        let in_reach = |ends: &Vec<usize>| {
            let after = ends.partition_point(|e| *e <= at);
            after
                .checked_sub(1)
                .and_then(|i| ends.get(i))
                .is_some_and(|e| at - e <= self.keyword_distance)
        };
        self.validate.is_none_or(|c| c.holds(value))
            && (self.keywords.is_empty() || ends.iter().any(in_reach))
    }
}

/// Appends the matches of every pattern (each run left to right). Keywords are also looked
/// for at the end of `before`, text that stood before `text` (a query parameter's name).
pub fn scan_patterns(patterns: &[UserPattern], text: &[u8], before: &[u8], out: &mut Vec<Span>) {
    if patterns.is_empty() {
        return;
    }
    let lossy = Lossy::of(text);
    // Keywords are looked for outside the markers of earlier finds (`]` or `red` in
    // `[REDACTED:email]` is not the value's context).
    let context = without_markers(text);
    for (index, pattern) in patterns.iter().enumerate().take(MAX_PATTERNS) {
        let Ok(index) = u8::try_from(index) else {
            break;
        };
        let ends = pattern.keyword_ends(before, &context);
        // Without a keyword no match can count; and most values match nothing, which is_match
        // (no positions to track) says faster than find_iter.
        let keyword_missing = !pattern.keywords.is_empty() && ends.iter().all(Vec::is_empty);
        if keyword_missing || !pattern.regex.regex.is_match(&lossy.text) {
            continue;
        }
        for found in pattern.regex.regex.find_iter(&lossy.text) {
            let range = lossy.raw_range(found.start(), found.end());
            if range.0 < range.1 && pattern.accepts(text, range, &ends, before.len()) {
                out.push(Span {
                    start: range.0,
                    end: range.1,
                    detector: Detector::Pattern(index),
                });
            }
        }
    }
}

/// `text` with the bytes of its redaction markers blanked out (zero bytes), same length.
fn without_markers(text: &[u8]) -> Cow<'_, [u8]> {
    let found = markers(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut blanked = text.to_vec();
    for (start, end) in found {
        if let Some(marker) = blanked.get_mut(start..end) {
            marker.fill(0);
        }
    }
    Cow::Owned(blanked)
}

/// Text as it will be logged, invalid UTF-8 as U+FFFD (so that a pattern matching U+FFFD
/// finds it now, not only when the logged value is redacted again), and the way back to the
/// raw text's offsets.
struct Lossy<'a> {
    text: std::borrow::Cow<'a, str>,
    /// For invalid text, in order: where each valid piece and each replacement character
    /// starts in `text` and in the raw text, and whether it is a replacement.
    pieces: Vec<Piece>,
}

#[derive(Clone, Copy, Default)]
struct Piece {
    text_start: usize,
    raw_start: usize,
    raw_end: usize,
    replacement: bool,
}

impl<'a> Lossy<'a> {
    fn of(raw: &'a [u8]) -> Lossy<'a> {
        if let Ok(valid) = std::str::from_utf8(raw) {
            return Lossy {
                text: valid.into(),
                pieces: Vec::new(),
            };
        }
        let mut text = String::with_capacity(raw.len() + 8);
        let mut pieces = Vec::new();
        let mut at = 0;
        for chunk in raw.utf8_chunks() {
            let (valid, invalid) = (chunk.valid(), chunk.invalid());
            pieces.push(Piece {
                text_start: text.len(),
                raw_start: at,
                raw_end: at + valid.len(),
                replacement: false,
            });
            text.push_str(valid);
            at += valid.len();
            if !invalid.is_empty() {
                pieces.push(Piece {
                    text_start: text.len(),
                    raw_start: at,
                    raw_end: at + invalid.len(),
                    replacement: true,
                });
                text.push(char::REPLACEMENT_CHARACTER);
                at += invalid.len();
            }
        }
        Lossy {
            text: text.into(),
            pieces,
        }
    }

    /// The raw range of `start..end` in `text` (both on character boundaries): a replacement
    /// character stands for all of its invalid bytes.
    fn raw_range(&self, start: usize, end: usize) -> (usize, usize) {
        if self.pieces.is_empty() || start >= end {
            return (start, end);
        }
        let piece = |offset: usize| {
            let i = self.pieces.partition_point(|p| p.text_start <= offset);
            self.pieces
                .get(i.saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        let first = piece(start);
        let from = if first.replacement {
            first.raw_start
        } else {
            first.raw_start + (start - first.text_start)
        };
        // The piece of the match's last byte; `end` is just past it.
        let last = piece(end - 1);
        let to = if last.replacement {
            last.raw_end
        } else {
            last.raw_start + (end - last.text_start)
        };
        (from, to.max(from))
    }
}

#[cfg(test)]
#[path = "patterns_tests.rs"]
mod tests;
