//! gRPC as the filters see it: which requests are gRPC calls, status codes by name or number
//! (as the gRPC spec names them), the `grpc-status` value of a response, and the service and
//! method of a call's path.

/// The gRPC status codes by number (doc/statuscodes.md of the gRPC repository).
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub const OK: u32 = 0;
pub const UNKNOWN: u32 = 2;
pub const UNAVAILABLE: u32 = 14;

/// A configured `grpc-message` is at most this long: it travels as one header.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 1024;

/// The name of a status code (`UNAVAILABLE`), `None` past the known ones.
pub fn code_name(code: u32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
}

/// A status code by its name, in any case (`unavailable`, `UNAVAILABLE`).
pub fn code_by_name(name: &str) -> Option<u32> {
    CODE_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .and_then(|i| u32::try_from(i).ok())
}

/// Whether a request with this `content-type` is a gRPC call: exactly `application/grpc`, or
/// `application/grpc+<format>` (gRPC-Web is not). The same test as Envoy's
/// `Grpc::Common::hasGrpcContentType`, which decides whether a local reply to the request goes
/// out as a gRPC status: a filter that disagreed would answer an HTTP client with gRPC
/// metadata, or a gRPC client with an HTTP body.
pub fn is_grpc(content_type: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    content_type.starts_with(GRPC) && matches!(content_type.get(GRPC.len()), None | Some(b'+'))
}

/// The status of a gRPC response that has ended (the headers of a trailers-only response, or
/// the trailers), as gRPC's clients take it: its `grpc-status` when that is a known code;
/// UNKNOWN when it is not (not a number, or past UNAUTHENTICATED); without any, the status its
/// HTTP status maps to ([`status_of_http`]).
pub fn status_of_ended_response(grpc_status: Option<&[u8]>, http_status: Option<u32>) -> u32 {
    match grpc_status {
        Some(value) => parse_status(value)
            .filter(|code| code_name(*code).is_some())
            .unwrap_or(UNKNOWN),
        None => http_status.map_or(UNKNOWN, status_of_http),
    }
}

/// The gRPC status of a response without `grpc-status`, from its HTTP status, as in gRPC's
/// doc/http-grpc-status-mapping.md (a 200 without one is UNKNOWN).
pub fn status_of_http(http_status: u32) -> u32 {
    match http_status {
        400 => 13,                            // INTERNAL
        401 => 16,                            // UNAUTHENTICATED
        403 => 7,                             // PERMISSION_DENIED
        404 => 12,                            // UNIMPLEMENTED
        429 | 502 | 503 | 504 => UNAVAILABLE, // the server is busy or unreachable
        _ => UNKNOWN,
    }
}

/// A `grpc-status` value: a decimal number (surrounding spaces allowed), or `None`.
pub fn parse_status(value: &[u8]) -> Option<u32> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')),
    )
}

/// The service and method of a gRPC call's path (`/shop.Catalog/GetItem` gives
/// `shop.Catalog` and `GetItem`), `None` for a path of another shape.
pub fn service_and_method(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let path = path.split(|b| *b == b'?').next()?;
    let rest = path.strip_prefix(b"/")?;
    let slash = rest.iter().position(|b| *b == b'/')?;
    let (service, method) = (rest.get(..slash)?, rest.get(slash + 1..)?);
    let plain = |part: &[u8]| !part.is_empty() && !part.contains(&b'/');
    (plain(service) && plain(method)).then_some((service, method))
}

/// A set of gRPC status codes (0 to 16), tested in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrpcStatusSet {
    bits: u32,
}

impl GrpcStatusSet {
    pub fn of(codes: &[u32]) -> Self {
        let mut set = GrpcStatusSet::default();
        for code in codes {
            set.insert(*code);
        }
        set
    }

    fn insert(&mut self, code: u32) {
        if code < 17 {
            self.bits |= 1 << code;
        }
    }

