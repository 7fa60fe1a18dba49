//! The loop a loop-local primitive belongs to (asyncio binds a primitive to the loop
//! of its first wait, and so does evloop).
//!
//! Owns: one `Cell<u64>` per primitive. Must not touch: anything else. Checked only
//! when a wait is queued (the slow path), never on an uncontended operation.

use std::cell::Cell;

use crate::context;

/// The id of the loop whose tasks wait on a primitive (0: none yet).
#[derive(Debug, Default)]
pub(crate) struct LoopBound(Cell<u64>);

impl LoopBound {
    /// Binds the primitive to the running loop on its first queued wait; later waits
    /// must come from the same loop.
    ///
    /// # Panics
    ///
    /// If a wait is queued from another loop than the first one: `what` is the type,
    /// `instead` the thread-safe type to use for tasks of different loops.
    #[track_caller]
    pub(crate) fn check(&self, what: &'static str, instead: &str) {
        // K6: the wait is about to queue — what a task dump names.
        crate::task::waiting_on_sync(what);
        let id = context::current_id();
        if id == 0 {
            // Polled outside any loop (a foreign executor): nothing to bind to.
            return;
        }
        match self.0.get() {
            0 => self.0.set(id),
            bound if bound == id => {}
            _ => panic!(
                "evloop::sync::{what} is loop-local: it is bound to the event loop of its first \
                 wait and was waited on from another loop; for tasks of different loops or \
                 threads use {instead}"
            ),
        }
    }
}
