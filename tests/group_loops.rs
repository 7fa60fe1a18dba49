//! SPEC §10 S1 / S2 and G5: [`LoopGroup`], n event loops on n named threads.
//!
//! * S1 (thread-per-core): an echo service runs on every loop through `block_on_each`,
//!   each loop with its own `SO_REUSEPORT` listener on one shared port; connections
//!   made by a plain std thread are spread by the kernel over all loops
//!   (`LoopStats::accepts`), for groups of 2 and 3 loops.
//! * S2 (`block_on_each` / `spawn`): results by loop index, services called on the
//!   threads `evloop-{index}`, `!Send` service futures, round-robin placement of
//!   `LoopGroup::spawn`, the panic when `block_on_each` is called on a loop thread, a
//!   service panicking in its future or when called (reported in its slot; its loop
//!   and every other loop keep serving), a user's `stop()` that does not end a group
//!   loop, and `LoopGroup::new(0)`.
//! * Shutdown (R5 on every loop at once): `shutdown()` and `Drop` with pending work on
//!   every loop (hour-long sleeps, hour-long timers, a task that ignores its first
//!   cancellation) cancel, abort and close everything without hanging; so does
//!   dropping the group on one of its own loops.
//! * G5: futures, tasks and `gather` across the group's loops.
//!
//! Nothing here measures time: a hang is turned into a failure by a [`Watchdog`] and by
//! 10 s socket / `wait_for` bounds.

mod common;
use common::{DropProbe, DropSpy, Watchdog, init_logger, logs_containing, panic_message};

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use evloop::net::{ListenOptions, TcpListener, TcpStream};
use evloop::{Error, Future, LoopGroup, LoopHandle, Runtime, Task, TimerHandle, create_task};

/// Bound on every wait that would otherwise hang (socket reads, channel receives,
/// `wait_for`): never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(10);
/// Whole-test bound: a hang fails the test binary instead of blocking it.
const TEST_LIMIT: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Unwraps every service's result, naming the loop whose service failed.
fn all_ok<T>(results: Vec<Result<T, Error>>) -> Vec<T> {
    results
        .into_iter()
        .enumerate()
        .map(|(k, r)| r.unwrap_or_else(|e| panic!("loop {k}'s service failed: {e:?}")))
        .collect()
}

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

// ---------------------------------------------------------------------------------
// A reuse_port echo service, one per loop.
// ---------------------------------------------------------------------------------

/// What every loop's echo service shares.
#[derive(Clone)]
struct EchoSetup {
    /// The port, published by loop 0's service once it has bound port 0 (bound to
    /// loop 0; awaited by the other loops: G5).
    port: Future<u16>,
    /// `(loop index, port)` once a service's listener is bound.
    bound: mpsc::Sender<(usize, u16)>,
    /// Completed by the test thread: the services stop accepting and return.
    stop: Future<()>,
    /// `closed[k]`: loop k's listener socket has been closed.
    closed: Arc<Vec<AtomicBool>>,
    /// `(k, trigger)`: loop k's service panics once `trigger` completes, after binding
    /// its listener and before accepting anything.
    panic_on: Option<(usize, Future<()>)>,
}

impl EchoSetup {
    fn new(group: &LoopGroup, bound: mpsc::Sender<(usize, u16)>) -> EchoSetup {
        let loop0 = &group.handles()[0];
        EchoSetup {
            port: Future::with_loop(loop0),
            bound,
            stop: Future::with_loop(loop0),
            closed: Arc::new((0..group.len()).map(|_| AtomicBool::new(false)).collect()),
            panic_on: None,
        }
    }
}

/// What a service counted itself.
#[derive(Debug)]
struct EchoReport {
    accepted: u64,
    echoed: u64,
}

/// Sets `closed[index]` when dropped.
struct FlagOnDrop(Arc<Vec<AtomicBool>>, usize);

impl Drop for FlagOnDrop {
    fn drop(&mut self) {
        self.0[self.1].store(true, SeqCst);
    }
}

/// A listener that reports when its socket is closed: fields drop in declaration
/// order, so the flag is set after the listener's fd was closed.
struct WatchedListener {
    listener: TcpListener,
    _closed: FlagOnDrop,
}

