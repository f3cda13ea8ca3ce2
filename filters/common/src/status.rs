//! Sets of HTTP status codes written as codes (`503`, `"503"`), classes (`"5xx"`, `"50x"`) or
//! ranges (`"500-504"`).

const WORDS: usize = 10; // 640 bits cover every valid code (100..=599)

/// A set of status codes, tested in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    bits: [u64; WORDS],
}

impl StatusSet {
    pub fn empty() -> Self {
        StatusSet::default()
    }

    pub fn from_specs(specs: &[StatusSpec]) -> Self {
        let mut set = StatusSet::empty();
        for spec in specs {
            set.insert_range(spec.low, spec.high);
        }
        set
    }

    fn insert_range(&mut self, low: u16, high: u16) {
        for code in low..=high {
            let (word, bit) = (usize::from(code / 64), code % 64);
            if let Some(w) = self.bits.get_mut(word) {
                *w |= 1u64 << bit;
            }
        }
    }

    pub fn contains(&self, code: u32) -> bool {
        let Ok(code) = u16::try_from(code) else {
            return false;
        };
        let (word, bit) = (usize::from(code / 64), code % 64);
        self.bits.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

/// One entry of a status list, as an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSpec {
    pub low: u16,
    pub high: u16,
}

impl StatusSpec {
    /// Parses `"503"`, `"5xx"`, `"50x"` or `"500-504"`.
    pub fn parse(text: &str) -> Result<StatusSpec, String> {
        let text = text.trim();
        if let Some((low, high)) = text.split_once('-') {
            let low = parse_code(low.trim(), text)?;
            let high = parse_code(high.trim(), text)?;
            if low > high {
                return Err(format!(
                    "invalid status range \"{text}\": start is after end"
                ));
            }
            return Ok(StatusSpec { low, high });
        }
        let bytes = text.as_bytes();
        if bytes.len() == 3 && bytes.iter().any(|b| *b == b'x' || *b == b'X') {
            // A class: digits followed only by 'x' ("5xx", "50x").
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let rest_is_x = bytes.iter().skip(digits).all(|b| *b == b'x' || *b == b'X');
            if digits == 0 || !rest_is_x {
                return Err(format!(
                    "invalid status class \"{text}\": use a form like \"5xx\" or \"50x\""
                ));
            }
            let prefix: u16 = text
                .get(..digits)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid status class \"{text}\""))?;
            let span = 10u16.pow(u32::try_from(3 - digits).unwrap_or(0));
            let low = prefix * span;
            let high = low + span - 1;
            if !(1..=5).contains(&(low / 100)) {
                return Err(format!(
                    "invalid status class \"{text}\": HTTP status codes are 100 to 599"
                ));
            }
            return Ok(StatusSpec { low, high });
        }
        let code = parse_code(text, text)?;
        Ok(StatusSpec {
            low: code,
            high: code,
        })
    }

    fn from_number(n: u64) -> Result<StatusSpec, String> {
        let code = u16::try_from(n)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("invalid status {n}: HTTP status codes are 100 to 599"))?;
        Ok(StatusSpec {
            low: code,
            high: code,
        })
    }
}

fn parse_code(part: &str, whole: &str) -> Result<u16, String> {
    let code: u16 = part.parse().map_err(|_| {
        format!("invalid status \"{whole}\": use a code (503), a class (\"5xx\") or a range (\"500-504\")")
    })?;
    if !(100..=599).contains(&code) {
        return Err(format!(
            "invalid status \"{whole}\": HTTP status codes are 100 to 599"
        ));
    }
    Ok(code)
}

/// One element of a configured status list: a number, or a code, class or range as text.
struct StatusItem(StatusSpec);

impl<'de> serde::Deserialize<'de> for StatusItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Item;
        impl serde::de::Visitor<'_> for Item {
            type Value = StatusItem;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code (503), class (\"5xx\") or range (\"500-504\")")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<StatusItem, E> {
                StatusSpec::from_number(n)
                    .map(StatusItem)
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<StatusItem, E> {
                Err(E::custom(format!(
                    "invalid status {n}: HTTP status codes are 100 to 599"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<StatusItem, E> {
                Err(E::custom(format!(
                    "invalid status {n}: use a whole number from 100 to 599"
                )))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StatusItem, E> {
                StatusSpec::parse(text).map(StatusItem).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Item)
    }
}

/// A configured list of statuses; an element that is wrong is named by its index.
impl<'de> serde::Deserialize<'de> for StatusSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<StatusItem>::deserialize(deserializer)?;
        let specs: Vec<StatusSpec> = items.into_iter().map(|item| item.0).collect();
        Ok(StatusSet::from_specs(&specs))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for StatusSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "statuses".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::schema::to_schema(serde_json::json!({
            "type": "array",
            "items": crate::schema::status_item(|_| true, "A status code (503, \"503\"), class (\"5xx\", \"50x\") or range (\"500-504\") of codes 100 to 599."),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    fn set(json: &str) -> Result<StatusSet, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            statuses: StatusSet,
        }
        crate::config::parse::<Doc>(format!(r#"{{"statuses":{json}}}"#).as_bytes())
            .map(|d| d.statuses)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn codes_classes_and_ranges() {
        let s = set(r#"[503, "429", "5xx", "401-403"]"#).unwrap();
        for code in [503, 429, 500, 599, 401, 402, 403] {
            assert!(s.contains(code), "{code}");
        }
        for code in [200, 404, 400, 600, 499, 0, 99, 65_536 + 503] {
            assert!(!s.contains(code), "{code}");
        }
    }

    #[test]
    fn partial_classes() {
        let s = set(r#"["50x"]"#).unwrap();
        assert!(s.contains(500) && s.contains(509));
        assert!(!s.contains(510) && !s.contains(499));
        let s = set(r#"["5XX"]"#).unwrap();
        assert!(s.contains(555));
    }

    #[test]
    fn invalid_specs_are_explained() {
        for bad in [
            "[600]",
            "[99]",
            "[-1]",
            r#"["6xx"]"#,
            r#"["x5x"]"#,
            r#"["xxx"]"#,
            r#"["abc"]"#,
            r#"["504-500"]"#,
            r#"["500-700"]"#,
            "[5.5]",
            r#"["0xx"]"#,
            "[true]",
        ] {
            assert!(set(bad).is_err(), "{bad} should be refused");
        }
        let err = set(r#"[500, "5yy"]"#).unwrap_err();
        assert!(err.starts_with("statuses[1]: "), "{err}");
    }

    #[test]
    fn empty_set() {
        assert!(StatusSet::empty().is_empty());
        assert!(!set("[200]").unwrap().is_empty());
    }
}
