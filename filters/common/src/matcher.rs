//! The request-matching vocabulary shared by every filter: `path_prefix`, `path_exact`,
//! `methods`, `authority`, `cluster` and `route`. All given conditions must hold; an empty
//! match takes every request.

use crate::config::{ConfigError, FieldPath};
use crate::request::{Attribute, AttributeSource, RequestAttributes};

/// Which requests a rule takes: every condition given must hold; an empty match takes every
/// request.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "match", transform = crate::schema::never_together::<PathKeys>)
)]
pub struct MatchConfig {
    /// The path, query excluded, starts with this (not with path_exact).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^/[^?#]*$")))]
    pub path_prefix: Option<String>,
    /// The path, query excluded, is exactly this (not with path_prefix).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^/[^?#]*$")))]
    pub path_exact: Option<String>,
    /// The method is one of these, e.g. ["GET", "HEAD"] (upper case, as sent on the wire).
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(regex(pattern = r"^[A-Z-]+$")))
    )]
    pub methods: Option<Vec<String>>,
    /// :authority, case-insensitive; without a port the request's port is ignored;
    /// *.example.com matches subdomains.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^(\*\.)?[^*/\t\n\f\r ]+$"))
    )]
    pub authority: Option<String>,
    /// Envoy's xds.cluster_name equals this.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub cluster: Option<String>,
    /// Envoy's xds.route_name equals this.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub route: Option<String>,
}

/// `path_prefix` and `path_exact` exclude each other.
#[cfg(feature = "schema")]
pub struct PathKeys;

#[cfg(feature = "schema")]
impl crate::schema::Exclusive for PathKeys {
    const KEYS: &'static [&'static str] = &["path_prefix", "path_exact"];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRule {
    Any,
    Prefix(Vec<u8>),
    Exact(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthorityRule {
    Exact { host: Vec<u8>, has_port: bool },
    Subdomain(Vec<u8>), // stored as ".example.com"
}

/// A checked [`MatchConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMatcher {
    path: PathRule,
    methods: Vec<Vec<u8>>,
    authority: Option<AuthorityRule>,
    cluster: Option<Vec<u8>>,
    route: Option<Vec<u8>>,
}

impl RequestMatcher {
    pub fn check(path: &FieldPath, cfg: &MatchConfig) -> Result<Self, ConfigError> {
        let path_rule = match (&cfg.path_prefix, &cfg.path_exact) {
            (Some(_), Some(_)) => {
                return Err(path
                    .key("path_exact")
                    .error("use either path_prefix or path_exact, not both"))
            }
            (Some(p), None) => PathRule::Prefix(check_path(&path.key("path_prefix"), p)?),
            (None, Some(p)) => PathRule::Exact(check_path(&path.key("path_exact"), p)?),
            (None, None) => PathRule::Any,
        };
        let methods = match &cfg.methods {
            Some(list) => check_methods(&path.key("methods"), list)?,
            None => Vec::new(),
        };
        let authority = match &cfg.authority {
            None => None,
            Some(a) => Some(check_authority(&path.key("authority"), a)?),
        };
        let cluster = non_empty(&path.key("cluster"), &cfg.cluster)?;
        let route = non_empty(&path.key("route"), &cfg.route)?;
        Ok(RequestMatcher {
            path: path_rule,
            methods,
            authority,
            cluster,
            route,
        })
    }

    /// True when the rule matches every request, so no attribute needs to be read.
    pub fn is_catch_all(&self) -> bool {
        self.path == PathRule::Any
            && self.methods.is_empty()
            && self.authority.is_none()
            && self.cluster.is_none()
            && self.route.is_none()
    }

    /// Tests the request, reading the cheapest attributes (headers) before properties and
    /// stopping at the first condition that fails.
    pub fn matches<S: AttributeSource + ?Sized>(&self, req: &mut RequestAttributes<'_, S>) -> bool {
        match &self.path {
            PathRule::Any => {}
            PathRule::Prefix(prefix) => {
                if !req.path_only().is_some_and(|p| p.starts_with(prefix)) {
                    return false;
                }
            }
            PathRule::Exact(exact) => {
                if req.path_only() != Some(exact.as_slice()) {
                    return false;
                }
            }
        }
        if !self.methods.is_empty() {
            let Some(method) = req.get(Attribute::Method) else {
                return false;
            };
            if !self.methods.iter().any(|m| m.as_slice() == method) {
                return false;
            }
        }
        if let Some(rule) = &self.authority {
            if !req
                .get(Attribute::Authority)
                .is_some_and(|a| authority_matches(rule, a))
            {
                return false;
            }
        }
        if let Some(route) = &self.route {
            if req.get(Attribute::Route) != Some(route.as_slice()) {
                return false;
            }
        }
        if let Some(cluster) = &self.cluster {
            if req.get(Attribute::Cluster) != Some(cluster.as_slice()) {
                return false;
            }
        }
        true
    }
}

/// A non-empty list of upper-case HTTP methods (`GET`, `PURGE`, …), as bytes to compare with
/// the `:method` attribute.
pub fn check_methods(field: &FieldPath, list: &[String]) -> Result<Vec<Vec<u8>>, ConfigError> {
    if list.is_empty() {
        return Err(field.error("must list at least one method, or be omitted"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
                Err(field
                    .index(i)
                    .error(format!("\"{m}\" is not an upper-case HTTP method")))
            } else {
                Ok(m.as_bytes().to_vec())
            }
        })
        .collect()
}

fn check_path(field: &FieldPath, p: &str) -> Result<Vec<u8>, ConfigError> {
    if !p.starts_with('/') {
        return Err(field.error(format!("\"{p}\" must start with '/'")));
    }
    if p.contains('?') || p.contains('#') {
        return Err(field.error("paths are matched without the query string; remove '?' and '#'"));
    }
    Ok(p.as_bytes().to_vec())
}

fn non_empty(field: &FieldPath, v: &Option<String>) -> Result<Option<Vec<u8>>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Err(field.error("must not be empty; omit it to match any")),
        Some(s) => Ok(Some(s.as_bytes().to_vec())),
    }
}