    pub fn contains(&self, code: u32) -> bool {
        code < 17 && self.bits & (1 << code) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The codes' names, in code order.
    pub fn names(&self) -> Vec<&'static str> {
        (0..17u32)
            .filter(|c| self.contains(*c))
            .filter_map(code_name)
            .collect()
    }
}

/// One gRPC status code in a configuration: its name (`"UNAVAILABLE"`, any case) or number
/// (0 to 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCode(pub u32);

impl GrpcCode {
    /// A code from its configured text: a name in any case, or a number of decimal digits
    /// (leading zeros allowed, no sign), with white space around it (what `str::trim` removes).
    pub fn parse(text: &str) -> Result<GrpcCode, String> {
        let trimmed = text.trim();
        code_by_name(trimmed)
            .or_else(|| {
                // Digits only, as the schema's pattern says ("+14" is not a number here).
                let digits = trimmed.trim_start_matches('0');
                let all_digits = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit());
                match digits {
                    _ if !all_digits || digits.len() > 2 => None,
                    "" => Some(OK),
                    _ => digits.parse().ok(),
                }
            })
            .filter(|code| code_name(*code).is_some())
            .map(GrpcCode)
            .ok_or_else(|| {
                format!("\"{text}\" is not a gRPC status (a name such as UNAVAILABLE, or 0 to 16)")
            })
    }
}

impl<'de> serde::Deserialize<'de> for GrpcCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = GrpcCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a gRPC status name (\"UNAVAILABLE\") or number (0 to 16)")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<GrpcCode, E> {
                u32::try_from(n)
                    .ok()
                    .filter(|c| code_name(*c).is_some())
                    .map(GrpcCode)
                    .ok_or_else(|| E::custom(format!("{n} is not a gRPC status (0 to 16)")))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<GrpcCode, E> {
                Err(E::custom(format!("{n} is not a gRPC status (0 to 16)")))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<GrpcCode, E> {
                Err(E::custom(format!("{n} is not a gRPC status (0 to 16)")))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<GrpcCode, E> {
                GrpcCode::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Code)
    }
}

/// Where a configured gRPC status may not be OK: why (the refusal's reason), and how the JSON
/// Schema names and describes a status there.
pub trait NotOk {
    /// The reason OK is refused, e.g. "OK is a success, not a failure: …".
    const REASON: &'static str;
    /// The schema's name of a status there (unique within one filter's schema).
    const SCHEMA_NAME: &'static str;
    /// The schema's description of a status there.
    const DESCRIPTION: &'static str;
}

/// A configured gRPC status that is not OK: read as a [`GrpcCode`], OK refused with `W`'s
/// reason. A list of them (`Vec<NotOkCode<W>>`) names a wrong element by its index.
pub struct NotOkCode<W> {
    code: u32,
    why: std::marker::PhantomData<fn() -> W>,
}

impl<W> NotOkCode<W> {
    /// The status (never [`OK`]).
    pub fn get(&self) -> u32 {
        self.code
    }

    /// The statuses of a configured list, as a set.
    pub fn set(codes: &[NotOkCode<W>]) -> GrpcStatusSet {
        let codes: Vec<u32> = codes.iter().map(NotOkCode::get).collect();
        GrpcStatusSet::of(&codes)
    }
}

impl<W> Clone for NotOkCode<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for NotOkCode<W> {}

impl<W> PartialEq for NotOkCode<W> {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl<W> Eq for NotOkCode<W> {}

impl<W> std::fmt::Debug for NotOkCode<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NotOkCode").field(&self.code).finish()
    }
}

impl<'de, W: NotOk> serde::Deserialize<'de> for NotOkCode<W> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match GrpcCode::deserialize(deserializer)? {
            GrpcCode(OK) => Err(serde::de::Error::custom(W::REASON)),
            GrpcCode(code) => Ok(NotOkCode {
                code,
                why: std::marker::PhantomData,
            }),
        }
    }
}

