//! [`SelfArc`]: a reference-counted cell's pointer to its own `Arc` allocation.
//!
//! Owns: turning `&self` of a value that lives in an `Arc` back into an owned
//! `Arc<Self>` (or a borrowed `Waker`) soundly. Must not touch: the value itself.
//!
//! Why a stored pointer: a pointer made from `&self` only carries provenance for the
//! value, not for the `Arc`'s reference counts next to it, so `Arc::from_raw(self)`
//! followed by a count update is undefined behaviour under Stacked Borrows (Miri flags
//! it). The pointer kept here is `Arc::as_ptr` of the owning `Arc` — the pointer
//! `Arc::into_raw` would return, which carries provenance for the whole allocation —
//! taken from the `Arc::new(MaybeUninit)` allocation the value is then written into
//! (`TaskCell::new`), before anything else can see it. (`Arc::new_cyclic` would give
//! the same pointer, but it increments the strong count with a locked
//! read-modify-write once the value is built: one per task created, issue 17.)

use std::sync::Arc;

/// The address of the `Arc` allocation that holds the value containing this field.
pub(crate) struct SelfArc<T>(*const T);

// SAFETY: `SelfArc` is an address; it only gives out `Arc<T>`s, which are `Send`/`Sync`
// exactly when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for SelfArc<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for SelfArc<T> {}

impl<T> SelfArc<T> {
    /// The `SelfArc` of the value `Arc::as_ptr` will return `ptr` for.
    ///
    /// # Safety
    ///
    /// `ptr` must be the `Arc::as_ptr` of the (possibly not yet initialised) `Arc` whose
    /// value this `SelfArc` becomes part of.
    pub(crate) unsafe fn pointing_at(ptr: *const T) -> SelfArc<T> {
        SelfArc(ptr)
    }

    /// The pointer `Arc::as_ptr` would return for the owning `Arc`.
    pub(crate) fn as_ptr(&self) -> *const T {
        self.0
    }

    /// A new owned reference to the owning `Arc`.
    ///
    /// # Safety
    ///
    /// The value holding this `SelfArc` must live in the `Arc` it was made for
    /// ([`pointing_at`](Self::pointing_at)) and be alive and not being dropped (its
    /// strong count is at least 1) — true whenever it is reached through an `Arc` or a
    /// reference derived from one, outside its `Drop`.
    pub(crate) unsafe fn arc(&self) -> Arc<T> {
        let ptr = self.as_ptr();
        // SAFETY: `ptr` is the `Arc::as_ptr` of a live `Arc<T>` (caller's contract),
        // with provenance for the whole allocation; the increment is the reference the
        // returned `Arc` owns.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SelfArc;
    use std::sync::Arc;

    struct Cell {
        me: SelfArc<Cell>,
        value: u32,
    }

    #[test]
    fn the_recorded_arc_is_the_owning_one_and_counts() {
        let uninit = Arc::<Cell>::new_uninit();
        let ptr = Arc::as_ptr(&uninit) as *mut Cell;
        // SAFETY: the fresh allocation's only reference is `uninit`; `ptr` is its
        // `as_ptr`, written once before `assume_init`.
        let cell = unsafe {
            ptr.write(Cell {
                me: SelfArc::pointing_at(ptr),
                value: 7,
            });
            uninit.assume_init()
        };
        assert_eq!(cell.me.as_ptr(), Arc::as_ptr(&cell));
        // SAFETY: `cell.me` points at `cell`'s own allocation, alive through `cell`.
        let again = unsafe { cell.me.arc() };
        assert!(Arc::ptr_eq(&cell, &again));
        assert_eq!(Arc::strong_count(&cell), 2);
        drop(again);
        assert_eq!(Arc::strong_count(&cell), 1);
        assert_eq!(cell.value, 7);
    }
}
