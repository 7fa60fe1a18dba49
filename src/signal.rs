//! Unix signals (L12): [`LoopHandle::add_signal_handler`],
//! [`LoopHandle::remove_signal_handler`], [`ctrl_c`] and [`wait`].
//!
//! Owns: one loop's signal registrations and the set of signals that arrived. Must not
//! touch: anything from inside the OS signal handler except two async-signal-safe
//! operations — an atomic `fetch_or` on the pending bitmask and the eventfd write that
//! wakes the loop. Everything else (the user's callback, completing futures) happens
//! on the loop, as ordinary callbacks, when it sees the bit.
//!
//! Registration is process-wide through `signal-hook-registry` (several loops may
//! watch the same signal). As with tokio, once evloop has registered a signal the
//! process keeps evloop's handler for it: after the last watch is removed the signal is
//! ignored instead of taking its default action.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use signal_hook_registry::SigId;
use slab::Slab;

use crate::closing::Closable;
use crate::error::Error;
use crate::exception::{ExceptionSource, drop_each_catching, for_each_catching};
use crate::future::{CancelHook, Future, FutureCore, FutureObj};
use crate::handle::LoopHandle;
use crate::reactor::Unparker;
use crate::task::TaskOps;

type Handler = Arc<dyn Fn() + Send + Sync + 'static>;

/// The highest signal number (Linux: `SIGRTMAX`, 64); the pending mask has one bit per
/// signal, bit `n - 1` for signal `n`.
const MAX_SIGNAL: i32 = 64;

fn bit(signum: i32) -> u64 {
    1u64 << (signum - 1)
}

struct Watch {
    id: SigId,
    handler: Option<Handler>,
    /// `signal::wait` futures, each removed when its future is dropped (Q8).
    waiters: Slab<Weak<WaitCell>>,
}

/// The signal state of one loop, in its `Shared` part.
pub(crate) struct Signals {
    /// Bit `n - 1` set: signal `n` arrived since the loop last looked.
    pending: Arc<AtomicU64>,
    unparker: Arc<Unparker>,
    watches: Mutex<HashMap<i32, Watch>>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Signals {
    pub(crate) fn new(unparker: Arc<Unparker>) -> Signals {
        Signals {
            pending: Arc::new(AtomicU64::new(0)),
            unparker,
            watches: Mutex::new(HashMap::new()),
        }
    }

    /// The watches. Nothing user-supplied is dropped or called while this is held:
    /// replaced handlers and waiters are moved out first (rule 1).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The OS-level action for `signum`, registered once per loop and signal.
    fn register(&self, signum: i32) -> io::Result<SigId> {
        if !(1..=MAX_SIGNAL).contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid signal number {signum} (signals are 1 to {MAX_SIGNAL})"),
            ));
        }
        if signal_hook_registry::FORBIDDEN.contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "signal {signum} cannot be handled (SIGKILL, SIGSTOP, SIGILL, SIGFPE or SIGSEGV)"
                ),
            ));
        }
        let pending = self.pending.clone();
        let unparker = self.unparker.clone();
        let bit = bit(signum);
        let action = move || {
            pending.fetch_or(bit, Ordering::SeqCst);
            let _ = unparker.unpark();
        };
        // SAFETY: the action only performs async-signal-safe operations: a lock-free
        // atomic `fetch_or`, and `Unparker::unpark`, which is `write(2)` on an eventfd
        // (plus `read(2)` if the counter is full). It allocates nothing and takes no
        // lock; the captured `Arc`s are only read, never cloned or dropped, in the
        // handler.
        unsafe { signal_hook_registry::register(signum, action) }
            .map_err(|e| io::Error::new(e.kind(), format!("cannot handle signal {signum}: {e}")))
    }

    fn watch_mut<'a>(
        &self,
        watches: &'a mut HashMap<i32, Watch>,
        signum: i32,
    ) -> io::Result<&'a mut Watch> {
        match watches.entry(signum) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let id = self.register(signum)?;
                Ok(entry.insert(Watch {
                    id,
                    handler: None,
                    waiters: Slab::new(),
                }))
            }
        }
    }

    /// Unregisters the OS action of `signum` if nothing watches it any more.
    fn release_if_unused(watches: &mut HashMap<i32, Watch>, signum: i32) {
        if watches
            .get(&signum)
            .is_some_and(|w| w.handler.is_none() && w.waiters.is_empty())
        {
            let watch = watches.remove(&signum).expect("present");
            signal_hook_registry::unregister(watch.id);
        }
    }

    /// Whether any signal is pending (one plain load per loop iteration).
    pub(crate) fn any_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
    }

    /// Dispatches the signals that arrived: handlers as loop callbacks, waiters
    /// completed (each under its own catch: a panicking waker loses no other). Loop
    /// thread.
    pub(crate) fn dispatch(&self, owner: &LoopHandle) {
        let bits = self.pending.swap(0, Ordering::SeqCst);
        if bits == 0 {
            return;
        }
        let mut to_run = Vec::new();
        let mut to_complete = Vec::new();
        {
            let mut watches = self.lock();
            for signum in (1..=MAX_SIGNAL).filter(|&n| bits & bit(n) != 0) {
                if let Some(watch) = watches.get_mut(&signum) {
                    to_run.extend(watch.handler.clone());
                    to_complete.extend(watch.waiters.drain());
                }
                Self::release_if_unused(&mut watches, signum);
            }
        }
        for handler in to_run {
            owner.call_soon(move || handler());
        }
        for_each_catching(
            owner,
            "Exception in a waker woken by a signal",
            ExceptionSource::Waker,
            to_complete,
            |waiter| {
                if let Some(cell) = waiter.upgrade() {
                    cell.complete(Ok(()));
                }
            },
        );
    }

    /// Unregisters every OS-level action (loop close); waiters are cancelled, handlers
    /// dropped — each under its own catch.
    pub(crate) fn clear(&self, owner: &LoopHandle) {
        let watches = std::mem::take(&mut *self.lock());
        let mut handlers = Vec::new();
        let mut waiters = Vec::new();
        for (_, watch) in watches {
            signal_hook_registry::unregister(watch.id);
            handlers.extend(watch.handler);
            waiters.extend(watch.waiters.into_iter().map(|(_, w)| w));
        }
        for_each_catching(
            owner,
            "Exception while cancelling a signal wait of a closing loop",
            ExceptionSource::Waker,
            waiters,
            |waiter| {
                if let Some(cell) = waiter.upgrade() {
                    cell.complete(Err(()));
                }
            },
        );
        drop_each_catching(owner, "Exception while dropping a signal handler", handlers);
    }

    /// Forgets the waiter at `key` of `signum` if it is still `cell` (its future is
    /// being dropped).
    fn forget_waiter(&self, signum: i32, key: usize, cell: *const WaitCell) {
        let removed = {
            let mut watches = self.lock();
            let removed = watches.get_mut(&signum).and_then(|watch| {
                let same = watch
                    .waiters
                    .get(key)
                    .is_some_and(|w| std::ptr::eq(w.as_ptr(), cell));
                same.then(|| watch.waiters.remove(key))
            });
            Self::release_if_unused(&mut watches, signum);
            removed
        };
        drop(removed);
    }
}

