//! The proxy-wasm ABI (0.2.1) exports for HTTP filters (wasm32-wasip1 only).
//!
//! Why not the proxy-wasm SDK's dispatcher: it exports handlers for every context kind (TCP
//! streams, gRPC, queues, foreign functions) with hash maps and thread-locals, about 35 KB of
//! each module's 150 KB budget, and its host-call wrappers panic on unexpected statuses. A
//! filter here implements [`Plugin`] and [`Stream`]; the exports below route Envoy's callbacks
//! to them. Host calls are in [`crate::hostcall`].

use crate::hostcall::{self, LogLevel};
use std::cell::RefCell;

/// What a filter tells Envoy after a header callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    /// Stop iteration (used after sending a local reply).
    Pause = 1,
}

/// One plugin instance (a root context): configured once per config push.
pub trait Plugin {
    /// Receives the plugin configuration; `false` makes Envoy refuse it.
    fn configure(&mut self, configuration: &[u8]) -> bool;
    /// A new HTTP stream (request/response pair).
    fn create_stream(&self) -> Box<dyn Stream>;
}

/// One HTTP stream. Every callback has a pass-through default.
pub trait Stream {
    fn on_request_headers(&mut self, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_response_headers(&mut self, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// A request body chunk of `body_size` bytes (exported with the `request-body` feature).
    fn on_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// A response body chunk of `body_size` bytes (exported with the `response-body` feature).
    fn on_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// The answer to an HTTP callout this stream made (exported with the `http-calls` feature).
    fn on_http_call_response(&mut self, _token: u32, _body_size: usize) {}
    /// After the stream ends, before Envoy's access loggers run.
    fn on_log(&mut self) {}
}

/// Builds a plugin for a new root context (its id seeds per-worker randomness).
pub type PluginFactory = fn(root_context_id: u32) -> Box<dyn Plugin>;

/// Contexts by id, sorted. Envoy hands out increasing ids, so inserts append; lookups are
/// binary searches. (A BTreeMap would add ~6 KB of code for the same job.)
struct Contexts<T: ?Sized>(Vec<(u32, Box<T>)>);

impl<T: ?Sized> Contexts<T> {
    const fn new() -> Self {
        Contexts(Vec::new())
    }

    fn insert(&mut self, id: u32, value: Box<T>) {
        match self.0.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(at) => {
                if let Some(slot) = self.0.get_mut(at) {
                    slot.1 = value;
                }
            }
            Err(at) => self.0.insert(at, (id, value)),
        }
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let at = self.0.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        self.0.get_mut(at).map(|(_, v)| v.as_mut())
    }

    fn remove(&mut self, id: u32) -> bool {
        match self.0.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }
}

struct Dispatcher {
    factory: Option<PluginFactory>,
    roots: Contexts<dyn Plugin>,
    streams: Contexts<dyn Stream>,
}

thread_local! {
    // Wasm VMs are single-threaded: one dispatcher per VM.
    static DISPATCHER: RefCell<Dispatcher> = const {
        RefCell::new(Dispatcher { factory: None, roots: Contexts::new(), streams: Contexts::new() })
    };
    /// The stream whose callback is running, so callouts it starts can be routed back to it.
    static ACTIVE_STREAM: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// (callout token, stream context id) of HTTP calls awaiting their answer.
    static CALLOUTS: RefCell<Vec<(u32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Remembers that the running stream started callout `token`; call right after dispatching.
pub fn track_callout(token: u32) {
    let context = ACTIVE_STREAM.with(|a| a.get());
    CALLOUTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.push((token, context));
        }
    });
}

/// Registers the filter; call from `_initialize` (see [`crate::export_filter!`]).
pub fn register(factory: PluginFactory) {
    std::panic::set_hook(Box::new(|info| {
        // With panic=abort the VM is gone after this; leave a trace in Envoy's log.
        hostcall::log(LogLevel::Critical, &info.to_string());
    }));
    DISPATCHER.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            d.factory = Some(factory);
        }
    });
}

