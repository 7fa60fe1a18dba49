//! Process-unique identifiers handed out without a locked instruction per id.
//!
//! Owns: the global counters behind task ids and done-callback keys, and the per-thread
//! blocks they are drawn from. Must not touch: what the ids identify.
//!
//! Each thread takes a block of [`BLOCK`] ids from the global counter with one
//! `fetch_add` and then counts through it with plain thread-local stores, so ids are
//! unique in the process (blocks never overlap) and increase in creation order on each
//! thread. 64-bit counters never wrap in practice, so an id is never reissued: that is
//! what lets an id name its owner (rule 5 of ARCHITECTURE.md: an id from one future is
//! never accepted by another).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::LocalKey;

/// Ids a thread takes from a global counter at once.
pub(crate) const BLOCK: u64 = 1024;

/// A process-wide sequence of ids, starting at 1.
pub(crate) struct Sequence {
    next: AtomicU64,
}

impl Sequence {
    pub(crate) const fn new() -> Sequence {
        Sequence {
            next: AtomicU64::new(1),
        }
    }

    /// The next id of the calling thread's block (`local` is that thread's cursor: the
    /// next id and the end of its block).
    pub(crate) fn next(&'static self, local: &'static LocalKey<Cell<(u64, u64)>>) -> u64 {
        local
            .try_with(|ids| {
                let (next, end) = ids.get();
                if next < end {
                    ids.set((next + 1, end));
                    next
                } else {
                    let start = self.next.fetch_add(BLOCK, Relaxed);
                    ids.set((start + 1, start + BLOCK));
                    start
                }
            })
            // During thread teardown the cursor is gone: take a single id.
            .unwrap_or_else(|_| self.next.fetch_add(1, Relaxed))
    }
}

/// Declares a thread-local block cursor for a [`Sequence`].
macro_rules! block_cursor {
    ($name:ident) => {
        thread_local! {
            static $name: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
    };
}
pub(crate) use block_cursor;

#[cfg(test)]
mod tests {
    use super::*;

    static SEQ: Sequence = Sequence::new();
    block_cursor!(CURSOR);

    #[test]
    fn ids_are_unique_across_threads_and_increase_per_thread() {
        let per_thread = |n| (0..n).map(|_| SEQ.next(&CURSOR)).collect::<Vec<u64>>();
        let handles: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(move || per_thread(3 * BLOCK as usize / 2)))
            .collect();
        let mut all = Vec::new();
        for h in handles {
            let ids = h.join().unwrap();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing per thread");
            all.extend(ids);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no id handed out twice");
        assert!(all[0] >= 1, "ids start at 1");
    }
}
