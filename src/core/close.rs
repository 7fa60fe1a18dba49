//! Closing a loop (L14, U2, R5's last step): what happens to everything still queued,
//! registered or pending on it.
//!
//! Owns: the order of the close and the rule that each user value is dropped under its
//! own catch (rule 7). Must not touch: how those things run while the loop is open.

use super::{Local, Ready, TimerPayload};
use crate::exception::{ExceptionSource, drop_each_catching, for_each_catching};
use crate::stats::set;

impl Local {
    /// Closes the loop (L14): from now on nothing scheduled on it runs. Everything
    /// queued, every timer and every I/O waiter is dropped; their handles report
    /// cancelled. Pending futures waited on from outside the loop are completed with
    /// "event loop is closed" (U2), which also drops their callbacks (breaking
    /// reference cycles through them). Each user value is dropped under its own
    /// `catch_unwind` (rule 7): never panics, never aborts.
    pub(crate) fn close(&self) {
        self.abort_all_tasks();
        self.clear_watches();
        self.shared().signals.clear(&self.handle);
        let shared = self.shared();
        shared.park.close();
        shared.drain_closed();
        let orphans = shared.closing.close();
        for_each_catching(
            &self.handle,
            "Exception while completing a future of a closing loop",
            ExceptionSource::Future,
            orphans,
            |future| {
                if let Some(future) = future.upgrade() {
                    future.loop_closed();
                }
            },
        );
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        let mut timers = Vec::new();
        self.wheel.borrow_mut().drain(|p| timers.push(p));
        let mut wakers = Vec::new();
        self.reactor.borrow_mut().drain(&mut wakers);
        let what = "Exception while dropping a callback of a closing loop";
        for_each_catching(
            &self.handle,
            what,
            ExceptionSource::Callback,
            ready,
            |item| {
                if let Ready::Callback(cell) = item {
                    cell.cancel();
                }
            },
        );
        for_each_catching(
            &self.handle,
            what,
            ExceptionSource::Callback,
            timers,
            |timer| {
                if let TimerPayload::Callback(cell) = timer {
                    cell.cancel();
                }
            },
        );
        drop_each_catching(
            &self.handle,
            "Exception while dropping a waker of a closing loop",
            wakers,
        );
        set(&shared.stats.ready_len, 0);
        set(&shared.stats.timers_pending, 0);
    }
}
