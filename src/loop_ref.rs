//! [`LoopRef`]: the counted reference to a loop's [`Shared`] state that every
//! `LoopHandle` holds — an `Arc` whose count is not touched on the loop's own thread.
//!
//! Owns: the allocation of `Shared` and its reference count, including the per-thread
//! *reserve* of pre-acquired references. Must not touch: anything inside `Shared`.
//!
//! Why: every future, task and callback cell holds a `LoopHandle` (`get_loop`), so an
//! `Arc` would cost two locked read-modify-writes per cell on the hottest path of the
//! loop (measured: ~7 % of a spawn/complete ping-pong). The count is instead split in
//! two:
//!
//! | where a handle is cloned / dropped | what changes                                  |
//! |------------------------------------|-----------------------------------------------|
//! | on the thread running that loop    | the thread-local `RESERVE` (a plain `Cell`)   |
//! | anywhere else                      | the atomic `refs`, like `Arc`                 |
//!
//! Invariant: `refs` = live `LoopRef`s + `RESERVE` of the thread running the loop (if
//! any). A clone on the loop thread takes a reference out of the reserve (refilling it
//! with one `fetch_add(BATCH)` when empty); a drop there puts it back (giving
//! `BATCH` back with one `fetch_sub` when the reserve grows past `2 * BATCH`, which can
//! never reach zero because `BATCH` stay reserved). A reserve only exists while its
//! loop is the thread's current loop: [`flush_reserve`] returns it to `refs` whenever
//! `context` changes the current loop, while the loop core still holds a handle — so a
//! reserve is never stranded and `refs` reaches zero exactly when the last handle
//! anywhere is dropped.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use crate::context;
use crate::shared::Shared;

/// References taken from `refs` at once by a loop thread whose reserve ran dry.
const BATCH: usize = 1024;
/// Like `Arc`: a count this large means leaked handles in a loop; abort rather than
/// risk an overflow to zero.
const MAX_REFS: usize = isize::MAX as usize;

thread_local! {
    /// References pre-acquired in `refs` by the loop currently running on this thread
    /// and not yet handed to a `LoopRef` (see the module doc). Zero when no loop runs.
    static RESERVE: Cell<usize> = const { Cell::new(0) };
}

struct Inner {
    refs: AtomicUsize,
    shared: Shared,
}

/// A counted, `Send + Sync` reference to a loop's [`Shared`] state.
pub(crate) struct LoopRef {
    ptr: NonNull<Inner>,
}

// SAFETY: `LoopRef` only gives out `&Shared`, and `Shared` is `Send + Sync` (asserted in
// `_assert_kinds`); the count is atomic for every access that can come from more than
// one thread, and the thread-local reserve is only ever touched by its own thread.
unsafe impl Send for LoopRef {}
// SAFETY: as for `Send`: shared access hands out `&Shared` only.
unsafe impl Sync for LoopRef {}

impl LoopRef {
    pub(crate) fn new(shared: Shared) -> LoopRef {
        let inner = Box::new(Inner {
            refs: AtomicUsize::new(1),
            shared,
        });
        LoopRef {
            ptr: NonNull::from(Box::leak(inner)),
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: `ptr` came from `Box::leak` and the allocation is freed only when
        // `refs` drops to zero, which cannot happen while `self` (one of the counted
        // references) is alive.
        unsafe { self.ptr.as_ref() }
    }

    /// On the thread running this loop?
    fn on_loop_thread(&self) -> bool {
        context::current_id() == self.inner().shared.id
    }

    fn acquire(&self, n: usize) {
        if self.inner().refs.fetch_add(n, Ordering::Relaxed) > MAX_REFS - n {
            std::process::abort();
        }
    }

    /// Gives `n` counted references back; frees `Shared` when they were the last.
    fn release(&self, n: usize) {
        if self.inner().refs.fetch_sub(n, Ordering::Release) != n {
            return;
        }
        // Pairs with the `Release` decrements of every other holder: their uses of
        // `Shared` happen before it is dropped.
        fence(Ordering::Acquire);
        // SAFETY: `refs` just reached zero, so `self` held the last counted reference:
        // no other `LoopRef` and no reserve can reach this allocation any more, and it
        // was created by `Box::leak` in `new`.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl Clone for LoopRef {
    fn clone(&self) -> LoopRef {
        if self.on_loop_thread() {
            let reserve = RESERVE.get();
            if reserve > 0 {
                RESERVE.set(reserve - 1);
            } else {
                self.acquire(BATCH);
                RESERVE.set(BATCH - 1);
            }
        } else {
            self.acquire(1);
        }
        LoopRef { ptr: self.ptr }
    }
}

impl Drop for LoopRef {
    fn drop(&mut self) {
        if self.on_loop_thread() {
            let reserve = RESERVE.get() + 1;
            if reserve < 2 * BATCH {
                RESERVE.set(reserve);
            } else {
                // `BATCH` stay reserved, so this cannot reach zero.
                RESERVE.set(BATCH);
                self.release(reserve - BATCH);
            }
        } else {
            self.release(1);
        }
    }
}

impl Deref for LoopRef {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner().shared
    }
}

impl fmt::Debug for LoopRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopRef")
            .field("loop_id", &self.inner().shared.id)
            .finish()
    }
}