async fn echo(stream: TcpStream) -> Result<u64, Error> {
    let mut buf = [0u8; 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Loop `index`'s service: binds the shared port with `SO_REUSEPORT` (loop 0 first,
/// publishing the port), accepts and echoes until `stop`, then waits for its
/// connections to end. State is shared through `Rc`s: the future is `!Send`.
async fn echo_service(index: usize, setup: EchoSetup) -> Result<EchoReport, Error> {
    let options = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    let listener = if index == 0 {
        let listener = TcpListener::bind_with("127.0.0.1:0", options).await?;
        setup
            .port
            .set_result(listener.local_addr()?.port())
            .expect("only loop 0 publishes the port");
        listener
    } else {
        // Completed on loop 0, awaited here (G5).
        let port = setup.port.clone().await?;
        TcpListener::bind_with(("127.0.0.1", port), options).await?
    };
    let watched = WatchedListener {
        _closed: FlagOnDrop(setup.closed.clone(), index),
        listener,
    };
    let port = watched.listener.local_addr()?.port();
    setup
        .bound
        .send((index, port))
        .expect("the test thread is waiting for the listeners");
    if let Some((panicking, trigger)) = &setup.panic_on {
        if *panicking == index {
            trigger.clone().await?;
            panic!("group_loops: service {index} gives up after binding");
        }
    }

    let accepted = Rc::new(Cell::new(0u64));
    let connections: Rc<RefCell<Vec<Task<u64>>>> = Rc::default();
    let acceptor: Task<()> = create_task({
        let accepted = accepted.clone();
        let connections = connections.clone();
        async move {
            loop {
                let (stream, _peer) = watched.listener.accept().await?;
                accepted.set(accepted.get() + 1);
                connections.borrow_mut().push(create_task(echo(stream)));
            }
        }
    });
    setup.stop.clone().await?;
    acceptor.cancel();
    let ended = acceptor.await;
    assert!(
        ended.as_ref().is_err_and(Error::is_cancelled),
        "loop {index}: the acceptor ends cancelled, got {ended:?}"
    );
    let open: Vec<Task<u64>> = connections.borrow_mut().drain(..).collect();
    let echoed = evloop::wait_for(evloop::gather(open), HANG_GUARD).await?;
    Ok(EchoReport {
        accepted: accepted.get(),
        echoed: echoed.iter().sum(),
    })
}

/// Completes the stop future when dropped, so that a failing client never leaves
/// `block_on_each` waiting for its services.
struct StopOnDrop(Future<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_result(());
    }
}

/// Waits for `n` listeners to be bound; returns their (common) port.
fn wait_bound(bound: &mpsc::Receiver<(usize, u16)>, n: usize) -> u16 {
    let mut seen: Vec<(usize, u16)> = (0..n)
        .map(|_| {
            bound
                .recv_timeout(HANG_GUARD)
                .expect("every service binds its listener")
        })
        .collect();
    seen.sort_unstable();
    let port = seen[0].1;
    assert_eq!(
        seen,
        (0..n).map(|k| (k, port)).collect::<Vec<_>>(),
        "one listener per loop, all on one port"
    );
    port
}

/// From this (plain) thread: opens `count` connections at once, writes a distinct
/// message on each, checks every echo byte for byte, then closes them all. Returns
/// the bytes echoed.
fn echo_clients(port: u16, count: usize, tag: &str) -> u64 {
    let streams: Vec<(Vec<u8>, std::net::TcpStream)> = (0..count)
        .map(|i| {
            let stream = std::net::TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("{tag}: connection {i}: {e}"));
            stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
            stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
            (format!("{tag}: connection {i:02}\n").into_bytes(), stream)
        })
        .collect();
    for (message, stream) in &streams {
        let mut stream: &std::net::TcpStream = stream;
        stream.write_all(message).unwrap();
    }
    let mut total = 0;
    for (i, (message, stream)) in streams.iter().enumerate() {
        let mut stream: &std::net::TcpStream = stream;
        let mut back = vec![0u8; message.len()];
        stream
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("{tag}: connection {i}: no echo: {e}"));
        assert_eq!(back, *message, "{tag}: connection {i}: echoed bytes");
        total += message.len() as u64;
    }
    drop(streams);
    total
}

