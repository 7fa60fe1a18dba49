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
use std::sync::{Arc, Mutex, PoisonError};

use signal_hook_registry::SigId;

use crate::error::Error;
use crate::future::Future;
use crate::handle::LoopHandle;
use crate::reactor::Unparker;

type Handler = Arc<dyn Fn() + Send + Sync + 'static>;

struct Watch {
    id: SigId,
    handler: Option<Handler>,
    waiters: Vec<Future<()>>,
}

/// The signal state of one loop, in its `Shared` part.
pub(crate) struct Signals {
    /// Bit `n` set: signal `n` arrived since the loop last looked.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The OS-level action for `signum`, registered once per loop and signal.
    fn register(&self, signum: i32) -> io::Result<SigId> {
        if !(1..64).contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid signal number {signum}"),
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
        let bit = 1u64 << signum;
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
                    waiters: Vec::new(),
                }))
            }
        }
    }

    /// Whether any signal is pending (one plain load per loop iteration).
    pub(crate) fn any_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
    }

    /// Dispatches the signals that arrived: handlers as loop callbacks, waiters
    /// completed. Loop thread.
    pub(crate) fn dispatch(&self, owner: &LoopHandle) {
        let bits = self.pending.swap(0, Ordering::SeqCst);
        if bits == 0 {
            return;
        }
        let mut to_run = Vec::new();
        let mut to_complete = Vec::new();
        {
            let mut watches = self.lock();
            for signum in (1..64).filter(|n| bits & (1u64 << n) != 0) {
                if let Some(watch) = watches.get_mut(&signum) {
                    to_run.extend(watch.handler.clone());
                    to_complete.append(&mut watch.waiters);
                }
            }
        }
        for handler in to_run {
            owner.call_soon(move || handler());
        }
        for waiter in to_complete {
            let _ = waiter.set_result(());
        }
    }

    /// Unregisters every OS-level action (loop close); waiters are cancelled.
    pub(crate) fn clear(&self) {
        let watches = std::mem::take(&mut *self.lock());
        for (_, watch) in watches {
            signal_hook_registry::unregister(watch.id);
            for waiter in watch.waiters {
                waiter.cancel();
            }
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
    /// `SIGILL`, `SIGFPE`, `SIGSEGV`) or numbers outside 1–63; the OS error if the
    /// handler cannot be installed.
    pub fn add_signal_handler<F>(&self, signum: i32, callback: F) -> io::Result<()>
    where
        F: Fn() + Send + Sync + 'static,
    {
        if self.is_closed() {
            return Err(io::Error::other("evloop: the loop is closed"));
        }
        let signals = &self.shared.signals;
        let mut watches = signals.lock();
        signals.watch_mut(&mut watches, signum)?.handler = Some(Arc::new(callback));
        Ok(())
    }

    /// Removes the callback of `signum`; `true` if there was one.
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        let signals = &self.shared.signals;
        let mut watches = signals.lock();
        let Some(watch) = watches.get_mut(&signum) else {
            return false;
        };
        let had = watch.handler.take().is_some();
        if watch.waiters.is_empty() {
            let watch = watches.remove(&signum).expect("present");
            signal_hook_registry::unregister(watch.id);
        }
        had
    }
}

/// Waits for signal `signum` on the current loop: the future completes the next time
/// it arrives. A loop-native await (cancellable, T3).
///
/// # Panics
///
/// Off a loop thread.
pub fn wait(signum: i32) -> Future<()> {
    let owner = LoopHandle::current();
    let fut = Future::with_loop(&owner);
    let signals = &owner.shared.signals;
    let mut watches = signals.lock();
    match signals.watch_mut(&mut watches, signum) {
        Ok(watch) => watch.waiters.push(fut.clone()),
        Err(e) => {
            let _ = fut.set_exception(Error::new(e));
        }
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