#[cfg(feature = "schema")]
impl<W: NotOk> schemars::JsonSchema for NotOkCode<W> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        W::SCHEMA_NAME.into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = code_schema();
        if let (Some(map), serde_json::Value::Object(not_ok)) =
            (schema.as_object_mut(), not_ok_schema())
        {
            map.insert("description".into(), W::DESCRIPTION.into());
            map.extend(not_ok);
        }
        crate::schema::to_schema(schema)
    }
}

/// A name or number as text, in a pattern: `^{TRIM}(…){TRIM}$` around `alternatives`.
#[cfg(feature = "schema")]
fn text_pattern(alternatives: &str) -> String {
    let trim = crate::schema::TRIM;
    format!("^{trim}({alternatives}){trim}$")
}

/// The JSON Schema of one configured code: a name in any case, or 0 to 16 (as a number, or as
/// text of digits), white space around the text allowed as [`GrpcCode::parse`] allows it.
#[cfg(feature = "schema")]
pub fn code_schema() -> serde_json::Value {
    let names = crate::schema::caseless_alternatives(&CODE_NAMES);
    serde_json::json!({
        "description": "A gRPC status: its name (UNAVAILABLE, in any case) or number (0 to 16).",
        "type": ["integer", "string"],
        "anyOf": [
            { "type": "integer", "minimum": 0, "maximum": 16 },
            { "type": "string", "pattern": text_pattern(&format!("{names}|0*([0-9]|1[0-6])")) },
        ],
    })
}

