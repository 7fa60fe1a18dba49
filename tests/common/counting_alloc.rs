//! A counting global allocator for the leak tests: it wraps `System` and counts live
//! allocations and live bytes with atomics. A test binary that uses it declares
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;
//! ```
//!
//! and compares [`live`] before and after what it checks, under a [`Watchdog`] (which
//! allocates nothing once armed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// The allocator (declare it `#[global_allocator]` in the test binary).
pub struct CountingAlloc;

static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Every allocation and reallocation since the start (never decremented).
static TOTAL_ALLOCS: AtomicIsize = AtomicIsize::new(0);

fn count_alloc(size: usize) {
    TOTAL_ALLOCS.fetch_add(1, Ordering::SeqCst);
    LIVE_ALLOCS.fetch_add(1, Ordering::SeqCst);
    LIVE_BYTES.fetch_add(size as isize, Ordering::SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_ALLOCS.fetch_sub(1, Ordering::SeqCst);
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the
        // rest of `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            TOTAL_ALLOCS.fetch_add(1, Ordering::SeqCst);
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        }
        new
    }
}

/// Live allocations and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    pub allocations: isize,
    pub bytes: isize,
}

/// Allocations and reallocations made so far, freed or not (only meaningful in a
/// binary that installed [`CountingAlloc`]).
pub fn total_allocations() -> isize {
    TOTAL_ALLOCS.load(Ordering::SeqCst)
}

/// What is allocated now (only meaningful in a binary that installed [`CountingAlloc`]).
pub fn live() -> Live {
    Live {
        allocations: LIVE_ALLOCS.load(Ordering::SeqCst),
        bytes: LIVE_BYTES.load(Ordering::SeqCst),
    }
}

/// Ends the process if not disarmed in time. After it is armed its thread only parks
/// and reads the clock, so it allocates nothing while the test measures.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn arm(what: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        let thread = {
            let (done, armed) = (done.clone(), armed.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + limit;
                armed.store(true, Ordering::SeqCst);
                while !done.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now >= deadline {
                        eprintln!("watchdog: {what} still running after {limit:?}");
                        std::process::exit(101);
                    }
                    std::thread::park_timeout(deadline - now);
                }
            })
        };
        while !armed.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
