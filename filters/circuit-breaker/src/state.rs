//! One breaker's state as stored in shared data, and its compact binary encoding. Anything that
//! does not decode (another version, corruption, a changed window shape) is replaced by a fresh
//! state rather than trusted.

use crate::config::WindowSpec;
use crate::window::Window;
use breakwater_common::codec::Reader;
use breakwater_common::filter_state::BreakerState as StateName;

const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl Phase {
    /// The name used in logs and filter state.
    pub fn as_str(self) -> &'static str {
        let name = match self {
            Phase::Closed => StateName::Closed,
            Phase::Open => StateName::Open,
            Phase::HalfOpen => StateName::HalfOpen,
        };
        name.as_str()
    }

    /// The value of the `state` gauge.
    pub fn gauge(self) -> u64 {
        self as u64
    }

    fn from_u8(v: u8) -> Option<Phase> {
        match v {
            0 => Some(Phase::Closed),
            1 => Some(Phase::Open),
            2 => Some(Phase::HalfOpen),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerState {
    pub phase: Phase,
    /// Bumped on every transition (and when half-open probes are written off). A call's outcome
    /// only counts if the epoch it was admitted in is still current.
    pub epoch: u32,
    /// Consecutive re-opens without closing: the backoff exponent.
    pub reopen_count: u32,
    /// When the current phase began.
    pub phase_since_ms: u64,
    /// While open: when the first probe may be admitted.
    pub open_until_ms: u64,
    /// While half-open: when the latest probe was admitted.
    pub last_probe_ms: u64,
    pub probes_admitted: u32,
    pub probes_succeeded: u32,
    pub consecutive_failures: u32,
    pub window: Window,
}

impl BreakerState {
    pub fn fresh(spec: WindowSpec) -> Self {
        BreakerState {
            phase: Phase::Closed,
            epoch: 0,
            reopen_count: 0,
            phase_since_ms: 0,
            open_until_ms: 0,
            last_probe_ms: 0,
            probes_admitted: 0,
            probes_succeeded: 0,
            consecutive_failures: 0,
            window: Window::new(spec),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(FORMAT_VERSION);
        out.push(self.phase as u8);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.reopen_count.to_le_bytes());
        out.extend_from_slice(&self.phase_since_ms.to_le_bytes());
        out.extend_from_slice(&self.open_until_ms.to_le_bytes());
        out.extend_from_slice(&self.last_probe_ms.to_le_bytes());
        out.extend_from_slice(&self.probes_admitted.to_le_bytes());
        out.extend_from_slice(&self.probes_succeeded.to_le_bytes());
        out.extend_from_slice(&self.consecutive_failures.to_le_bytes());
        self.window.encode(&mut out);
        out
    }

    /// Decodes stored bytes. A valid header with a window of another shape keeps the phase
    /// (an open breaker stays open across a config change) with a fresh window.
    pub fn decode(bytes: &[u8], spec: WindowSpec) -> Option<BreakerState> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_VERSION {
            return None;
        }
        let phase = Phase::from_u8(r.u8()?)?;
        let mut state = BreakerState {
            phase,
            epoch: r.u32()?,
            reopen_count: r.u32()?,
            phase_since_ms: r.u64()?,
            open_until_ms: r.u64()?,
            last_probe_ms: r.u64()?,
            probes_admitted: r.u32()?,
            probes_succeeded: r.u32()?,
            consecutive_failures: r.u32()?,
            window: Window::new(spec),
        };
        if let Some(window) = Window::decode(&mut r, spec) {
            if r.is_empty() {
                state.window = window;
            }
        }
        Some(state)
    }

    /// The epoch of a stored closed state, read from the header alone (no window decoding), or
    /// `None` when the state is not closed or not readable.
    pub fn closed_epoch(bytes: &[u8]) -> Option<u32> {
        match bytes {
            [FORMAT_VERSION, 0, e0, e1, e2, e3, ..] => {
                Some(u32::from_le_bytes([*e0, *e1, *e2, *e3]))
            }
            _ => None,
        }
    }

    /// `(phase_since_ms, open_until_ms)` of a stored open state, read from the header alone:
    /// while open, every rejected request needs only these.
    pub fn open_times(bytes: &[u8]) -> Option<(u64, u64)> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_VERSION || Phase::from_u8(r.u8()?)? != Phase::Open {
            return None;
        }
        let (_epoch, _reopen_count) = (r.u32()?, r.u32()?);
        Some((r.u64()?, r.u64()?))
    }

    /// Decodes, or starts fresh when there is nothing usable.
    pub fn load(bytes: Option<&[u8]>, spec: WindowSpec) -> BreakerState {
        bytes
            .and_then(|b| BreakerState::decode(b, spec))
            .unwrap_or_else(|| BreakerState::fresh(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    const COUNT: WindowSpec = WindowSpec::Count { size: 20 };

    #[test]
    fn roundtrip() {
        let mut s = BreakerState::fresh(COUNT);
        s.phase = Phase::HalfOpen;
        s.epoch = u32::MAX;
        s.reopen_count = 3;
        s.phase_since_ms = 1_700_000_000_123;
        s.open_until_ms = u64::MAX;
        s.last_probe_ms = 42;
        s.probes_admitted = 2;
        s.probes_succeeded = 1;
        s.consecutive_failures = 7;
        s.window.record(0, true, true);
        assert_eq!(BreakerState::decode(&s.encode(), COUNT), Some(s));
    }

    #[test]
    fn a_changed_window_keeps_the_phase() {
        let mut s = BreakerState::fresh(COUNT);
        s.phase = Phase::Open;
        s.window.record(0, true, false);
        let other = WindowSpec::Time {
            size_ms: 10_000,
            buckets: 10,
        };
        let back = BreakerState::decode(&s.encode(), other).unwrap();
        assert_eq!(back.phase, Phase::Open);
        assert_eq!(back.window, Window::new(other));
    }

    #[test]
    fn closed_epoch_reads_the_header_only() {
        let mut s = BreakerState::fresh(COUNT);
        s.epoch = 0x0102_0304;
        assert_eq!(BreakerState::closed_epoch(&s.encode()), Some(0x0102_0304));
        s.phase = Phase::Open;
        assert_eq!(BreakerState::closed_epoch(&s.encode()), None);
        assert_eq!(BreakerState::closed_epoch(&[FORMAT_VERSION, 0, 1]), None);
        assert_eq!(BreakerState::closed_epoch(&[9, 0, 1, 0, 0, 0]), None);
    }

    #[test]
    fn open_times_read_the_header_only() {
        let mut s = BreakerState::fresh(COUNT);
        s.phase = Phase::Open;
        s.phase_since_ms = 1_700_000_000_000;
        s.open_until_ms = 1_700_000_005_000;
        let bytes = s.encode();
        assert_eq!(
            BreakerState::open_times(&bytes),
            Some((1_700_000_000_000, 1_700_000_005_000))
        );
        assert_eq!(
            BreakerState::open_times(bytes.get(..20).unwrap()),
            None,
            "cut short"
        );
        s.phase = Phase::HalfOpen;
        assert_eq!(BreakerState::open_times(&s.encode()), None);
    }

    #[test]
    fn garbage_starts_fresh() {
        let fresh = BreakerState::fresh(COUNT);
        assert_eq!(BreakerState::load(None, COUNT), fresh);
        assert_eq!(BreakerState::load(Some(b""), COUNT), fresh);
        assert_eq!(BreakerState::load(Some(b"\x02\x00"), COUNT), fresh);
        assert_eq!(BreakerState::load(Some(&[1, 9, 0, 0]), COUNT), fresh);
        let good = BreakerState::fresh(COUNT).encode();
        for len in 0..good.len() {
            assert_eq!(BreakerState::load(Some(&good[..len]), COUNT), fresh);
        }
    }
}
