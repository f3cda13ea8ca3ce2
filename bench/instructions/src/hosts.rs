//! The hosts a scenario runs with: the deterministic [`BenchHost`] and [`BenchRequest`] for
//! counting, and `breakwater-common`'s `FakeHost` and `FakeRequest` (`--fake-host`).
//!
//! Why not always the fake host: its shared data, stats and request headers live in std
//! `HashMap`s, whose SipHash keys are random per process. How many entries of a probed group
//! share the looked-up key's 7-bit tag then differs from run to run, and with it the key
//! comparisons each lookup makes: measured, the same binary gave 16 465 and 16 450 instructions
//! per request for `fallback-serve`, and 184 357 and 184 402 for `chain`. `BenchHost` keeps the
//! fake host's behaviour (the same compare-and-swap semantics as `MemoryStore`) in vectors
//! searched linearly, which cost the same on every run.

use breakwater_common::host::fake::{FakeHost, FakeRequest};
use breakwater_common::host::{Host, Level, MetricId, MetricKind};
use breakwater_common::request::AttributeSource;
use breakwater_common::shared::{SetError, SharedStore};
use std::cell::{Cell, RefCell};

/// What a scenario needs from a host beyond [`Host`]: a settable clock and reading stats.
pub trait ScenarioHost: Host {
    fn at(now_ms: u64) -> Self;
    fn advance(&self, ms: u64);
    /// A stat's value (0 if never changed); panics if it was never defined.
    fn metric(&self, name: &str) -> i64;
    /// How many lines were logged at warning level or above.
    fn warnings(&self) -> usize;
}

/// What a scenario needs from a request beyond [`AttributeSource`].
pub trait ScenarioRequest: AttributeSource {
    fn with_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> Self;
    /// Makes the next request start as this one did.
    fn reset(&self) {}
}

/// Shared data with the host's compare-and-swap semantics, stats and a clock, in vectors.
pub struct BenchHost {
    now: Cell<u64>,
    /// (key, value, CAS token).
    shared: RefCell<Vec<(String, Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    /// Indexed by `MetricId`: (name, kind, value).
    metrics: RefCell<Vec<(String, MetricKind, i64)>>,
    warnings: Cell<usize>,
}

impl SharedStore for BenchHost {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self
            .shared
            .borrow()
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, value, cas)| (value.clone(), *cas)))
    }

    /// As `MemoryStore`: a global, increasing token; 0 and missing keys write unconditionally.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut shared = self.shared.borrow_mut();
        let token = self.next_cas.get().wrapping_add(1).max(1);
        match shared.iter_mut().find(|(k, _, _)| k == key) {
            Some((_, current, current_cas)) => {
                if cas != 0 && cas != *current_cas {
                    return Err(SetError::CasMismatch);
                }
                current.clear();
                current.extend_from_slice(value);
                *current_cas = token;
            }
            None => shared.push((key.to_string(), value.to_vec(), token)),
        }
        self.next_cas.set(token);
        Ok(())
    }
}

impl Host for BenchHost {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn log(&self, level: Level, _message: &str) {
        if matches!(level, Level::Warn | Level::Error) {
            self.warnings.set(self.warnings.get() + 1);
        }
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let mut metrics = self.metrics.borrow_mut();
        let index = match metrics.iter().position(|(n, _, _)| n == name) {
            Some(index) => index,
            None => {
                metrics.push((name.to_string(), kind, 0));
                metrics.len() - 1
            }
        };
        MetricId::try_from(index).ok()
    }

    fn add_metric(&self, id: MetricId, delta: i64) {
        let mut metrics = self.metrics.borrow_mut();
        let metric = metrics.get_mut(id as usize).expect("a defined stat");
        assert!(
            metric.1 == MetricKind::Gauge || delta > 0,
            "counters only grow"
        );
        metric.2 += delta;
    }

    fn set_gauge(&self, id: MetricId, value: u64) {
        let mut metrics = self.metrics.borrow_mut();
        let metric = metrics.get_mut(id as usize).expect("a defined stat");
        assert_eq!(metric.1, MetricKind::Gauge);
        metric.2 = i64::try_from(value).expect("a gauge fits in i64");
    }
}

impl ScenarioHost for BenchHost {
    fn at(now_ms: u64) -> Self {
        BenchHost {
            now: Cell::new(now_ms),
            shared: RefCell::default(),
            next_cas: Cell::new(0),
            metrics: RefCell::default(),
            warnings: Cell::new(0),
        }
    }

    fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }

    fn metric(&self, name: &str) -> i64 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("metric {name} not defined"))
            .2
    }

    fn warnings(&self) -> usize {
        self.warnings.get()
    }
}

/// A request's headers in a vector (the first value of a name wins, as in Envoy).
pub struct BenchRequest {
    headers: Vec<(String, Vec<u8>)>,
}

impl AttributeSource for BenchRequest {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

impl ScenarioRequest for BenchRequest {
    fn with_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> Self {
        BenchRequest {
            headers: headers
                .iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.clone()))
                .collect(),
        }
    }
}

impl ScenarioHost for FakeHost {
    fn at(now_ms: u64) -> Self {
        FakeHost::new(now_ms)
    }

    fn advance(&self, ms: u64) {
        FakeHost::advance(self, ms);
    }

    fn metric(&self, name: &str) -> i64 {
        FakeHost::metric(self, name)
    }

    fn warnings(&self) -> usize {
        self.logs_at(Level::Warn).len() + self.logs_at(Level::Error).len()
    }
}

impl ScenarioRequest for FakeRequest {
    fn with_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> Self {
        headers
            .iter()
            .fold(FakeRequest::default(), |request, (name, value)| {
                request.header(&String::from_utf8_lossy(name), value)
            })
    }

    /// Forgets the recorded attribute reads, which would otherwise grow with every request.
    fn reset(&self) {
        self.reads.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    #[test]
    fn bench_host_has_the_memory_stores_cas_semantics() {
        let host = BenchHost::at(0);
        assert_eq!(host.get("k"), Ok(None));
        // A missing key is written whatever the token.
        host.set("k", b"a", 7).unwrap();
        let (value, cas) = host.get("k").unwrap().unwrap();
        assert_eq!(value, b"a");
        host.set("k", b"b", cas).unwrap();
        assert_eq!(host.set("k", b"c", cas), Err(SetError::CasMismatch));
        host.set("k", b"d", 0).unwrap();
        let (value, next) = host.get("k").unwrap().unwrap();
        assert_eq!(value, b"d");
        assert!(next > cas);
    }

    #[test]
    fn bench_host_stats() {
        let host = BenchHost::at(0);
        let counter = host.define_metric(MetricKind::Counter, "c").unwrap();
        let gauge = host.define_metric(MetricKind::Gauge, "g").unwrap();
        assert_eq!(host.define_metric(MetricKind::Counter, "c"), Some(counter));
        host.add_metric(counter, 2);
        host.add_metric(gauge, -1);
        host.set_gauge(gauge, 5);
        assert_eq!((host.metric("c"), host.metric("g")), (2, 5));
        host.log(Level::Info, "fine");
        host.log(Level::Warn, "not fine");
        assert_eq!(host.warnings(), 1);
    }
}
