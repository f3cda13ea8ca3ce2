//! Sliding windows over recent calls: the last N calls (`count`) or the last T of time kept in
//! buckets (`time`). Both live inside the shared breaker state, so they are small and have a
//! compact binary form.

use crate::config::WindowSpec;
use breakwater_common::codec::Reader;

/// Calls, failures and slow calls currently inside the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub fn failure_rate(&self) -> f64 {
        percent(self.failures, self.calls)
    }
    pub fn slow_call_rate(&self) -> f64 {
        percent(self.slow, self.calls)
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub fn new(spec: WindowSpec) -> Window {
        match spec {
            WindowSpec::Count { size } => Window::Count(CountWindow::new(size)),
            WindowSpec::Time { size_ms, buckets } => {
                Window::Time(TimeWindow::new(size_ms, buckets))
            }
        }
    }

    pub fn record(&mut self, now_ms: u64, failure: bool, slow: bool) {
        match self {
            Window::Count(w) => w.record(failure, slow),
            Window::Time(w) => w.record(now_ms, failure, slow),
        }
    }

    pub fn totals(&self, now_ms: u64) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now_ms),
        }
    }

    /// True when this window has the shape `spec` asks for (a config change may alter it).
    pub fn fits(&self, spec: WindowSpec) -> bool {
        match (self, spec) {
            (Window::Count(w), WindowSpec::Count { size }) => w.size == size,
            (Window::Time(w), WindowSpec::Time { size_ms, buckets }) => {
                w.bucket_ms == bucket_width(size_ms, buckets) && w.buckets.len() == buckets as usize
            }
            _ => false,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Window::Count(w) => {
                out.push(1);
                w.encode(out);
            }
            Window::Time(w) => {
                out.push(2);
                w.encode(out);
            }
        }
    }

    pub fn decode(input: &mut Reader<'_>, spec: WindowSpec) -> Option<Window> {
        let window = match input.u8()? {
            1 => Window::Count(CountWindow::decode(input)?),
            2 => Window::Time(TimeWindow::decode(input)?),
            _ => return None,
        };
        window.fits(spec).then_some(window)
    }
}

/// The last `size` calls as two bit rings (failed, slow) plus running totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountWindow {
    size: u32,
    /// Next slot to write.
    head: u32,
    /// Slots holding a call (≤ size).
    filled: u32,
    failures: u32,
    slow: u32,
    failed_bits: Vec<u8>,
    slow_bits: Vec<u8>,
}

impl CountWindow {
    pub fn new(size: u32) -> Self {
        let size = size.max(1);
        let bytes = size.div_ceil(8) as usize;
        CountWindow {
            size,
            head: 0,
            filled: 0,
            failures: 0,
            slow: 0,
            failed_bits: vec![0; bytes],
            slow_bits: vec![0; bytes],
        }
    }

    pub fn record(&mut self, failure: bool, slow: bool) {
        let slot = self.head;
        if self.filled == self.size {
            // The oldest call leaves the window.
            if take_bit(&mut self.failed_bits, slot) {
                self.failures = self.failures.saturating_sub(1);
            }
            if take_bit(&mut self.slow_bits, slot) {
                self.slow = self.slow.saturating_sub(1);
            }
        } else {
            self.filled += 1;
        }
        if failure {
            put_bit(&mut self.failed_bits, slot);
            self.failures += 1;
        }
        if slow {
            put_bit(&mut self.slow_bits, slot);
            self.slow += 1;
        }
        self.head = (self.head + 1) % self.size;
    }

    pub fn totals(&self) -> Totals {
        Totals {
            calls: self.filled,
            failures: self.failures,
            slow: self.slow,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.size, self.head, self.filled, self.failures, self.slow] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.failed_bits);
        out.extend_from_slice(&self.slow_bits);
    }

    fn decode(input: &mut Reader<'_>) -> Option<Self> {
        let size = input.u32()?;
        let head = input.u32()?;
        let filled = input.u32()?;
        let failures = input.u32()?;
        let slow = input.u32()?;
        if size == 0 || size > crate::config::MAX_COUNT_WINDOW || head >= size || filled > size {
            return None;
        }
        let bytes = size.div_ceil(8) as usize;
        let failed_bits = input.bytes(bytes)?.to_vec();
        let slow_bits = input.bytes(bytes)?.to_vec();
        let window = CountWindow {
            size,
            head,
            filled,
            failures,
            slow,
            failed_bits,
            slow_bits,
        };
        // Totals must agree with the bits, and no bit may sit in a slot that holds no call (a
        // slot not yet written, or the padding past `size`): such a bit would never be cleared.
        let written = if filled < size {
            if head != filled {
                return None;
            }
            filled
        } else {
            size
        };
        let ones = |bits: &[u8]| bits.iter().map(|b| b.count_ones()).sum::<u32>();
        (ones(&window.failed_bits) == failures
            && ones(&window.slow_bits) == slow
            && only_below(&window.failed_bits, written)
            && only_below(&window.slow_bits, written))
        .then_some(window)
    }
}

