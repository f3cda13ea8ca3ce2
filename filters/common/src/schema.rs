//! What the JSON Schemas of the configs need beyond what `schemars` derives (feature `schema`,
//! enabled only by the CLI): regular expressions that accept exactly the strings the parsers
//! accept, built from the same bounds the checks use.

use serde_json::{json, Value};

/// Whitespace that Rust's `str::trim` removes (Unicode White_Space): the duration and status
/// parsers trim their text.
pub const TRIM: &str =
    "[\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*";

/// Standard base64 as `breakwater_common::base64::decode` reads it: ASCII whitespace anywhere,
/// the last group's unused bits zero, up to two `=` at the end.
pub const BASE64: &str = "^[\\t\\n\\f\\r ]*(([A-Za-z0-9+/][\\t\\n\\f\\r ]*){4})*([A-Za-z0-9+/][\\t\\n\\f\\r ]*[AQgw][\\t\\n\\f\\r ]*|([A-Za-z0-9+/][\\t\\n\\f\\r ]*){2}[AEIMQUYcgkosw048][\\t\\n\\f\\r ]*)?(=[\\t\\n\\f\\r ]*){0,2}$";

/// The strings `breakwater_common::duration::parse` reads as `min_ms` to `max_ms`: a number
/// with an optional fraction, then `ms`, `s`, `m` or `h`. A fraction may not go below a
/// millisecond except with zeros, so each unit has its own number of fraction digits `k`, and
/// the number, read as a whole count of `unit / 10^k` steps, has its own bounds.
pub fn duration_pattern(min_ms: u64, max_ms: u64) -> String {
    let mut alternatives = Vec::new();
    for (unit, unit_ms) in [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)] {
        let (mut step, mut k) = (unit_ms, 0);
        while step % 10 == 0 {
            step /= 10;
            k += 1;
        }
        let (low, high) = (min_ms.div_ceil(step), max_ms / step);
        if low <= high {
            alternatives.push(format!("{}{unit}", group(decimal(k, low, high))));
        }
    }
    format!("^{TRIM}({}){TRIM}$", alternatives.join("|"))
}

/// Decimal numbers (leading zeros, an optional fraction with at most `k` significant digits
/// then only zeros, `5.` and `.5` allowed) whose value times `10^k` is from `low` to `high`.
fn decimal(k: u32, low: u64, high: u64) -> String {
    let scale = 10u64.pow(k);
    let digits = |fraction: u64| -> Vec<u8> {
        match k {
            0 => Vec::new(),
            _ => format!("{fraction:0width$}", width = k as usize).into_bytes(),
        }
    };
    // Runs of whole parts that share the bounds of their fractions: (whole from, to, fraction
    // from, to).
    let (low_whole, high_whole) = (low / scale, high / scale);
    let mut runs: Vec<(u64, u64, u64, u64)> = Vec::new();
    if low_whole == high_whole {
        runs.push((low_whole, low_whole, low % scale, high % scale));
    } else {
        runs.push((low_whole, low_whole, low % scale, scale - 1));
        if low_whole + 1 < high_whole {
            runs.push((low_whole + 1, high_whole - 1, 0, scale - 1));
        }
        runs.push((high_whole, high_whole, 0, high % scale));
    }
    let mut merged: Vec<(u64, u64, u64, u64)> = Vec::new();
    for run in runs {
        match merged.last_mut() {
            Some(last) if (last.2, last.3) == (run.2, run.3) => last.1 = run.1,
            _ => merged.push(run),
        }
    }
    let mut alternatives = Vec::new();
    for (from, to, fraction_low, fraction_high) in merged {
        let (fraction, may_omit) = fraction_digits(&digits(fraction_low), &digits(fraction_high));
        let dot = if fraction == "0+" {
            "(\\.0*)?".to_string()
        } else if may_omit {
            format!("(\\.({fraction})?)?")
        } else {
            format!("\\.({fraction})")
        };
        if from == 0 {
            // A zero whole part may be left out (".5") when a fraction follows.
            alternatives.push(if may_omit {
                format!("0+{dot}|\\.({fraction})")
            } else {
                format!("0*{dot}")
            });
        }
        if to >= 1 {
            alternatives.push(format!("0*{}{dot}", group(integer_range(from.max(1), to))));
        }
    }
    alternatives.join("|")
}

