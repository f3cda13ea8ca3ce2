//! Envoy's response flags (the `%RESPONSE_FLAGS%` short names), as bits of the little-endian
//! u64 that the `response.flags` attribute returns. Bit positions follow Envoy's
//! `StreamInfo::CoreResponseFlag` enum, which Envoy keeps stable.

/// (short name, bit, meaning) for every core flag Envoy reports in `response.flags`.
pub const RESPONSE_FLAGS: &[(&str, u32, &str)] = &[
    ("LH", 0, "failed local health check"),
    ("UH", 1, "no healthy upstream"),
    ("UT", 2, "upstream request timeout"),
    ("LR", 3, "local reset"),
    ("UR", 4, "upstream remote reset"),
    ("UF", 5, "upstream connection failure"),
    ("UC", 6, "upstream connection termination"),
    (
        "UO",
        7,
        "upstream overflow (Envoy's own circuit_breakers or pending limits)",
    ),
    ("NR", 8, "no route"),
    ("DI", 9, "delay injected"),
    ("FI", 10, "fault injected"),
    ("RL", 11, "rate limited"),
    ("UAEX", 12, "unauthorized by external authorization"),
    ("RLSE", 13, "rate limit service error"),
    ("DC", 14, "downstream connection termination"),
    ("URX", 15, "upstream retry limit exceeded"),
    ("SI", 16, "stream idle timeout"),
    ("IH", 17, "invalid Envoy request headers"),
    ("DPE", 18, "downstream protocol error"),
    ("UMSDR", 19, "upstream max stream duration reached"),
    ("RFCF", 20, "response from cache filter"),
    ("NFCF", 21, "no filter config found"),
    ("DT", 22, "duration timeout"),
    ("UPE", 23, "upstream protocol error"),
    ("NC", 24, "no cluster found"),
    ("OM", 25, "overload manager"),
    ("DF", 26, "DNS resolution failed"),
    ("DO", 27, "drop overload"),
    ("DR", 28, "downstream remote reset"),
    ("UDO", 29, "unconditional drop overload"),
];

/// A set of response flags as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagSet(pub u64);

impl FlagSet {
    pub fn bit(name: &str) -> Option<u64> {
        RESPONSE_FLAGS
            .iter()
            .find(|(short, _, _)| *short == name)
            .map(|(_, bit, _)| 1u64 << bit)
    }

    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<FlagSet, String> {
        let mut mask = 0u64;
        for name in names {
            let name = name.as_ref();
            mask |= FlagSet::bit(name).ok_or_else(|| {
                format!(
                    "unknown response flag \"{name}\" (known: {})",
                    FlagSet::describe(u64::MAX)
                )
            })?;
        }
        Ok(FlagSet(mask))
    }

    /// True when any flag of this set is in `flags` (the value read from `response.flags`).
    pub fn intersects(self, flags: u64) -> bool {
        self.0 & flags != 0
    }

    /// The short names of the flags in `flags`, comma separated as in `%RESPONSE_FLAGS%`.
    pub fn describe(flags: u64) -> String {
        let mut out = String::new();
        for (short, bit, _) in RESPONSE_FLAGS {
            if flags & (1u64 << bit) != 0 {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(short);
            }
        }
        out
    }
}

/// A configured list of flag names; a name that is wrong is named by its index.
impl<'de> serde::Deserialize<'de> for FlagSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name(u64);
        impl<'de> serde::Deserialize<'de> for Name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                FlagSet::parse(&[name])
                    .map(|set| Name(set.0))
                    .map_err(serde::de::Error::custom)
            }
        }
        let names = Vec::<Name>::deserialize(deserializer)?;
        Ok(FlagSet(names.iter().fold(0, |mask, name| mask | name.0)))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for FlagSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "response_flags".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = RESPONSE_FLAGS.iter().map(|(name, _, _)| *name).collect();
        schemars::json_schema!({
            "type": "array",
            "items": { "type": "string", "enum": names },
        })
    }
}

/// Decodes the `response.flags` attribute (a little-endian u64; shorter values are padded).
pub fn decode_flags(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    for (dst, src) in buf.iter_mut().zip(bytes.iter()) {
        *dst = *src;
    }
    u64::from_le_bytes(buf)
}

/// Decodes an integer attribute such as `response.code` (a little-endian i64/u64).
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    Some(decode_flags(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn bits_match_envoy() {
        // Verified against Envoy: a connect failure arrives with 0x20 set.
        assert_eq!(FlagSet::bit("UF"), Some(0x20));
        assert_eq!(FlagSet::bit("UT"), Some(0x4));
        assert_eq!(FlagSet::bit("URX"), Some(0x8000));
        assert_eq!(FlagSet::bit("UC"), Some(0x40));
        assert_eq!(FlagSet::bit("DC"), Some(0x4000));
        assert_eq!(FlagSet::bit("uf"), None);
    }

    #[test]
    fn unknown_flags_are_named() {
        let err = FlagSet::parse(&["UF", "XX"]).unwrap_err();
        assert!(err.contains("\"XX\""), "{err}");
        assert!(err.contains("URX"), "{err}");
    }

    #[test]
    fn configured_lists_name_the_wrong_element() {
        let read = |json: &str| crate::config::read::<FlagSet>(json.as_bytes());
        assert_eq!(read(r#"["UF","UT"]"#), Ok(FlagSet(0x24)));
        let err = read(r#"["UF","BOGUS"]"#).unwrap_err();
        assert_eq!(err.field, "[1]");
        assert!(err.reason.contains("BOGUS"), "{err}");
    }

    #[test]
    fn intersects_and_describes() {
        let set = FlagSet::parse(&["UF", "UT"]).unwrap();
        assert!(set.intersects(0x20));
        assert!(set.intersects(0x24 | 0x4000));
        assert!(!set.intersects(0x4000));
        assert_eq!(FlagSet::describe(0x20 | 0x4), "UT,UF");
        assert_eq!(FlagSet::describe(0), "");
    }

    #[test]
    fn decoding_is_bounded() {
        assert_eq!(decode_flags(&0x20u64.to_le_bytes()), 0x20);
        assert_eq!(decode_flags(&[0x20]), 0x20);
        assert_eq!(decode_flags(&[]), 0);
        assert_eq!(decode_flags(&[1; 12]), u64::from_le_bytes([1; 8]));
        assert_eq!(decode_u64(&503u64.to_le_bytes()), Some(503));
        assert_eq!(decode_u64(&[]), None);
        assert_eq!(decode_u64(&[0; 9]), None);
    }
}
