//! The filter's logic behind the `Host` trait: correlation at request time, body capture, and
//! at the end of the stream the sampling decision and the redacted record. The adapter hands
//! in what Envoy reports ([`Exchange`]) and writes out what this returns.

use crate::config::{Body, EnvoyFields, LogConfig, MAX_VALUES_PER_HEADER};
use crate::correlation::{self, parse_traceparent, Decision};
use crate::detect::{Detector, KINDS};
use crate::fields::{self, FieldRules};
use crate::record::{rfc3339, Record, Value};
use crate::redact::{split_authority, strip_partial_tail, Counts, Redactor, BODY_LOOKAHEAD};
use crate::sampling::{self, GrpcOutcome, KeepInputs, Kept, Outcome};
use breakwater_common::filter_state::{BreakerDecision, FallbackServed};
use breakwater_common::flags::FlagSet;
use breakwater_common::grpc;
use breakwater_common::host::{bump, Host, MetricId, MetricKind};
use std::borrow::Cow;

/// Workload metadata Istio puts in the node metadata: (record field, property path).
pub const WORKLOAD_FIELDS: [(&str, &[&str]); 6] = [
    (
        "k8s.namespace.name",
        &["xds", "node", "metadata", "NAMESPACE"],
    ),
    ("k8s.pod.name", &["xds", "node", "metadata", "NAME"]),
    (
        "k8s.workload.name",
        &["xds", "node", "metadata", "WORKLOAD_NAME"],
    ),
    (
        "k8s.cluster.name",
        &["xds", "node", "metadata", "CLUSTER_ID"],
    ),
    (
        "k8s.pod.label.app",
        &["xds", "node", "metadata", "LABELS", "app"],
    ),
    (
        "k8s.pod.label.version",
        &["xds", "node", "metadata", "LABELS", "version"],
    ),
];

/// The longest workload value, correlation or request id logged.
const MAX_SHORT_VALUE: usize = 256;

/// The circuit breaker's filter state for this request, when it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerView {
    pub name: Vec<u8>,
    pub decision: Vec<u8>,
    pub state: Vec<u8>,
}

/// The fallback filter's filter state for this request, when a rule triggered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FallbackView {
    pub served: Vec<u8>,
    pub rule: Vec<u8>,
    pub trigger: Vec<u8>,
}

/// The first bytes of a body, with enough look-ahead to see a value crossing the limit whole
/// (or, for a JSON body under field rules, up to `parse_max_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyCapture {
    limit: usize,
    bytes: Vec<u8>,
    /// Some of the body did not fit.
    overflowed: bool,
    /// The body ended and all of it is in `bytes`.
    complete: bool,
    /// A JSON media type: field rules apply.
    json: bool,
}

impl BodyCapture {
    pub fn new(excerpt_bytes: usize) -> Self {
        BodyCapture {
            limit: excerpt_bytes + BODY_LOOKAHEAD,
            ..BodyCapture::default()
        }
    }

    /// A capture of a JSON body that field rules will read whole.
    pub fn for_field_rules(rules: &FieldRules) -> Self {
        BodyCapture {
            limit: rules.parse_max_bytes,
            json: true,
            ..BodyCapture::default()
        }
    }

    /// How many bytes of a chunk of `chunk_size` to read (0 once full).
    pub fn wanted(&self, chunk_size: usize) -> usize {
        chunk_size.min(self.limit.saturating_sub(self.bytes.len()))
    }

    /// Adds what was read of a chunk of `chunk_size` bytes.
    pub fn add(&mut self, read: &[u8], chunk_size: usize, end_of_stream: bool) {
        let take = read.len().min(self.limit.saturating_sub(self.bytes.len()));
        self.bytes
            .extend_from_slice(read.get(..take).unwrap_or_default());
        if chunk_size > take {
            self.overflowed = true;
        }
        self.complete = end_of_stream && !self.overflowed;
    }
}

