//! Drawing a group's codes (DESIGN.md §3): random, distinct, digested with
//! the code key, and sorted so that a million of them are stored in seconds.

use uuid::Uuid;

use crate::codes::{self, CodeKey, CodeText};

/// A code about to be stored; `display` goes back to the admin once.
pub struct NewCode {
    pub(crate) id: Uuid,
    pub(crate) digest: [u8; 32],
    /// The full code. Its hint is derived when the code is stored: a million
    /// codes held in memory at once are the peak of a big group's creation.
    pub(crate) display: CodeText,
}

/// Draws `n` distinct codes. A million HMACs take about a second, so the work
/// is split across the cores; it runs on a blocking thread.
pub fn draw_codes(key: &CodeKey, n: usize, prefix: Option<&str>) -> Vec<NewCode> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(8);
    let per = n.div_ceil(threads.max(1)).max(1);
    let draw = |n: usize| -> Vec<NewCode> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| {
                    let len = per.min(n - start);
                    s.spawn(move || {
                        let mut rng = rand::rng();
                        (0..len)
                            .filter_map(|_| new_code(key, &codes::generate(&mut rng, prefix)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for h in handles {
                out.append(&mut h.join().unwrap_or_default());
            }
            out
        })
    };
    // Digests are random, so inserting them in drawing order would touch a
    // random page of the digest index per code. Sorted by digest, and with
    // ids (UUID v7, increasing) given in that order, both indexes of `codes`
    // are written front to back: a 1M-code group stays seconds, not minutes.
    // Sorted, a repeat inside the batch (odds ~10^-7 for a million) sits next
    // to its twin and is dropped, then drawn again, without a set of a
    // million digests in memory.
    let mut out = draw(n);
    loop {
        out.sort_unstable_by_key(|c| c.digest);
        out.dedup_by_key(|c| c.digest);
        if out.len() >= n {
            break;
        }
        let mut more = draw(n - out.len());
        out.append(&mut more);
    }
    for c in &mut out {
        c.id = Uuid::now_v7();
    }
    out
}

/// A drawn code, or `None` if it cannot be held (then it is drawn again).
pub(crate) fn new_code(key: &CodeKey, display: &str) -> Option<NewCode> {
    let canonical = codes::canonicalize(display)?;
    Some(NewCode {
        id: Uuid::nil(),
        digest: key.digest(&canonical),
        display: CodeText::new(display)?,
    })
}