fn check_authority(field: &FieldPath, a: &str) -> Result<AuthorityRule, ConfigError> {
    let lower = a.to_ascii_lowercase();
    if lower.is_empty() || lower.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
        return Err(field.error(format!("\"{a}\" is not a host or host:port")));
    }
    if let Some(rest) = lower.strip_prefix("*.") {
        if rest.is_empty() || rest.contains('*') {
            return Err(field.error(format!(
                "\"{a}\": a wildcard must look like \"*.example.com\""
            )));
        }
        return Ok(AuthorityRule::Subdomain(format!(".{rest}").into_bytes()));
    }
    if lower.contains('*') {
        return Err(field.error(format!(
            "\"{a}\": only a leading \"*.\" wildcard is supported"
        )));
    }
    let has_port = split_port(lower.as_bytes()).1;
    Ok(AuthorityRule::Exact {
        host: lower.into_bytes(),
        has_port,
    })
}

/// Splits `host[:port]` (IPv6 literals in brackets keep their colons).
fn split_port(authority: &[u8]) -> (&[u8], bool) {
    if let Some(colon) = authority.iter().rposition(|b| *b == b':') {
        let after = authority.get(colon + 1..).unwrap_or_default();
        let closes_bracket = authority.iter().rposition(|b| *b == b']');
        let port_like = !after.is_empty() && after.iter().all(u8::is_ascii_digit);
        if port_like && closes_bracket.is_none_or(|b| b < colon) {
            return (authority.get(..colon).unwrap_or(authority), true);
        }
    }
    (authority, false)
}

