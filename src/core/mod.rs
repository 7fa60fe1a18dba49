//! The `!Send` half of a loop: the state only its thread touches, and the iteration.
//!
//! Owns: the local ready queue, the timer wheel, the reactor (through `reactor`'s API),
//! the root waker of `block_on`, and the tick of L6 — poll, drain the cross-thread
//! queue, fire timers, run the snapshot. Must not touch: mio (only `reactor` does) or
//! other threads' state except through `Shared`.
//!
//! Borrowing rule: no `RefCell` borrow is held while user code runs (callbacks,
//! futures, wakers, destructors); wakers from the wheel are woken after its borrow
//! ends, each under its own catch. During the reactor's dispatch only evloop's own
//! wakers are woken in place (they only queue a task; see `reactor`); foreign ones
//! are woken here afterwards, each under a catch.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::callback::{Callback, new_timer_callback};
use crate::context;
use crate::error::Error;
use crate::exception::{ExceptionContext, ExceptionSource, drop_each_catching, for_each_catching};
use crate::handle::LoopHandle;
use crate::loop_ref::LoopRef;
use crate::park::Park;
use crate::reactor::{Deferred, Interest, Reactor, ScheduledIo, Timeout};
use crate::shared::{ExecutorConfig, Remote, Shared};
use crate::stats::{bump, set};
use crate::wheel::{TimerKey, Wheel};

mod close;
mod tasks;

use tasks::TaskSlot;
pub(crate) use tasks::abort_task;

/// Poll the reactor (without blocking) at least this often within one run phase (L6).
const IO_POLL_INTERVAL: usize = 64;
/// Upper bound of cross-thread items moved to the local queue per iteration, so a
/// flood of producers cannot keep the loop from running what it has.
const MAX_REMOTE_DRAIN: usize = 1 << 16;

/// An item of the ready queue.
pub(crate) enum Ready {
    Callback(Arc<dyn Callback>),
    /// Poll the task in this slab slot (if it is still that generation).
    Task {
        key: u32,
        generation: u32,
    },
    /// Poll `block_on`'s future.
    Root,
}

/// What a wheel entry does when it fires.
pub(crate) enum TimerPayload {
    Callback(Arc<dyn Callback>),
    Waker(Waker),
    /// A sleep awaited by one of this loop's own tasks with that task's own waker: the
    /// task's slab slot, scheduled directly when the timer fires — no waker clone (a
    /// locked increment and decrement), no vtable call. Not a reference: a slot whose
    /// generation no longer matches (the task ended) is skipped.
    Task {
        key: u32,
        generation: u32,
    },
}

/// Loop configuration the core needs at run time.
#[derive(Clone, Debug)]
pub(crate) struct CoreConfig {
    pub(crate) executor: ExecutorConfig,
    pub(crate) event_capacity: usize,
    pub(crate) debug: bool,
    pub(crate) slow_callback_duration: Duration,
    /// Awaits a task may complete per poll (K7); `budget::UNCONSTRAINED`: no limit.
    pub(crate) coop_budget: u32,
    /// `create_task` on the loop thread runs the coroutine at once, up to its first
    /// suspension (`Builder::eager_tasks`, asyncio 3.12's `eager_task_factory`).
    pub(crate) eager_tasks: bool,
}

pub(crate) struct Local {
    pub(crate) handle: LoopHandle,
    ready: RefCell<VecDeque<Ready>>,
    wheel: RefCell<Wheel<TimerPayload>>,
    reactor: RefCell<Reactor>,
    /// Instant that wheel time (ns) counts from: far in the past, so that deadlines
    /// from before the loop existed keep their order (they do not all saturate to 0).
    base: Instant,
    root_scheduled: Cell<bool>,
    root_waker: Waker,
    /// Scratch buffers reused every iteration.
    io_wakers: RefCell<Vec<Deferred>>,
    fired: RefCell<Vec<TimerPayload>>,
    /// Live tasks (see `tasks`).
    tasks: RefCell<Slab<TaskSlot>>,
    /// fds watched by `add_reader` / `add_writer`.
    pub(crate) watches: RefCell<crate::watch::Watches>,
    next_generation: Cell<u32>,
    /// Eager first polls running right now, nested in one another (`tasks::EAGER_DEPTH`).
    eager_depth: Cell<u32>,
    config: CoreConfig,
    /// When the current iteration began running its ready snapshot (K6), on the
    /// coarse clock (`sys::coarse_monotonic_ns`): a precise clock read per iteration
    /// cost 12 % of a chained spawn (P5).
    iteration_time: Cell<u64>,
    /// Free task-cell allocations for the next tasks (`task::pool`).
    pub(crate) cells: RefCell<crate::task::CellPool>,
}

