//! Read-once access to request attributes. Attribute reads cross the Wasm boundary and are a
//! measured hot spot in Istio, so each is fetched at most once per request and only if a rule
//! needs it.

/// What a filter needs from the host to read a request.
pub trait AttributeSource {
    /// A request header's value as bytes (never assumed UTF-8); the first value if repeated.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// An Envoy attribute, e.g. `["xds", "cluster_name"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Method,
    /// `:path` including the query string.
    Path,
    Authority,
    /// Envoy's `xds.cluster_name`: the route's target cluster.
    Cluster,
    /// Envoy's `xds.route_name`.
    Route,
}

type Slot = Option<Option<Vec<u8>>>;

/// A request's attributes, each fetched from the host the first time it is asked for.
pub struct RequestAttributes<'s, S: AttributeSource + ?Sized> {
    source: &'s S,
    method: Slot,
    path: Slot,
    authority: Slot,
    cluster: Slot,
    route: Slot,
}

impl<'s, S: AttributeSource + ?Sized> RequestAttributes<'s, S> {
    pub fn new(source: &'s S) -> Self {
        RequestAttributes {
            source,
            method: None,
            path: None,
            authority: None,
            cluster: None,
            route: None,
        }
    }

    pub fn get(&mut self, attribute: Attribute) -> Option<&[u8]> {
        let source = self.source;
        let slot = match attribute {
            Attribute::Method => &mut self.method,
            Attribute::Path => &mut self.path,
            Attribute::Authority => &mut self.authority,
            Attribute::Cluster => &mut self.cluster,
            Attribute::Route => &mut self.route,
        };
        slot.get_or_insert_with(|| match attribute {
            Attribute::Method => source.request_header(":method"),
            Attribute::Path => source.request_header(":path"),
            Attribute::Authority => source.request_header(":authority"),
            Attribute::Cluster => source.property(&["xds", "cluster_name"]),
            Attribute::Route => source.property(&["xds", "route_name"]),
        })
        .as_deref()
    }

    /// An attribute only if it was already read: `None` when it was not, `Some(None)` when it
    /// was and the request has none. Costs no host call.
    pub fn known(&self, attribute: Attribute) -> Option<Option<&[u8]>> {
        let slot = match attribute {
            Attribute::Method => &self.method,
            Attribute::Path => &self.path,
            Attribute::Authority => &self.authority,
            Attribute::Cluster => &self.cluster,
            Attribute::Route => &self.route,
        };
        slot.as_ref().map(Option::as_deref)
    }

    /// False when the request is known not to be a gRPC call without reading anything more:
    /// gRPC calls are POSTs, and the method was read already (by a matcher) and is another.
    pub fn may_be_grpc(&self) -> bool {
        matches!(self.known(Attribute::Method), None | Some(Some(b"POST")))
    }

    /// `:path` without the query string or fragment.
    pub fn path_only(&mut self) -> Option<&[u8]> {
        self.get(Attribute::Path).map(strip_query)
    }

    /// Any other request header; not cached (callers read each such header once).
    pub fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.source.request_header(name)
    }
}

/// The path part of a request target: everything before `?` or `#`.
pub fn strip_query(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeRequest;
    use crate::testing::test;

    #[test]
    fn reads_each_attribute_once() {
        let req = FakeRequest::new("GET", "/a?b=c", "example.com")
            .with_property("xds.cluster_name", "backend");
        let mut attrs = RequestAttributes::new(&req);
        assert_eq!(attrs.path_only(), Some(&b"/a"[..]));
        assert_eq!(attrs.get(Attribute::Path), Some(&b"/a?b=c"[..]));
        assert_eq!(attrs.get(Attribute::Cluster), Some(&b"backend"[..]));
        assert_eq!(attrs.get(Attribute::Cluster), Some(&b"backend"[..]));
        assert_eq!(attrs.get(Attribute::Route), None);
        assert_eq!(attrs.get(Attribute::Route), None);
        assert_eq!(
            *req.reads.borrow(),
            vec![":path", "xds.cluster_name", "xds.route_name"]
        );
        assert_eq!(attrs.known(Attribute::Route), Some(None));
        assert_eq!(attrs.known(Attribute::Method), None, "never read");
        assert_eq!(req.reads.borrow().len(), 3, "known() reads nothing");
        assert!(attrs.may_be_grpc(), "the method is not known");
        attrs.get(Attribute::Method);
        assert!(!attrs.may_be_grpc(), "a GET");
        let post = FakeRequest::new("POST", "/a", "example.com");
        let mut attrs = RequestAttributes::new(&post);
        attrs.get(Attribute::Method);
        assert!(attrs.may_be_grpc());
    }

    #[test]
    fn strips_query_and_fragment() {
        assert_eq!(strip_query(b"/a/b?x=1"), b"/a/b");
        assert_eq!(strip_query(b"/a#frag"), b"/a");
        assert_eq!(strip_query(b"?"), b"");
        assert_eq!(strip_query(b""), b"");
    }
}
