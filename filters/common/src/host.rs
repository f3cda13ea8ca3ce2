//! What a filter's logic needs from Envoy beyond request attributes: shared data, the clock,
//! logs and stats. Filters' engines take a `&impl Host`; in the modules `breakwater_envoy::Envoy`
//! implements it with the SDK's host calls, and tests use [`fake::FakeHost`].

use crate::shared::SharedStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

pub type MetricId = u32;

pub trait Host: SharedStore {
    /// Wall-clock milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn log(&self, level: Level, message: &str);
    /// Defines (or finds) a stat; `None` if the host refuses, and the stat is then skipped.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId>;
    /// Adds to a counter (delta > 0) or a gauge (either sign).
    fn add_metric(&self, id: MetricId, delta: i64);
    fn set_gauge(&self, id: MetricId, value: u64);
}

/// Adds 1 to a stat if it was defined.
pub fn bump<H: Host + ?Sized>(host: &H, id: Option<MetricId>) {
    if let Some(id) = id {
        host.add_metric(id, 1);
    }
}

/// A fake host and request for filters' unit tests (feature `testing`).
#[cfg(any(test, feature = "testing"))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod fake {
    use super::{Host, Level, MetricId, MetricKind};
    use crate::request::AttributeSource;
    use crate::shared::{MemoryStore, SetError, SharedStore};
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// A settable clock, shared data with the host's CAS semantics, captured logs and stats.
    pub struct FakeHost {
        pub store: MemoryStore,
        pub now: Cell<u64>,
        pub logs: RefCell<Vec<(Level, String)>>,
        metric_names: RefCell<Vec<(String, MetricKind)>>,
        metric_values: RefCell<HashMap<MetricId, i64>>,
        /// Shared-data calls made (reads, writes), to prove which ones a path makes.
        pub shared_calls: Cell<(u32, u32)>,
    }

    impl FakeHost {
        pub fn new(now_ms: u64) -> Self {
            FakeHost {
                store: MemoryStore::new(),
                now: Cell::new(now_ms),
                logs: RefCell::default(),
                metric_names: RefCell::default(),
                metric_values: RefCell::default(),
                shared_calls: Cell::default(),
            }
        }

        pub fn advance(&self, ms: u64) {
            self.now.set(self.now.get() + ms);
        }

        /// A stat's value; panics if it was never defined.
        pub fn metric(&self, name: &str) -> i64 {
            let names = self.metric_names.borrow();
            let id = names
                .iter()
                .position(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("metric {name} not defined"));
            self.metric_values
                .borrow()
                .get(&(id as u32))
                .copied()
                .unwrap_or(0)
        }

        pub fn defined(&self, name: &str) -> bool {
            self.metric_names.borrow().iter().any(|(n, _)| n == name)
        }

        pub fn logs_at(&self, level: Level) -> Vec<String> {
            self.logs
                .borrow()
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, m)| m.clone())
                .collect()
        }
    }

    impl SharedStore for FakeHost {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            let (gets, sets) = self.shared_calls.get();
            self.shared_calls.set((gets + 1, sets));
            self.store.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            let (gets, sets) = self.shared_calls.get();
            self.shared_calls.set((gets, sets + 1));
            self.store.set(key, value, cas)
        }
    }

    impl Host for FakeHost {
        fn now_ms(&self) -> u64 {
            self.now.get()
        }
        fn log(&self, level: Level, message: &str) {
            self.logs.borrow_mut().push((level, message.to_string()));
        }
        fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
            let mut names = self.metric_names.borrow_mut();
            if let Some(i) = names.iter().position(|(n, _)| n == name) {
                return Some(i as u32);
            }
            names.push((name.to_string(), kind));
            Some((names.len() - 1) as u32)
        }
        fn add_metric(&self, id: MetricId, delta: i64) {
            let kind = self.metric_names.borrow()[id as usize].1;
            assert!(kind == MetricKind::Gauge || delta > 0, "counters only grow");
            *self.metric_values.borrow_mut().entry(id).or_default() += delta;
        }
        fn set_gauge(&self, id: MetricId, value: u64) {
            assert_eq!(self.metric_names.borrow()[id as usize].1, MetricKind::Gauge);
            self.metric_values.borrow_mut().insert(id, value as i64);
        }
    }

    /// A request whose attribute reads are recorded, to prove what a filter reads.
    #[derive(Default)]
    pub struct FakeRequest {
        pub headers: HashMap<String, Vec<u8>>,
        pub properties: HashMap<String, Vec<u8>>,
        pub reads: RefCell<Vec<String>>,
    }

    impl FakeRequest {
        pub fn new(method: &str, path: &str, authority: &str) -> Self {
            let mut r = FakeRequest::default();
            r.headers
                .insert(":method".into(), method.as_bytes().to_vec());
            r.headers.insert(":path".into(), path.as_bytes().to_vec());
            r.headers
                .insert(":authority".into(), authority.as_bytes().to_vec());
            r
        }

        pub fn get(path: &str) -> Self {
            FakeRequest::new("GET", path, "shop.example")
        }

        pub fn header(mut self, name: &str, value: &[u8]) -> Self {
            self.headers.insert(name.into(), value.to_vec());
            self
        }

        pub fn with_property(mut self, path: &str, value: &str) -> Self {
            self.properties
                .insert(path.into(), value.as_bytes().to_vec());
            self
        }
    }

    impl AttributeSource for FakeRequest {
        fn request_header(&self, name: &str) -> Option<Vec<u8>> {
            self.reads.borrow_mut().push(name.to_string());
            self.headers.get(name).cloned()
        }
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            let key = path.join(".");
            self.reads.borrow_mut().push(key.clone());
            self.properties.get(&key).cloned()
        }
    }
}