/// Runs `block_on_each(echo_service)` on a helper thread while `client` runs on this
/// one, then completes the stop future (also if `client` panics) and returns the
/// services' results.
fn serve_while<R>(
    group: &LoopGroup,
    setup: EchoSetup,
    client: impl FnOnce() -> R,
) -> (R, Vec<Result<EchoReport, Error>>) {
    let stop = setup.stop.clone();
    std::thread::scope(|scope| {
        let server = scope
            .spawn(move || group.block_on_each(move |index, _| echo_service(index, setup.clone())));
        let out = {
            let _stop = StopOnDrop(stop);
            client()
        };
        let results = server.join().unwrap_or_else(|p| resume_unwind(p));
        (out, results)
    })
}

// ---------------------------------------------------------------------------------
// 1. Connections spread over all loops (S1).
// ---------------------------------------------------------------------------------

const CONNECTIONS: usize = 64;

fn connections_spread_over_all_loops(n: usize) {
    let _watchdog = Watchdog::new("connections spread over all loops", TEST_LIMIT);
    let group = LoopGroup::new(n).unwrap();
    let (bound_tx, bound_rx) = mpsc::channel();
    let setup = EchoSetup::new(&group, bound_tx);
    let tag = format!("spread over {n}");

    let (sent, results) = serve_while(&group, setup, || {
        let port = wait_bound(&bound_rx, n);
        echo_clients(port, CONNECTIONS, &tag)
    });

    let reports = all_ok(results);
    let stats: Vec<u64> = group.handles().iter().map(|h| h.stats().accepts).collect();
    for (k, report) in reports.iter().enumerate() {
        assert_eq!(
            report.accepted, stats[k],
            "loop {k}: the service's own count matches LoopStats::accepts"
        );
        assert!(
            stats[k] >= 1,
            "loop {k} accepted nothing: the kernel did not spread connections ({stats:?})"
        );
    }
    assert_eq!(stats.iter().sum::<u64>(), CONNECTIONS as u64, "{stats:?}");
    assert_eq!(
        reports.iter().map(|r| r.echoed).sum::<u64>(),
        sent,
        "every byte sent was echoed once, and every connection ended"
    );
    group.shutdown().unwrap();
}

#[test]
fn connections_spread_over_two_loops() {
    connections_spread_over_all_loops(2);
}

#[test]
fn connections_spread_over_three_loops() {
    connections_spread_over_all_loops(3);
}

// ---------------------------------------------------------------------------------
// 2. Futures, tasks and gather across the loops (G5); round-robin spawn.
// ---------------------------------------------------------------------------------

#[test]
fn a_task_on_loop_1_awaits_futures_completed_by_a_task_on_loop_0() {
    let _watchdog = Watchdog::new("cross-loop future", TEST_LIMIT);
    let group = LoopGroup::new(2).unwrap();
    let [loop0, loop1] = [&group.handles()[0], &group.handles()[1]];
    // One future bound to the waiter's loop, one bound to the completer's loop.
    let on_loop1 = Future::<String>::with_loop(loop1);
    let on_loop0 = Future::<String>::with_loop(loop0);
    let waiting = Future::<()>::with_loop(loop0);

    let waiter = loop1.spawn({
        let (on_loop1, on_loop0, waiting) = (on_loop1.clone(), on_loop0.clone(), waiting.clone());
        async move {
            let before = thread_name();
            waiting.set_result(()).unwrap();
            let a = on_loop1.await?;
            let b = on_loop0.await?;
            Ok((before, a, b, thread_name()))
        }
    });
    let completer = loop0.spawn(async move {
        waiting.await?;
        on_loop1.set_result(format!("set on {}", thread_name()))?;
        evloop::yield_now().await?;
        on_loop0.set_result(format!("then on {}", thread_name()))?;
        Ok(())
    });
    assert_eq!(waiter.get_loop(), *loop1);
    assert_eq!(completer.get_loop(), *loop0);

    // Both tasks are awaited on loop 0 (the waiter's result crosses from loop 1).
    let (waiter, completer) = (waiter.future(), completer.future());
    let results = group.block_on_each(move |index, _| {
        let (waiter, completer) = (waiter.clone(), completer.clone());
        async move {
            if index == 0 {
                completer.await?;
                Ok(Some(evloop::wait_for(waiter, HANG_GUARD).await?))
            } else {
                Ok(None)
            }
        }
    });
    let got = results[0].as_ref().unwrap().clone().unwrap();
    assert_eq!(
        got,
        (
            "evloop-1".to_owned(),
            "set on evloop-0".to_owned(),
            "then on evloop-0".to_owned(),
            "evloop-1".to_owned()
        ),
        "the waiter ran on loop 1 throughout, the completer on loop 0"
    );
    assert!(results[1].as_ref().unwrap().is_none());
    group.shutdown().unwrap();
}