/// The JSON Schema rule of a code that may not be OK (0): to add to [`code_schema`].
#[cfg(feature = "schema")]
pub fn not_ok_schema() -> serde_json::Value {
    let ok = crate::schema::caseless_alternatives(&[CODE_NAMES[0]]);
    serde_json::json!({
        "not": { "anyOf": [
            { "const": 0 },
            { "type": "string", "pattern": text_pattern(&format!("{ok}|0+")) },
        ] },
    })
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for GrpcCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "grpc_status".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::schema::to_schema(code_schema())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn codes_by_name_and_number() {
        assert_eq!(code_by_name("UNAVAILABLE"), Some(14));
        assert_eq!(code_by_name("deadline_exceeded"), Some(4));
        assert_eq!(code_name(16), Some("UNAUTHENTICATED"));
        assert_eq!(code_name(17), None);
        assert_eq!(GrpcCode::parse(" 14 "), Ok(GrpcCode(14)));
        assert_eq!(GrpcCode::parse("Unavailable"), Ok(GrpcCode(14)));
        for bad in ["17", "-1", "+14", "UNAVAILABLE_", "", "1.0"] {
            assert!(GrpcCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        for yes in [&b"application/grpc"[..], b"application/grpc+proto"] {
            assert!(is_grpc(yes), "{}", String::from_utf8_lossy(yes));
        }
        // What Envoy does not take for gRPC either (its local replies to these are HTTP).
        for no in [
            &b"application/grpc-web"[..],
            b"application/grpc-web+proto",
            b"Application/GRPC",
            b"application/grpc;charset=utf-8",
            b"application/json",
            b"application/grp",
            b"",
        ] {
            assert!(!is_grpc(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn status_values_are_decimal_numbers() {
        assert_eq!(parse_status(b"14"), Some(14));
        assert_eq!(parse_status(b" 0 "), Some(0));
        for bad in [&b""[..], b"x", b"-1", b"1 4", b"9999999999"] {
            assert_eq!(parse_status(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_ended_response_has_the_status_a_grpc_client_would_see() {
        let ended = |grpc: Option<&[u8]>, http: Option<u32>| status_of_ended_response(grpc, http);
        assert_eq!(ended(Some(b"14"), Some(200)), UNAVAILABLE);
        assert_eq!(ended(Some(b" 0 "), Some(200)), OK);
        assert_eq!(
            ended(Some(b"14"), Some(503)),
            UNAVAILABLE,
            "grpc-status first"
        );
        // Not a known code: UNKNOWN, whatever the HTTP status.
        for bad in [
            &b"abc"[..],
            b"",
            b"-14",
            b"17",
            b"4294967310",
            b"14,0",
            b"\xff1",
        ] {
            assert_eq!(
                ended(Some(bad), Some(503)),
                UNKNOWN,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // None: the HTTP status decides.
        assert_eq!(ended(None, Some(200)), UNKNOWN);
        assert_eq!(ended(None, Some(503)), UNAVAILABLE);
        assert_eq!(ended(None, Some(429)), UNAVAILABLE);
        assert_eq!(ended(None, Some(404)), 12);
        assert_eq!(ended(None, Some(401)), 16);
        assert_eq!(ended(None, Some(500)), UNKNOWN);
        assert_eq!(ended(None, None), UNKNOWN);
    }

    #[test]
    fn paths_give_service_and_method() {
        assert_eq!(
            service_and_method(b"/shop.v1.Catalog/GetItem"),
            Some((&b"shop.v1.Catalog"[..], &b"GetItem"[..]))
        );
        for bad in [&b"/"[..], b"/a", b"/a/", b"//m", b"/a/b/c", b"a/b", b""] {
            assert_eq!(
                service_and_method(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A place where OK is refused, for the tests.
    struct Failures;

    impl NotOk for Failures {
        const REASON: &'static str = "OK is a success, not a failure";
        const SCHEMA_NAME: &'static str = "failure";
        const DESCRIPTION: &'static str = "A failure.";
    }

    #[test]
    fn not_ok_lists_read_names_and_numbers_and_refuse_ok_by_index() {
        let read = |json: &str| {
            let mut de = serde_json::Deserializer::from_str(json);
            serde_path_to_error::deserialize::<_, Vec<NotOkCode<Failures>>>(&mut de)
        };
        let set = NotOkCode::set(&read(r#"["UNAVAILABLE", 4, "internal", " 16 "]"#).unwrap());
        assert!(set.contains(14) && set.contains(4) && set.contains(13) && set.contains(16));
        assert!(!set.contains(0) && !set.contains(17) && !set.contains(u32::MAX));
        assert_eq!(
            set.names(),
            [
                "DEADLINE_EXCEEDED",
                "INTERNAL",
                "UNAVAILABLE",
                "UNAUTHENTICATED"
            ]
        );
        for (json, at, reason) in [
            (
                r#"["UNAVAILABLE", "NOPE"]"#,
                "[1]",
                "\"NOPE\" is not a gRPC status",
            ),
            ("[14, 0]", "[1]", "OK is a success, not a failure"),
            (r#"[14, 4, "ok"]"#, "[2]", "OK is a success, not a failure"),
            (r#"[" OK "]"#, "[0]", "OK is a success, not a failure"),
            (r#"["000"]"#, "[0]", "OK is a success, not a failure"),
            ("[17]", "[0]", "17 is not a gRPC status"),
            (r#"["+0"]"#, "[0]", "\"+0\" is not a gRPC status"),
        ] {
            let error = read(json).unwrap_err();
            assert_eq!(error.path().to_string(), at, "{json}");
            assert!(
                error.inner().to_string().starts_with(reason),
                "{json}: {error}"
            );
        }
    }

    #[test]
    fn configured_codes_are_names_or_digits_with_white_space_around() {
        for (text, code) in [
            ("0", 0),
            (" 0 ", 0),
            ("00", 0),
            ("016", 16),
            ("0000000014", 14),
            ("\u{a0}14\u{3000}", 14),
            ("\t ok \n", 0),
            ("\u{85}Data_Loss", 15),
        ] {
            assert_eq!(GrpcCode::parse(text), Ok(GrpcCode(code)), "{text:?}");
        }
        for bad in [
            "+0",
            "-0",
            "+14",
            "1 4",
            "0x1",
            "1e1",
            "14.0",
            "017",
            "100",
            "\u{feff}14",
            "O K",
        ] {
            assert!(GrpcCode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