/// What Envoy reports about a finished exchange (read once each in `on_log`).
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub start_unix_nanos: Option<u64>,
    /// All request headers (names lower case, as Envoy keeps them).
    pub request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// All response headers, read only when some are logged.
    pub response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub protocol: Option<Vec<u8>>,
    pub status: Option<u32>,
    /// `response.grpc_status`, read only for gRPC calls ([`is_grpc_call`]): the final
    /// response's `grpc-status` (trailers, else headers), else one Envoy maps from the HTTP
    /// status; `None` when there was no response at all; `-1` for a value Envoy cannot read.
    pub grpc_status: Option<i64>,
    pub response_flags: u64,
    pub code_details: Option<Vec<u8>>,
    pub duration_nanos: Option<u64>,
    pub request_body_bytes: Option<u64>,
    pub response_body_bytes: Option<u64>,
    pub upstream_address: Option<Vec<u8>>,
    pub cluster: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub source_address: Option<Vec<u8>>,
    pub breaker: Option<BreakerView>,
    pub fallback: Option<FallbackView>,
    pub request_body: Option<BodyCapture>,
    pub response_body: Option<BodyCapture>,
}

fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.as_slice() == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// What the sampling decision looks at, from what Envoy reported.
fn outcome(exchange: &Exchange, grpc: bool) -> Outcome {
    Outcome {
        status: exchange.status,
        grpc: grpc.then_some(GrpcOutcome {
            status: exchange.grpc_status,
        }),
        response_flags: exchange.response_flags,
        duration_ms: exchange.duration_nanos.map_or(0, |ns| ns / 1_000_000),
        fallback_served: exchange
            .fallback
            .as_ref()
            .and_then(|f| FallbackServed::from_bytes(&f.served))
            .is_some_and(|served| served != FallbackServed::None),
        breaker_rejected: exchange
            .breaker
            .as_ref()
            .is_some_and(|b| answered_by_breaker(&b.decision)),
    }
}

/// The breaker's decision says it answered the request (rejected, or released it).
fn answered_by_breaker(decision: &[u8]) -> bool {
    BreakerDecision::from_bytes(decision).is_some_and(BreakerDecision::answered_by_breaker)
}

/// Whether the request is a gRPC call (its `content-type`, as `breakwater_common::grpc`
/// decides it): the adapter reads `response.grpc_status` only then.
pub fn is_grpc_call(request_headers: &[(Vec<u8>, Vec<u8>)]) -> bool {
    header(request_headers, "content-type").is_some_and(grpc::is_grpc)
}

struct Stats {
    records: Option<MetricId>,
    sampled_out: Option<MetricId>,
    /// By kind, in the order of `KINDS` (`redactions.email`, …, `redactions.query_param`).
    redactions: [Option<MetricId>; KINDS.len()],
    /// By user-defined pattern, in configured order (`redactions.<name>`).
    pattern_redactions: Vec<Option<MetricId>>,
    generated: Option<MetricId>,
    replaced: Option<MetricId>,
}

impl Stats {
    fn define<H: Host + ?Sized>(host: &H, config: &LogConfig) -> Self {
        let counter =
            |name: &str| host.define_metric(MetricKind::Counter, &format!("breakwater.log.{name}"));
        Stats {
            records: counter("records"),
            sampled_out: counter("sampled_out"),
            redactions: KINDS.map(|d| counter(&format!("redactions.{}", d.name()))),
            pattern_redactions: config
                .redact
                .patterns
                .iter()
                .map(|p| counter(&format!("redactions.{}", p.name)))
                .collect(),
            generated: counter("correlation.generated"),
            replaced: counter("correlation.replaced"),
        }
    }
}