#[test]
fn spawn_is_round_robin_and_a_gather_on_loop_0_collects_every_loop_in_order() {
    let _watchdog = Watchdog::new("round-robin spawn and cross-loop gather", TEST_LIMIT);
    let group = LoopGroup::new(3).unwrap();
    let n = group.len();
    let tasks_n = 4 * n;
    // Task i finishes only after task i + 1 (whose gate is bound to the next loop), so
    // they complete in reverse order, each one woken from another loop's thread.
    let gates: Vec<Future<()>> = (0..tasks_n)
        .map(|i| Future::with_loop(&group.handles()[i % n]))
        .collect();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<Task<(usize, u64, String)>> = (0..tasks_n)
        .map(|i| {
            let next = gates.get(i + 1).cloned();
            let mine = gates[i].clone();
            let finished = finished.clone();
            group.spawn(async move {
                if let Some(next) = next {
                    next.await?;
                }
                finished.lock().unwrap().push(i);
                mine.set_result(())?;
                Ok((i * 10, LoopHandle::current().id(), thread_name()))
            })
        })
        .collect();
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(
            task.get_loop().id(),
            group.handles()[i % n].id(),
            "task {i} is placed on loop {}",
            i % n
        );
    }

    let children: Vec<Future<(usize, u64, String)>> = tasks.iter().map(|t| t.future()).collect();
    let results = group.block_on_each(move |index, _| {
        let children = children.clone();
        async move {
            if index == 0 {
                let all = evloop::gather(children);
                assert!(all.get_loop().is_current(), "the gather is bound to loop 0");
                Ok(Some(evloop::wait_for(all, HANG_GUARD).await?))
            } else {
                Ok(None)
            }
        }
    });
    let gathered = results
        .into_iter()
        .next()
        .unwrap()
        .expect("the gather on loop 0")
        .expect("loop 0 returns the gather");
    let expected: Vec<(usize, u64, String)> = (0..tasks_n)
        .map(|i| {
            (
                i * 10,
                group.handles()[i % n].id(),
                format!("evloop-{}", i % n),
            )
        })
        .collect();
    assert_eq!(gathered, expected, "argument order, each on its own loop");
    assert_eq!(
        *finished.lock().unwrap(),
        (0..tasks_n).rev().collect::<Vec<_>>(),
        "completion order was the reverse"
    );
    group.shutdown().unwrap();
}

// ---------------------------------------------------------------------------------
// 3. block_on_each (S2).
// ---------------------------------------------------------------------------------