/// Fraction digits (at least one) whose first `low.len()` digits, padded with zeros, are from
/// `low` to `high` and whose further digits are zeros; and whether no digits at all (zero) is
/// also in range.
fn fraction_digits(low: &[u8], high: &[u8]) -> (String, bool) {
    let zero_ok = low.iter().all(|d| *d == b'0');
    let (Some((&l, low_rest)), Some((&h, high_rest))) = (low.split_first(), high.split_first())
    else {
        return ("0+".to_string(), true);
    };
    let rest = low_rest.len();
    if zero_ok && high.iter().all(|d| *d == b'0') {
        return ("0+".to_string(), true);
    }
    if zero_ok && high.iter().all(|d| *d == b'9') {
        return (format!("{}0*", any_digits(1, rest + 1)), true);
    }
    let then = |(alternatives, may_end): (String, bool)| match (alternatives.as_str(), may_end) {
        ("0+", true) => "0*".to_string(),
        (_, true) => format!("({alternatives})?"),
        (_, false) => format!("({alternatives})"),
    };
    let (zeros, nines) = (vec![b'0'; rest], vec![b'9'; rest]);
    let mut alternatives = Vec::new();
    if l == h {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            then(fraction_digits(low_rest, high_rest))
        ));
    } else {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            then(fraction_digits(low_rest, &nines))
        ));
        if l + 1 < h {
            alternatives.push(format!(
                "{}{}0*",
                digit_class(l + 1, h - 1),
                any_digits(0, rest)
            ));
        }
        alternatives.push(format!(
            "{}{}",
            char::from(h),
            then(fraction_digits(&zeros, high_rest))
        ));
    }
    (alternatives.join("|"), zero_ok)
}

/// Whole numbers from `low` (at least 1) to `high`, written without leading zeros.
pub fn integer_range(low: u64, high: u64) -> String {
    let mut alternatives = Vec::new();
    let mut full: Option<(u32, u32)> = None; // a run of lengths taking every number
    for length in low.ilog10() + 1..=high.ilog10() + 1 {
        let (first, last) = (10u64.pow(length - 1), 10u64.pow(length) - 1);
        let (from, to) = (low.max(first), high.min(last));
        if (from, to) == (first, last) {
            full = Some(full.map_or((length, length), |(start, _)| (start, length)));
        } else {
            alternatives.push(same_length_range(
                from.to_string().as_bytes(),
                to.to_string().as_bytes(),
            ));
        }
    }
    if let Some((shortest, longest)) = full {
        alternatives.insert(
            0,
            format!(
                "[1-9]{}",
                any_digits(shortest as usize - 1, longest as usize - 1)
            ),
        );
    }
    alternatives.join("|")
}

/// Digit strings of one length from `low` to `high`.
fn same_length_range(low: &[u8], high: &[u8]) -> String {
    let (Some((&l, low_rest)), Some((&h, high_rest))) = (low.split_first(), high.split_first())
    else {
        return String::new();
    };
    let rest = low_rest.len();
    if l == h {
        return format!(
            "{}{}",
            char::from(l),
            group(same_length_range(low_rest, high_rest))
        );
    }
    let (lowest, highest) = (
        low_rest.iter().all(|d| *d == b'0'),
        high_rest.iter().all(|d| *d == b'9'),
    );
    let mut alternatives = Vec::new();
    if !lowest {
        alternatives.push(format!(
            "{}{}",
            char::from(l),
            group(same_length_range(low_rest, &vec![b'9'; rest]))
        ));
    }
    let (from, to) = (
        if lowest { l } else { l + 1 },
        if highest { h } else { h - 1 },
    );
    if from <= to {
        alternatives.push(format!(
            "{}{}",
            digit_class(from, to),
            any_digits(rest, rest)
        ));
    }
    if !highest {
        alternatives.push(format!(
            "{}{}",
            char::from(h),
            group(same_length_range(&vec![b'0'; rest], high_rest))
        ));
    }
    alternatives.join("|")
}

/// Alternatives in parentheses, so that something can follow them.
fn group(alternatives: String) -> String {
    if alternatives.contains('|') {
        format!("({alternatives})")
    } else {
        alternatives
    }
}

fn digit_class(from: u8, to: u8) -> String {
    match to - from {
        0 => char::from(from).to_string(),
        1 => format!("[{}{}]", char::from(from), char::from(to)),
        _ => format!("[{}-{}]", char::from(from), char::from(to)),
    }
}

/// `min` to `max` digits.
fn any_digits(min: usize, max: usize) -> String {
    match (min, max) {
        (_, 0) => String::new(),
        (1, 1) => "[0-9]".to_string(),
        (0, 1) => "[0-9]?".to_string(),
        _ if min == max => format!("[0-9]{{{min}}}"),
        _ => format!("[0-9]{{{min},{max}}}"),
    }
}

/// A status list element as `breakwater_common::status` reads it, limited to the codes that
/// `allowed` takes: a number, or a code, class or range as text.
pub fn status_item(allowed: fn(u16) -> bool, description: &str) -> Value {
    let codes: Vec<u16> = (100..=599).filter(|c| allowed(*c)).collect();
    let (low, high) = (
        codes.first().copied().unwrap_or(100),
        codes.last().copied().unwrap_or(599),
    );
    let holes: Vec<u16> = (low..=high).filter(|c| !allowed(*c)).collect();
    let code = format!("\\+?0*{}", group(code_pattern(allowed)));
    let mut out = json!({
        "description": description,
        "type": ["integer", "string"],
        "minimum": low,
        "maximum": high,
        "pattern": format!("^{TRIM}({}|{code}|{code}{TRIM}-{TRIM}{code}){TRIM}$", class_pattern(allowed)),
    });
    if !holes.is_empty() {
        if let Some(map) = out.as_object_mut() {
            map.insert("not".to_string(), json!({"enum": holes}));
        }
    }
    out
}

