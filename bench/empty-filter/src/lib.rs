//! The "empty Rust proxy-wasm filter" of `make bench`: a root context and an HTTP context that
//! do nothing (every callback continues), written with the official SDK in the most ordinary
//! way. What it costs over bare Envoy is the price of any Rust proxy-wasm filter (a V8 VM per
//! worker, a context per stream and the SDK's dispatch of every callback), which the breakwater
//! filters' own figures are compared against.
//!
//! Built only for `wasm32-wasip1` (`cargo build --release --target wasm32-wasip1 -p
//! empty-filter`); on other targets the crate is empty, see Cargo.toml.

#[cfg(target_os = "wasi")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Trace);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EmptyRoot) });
    }}

    struct EmptyRoot;

    impl Context for EmptyRoot {}

    impl RootContext for EmptyRoot {
        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(EmptyHttp))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct EmptyHttp;

    impl Context for EmptyHttp {}

    impl HttpContext for EmptyHttp {
        fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
            Action::Continue
        }

        fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
            Action::Continue
        }

        fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
            Action::Continue
        }

        fn on_http_response_headers(
            &mut self,
            _num_headers: usize,
            _end_of_stream: bool,
        ) -> Action {
            Action::Continue
        }

        fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
            Action::Continue
        }

        fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
            Action::Continue
        }
    }
}