#[test]
fn block_on_each_returns_results_by_index_from_services_on_their_own_threads() {
    let _watchdog = Watchdog::new("block_on_each results", TEST_LIMIT);
    let group = LoopGroup::new(3).unwrap();
    let n = group.len();
    assert!(!group.is_empty());
    let ids: Vec<u64> = group.handles().iter().map(LoopHandle::id).collect();
    // Loop 0's service finishes last: it waits for the last loop's service.
    let last_done = Future::<()>::with_loop(&group.handles()[n - 1]);
    let called_on = Arc::new(Mutex::new(Vec::new()));

    let results = group.block_on_each({
        let called_on = called_on.clone();
        move |index, handle| {
            // The service itself is called on its loop's thread.
            called_on.lock().unwrap().push((index, thread_name()));
            let last_done = last_done.clone();
            async move {
                // Held across awaits: this future is !Send.
                let state = Rc::new(Cell::new(index));
                evloop::yield_now().await?;
                evloop::time::sleep(Duration::from_millis(1)).await?;
                state.set(state.get() * 100);
                assert_eq!(handle, LoopHandle::current());
                if index == 0 {
                    evloop::wait_for(last_done, HANG_GUARD).await?;
                } else if index == n - 1 {
                    last_done.set_result(())?;
                }
                if index == 1 {
                    return Err(Error::msg("service 1 declines"));
                }
                Ok((state.get(), thread_name(), LoopHandle::current().id()))
            }
        }
    });

    assert_eq!(results.len(), n);
    assert_eq!(
        *results[0].as_ref().unwrap(),
        (0, "evloop-0".to_owned(), ids[0])
    );
    let declined = results[1].as_ref().unwrap_err();
    assert!(!declined.is_panic());
    assert_eq!(declined.to_string(), "service 1 declines");
    assert_eq!(
        *results[2].as_ref().unwrap(),
        (200, "evloop-2".to_owned(), ids[2])
    );
    let mut called_on = called_on.lock().unwrap().clone();
    called_on.sort();
    assert_eq!(
        called_on,
        (0..n)
            .map(|k| (k, format!("evloop-{k}")))
            .collect::<Vec<_>>()
    );
    group.shutdown().unwrap();
}

#[test]
fn block_on_each_on_a_loop_thread_panics_instead_of_blocking_the_loop() {
    let _watchdog = Watchdog::new("block_on_each on a loop thread", TEST_LIMIT);
    let group = Arc::new(LoopGroup::new(2).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let calls = calls.clone();
        move |_: usize, _: LoopHandle| {
            calls.fetch_add(1, SeqCst);
            async { Ok::<_, Error>(()) }
        }
    };

    // Inside a loop of its own on this thread (evloop::run).
    let caught = catch_unwind(AssertUnwindSafe(|| {
        evloop::run(async { group.block_on_each(service.clone()) })
    }));
    let message = panic_message(&*caught.expect_err("block_on_each inside evloop::run panics"));
    assert!(
        message.contains("LoopGroup::block_on_each") && message.contains("would block that loop"),
        "{message}"
    );

    // Inside a task on one of the group's own loops: the task ends with that panic.
    let task = group.handles()[1].spawn({
        let group = group.clone();
        let service = service.clone();
        async move {
            let _ = group.block_on_each(service);
            Ok(())
        }
    });
    let task = task.future();
    let results = group.block_on_each(move |index, _| {
        let task = task.clone();
        async move {
            if index == 0 {
                evloop::wait_for(task, HANG_GUARD).await
            } else {
                Ok(())
            }
        }
    });
    let err = results[0].as_ref().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("would block that loop"), "{err}");
    assert!(results[1].is_ok());
    assert_eq!(calls.load(SeqCst), 0, "no service was ever called");

    Arc::try_unwrap(group)
        .expect("the task's clone of the group was dropped with its coroutine")
        .shutdown()
        .unwrap();
}

// ---------------------------------------------------------------------------------
// 4. Shutdown with pending work on every loop.
// ---------------------------------------------------------------------------------

/// Work left pending on every loop of a group, and what it reports.
struct PendingWork {
    handles: Vec<LoopHandle>,
    loop_threads: Vec<ThreadId>,
    sleepers: Vec<Task<()>>,
    stubborn: Vec<(Task<()>, DropProbe)>,
    timers: Vec<TimerHandle>,
    fired: Arc<AtomicUsize>,
    caught: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
}