/// Returns this thread's reserve to `refs` of `loop_ref`'s loop. `context` calls it,
/// while `loop_ref` is still alive, whenever that loop stops being the thread's
/// current loop.
pub(crate) fn flush_reserve(loop_ref: &LoopRef) {
    debug_assert!(loop_ref.on_loop_thread(), "flushing another loop's reserve");
    let reserve = RESERVE.replace(0);
    if reserve > 0 {
        // `loop_ref` itself is counted outside the reserve: never the last reference.
        loop_ref.release(reserve);
    }
}

/// Takes this thread's reserve out of play (another loop becomes current); give it
/// back with [`restore_reserve`] once the previous loop is current again.
pub(crate) fn suspend_reserve() -> usize {
    RESERVE.replace(0)
}

/// Puts back a reserve taken by [`suspend_reserve`].
pub(crate) fn restore_reserve(reserve: usize) {
    debug_assert_eq!(RESERVE.get(), 0, "restoring over a live reserve");
    RESERVE.set(reserve);
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Shared>();
    send_sync::<LoopRef>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_arithmetic_never_strands_a_reference() {
        // Off any loop every clone and drop goes to the atomic count, like `Arc`.
        let (reactor, unparker, registrar) = crate::reactor::Reactor::new(8).unwrap();
        drop(reactor);
        let config = crate::shared::ExecutorConfig {
            max_threads: 1,
            keep_alive: std::time::Duration::from_secs(1),
        };
        let shared = Shared::new(unparker, registrar, config);
        let a = LoopRef::new(shared);
        let b = a.clone();
        assert_eq!(a.inner().refs.load(Ordering::Relaxed), 2);
        drop(b);
        assert_eq!(a.inner().refs.load(Ordering::Relaxed), 1);
    }

    /// Pins the reserve protocol: handles cloned and dropped on the loop thread (past
    /// several refills and give-backs), handles dropped on another thread, and handles
    /// cloned there and dropped on the loop all leave `refs` exactly where it was once
    /// the loop stops running — a reserve left behind would keep `Shared` alive forever,
    /// one given back twice would free it under live handles.
    #[test]
    fn every_reference_is_accounted_for_once_the_loop_stops() {
        use crate::handle::LoopHandle;
        let rt = crate::Runtime::new().unwrap();
        let handle = rt.handle();
        let refs = |h: &LoopHandle| h.shared.inner().refs.load(Ordering::Relaxed);
        let before = refs(&handle);
        let remote = handle.clone();
        rt.block_on(async move {
            let mut mine: Vec<LoopHandle> = (0..5 * BATCH).map(|_| LoopHandle::current()).collect();
            let theirs = mine.split_off(2 * BATCH);
            std::thread::spawn(move || drop(theirs)).join().unwrap();
            let cloned_there: Vec<LoopHandle> =
                std::thread::spawn(move || (0..3 * BATCH).map(|_| remote.clone()).collect())
                    .join()
                    .unwrap();
            drop(cloned_there);
            drop(mine);
        });
        assert_eq!(refs(&handle), before);
    }
}