/// True when no bit at slot `limit` or above is set.
fn only_below(bits: &[u8], limit: u32) -> bool {
    let mut first = 0u32;
    bits.iter().all(|&byte| {
        let valid = match limit.saturating_sub(first) {
            0 => 0u8,
            n if n >= 8 => 0xff,
            n => (1u8 << n) - 1,
        };
        first = first.saturating_add(8);
        byte & !valid == 0
    })
}

fn put_bit(bits: &mut [u8], slot: u32) {
    if let Some(byte) = bits.get_mut((slot / 8) as usize) {
        *byte |= 1 << (slot % 8);
    }
}

/// Clears the bit and says whether it was set.
fn take_bit(bits: &mut [u8], slot: u32) -> bool {
    match bits.get_mut((slot / 8) as usize) {
        Some(byte) => {
            let mask = 1 << (slot % 8);
            let was_set = *byte & mask != 0;
            *byte &= !mask;
            was_set
        }
        None => false,
    }
}

/// Time split into equal buckets; a bucket is reused once its period has left the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    bucket_ms: u64,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// `now / bucket_ms` of the period this bucket counts.
    period: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

fn bucket_width(size_ms: u64, buckets: u32) -> u64 {
    size_ms.div_ceil(u64::from(buckets.max(1))).max(1)
}

impl TimeWindow {
    pub fn new(size_ms: u64, buckets: u32) -> Self {
        TimeWindow {
            bucket_ms: bucket_width(size_ms, buckets),
            buckets: vec![Bucket::default(); buckets.max(1) as usize],
        }
    }

    fn slot(&self, period: u64) -> usize {
        // The remainder is below buckets.len(), which fits in usize.
        (period % self.buckets.len() as u64) as usize
    }

    pub fn record(&mut self, now_ms: u64, failure: bool, slow: bool) {
        let period = now_ms / self.bucket_ms;
        let slot = self.slot(period);
        if let Some(bucket) = self.buckets.get_mut(slot) {
            if bucket.period != period {
                *bucket = Bucket {
                    period,
                    ..Bucket::default()
                };
            }
            bucket.calls = bucket.calls.saturating_add(1);
            bucket.failures = bucket.failures.saturating_add(u32::from(failure));
            bucket.slow = bucket.slow.saturating_add(u32::from(slow));
        }
    }

