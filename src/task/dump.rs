//! Introspection (SPEC K6): [`LoopHandle::all_tasks`], [`LoopHandle::dump_tasks`],
//! [`TaskRef::info`] and what a suspended task waits on.
//!
//! Owns: the [`Waiting`] record a loop-native await leaves in its task's loop-local
//! state when it suspends ([`waiting_on`]), and the read-only walk that turns a task's
//! state into a [`TaskInfo`]. Must not touch: scheduling, wakers or any user value — a
//! dump reads counters, names and creation sites only, with `try_borrow` (a state
//! borrowed right now is reported as unknown), so it never blocks, never runs user
//! code and never changes what the loop does next.
//!
//! Awaits on evloop futures and tasks are not recorded here: the task already keeps
//! the cells it is suspended on (for cancellation, `coop`), and the dump describes
//! those. Sleeps, sockets and `evloop::sync` waits record a
//! [`Waiting`] value (a few words, `Copy`) when they return `Pending`; each poll starts
//! by clearing it.

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::TaskRef;
use super::cell::Runnable;
use super::coop;
use crate::handle::LoopHandle;

/// What a suspended task waits on, as recorded by the await that suspended it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Waiting {
    /// Nothing recorded: not suspended, or on something evloop does not know.
    #[default]
    Nothing,
    /// A `time::sleep` (or `interval` tick) until this deadline.
    Sleep(Instant),
    /// A socket's readiness.
    Socket { fd: i32, write: bool },
    /// An `evloop::sync` primitive (its type name).
    Sync(&'static str),
}

/// Records what the task being polled is about to wait on (loop-native awaits call
/// this when they return `Pending`). Outside a task, nothing happens.
#[inline]
pub(crate) fn waiting_on(what: Waiting) {
    coop::with_current(|task| {
        if let Ok(mut state) = task.header().local.get().try_borrow_mut() {
            state.waiting = what;
        }
    });
}

/// The state of a task in a [`TaskInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Created, never polled yet.
    Created,
    /// Being polled right now (the dump was taken from inside it).
    Running,
    /// Suspended, waiting to be woken.
    Waiting,
    /// Woken, queued to be polled.
    Scheduled,
    /// Finished with a result or an exception.
    Done,
    /// Finished cancelled.
    Cancelled,
}

/// A snapshot of one task (SPEC K6), from [`TaskRef::info`] or
/// [`LoopHandle::all_tasks`]. `Display` prints one line, as in
/// [`LoopHandle::dump_tasks`].
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// The task's id.
    pub id: u64,
    /// The task's name (`Task-<id>` unless set).
    pub name: String,
    /// Where the task was created (`create_task` / `spawn` caller).
    pub created_at: &'static Location<'static>,
    /// What the task is doing.
    pub state: TaskState,
    /// Pending cancel requests (T4's `cancelling()`).
    pub cancelling: usize,
    /// How many times it was polled; `None` off the task's loop thread.
    pub polls: Option<u64>,
    /// Time since the loop iteration of its last poll, to the kernel's coarse clock
    /// tick (1–4 ms: reading a precise clock every iteration costs the hot path); `None`
    /// if never polled, or off the loop thread.
    pub since_last_poll: Option<Duration>,
    /// What it waits on, when that is an evloop awaitable (another task, a future and
    /// its creation site, a sleep and its deadline, a socket, a lock or queue); `None`
    /// when not suspended, when waiting on something else (a foreign future), or off
    /// the loop thread.
    pub waiting_on: Option<String>,
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} {:?} [{:?}] created at {}",
            self.id, self.name, self.state, self.created_at
        )?;
        if self.cancelling > 0 {
            write!(f, ", {} cancel request(s) pending", self.cancelling)?;
        }
        if let Some(polls) = self.polls {
            write!(f, ", {polls} polls")?;
        }
        if let Some(since) = self.since_last_poll {
            write!(f, ", last polled {since:.1?} ago")?;
        }
        if let Some(what) = &self.waiting_on {
            write!(f, ", waiting on {what}")?;
        }
        Ok(())
    }
}