/// Runs `f` on the dispatcher; a re-entrant call (impossible with Envoy) is ignored.
fn with<T: Copy>(default: T, f: impl FnOnce(&mut Dispatcher) -> T) -> T {
    DISPATCHER.with(|d| match d.try_borrow_mut() {
        Ok(mut d) => f(&mut d),
        Err(_) => default,
    })
}

fn stream_call<T: Copy>(context_id: u32, default: T, f: impl FnOnce(&mut dyn Stream) -> T) -> T {
    ACTIVE_STREAM.with(|a| a.set(context_id));
    with(default, |d| match d.streams.get_mut(context_id) {
        Some(stream) => f(stream),
        None => default,
    })
}

/// Declares the exported `_initialize` that registers a filter's plugin factory.
#[macro_export]
macro_rules! export_filter {
    ($factory:expr) => {
        extern "C" {
            fn __wasm_call_ctors();
        }

        #[no_mangle]
        pub extern "C" fn _initialize() {
            // SAFETY: the WASI reactor entry point must run static constructors once, first.
            unsafe { __wasm_call_ctors() };
            $crate::abi::register($factory);
        }
    };
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Envoy writes host data into memory it asks the module for.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // `hostcall::take_buffer` rebuilds this Vec with capacity == size.
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    with((), |d| {
        if parent_context_id == 0 {
            if let Some(factory) = d.factory {
                d.roots.insert(context_id, factory(context_id));
            }
        } else if let Some(root) = d.roots.get_mut(parent_context_id) {
            let stream = root.create_stream();
            d.streams.insert(context_id, stream);
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _configuration_size: usize) -> u32 {
    let configuration = match hostcall::plugin_configuration() {
        Ok(bytes) => bytes,
        Err(status) => {
            hostcall::log(
                LogLevel::Error,
                &format!(
                    "breakwater: cannot read the plugin configuration (host status {})",
                    status.0
                ),
            );
            return 0;
        }
    };
    with(0, |d| match d.roots.get_mut(root_context_id) {
        Some(root) => u32::from(root.configure(&configuration)),
        None => 0,
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    end_of_stream: u32,
) -> u32 {
    stream_call(context_id, Action::Continue, |s| {
        s.on_request_headers(end_of_stream != 0)
    }) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _headers: usize,
    end_of_stream: u32,
) -> u32 {
    stream_call(context_id, Action::Continue, |s| {
        s.on_response_headers(end_of_stream != 0)
    }) as u32
}

#[cfg(feature = "request-body")]
#[no_mangle]
pub extern "C" fn proxy_on_request_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    stream_call(context_id, Action::Continue, |s| {
        s.on_request_body(body_size, end_of_stream != 0)
    }) as u32
}

#[cfg(feature = "response-body")]
#[no_mangle]
pub extern "C" fn proxy_on_response_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    stream_call(context_id, Action::Continue, |s| {
        s.on_response_body(body_size, end_of_stream != 0)
    }) as u32
}

#[cfg(feature = "http-calls")]
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    // Envoy reports the answer on the root context: route it by the token we recorded, and
    // point host calls (reading the answer, replying) at the stream that made the call.
    let owner = CALLOUTS
        .with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let at = c.iter().position(|(t, _)| *t == token)?;
            Some(c.swap_remove(at).1)
        })
        .unwrap_or(context_id);
    if crate::hostcall::set_effective_context(owner).is_err() {
        return; // the stream is gone
    }
    stream_call(owner, (), |s| s.on_http_call_response(token, body_size))
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    stream_call(context_id, (), |s| s.on_log())
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with((), |d| {
        if !d.streams.remove(context_id) {
            d.roots.remove(context_id);
        }
    });
    // A stream that goes away forgets its pending callouts; a late answer is then dropped.
    CALLOUTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.retain(|(_, owner)| *owner != context_id);
        }
    });
}