    pub fn totals(&self, now_ms: u64) -> Totals {
        let current = now_ms / self.bucket_ms;
        let span = self.buckets.len() as u64;
        self.buckets
            .iter()
            // Only periods inside the window; a bucket "from the future" (the clock stepped
            // back) is ignored until it is reused.
            .filter(|b| b.calls > 0 && b.period <= current && current - b.period < span)
            .fold(Totals::default(), |t, b| Totals {
                calls: t.calls.saturating_add(b.calls),
                failures: t.failures.saturating_add(b.failures),
                slow: t.slow.saturating_add(b.slow),
            })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bucket_ms.to_le_bytes());
        out.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        for b in &self.buckets {
            out.extend_from_slice(&b.period.to_le_bytes());
            out.extend_from_slice(&b.calls.to_le_bytes());
            out.extend_from_slice(&b.failures.to_le_bytes());
            out.extend_from_slice(&b.slow.to_le_bytes());
        }
    }

    fn decode(input: &mut Reader<'_>) -> Option<Self> {
        let bucket_ms = input.u64()?;
        let count = input.u32()?;
        if bucket_ms == 0 || count == 0 || count > crate::config::MAX_TIME_BUCKETS {
            return None;
        }
        let mut buckets = Vec::with_capacity(count as usize);
        for slot in 0..u64::from(count) {
            let bucket = Bucket {
                period: input.u64()?,
                calls: input.u32()?,
                failures: input.u32()?,
                slow: input.u32()?,
            };
            // A bucket's failures and slow calls are among its calls, and a used bucket sits in
            // the slot of its period; anything else is not data this filter wrote.
            let used = bucket.calls > 0 || bucket.failures > 0 || bucket.slow > 0;
            if bucket.failures > bucket.calls
                || bucket.slow > bucket.calls
                || (used && bucket.period % u64::from(count) != slot)
            {
                return None;
            }
            buckets.push(bucket);
        }
        Some(TimeWindow { bucket_ms, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater_common::testing::test;

    fn roundtrip(w: &Window, spec: WindowSpec) -> Option<Window> {
        let mut out = Vec::new();
        w.encode(&mut out);
        let mut r = Reader::new(&out);
        let back = Window::decode(&mut r, spec);
        assert!(r.is_empty());
        back
    }

    #[test]
    fn count_window_keeps_only_the_last_n() {
        let mut w = CountWindow::new(10);
        for _ in 0..10 {
            w.record(true, false);
        }
        assert_eq!(
            w.totals(),
            Totals {
                calls: 10,
                failures: 10,
                slow: 0
            }
        );
        for _ in 0..7 {
            w.record(false, true);
        }
        assert_eq!(
            w.totals(),
            Totals {
                calls: 10,
                failures: 3,
                slow: 7
            }
        );
        for _ in 0..100 {
            w.record(false, false);
        }
        assert_eq!(
            w.totals(),
            Totals {
                calls: 10,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_sizes_that_are_not_multiples_of_8() {
        for size in [1, 7, 9, 13, 100, 1000] {
            let mut w = CountWindow::new(size);
            for i in 0..(3 * size) {
                w.record(i % 3 == 0, i % 2 == 0);
            }
            let t = w.totals();
            assert_eq!(t.calls, size);
            assert!(t.failures <= size && t.slow <= size);
            let back = roundtrip(&Window::Count(w.clone()), WindowSpec::Count { size });
            assert_eq!(back, Some(Window::Count(w)));
        }
    }

    #[test]
    fn rates() {
        let t = Totals {
            calls: 20,
            failures: 10,
            slow: 5,
        };
        assert_eq!(t.failure_rate(), 50.0);
        assert_eq!(t.slow_call_rate(), 25.0);
        assert_eq!(Totals::default().failure_rate(), 0.0);
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        // 10 s in 10 buckets of 1 s.
        let mut w = TimeWindow::new(10_000, 10);
        let t0 = 1_700_000_000_000u64;
        for i in 0..10 {
            w.record(t0 + i * 1000, true, false);
        }
        assert_eq!(w.totals(t0 + 9_999).calls, 10);
        // One second later the first bucket has left the window.
        assert_eq!(w.totals(t0 + 10_000).calls, 9);
        assert_eq!(w.totals(t0 + 19_999).calls, 0);
        // Reusing a slot resets it.
        w.record(t0 + 20_000, false, true);
        assert_eq!(
            w.totals(t0 + 20_000),
            Totals {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_ignores_buckets_from_the_future() {
        let mut w = TimeWindow::new(10_000, 10);
        let t0 = 1_700_000_000_000u64;
        w.record(t0, true, false);
        // The clock steps back by a minute: the bucket is not counted, nothing underflows.
        assert_eq!(w.totals(t0 - 60_000).calls, 0);
        w.record(t0 - 60_000, false, false);
        assert_eq!(w.totals(t0 - 60_000).calls, 1);
    }

    #[test]
    fn time_window_roundtrips() {
        let mut w = TimeWindow::new(10_000, 10);
        w.record(5_000, true, true);
        let spec = WindowSpec::Time {
            size_ms: 10_000,
            buckets: 10,
        };
        assert_eq!(
            roundtrip(&Window::Time(w.clone()), spec),
            Some(Window::Time(w))
        );
    }

    #[test]
    fn decode_refuses_a_different_shape() {
        let w = Window::new(WindowSpec::Count { size: 10 });
        assert_eq!(roundtrip(&w, WindowSpec::Count { size: 20 }), None);
        assert_eq!(
            roundtrip(
                &w,
                WindowSpec::Time {
                    size_ms: 1000,
                    buckets: 10
                }
            ),
            None
        );
    }

    #[test]
    fn decode_refuses_corrupt_input() {
        let mut w = CountWindow::new(16);
        w.record(true, false);
        let mut out = Vec::new();
        Window::Count(w).encode(&mut out);
        let spec = WindowSpec::Count { size: 16 };
        // Every truncation fails cleanly.
        for len in 0..out.len() {
            assert_eq!(
                Window::decode(&mut Reader::new(&out[..len]), spec),
                None,
                "{len}"
            );
        }
        // Totals that disagree with the bits are refused.
        let mut bad = out.clone();
        bad[13] = 9; // failures field
        assert_eq!(Window::decode(&mut Reader::new(&bad), spec), None);
        assert_eq!(Window::decode(&mut Reader::new(&[3]), spec), None);
    }
}
