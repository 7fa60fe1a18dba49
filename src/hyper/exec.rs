//! `hyper::rt::Executor` on evloop: where hyper's background futures (HTTP/2 streams and
//! the connection of an HTTP/2 client) become tasks.
//!
//! Owns: the two executor types. Must not touch: task internals — both go through the
//! public spawning API ([`create_task`](crate::create_task) and
//! [`LoopHandle::spawn`]).

use std::future::Future;

use crate::error::Error;
use crate::handle::LoopHandle;

/// Spawns hyper's futures as tasks on the loop running on the calling thread. No `Send`
/// bound: a `!Send` service (one holding an `Rc`, say) works with HTTP/2 too. Each
/// future is one detached task; its output is dropped and a panic in it is reported to
/// the loop's exception handler like any task's.
///
/// ```
/// use evloop::hyper::LocalExec;
/// use hyper::rt::Executor;
///
/// evloop::run(async {
///     let flag = std::rc::Rc::new(std::cell::Cell::new(false)); // !Send
///     let seen = flag.clone();
///     LocalExec.execute(async move { seen.set(true) });
///     evloop::yield_now().await?;
///     assert!(flag.get());
///     Ok::<(), evloop::Error>(())
/// })?;
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Panics
///
/// `execute` panics when no evloop loop runs on the calling thread (hyper calls it from
/// the connection's poll, which runs on the loop); use [`LoopExec`] from other threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    #[track_caller]
    fn execute(&self, fut: F) {
        crate::create_task(async move {
            fut.await;
            Ok::<(), Error>(())
        });
    }
}

/// Spawns hyper's `Send` futures as tasks on one given loop, from any thread (through
/// the loop's cross-thread queue when called elsewhere). On a closed loop the future is
/// dropped (L14).
///
/// ```
/// use evloop::hyper::LoopExec;
/// use hyper::rt::Executor;
///
/// let rt = evloop::Runtime::new()?;
/// let exec = LoopExec::new(rt.handle());
/// let done = evloop::Future::with_loop(&rt.handle());
/// let setter = done.clone();
/// std::thread::spawn(move || exec.execute(async move { let _ = setter.set_result(42); }))
///     .join()
///     .unwrap();
/// assert_eq!(rt.block_on(done).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LoopExec {
    handle: LoopHandle,
}

impl LoopExec {
    /// An executor spawning onto `handle`'s loop.
    pub fn new(handle: LoopHandle) -> LoopExec {
        LoopExec { handle }
    }

    /// An executor spawning onto the loop running on this thread.
    ///
    /// # Panics
    ///
    /// Off a loop thread.
    pub fn current() -> LoopExec {
        LoopExec::new(LoopHandle::current())
    }

    /// The loop this executor spawns onto.
    pub fn handle(&self) -> &LoopHandle {
        &self.handle
    }
}

impl<F> hyper::rt::Executor<F> for LoopExec
where
    F: Future + Send + 'static,
{
    #[track_caller]
    fn execute(&self, fut: F) {
        self.handle.spawn(async move {
            fut.await;
            Ok::<(), Error>(())
        });
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LocalExec>();
    send_sync::<LoopExec>();
}
