//! The `Send + Sync` half of a loop, behind every [`LoopHandle`](crate::LoopHandle).
//!
//! Owns: the cross-thread ready queue and what may travel through it ([`Remote`]), the
//! park state and the mio waker that unblocks the loop, the stop and running flags, the
//! exception handler, and the statistics counters. Must not touch: loop-thread state —
//! it never sees the ready queue, the wheel or the reactor; the loop drains it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::callback::Callback;
use crate::exception::HandlerFn;
use crate::executor::Executor;
use crate::loom::SegQueue;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::park::{Notify, ParkState};
use crate::reactor::{Registrar, ScheduledIo, Unparker};
use crate::stats::Counters;
use crate::task::Runnable;
use crate::wheel::TimerKey;

/// What another thread can ask the loop to do.
pub(crate) enum Remote {
    /// Run a callback (`call_soon_threadsafe`).
    Callback(Arc<dyn Callback>),
    /// Insert a timer callback into the wheel (`call_later` off the loop thread).
    Timer(Instant, Arc<dyn Callback>),
    /// Unlink a cancelled timer callback from the wheel.
    CancelTimer(Arc<dyn Callback>),
    /// Unlink a sleep's timer (a `Sleep` dropped off its loop thread).
    CancelTimerKey(TimerKey),
    /// Poll `block_on`'s future again (its waker was called off the loop thread).
    WakeRoot,
    /// Add a task spawned from another thread (`LoopHandle::spawn`).
    Spawn(Arc<dyn Runnable>),
    /// Poll a task whose waker was called off the loop thread.
    Wake(Arc<dyn Runnable>),
    /// Free the slot of an I/O registration dropped off its loop thread (its fd was
    /// already deregistered).
    ForgetIo(Arc<ScheduledIo>),
}

impl Remote {
    /// Whether this item schedules work (counted in `remote_schedules`).
    pub(crate) fn is_schedule(&self) -> bool {
        matches!(
            self,
            Remote::Callback(_) | Remote::Timer(..) | Remote::WakeRoot
        )
    }

    /// Disposes of an item that will never reach a running loop.
    fn discard(self) {
        // A panicking destructor of a captured value must not unwind into an unrelated
        // producer thread.
        let result = catch_unwind(AssertUnwindSafe(|| match self {
            Remote::Callback(cell) | Remote::Timer(_, cell) => {
                cell.cancel();
            }
            // A spawned task that never reached its loop: its coroutine is `Send`.
            Remote::Spawn(task) => task.abort_unstarted(),
            _ => {}
        }));
        if result.is_err() {
            log::error!(target: "evloop", "a destructor panicked while the closed loop discarded it");
        }
    }
}

static NEXT_LOOP_ID: StdAtomicU64 = StdAtomicU64::new(1);

/// The loop's default blocking executor (E4): created on first use.
pub(crate) enum DefaultExecutor {
    NotStarted,
    Running(Executor),
    ShutDown,
}

/// How the default executor is built (from the runtime's `Builder`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExecutorConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
}

pub(crate) struct Shared {
    pub(crate) id: u64,
    remote: SegQueue<Remote>,
    pub(crate) park: ParkState,
    unparker: Arc<Unparker>,
    pub(crate) registrar: Registrar,
    pub(crate) signals: crate::signal::Signals,
    /// Pending futures waited on from outside the loop, completed when it closes.
    pub(crate) closing: crate::closing::Closing,
    stop: AtomicBool,
    pub(crate) running: AtomicBool,
    pub(crate) handler: Mutex<Option<Arc<HandlerFn>>>,
    pub(crate) stats: Counters,
    pub(crate) executor_config: ExecutorConfig,
    pub(crate) default_executor: Mutex<DefaultExecutor>,
}

impl Shared {
    pub(crate) fn new(
        unparker: Unparker,
        registrar: Registrar,
        executor_config: ExecutorConfig,
    ) -> Shared {
        let unparker = Arc::new(unparker);
        Shared {
            signals: crate::signal::Signals::new(unparker.clone()),
            id: NEXT_LOOP_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            remote: SegQueue::new(),
            closing: crate::closing::Closing::default(),
            park: ParkState::new(),
            unparker,
            registrar,
            stop: AtomicBool::new(false),
            running: AtomicBool::new(false),
            handler: Mutex::new(None),
            stats: Counters::default(),
            executor_config,
            default_executor: Mutex::new(DefaultExecutor::NotStarted),
        }
    }

    /// The default executor, started on first use; `None` once it was shut down.
    pub(crate) fn default_executor(&self) -> Option<Executor> {
        let mut slot = self
            .default_executor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            DefaultExecutor::Running(exec) => Some(exec.clone()),
            DefaultExecutor::ShutDown => None,
            DefaultExecutor::NotStarted => {
                let config = self.executor_config;
                let exec = Executor::with_keep_alive(config.max_threads, config.keep_alive);
                *slot = DefaultExecutor::Running(exec.clone());
                Some(exec)
            }
        }
    }

    /// Marks the default executor shut down, handing it back if it had started.
    pub(crate) fn take_default_executor(&self) -> Option<Executor> {
        let mut slot = self
            .default_executor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match std::mem::replace(&mut *slot, DefaultExecutor::ShutDown) {
            DefaultExecutor::Running(exec) => Some(exec),
            _ => None,
        }
    }

    /// The default executor if it runs now (for statistics; never starts it).
    pub(crate) fn running_default_executor(&self) -> Option<Executor> {
        match &*self
            .default_executor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            DefaultExecutor::Running(exec) => Some(exec.clone()),
            _ => None,
        }
    }

    /// Sends an item to the loop from any thread, waking it only if it is parked.
    pub(crate) fn push_remote(&self, item: Remote) {
        self.remote.push(item);
        self.notify();
    }

    fn notify(&self) {
        match self.park.notify() {
            Notify::Nothing => {}
            Notify::Unpark => {
                self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.unparker.unpark() {
                    log::error!(target: "evloop", "waking loop #{} failed: {e}", self.id);
                }
            }
            Notify::Closed => self.drain_closed(),
        }
    }

    /// The next cross-thread item. An empty queue answers from two plain loads: the
    /// queue's own `pop` issues a `SeqCst` fence (a locked instruction on x86) even when
    /// empty, and the loop asks once per iteration. Missing an item pushed concurrently
    /// is fine: its pusher notifies the loop (`notify`), which then comes round again.
    pub(crate) fn pop_remote(&self) -> Option<Remote> {
        if self.remote.is_empty() {
            return None;
        }
        self.remote.pop()
    }

    /// Whether the loop must not block: remote items are waiting or a stop is pending.
    pub(crate) fn has_remote_work(&self) -> bool {
        !self.remote.is_empty() || self.stop.load(Ordering::SeqCst)
    }

    /// Discards everything in the cross-thread queue (the loop is closed).
    pub(crate) fn drain_closed(&self) {
        while let Some(item) = self.remote.pop() {
            item.discard();
        }
    }

    /// `stop()`: sets the flag, then wakes the loop like a producer would.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Consumes a pending stop request. Checked once per iteration, so the usual
    /// answer (no stop) is a plain load, not a swap (a locked instruction).
    pub(crate) fn take_stop(&self) -> bool {
        self.stop.load(Ordering::Acquire) && self.stop.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn clear_stop(&self) {
        self.stop.store(false, Ordering::Release);
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Shared>();
}
