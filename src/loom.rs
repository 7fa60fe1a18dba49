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

/// The cross-thread queue under loom: a loom mutex around a `VecDeque`, with the subset
/// of `crossbeam_queue::SegQueue`'s API that evloop uses.
#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct SegQueue<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> SegQueue<T> {
    pub(crate) fn new() -> Self {
        SegQueue(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }
    pub(crate) fn push(&self, value: T) {
        self.0.lock().unwrap().push_back(value);
    }
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::Mutex;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
        };
    }
}