impl Local {
    pub(crate) fn new(config: CoreConfig) -> io::Result<Rc<Local>> {
        let (reactor, unparker, registrar) = Reactor::new(config.event_capacity)?;
        let shared = LoopRef::new(Shared::new(unparker, registrar, config.executor));
        let handle = LoopHandle { shared };
        let root_waker = Waker::from(Arc::new(RootWaker {
            owner: handle.clone(),
        }));
        let now = Instant::now();
        let base = [100 * 365 * 24 * 3600, 24 * 3600, 0]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now);
        let start = u64::try_from(now.duration_since(base).as_nanos()).unwrap_or(0);
        Ok(Rc::new(Local {
            handle,
            ready: RefCell::new(VecDeque::new()),
            wheel: RefCell::new(Wheel::starting_at(start)),
            reactor: RefCell::new(reactor),
            base,
            root_scheduled: Cell::new(false),
            root_waker,
            io_wakers: RefCell::new(Vec::new()),
            fired: RefCell::new(Vec::new()),
            tasks: RefCell::new(Slab::new()),
            watches: RefCell::new(crate::watch::Watches::default()),
            next_generation: Cell::new(0),
            eager_depth: Cell::new(0),
            config,
            iteration_time: Cell::new(crate::sys::coarse_monotonic_ns()),
            cells: RefCell::new(crate::task::CellPool::default()),
        }))
    }

    pub(crate) fn id(&self) -> u64 {
        self.handle.shared.id
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    pub(crate) fn root_waker(&self) -> &Waker {
        &self.root_waker
    }

    pub(crate) fn push_callback(&self, cell: Arc<dyn Callback>) {
        self.ready.borrow_mut().push_back(Ready::Callback(cell));
    }

    /// Queues a poll of `block_on`'s future unless one is queued already.
    pub(crate) fn schedule_root(&self) {
        if !self.root_scheduled.replace(true) {
            self.ready.borrow_mut().push_back(Ready::Root);
        }
    }

    /// Nanoseconds from the loop's base to `t` (0 for earlier instants, saturating).
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Inserts a timer callback and records its wheel position in the cell.
    pub(crate) fn insert_timer_callback(&self, when: Instant, cell: Arc<dyn Callback>) {
        if cell.is_cancelled() {
            return;
        }
        let slot_cell = cell.clone();
        let key = self
            .wheel
            .borrow_mut()
            .insert(self.ns(when), TimerPayload::Callback(cell));
        if let Some(slot) = slot_cell.timer_slot() {
            slot.set(key);
        }
    }

    /// Registers `waker` to be woken at `when` (a `Sleep`): as the task's slot when it
    /// is the own waker of the task being polled on this loop, otherwise a clone.
    pub(crate) fn insert_timer_waker(&self, when: Instant, waker: &Waker) -> TimerKey {
        let payload = match crate::task::own_slot_if_waker(waker) {
            Some((key, generation)) => TimerPayload::Task { key, generation },
            None => TimerPayload::Waker(waker.clone()),
        };
        self.wheel.borrow_mut().insert(self.ns(when), payload)
    }

    /// Replaces the waker of a pending timer. `false` if the timer already fired. The
    /// new waker is cloned, and the old one dropped, outside the wheel's borrow (both
    /// may be a foreign executor's code, rule 1).
    pub(crate) fn update_timer_waker(&self, key: TimerKey, waker: &Waker) -> bool {
        let own = match self.wheel.borrow_mut().get_mut(key) {
            Some(TimerPayload::Waker(w)) if w.will_wake(waker) => return true,
            Some(TimerPayload::Task { key, generation }) => {
                let own = crate::task::own_slot_if_waker(waker);
                if own == Some((*key, *generation)) {
                    return true;
                }
                own
            }
            Some(TimerPayload::Waker(_)) => crate::task::own_slot_if_waker(waker),
            Some(TimerPayload::Callback(_)) | None => return false,
        };
        let fresh = match own {
            Some((key, generation)) => TimerPayload::Task { key, generation },
            None => TimerPayload::Waker(waker.clone()),
        };
        let old = match self.wheel.borrow_mut().get_mut(key) {
            Some(p @ (TimerPayload::Waker(_) | TimerPayload::Task { .. })) => {
                Ok(std::mem::replace(p, fresh))
            }
            _ => Err(fresh),
        };
        let pending = old.is_ok();
        drop(old);
        pending
    }

    /// Live gauges: (ready queue length, pending timers, live tasks).
    pub(crate) fn gauges(&self) -> (u64, u64, u64) {
        (
            self.ready.borrow().len() as u64,
            self.wheel.borrow().len() as u64,
            self.tasks.borrow().len() as u64,
        )
    }

    /// Registers `fd` with this loop's reactor (edge-triggered).
    pub(crate) fn register_io(
        &self,
        fd: std::os::fd::RawFd,
        interest: Interest,
    ) -> io::Result<Arc<ScheduledIo>> {
        self.reactor.borrow_mut().register(fd, interest)
    }

    /// Frees a registration's slot (its fd was deregistered through the `Registrar`).
    pub(crate) fn forget_io(&self, io: &ScheduledIo) {
        self.reactor.borrow_mut().forget(io);
    }

    /// Unlinks a timer and hands back its payload, for the caller to drop where no
    /// borrow is held (a sleep's waker may be foreign: its drop is user code).
    #[must_use = "drop the payload outside any borrow"]
    pub(crate) fn remove_timer(&self, key: TimerKey) -> Option<TimerPayload> {
        self.wheel.borrow_mut().remove(key)
    }

    /// One iteration (L6). `root` polls `block_on`'s future when its turn comes.
    pub(crate) fn run_once(&self, mut root: Option<&mut dyn FnMut()>) {
        let stats = &self.shared().stats;
        bump(&stats.iterations, 1);

        // (a) poll the reactor, then take what other threads sent.
        let timeout = if !self.ready.borrow().is_empty() {
            Timeout::Zero
        } else {
            self.timer_timeout()
        };
        self.poll_reactor(timeout);
        self.drain_remote();
        if self.shared().signals.any_pending() {
            self.shared().signals.dispatch(&self.handle);
        }

        // (b) expired timers, in deadline order.
        self.fire_timers();

        // (c) the snapshot of what is ready now.
        let n = self.ready.borrow().len();
        if n > 0 {
            // K6: the time a task dump reports its last poll against.
            self.iteration_time.set(crate::sys::coarse_monotonic_ns());
        }
        let poll_io = self.reactor.borrow().has_sources();
        for i in 0..n {
            if poll_io && i > 0 && i % IO_POLL_INTERVAL == 0 {
                self.poll_reactor(Timeout::Zero);
            }
            let Some(item) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            match item {
                Ready::Callback(cell) => self.run_callback(&*cell),
                Ready::Task { key, generation } => self.run_task(key, generation),
                Ready::Root => {
                    self.root_scheduled.set(false);
                    if let Some(poll_root) = root.as_mut() {
                        bump(&stats.task_polls, 1);
                        let start = self.debug_timer();
                        let budget = crate::task::budget::enter(self.config.coop_budget);
                        poll_root();
                        drop(budget);
                        self.check_slow(start, "the block_on future");
                    }
                }
            }
        }
        let (ready, timers, tasks) = self.gauges();
        set(&stats.ready_len, ready);
        set(&stats.timers_pending, timers);
        set(&stats.live_tasks, tasks);
    }

    fn timer_timeout(&self) -> Timeout {
        match self.wheel.borrow().next_deadline() {
            None => Timeout::Forever,
            Some(ns) => match self.base.checked_add(Duration::from_nanos(ns)) {
                Some(at) => Timeout::At(at),
                None => Timeout::Forever,
            },
        }
    }

    fn poll_reactor(&self, timeout: Timeout) {
        let shared = self.shared();
        let blocking = timeout != Timeout::Zero;
        let timeout = if blocking && shared.park.park(|| shared.has_remote_work()) == Park::Skip {
            Timeout::Zero
        } else {
            timeout
        };
        if timeout != Timeout::Zero {
            // Going to sleep: give a burst's free task cells back (frees memory only).
            self.cells.borrow_mut().trim(crate::task::pool::IDLE_BYTES);
        }
        // A non-blocking poll can only report I/O readiness: cross-thread work is read
        // from its queue and timers from the wheel, never from their fds. With no I/O
        // source registered it would observe nothing, so skip the system call.
        if timeout == Timeout::Zero && !self.reactor.borrow().has_sources() {
            if blocking {
                let _ = shared.park.unpark();
            }
            return;
        }
        let mut later = self.io_wakers.take();
        let result = self.reactor.borrow_mut().poll(timeout, &mut later);
        if blocking {
            let _ = shared.park.unpark();
        }
        bump(&shared.stats.reactor_polls, 1);
        match result {
            Ok(events) => bump(&shared.stats.io_events, events as u64),
            Err(e) => panic!(
                "evloop: polling the reactor of loop #{} failed: {e}",
                self.id()
            ),
        }
        // Displaced and foreign I/O wakers are woken (and dropped) only now that the
        // reactor is no longer borrowed, each under a catch (rules 1 and 2).
        for_each_catching(
            &self.handle,
            "Exception in a waker woken by I/O readiness",
            ExceptionSource::Waker,
            later.drain(..),
            Deferred::wake,
        );
        self.io_wakers.replace(later);
    }

    fn drain_remote(&self) {
        let shared = self.shared();
        let mut scheduled = 0;
        for _ in 0..MAX_REMOTE_DRAIN {
            let Some(item) = shared.pop_remote() else {
                break;
            };
            scheduled += u64::from(item.is_schedule());
            match item {
                Remote::Callback(cell) => self.push_callback(cell),
                Remote::Timer(when, cell) => self.insert_timer_callback(when, cell),
                Remote::CancelTimer(cell) => {
                    if let Some(key) = cell.timer_slot().and_then(|s| s.get()) {
                        drop(self.remove_timer(key));
                    }
                }
                Remote::CancelTimerKey(key) => {
                    let removed = self.remove_timer(key);
                    drop_each_catching(
                        &self.handle,
                        "Exception while dropping a sleep's waker",
                        removed,
                    );
                }
                Remote::WakeRoot => self.schedule_root(),
                Remote::Spawn(task) => self.spawn_task(task),
                Remote::Wake(task) => {
                    self.schedule_task(task.header());
                    self.release_task(task);
                }
                Remote::ForgetIo(io) => self.reactor.borrow_mut().forget(&io),
            }
        }
        bump(&shared.stats.remote_schedules, scheduled);
    }

    fn fire_timers(&self) {
        if self.wheel.borrow().len() == 0 {
            return;
        }
        let now = self.ns(Instant::now());
        let mut fired = self.fired.take();
        self.wheel.borrow_mut().advance(now, |p| fired.push(p));
        bump(&self.shared().stats.timers_fired, fired.len() as u64);
        // A sleep's waker may be foreign and may panic: each under a catch, so the
        // other timers of the batch still fire (rule 2).
        for_each_catching(
            &self.handle,
            "Exception in a waker woken by a timer",
            ExceptionSource::Waker,
            fired.drain(..),
            |payload| match payload {
                TimerPayload::Callback(cell) => self.push_callback(cell),
                TimerPayload::Waker(waker) => waker.wake(),
                TimerPayload::Task { key, generation } => self.schedule_slot(key, generation),
            },
        );
        self.fired.replace(fired);
    }

    /// In debug mode, the start of something to time with [`check_slow`](Self::check_slow).
    /// The cooperative budget each task poll starts with (K7).
    #[inline]
    pub(crate) fn coop_budget(&self) -> u32 {
        self.config.coop_budget
    }

    /// When the current iteration began running its ready snapshot (K6), in
    /// `sys::coarse_monotonic_ns`.
    #[inline]
    pub(crate) fn iteration_time(&self) -> u64 {
        self.iteration_time.get()
    }

    pub(crate) fn debug_timer(&self) -> Option<Instant> {
        self.config.debug.then(Instant::now)
    }

    fn run_callback(&self, cell: &dyn Callback) {
        let start = self.debug_timer();
        match catch_unwind(AssertUnwindSafe(|| cell.run())) {
            Ok(false) => return,
            Ok(true) => {}
            Err(payload) => self.report(
                ExceptionContext::new("Exception in callback")
                    .with_exception(Error::from_panic(payload))
                    .with_source(ExceptionSource::Callback),
            ),
        }
        bump(&self.shared().stats.callbacks_run, 1);
        self.check_slow(start, "a callback");
    }

    /// Debug mode (L10): warn about a callback or poll slower than the threshold.
    pub(crate) fn check_slow(&self, start: Option<Instant>, what: impl std::fmt::Display) {
        if let Some(start) = start {
            let took = start.elapsed();
            if took >= self.config.slow_callback_duration {
                let secs = took.as_secs_f64();
                log::warn!(target: "evloop", "Executing {what} took {secs:.3} seconds");
            }
        }
    }

    fn report(&self, ctx: ExceptionContext) {
        self.handle.call_exception_handler(ctx);
    }
}