fn authority_matches(rule: &AuthorityRule, authority: &[u8]) -> bool {
    match rule {
        AuthorityRule::Exact { host, has_port } => {
            let candidate = if *has_port {
                authority
            } else {
                split_port(authority).0
            };
            candidate.eq_ignore_ascii_case(host)
        }
        AuthorityRule::Subdomain(suffix) => {
            let host = split_port(authority).0;
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeRequest;
    use crate::testing::test;

    fn matcher(json: &str) -> Result<RequestMatcher, ConfigError> {
        #[derive(serde::Deserialize)]
        struct Rule {
            r#match: MatchConfig,
        }
        let rule: Rule = crate::config::parse(format!(r#"{{"match":{json}}}"#).as_bytes())?;
        RequestMatcher::check(&FieldPath::root("match"), &rule.r#match)
    }

    fn hits(json: &str, req: &FakeRequest) -> bool {
        let m = matcher(json).expect("valid match config");
        m.matches(&mut RequestAttributes::new(req))
    }

    #[test]
    fn empty_match_takes_everything_without_reading() {
        let req = FakeRequest::new("GET", "/x", "a");
        let m = matcher("{}");
        assert!(m.as_ref().is_ok_and(RequestMatcher::is_catch_all));
        assert!(hits("{}", &req));
        assert!(req.reads.borrow().is_empty());
    }

    #[test]
    fn prefix_and_exact_ignore_the_query() {
        let req = FakeRequest::new("GET", "/recommendations/top?n=5", "a");
        assert!(hits(r#"{"path_prefix":"/recommendations"}"#, &req));
        assert!(!hits(r#"{"path_prefix":"/recs"}"#, &req));
        assert!(hits(r#"{"path_exact":"/recommendations/top"}"#, &req));
        assert!(!hits(r#"{"path_exact":"/recommendations"}"#, &req));
    }

    #[test]
    fn methods_are_any_of() {
        let req = FakeRequest::new("POST", "/", "a");
        assert!(hits(r#"{"methods":["GET","POST"]}"#, &req));
        assert!(!hits(r#"{"methods":["GET"]}"#, &req));
    }

    #[test]
    fn authority_rules() {
        let req = FakeRequest::new("GET", "/", "API.example.com:8080");
        assert!(hits(r#"{"authority":"api.example.com"}"#, &req));
        assert!(hits(r#"{"authority":"api.example.com:8080"}"#, &req));
        assert!(!hits(r#"{"authority":"api.example.com:9090"}"#, &req));
        assert!(hits(r#"{"authority":"*.example.com"}"#, &req));
        assert!(!hits(r#"{"authority":"*.api.example.com"}"#, &req));
        let bare = FakeRequest::new("GET", "/", "example.com");
        assert!(!hits(r#"{"authority":"*.example.com"}"#, &bare));
        let v6 = FakeRequest::new("GET", "/", "[::1]:10000");
        assert!(hits(r#"{"authority":"[::1]"}"#, &v6));
        let v6_bare = FakeRequest::new("GET", "/", "[::1]");
        assert!(hits(r#"{"authority":"[::1]"}"#, &v6_bare));
    }

    #[test]
    fn cluster_and_route_read_properties_last() {
        let req = FakeRequest::new("GET", "/a", "h")
            .with_property("xds.cluster_name", "backend")
            .with_property("xds.route_name", "r1");
        assert!(hits(
            r#"{"path_prefix":"/a","cluster":"backend","route":"r1"}"#,
            &req
        ));
        assert_eq!(
            *req.reads.borrow(),
            vec![":path", "xds.route_name", "xds.cluster_name"]
        );
        let other = FakeRequest::new("GET", "/b", "h");
        assert!(!hits(r#"{"path_prefix":"/a","cluster":"backend"}"#, &other));
        assert_eq!(
            *other.reads.borrow(),
            vec![":path"],
            "stops at the first miss"
        );
        assert!(
            !hits(r#"{"cluster":"backend"}"#, &other),
            "missing property never matches"
        );
    }

    #[test]
    fn missing_headers_never_match() {
        let req = FakeRequest::default();
        assert!(!hits(r#"{"path_prefix":"/"}"#, &req));
        assert!(!hits(r#"{"methods":["GET"]}"#, &req));
        assert!(!hits(r#"{"authority":"a"}"#, &req));
    }

    #[test]
    fn invalid_matches_name_the_field() {
        let cases = [
            (r#"{"path_prefix":"api"}"#, "match.path_prefix"),
            (
                r#"{"path_prefix":"/a","path_exact":"/a"}"#,
                "match.path_exact",
            ),
            (r#"{"path_exact":"/a?x"}"#, "match.path_exact"),
            (r#"{"methods":[]}"#, "match.methods"),
            (r#"{"methods":["GET","get"]}"#, "match.methods[1]"),
            (r#"{"authority":"a*b"}"#, "match.authority"),
            (r#"{"authority":"*."}"#, "match.authority"),
            (r#"{"cluster":""}"#, "match.cluster"),
            (r#"{"route":""}"#, "match.route"),
        ];
        for (json, field) in cases {
            let err = matcher(json).err().map(|e| e.field);
            assert_eq!(err.as_deref(), Some(field), "{json}");
        }
        let err = matcher(r#"{"prefix":"/"}"#).unwrap_err();
        assert_eq!(err.field, "match.prefix");
        assert!(
            err.reason
                .contains("`path_prefix`, `path_exact`, `methods`"),
            "{}",
            err.reason
        );
        assert_eq!(
            matcher(r#"{"methods":"GET"}"#).unwrap_err().field,
            "match.methods"
        );
    }
}
