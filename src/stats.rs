//! Loop statistics (L13): the public [`LoopStats`] snapshot and the counters behind it.
//!
//! Owns: the counters. Must not touch: anything else. Counters written only by the loop
//! thread are bumped with a relaxed load and store (no read-modify-write, so no locked
//! instruction on the hot path); the wake-up counter is bumped by producer threads with
//! `fetch_add`, which only happens when they make the wake-up syscall anyway. The block
//! is cache-line aligned so the loop's writes do not false-share with producers' pushes.

use crate::loom::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a loop's counters, from [`LoopHandle::stats`](crate::LoopHandle::stats).
///
/// Counters (`iterations` … `wakeups`) only grow; gauges (`timers_pending`,
/// `ready_len`, `live_tasks`, executor fields) describe the moment of the snapshot —
/// exact on the loop thread, as of the end of the last iteration elsewhere.
///
/// ```
/// let rt = evloop::Runtime::new()?;
/// let loop_ = rt.handle();
/// loop_.call_soon(|| {});
/// rt.block_on(async {});
/// let stats = loop_.stats();
/// assert!(stats.iterations >= 1);
/// assert_eq!(stats.callbacks_run, 1);
/// assert_eq!(stats.wakeups, 0, "nobody had to wake the loop");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Loop iterations (L6 ticks) started.
    pub iterations: u64,
    /// Callbacks run (`call_soon`, timers, done-callbacks); cancelled ones are not counted.
    pub callbacks_run: u64,
    /// Polls of tasks and of `block_on`'s future.
    pub task_polls: u64,
    /// I/O readiness events dispatched to registrations.
    pub io_events: u64,
    /// Reactor polls (`epoll_wait` calls), blocking or not.
    pub reactor_polls: u64,
    /// Timers that fired (callbacks and sleeps).
    pub timers_fired: u64,
    /// Timers currently pending in the wheel.
    pub timers_pending: u64,
    /// Items that reached the loop through the cross-thread queue (callbacks, timers,
    /// wake-ups from other threads).
    pub remote_schedules: u64,
    /// Wake-up system calls (eventfd writes) made by other threads to unblock the loop.
    pub wakeups: u64,
    /// Connections accepted by the TCP and Unix listeners created on this loop (with
    /// [`LoopGroup`](crate::LoopGroup) and `reuse_port`, how the kernel spread them).
    pub accepts: u64,
    /// Items waiting in the local ready queue.
    pub ready_len: u64,
    /// Tasks alive on this loop.
    pub live_tasks: u64,
    /// Threads of the default blocking executor.
    pub executor_threads: u64,
    /// Jobs queued in the default blocking executor and not started yet.
    pub executor_queued_jobs: u64,
}

/// The counters behind [`LoopStats`], shared between the loop and other threads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) iterations: AtomicU64,
    pub(crate) callbacks_run: AtomicU64,
    pub(crate) task_polls: AtomicU64,
    pub(crate) io_events: AtomicU64,
    pub(crate) reactor_polls: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
    pub(crate) remote_schedules: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    /// `fetch_add`: a listener may be awaited off its loop's thread.
    pub(crate) accepts: AtomicU64,
    pub(crate) timers_pending: AtomicU64,
    pub(crate) ready_len: AtomicU64,
    pub(crate) live_tasks: AtomicU64,
}

/// Adds `n` to a counter that only the loop thread writes.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Sets a gauge that only the loop thread writes.
pub(crate) fn set(gauge: &AtomicU64, v: u64) {
    gauge.store(v, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LoopStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LoopStats {
            iterations: get(&self.iterations),
            callbacks_run: get(&self.callbacks_run),
            task_polls: get(&self.task_polls),
            io_events: get(&self.io_events),
            reactor_polls: get(&self.reactor_polls),
            timers_fired: get(&self.timers_fired),
            timers_pending: get(&self.timers_pending),
            remote_schedules: get(&self.remote_schedules),
            wakeups: get(&self.wakeups),
            accepts: get(&self.accepts),
            ready_len: get(&self.ready_len),
            live_tasks: get(&self.live_tasks),
            executor_threads: 0,
            executor_queued_jobs: 0,
        }
    }
}