/// On every loop: a task sleeping an hour, a timer an hour out, and a task that
/// catches its first cancellation and sleeps another hour. Returns once every task
/// has started (and so is suspended in its first sleep).
fn pending_work_on_every_loop(group: &LoopGroup) -> PendingWork {
    let (started_tx, started) = mpsc::channel::<(usize, ThreadId)>();
    let fired = Arc::new(AtomicUsize::new(0));
    let caught = Arc::new(AtomicUsize::new(0));
    let resumed = Arc::new(AtomicUsize::new(0));
    let mut work = PendingWork {
        handles: group.handles().to_vec(),
        loop_threads: Vec::new(),
        sleepers: Vec::new(),
        stubborn: Vec::new(),
        timers: Vec::new(),
        fired: fired.clone(),
        caught: caught.clone(),
        resumed: resumed.clone(),
    };
    for (index, handle) in group.handles().iter().enumerate() {
        work.sleepers.push(handle.spawn({
            let started = started_tx.clone();
            async move {
                started.send((index, std::thread::current().id())).unwrap();
                evloop::time::sleep(HOUR).await?;
                Ok(())
            }
        }));
        let fired = fired.clone();
        work.timers.push(handle.call_later(HOUR, move || {
            fired.fetch_add(1, SeqCst);
        }));
        let (spy, probe) = DropSpy::new();
        let (caught, resumed) = (caught.clone(), resumed.clone());
        let started = started_tx.clone();
        let stubborn = handle.spawn(async move {
            let _spy = spy;
            started.send((index, std::thread::current().id())).unwrap();
            match evloop::time::sleep(HOUR).await {
                Err(e) if e.is_cancelled() => {
                    caught.fetch_add(1, SeqCst);
                }
                other => return other,
            }
            let again = evloop::time::sleep(HOUR).await;
            resumed.fetch_add(1, SeqCst);
            again
        });
        work.stubborn.push((stubborn, probe));
    }
    drop(started_tx);
    let mut threads = vec![None; group.len()];
    for _ in 0..2 * group.len() {
        let (index, thread) = started.recv_timeout(HANG_GUARD).expect("every task starts");
        assert!(threads[index].is_none_or(|t| t == thread));
        threads[index] = Some(thread);
    }
    work.loop_threads = threads.into_iter().map(Option::unwrap).collect();
    work
}

impl PendingWork {
    fn check_after_shutdown(&self) {
        let n = self.handles.len();
        for k in 0..n {
            assert!(self.handles[k].is_closed(), "loop {k} is closed");
            let sleeper = &self.sleepers[k];
            assert!(
                sleeper.done() && sleeper.cancelled(),
                "loop {k}: the hour-long task ends cancelled: {sleeper:?}"
            );
            let (stubborn, probe) = &self.stubborn[k];
            assert!(
                stubborn.done() && stubborn.cancelled(),
                "loop {k}: the stubborn task ends cancelled (aborted): {stubborn:?}"
            );
            assert_eq!(
                probe.dropped_on(),
                Some(self.loop_threads[k]),
                "loop {k}: the stubborn coroutine was dropped on its loop's thread"
            );
            assert!(
                self.timers[k].cancelled(),
                "loop {k}: the hour-long timer is cancelled"
            );
        }
        assert_eq!(self.fired.load(SeqCst), 0, "no call_later callback ran");
        assert_eq!(
            self.caught.load(SeqCst),
            n,
            "every stubborn task caught the shutdown's cancellation"
        );
        assert_eq!(
            self.resumed.load(SeqCst),
            0,
            "the stubborn tasks' second sleeps never returned: they were aborted"
        );
    }
}

#[test]
fn shutdown_cancels_and_aborts_pending_work_on_every_loop() {
    let _watchdog = Watchdog::new("LoopGroup::shutdown with pending work", TEST_LIMIT);
    let group = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(200))
        .build_group(3)
        .unwrap();
    let work = pending_work_on_every_loop(&group);
    group.shutdown().expect("no loop thread died");
    work.check_after_shutdown();
}

#[test]
fn dropping_the_group_cancels_and_aborts_pending_work_on_every_loop() {
    let _watchdog = Watchdog::new("dropping a LoopGroup with pending work", TEST_LIMIT);
    let group = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(200))
        .build_group(3)
        .unwrap();
    let work = pending_work_on_every_loop(&group);
    drop(group);
    work.check_after_shutdown();
}

