//! A closed-loop load generator: `concurrency` workers, each sending its next
//! request as soon as the last one is answered, for a warm-up and then a
//! measured window. Only requests that start and finish inside the window
//! count, so the figures are of a steady state.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// What one level of load saw in its measured window.
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub concurrency: usize,
    pub seconds: f64,
    /// Latency of each good answer, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Answers that were not what the request expects, by label.
    pub bad: BTreeMap<String, usize>,
    /// Requests sent over the whole run (warm-up and tail included).
    pub sent: usize,
}

impl Window {
    pub fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.seconds
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Runs `send(i)` (`i` counts from `first`, one per request, never reused)
/// from `concurrency` workers for `warmup + measure`. `send` answers `Ok` for
/// a good answer, or a label saying what was wrong. `on_window` is called as
/// the measured window opens and as it closes (for CPU snapshots).
pub async fn drive<S, F>(
    concurrency: usize,
    first: usize,
    warmup: Duration,
    measure: Duration,
    send: S,
    mut on_window: impl FnMut(),
) -> Window
where
    S: Fn(usize) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), String>> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(first));
    let start = Instant::now();
    let (open, close) = (start + warmup, start + warmup + measure);
    let seen = Arc::new(Mutex::new(Window::default()));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (send, next, seen) = (send.clone(), next.clone(), seen.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut bad: BTreeMap<String, usize> = BTreeMap::new();
                while Instant::now() < close {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let answer = send(i).await;
                    let t1 = Instant::now();
                    if t0 < open || t1 > close {
                        continue;
                    }
                    match answer {
                        Ok(()) => mine.push((t1 - t0).as_micros() as u64),
                        Err(label) => *bad.entry(label).or_default() += 1,
                    }
                }
                if let Ok(mut w) = seen.lock() {
                    w.latencies_us.extend(mine);
                    for (k, v) in bad {
                        *w.bad.entry(k).or_default() += v;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(open.into()).await;
    on_window();
    tokio::time::sleep_until(close.into()).await;
    on_window();
    for w in futures::future::join_all(workers).await {
        if let Err(e) = w {
            panic!("load worker: {e}");
        }
    }
    let mut w = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    w.latencies_us.sort_unstable();
    w.concurrency = concurrency;
    w.seconds = measure.as_secs_f64();
    w.sent = next.load(Ordering::Relaxed) - first;
    w
}
