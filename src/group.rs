//! [`LoopGroup`] (SPEC §10 S1): n loops on n named threads — thread-per-core.
//!
//! Owns: the loop threads (start-up, keeping each loop running, shutdown and joining),
//! round-robin placement of [`LoopGroup::spawn`], and [`LoopGroup::block_on_each`].
//! Must not touch: any loop's internals. Each loop is an ordinary [`Runtime`] built
//! and owned by its thread; the group reaches it only through its [`LoopHandle`], so
//! everything that crosses loops (spawns, completions, gathers) goes through the
//! target loop's cross-thread queue like any other thread's work.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::{fmt, io};

use crate::context;
use crate::error::{CancelledError, Error, PanicError};
use crate::handle::LoopHandle;
use crate::runtime::{Builder, Runtime};
use crate::task::{Task, create_task};

/// n event loops, one per thread, each a full evloop (own reactor, timer wheel, ready
/// queues and default blocking executor): the thread-per-core way to use more than one
/// core (S1). Listeners bound with [`ListenOptions`](crate::net::ListenOptions)`{
/// reuse_port: true, .. }` on every loop let the kernel spread connections over them.
///
/// * [`spawn`](Self::spawn) places `Send` coroutines round-robin;
/// * [`block_on_each`](Self::block_on_each) runs the same service on every loop and
///   waits for all of them;
/// * futures, tasks and `gather` work across the loops (G5): completing a future bound
///   to another loop schedules its callbacks there through that loop's cross-thread
///   queue.
///
/// Threads are named `evloop-0` … `evloop-{n-1}`. Dropping the group (or
/// [`shutdown`](Self::shutdown)) shuts every loop down as dropping a [`Runtime`] does
/// (R5), all at once: pending tasks are cancelled and given the builder's
/// `shutdown_timeout`, then aborted.
///
/// ```
/// use evloop::{Error, LoopGroup};
///
/// let group = LoopGroup::new(2)?;
/// // The same service on every loop; each runs on its own thread.
/// let names = group.block_on_each(|index, _loop| async move {
///     let thread = std::thread::current().name().unwrap().to_owned();
///     Ok::<_, Error>(format!("loop {index} on {thread}"))
/// });
/// let names: Vec<String> = names.into_iter().collect::<Result<_, _>>()?;
/// assert_eq!(names, ["loop 0 on evloop-0", "loop 1 on evloop-1"]);
///
/// // A task on loop 1 awaits a future that a task on loop 0 completes (G5).
/// let fut = evloop::Future::<i32>::with_loop(&group.handles()[1]);
/// let waiter = group.handles()[1].spawn({
///     let fut = fut.clone();
///     async move { fut.await }
/// });
/// group.handles()[0].spawn(async move {
///     let _ = fut.set_result(7);
///     Ok::<(), Error>(())
/// });
/// let results = group.block_on_each(move |index, _| {
///     let waiter = waiter.future();
///     async move { if index == 0 { waiter.await } else { Ok(0) } }
/// });
/// assert_eq!(*results[0].as_ref().unwrap(), 7);
/// # Ok::<(), evloop::Error>(())
/// ```
pub struct LoopGroup {
    handles: Vec<LoopHandle>,
    threads: Vec<Option<JoinHandle<Result<(), String>>>>,
    /// Set before the loops are stopped for good: a loop thread whose `run_forever`
    /// returns keeps running it until this is set (user code may call `stop`).
    quit: Arc<AtomicBool>,
    next: AtomicUsize,
}

impl LoopGroup {
    /// A group of `n` loops with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build_group`].
    pub fn new(n: usize) -> io::Result<LoopGroup> {
        Builder::default().build_group(n)
    }