/// The cell of a [`wait`] future: a plain future that also sits in its signal's waiter
/// list, and leaves it when dropped.
struct WaitCell {
    core: FutureCore<()>,
    signum: i32,
    /// The slab key in the signal's waiter list (`usize::MAX`: not registered).
    key: usize,
}

impl WaitCell {
    fn handle(self: &Arc<Self>) -> Future<()> {
        Future::from_obj(self.clone())
    }

    /// Completes the wait: the signal arrived (`Ok`) or the loop closed (`Err`).
    fn complete(self: Arc<Self>, arrived: Result<(), ()>) {
        let fut = self.handle();
        match arrived {
            Ok(()) => {
                let _ = fut.set_result(());
            }
            Err(()) => {
                fut.cancel();
            }
        }
    }
}

impl CancelHook for WaitCell {
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool {
        let fut = self.handle();
        self.core.cancel(message, &|| fut.clone())
    }
}

impl Closable for WaitCell {
    fn loop_closed(self: Arc<Self>) {
        let fut = self.handle();
        self.core.close_pending(&|| fut.clone());
    }
}

impl FutureObj<()> for WaitCell {
    fn core(&self) -> &FutureCore<()> {
        &self.core
    }

    fn task(&self) -> Option<&dyn TaskOps> {
        None
    }

    fn cancel(&self, handle: &Future<()>, message: Option<Arc<str>>) -> bool {
        self.core.cancel(message, &|| handle.clone())
    }
}

impl Drop for WaitCell {
    fn drop(&mut self) {
        crate::future::report_unretrieved(&self.core, "signal wait ");
        if self.key != usize::MAX {
            let me: *const WaitCell = self;
            self.core
                .owner
                .shared
                .signals
                .forget_waiter(self.signum, self.key, me);
        }
    }
}

