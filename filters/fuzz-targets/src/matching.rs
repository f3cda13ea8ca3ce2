//! `RequestMatcher` from a fuzzed `match` config against fuzzed request attributes, compared
//! with a plain model of the documented rules (README "Request matching", matcher.rs docs):
//! all given conditions hold; `path_prefix`/`path_exact` on the path without `?…`/`#…`;
//! `methods` exactly; `authority` case-insensitively, ignoring the request's port when the
//! pattern has none, `*.example.com` for strict subdomains; `cluster`/`route` exactly.
//! Also: a catch-all reads nothing, and no attribute is read twice.

use crate::bytes::Bytes;
use breakwater_common::config::FieldPath;
use breakwater_common::host::fake::FakeRequest;
use breakwater_common::matcher::{MatchConfig, RequestMatcher};
use breakwater_common::request::RequestAttributes;

const SEP: u8 = 0;

pub fn request_matching(data: &[u8]) {
    let mut input = Bytes::new(data);
    let present = input.byte();
    let sent = input.byte();
    let text = |on: bool, input: &mut Bytes<'_>| {
        let field = input.field(SEP);
        on.then(|| String::from_utf8_lossy(field).into_owned())
    };
    let path = text(present & 3 != 0, &mut input);
    let methods = text(present & 4 != 0, &mut input);
    let authority = text(present & 8 != 0, &mut input);
    let cluster = text(present & 16 != 0, &mut input);
    let route = text(present & 32 != 0, &mut input);
    let config = MatchConfig {
        path_prefix: path.clone().filter(|_| present & 1 != 0),
        path_exact: path.filter(|_| present & 2 != 0),
        methods: methods.map(|m| {
            if m.is_empty() {
                Vec::new()
            } else {
                m.split(',').map(str::to_string).collect()
            }
        }),
        authority,
        cluster,
        route,
    };
    let mut request = FakeRequest::default();
    let names = [":method", ":path", ":authority"];
    for (i, name) in names.iter().enumerate() {
        let value = input.field(SEP);
        if sent & (1 << i) != 0 {
            request.headers.insert((*name).to_string(), value.to_vec());
        }
    }
    for (i, name) in ["xds.cluster_name", "xds.route_name"].iter().enumerate() {
        let value = input.field(SEP);
        if sent & (8 << i) != 0 {
            request
                .properties
                .insert((*name).to_string(), value.to_vec());
        }
    }

    let Ok(matcher) = RequestMatcher::check(&FieldPath::root("match"), &config) else {
        return;
    };
    let got = matcher.matches(&mut RequestAttributes::new(&request));
    let reads = request.reads.borrow().clone();
    let mut unique = reads.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        reads.len(),
        "an attribute was read twice: {reads:?}"
    );
    if matcher.is_catch_all() {
        assert!(got, "a catch-all did not match");
        assert!(reads.is_empty(), "a catch-all read {reads:?}");
    }
    let want = model(&config, &request);
    assert_eq!(
        got, want,
        "matcher {config:?} on {:?}/{:?}",
        request.headers, request.properties
    );
    // Asking again gives the same answer.
    assert_eq!(got, matcher.matches(&mut RequestAttributes::new(&request)));
}

fn model(config: &MatchConfig, request: &FakeRequest) -> bool {
    let header = |name: &str| request.headers.get(name).map(Vec::as_slice);
    let property = |name: &str| request.properties.get(name).map(Vec::as_slice);
    let path = header(":path").map(|p| {
        let end = p
            .iter()
            .position(|b| *b == b'?' || *b == b'#')
            .unwrap_or(p.len());
        &p[..end]
    });
    if let Some(prefix) = &config.path_prefix {
        if !path.is_some_and(|p| p.starts_with(prefix.as_bytes())) {
            return false;
        }
    }
    if let Some(exact) = &config.path_exact {
        if path != Some(exact.as_bytes()) {
            return false;
        }
    }
    if let Some(methods) = &config.methods {
        let method = header(":method");
        if !methods.iter().any(|m| Some(m.as_bytes()) == method) {
            return false;
        }
    }
    if let Some(pattern) = &config.authority {
        let Some(authority) = header(":authority") else {
            return false;
        };
        let authority = authority.to_ascii_lowercase();
        let pattern = pattern.to_ascii_lowercase();
        let ok = if let Some(domain) = pattern.strip_prefix("*.") {
            let host = without_port(&authority);
            host.len() > domain.len() + 1 && host.ends_with(format!(".{domain}").as_bytes())
        } else if without_port(pattern.as_bytes()).len() < pattern.len() {
            authority == pattern.as_bytes()
        } else {
            without_port(&authority) == pattern.as_bytes()
        };
        if !ok {
            return false;
        }
    }
    if let Some(route) = &config.route {
        if property("xds.route_name") != Some(route.as_bytes()) {
            return false;
        }
    }
    if let Some(cluster) = &config.cluster {
        if property("xds.cluster_name") != Some(cluster.as_bytes()) {
            return false;
        }
    }
    true
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; anything else unchanged.
fn without_port(authority: &[u8]) -> &[u8] {
    let Some(colon) = authority.iter().rposition(|b| *b == b':') else {
        return authority;
    };
    let port = &authority[colon + 1..];
    let in_brackets = authority[colon..].contains(&b']');
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) || in_brackets {
        return authority;
    }
    &authority[..colon]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authority: &str) -> FakeRequest {
        FakeRequest::new("GET", "/shop/cart?x=1", authority)
    }

    fn authority(pattern: &str) -> MatchConfig {
        MatchConfig {
            authority: Some(pattern.to_string()),
            ..MatchConfig::default()
        }
    }

    #[test]
    fn the_model_follows_the_documented_rules() {
        assert!(model(
            &authority("Shop.example"),
            &request("shop.EXAMPLE:8080")
        ));
        assert!(!model(
            &authority("shop.example:80"),
            &request("shop.example:8080")
        ));
        assert!(model(
            &authority("*.example.com"),
            &request("a.example.com:1")
        ));
        assert!(!model(&authority("*.example.com"), &request("example.com")));
        assert!(model(&authority("[::1]"), &request("[::1]:443")));
        let prefix = MatchConfig {
            path_prefix: Some("/shop/cart".into()),
            methods: Some(vec!["GET".into()]),
            ..MatchConfig::default()
        };
        assert!(model(&prefix, &request("x")));
        let exact = MatchConfig {
            path_exact: Some("/shop/cart?x=1".into()),
            ..MatchConfig::default()
        };
        assert!(!model(&exact, &request("x")));
    }

    #[test]
    fn fuzz_input_layout_reaches_the_matcher() {
        // path_prefix "/a", methods "GET,PUT", authority "*.b.c"; request PUT /a/x b.b.c:9.
        let data = b"\x0d\x07/a\0GET,PUT\0*.b.c\0PUT\0/a/x?q\0b.b.c:9\0\0";
        request_matching(data);
        let config = MatchConfig {
            path_prefix: Some("/a".into()),
            methods: Some(vec!["GET".into(), "PUT".into()]),
            authority: Some("*.b.c".into()),
            ..MatchConfig::default()
        };
        let req = FakeRequest::new("PUT", "/a/x?q", "b.b.c:9");
        assert!(model(&config, &req));
        let matcher = RequestMatcher::check(&FieldPath::root("match"), &config).unwrap();
        assert!(matcher.matches(&mut RequestAttributes::new(&req)));
    }
}