/// Pins `Drop` on one of the group's own loop threads: the last `Arc<LoopGroup>`,
/// dropped inside a task on loop 0, does not try to join loop 0's own thread (which
/// would deadlock); it stops every loop, joins the others, returns, and loop 0 then
/// shuts down as well once the task's poll is over.
#[test]
fn dropping_the_group_on_one_of_its_own_loops_closes_every_loop() {
    let _watchdog = Watchdog::new("dropping a LoopGroup on its own loop", TEST_LIMIT);
    let group = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(200))
        .build_group(2)
        .unwrap();
    let handles = group.handles().to_vec();
    let group = Arc::new(group);
    // The task drops its clone only after this thread dropped its own: it is the last.
    let go = Future::<()>::with_loop(&handles[0]);
    let (dropped_tx, dropped) = mpsc::channel();
    let last = handles[0].spawn({
        let group = group.clone();
        let go = go.clone();
        async move {
            go.await?;
            let was_last = Arc::strong_count(&group) == 1;
            drop(group);
            // Loop 1 was joined by the drop; loop 0 (this one) is still running.
            let report = (was_last, LoopHandle::current().is_closed(), thread_name());
            dropped_tx.send(report).unwrap();
            evloop::time::sleep(HOUR).await?;
            Ok(())
        }
    });
    drop(group);
    go.set_result(()).unwrap();
    let (was_last, closed_during, on) =
        dropped.recv_timeout(HANG_GUARD).expect("the drop returned");
    assert!(was_last, "the task held the last reference to the group");
    assert_eq!(on, "evloop-0");
    assert!(!closed_during, "loop 0 closes only after the task's poll");
    assert!(
        handles[1].is_closed(),
        "loop 1 was shut down and joined by the drop"
    );
    let deadline = Instant::now() + HANG_GUARD;
    while !handles[0].is_closed() {
        assert!(Instant::now() < deadline, "loop 0 never shut down");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        last.done() && last.cancelled(),
        "the task's sleep was cancelled by loop 0's shutdown: {last:?}"
    );
}

// ---------------------------------------------------------------------------------
// 5. A panicking service.
// ---------------------------------------------------------------------------------

/// Pins S1's fault isolation: loop 0's service panics after binding its reuse_port
/// listener; its listener is closed with the coroutine, the kernel routes every later
/// connection to loop 1's listener, loop 1 keeps echoing, `block_on_each` reports the
/// panic in slot 0 (logged with the loop's index) and loop 0 stays alive for later
/// services.
#[test]
fn a_panicking_service_leaves_the_other_loop_serving_and_its_own_loop_alive() {
    init_logger();
    let _watchdog = Watchdog::new("a panicking service", TEST_LIMIT);
    let group = LoopGroup::new(2).unwrap();
    let (bound_tx, bound_rx) = mpsc::channel();
    let mut setup = EchoSetup::new(&group, bound_tx);
    let trigger = Future::<()>::with_loop(&group.handles()[0]);
    setup.panic_on = Some((0, trigger.clone()));
    let closed = setup.closed.clone();
    const AFTER_PANIC: usize = 16;

    let (sent, results) = serve_while(&group, setup, || {
        let port = wait_bound(&bound_rx, 2);
        trigger.set_result(()).unwrap();
        let deadline = Instant::now() + HANG_GUARD;
        while !closed[0].load(SeqCst) {
            assert!(
                Instant::now() < deadline,
                "loop 0's listener was never closed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!closed[1].load(SeqCst), "loop 1's listener is still open");
        echo_clients(port, AFTER_PANIC, "after the panic")
    });

    let err = results[0].as_ref().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string()
            .contains("group_loops: service 0 gives up after binding"),
        "{err}"
    );
    let report = results[1].as_ref().expect("loop 1's service");
    assert_eq!(report.accepted, AFTER_PANIC as u64);
    assert_eq!(report.echoed, sent);
    let accepts: Vec<u64> = group.handles().iter().map(|h| h.stats().accepts).collect();
    assert_eq!(accepts, [0, AFTER_PANIC as u64]);

    let logged = logs_containing("group_loops: service 0 gives up after binding");
    assert!(
        logged
            .iter()
            .any(|line| line.contains("loop 0: its service panicked")),
        "{logged:?}"
    );

    // Loop 0 is alive: a later service runs on both loops.
    let again = group.block_on_each(|index, _| async move {
        evloop::yield_now().await?;
        Ok::<_, Error>((index, thread_name()))
    });
    assert_eq!(
        all_ok(again),
        [(0, "evloop-0".to_owned()), (1, "evloop-1".to_owned())]
    );
    group.shutdown().unwrap();
}

/// Pins the other panic path of `block_on_each`: a service that panics when it is
/// *called* (before it returns a future) is reported like one whose future panics —
/// `Err(Error::Panic)` in its slot and the log line with its index — and the other
/// loops' services still run to completion.
#[test]
fn a_service_that_panics_when_called_is_reported_in_its_slot() {
    init_logger();
    let _watchdog = Watchdog::new("a service panicking when called", TEST_LIMIT);
    let group = LoopGroup::new(2).unwrap();
    let results = group.block_on_each(|index, _| {
        if index == 1 {
            panic!("group_loops: service 1 refuses to start");
        }
        async move {
            evloop::yield_now().await?;
            Ok::<_, Error>(thread_name())
        }
    });
    assert_eq!(*results[0].as_ref().unwrap(), "evloop-0");
    let err = results[1].as_ref().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string()
            .contains("group_loops: service 1 refuses to start"),
        "{err}"
    );
    let logged = logs_containing("group_loops: service 1 refuses to start");
    assert!(
        logged
            .iter()
            .any(|line| line.contains("loop 1: its service panicked")),
        "{logged:?}"
    );
    let again = group.block_on_each(|index, _| async move { Ok::<_, Error>(index) });
    assert_eq!(all_ok(again), [0, 1], "loop 1 is alive");
    group.shutdown().unwrap();
}

