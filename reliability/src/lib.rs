//! The reliability suite's machinery (issue 5): the platform as real
//! processes that can be killed ([`platform`], [`nats_cluster`]), redeem load
//! over HTTP that records every answer ([`load`]), fault injection driven by
//! the load's progress ([`faults`]), and the invariants checked once the
//! platform is quiet ([`verify`]). The scenarios are in `tests/faults`.

pub mod faults;
pub mod load;
pub mod nats_cluster;
pub mod platform;
pub mod procstat;
pub mod verify;

/// A distinct valid US phone number for each `i` below 8,000,000.
pub fn phone(i: usize) -> String {
    format!("+1415{:03}{:04}", 200 + (i / 10_000) % 800, i % 10_000)
}

/// How big a run is: `RELIABILITY_SCALE=full` for the sizes of the issue
/// (slow), otherwise the CI size, which keeps every scenario and its faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Ci,
    Full,
}

impl Scale {
    pub fn from_env() -> Scale {
        match std::env::var("RELIABILITY_SCALE").as_deref() {
            Ok("full") => Scale::Full,
            Ok("ci") | Err(_) => Scale::Ci,
            Ok(other) => panic!("RELIABILITY_SCALE must be `ci` or `full`, not {other:?}"),
        }
    }

    /// `ci` at CI size, `full` at full size.
    pub fn pick<T>(self, ci: T, full: T) -> T {
        match self {
            Scale::Ci => ci,
            Scale::Full => full,
        }
    }
}

/// One scenario at a time: each runs a whole platform, and on two cores two
/// platforms under load would measure the machine, not the platform. Tests
/// take this first; a panicking test releases it as it unwinds.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
