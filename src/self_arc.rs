//! [`SelfArc`]: a reference-counted cell's pointer to its own `Arc` allocation.
//!
//! Owns: turning `&self` of a value that lives in an `Arc` back into an owned
//! `Arc<Self>` (or a borrowed `Waker`) soundly. Must not touch: the value itself.
//!
//! Why a stored pointer: a pointer made from `&self` only carries provenance for the
//! value, not for the `Arc`'s reference counts next to it, so `Arc::from_raw(self)`
//! followed by a count update is undefined behaviour under Stacked Borrows (Miri flags
//! it). The pointer kept here comes from `Weak::as_ptr` during `Arc::new_cyclic`,
//! which carries provenance for the whole allocation.

use std::sync::{Arc, Weak};

/// The address of the `Arc` allocation that holds the value containing this field.
pub(crate) struct SelfArc<T>(*const T);

// SAFETY: `SelfArc` is an address; it only gives out `Arc<T>`s, which are `Send`/`Sync`
// exactly when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for SelfArc<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for SelfArc<T> {}

impl<T> SelfArc<T> {
    /// For use inside `Arc::new_cyclic(|weak| …)`.
    pub(crate) fn new(weak: &Weak<T>) -> SelfArc<T> {
        SelfArc(weak.as_ptr())
    }

    /// The pointer `Arc::as_ptr` would return for the owning `Arc`.
    pub(crate) fn as_ptr(&self) -> *const T {
        self.0
    }

    /// A new owned reference to the owning `Arc`.
    ///
    /// # Safety
    ///
    /// The value holding this `SelfArc` must be alive and not being dropped (its strong
    /// count is at least 1) — true whenever it is reached through an `Arc` or a
    /// reference derived from one, outside its `Drop`.
    pub(crate) unsafe fn arc(&self) -> Arc<T> {
        // SAFETY: `self.0` is the `Arc::as_ptr` of a live `Arc<T>` (caller's contract),
        // with provenance for the whole allocation (from `Weak::as_ptr`); the increment
        // is the reference the returned `Arc` owns.
        unsafe {
            Arc::increment_strong_count(self.0);
            Arc::from_raw(self.0)
        }
    }
}