pub struct Engine {
    config: LogConfig,
    redactor: Redactor,
    stats: Stats,
    /// (field, value) of the workload metadata, read once per configuration.
    workload: Vec<(&'static str, String)>,
}

impl Engine {
    pub fn new<H: Host + ?Sized>(config: LogConfig, host: &H) -> Self {
        Engine {
            redactor: Redactor::new(&config.redact),
            stats: Stats::define(host, &config),
            config,
            workload: Vec::new(),
        }
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Reads Istio's workload metadata through `read` (a property lookup). Absent values are
    /// left out, never invented.
    pub fn load_workload(&mut self, read: impl Fn(&[&str]) -> Option<Vec<u8>>) {
        self.workload.clear();
        if !self.config.workload_metadata {
            return;
        }
        for (field, path) in WORKLOAD_FIELDS {
            if let Some(value) = read(path).filter(|v| !v.is_empty()) {
                let mut counts = Counts::default();
                self.workload.push((
                    field,
                    self.redactor.text(&value, MAX_SHORT_VALUE, &mut counts),
                ));
            }
        }
    }

    /// Request time: decides the correlation id (`fresh` makes a new one) and counts it.
    pub fn on_request<H: Host + ?Sized>(
        &self,
        host: &H,
        incoming: Option<&[u8]>,
        fresh: impl FnOnce() -> String,
    ) -> Decision {
        // An id that carries personal data or a secret is as invalid as one with a CR/LF.
        let safe = |id: &[u8]| !self.redactor.finds_anything(id);
        let decision = correlation::decide(&self.config.correlation, incoming, safe, fresh);
        match decision.action {
            correlation::Action::Generated => bump(host, self.stats.generated),
            correlation::Action::Replaced => bump(host, self.stats.replaced),
            _ => {}
        }
        decision
    }

    /// A body capture for a request or response with this content type and encoding, if body
    /// excerpts are configured and the type is listed. Compressed bodies are not captured.
    pub fn body_capture(
        &self,
        content_type: Option<&[u8]>,
        content_encoding: Option<&[u8]>,
    ) -> Option<BodyCapture> {
        let body = self.config.body.as_ref()?;
        if content_encoding.is_some_and(|e| !e.eq_ignore_ascii_case(b"identity")) {
            return None;
        }
        let media_type = content_type?.split(|b| *b == b';').next()?.trim_ascii();
        if !body
            .content_types
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(media_type))
        {
            return None;
        }
        Some(match &body.fields {
            Some(rules) if is_json(media_type) => BodyCapture::for_field_rules(rules),
            _ => BodyCapture::new(body.max_bytes),
        })
    }

    /// Whether sampling needs the request's id (the rate is below 1): then the adapter takes
    /// the rate's half of the decision when the request arrives ([`Engine::in_rate`]).
    pub fn samples(&self) -> bool {
        self.config.sampling.rate < 1.0
    }

    /// Request time: whether the request is inside the sampled fraction. `sampling_key` is its
    /// `x-request-id` as it will be at the end of the stream, else its correlation id, as in
    /// [`Engine::finish`].
    pub fn in_rate(&self, sampling_key: Option<&[u8]>) -> bool {
        sampling::in_rate(&self.config.sampling, sampling_key)
    }

    /// What a request outside the rate must be read for at its end: the inputs of the
    /// `always_keep` classes.
    pub fn keep_inputs(&self) -> KeepInputs {
        sampling::keep_inputs(&self.config.sampling.always_keep)
    }

    /// End of stream, for a request outside the rate: the `always_keep` class that keeps it,
    /// judged on `partial` (which holds the [`Engine::keep_inputs`] only); counted as sampled
    /// out when none does. A kept request then goes through [`Engine::finish_given`] with it.
    pub fn kept_outside_rate<H: Host + ?Sized>(
        &self,
        host: &H,
        partial: &Exchange,
        grpc: bool,
    ) -> Option<Kept> {
        let outcome = outcome(partial, grpc);
        let kept = sampling::decide_given(&self.config.sampling, false, &outcome);
        if kept.is_none() {
            bump(host, self.stats.sampled_out);
        }
        kept
    }

    /// Whether the record holds the fields Envoy's access-log operators can print: when not
    /// (`envoy_fields: "access_log"`), the adapter does not read them.
    pub fn records_envoy_fields(&self) -> bool {
        self.config.envoy_fields == EnvoyFields::Record
    }

    /// The record as the filter-state value the access log prints: a JSON object, or under
    /// `envoy_fields: "access_log"` its members alone, for the format's object.
    pub fn record_text(&self, record: &Record) -> String {
        match self.config.envoy_fields {
            EnvoyFields::Record => record.to_json(),
            EnvoyFields::AccessLog => record.to_json_members(),
        }
    }

    /// End of stream: the record, or `None` when sampling drops the request.
    pub fn finish<H: Host + ?Sized>(
        &self,
        host: &H,
        exchange: &Exchange,
        correlation: &Decision,
    ) -> Option<Record> {
        let grpc = is_grpc_call(&exchange.request_headers);
        self.finish_given(host, exchange, correlation, None, grpc)
    }

