//! A tiny deterministic random source for jitter. proxy-wasm offers no randomness, so each
//! worker seeds one from the clock and its context id; tests seed it explicitly.

/// xorshift64*: fast, small, good enough to de-synchronise probe timers across proxies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and 0 is never the state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in [-1, 1].
    pub fn symmetric_unit(&mut self) -> f64 {
        // 53 random bits → [0, 1), then stretched to [-1, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test;

    #[test]
    fn symmetric_unit_stays_in_range_and_spreads() {
        let mut rng = Rng::new(42);
        let (mut low, mut high) = (0, 0);
        for _ in 0..10_000 {
            let v = rng.symmetric_unit();
            assert!((-1.0..=1.0).contains(&v));
            if v < -0.5 {
                low += 1;
            }
            if v > 0.5 {
                high += 1;
            }
        }
        assert!(low > 2000 && high > 2000, "{low} {high}");
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
