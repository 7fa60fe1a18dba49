//! The loop's live tasks: a `slab` of task records, and how the loop schedules, runs,
//! aborts and shuts them down.
//!
//! Owns: which tasks are alive on this loop and their ready-queue entries. Must not
//! touch: a task's coroutine or future state (that is `task::cell`).
//!
//! The slab holds the only strong reference the loop needs. A ready-queue entry is a
//! `(key, generation)` pair, not a pointer, so scheduling costs no reference count.
//! To poll, the loop *takes* the `Arc` out of its slot (the slot reads "running"),
//! polls, and puts it back unless the task finished; a stale entry (an aborted or
//! finished task, a reused key) finds a different generation or an empty slot and is
//! skipped.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Local, Ready};
use crate::context;
use crate::exception::{ExceptionContext, ExceptionSource};
use crate::stats::{bump, set};
use crate::task::{RunResult, Runnable, TaskHeader};

/// A slab slot: the task (absent while it is being polled) and the slot's generation.
pub(crate) struct TaskSlot {
    generation: u32,
    task: Option<Arc<dyn Runnable>>,
}

/// How many eager first polls may nest (a task created eagerly inside another's first
/// poll): past it, tasks start lazily, so the stack never grows with a chain of tasks
/// that each create the next (rule 3).
const EAGER_DEPTH: u32 = 16;

impl Local {
    /// Whether a task created now on this thread starts eagerly (`Builder::eager_tasks`,
    /// within the nesting bound).
    #[inline]
    pub(crate) fn starts_eagerly(&self) -> bool {
        self.config.eager_tasks && self.eager_depth.get() < EAGER_DEPTH
    }

