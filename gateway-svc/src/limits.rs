//! The rate limits of DESIGN.md §9, as fixed windows counted in this process:
//! redeem requests a minute per client IP, and failed redeem attempts an hour
//! per phone. A limit of 0 is off. Each gateway replica counts on its own.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Window {
    limit: u32,
    period: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Window {
    pub fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
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
        if counts.len() > 100_000 {
            let period = self.period;
            counts.retain(|_, (start, _)| start.elapsed() < period);
        }
        let now = Instant::now();
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if entry.0.elapsed() >= self.period {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Counts one event and says whether it went over the limit.
    pub fn hit(&self, key: &str) -> Option<u64> {
        if let Some(wait) = self.blocked(key) {
            return Some(wait);
        }
        self.record(key);
        None
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
    }

    #[test]
    fn a_window_resets_after_its_period() {
        let w = Window::new(1, Duration::from_millis(30));
        assert_eq!(w.hit("a"), None);
        assert!(w.blocked("a").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(w.hit("a"), None);
    }
}
