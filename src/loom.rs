//! The sync-primitive shim: `std` normally, `loom` under `RUSTFLAGS="--cfg loom"`.
//!
//! Owns: the choice of implementation of every atomic and `Mutex` that crosses threads
//! in evloop, so the cross-thread protocols (park / wake-up coalescing, callback
//! cells, future completion) can be model-checked. Must not touch: anything else —
//! loop-thread-only state uses `Cell` / `RefCell` directly. `Arc` stays `std`'s
//! everywhere: loom's `Arc` cannot be unsized to `Arc<dyn Trait>` and
//! `std::task::Wake` needs `std::sync::Arc`; reference counting is not what the models
//! check.

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue;

/// The cross-thread queue under loom, with the ordering guarantees of
/// `crossbeam_queue::SegQueue` and no more: `push` publishes with `Release` and
/// `is_empty` is a lock-free `Acquire` load, so the model cannot lean on mutex
/// happens-before edges that the real lock-free queue does not provide (the park
/// protocol's fences must carry the proof).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct SegQueue<T> {
    items: loom::sync::Mutex<std::collections::VecDeque<T>>,
    len: loom::sync::atomic::AtomicUsize,
}

#[cfg(loom)]
impl<T> SegQueue<T> {
    pub(crate) fn new() -> Self {
        SegQueue {
            items: loom::sync::Mutex::new(std::collections::VecDeque::new()),
            len: loom::sync::atomic::AtomicUsize::new(0),
        }
    }
    pub(crate) fn push(&self, value: T) {
        self.items.lock().unwrap().push_back(value);
        self.len.fetch_add(1, loom::sync::atomic::Ordering::Release);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        if self.len.load(loom::sync::atomic::Ordering::Acquire) == 0 {
            return None;
        }
        let item = self.items.lock().unwrap().pop_front();
        if item.is_some() {
            self.len.fetch_sub(1, loom::sync::atomic::Ordering::AcqRel);
        }
        item
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(loom::sync::atomic::Ordering::Acquire) == 0
    }
}

/// `UnsafeCell` whose accesses loom can track: under `--cfg loom` two overlapping
/// accesses from different threads fail the model. The API is loom's: a guard-like
/// [`cell::MutPtr`] held for as long as the access lasts.
pub(crate) mod cell {
    #[cfg(loom)]
    pub(crate) use loom::cell::{MutPtr, UnsafeCell};

    #[cfg(not(loom))]
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn get_mut(&self) -> MutPtr<T> {
            MutPtr(self.0.get())
        }
    }

    /// A raw mutable pointer standing for one access to an [`UnsafeCell`].
    #[cfg(not(loom))]
    #[derive(Debug)]
    pub(crate) struct MutPtr<T>(*mut T);

    #[cfg(not(loom))]
    impl<T> MutPtr<T> {
        /// # Safety
        ///
        /// The caller must have exclusive access to the cell's value for as long as
        /// the returned reference (and this pointer) live.
        #[allow(clippy::mut_from_ref)]
        pub(crate) unsafe fn deref(&self) -> &mut T {
            // SAFETY: exclusivity is the caller's obligation (see `# Safety`).
            unsafe { &mut *self.0 }
        }

        /// Runs `f` with the raw pointer (loom's API): for shared access without
        /// making a `&mut T` first.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0)
        }
    }
}

/// One round of waiting in a spin lock: a CPU hint for the first rounds, then yielding
/// the thread (the holder may have been preempted). Under loom, always a yield so the
/// model can schedule the holder.
pub(crate) fn spin_wait(round: u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Mutex, RwLock, RwLockReadGuard};

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{Mutex, RwLock, RwLockReadGuard};

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
}

/// What the loom models (`future::loom_models`, `sync::loom_models`,
/// `fs::job::loom_models`) share: the checker's bounds and a counting waker.
#[cfg(all(test, loom))]
pub(crate) mod models {
    use std::sync::Arc;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs `f` under loom. Locks that spin (yielding under loom) need more branches
    /// than the default; bounded preemptions keep each exploration to a few seconds in
    /// release mode.
    pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.max_branches = 100_000;
        builder.preemption_bound.get_or_insert(3);
        builder.check(f);
    }

    /// A waiter's waker, counting its wake-ups. The count is std's atomic, invisible to
    /// loom: it is what a model asserts on, not part of the protocol, and a loom atomic
    /// would multiply the interleavings explored (the models' run goes from seconds to
    /// minutes). A model that spins until it is woken needs a loom atomic instead, so
    /// that a lost wake-up is reported as a deadlock (`fs::job`'s own waker).
    pub(crate) struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        pub(crate) fn new() -> Arc<CountingWaker> {
            Arc::new(CountingWaker(AtomicUsize::new(0)))
        }

        pub(crate) fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }
}