impl LoopHandle {
    /// Runs `callback` on this loop, as an ordinary callback, each time signal `signum`
    /// arrives (L12; asyncio's `add_signal_handler`). Adding again replaces the
    /// callback. Nothing but an atomic store and an eventfd write happens in the
    /// signal handler itself.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let got = Arc::new(AtomicBool::new(false));
    /// evloop::run({
    ///     let got = got.clone();
    ///     async move {
    ///         let loop_ = evloop::LoopHandle::current();
    ///         loop_.add_signal_handler(libc::SIGUSR2, move || {
    ///             got.store(true, Ordering::SeqCst);
    ///             evloop::LoopHandle::current().remove_signal_handler(libc::SIGUSR2);
    ///         })?;
    ///         // SAFETY (of the example): raising a handled signal in our own process.
    ///         unsafe { libc::raise(libc::SIGUSR2) };
    ///         evloop::time::sleep(std::time::Duration::from_millis(20)).await.unwrap();
    ///         Ok::<_, std::io::Error>(())
    ///     }
    /// })?;
    /// assert!(got.load(Ordering::SeqCst));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` for signals that cannot be handled (`SIGKILL`, `SIGSTOP`,
    /// `SIGILL`, `SIGFPE`, `SIGSEGV`) or numbers outside 1–64 (every signal up to
    /// `SIGRTMAX` can be handled); the OS error, naming the signal, if the handler cannot
    /// be installed (glibc reserves 32 and 33 for its threads).
    pub fn add_signal_handler<F>(&self, signum: i32, callback: F) -> io::Result<()>
    where
        F: Fn() + Send + Sync + 'static,
    {
        if self.is_closed() {
            return Err(io::Error::other("evloop: the loop is closed"));
        }
        let signals = &self.shared.signals;
        let replaced = {
            let mut watches = signals.lock();
            let watch = signals.watch_mut(&mut watches, signum)?;
            watch.handler.replace(Arc::new(callback))
        };
        // The old handler's drop is user code: after the lock (rule 1).
        drop(replaced);
        Ok(())
    }

    /// Removes the callback of `signum`; `true` if there was one. The callback is
    /// dropped before this returns, outside evloop's locks.
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        let signals = &self.shared.signals;
        let removed = {
            let mut watches = signals.lock();
            let removed = watches.get_mut(&signum).and_then(|w| w.handler.take());
            Signals::release_if_unused(&mut watches, signum);
            removed
        };
        removed.is_some()
    }
}

/// Waits for signal `signum` on the current loop: the future completes the next time
/// it arrives. A loop-native await (cancellable, T3). The wait is registered at once
/// and removed when the future (every handle of it) is dropped, so abandoned waits
/// leave nothing behind (Q8). When the loop closes first, the future is cancelled.
///
/// ```
/// evloop::run(async {
///     let usr1 = evloop::signal::wait(libc::SIGUSR1);
///     // SAFETY (of the example): raising a signal evloop handles, in our own process.
///     unsafe { libc::raise(libc::SIGUSR1) };
///     usr1.await.unwrap();
/// });
/// ```
///
/// # Errors
///
/// The returned future fails with the `io::Error` of [`LoopHandle::add_signal_handler`]
/// (wrapped in `Error`) for a signal that cannot be handled.
///
/// # Panics
///
/// Off a loop thread.
#[track_caller]
pub fn wait(signum: i32) -> Future<()> {
    wait_on(&LoopHandle::current(), signum)
}

/// [`wait`] on loop `owner`, from any thread (the child watch of `process` waits for
/// `SIGCHLD` on the child's loop even when polled elsewhere). The watch lock is held
/// while the cell is built, so a dispatch cannot see a half-made waiter.
#[track_caller]
pub(crate) fn wait_on(owner: &LoopHandle, signum: i32) -> Future<()> {
    let owner = owner.clone();
    let created_at = std::panic::Location::caller();
    let signals = &owner.shared.signals;
    let mut watches = signals.lock();
    let watch = signals.watch_mut(&mut watches, signum);
    let failed = watch
        .as_ref()
        .err()
        .map(|e| io::Error::new(e.kind(), e.to_string()));
    let cell = Arc::new_cyclic(|me: &Weak<WaitCell>| WaitCell {
        core: FutureCore::new(owner.clone(), created_at),
        signum,
        key: match watch {
            // Dispatch takes the watch lock, held here until the cell exists, so
            // nothing upgrades `me` before then.
            Ok(watch) => watch.waiters.insert(me.clone()),
            Err(_) => usize::MAX,
        },
    });
    drop(watches);
    let fut = cell.handle();
    if let Some(e) = failed {
        let _ = fut.set_exception(Error::new(e));
    }
    fut
}

/// Waits for Ctrl-C (`SIGINT`) on the current loop (tokio's `signal::ctrl_c`).
///
/// ```no_run
/// #[evloop::main]
/// async fn main() -> Result<(), evloop::Error> {
///     println!("press Ctrl-C");
///     evloop::signal::ctrl_c().await?;
///     println!("bye");
///     Ok(())
/// }
/// ```
///
/// # Panics
///
/// Off a loop thread.
pub fn ctrl_c() -> Future<()> {
    wait(libc::SIGINT)
}
