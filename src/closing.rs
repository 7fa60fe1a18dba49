//! What a loop must finish when it closes: its pending futures that something outside
//! the loop waits on (SPEC U2, Q4).
//!
//! Owns: one loop's registry of such futures (weak references, keyed by a slab index
//! the future keeps) and the closed flag that refuses new entries. Must not touch: the
//! futures' state — on close it hands the entries back and the loop completes each one
//! ([`Closable::loop_closed`]) outside the registry's lock.
//!
//! A future is registered (once, by `future::core`) when, while it is pending, it gets a
//! done-callback, or an awaiter or `gather` observer from off its loop's thread. Those
//! are exactly the waits the loop's own shutdown does not end: the loop's tasks are
//! aborted at close, but a task of another loop, a plain thread, or a callback chain
//! (two futures chained to each other: a reference cycle) would wait, or live, forever.
//! Closing completes them with `InvalidState("event loop is closed")`, which wakes the
//! waiters and drops the callbacks (scheduling on a closed loop drops the closure),
//! breaking the cycles. A future is unregistered when it completes or is dropped, so
//! the registry holds only live, pending futures (Q8).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A future cell that its loop completes when it closes.
pub(crate) trait Closable: Send + Sync {
    /// The loop closed while the future was pending: complete it with the "event loop
    /// is closed" error (or, for a task, end it cancelled).
    fn loop_closed(self: Arc<Self>);
}

#[derive(Default)]
struct State {
    closed: bool,
    /// By the address of the future's state (see the module docs).
    futures: HashMap<usize, Weak<dyn Closable>>,
}

/// One loop's registry (in its `Shared` part: futures register from any thread).
#[derive(Default)]
pub(crate) struct Closing {
    state: Mutex<State>,
}

impl Closing {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a pending future under `key` (the address of its state); `false` once
    /// the loop is closed (the caller then completes the future itself).
    pub(crate) fn track(&self, key: usize, future: Weak<dyn Closable>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let previous = state.futures.insert(key, future);
        debug_assert!(previous.is_none(), "a future is registered once");
        true
    }

    /// Forgets a registration (the future completed or was dropped). A no-op after
    /// close, when the entries were already handed out.
    pub(crate) fn untrack(&self, key: usize) {
        let removed = {
            let mut state = self.lock();
            let removed = state.futures.remove(&key);
            // Give memory back after a burst (Q8: the heap returns where it was).
            let (len, capacity) = (state.futures.len(), state.futures.capacity());
            if capacity > 64 && len * 4 < capacity {
                state.futures.shrink_to(len * 2);
            }
            removed
        };
        // Only a weak reference: dropping it frees at most the cell's memory.
        drop(removed);
    }

    /// Closes the registry and hands out every registered future.
    pub(crate) fn close(&self) -> Vec<Weak<dyn Closable>> {
        let mut state = self.lock();
        state.closed = true;
        std::mem::take(&mut state.futures).into_values().collect()
    }
}

impl std::fmt::Debug for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Closing")
            .field("closed", &state.closed)
            .field("futures", &state.futures.len())
            .finish()
    }
}