pub(crate) fn info(task: &dyn Runnable) -> TaskInfo {
    let header = task.header();
    let mut state = if task.is_cancelled() {
        TaskState::Cancelled
    } else if task.is_done() {
        TaskState::Done
    } else if header.is_scheduled() {
        TaskState::Scheduled
    } else {
        TaskState::Waiting
    };
    let (mut polls, mut since_last_poll, mut waiting_on) = (None, None, None);
    let on_loop = crate::context::current_id() == header.loop_id();
    if on_loop {
        if let Ok(local) = header.local.get().try_borrow() {
            polls = Some(u64::from(local.polls));
            since_last_poll = (local.last_poll != 0).then(|| {
                let now = crate::sys::coarse_monotonic_ns();
                Duration::from_nanos(now.saturating_sub(local.last_poll))
            });
            if !local.started && matches!(state, TaskState::Waiting | TaskState::Scheduled) {
                state = TaskState::Created;
            } else if local.polling {
                state = TaskState::Running;
            }
            if matches!(state, TaskState::Waiting | TaskState::Scheduled) {
                let futures: Vec<String> = local.waiters.iter().map(|h| h.describe()).collect();
                waiting_on = match (futures.is_empty(), local.waiting) {
                    (false, _) => Some(futures.join(", ")),
                    (true, Waiting::Nothing) => None,
                    (true, Waiting::Sleep(deadline)) => Some(describe_sleep(deadline)),
                    (true, Waiting::Socket { fd, write }) => Some(format!(
                        "socket fd {fd} ({})",
                        if write { "writable" } else { "readable" }
                    )),
                    (true, Waiting::Sync(what)) => Some(format!("evloop::sync::{what}")),
                };
            }
        }
    }
    TaskInfo {
        id: header.id,
        name: header.name(),
        created_at: task.created_at(),
        state,
        cancelling: header.cancelling(),
        polls,
        since_last_poll,
        waiting_on,
    }
}

fn describe_sleep(deadline: Instant) -> String {
    let now = Instant::now();
    match deadline.checked_duration_since(now) {
        Some(left) => format!("a sleep, due in {left:.1?}"),
        None => format!("a sleep, due {:.1?} ago", now.duration_since(deadline)),
    }
}

impl TaskRef {
    /// A snapshot of the task (SPEC K6): id, name, creation site, state, pending cancel
    /// requests, poll count, time since its last poll and what it waits on. Off the
    /// task's loop thread only what is shared is filled in (`polls`,
    /// `since_last_poll` and `waiting_on` are `None`). Never blocks, never changes the
    /// task.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// evloop::run(async {
    ///     let sleeper = evloop::create_task(async {
    ///         evloop::time::sleep(Duration::from_secs(60)).await
    ///     });
    ///     sleeper.set_name("sleeper");
    ///     evloop::yield_now().await?;
    ///     let info = sleeper.to_ref().info();
    ///     assert_eq!(info.name, "sleeper");
    ///     assert_eq!(info.polls, Some(1));
    ///     assert!(info.waiting_on.unwrap().starts_with("a sleep"));
    ///     sleeper.cancel();
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn info(&self) -> TaskInfo {
        info(&*self.0)
    }
}

impl LoopHandle {
    /// The live tasks of this loop (SPEC K6, asyncio's `all_tasks()`), in slot order,
    /// the one being polled included.
    ///
    /// ```
    /// evloop::run(async {
    ///     let t = evloop::create_task(async { Ok::<_, evloop::Error>(()) });
    ///     let all = evloop::LoopHandle::current().all_tasks();
    ///     assert!(all.iter().any(|r| r.id() == t.id()));
    ///     t.await
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// Off this loop's thread (the task table is the loop's own): from another thread,
    /// ask the loop with `call_soon_threadsafe`.
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        let found = crate::context::with_local(self.shared.id, |local| {
            let mut tasks = local.all_tasks();
            if let Some(me) = coop::with_current(|t| t.to_runnable()) {
                if me.header().loop_id() == self.shared.id
                    && !tasks.iter().any(|t| t.header().id == me.header().id)
                {
                    tasks.push(me);
                }
            }
            tasks
        });
        match found {
            Some(tasks) => tasks.into_iter().map(TaskRef).collect(),
            None => panic!(
                "LoopHandle::all_tasks / dump_tasks: called off the thread of loop #{}; call \
                 it from a task, callback or signal handler of that loop (for example through \
                 call_soon_threadsafe)",
                self.shared.id
            ),
        }
    }

    /// A human-readable dump of every live task (SPEC K6), one [`TaskInfo`] line each
    /// — what the examples print on `SIGUSR1`. Never blocks or disturbs the loop.
    ///
    /// ```
    /// evloop::run(async {
    ///     let lock = std::rc::Rc::new(evloop::sync::Mutex::new(()));
    ///     let guard = lock.lock().await?;
    ///     let waiter = evloop::create_task({
    ///         let lock = lock.clone();
    ///         async move { lock.lock().await.map(drop) }
    ///     });
    ///     waiter.set_name("waiter");
    ///     evloop::yield_now().await?;
    ///     let dump = evloop::LoopHandle::current().dump_tasks();
    ///     assert!(dump.contains("\"waiter\""), "{dump}");
    ///     assert!(dump.contains("evloop::sync::Mutex"), "{dump}");
    ///     drop(guard);
    ///     waiter.await
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// As [`all_tasks`](Self::all_tasks), off this loop's thread.
    pub fn dump_tasks(&self) -> String {
        let tasks = self.all_tasks();
        let mut out = format!("{} live task(s) on loop #{}\n", tasks.len(), self.shared.id);
        for task in &tasks {
            out.push_str(&task.info().to_string());
            out.push('\n');
        }
        // The references are dropped after the walk (a task may end meanwhile: only the
        // loop's own reference and this one remain, and releasing it runs no user code
        // beyond what dropping a finished task's result does anywhere).
        drop(tasks);
        out
    }
}