    /// [`Engine::finish`] with what the adapter already knows: the sampling decision it took
    /// (`Kept::Sampled` for a request inside the rate at request time, or the class
    /// [`Engine::kept_outside_rate`] found; `None`: decided here, from the same key), and whether
    /// the request is a gRPC call ([`is_grpc_call`] of its headers, which the adapter needs
    /// first). A decision given is not taken again: under `envoy_fields: "access_log"` the
    /// exchange lacks what it was taken on.
    pub fn finish_given<H: Host + ?Sized>(
        &self,
        host: &H,
        exchange: &Exchange,
        correlation: &Decision,
        decided: Option<Kept>,
        grpc: bool,
    ) -> Option<Record> {
        let request_id = header(&exchange.request_headers, "x-request-id");
        let outcome = outcome(exchange, grpc);
        let decided = decided.or_else(|| {
            let key = request_id.or(correlation.id.as_deref().map(str::as_bytes));
            sampling::decide(&self.config.sampling, key, &outcome)
        });
        let Some(kept) = decided else {
            bump(host, self.stats.sampled_out);
            return None;
        };

        let mut counts = Counts::default();
        let record = self.build(
            exchange,
            &outcome,
            request_id,
            correlation,
            kept,
            &mut counts,
        );
        bump(host, self.stats.records);
        let by_kind = counts.by_kind.iter().zip(self.stats.redactions.iter());
        let by_pattern = counts.by_pattern.iter().zip(&self.stats.pattern_redactions);
        for (count, id) in by_kind.chain(by_pattern) {
            if let (true, Some(id)) = (*count > 0, id) {
                host.add_metric(*id, i64::from(*count));
            }
        }
        Some(record)
    }

