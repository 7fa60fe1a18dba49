//! No leaks (SPEC Q4, with R5, T3, T5, F7, F10, L11, L12, L14, E2): after a runtime is
//! dropped, every task, future, timer, callback, I/O registration and executor job it
//! owned is freed, and a future whose done-callback captures the future itself is freed
//! once it is done.
//!
//! How: this test binary installs a counting `#[global_allocator]` (it wraps `System`
//! and counts live allocations and live bytes with atomics) and holds a single test, so
//! nothing else allocates concurrently. The test
//!
//! 1. warms up — runs the whole runtime scenario once at a small scale, so lazily
//!    created process-wide statics and thread-locals (std's thread handle, evloop's
//!    thread-locals, the panic hook) exist — and waits until every thread the warm-up
//!    started has exited;
//! 2. records the baseline of live allocations and bytes;
//! 3. runs the scenario at full scale: 100 000 tasks (half finished — awaited, detached,
//!    failed, panicked — and half pending when the runtime is dropped, on evloop
//!    futures, foreign futures, sleeps, timeouts, gathers and other tasks), futures
//!    whose done-callbacks capture the future itself (completed every way, on and off
//!    the loop thread, before and after the loop closed), pending and cancelled timers,
//!    queued callbacks, TCP listeners and connections with tasks blocked in accept, read
//!    and write, a Unix socket pair, fd watches (`add_reader` / `add_writer`) and a
//!    signal handler and signal waiter left registered (their callbacks hold a loop
//!    handle: a cycle through the loop that closing it must break), executor jobs
//!    (finished, running at shutdown, queued, cancelled before start) on the default
//!    and on an explicit executor, and 3 000 loop handles dropped after the loop
//!    closed; the loop's statistics confirm the tasks and timers were still live at
//!    drop;
//! 4. drops the runtime and everything the test kept, waits until the threads the
//!    scenario started (executor workers, whose tail after `Runtime::drop` is detached)
//!    have exited — they are counted in `/proc/self/task` —, then asserts that live
//!    allocations and bytes are exactly back at the baseline (no tolerance), and that
//!    every drop-counted payload (`Tracked`) was dropped exactly once.
//!
//! A second part checks the self-capturing future directly, inside a running loop
//! (completed on the loop thread and from another thread): the payload of a completed
//! future whose done-callback holds a clone of it is still alive right after
//! completion (callbacks never run synchronously) and dropped once the callback has
//! run; repeating the pattern 1 000 times leaves the live allocation count unchanged,
//! and so does the whole part once its runtime is dropped.
//!
//! A future that is never completed and whose callback holds the future is a
//! reference cycle; closing the loop completes it ("event loop is closed", U2), which
//! drops the callback and frees it (flavour 6 of the self-capturing futures).
//!
//! Nothing is printed between the baseline and the final measurement (libtest's output
//! capture would grow a buffer); expected panics are silenced by a panic hook installed
//! before the warm-up. A watchdog thread that never allocates after it is armed turns a
//! hang into a failure.

mod common;

use std::future::Future as StdFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop::net::{TcpListener, TcpStream, UnixStream};
use evloop::{
    Error, ExceptionContext, Executor, Future, LoopHandle, Runtime, Task, create_task, gather,
    time, wait_for,
};

// ---------------------------------------------------------------------------------------
// The counting allocator (tests/common/counting_alloc.rs).

#[global_allocator]
static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;

use common::counting_alloc::{Watchdog, live};

// ---------------------------------------------------------------------------------------
// Drop-counted payloads.

static TRACKED_CREATED: AtomicUsize = AtomicUsize::new(0);
static TRACKED_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A payload that counts its creations and drops: moved into tasks, callbacks, timers,
/// jobs and future results, it shows that each of them was dropped (exactly once).
#[derive(Debug)]
struct Tracked(u64);