    pub(crate) fn start(builder: Builder, n: usize) -> io::Result<LoopGroup> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "evloop: a LoopGroup needs at least one loop",
            ));
        }
        let quit = Arc::new(AtomicBool::new(false));
        let mut group = LoopGroup {
            handles: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
            quit: quit.clone(),
            next: AtomicUsize::new(0),
        };
        for index in 0..n {
            let (tx, rx) = mpsc::channel();
            let builder = builder.clone();
            let quit = quit.clone();
            let thread = std::thread::Builder::new()
                .name(format!("evloop-{index}"))
                .spawn(move || loop_thread(index, builder, quit, tx))?;
            // On error `group` is dropped here, which stops and joins the loops so far.
            let handle = rx.recv().map_err(|_| {
                io::Error::other(format!("evloop: loop thread {index} died while starting"))
            })??;
            group.handles.push(handle);
            group.threads.push(Some(thread));
        }
        Ok(group)
    }

    /// The loops' handles, by index.
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }

    /// The number of loops.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always `false`: a group has at least one loop.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Schedules `coro` on the next loop, round-robin (one atomic increment; see
    /// ARCHITECTURE.md for why not least-loaded). Callable from any thread.
    ///
    /// ```
    /// let group = evloop::LoopGroup::new(2)?;
    /// let tasks: Vec<_> = (0..4)
    ///     .map(|i| group.spawn(async move { Ok::<_, evloop::Error>(i * 10) }))
    ///     .collect();
    /// let loops: Vec<u64> = tasks.iter().map(|t| t.get_loop().id()).collect();
    /// assert_eq!(loops[0], loops[2]);
    /// assert_ne!(loops[0], loops[1]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, coro: F) -> Task<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(coro)
    }

    /// Runs `service(index, handle)` as a task on every loop at once and blocks the
    /// calling thread until all of them finish; returns their results by loop index.
    /// The service is *called* on its loop's thread, so the future it returns needs no
    /// `Send` bound (it may hold `Rc`s, `!Send` hyper services, …).
    ///
    /// A service that panics ends as `Err(Error::Panic)` in its slot, reported in the
    /// log with its loop's index; that loop and every other keep running (S1). A loop
    /// that was shut down before its service ran gives `Err(Error::Cancelled)`.
    ///
    /// ```
    /// let group = evloop::LoopGroup::new(2)?;
    /// let results = group.block_on_each(|index, _| async move {
    ///     if index == 1 {
    ///         panic!("service 1 failed");
    ///     }
    ///     Ok::<_, evloop::Error>(index)
    /// });
    /// assert_eq!(*results[0].as_ref().unwrap(), 0);
    /// assert!(results[1].as_ref().unwrap_err().is_panic());
    /// // Loop 1 is still there.
    /// let again = group.block_on_each(|index, _| async move { Ok::<_, evloop::Error>(index) });
    /// assert_eq!(*again[1].as_ref().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When called on a thread running an evloop loop: blocking it would stall that
    /// loop (await the loops' tasks instead).
    pub fn block_on_each<S, Fut, T>(&self, service: S) -> Vec<Result<T, Error>>
    where
        S: Fn(usize, LoopHandle) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, Error>> + 'static,
        T: Send + 'static,
    {
        if let Some(running) = context::with_current(|local| local.id()) {
            panic!(
                "evloop: LoopGroup::block_on_each cannot be called on a thread running an event \
                 loop (loop #{running}): it would block that loop; spawn on the group's handles \
                 and await the tasks instead"
            );
        }
        let service = Arc::new(service);
        let (tx, rx) = mpsc::channel::<(usize, Result<T, Error>)>();
        for (index, handle) in self.handles.iter().enumerate() {
            let service = service.clone();
            let tx = tx.clone();
            handle.call_soon_threadsafe(move || {
                let started =
                    catch_unwind(AssertUnwindSafe(|| service(index, LoopHandle::current())));
                match started {
                    Ok(fut) => {
                        let task = create_task(fut);
                        task.set_name(format!("service {index}"));
                        create_task(async move {
                            let _ = tx.send((index, task.await));
                            Ok::<(), Error>(())
                        });
                    }
                    Err(payload) => {
                        let _ = tx.send((index, Err(Error::from_panic(payload))));
                    }
                }
            });
        }
        drop(tx);
        let mut results: Vec<Option<Result<T, Error>>> = (0..self.len()).map(|_| None).collect();
        for (index, result) in rx {
            if let Err(e) = &result {
                if e.is_panic() {
                    log::error!(
                        target: "evloop",
                        // `e` displays as "panicked: <message>".
                        "loop {index}: its service {e}; the other loops keep serving"
                    );
                }
            }
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Cancelled(CancelledError::new(Some(
                        "the loop was shut down before its service finished".into(),
                    ))))
                })
            })
            .collect()
    }

    /// Shuts every loop down (R5, all loops at once) and joins their threads.
    ///
    /// # Errors
    ///
    /// An `Error::Exception` naming the loops whose thread died of a panic, with each
    /// panic's message (a bug: every callback and task poll is caught on the loop, so
    /// user code cannot cause it).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), Error> {
        self.quit.store(true, Ordering::Release);
        for handle in &self.handles {
            // A queued callback, not `handle.stop()` directly: the stop flag is cleared
            // when `run_forever` returns, so a stop that lands while the loop thread is
            // between two `run_forever` calls (after a user's `stop`) could be lost and
            // the join would hang. A callback waits in the queue for the next run, and
            // running it on the loop thread makes `quit` visible there.
            handle.call_soon_threadsafe(|| LoopHandle::current().stop());
        }
        let me = std::thread::current().id();
        let mut died = Vec::new();
        for (index, thread) in self.threads.iter_mut().enumerate() {
            let Some(thread) = thread.take() else {
                continue;
            };
            if thread.thread().id() == me {
                // Dropped on one of its own loops: that loop ends when this returns.
                continue;
            }
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(message)) => died.push(format!("loop {index}: {message}")),
                Err(payload) => died.push(format!(
                    "loop {index}: {}",
                    PanicError::from_payload(&*payload).message()
                )),
            }
        }
        if died.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "evloop: loop thread(s) died of a panic: {}",
                died.join("; ")
            )))
        }
    }
}

/// The body of loop `index`'s thread: build the runtime, report its handle, run it
/// until the group quits, then drop it (the R5 shutdown happens on this thread).
fn loop_thread(
    index: usize,
    builder: Builder,
    quit: Arc<AtomicBool>,
    started: mpsc::Sender<io::Result<LoopHandle>>,
) -> Result<(), String> {
    let rt: Runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(e));
            return Ok(());
        }
    };
    let _ = started.send(Ok(rt.handle()));
    drop(started);
    let ran = catch_unwind(AssertUnwindSafe(|| {
        while !quit.load(Ordering::Acquire) {
            rt.run_forever();
        }
    }));
    drop(rt);
    ran.map_err(|payload| {
        let message = PanicError::from_payload(&*payload).message().to_owned();
        log::error!(target: "evloop", "loop {index}: its thread panicked: {message}");
        message
    })
}

impl Drop for LoopGroup {
    /// As [`shutdown`](LoopGroup::shutdown); a dead loop thread is logged.
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            log::error!(target: "evloop", "{e}");
        }
    }
}

impl fmt::Debug for LoopGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field(
                "loops",
                &self.handles.iter().map(|h| h.id()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LoopGroup>();
}