// ---------------------------------------------------------------------------------
// 6. A user's stop() does not end a group loop.
// ---------------------------------------------------------------------------------

/// Pins that `LoopHandle::stop` on a group loop (from a service on it, or from another
/// thread) only makes its `run_forever` return: the group's thread runs it again, the
/// loop is not closed, its pending tasks survive and later services still run there.
#[test]
fn a_users_stop_does_not_end_a_group_loop() {
    let _watchdog = Watchdog::new("stop() on a group loop", TEST_LIMIT);
    let group = LoopGroup::new(2).unwrap();
    let handles = group.handles().to_vec();
    // A task on loop 0 pending across the stops.
    let gate = Future::<u32>::with_loop(&handles[0]);
    let survivor = handles[0].spawn({
        let gate = gate.clone();
        async move { Ok(gate.await? + 1) }
    });

    let stopped = group.block_on_each(|index, _| async move {
        if index == 0 {
            LoopHandle::current().stop();
            // Resumes only once the loop runs again after the stop.
            evloop::time::sleep(Duration::from_millis(1)).await?;
            evloop::yield_now().await?;
        }
        Ok::<_, Error>(thread_name())
    });
    assert_eq!(all_ok(stopped), ["evloop-0", "evloop-1"]);
    // Also from other threads, directly and through a callback.
    handles[1].stop();
    handles[0].call_soon_threadsafe(|| LoopHandle::current().stop());
    handles[1].call_soon_threadsafe(|| LoopHandle::current().stop());

    gate.set_result(41).unwrap();
    let survivor = survivor.future();
    let later = group.block_on_each(move |index, _| {
        let survivor = survivor.clone();
        async move {
            let value = if index == 0 {
                evloop::wait_for(survivor, HANG_GUARD).await?
            } else {
                0
            };
            Ok::<_, Error>((thread_name(), value))
        }
    });
    assert_eq!(
        all_ok(later),
        [("evloop-0".to_owned(), 42), ("evloop-1".to_owned(), 0)]
    );
    for (k, handle) in handles.iter().enumerate() {
        assert!(!handle.is_closed(), "loop {k} is still open");
    }
    group.shutdown().unwrap();
    for (k, handle) in handles.iter().enumerate() {
        assert!(handle.is_closed(), "loop {k} is closed after shutdown");
    }
}

// ---------------------------------------------------------------------------------
// 7. A group needs at least one loop.
// ---------------------------------------------------------------------------------

#[test]
fn a_group_of_zero_loops_is_invalid_input() {
    let err = LoopGroup::new(0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = Runtime::builder().build_group(0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");

    let one = LoopGroup::new(1).unwrap();
    assert_eq!(one.len(), 1);
    let only = one.block_on_each(|index, _| async move { Ok::<_, Error>((index, thread_name())) });
    assert_eq!(*only[0].as_ref().unwrap(), (0, "evloop-0".to_owned()));
    one.shutdown().unwrap();
}