impl Tracked {
    fn new(v: u64) -> Tracked {
        TRACKED_CREATED.fetch_add(1, Ordering::SeqCst);
        Tracked(v)
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Tracked {
        Tracked::new(self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        TRACKED_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Tracked` values created and not yet dropped.
fn tracked_alive() -> usize {
    TRACKED_CREATED.load(Ordering::SeqCst) - TRACKED_DROPPED.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------
// Test plumbing that does not allocate while measurements are taken.

/// The marker of the panics this test provokes on purpose (silenced by the hook).
const DELIBERATE: &str = "leak-test: deliberate panic";

/// Silences the deliberate panics (their report would grow libtest's capture buffer);
/// every other panic goes to the default hook.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() == Some(&DELIBERATE) {
            return;
        }
        default(info);
    }));
}

/// Threads of this process, as the kernel lists them (an exited thread has finished
/// every destructor and freed everything it allocated).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Waits until at most `n` threads are left (generous bound: a hang becomes a failure).
fn wait_for_threads(n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = thread_count();
        if now <= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} threads still alive after 30 s, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// A foreign (non-evloop) future that never completes and stashes its waker where the
/// test can reach it after the runtime is gone.
struct Stash(Arc<Mutex<Option<Waker>>>);

impl StdFuture for Stash {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Counts of what the loop's exception handler received, by message.
#[derive(Debug, Default)]
struct Reports {
    task_never_retrieved: AtomicUsize,
    future_never_retrieved: AtomicUsize,
    /// "Never retrieved" reports whose error is a cancellation: a gather whose children
    /// were cancelled holds `Error::Cancelled` as its exception (G1, G4). Whether the
    /// task awaiting it saw that error before the shutdown timeout aborted it depends
    /// on timing, so these are counted apart and not checked.
    cancellation_never_retrieved: AtomicUsize,
    other: AtomicUsize,
}

// ---------------------------------------------------------------------------------------
// The runtime scenario.

#[derive(Clone, Copy, Debug)]
struct Scale {
    finished_tasks: usize,
    pending_tasks: usize,
    /// Per flavour of self-capturing future.
    self_capturing: usize,
    timers: usize,
    connections: usize,
}

/// Futures whose done-callback captures the future itself.
const FLAVOURS: usize = 7;
/// Detached tasks that fail, and that panic (each is reported once as never retrieved).
const FAILING_TASKS: usize = 100;
const PANICKING_TASKS: usize = 100;
/// Tasks blocked on a foreign future: cancellation cannot reach them, so shutdown
/// aborts them after its timeout (T5).
const FOREIGN_TASKS: usize = 16;
/// Callbacks scheduled and tasks spawned (finished, and pending) from another thread.
const REMOTE_CALLBACKS: usize = 100;
const REMOTE_TASKS: usize = 50;

/// What the scenario hands back from inside the loop to be dropped after the runtime.
struct Kept {
    loop_handles: Vec<LoopHandle>,
    /// Pending futures awaited by pending tasks (cancelled by the shutdown, T3).
    awaited: Vec<Future<u64>>,
    /// Pending tasks whose handles outlive the runtime.
    pending_tasks: Vec<Task<u64>>,
    /// Pending futures whose done-callback holds the future itself; completed only
    /// after the loop closed.
    late: Vec<Future<Tracked>>,
    late_callback_runs: Arc<AtomicUsize>,
    /// Wakers of tasks aborted by the shutdown, woken after it.
    stashed_wakers: Vec<Arc<Mutex<Option<Waker>>>>,
    /// A thread holding a loop handle, told to use it once the loop closed.
    remote: (
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<(bool, bool)>,
    ),
    /// Futures of executor jobs, outliving the loop.
    jobs: Vec<Future<u64>>,
    /// Sockets watched with add_reader / add_writer (closed after the loop).
    watched: Vec<std::os::unix::net::UnixStream>,
}

/// Observations from a scenario run (checked by the caller once the runtime is gone).
#[derive(Debug, Default)]
struct Outcome {
    gathered_sum: u64,
    echoes_ok: usize,
    self_capturing_callbacks: usize,
    timers_fired: usize,
    job_results: Vec<u64>,
    pending_tasks_done: usize,
    pending_tasks_kept: usize,
    awaited_cancelled: usize,
    awaited_kept: usize,
    late_callback_runs: usize,
    remote_schedules_cancelled: (bool, bool),
    closed_loop_handles_cancelled: (bool, bool),
    reports: (usize, usize, usize),
    reader_runs: usize,
    signal_handler_runs: usize,
    /// The loop's statistics just before the runtime was dropped.
    stats_at_drop: Option<evloop::LoopStats>,
}

/// One pending task's body: blocked in one of several ways when the runtime is dropped.
async fn pending_body(
    kind: usize,
    awaited: Future<u64>,
    other: Future<u64>,
    payload: Tracked,
) -> Result<u64, Error> {
    let _payload = payload;
    match kind {
        0 => Future::<u64>::new().await,
        1 => awaited.await,
        2 => {
            time::sleep(HOUR).await?;
            Ok(2)
        }
        3 => other.await,
        4 => match Future::<u64>::new().await {
            // Handles the cancellation and cleans up asynchronously before finishing.
            Err(e) if e.is_cancelled() => {
                evloop::yield_now().await?;
                time::sleep(Duration::ZERO).await?;
                Ok(4)
            }
            other => other,
        },
        5 => time::timeout(HOUR, Future::<u64>::new()).await?,
        6 => {
            let v = gather(vec![Future::<u64>::new(), awaited]).await?;
            Ok(v.len() as u64)
        }
        _ => wait_for(Future::<u64>::new(), HOUR).await,
    }
}

/// A future whose done-callback captures the future itself, completed (or not) in the
/// way `flavour` says. Returns the future if the test must complete it later.
fn self_capturing(flavour: usize, i: u64, ran: &Arc<AtomicUsize>) -> Option<Future<Tracked>> {
    let fut = Future::<Tracked>::new();
    let me = fut.clone();
    let ran = ran.clone();
    let register = move |f: &Future<Tracked>| {
        f.add_done_callback(move |done: &Future<Tracked>| {
            assert!(done == &me);
            if flavour == 2 {
                // Retrieves the exception (so it is not reported).
                assert!(me.exception().unwrap().is_some());
            }
            ran.fetch_add(1, Ordering::SeqCst);
        });
    };
    match flavour {
        // Completed with a result.
        0 => {
            register(&fut);
            fut.set_result(Tracked::new(i)).unwrap();
        }
        // With an exception nobody retrieves: reported as never retrieved (F10).
        1 => {
            register(&fut);
            fut.set_exception(Error::msg("never retrieved")).unwrap();
        }
        // With an exception the callback retrieves.
        2 => {
            register(&fut);
            fut.set_exception(Error::msg("retrieved")).unwrap();
        }
        // Cancelled.
        3 => {
            register(&fut);
            assert!(fut.cancel());
        }
        // Completed from another thread (the callback crosses threads).
        4 => {
            register(&fut);
            let remote = fut.clone();
            std::thread::spawn(move || remote.set_result(Tracked::new(i)).unwrap())
                .join()
                .unwrap();
        }
        // The callback registered after completion.
        5 => {
            fut.set_result(Tracked::new(i)).unwrap();
            register(&fut);
        }
        // Left pending: closing the loop completes it ("event loop is closed", U2) and
        // drops the callback without running it, which breaks the cycle.
        _ => {
            register(&fut);
            return Some(fut);
        }
    }
    None
}

/// Echo server side: answers one message, then stays blocked in `read`.
async fn serve_one(stream: TcpStream, payload: Tracked) -> Result<(), Error> {
    let _payload = payload;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).await?;
    stream.write_all(&buf[..n]).await?;
    let n = stream.read(&mut buf).await?;
    unreachable!("the client never sends twice (read {n} bytes)");
}

#[allow(clippy::too_many_lines)]
fn runtime_scenario(scale: Scale) -> Outcome {
    let rt = Runtime::builder()
        .debug(false)
        // One default-executor thread, so a second job queues behind a running one.
        .blocking_threads(1)
        // Shutdown waits this long for the tasks on foreign futures, then aborts them.
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let loop_ = rt.handle();
    let explicit = Executor::new(2);

    let reports = Arc::new(Reports::default());
    {
        let reports = reports.clone();
        let payload = Tracked::new(0);
        loop_.set_exception_handler(Some(move |_: &LoopHandle, ctx: &ExceptionContext| {
            let _ = &payload;
            let m = ctx.message.as_str();
            let cancellation = ctx.exception.as_ref().is_some_and(Error::is_cancelled);
            let slot = if m.contains("exception was never retrieved") && cancellation {
                &reports.cancellation_never_retrieved
            } else if m.starts_with("Task exception was never retrieved") {
                &reports.task_never_retrieved
            } else if m.starts_with("Future exception was never retrieved") {
                &reports.future_never_retrieved
            } else {
                &reports.other
            };
            slot.fetch_add(1, Ordering::SeqCst);
        }));
    }

    let mut outcome = Outcome::default();
    let self_capturing_ran = Arc::new(AtomicUsize::new(0));
    let timers_fired = Arc::new(AtomicUsize::new(0));
    let reader_runs = Arc::new(AtomicUsize::new(0));
    let signal_handler_runs = Arc::new(AtomicUsize::new(0));

    let kept = rt.block_on(async {
        let mut kept = Kept {
            loop_handles: Vec::new(),
            awaited: Vec::new(),
            pending_tasks: Vec::new(),
            late: Vec::new(),
            late_callback_runs: self_capturing_ran.clone(),
            stashed_wakers: Vec::new(),
            remote: {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let handle = LoopHandle::current();
                (
                    tx,
                    std::thread::spawn(move || {
                        rx.recv().unwrap();
                        // The loop is closed now: both are refused (L14).
                        let soon = handle.call_soon_threadsafe(|| unreachable!());
                        let task = handle.spawn(async { Ok::<_, Error>(Tracked::new(1)) });
                        (soon.cancelled(), task.cancelled())
                    }),
                )
            },
            jobs: Vec::new(),
            watched: Vec::new(),
        };

        // Thousands of handles cloned on the loop thread (past any per-thread batching
        // of the handle count), dropped after the loop closed, off any loop.
        for _ in 0..3000 {
            kept.loop_handles.push(LoopHandle::current());
        }

        // --- Finished tasks: awaited through gather, detached, failed, panicked.
        let half = scale.finished_tasks / 2;
        let awaited_tasks: Vec<Task<u64>> = (0..half as u64)
            .map(|i| {
                let payload = Tracked::new(i);
                create_task(async move { Ok(payload.0) })
            })
            .collect();
        for i in 0..scale.finished_tasks - half {
            let payload = Tracked::new(i as u64);
            let task: Task<u64> = if i < FAILING_TASKS {
                create_task(async move {
                    let _payload = payload;
                    Err(Error::msg("failed on purpose"))
                })
            } else if i < FAILING_TASKS + PANICKING_TASKS {
                create_task(async move {
                    let _payload = payload;
                    if std::hint::black_box(true) {
                        std::panic::panic_any(DELIBERATE);
                    }
                    Ok(0)
                })
            } else {
                create_task(async move {
                    evloop::yield_now().await?;
                    Ok(payload.0)
                })
            };
            drop(task);
        }
        outcome.gathered_sum = gather(awaited_tasks).await.unwrap().iter().sum();

        // --- Pending tasks, in eight ways, plus tasks on foreign futures.
        let mut previous: Option<Future<u64>> = None;
        for i in 0..scale.pending_tasks {
            let kind = i % 8;
            let awaited = Future::<u64>::new();
            if kind == 1 || kind == 6 {
                kept.awaited.push(awaited.clone());
            }
            let other = previous.take().unwrap_or_else(Future::new);
            let task = create_task(pending_body(kind, awaited, other, Tracked::new(i as u64)));
            previous = Some(task.future());
            if i % 5 == 0 {
                kept.pending_tasks.push(task);
            }
        }
        drop(previous);
        for i in 0..FOREIGN_TASKS {
            let stash = Arc::new(Mutex::new(None));
            kept.stashed_wakers.push(stash.clone());
            let payload = Tracked::new(i as u64);
            let task: Task<u64> = create_task(async move {
                let _payload = payload;
                if i % 2 == 0 {
                    Stash(stash).await;
                } else {
                    std::future::pending::<()>().await;
                }
                Ok(0)
            });
            kept.pending_tasks.push(task);
        }

        // --- Futures whose done-callback captures the future itself.
        for flavour in 0..FLAVOURS {
            for i in 0..scale.self_capturing {
                if let Some(late) = self_capturing(flavour, i as u64, &self_capturing_ran) {
                    kept.late.push(late);
                }
            }
        }
        // A task whose done-callback captures the task itself.
        {
            let task: Task<u64> = create_task(async { Ok(7) });
            let me = task.future();
            let ran = self_capturing_ran.clone();
            task.add_done_callback(move |done: &Future<u64>| {
                assert!(done == &me && me.result().unwrap() == 7);
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }

        // --- Timers: fired, cancelled, pending (call_later and call_at).
        let mut cancelled = Vec::new();
        for i in 0..scale.timers {
            let payload = Tracked::new(i as u64);
            let fired = timers_fired.clone();
            match i % 4 {
                0 => {
                    LoopHandle::current().call_later(Duration::ZERO, move || {
                        let _ = &payload;
                        fired.fetch_add(1, Ordering::SeqCst);
                    });
                }
                1 => cancelled.push(LoopHandle::current().call_later(HOUR, move || {
                    let _ = &payload;
                    unreachable!("cancelled timer ran");
                })),
                2 => {
                    LoopHandle::current().call_later(HOUR, move || {
                        let _ = &payload;
                        unreachable!("timer an hour away ran");
                    });
                }
                _ => {
                    let at = LoopHandle::current().time() + HOUR;
                    LoopHandle::current().call_at(at, move || {
                        let _ = &payload;
                        unreachable!("timer an hour away ran");
                    });
                }
            }
        }
        for handle in &cancelled {
            assert!(handle.cancel());
        }
        drop(cancelled);

        // --- TCP: an echo exchange per connection, then every task blocked in read.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor_payload = Tracked::new(0);
        drop(create_task::<(), _>(async move {
            let _payload = acceptor_payload;
            loop {
                // Blocked in accept when the runtime is dropped.
                let (stream, _) = listener.accept().await?;
                drop(create_task(serve_one(stream, Tracked::new(1))));
            }
        }));
        let mut echoes = Vec::new();
        for i in 0..scale.connections {
            let echoed = Future::<Vec<u8>>::new();
            echoes.push(echoed.clone());
            let payload = Tracked::new(i as u64);
            drop(create_task::<(), _>(async move {
                let _payload = payload;
                let stream = TcpStream::connect(addr).await?;
                let msg = format!("hello {i}");
                stream.write_all(msg.as_bytes()).await?;
                let mut back = vec![0u8; msg.len()];
                stream.read_exact(&mut back).await?;
                echoed.set_result(back).unwrap();
                let mut more = [0u8; 16];
                let n = stream.read(&mut more).await?;
                unreachable!("the server never sends twice (read {n} bytes)");
            }));
        }
        for (i, echoed) in echoes.into_iter().enumerate() {
            let back = time::timeout(Duration::from_secs(30), echoed)
                .await
                .expect("echo within 30 s")
                .unwrap();
            assert_eq!(back, format!("hello {i}").into_bytes());
            outcome.echoes_ok += 1;
        }

        // A connection whose peer never reads nor writes: one task blocks in
        // write_all, another in read, on the two owned halves of the client stream.
        let quiet = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quiet_addr = quiet.local_addr().unwrap();
        let accepted = Future::<()>::new();
        {
            let accepted = accepted.clone();
            drop(create_task::<(), _>(async move {
                let (stream, _) = quiet.accept().await?;
                accepted.set_result(()).unwrap();
                let _halves = stream.into_split();
                Future::<()>::new().await
            }));
        }
        let client = TcpStream::connect(quiet_addr).await.unwrap();
        accepted.await.unwrap();
        let (read_half, write_half) = client.into_split();
        drop(create_task::<(), _>(async move {
            let big = vec![0x5a; 64 << 20];
            write_half.write_all(&big).await?;
            unreachable!("64 MiB fit in socket buffers nobody reads");
        }));
        drop(create_task::<(), _>(async move {
            let mut buf = [0u8; 1];
            let n = read_half.read(&mut buf).await?;
            unreachable!("the peer never writes (read {n} bytes)");
        }));

        // A Unix socket pair, one end blocked in read.
        let (a, b) = UnixStream::pair().unwrap();
        drop(create_task::<(), _>(async move {
            let _b = b;
            let mut buf = [0u8; 1];
            let n = a.read(&mut buf).await?;
            unreachable!("nobody writes (read {n} bytes)");
        }));

        // --- Executor jobs: finished, running at shutdown, queued, cancelled.
        let here = LoopHandle::current();
        outcome
            .job_results
            .push(evloop::spawn_blocking(|| 40u64 + 2).await.unwrap());
        outcome
            .job_results
            .push(explicit.submit(|| 6u64 * 7).await.unwrap());
        // A job that runs until a task, cancelled by the shutdown, drops its guard.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let started = Future::<()>::new();
        let running = {
            let started = started.clone();
            let payload = Tracked::new(0);
            here.run_in_executor(None, move || {
                let _payload = payload;
                started.set_result(()).unwrap();
                released
                    .recv_timeout(Duration::from_secs(30))
                    .expect("released by the shutdown");
                1
            })
        };
        started.await.unwrap();
        struct Release(std::sync::mpsc::Sender<()>);
        impl Drop for Release {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let guard = Release(release);
        drop(create_task::<(), _>(async move {
            let _guard = guard;
            Future::<()>::new().await?;
            Ok(())
        }));
        // Queued behind it: one left as is, one cancelled before it starts (E2).
        let queued = {
            let payload = Tracked::new(0);
            here.run_in_executor(None, move || payload.0 + 2)
        };
        let cancelled_job = {
            let payload = Tracked::new(0);
            here.run_in_executor(None, move || payload.0 + 3)
        };
        assert!(cancelled_job.cancel());
        kept.jobs
            .extend([running, queued, cancelled_job].map(Future::from));
        // An explicit-executor job whose future outlives the loop.
        kept.jobs.push(explicit.submit(|| 5u64).into());

        // --- fd watches (L11) and signal registrations (L12) left in place; their
        // callbacks capture a loop handle (a cycle through the loop, broken at close).
        let (quiet_a, _quiet_b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (ready_a, ready_b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (full_a, full_b) = std::os::unix::net::UnixStream::pair().unwrap();
        // `full_a` cannot be written to: its buffer is full and nobody reads `full_b`.
        full_a.set_nonblocking(true).unwrap();
        while std::io::Write::write(&mut &full_a, &[0u8; 4096]).is_ok() {}
        ready_a.set_nonblocking(true).unwrap();
        std::io::Write::write_all(&mut &ready_b, b"x").unwrap();
        {
            use std::os::fd::AsRawFd;
            let payload = Tracked::new(0);
            let handle = LoopHandle::current();
            here.add_reader(quiet_a.as_raw_fd(), move || {
                let _ = (&payload, &handle);
                unreachable!("nothing is ever written to this socket");
            })
            .unwrap();
            let (payload, handle) = (Tracked::new(0), LoopHandle::current());
            let runs = reader_runs.clone();
            let mut sock = ready_a.try_clone().unwrap();
            here.add_reader(ready_a.as_raw_fd(), move || {
                let _ = (&payload, &handle);
                let mut byte = [0u8; 1];
                let _ = std::io::Read::read(&mut sock, &mut byte);
                runs.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            let (payload, handle) = (Tracked::new(0), LoopHandle::current());
            here.add_writer(full_a.as_raw_fd(), move || {
                let _ = (&payload, &handle);
                unreachable!("the socket's buffer stays full");
            })
            .unwrap();
        }
        kept.watched
            .extend([quiet_a, _quiet_b, ready_a, ready_b, full_a, full_b]);
        {
            let (payload, handle) = (Tracked::new(0), LoopHandle::current());
            let runs = signal_handler_runs.clone();
            here.add_signal_handler(libc::SIGUSR2, move || {
                let _ = (&payload, &handle);
                runs.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            let payload = Tracked::new(0);
            drop(create_task::<(), _>(async move {
                let _payload = payload;
                evloop::signal::wait(libc::SIGUSR1).await
            }));
            // SAFETY: raising a signal this loop handles, in our own process.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while reader_runs.load(Ordering::SeqCst) == 0
            || signal_handler_runs.load(Ordering::SeqCst) == 0
        {
            assert!(
                Instant::now() < deadline,
                "reader or signal handler never ran"
            );
            evloop::yield_now().await.unwrap();
        }

        // --- More loop-native awaitables left pending: shield, chained futures, an
        // interval, a UDP receive; tasks spawned and callbacks scheduled from another
        // thread; a task cancelled before its first poll; a removed done-callback.
        {
            let inner = Future::<u64>::new();
            let shielded = evloop::shield(inner.clone());
            drop(create_task(shielded));
            let (a, b) = (Future::<u64>::new(), Future::<u64>::new());
            evloop::chain_future(&a, &b);
            let (c, d) = (Future::<u64>::new(), Future::<u64>::new());
            evloop::chain(&c, &d);
            drop(create_task(async move {
                let _keep = (a, c);
                gather(vec![b, d]).await.map(|v| v.len() as u64)
            }));
            drop(create_task::<(), _>(async move {
                let mut every_hour = time::interval(HOUR);
                loop {
                    every_hour.tick().await?;
                }
            }));
            let udp = evloop::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let udp_addr = udp.local_addr().unwrap();
            let received = Future::<usize>::new();
            {
                let received = received.clone();
                drop(create_task::<(), _>(async move {
                    let mut buf = [0u8; 64];
                    received.set_result(udp.recv(&mut buf).await?).unwrap();
                    let n = udp.recv(&mut buf).await?;
                    unreachable!("one datagram only (got {n} bytes)");
                }));
            }
            let sender = evloop::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sender.send_to(b"datagram", udp_addr).await.unwrap();
            assert_eq!(received.await.unwrap(), 8);

            let handle = LoopHandle::current();
            let ran = Arc::new(AtomicUsize::new(0));
            let (finished, pending) = std::thread::spawn({
                let ran = ran.clone();
                move || {
                    for i in 0..REMOTE_CALLBACKS {
                        let (ran, payload) = (ran.clone(), Tracked::new(i as u64));
                        handle.call_soon_threadsafe(move || {
                            let _ = &payload;
                            ran.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    let finished: Vec<Task<u64>> = (0..REMOTE_TASKS as u64)
                        .map(|i| {
                            let payload = Tracked::new(i);
                            handle.spawn(async move { Ok(payload.0) })
                        })
                        .collect();
                    let pending: Vec<Task<u64>> = (0..REMOTE_TASKS as u64)
                        .map(|i| {
                            let payload = Tracked::new(i);
                            let never = handle.create_future::<u64>();
                            handle.spawn(async move {
                                let _payload = payload;
                                never.await
                            })
                        })
                        .collect();
                    (finished, pending)
                }
            })
            .join()
            .unwrap();
            let sum: u64 = gather(finished).await.unwrap().iter().sum();
            assert_eq!(sum, (0..REMOTE_TASKS as u64).sum::<u64>());
            kept.pending_tasks.extend(pending);
            let deadline = Instant::now() + Duration::from_secs(10);
            while ran.load(Ordering::SeqCst) < REMOTE_CALLBACKS {
                assert!(Instant::now() < deadline, "cross-thread callbacks lost");
                evloop::yield_now().await.unwrap();
            }

            let payload = Tracked::new(0);
            let never_started: Task<u64> = create_task(async move {
                let _payload = payload;
                unreachable!("cancelled before its first poll");
            });
            assert!(never_started.cancel());
            kept.pending_tasks.push(never_started);

            let fut = Future::<u64>::new();
            let me = fut.clone();
            let id = fut.add_done_callback(move |_: &Future<u64>| {
                let _ = &me;
                unreachable!("removed");
            });
            assert_eq!(fut.remove_done_callback(id), 1);
        }

        // --- Callbacks queued when block_on returns.
        for i in 0..10 {
            let payload = Tracked::new(i);
            LoopHandle::current().call_soon(move || {
                let _ = &payload;
            });
        }
        // Let the detached tasks, callbacks and timers due now run.
        for _ in 0..4 {
            evloop::yield_now().await.unwrap();
        }
        outcome.stats_at_drop = Some(LoopHandle::current().stats());
        kept
    });

    drop(rt);

    // --- After the loop closed.
    let Kept {
        loop_handles,
        awaited,
        pending_tasks,
        late,
        late_callback_runs,
        stashed_wakers,
        remote,
        jobs,
        watched,
    } = kept;
    outcome.pending_tasks_kept = pending_tasks.len();
    outcome.pending_tasks_done = pending_tasks.iter().filter(|t| t.done()).count();
    outcome.awaited_kept = awaited.len();
    outcome.awaited_cancelled = awaited.iter().filter(|f| f.cancelled()).count();
    // Futures left pending with a callback were completed by the close (U2): their
    // callbacks never ran (L14) and were dropped, which broke the cycles; completing
    // them again is refused.
    let ran_before = late_callback_runs.load(Ordering::SeqCst);
    for (i, fut) in late.iter().enumerate() {
        let closed = fut.exception().unwrap().expect("closed with an exception");
        assert!(
            closed.to_string().contains("event loop is closed"),
            "{closed}"
        );
        assert!(fut.set_result(Tracked::new(i as u64)).is_err());
    }
    drop(late);
    outcome.late_callback_runs = late_callback_runs.load(Ordering::SeqCst) - ran_before;
    // Waking tasks aborted with the loop is harmless, on this thread and another.
    for stash in &stashed_wakers {
        if let Some(w) = stash.lock().unwrap().take() {
            let w2 = w.clone();
            std::thread::spawn(move || w2.wake()).join().unwrap();
            w.wake();
        }
    }
    drop(stashed_wakers);
    let (tx, thread) = remote;
    tx.send(()).unwrap();
    outcome.remote_schedules_cancelled = thread.join().unwrap();
    {
        let handle = loop_handles[0].clone();
        let payload = Tracked::new(0);
        let soon = handle.call_soon(move || {
            let _ = &payload;
        });
        let later = handle.call_later(Duration::ZERO, || unreachable!());
        outcome.closed_loop_handles_cancelled = (soon.cancelled(), later.cancelled());
    }
    drop(loop_handles);
    drop(awaited);
    drop(pending_tasks);
    outcome
        .job_results
        .extend(jobs.iter().filter_map(|f| f.result().ok()));
    drop(jobs);
    drop(watched);
    explicit.shutdown(true);
    drop(explicit);

    outcome.self_capturing_callbacks = self_capturing_ran.load(Ordering::SeqCst);
    outcome.timers_fired = timers_fired.load(Ordering::SeqCst);
    outcome.reader_runs = reader_runs.load(Ordering::SeqCst);
    outcome.signal_handler_runs = signal_handler_runs.load(Ordering::SeqCst);
    outcome.reports = (
        reports.task_never_retrieved.load(Ordering::SeqCst),
        reports.future_never_retrieved.load(Ordering::SeqCst),
        reports.other.load(Ordering::SeqCst),
    );
    outcome
}

fn check_outcome(scale: Scale, outcome: &Outcome) {
    let half = scale.finished_tasks / 2;
    assert_eq!(
        outcome.gathered_sum,
        (0..half as u64).sum::<u64>(),
        "gathered results"
    );
    assert_eq!(outcome.echoes_ok, scale.connections);
    // Flavours 0–5 ran their callback on the loop, and the self-capturing task's one.
    assert_eq!(
        outcome.self_capturing_callbacks,
        6 * scale.self_capturing + 1,
        "done-callbacks run (flavour 6 is completed by the loop's close: never runs)"
    );
    assert_eq!(
        outcome.late_callback_runs, 0,
        "a callback ran on a closed loop"
    );
    assert_eq!(outcome.timers_fired, scale.timers.div_ceil(4));
    assert_eq!(outcome.job_results[..2], [42, 42]);
    assert_eq!(
        outcome.pending_tasks_done, outcome.pending_tasks_kept,
        "every task pending at shutdown is done afterwards (R5)"
    );
    assert_eq!(
        outcome.awaited_cancelled, outcome.awaited_kept,
        "futures awaited by cancelled tasks are cancelled (T3)"
    );
    let stats = outcome.stats_at_drop.as_ref().unwrap();
    // Still alive when the runtime is dropped: the pending and foreign tasks, the
    // acceptor, 2 tasks per connection, 3 on the quiet connection, the Unix reader,
    // the executor guard, the signal waiter, the shield, chain, interval and UDP tasks
    // and the pending tasks spawned from another thread.
    let blocked =
        scale.pending_tasks + FOREIGN_TASKS + 1 + 2 * scale.connections + 3 + 3 + 4 + REMOTE_TASKS;
    assert_eq!(stats.live_tasks, blocked as u64, "tasks alive at drop");
    // The pending timers (the sleeps of kind 2, timeouts, wait_fors, the hour-long
    // call_later / call_at) are registered.
    assert!(
        stats.timers_pending >= (scale.timers / 2 + scale.pending_tasks * 3 / 8) as u64,
        "timers pending at drop: {stats:?}"
    );
    assert_eq!(
        stats.executor_threads, 1,
        "the default executor's thread is busy"
    );
    assert_eq!(
        outcome.reader_runs, 1,
        "the reader ran once for its one byte"
    );
    assert_eq!(
        outcome.signal_handler_runs, 1,
        "the signal handler ran once"
    );
    assert_eq!(outcome.remote_schedules_cancelled, (true, true), "L14");
    assert_eq!(outcome.closed_loop_handles_cancelled, (true, true), "L14");
    let (task_reports, future_reports, other) = outcome.reports;
    assert_eq!(
        task_reports,
        FAILING_TASKS + PANICKING_TASKS,
        "\"Task exception was never retrieved\" once per failed or panicked task (F10); \
         other reports: {other}"
    );
    assert_eq!(
        future_reports, scale.self_capturing,
        "\"Future exception was never retrieved\" once per unretrieved future (F10)"
    );
}

// ---------------------------------------------------------------------------------------
// The self-capturing future, checked inside a running loop.

/// Completes a future whose done-callback holds a clone of it, drops every other
/// handle, and lets the loop run the callback. Returns (`Tracked` alive right after
/// completion, alive after the callback ran) relative to before.
async fn self_capturing_round(cross_thread: bool) -> (usize, usize) {
    let before = tracked_alive();
    let fut = Future::<Tracked>::new();
    let me = fut.clone();
    fut.add_done_callback(move |done: &Future<Tracked>| {
        assert!(done == &me);
    });
    if cross_thread {
        std::thread::spawn(move || fut.set_result(Tracked::new(1)).unwrap())
            .join()
            .unwrap();
    } else {
        fut.set_result(Tracked::new(1)).unwrap();
        drop(fut);
    }
    // Only the cycle (and the scheduled callback) holds the future now.
    let pending = tracked_alive() - before;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracked_alive() > before && Instant::now() < deadline {
        evloop::yield_now().await.unwrap();
    }
    (pending, tracked_alive() - before)
}

fn self_capturing_future_is_freed_once_done() {
    // Debug mode (L10) here, so its bookkeeping (creation sites) is covered too.
    let rt = Runtime::builder().debug(true).build().unwrap();
    rt.block_on(async {
        for cross_thread in [false, true] {
            // The value is still held right after completion (callbacks never run
            // synchronously, F7), and freed once the callback has run (Q4).
            assert_eq!(self_capturing_round(cross_thread).await, (1, 0));
            let before = live();
            for _ in 0..1000 {
                assert_eq!(self_capturing_round(cross_thread).await, (1, 0));
            }
            assert_eq!(
                live(),
                before,
                "1 000 self-capturing futures (cross_thread: {cross_thread}) left memory behind"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------

#[test]
fn a_dropped_runtime_frees_everything_it_owned() {
    install_panic_hook();
    let watchdog = Watchdog::arm("leak_runtime", Duration::from_secs(300));
    let threads_at_start = thread_count();

    // Warm-up: every kind of work once, at a small scale, and the measuring helpers.
    let small = Scale {
        finished_tasks: 2 * (FAILING_TASKS + PANICKING_TASKS) + 16,
        pending_tasks: 64,
        self_capturing: 4,
        timers: 8,
        connections: 2,
    };
    let outcome = runtime_scenario(small);
    check_outcome(small, &outcome);
    drop(outcome);
    self_capturing_future_is_freed_once_done();
    wait_for_threads(threads_at_start, "after the warm-up");
    assert_eq!(tracked_alive(), 0, "warm-up: drop-counted payloads alive");

    // The measured run.
    let baseline = live();
    let full = Scale {
        finished_tasks: 50_000,
        pending_tasks: 50_000,
        self_capturing: 1000,
        timers: 4000,
        connections: 8,
    };
    let outcome = runtime_scenario(full);
    wait_for_threads(threads_at_start, "after the runtime was dropped");
    check_outcome(full, &outcome);
    drop(outcome);
    let alive = tracked_alive();
    let after_runtime = live();

    // The second scenario, measured the same way.
    self_capturing_future_is_freed_once_done();
    wait_for_threads(threads_at_start, "after the self-capturing runs");
    let after_all = live();
    drop(watchdog);
    println!(
        "baseline {baseline:?}; after the runtime {after_runtime:?}; after the \
         self-capturing rounds {after_all:?}; Tracked alive {alive}"
    );

    assert_eq!(
        alive, 0,
        "drop-counted payloads (in tasks, callbacks, timers, jobs, results) still alive \
         after the runtime was dropped"
    );
    assert_eq!(
        after_runtime,
        baseline,
        "live allocations/bytes after the runtime was dropped (diff: {} allocations, {} \
         bytes)",
        after_runtime.allocations - baseline.allocations,
        after_runtime.bytes - baseline.bytes
    );
    assert_eq!(
        after_all, baseline,
        "after the self-capturing future rounds"
    );
}