    fn build(
        &self,
        exchange: &Exchange,
        outcome: &Outcome,
        request_id: Option<&[u8]>,
        correlation: &Decision,
        kept: Kept,
        counts: &mut Counts,
    ) -> Record {
        let redactor = &self.redactor;
        let max = redactor.max_value_bytes;
        let headers = &exchange.request_headers;
        let lossy = |bytes: &[u8], max: usize| {
            let mut text = String::new();
            crate::redact::push_lossy(&mut text, bytes);
            crate::redact::cap(&mut text, max);
            text
        };
        let mut r = Record::with_capacity(40);
        // Fields the access log's format prints itself under `envoy_fields: "access_log"`
        // (`LEFT_TO_ACCESS_LOG`) are left out even when the exchange holds them.
        let envoy = self.records_envoy_fields().then_some(exchange);

        if let Some(ns) = envoy.and_then(|e| e.start_unix_nanos) {
            r.str("timestamp", rfc3339(ns));
        }
        if let Some(id) = request_id {
            let text = redactor.text(id, MAX_SHORT_VALUE, counts);
            r.str("request.id", text);
        }
        if let Some(id) = &correlation.id {
            r.str("correlation.id", id.clone());
        }
        if let Some(tc) = header(headers, "traceparent").and_then(parse_traceparent) {
            r.str("trace_id", tc.trace_id);
            r.str("span_id", tc.span_id);
        }
        if let Some(method) = header(headers, ":method") {
            r.str("http.request.method", redactor.text(method, 32, counts));
        }
        if let Some(scheme) = header(headers, ":scheme") {
            r.str("url.scheme", lossy(scheme, 32));
        }
        if let Some(authority) = header(headers, ":authority") {
            let (host, port) = split_authority(authority);
            r.str("server.address", redactor.text(host, max, counts));
            if let Some(port) = port {
                r.push("server.port", Value::Int(u64::from(port)));
            }
        }
        // A gRPC call's service and method (when the path is `/service/method`), taken from
        // the redacted path before it is capped: a find that spans the `/` between them is
        // redacted as one (and then neither is logged), no value is redacted or counted twice,
        // and a long path does not give a cut name (a name longer than the cap is not logged).
        let mut rpc: Option<(String, String)> = None;
        if let Some(target) = header(headers, ":path") {
            let (path, query) = match target.iter().position(|b| *b == b'?') {
                Some(q) => (target.get(..q).unwrap_or_default(), target.get(q + 1..)),
                None => (target, None),
            };
            let mut logged = redactor.whole_path(path, counts);
            if outcome.grpc.is_some() && grpc::service_and_method(path).is_some() {
                rpc = grpc::service_and_method(logged.as_bytes())
                    .filter(|(service, method)| service.len() <= max && method.len() <= max)
                    .map(|(service, method)| (lossy(service, max), lossy(method, max)));
            }
            crate::redact::cap(&mut logged, max);
            r.str("url.path", logged);
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                r.str("url.query", redactor.query(query, counts));
            }
        }
        if let Some(protocol) = envoy.and_then(|e| e.protocol.as_ref()) {
            let version = protocol.strip_prefix(b"HTTP/").unwrap_or(protocol);
            r.str("network.protocol.version", lossy(version, 16));
        }
        if let Some(status) = envoy.and_then(|e| e.status) {
            r.push("http.response.status_code", Value::Int(u64::from(status)));
        }
        if let Some(call) = &outcome.grpc {
            r.str("rpc.system", "grpc".to_string());
            if let Some((service, method)) = rpc {
                r.str("rpc.service", service);
                r.str("rpc.method", method);
            }
            if let Some(code) = call.code() {
                r.push("rpc.grpc.status_code", Value::Int(u64::from(code)));
            }
        }
        if let Some(flags) = envoy.map(|e| e.response_flags).filter(|f| *f != 0) {
            r.str("envoy.response_flags", FlagSet::describe(flags));
        }
        if let Some(details) = &exchange.code_details {
            r.str(
                "envoy.response_code_details",
                lossy(details, MAX_SHORT_VALUE),
            );
        }
        if let Some(ns) = envoy.and_then(|e| e.duration_nanos) {
            r.push("duration_ms", Value::Millis(ns));
        }
        if let Some(n) = envoy.and_then(|e| e.request_body_bytes) {
            r.push("http.request.body.size", Value::Int(n));
        }
        if let Some(n) = envoy.and_then(|e| e.response_body_bytes) {
            r.push("http.response.body.size", Value::Int(n));
        }
        if let Some(upstream) = envoy.and_then(|e| e.upstream_address.as_ref()) {
            r.str("upstream.address", lossy(upstream, MAX_SHORT_VALUE));
        }
        if let Some(cluster) = envoy.and_then(|e| e.cluster.as_ref()) {
            r.str("envoy.cluster", lossy(cluster, MAX_SHORT_VALUE));
        }
        if let Some(route) = envoy
            .and_then(|e| e.route.as_ref())
            .filter(|r| !r.is_empty())
        {
            r.str("envoy.route", lossy(route, MAX_SHORT_VALUE));
        }
        if let Some(address) = exchange
            .source_address
            .as_deref()
            .and_then(Redactor::client_address)
        {
            r.str("client.address", address);
        }
        self.push_headers(
            &mut r,
            "http.request.header.",
            &self.config.request_headers,
            headers,
            counts,
        );
        self.push_headers(
            &mut r,
            "http.response.header.",
            &self.config.response_headers,
            &exchange.response_headers,
            counts,
        );
        if let Some(body) = &self.config.body {
            for (field, capture) in [
                ("http.request.body.excerpt", &exchange.request_body),
                ("http.response.body.excerpt", &exchange.response_body),
            ] {
                if let Some(capture) = capture.as_ref().filter(|c| !c.bytes.is_empty()) {
                    r.str(field, self.body_excerpt(body, capture, counts));
                }
            }
        }
        let service = &self.config.service;
        for (field, value) in [
            ("service.name", &service.name),
            ("service.version", &service.version),
            ("deployment.environment.name", &service.environment),
            ("cloud.region", &service.region),
        ] {
            if let Some(value) = value {
                r.str(field, value.clone());
            }
        }
        for (field, value) in &self.workload {
            r.str(field, value.clone());
        }
        if let Some(b) = &exchange.breaker {
            r.str("breakwater.breaker.name", lossy(&b.name, 64));
            r.str("breakwater.breaker.decision", lossy(&b.decision, 32));
            r.str("breakwater.breaker.state", lossy(&b.state, 32));
            r.push(
                "breakwater.breaker_rejected",
                Value::Bool(answered_by_breaker(&b.decision)),
            );
        }
        if let Some(f) = &exchange.fallback {
            r.str("breakwater.fallback", lossy(&f.served, 32));
            r.str("breakwater.fallback.rule", lossy(&f.rule, 64));
            r.str("breakwater.fallback.trigger", lossy(&f.trigger, 32));
        }
        let correlation_action = match correlation.action {
            correlation::Action::Kept => "kept",
            correlation::Action::Generated => "generated",
            correlation::Action::Replaced => "replaced",
            correlation::Action::Absent => "absent",
        };
        r.str("breakwater.correlation", correlation_action.to_string());
        r.str(
            "breakwater.sampling",
            match kept {
                Kept::Sampled => "sampled".to_string(),
                Kept::Class(class) => format!("kept:{class}"),
            },
        );
        r.push(
            "breakwater.redactions",
            Value::Int(u64::from(counts.total())),
        );
        r
    }

