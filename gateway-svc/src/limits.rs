//! The rate limits of DESIGN.md §9, as fixed windows counted in this process:
//! redeem requests a minute per client IP, and failed redeem attempts an hour
//! per phone. A limit of 0 is off. Each gateway replica counts on its own.
//!
//! The map of windows is bounded ([`Window::MAX_KEYS`]): when it is full,
//! finished windows go first, then the oldest ones. A key evicted that way
//! starts a new window, so under a flood of distinct keys the limit errs
//! towards letting a request through rather than towards unbounded memory.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Window {
    limit: u32,
    period: Duration,
    max_keys: usize,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Window {
    /// Keys tracked at most: about 10 MB of windows.
    pub const MAX_KEYS: usize = 100_000;

    pub fn new(limit: u32, period: Duration) -> Self {
        Self::with_capacity(limit, period, Self::MAX_KEYS)
    }

    fn with_capacity(limit: u32, period: Duration, max_keys: usize) -> Self {
        Self {
            limit,
            period,
            max_keys: max_keys.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, if it is over its limit now.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = counts.get(key)?;
        let left = self.period.saturating_sub(start.elapsed());
        (*n >= self.limit && !left.is_zero()).then(|| left.as_secs().max(1))
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: &str) {
        if self.limit == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= self.max_keys && !counts.contains_key(key) {
            self.evict(&mut counts);
        }
        let now = Instant::now();
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if entry.0.elapsed() >= self.period {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Makes room: drops finished windows, then, if that was not enough, the
    /// oldest tenth.
    fn evict(&self, counts: &mut HashMap<String, (Instant, u32)>) {
        let period = self.period;
        counts.retain(|_, (start, _)| start.elapsed() < period);
        if counts.len() < self.max_keys {
            return;
        }
        let mut starts: Vec<Instant> = counts.values().map(|(s, _)| *s).collect();
        let cut = (self.max_keys / 10).max(1).min(starts.len() - 1);
        let (_, cutoff, _) = starts.select_nth_unstable(cut);
        let cutoff = *cutoff;
        counts.retain(|_, (start, _)| *start > cutoff);
    }

    /// Counts one event and says whether it went over the limit.
    pub fn hit(&self, key: &str) -> Option<u64> {
        if let Some(wait) = self.blocked(key) {
            return Some(wait);
        }
        self.record(key);
        None
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_blocks_past_its_limit_and_zero_is_off() {
        let w = Window::new(2, Duration::from_secs(60));
        assert_eq!(w.hit("a"), None);
        assert_eq!(w.hit("a"), None);
        assert!(w.hit("a").is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(w.hit("b"), None, "keys are counted apart");
        let off = Window::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            assert_eq!(off.hit("a"), None);
        }
        assert!(off.is_empty(), "an off limit tracks nothing");
    }

    #[test]
    fn a_window_resets_after_its_period() {
        let w = Window::new(1, Duration::from_millis(30));
        assert_eq!(w.hit("a"), None);
        assert!(w.blocked("a").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(w.hit("a"), None);
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_keeps_the_newest() {
        let w = Window::with_capacity(1, Duration::from_secs(3600), 1_000);
        for i in 0..10_000 {
            w.hit(&format!("ip-{i}"));
        }
        assert!(w.len() <= 1_000, "{} keys", w.len());
        // The newest keys are still counted, so still limited.
        assert!(w.blocked("ip-9999").is_some());
    }
}