/// Unlinks a cancelled timer callback from its loop's wheel: at once on the loop
/// thread, through the cross-thread queue elsewhere.
pub(crate) fn unlink_timer(owner: &LoopHandle, cell: &Arc<dyn Callback>) {
    let removed = context::with_local(owner.shared.id, |local| {
        cell.timer_slot()
            .and_then(|s| s.get())
            .and_then(|key| local.remove_timer(key))
    });
    let on_loop = removed.is_some();
    // A cancelled cell has already dropped its closure; the `Arc` goes here.
    drop(removed);
    if !on_loop && !owner.is_closed() {
        owner.shared.push_remote(Remote::CancelTimer(cell.clone()));
    }
}

/// Schedules a timer callback on `owner` from any thread.
pub(crate) fn schedule_timer(
    owner: &LoopHandle,
    when: Instant,
    f: impl FnOnce() + Send + 'static,
) -> Arc<dyn Callback> {
    let cell = new_timer_callback(f);
    let on_loop = context::with_local(owner.shared.id, |local| {
        local.insert_timer_callback(when, cell.clone());
    });
    if on_loop.is_none() {
        owner.shared.push_remote(Remote::Timer(when, cell.clone()));
    }
    cell
}

/// The waker of `block_on`'s future: on the loop thread it queues `Ready::Root`
/// directly; elsewhere it sends `Remote::WakeRoot`.
struct RootWaker {
    owner: LoopHandle,
}

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let id = self.owner.shared.id;
        if context::with_local(id, Local::schedule_root).is_none() {
            self.owner.shared.push_remote(Remote::WakeRoot);
        }
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RootWaker>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::new_callback;
    use crate::reactor::Interest;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn local() -> Rc<Local> {
        Local::new(CoreConfig {
            executor: ExecutorConfig {
                max_threads: 2,
                keep_alive: Duration::from_secs(1),
            },
            event_capacity: 64,
            debug: false,
            slow_callback_duration: Duration::from_secs(1),
            coop_budget: crate::task::budget::DEFAULT,
            eager_tasks: false,
        })
        .unwrap()
    }

    fn polls(local: &Local) -> u64 {
        local.handle.stats().reactor_polls
    }

    /// L6: with an I/O source registered, a run phase of 200 items polls the reactor
    /// (without blocking) after items 64, 128 and 192 — and runs all 200 in that one
    /// iteration. Without sources a non-blocking poll could observe nothing and no
    /// system call is made.
    #[test]
    fn run_phase_polls_the_reactor_every_64_items_only_with_io_sources() {
        let local = local();
        let ran = Arc::new(AtomicUsize::new(0));
        let schedule = |n| {
            for _ in 0..n {
                let ran = ran.clone();
                local.push_callback(new_callback(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                }));
            }
        };
        schedule(200);
        let before = polls(&local);
        local.run_once(None);
        assert_eq!(ran.load(Ordering::Relaxed), 200);
        assert_eq!(
            polls(&local) - before,
            0,
            "no I/O sources: a non-blocking poll is skipped"
        );

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let io = local
            .reactor
            .borrow_mut()
            .register(a.as_raw_fd(), Interest::Readable)
            .unwrap();
        schedule(200);
        let before = polls(&local);
        local.run_once(None);
        assert_eq!(ran.load(Ordering::Relaxed), 400);
        assert_eq!(
            polls(&local) - before,
            1 + 3,
            "tick poll + one every 64 items"
        );
        local
            .handle
            .shared
            .registrar
            .deregister(a.as_raw_fd())
            .unwrap();
        local.forget_io(&io);
        local.close();
    }

    /// The iteration's snapshot: a callback scheduled (on the local queue) by a running
    /// callback waits for the next iteration even when the queue is otherwise empty.
    #[test]
    fn items_scheduled_during_the_run_phase_wait_for_the_next_iteration() {
        let local = local();
        let _entered = context::enter(local.clone()).unwrap();
        let inner_ran = Arc::new(AtomicUsize::new(0));
        let flag = inner_ran.clone();
        let loop_ = local.handle.clone();
        local.push_callback(new_callback(move || {
            loop_.call_soon(move || {
                flag.fetch_add(1, Ordering::Relaxed);
            });
        }));
        local.run_once(None);
        assert_eq!(inner_ran.load(Ordering::Relaxed), 0);
        assert_eq!(
            local.gauges().0,
            1,
            "queued locally, not sent through the remote queue"
        );
        local.run_once(None);
        assert_eq!(inner_ran.load(Ordering::Relaxed), 1);
        local.close();
    }
}
