//! The "floor" of `make bench`: an HTTP filter that makes exactly the host calls its
//! configuration lists, at the callbacks it names, and nothing else. Configured with the calls a
//! breakwater filter makes on one path, it measures what those calls cost by themselves, so
//! that a filter can be compared with the floor of the work it really does (not only with the
//! empty filter, which makes none). Built with the same SDK and release profile as the filters.
//!
//! ```json
//! {"request_headers": [{"request_header": ":path"}, {"shared_get": "k"}, "time",
//!                      {"filter_state": {"key": "breakwater.breaker.decision", "bytes": 6}}],
//!  "response_headers": [{"response_header": ":status"}],
//!  "log": [{"property": ["response", "flags"]}, {"shared_get": "k"}, {"shared_set": "k"},
//!          {"metric": "floor.calls"}]}
//! ```
//!
//! `shared_set` writes back, with its compare-and-swap token, the value the stream's last
//! `shared_get` of that key read (a read-modify-write that changes nothing but the token);
//! `shared_bytes` (default 96) is the size of each key's value, created at configuration.
//! Built only for `wasm32-wasip1`, like bench/empty-filter.

#[cfg(target_os = "wasi")]
mod filter {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
    use serde::Deserialize;
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot { calls: Rc::default() }) });
    }}

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Call {
        RequestHeader(String),
        /// Replaces a request header with a 36-byte value (a correlation id).
        SetRequestHeader(String),
        ResponseHeader(String),
        /// A whole header map, `"request"` or `"response"`.
        HeaderMap(String),
        Property(Vec<String>),
        SharedGet(String),
        SharedSet(String),
        FilterState {
            key: String,
            bytes: usize,
        },
        Time,
        /// 16 random bytes from WASI `random_get`.
        Random,
        Metric(String),
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Calls {
        #[serde(default)]
        request_headers: Vec<Call>,
        #[serde(default)]
        response_headers: Vec<Call>,
        #[serde(default)]
        log: Vec<Call>,
        #[serde(default = "default_shared_bytes")]
        shared_bytes: usize,
        /// Metric ids by name, defined at configuration.
        #[serde(skip)]
        metrics: Vec<(String, u32)>,
    }

    fn default_shared_bytes() -> usize {
        96
    }

    struct FloorRoot {
        calls: Rc<Calls>,
    }

    impl Context for FloorRoot {}

    impl RootContext for FloorRoot {
        fn on_configure(&mut self, _size: usize) -> bool {
            let bytes = hostcalls::get_buffer(
                proxy_wasm::types::BufferType::PluginConfiguration,
                0,
                usize::MAX,
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            let mut calls: Calls = match serde_json::from_slice(&bytes) {
                Ok(calls) => calls,
                Err(err) => {
                    let _ = hostcalls::log(LogLevel::Error, &format!("floor filter: {err}"));
                    return false;
                }
            };
            let all = calls
                .request_headers
                .iter()
                .chain(&calls.response_headers)
                .chain(&calls.log);
            let mut metrics = Vec::new();
            for call in all {
                match call {
                    Call::SharedGet(key) | Call::SharedSet(key) => {
                        let _ = hostcalls::set_shared_data(
                            key,
                            Some(&vec![0x5a; calls.shared_bytes]),
                            None,
                        );
                    }
                    Call::Metric(name) if !metrics.iter().any(|(n, _)| n == name) => {
                        if let Ok(id) = hostcalls::define_metric(MetricType::Counter, name) {
                            metrics.push((name.clone(), id));
                        }
                    }
                    _ => {}
                }
            }
            calls.metrics = metrics;
            self.calls = Rc::new(calls);
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(FloorHttp {
                calls: self.calls.clone(),
                last_read: None,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct FloorHttp {
        calls: Rc<Calls>,
        /// The last shared value read, with its token, for `shared_set`.
        last_read: Option<(Vec<u8>, Option<u32>)>,
    }

    impl FloorHttp {
        fn make(&mut self, phase: fn(&Calls) -> &[Call]) {
            let calls = self.calls.clone();
            for call in phase(&calls) {
                // Each result goes through black_box: the point is the call, and it must not be
                // optimised away.
                match call {
                    Call::RequestHeader(name) => {
                        std::hint::black_box(
                            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok(),
                        );
                    }
                    Call::SetRequestHeader(name) => {
                        let _ = hostcalls::set_map_value_bytes(
                            MapType::HttpRequestHeaders,
                            name,
                            Some(&[b'0'; 36]),
                        );
                    }
                    Call::HeaderMap(which) => {
                        let map = if which == "request" {
                            MapType::HttpRequestHeaders
                        } else {
                            MapType::HttpResponseHeaders
                        };
                        std::hint::black_box(breakwater_envoy::shim::header_map_pairs(map));
                    }
                    Call::Random => {
                        let mut bytes = [0u8; 16];
                        std::hint::black_box(getrandom::fill(&mut bytes).is_ok());
                    }
                    Call::ResponseHeader(name) => {
                        std::hint::black_box(
                            hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).ok(),
                        );
                    }
                    Call::Property(path) => {
                        let path: Vec<&str> = path.iter().map(String::as_str).collect();
                        std::hint::black_box(hostcalls::get_property(path).ok());
                    }
                    Call::SharedGet(key) => {
                        if let Ok((Some(value), cas)) = hostcalls::get_shared_data(key) {
                            self.last_read = Some((value, cas));
                        }
                    }
                    Call::SharedSet(key) => {
                        if let Some((value, cas)) = self.last_read.take() {
                            std::hint::black_box(
                                hostcalls::set_shared_data(key, Some(&value), cas).is_ok(),
                            );
                        }
                    }
                    Call::FilterState { key, bytes } => {
                        let _ =
                            hostcalls::set_property(vec![key.as_str()], Some(&vec![b'x'; *bytes]));
                    }
                    Call::Time => {
                        std::hint::black_box(hostcalls::get_current_time().ok());
                    }
                    Call::Metric(name) => {
                        if let Some((_, id)) = calls.metrics.iter().find(|(n, _)| n == name) {
                            let _ = hostcalls::increment_metric(*id, 1);
                        }
                    }
                }
            }
        }
    }

    impl Context for FloorHttp {}

    impl HttpContext for FloorHttp {
        fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
            self.make(|c| &c.request_headers);
            Action::Continue
        }

        fn on_http_response_headers(
            &mut self,
            _num_headers: usize,
            _end_of_stream: bool,
        ) -> Action {
            self.make(|c| &c.response_headers);
            Action::Continue
        }

        fn on_log(&mut self) {
            self.make(|c| &c.log);
        }
    }
}
