//! A task's scheduling header: its id, its slot in the loop's slab, whether it is
//! queued, its cancel-request count (T4), its loop-thread-only state and its name.
//!
//! Owns: those fields and their access rules. Must not touch: the coroutine or the
//! future state (that is `task::cell`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::coop::{LoopLocal, TaskLocal};
use crate::exception::ExceptionSource;
use crate::ids::{Sequence, block_cursor};
use crate::loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

static TASK_IDS: Sequence = Sequence::new();
block_cursor!(TASK_ID_CURSOR);

/// A fresh task id: unique in the process and increasing in creation order on each
/// thread. Each thread takes a block of ids at a time, so creating a task costs no
/// locked instruction (asyncio's `Task-N` counter is per process; evloop's is per
/// thread within one process-wide sequence).
fn next_task_id() -> u64 {
    TASK_IDS.next(&TASK_ID_CURSOR)
}

/// The names given with `set_name`, by task id: a side table, so an unnamed task (the
/// usual case) carries one flag instead of a mutex and a pointer (P14). An entry is
/// removed when its task's header is dropped.
static NAMES: Mutex<BTreeMap<u64, Arc<str>>> = Mutex::new(BTreeMap::new());

fn names() -> std::sync::MutexGuard<'static, BTreeMap<u64, Arc<str>>> {
    NAMES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// No slab slot yet (a task spawned from another thread, not received by its loop).
const NO_SLOT: u64 = u64::MAX;

/// The scheduling header of a task.
///
/// Its loop's id lives in `local` (the check every loop-thread access makes), not
/// twice.
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    /// Slab key (low 32 bits) and generation (high 32); written and read on the loop
    /// thread only.
    slot: AtomicU64,
    /// In the ready queue already; loop thread only (relaxed loads and stores).
    scheduled: AtomicBool,
    /// A name was set: it is in `NAMES` under `id`.
    named: AtomicBool,
    /// `cancelling()`: cancel requests minus `uncancel()`s (T4), saturating.
    cancel_requests: AtomicU32,
    pub(crate) local: LoopLocal<RefCell<TaskLocal>>,
}

impl TaskHeader {
    pub(crate) fn new(loop_id: u64, context: crate::contextvar::Snapshot) -> TaskHeader {
        TaskHeader {
            id: next_task_id(),
            slot: AtomicU64::new(NO_SLOT),
            scheduled: AtomicBool::new(false),
            named: AtomicBool::new(false),
            cancel_requests: AtomicU32::new(0),
            local: LoopLocal::new(
                loop_id,
                RefCell::new(TaskLocal {
                    context,
                    ..TaskLocal::default()
                }),
            ),
        }
    }

    /// The id of the loop the task belongs to.
    #[inline]
    pub(crate) fn loop_id(&self) -> u64 {
        self.local.loop_id()
    }

    /// The task is being polled: a wake-up queues it again. Loop thread only.
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Relaxed);
    }

    /// One more cancel request (T3, T4).
    pub(crate) fn add_cancel_request(&self) {
        let _ = self
            .cancel_requests
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(1))
            });
    }

    /// One request fewer (`uncancel`, saturating at 0); the count before.
    pub(crate) fn withdraw_cancel_request(&self) -> usize {
        self.cancel_requests
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .map_or(0, |n| n as usize)
    }

    pub(crate) fn slot(&self) -> Option<(u32, u32)> {
        let v = self.slot.load(Ordering::Relaxed);
        (v != NO_SLOT).then_some((v as u32, (v >> 32) as u32))
    }

    pub(crate) fn set_slot(&self, key: u32, generation: u32) {
        self.slot.store(
            u64::from(key) | (u64::from(generation) << 32),
            Ordering::Relaxed,
        );
    }

    /// Marks the task queued; `false` if it already was.
    pub(crate) fn try_schedule(&self) -> bool {
        if self.scheduled.load(Ordering::Relaxed) {
            return false;
        }
        self.scheduled.store(true, Ordering::Relaxed);
        true
    }

    /// Queued to be polled (loop thread; relaxed).
    pub(crate) fn is_scheduled(&self) -> bool {
        self.scheduled.load(Ordering::Relaxed)
    }

    pub(crate) fn cancelling(&self) -> usize {
        self.cancel_requests.load(Ordering::Acquire) as usize
    }

    fn given_name(&self) -> Option<Arc<str>> {
        if !self.named.load(Ordering::Acquire) {
            return None;
        }
        names().get(&self.id).cloned()
    }

    pub(crate) fn name(&self) -> String {
        match self.given_name() {
            Some(name) => name.to_string(),
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: &str) {
        let old = names().insert(self.id, Arc::from(name));
        self.named.store(true, Ordering::Release);
        drop(old); // a `str`: no user code, but outside the lock all the same
    }

    pub(crate) fn source(&self) -> ExceptionSource {
        let name = self.given_name().map(|n| n.to_string());
        ExceptionSource::Task { id: self.id, name }
    }
}

impl Drop for TaskHeader {
    fn drop(&mut self) {
        // A load, not `get_mut`: the loom shim's atomics have no `get_mut`, and a drop
        // is not a hot path.
        if self.named.load(Ordering::Acquire) {
            let old = names().remove(&self.id);
            drop(old);
        }
    }
}