    /// Adds a task to this loop and polls it at once (eager start, see
    /// `Builder::eager_tasks`): its slot reads "running" during that poll, as for any
    /// poll, and it stays in the slab only if it suspended. Not inside a `with_current`
    /// borrow: the poll is user code.
    pub(crate) fn spawn_task_eagerly(&self, task: Arc<dyn Runnable>) {
        let (key, generation) = self.insert_slot(None);
        task.header().set_slot(key, generation);
        struct Depth<'a>(&'a Cell<u32>);
        impl Drop for Depth<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.eager_depth.set(self.eager_depth.get() + 1);
        let depth = Depth(&self.eager_depth);
        bump(&self.shared().stats.task_polls, 1);
        let result = task.run(self);
        drop(depth);
        self.after_run(key, task, result);
    }

    /// A new slab slot holding `task` (or reading "running" for `None`): its key and
    /// generation, for the caller to record in the task's header.
    fn insert_slot(&self, task: Option<Arc<dyn Runnable>>) -> (u32, u32) {
        let generation = self.next_generation.get();
        self.next_generation.set(generation.wrapping_add(1));
        let key = self
            .tasks
            .borrow_mut()
            .insert(TaskSlot { generation, task });
        let key = u32::try_from(key).expect("evloop: more than 4 billion live tasks");
        (key, generation)
    }

    /// Adds a task to this loop and queues its first poll (T1: never synchronously).
    pub(crate) fn spawn_task(&self, task: Arc<dyn Runnable>) {
        // The slab keeps this reference: no clone (each is a locked increment and,
        // dropped, a locked decrement); the header is reached through the entry.
        let (key, generation) = self.insert_slot(Some(task));
        let tasks = self.tasks.borrow();
        let header = tasks[key as usize]
            .task
            .as_ref()
            .expect("inserted just above")
            .header();
        header.set_slot(key, generation);
        self.schedule_task(header);
    }

    /// Queues a poll of a live task unless one is queued already. Loop thread only;
    /// no atomic read-modify-write.
    pub(crate) fn schedule_task(&self, header: &TaskHeader) {
        let Some((key, generation)) = header.slot() else {
            return;
        };
        if header.try_schedule() {
            self.ready
                .borrow_mut()
                .push_back(Ready::Task { key, generation });
        }
    }

    /// Queues a poll of the task in slot `key` if it is still the one of `generation`
    /// (a timer of `TimerPayload::Task`). A task being polled right now (its slot reads
    /// "running") is queued by slot, as its own waker would queue it; a slot that
    /// changed hands is left alone. Loop thread only.
    pub(crate) fn schedule_slot(&self, key: u32, generation: u32) {
        let tasks = self.tasks.borrow();
        match tasks.get(key as usize) {
            Some(TaskSlot {
                generation: g,
                task: Some(task),
            }) if *g == generation => self.schedule_task(task.header()),
            Some(TaskSlot {
                generation: g,
                task: None,
            }) if *g == generation => {
                drop(tasks);
                self.ready
                    .borrow_mut()
                    .push_back(Ready::Task { key, generation });
            }
            _ => {}
        }
    }

    /// Whether the live task in slot `key` (of `generation`) has an undelivered cancel
    /// request (`coop::WaiterTask`). A task being polled right now (its slot is empty)
    /// or gone answers `false`.
    pub(crate) fn task_cancel_pending(&self, key: u32, generation: u32) -> bool {
        let Ok(tasks) = self.tasks.try_borrow() else {
            return false;
        };
        match tasks.get(key as usize) {
            Some(TaskSlot {
                generation: g,
                task: Some(task),
            }) if *g == generation => crate::task::coop::has_pending_cancel(task.header()),
            _ => false,
        }
    }

    /// Polls the task in slot `key` if it is still the one queued.
    pub(crate) fn run_task(&self, key: u32, generation: u32) {
        let task = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(key as usize) {
                Some(slot) if slot.generation == generation => slot.task.take(),
                _ => None,
            }
        };
        let Some(task) = task else {
            return;
        };
        bump(&self.shared().stats.task_polls, 1);
        let result = task.run(self);
        self.after_run(key, task, result);
    }

    /// Puts a polled task back in its slot, or frees the slot of a finished one.
    fn after_run(&self, key: u32, task: Arc<dyn Runnable>, result: RunResult) {
        match result {
            RunResult::Pending => {
                if let Some(slot) = self.tasks.borrow_mut().get_mut(key as usize) {
                    slot.task = Some(task);
                }
            }
            RunResult::Done => {
                let slot = self.tasks.borrow_mut().try_remove(key as usize);
                drop(slot);
                // If nobody holds the task any more, this frees its result: user
                // destructors, which must not unwind into the loop (L9).
                self.release_task(task);
            }
        }
    }

    /// Drops the loop's reference to a task; a panic from the destructors this runs
    /// (the task's result, when it was the last reference) is reported, not raised.
    pub(crate) fn release_task(&self, task: Arc<dyn Runnable>) {
        let id = task.header().id;
        // The last reference (the usual case when the task's handle was dropped): its
        // memory goes to the pool for the next task (`task::pool`).
        let released = catch_unwind(AssertUnwindSafe(move || {
            if Arc::strong_count(&task) == 1 {
                task.release_last(Some(self));
            } else {
                drop(task);
            }
        }));
        if let Err(error) = released.map_err(crate::Error::from_panic) {
            self.report(
                ExceptionContext::new("Exception while dropping a finished task's result")
                    .with_exception(error)
                    .with_source(ExceptionSource::Task { id, name: None }),
            );
        }
    }

    /// T5 on the loop thread: the coroutine is dropped now, or right after its current
    /// poll if the task is aborting itself.
    pub(crate) fn abort(&self, task: &Arc<dyn Runnable>) {
        let removed = task.header().slot().and_then(|(key, generation)| {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get(key as usize) {
                Some(slot) if slot.generation == generation && slot.task.is_some() => {
                    tasks.try_remove(key as usize)
                }
                _ => None,
            }
        });
        task.abort_now();
        drop(removed);
    }

    pub(crate) fn live_tasks(&self) -> usize {
        self.tasks.borrow().len()
    }

    pub(crate) fn all_tasks(&self) -> Vec<Arc<dyn Runnable>> {
        self.tasks
            .borrow()
            .iter()
            .filter_map(|(_, slot)| slot.task.clone())
            .collect()
    }

    /// R5: cancels every live task, runs the loop until they have finished or
    /// `timeout` has passed, then aborts the rest. The loop must be entered.
    pub(crate) fn shutdown_tasks(&self, timeout: Duration) {
        if self.live_tasks() == 0 {
            return;
        }
        // One panicking cancellation does not spare the other tasks (rule 2).
        crate::exception::for_each_catching(
            &self.handle,
            "Exception while cancelling a task at shutdown",
            ExceptionSource::Callback,
            self.all_tasks(),
            |task| {
                task.cancel(None);
            },
        );
        let deadline = crate::handle::deadline_after(Instant::now(), timeout);
        // A timer at the deadline bounds every blocking poll below.
        let alarm = self.handle.call_at(deadline, || {});
        while self.live_tasks() > 0 && Instant::now() < deadline {
            self.run_once(None);
        }
        alarm.cancel();
        self.abort_all_tasks();
    }

    /// Aborts every live task (their coroutines are dropped here, on the loop thread).
    pub(crate) fn abort_all_tasks(&self) {
        for task in self.all_tasks() {
            if catch_unwind(AssertUnwindSafe(|| self.abort(&task))).is_err() {
                log::error!(target: "evloop", "a panic escaped while aborting task {}", task.header().id);
            }
        }
        set(&self.shared().stats.live_tasks, 0);
    }
}

/// T5 from any thread: abort on the task's loop now, or as soon as it runs. (The loop
/// core is taken with `context::current`, not borrowed: aborting drops the coroutine,
/// user code that may even drop another runtime.)
pub(crate) fn abort_task(task: &Arc<dyn Runnable>) {
    let id = task.header().loop_id();
    match context::current_for(id) {
        Some(local) => local.abort(task),
        None => {
            let task = task.clone();
            task.owner().clone().call_soon(move || {
                if let Some(local) = context::current_for(task.header().loop_id()) {
                    local.abort(&task);
                }
            });
        }
    }
}