/// Three-digit codes that `allowed` takes.
fn code_pattern(allowed: fn(u16) -> bool) -> String {
    let by_first = (1..=5u16).map(|first| {
        let third = |second: u16| {
            digit_set((0..=9).filter(|third| allowed(first * 100 + second * 10 + third)))
        };
        group(group_by_pattern(
            (0..=9)
                .map(|second| (second, third(second)))
                .filter(|(_, t)| !t.is_empty()),
        ))
    });
    group_by_pattern((1..=5).zip(by_first).filter(|(_, inner)| !inner.is_empty()))
}

/// Classes (`5xx`, `50x`, either case of x) all of whose codes `allowed` takes.
fn class_pattern(allowed: fn(u16) -> bool) -> String {
    let all = |from: u16, count: u16| (from..from + count).all(allowed);
    let by_first = (1..=5u16).map(|first| {
        let seconds = digit_set((0..=9).filter(|second| all(first * 100 + second * 10, 10)));
        let mut forms = Vec::new();
        if all(first * 100, 100) {
            forms.push("[xX]{2}".to_string());
        }
        if !seconds.is_empty() {
            forms.push(format!("{seconds}[xX]"));
        }
        group(forms.join("|"))
    });
    group_by_pattern((1..=5).zip(by_first).filter(|(_, inner)| !inner.is_empty()))
}

/// `(digit, rest)` pairs as alternatives, digits with the same rest sharing one class.
fn group_by_pattern(pairs: impl Iterator<Item = (u16, String)>) -> String {
    let mut groups: Vec<(Vec<u16>, String)> = Vec::new();
    for (digit, rest) in pairs {
        match groups.iter_mut().find(|(_, r)| *r == rest) {
            Some((digits, _)) => digits.push(digit),
            None => groups.push((vec![digit], rest)),
        }
    }
    let alternatives: Vec<String> = groups
        .into_iter()
        .map(|(digits, rest)| format!("{}{rest}", digit_set(digits.into_iter())))
        .collect();
    alternatives.join("|")
}

/// A character class of decimal digits, e.g. `[0-57-9]`; a single digit as itself.
fn digit_set(digits: impl Iterator<Item = u16>) -> String {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for d in digits {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    let body: String = runs
        .iter()
        .map(|&(from, to)| match to - from {
            0 => from.to_string(),
            1 => format!("{from}{to}"),
            _ => format!("{from}-{to}"),
        })
        .collect();
    match runs.as_slice() {
        [] => String::new(),
        [(from, to)] if from == to => body,
        _ => format!("[{body}]"),
    }
}

/// An HTTP token, as a header name; pseudo-headers are not.
pub const HEADER_NAME: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

/// `^(a|b)$` for these words in any ASCII case, e.g. `[Aa][Gg][Ee]`.
pub fn caseless(words: &[&str]) -> String {
    format!("^({})$", caseless_alternatives(words))
}

/// These words in any ASCII case as alternatives, unanchored and not grouped (`[Oo][Kk]|…`),
/// to be part of a larger pattern: letter by letter, so that every JSON Schema regex dialect
/// reads them the same (no inline flags such as `(?i)`).
pub fn caseless_alternatives(words: &[&str]) -> String {
    let word = |w: &str| -> String {
        w.chars()
            .map(|c| match (c.to_ascii_uppercase(), c.to_ascii_lowercase()) {
                (upper, lower) if upper != lower => format!("[{upper}{lower}]"),
                _ => c.to_string(),
            })
            .collect()
    };
    words.iter().map(|w| word(w)).collect::<Vec<_>>().join("|")
}

/// A `Value` built with `json!` as a schemars `Schema` (every value built here is an object).
pub fn to_schema(value: Value) -> schemars::Schema {
    schemars::Schema::try_from(value).unwrap_or_default()
}

/// Keys of one object that exclude each other.
pub trait Exclusive {
    const KEYS: &'static [&'static str];
}

/// A `transform` for an object schema: no object gives all of `E::KEYS`.
pub fn never_together<E: Exclusive>(schema: &mut schemars::Schema) {
    add_rule(schema, never(given(E::KEYS)));
}

/// A condition: an object in which these keys are given (present and not `null`).
pub fn given(keys: &[&str]) -> Value {
    let not_null: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!({"not": {"type": "null"}})))
        .collect();
    json!({"type": "object", "required": keys, "properties": not_null})
}

/// Adds a rule across properties to an object schema (its `allOf`).
pub fn add_rule(schema: &mut schemars::Schema, rule: Value) {
    match schema.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(rules) => rules.push(rule),
        None => {
            schema.insert("allOf".to_string(), json!([rule]));
        }
    }
}

/// A rule: no object matches `condition`.
pub fn never(condition: Value) -> Value {
    let mut object = json!({"type": "object"});
    if let (Some(map), Value::Object(more)) = (object.as_object_mut(), condition) {
        map.extend(more);
    }
    json!({"not": object})
}