    /// A body's excerpt: its first `max_bytes`, redacted, or for a JSON body under field rules
    /// the rules' rewrite of it (`[REDACTED:body]` when it cannot be read whole).
    fn body_excerpt(&self, body: &Body, capture: &BodyCapture, counts: &mut Counts) -> String {
        let redactor = &self.redactor;
        if let (Some(rules), true) = (&body.fields, capture.json) {
            let limit = body.max_bytes + BODY_LOOKAHEAD;
            let mut scrub = Scrubber { redactor, counts };
            return match capture
                .complete
                .then(|| fields::rewrite(&capture.bytes, rules, limit, &mut scrub))
                .flatten()
            {
                Some(rewritten) => {
                    counts.add(Detector::Field, rewritten.redacted);
                    let mut text = String::with_capacity(rewritten.json.len());
                    crate::redact::push_lossy(&mut text, &rewritten.json);
                    crate::redact::cap(&mut text, body.max_bytes);
                    text
                }
                None => {
                    counts.add(Detector::Body, 1);
                    format!("[REDACTED:{}]", Detector::Body.name())
                }
            };
        }
        let bytes = if capture.complete {
            capture.bytes.as_slice()
        } else {
            strip_partial_tail(&capture.bytes)
        };
        let mut text = redactor.text(bytes, body.max_bytes, counts);
        if !capture.complete && !text.ends_with('…') {
            text.push('…');
        }
        text
    }

    /// `<prefix><name>`: every value of each listed header (up to a limit), redacted.
    fn push_headers(
        &self,
        r: &mut Record,
        prefix: &str,
        names: &[String],
        headers: &[(Vec<u8>, Vec<u8>)],
        counts: &mut Counts,
    ) {
        let max = self.redactor.max_value_bytes;
        for name in names {
            let mut values = headers
                .iter()
                .filter(|(n, _)| n.as_slice() == name.as_bytes())
                .take(MAX_VALUES_PER_HEADER)
                .map(|(_, v)| self.redactor.text(v, max, counts))
                .peekable();
            if values.peek().is_none() {
                continue;
            }
            if name == "user-agent" && prefix == "http.request.header." {
                // OpenTelemetry's own field for it; a user agent is one value.
                if let Some(first) = values.next() {
                    r.str("user_agent.original", first);
                }
                continue;
            }
            r.push(
                Cow::Owned(format!("{prefix}{name}")),
                Value::List(values.collect()),
            );
        }
    }
}

/// The redactor as JSON field rules use it: each key, string and number on its own.
pub(crate) struct Scrubber<'a> {
    pub redactor: &'a Redactor,
    pub counts: &'a mut Counts,
}

impl fields::Scrub for Scrubber<'_> {
    fn scrub(&mut self, value: &str, key: &str) -> Option<String> {
        self.redactor
            .scrub(value.as_bytes(), key.as_bytes(), self.counts)
    }

    fn mask(&mut self, value: &[u8], out: &mut Vec<u8>) {
        self.redactor.mask_field(value, out);
    }
}

/// A JSON media type (`application/json`, `application/problem+json`): field rules apply.
fn is_json(media_type: &[u8]) -> bool {
    media_type.eq_ignore_ascii_case(b"application/json")
        || media_type.len() > 5
            && media_type
                .get(media_type.len() - 5..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case(b"+json"))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
