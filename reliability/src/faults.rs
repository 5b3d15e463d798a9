//! Fault injection timed by the load's progress, so that a fault lands while
//! redeems are in flight however fast or slow the machine is: each fault
//! waits until a random share of the attempts is done, strikes, and (for a
//! process) restarts it after a pause.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::RngExt;

/// Shared count of finished attempts.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicUsize>);

impl Progress {
    pub fn done(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until at least `n` attempts are done.
    pub async fn reach(&self, n: usize) {
        while self.done() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `count` moments, as numbers of finished attempts, spread at random over
/// 10–80% of `total`, in order.
pub fn moments(total: usize, count: usize) -> Vec<usize> {
    let mut rng = rand::rng();
    let mut at: Vec<usize> = (0..count)
        .map(|_| rng.random_range(total / 10..=total * 8 / 10))
        .collect();
    at.sort_unstable();
    at
}

/// A pause of 300–1500 ms: a process stays dead that long before it restarts.
pub fn downtime() -> Duration {
    Duration::from_millis(rand::rng().random_range(300..=1500))
}
