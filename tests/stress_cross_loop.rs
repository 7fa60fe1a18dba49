//! SPEC Q1 ("no lost or duplicated callback, wake-up or result under cross-thread load:
//! every item accounted for exactly once") across **two loops** and **several plain
//! threads**, with G5 (gather over futures of different loops) and T3 (cancelling tasks
//! from other threads) in the mix.
//!
//! * Two runtimes run `run_forever` on two threads. Tasks on one loop send requests to
//!   the other loop (callbacks completing futures bound to it) and await replies that
//!   tasks on the other loop complete from their own thread — thousands of them, in
//!   both directions — and a gather on each loop collects them all.
//! * Gathers on both loops over futures of both loops that the *other* loop completes
//!   (or cancels), scheduled by two plain threads in shuffled order.
//! * Four plain threads, for a bounded time, concurrently spawn tasks on either loop,
//!   schedule callbacks and timers, `set_result` / `cancel_with` shared futures, cancel
//!   each other's callbacks and cancel tasks spawned by the other threads; afterwards
//!   every task ended exactly once in one final state that is explained by what was
//!   done to it, every callback either ran once or was cancelled, and the counts
//!   balance.
//!
//! Nothing here measures time: a lost item shows up as a bounded wait (60 s) failing,
//! a duplicated one as a counter above 1.

mod common;
use common::SplitMix64;

use std::panic::resume_unwind;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use evloop::{Error, Future, Handle, LoopHandle, Runtime, TimerHandle, gather, gather_results};

/// Generous bound that turns a hang (a lost wake-up or result) into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// [`common::bounded`] with this file's [`HANG_LIMIT`].
fn bounded<T: Send + 'static>(what: &'static str, body: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded(HANG_LIMIT, what, body)
}

/// Polls `cond` (1 ms apart) until it holds; fails after [`HANG_LIMIT`].
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_LIMIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "never happened within {HANG_LIMIT:?}: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// A runtime running `run_forever` on a thread of its own.
struct LoopThread {
    handle: LoopHandle,
    thread_id: ThreadId,
    thread: Option<JoinHandle<()>>,
}

impl LoopThread {
    fn start(name: &str) -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = Runtime::new().unwrap();
                tx.send((rt.handle(), thread::current().id())).unwrap();
                rt.run_forever();
            })
            .unwrap();
        let (handle, thread_id) = rx.recv().unwrap();
        LoopThread {
            handle,
            thread_id,
            thread: Some(thread),
        }
    }

    /// Waits until everything scheduled on the loop before this call (by this thread)
    /// has run: one callback round trip.
    fn round_trip(&self) {
        let (tx, rx) = mpsc::channel();
        self.handle
            .call_soon_threadsafe(move || tx.send(()).unwrap());
        rx.recv_timeout(HANG_LIMIT)
            .expect("the loop never ran a callback scheduled from another thread");
    }

    /// Stops the loop, joins its thread (propagating a panic) and checks it closed.
    fn shutdown(mut self) {
        self.handle.stop();
        if let Err(payload) = self.thread.take().unwrap().join() {
            resume_unwind(payload);
        }
        assert!(self.handle.is_closed(), "the runtime was dropped");
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.stop();
            let _ = thread.join();
        }
    }
}

/// A future's final state as a reader sees it.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Value(u64),
    Cancelled(Option<String>),
    Failed(String),
}

fn seen(fut: &Future<u64>) -> Seen {
    match fut.result() {
        Ok(v) => Seen::Value(v),
        Err(Error::Cancelled(c)) => Seen::Cancelled(c.message().map(str::to_string)),
        Err(e) => Seen::Failed(format!("{e:?}")),
    }
}

fn counters(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

fn all_equal(counters: &[AtomicU32], n: u32) -> bool {
    counters.iter().all(|c| c.load(SeqCst) == n)
}

// ---------------------------------------------------------------------------------
// Two loops answering each other
// ---------------------------------------------------------------------------------

/// 2 × 2000 request/reply pairs between loops A and B. For pair `i` the *client* task
/// runs on one loop and the *server* task on the other: the client schedules a callback
/// on the server's loop that completes the request future (bound to the server's loop),
/// the server task wakes, completes the reply future (bound to the client's loop) from
/// its own thread, and the client task wakes with the answer. A gather on A and a
/// `gather_results` on B collect all 8000 tasks of both loops. Every reply's
/// done-callback runs exactly once, on the reply's own loop thread.
#[test]
fn requests_and_replies_between_two_loops_arrive_exactly_once() {
    bounded("request/reply between two loops", || {
        const N: u64 = 2000;
        let a = LoopThread::start("stress-loop-a");
        let b = LoopThread::start("stress-loop-b");
        let total = (2 * N) as usize;
        let served = counters(total);
        let reply_callbacks = counters(total);
        let request_refused = Arc::new(AtomicUsize::new(0));
        let wrong_thread = Arc::new(AtomicUsize::new(0));

        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for i in 0..2 * N {
            let (here, there) = if i < N { (&a, &b) } else { (&b, &a) };
            let request: Future<u64> = there.handle.create_future();
            let reply: Future<u64> = here.handle.create_future();
            {
                let (calls, wrong) = (reply_callbacks.clone(), wrong_thread.clone());
                let owner = here.thread_id;
                reply.add_done_callback(move |f| {
                    if thread::current().id() != owner || f.result().ok() != Some(2 * i + 1) {
                        wrong.fetch_add(1, SeqCst);
                    }
                    calls[i as usize].fetch_add(1, SeqCst);
                });
            }
            let server = {
                let (request, reply, served) = (request.clone(), reply.clone(), served.clone());
                there.handle.spawn(async move {
                    let v = request.await?;
                    served[v as usize].fetch_add(1, SeqCst);
                    reply.set_result(2 * v + 1)?;
                    Ok::<_, Error>(v)
                })
            };
            let client = {
                let (server_loop, refused) = (there.handle.clone(), request_refused.clone());
                here.handle.spawn(async move {
                    server_loop.call_soon(move || {
                        if request.set_result(i).is_err() {
                            refused.fetch_add(1, SeqCst);
                        }
                    });
                    reply.await
                })
            };
            clients.push(client.future());
            servers.push(server.future());
        }

        // G5: one gather per loop over the tasks of both loops.
        let everything: Vec<Future<u64>> = clients.iter().chain(&servers).cloned().collect();
        let (tx_a, rx_a) = mpsc::channel();
        {
            let everything = everything.clone();
            a.handle.spawn(async move {
                tx_a.send(gather(everything).await).unwrap();
                Ok::<_, Error>(())
            });
        }
        let (tx_b, rx_b) = mpsc::channel();
        b.handle.spawn(async move {
            tx_b.send(gather_results(everything).await).unwrap();
            Ok::<_, Error>(())
        });
        let expected: Vec<u64> = (0..2 * N).map(|i| 2 * i + 1).chain(0..2 * N).collect();
        let on_a = rx_a
            .recv_timeout(HANG_LIMIT)
            .expect("gather on A never finished")
            .expect("gather on A failed");
        assert_eq!(on_a, expected);
        let on_b = rx_b
            .recv_timeout(HANG_LIMIT)
            .expect("gather_results on B never finished")
            .expect("gather_results on B failed");
        let on_b: Vec<u64> = on_b
            .into_iter()
            .enumerate()
            .map(|(k, r)| r.unwrap_or_else(|e| panic!("slot {k} on B: {e:?}")))
            .collect();
        assert_eq!(on_b, expected);

        eventually("every reply's done-callback ran", || {
            reply_callbacks.iter().all(|c| c.load(SeqCst) >= 1)
        });
        // Anything duplicated would be queued by now: let both loops drain.
        for _ in 0..2 {
            a.round_trip();
            b.round_trip();
        }
        assert!(all_equal(&served, 1), "a request was served twice or never");
        assert!(
            all_equal(&reply_callbacks, 1),
            "a reply's done-callback ran twice"
        );
        assert_eq!(request_refused.load(SeqCst), 0, "a request completed twice");
        assert_eq!(
            wrong_thread.load(SeqCst),
            0,
            "a done-callback ran off its loop or saw a wrong value"
        );
        for fut in clients.iter().chain(&servers) {
            assert!(fut.done() && !fut.cancelled());
        }
        a.shutdown();
        b.shutdown();
    });
}

/// 4000 futures, alternately bound to A and B, each completed (every 13th cancelled
/// with a message) by a callback on the *other* loop; the callbacks are scheduled by
/// two plain threads in shuffled order while a gather (over the never-cancelled ones)
/// and a `gather_results` (over all) wait on each loop. Every outcome reaches all four
/// gathers in argument order, and every future's done-callback runs once on its own
/// loop's thread.
#[test]
fn gathers_on_both_loops_see_every_completion_made_by_the_other_loop() {
    bounded("gathers over futures completed by the other loop", || {
        const K: usize = 4000;
        let is_cancelled = |k: usize| k % 13 == 5;
        let a = LoopThread::start("stress-loop-a");
        let b = LoopThread::start("stress-loop-b");
        let loops = [&a, &b];
        let callbacks = counters(K);
        let wrong = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let futs: Vec<Future<u64>> = (0..K)
            .map(|k| {
                let owner = loops[k % 2];
                let fut = owner.handle.create_future();
                let (calls, wrong, owner_thread) =
                    (callbacks.clone(), wrong.clone(), owner.thread_id);
                fut.add_done_callback(move |_: &Future<u64>| {
                    if thread::current().id() != owner_thread {
                        wrong.fetch_add(1, SeqCst);
                    }
                    calls[k].fetch_add(1, SeqCst);
                });
                fut
            })
            .collect();
        let values: Vec<Future<u64>> = (0..K)
            .filter(|&k| !is_cancelled(k))
            .map(|k| futs[k].clone())
            .collect();

        let mut outers = Vec::new();
        for owner in loops {
            let (tx, rx) = mpsc::channel();
            let (all, values) = (futs.clone(), values.clone());
            owner.handle.spawn(async move {
                let everything = gather_results(all);
                let some = gather(values);
                tx.send((everything.await, some.await)).unwrap();
                Ok::<_, Error>(())
            });
            outers.push(rx);
        }

        let mut order: Vec<usize> = (0..K).collect();
        SplitMix64::new(0xC0FF_EE00).shuffle(&mut order);
        let producers: Vec<_> = order
            .chunks(K / 2)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                let futs = futs.clone();
                let others = [b.handle.clone(), a.handle.clone()];
                let refused = refused.clone();
                thread::spawn(move || {
                    for k in chunk {
                        let (fut, refused) = (futs[k].clone(), refused.clone());
                        others[k % 2].call_soon_threadsafe(move || {
                            let ok = if is_cancelled(k) {
                                fut.cancel_with(format!("c{k}"))
                            } else {
                                fut.set_result(7 * k as u64).is_ok()
                            };
                            if !ok {
                                refused.fetch_add(1, SeqCst);
                            }
                        });
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }

        let expected_values: Vec<u64> = (0..K)
            .filter(|&k| !is_cancelled(k))
            .map(|k| 7 * k as u64)
            .collect();
        for (name, rx) in ["A", "B"].into_iter().zip(outers) {
            let (everything, some) = rx
                .recv_timeout(HANG_LIMIT)
                .unwrap_or_else(|_| panic!("the gathers on {name} never finished"));
            let everything =
                everything.unwrap_or_else(|e| panic!("gather_results on {name}: {e:?}"));
            assert_eq!(everything.len(), K);
            for (k, slot) in everything.iter().enumerate() {
                if is_cancelled(k) {
                    match slot {
                        Err(Error::Cancelled(c)) => {
                            assert_eq!(
                                c.message(),
                                Some(format!("c{k}").as_str()),
                                "slot {k} on {name}"
                            )
                        }
                        other => panic!("slot {k} on {name}: expected Cancelled, got {other:?}"),
                    }
                } else {
                    assert_eq!(
                        slot.as_ref().ok(),
                        Some(&(7 * k as u64)),
                        "slot {k} on {name}"
                    );
                }
            }
            assert_eq!(
                some.unwrap_or_else(|e| panic!("gather on {name}: {e:?}")),
                expected_values
            );
        }

        eventually("every done-callback ran", || {
            callbacks.iter().all(|c| c.load(SeqCst) >= 1)
        });
        for _ in 0..2 {
            a.round_trip();
            b.round_trip();
        }
        assert!(all_equal(&callbacks, 1), "a done-callback ran twice");
        assert_eq!(wrong.load(SeqCst), 0, "a done-callback ran off its loop");
        assert_eq!(refused.load(SeqCst), 0, "a future was completed twice");
        a.shutdown();
        b.shutdown();
    });
}

// ---------------------------------------------------------------------------------
// Four threads doing everything at once
// ---------------------------------------------------------------------------------

const THREADS: u64 = 4;
/// The test thread's number when it completes the leftover shared futures.
const FINALIZER: u64 = THREADS;
/// How long the worker threads keep going.
const RUN_FOR: Duration = Duration::from_millis(1000);
/// And at most this many operations each (keeps the debug build's drain phase short).
const MAX_OPS: u64 = 80_000;
const SHARED: usize = 16_384;
/// Operations on shared futures pick one from a window of this many that slides
/// through them as the thread progresses, so that tasks keep finding futures that are
/// still pending and get completed (or cancelled) while they wait.
const WINDOW: u64 = 1024;
const MAX_TASKS: usize = 1 << 17;
const MAX_CALLBACKS: usize = 1 << 17;

/// Values set on shared futures: tag | thread | sequence number.
const VALUE_TAG: u64 = 1 << 48;
/// What a yielding task returns: tag | task index.
const YIELD_TAG: u64 = 2 << 48;
/// What a task that swallowed a cancellation returns.
const SWALLOWED: u64 = 3 << 48;

fn value_code(thread: u64, seq: u64) -> u64 {
    VALUE_TAG | (thread << 32) | seq
}

/// One shared future and what was done to it.
struct SharedFut {
    fut: Future<u64>,
    /// Successful `set_result`s and the value of the last one.
    set_ok: AtomicU32,
    set_value: Mutex<Option<u64>>,
    /// Successful `cancel_with`s and the message of the last one.
    cancel_ok: AtomicU32,
    cancel_message: Mutex<Option<String>>,
    callback_runs: AtomicU32,
    callback_saw: Mutex<Option<Seen>>,
}

/// What a spawned task does.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Await shared future `j`.
    Await(usize),
    /// `yield_now` this many times.
    Yield(u32),
}

/// One spawned task and what happened to it.
#[derive(Default)]
struct TaskSlot {
    plan: OnceLock<(Plan, bool)>,
    view: OnceLock<Future<u64>>,
    entered: AtomicU32,
    exited: AtomicU32,
    /// What the awaited shared future (or `yield_now`) gave the body.
    awaited: Mutex<Option<Seen>>,
    /// What the body returned (`Cancelled` when it propagated a cancellation).
    returned: Mutex<Option<Seen>>,
    /// `cancel_with` calls on the task that returned `true`.
    cancel_ok: AtomicU32,
    callback_runs: AtomicU32,
    callback_saw: Mutex<Option<Seen>>,
}

enum AnyHandle {
    Soon(Handle),
    Later(TimerHandle),
}

impl AnyHandle {
    fn cancel(&self) -> bool {
        match self {
            AnyHandle::Soon(h) => h.cancel(),
            AnyHandle::Later(h) => h.cancel(),
        }
    }

    fn cancelled(&self) -> bool {
        match self {
            AnyHandle::Soon(h) => h.cancelled(),
            AnyHandle::Later(h) => h.cancelled(),
        }
    }
}

#[derive(Default)]
struct CallbackSlot {
    handle: OnceLock<AnyHandle>,
    runs: AtomicU32,
    cancel_ok: AtomicU32,
}

struct World {
    loops: [LoopHandle; 2],
    shared: Vec<SharedFut>,
    tasks: Vec<TaskSlot>,
    next_task: AtomicUsize,
    callbacks: Vec<CallbackSlot>,
    next_callback: AtomicUsize,
}

impl World {
    fn published_tasks(&self) -> usize {
        self.next_task.load(SeqCst).min(MAX_TASKS)
    }

    fn published_callbacks(&self) -> usize {
        self.next_callback.load(SeqCst).min(MAX_CALLBACKS)
    }
}

/// A shared future from the window at this point of the thread's run.
fn pick_shared(rng: &mut SplitMix64, ops: u64) -> usize {
    let span = SHARED as u64 - WINDOW;
    (span * ops.min(MAX_OPS) / MAX_OPS + rng.below(WINDOW)) as usize
}

fn spawn_task(world: &Arc<World>, rng: &mut SplitMix64, ops: u64) {
    let k = world.next_task.fetch_add(1, SeqCst);
    if k >= MAX_TASKS {
        return;
    }
    let plan = if rng.below(10) < 7 {
        Plan::Await(pick_shared(rng, ops))
    } else {
        Plan::Yield(1 + rng.below(4) as u32)
    };
    let swallow = rng.below(10) < 3;
    world.tasks[k].plan.set((plan, swallow)).unwrap();
    let owner = &world.loops[rng.below(2) as usize];
    let w = world.clone();
    let task = owner.spawn(async move {
        let slot = &w.tasks[k];
        slot.entered.fetch_add(1, SeqCst);
        let outcome = match plan {
            Plan::Await(j) => w.shared[j].fut.clone().await,
            Plan::Yield(n) => {
                let mut r = Ok(YIELD_TAG | k as u64);
                for _ in 0..n {
                    if let Err(e) = evloop::yield_now().await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
        };
        *slot.awaited.lock().unwrap() = Some(match &outcome {
            Ok(v) => Seen::Value(*v),
            Err(Error::Cancelled(c)) => Seen::Cancelled(c.message().map(str::to_string)),
            Err(e) => Seen::Failed(format!("{e:?}")),
        });
        let ret = match outcome {
            Err(e) if e.is_cancelled() && swallow => Ok(SWALLOWED),
            other => other,
        };
        *slot.returned.lock().unwrap() = Some(match &ret {
            Ok(v) => Seen::Value(*v),
            Err(Error::Cancelled(c)) => Seen::Cancelled(c.message().map(str::to_string)),
            Err(e) => Seen::Failed(format!("{e:?}")),
        });
        slot.exited.fetch_add(1, SeqCst);
        ret
    });
    let slot = &world.tasks[k];
    if slot.view.set(task.future()).is_err() {
        panic!("task slot {k} published twice");
    }
    let w = world.clone();
    task.add_done_callback(move |f| {
        let slot = &w.tasks[k];
        *slot.callback_saw.lock().unwrap() = Some(seen(f));
        slot.callback_runs.fetch_add(1, SeqCst);
    });
}

fn schedule_callback(world: &Arc<World>, rng: &mut SplitMix64) {
    let k = world.next_callback.fetch_add(1, SeqCst);
    if k >= MAX_CALLBACKS {
        return;
    }
    let owner = &world.loops[rng.below(2) as usize];
    let w = world.clone();
    let f = move || {
        w.callbacks[k].runs.fetch_add(1, SeqCst);
    };
    let handle = if rng.below(4) == 0 {
        AnyHandle::Later(owner.call_later(Duration::from_micros(rng.below(2000)), f))
    } else {
        AnyHandle::Soon(owner.call_soon_threadsafe(f))
    };
    if world.callbacks[k].handle.set(handle).is_err() {
        panic!("callback slot {k} published twice");
    }
}

fn worker(world: Arc<World>, me: u64, deadline: Instant) -> u64 {
    let mut rng = SplitMix64::new(0x5EED_0000 + me);
    let mut ops = 0;
    while ops < MAX_OPS && Instant::now() < deadline {
        ops += 1;
        match rng.below(100) {
            0..25 => spawn_task(&world, &mut rng, ops),
            25..50 => schedule_callback(&world, &mut rng),
            50..58 => {
                let n = world.published_callbacks();
                if n > 0 {
                    let slot = &world.callbacks[rng.below(n as u64) as usize];
                    if slot.handle.get().is_some_and(AnyHandle::cancel) {
                        slot.cancel_ok.fetch_add(1, SeqCst);
                    }
                }
            }
            58..70 => {
                let s = &world.shared[pick_shared(&mut rng, ops)];
                let v = value_code(me, ops);
                if s.fut.set_result(v).is_ok() {
                    s.set_ok.fetch_add(1, SeqCst);
                    *s.set_value.lock().unwrap() = Some(v);
                }
            }
            70..78 => {
                let s = &world.shared[pick_shared(&mut rng, ops)];
                let message = format!("f:{me}:{ops}");
                if s.fut.cancel_with(message.clone()) {
                    s.cancel_ok.fetch_add(1, SeqCst);
                    *s.cancel_message.lock().unwrap() = Some(message);
                }
            }
            _ => {
                let n = world.published_tasks();
                if n > 0 {
                    let slot = &world.tasks[rng.below(n as u64) as usize];
                    if let Some(view) = slot.view.get() {
                        if view.cancel_with(format!("t:{me}:{ops}")) {
                            slot.cancel_ok.fetch_add(1, SeqCst);
                        }
                    }
                }
            }
        }
    }
    ops
}

/// Checks one shared future against what was done to it.
fn check_shared(j: usize, s: &SharedFut) {
    let fin = seen(&s.fut);
    let ctx = format!("shared future {j}: final {fin:?}");
    assert_eq!(s.callback_runs.load(SeqCst), 1, "{ctx}: done-callback runs");
    assert_eq!(s.callback_saw.lock().unwrap().as_ref(), Some(&fin), "{ctx}");
    let (set_ok, cancel_ok) = (s.set_ok.load(SeqCst), s.cancel_ok.load(SeqCst));
    match &fin {
        Seen::Value(v) => {
            assert!(!s.fut.cancelled(), "{ctx}");
            assert_eq!((set_ok, cancel_ok), (1, 0), "{ctx}: successful set/cancel");
            assert_eq!(*s.set_value.lock().unwrap(), Some(*v), "{ctx}");
        }
        Seen::Cancelled(message) => {
            assert!(s.fut.cancelled(), "{ctx}");
            assert_eq!(set_ok, 0, "{ctx}: a set_result succeeded too");
            let message = message.as_deref().unwrap_or("");
            if message.starts_with("f:") {
                assert_eq!(cancel_ok, 1, "{ctx}");
                assert_eq!(s.cancel_message.lock().unwrap().as_deref(), Some(message));
            } else {
                // Cancelled through a task awaiting it (T3) with the task's message.
                assert!(message.starts_with("t:"), "{ctx}");
                assert_eq!(cancel_ok, 0, "{ctx}: a cancel_with succeeded too");
            }
        }
        Seen::Failed(_) => panic!("{ctx}: nobody set an exception"),
    }
}

/// Checks one task's final state against its plan and what was done to it.
fn check_task(world: &World, k: usize, slot: &TaskSlot) {
    let view = slot
        .view
        .get()
        .expect("every reserved task slot was published");
    let (plan, swallow) = *slot.plan.get().unwrap();
    let fin = seen(view);
    let requested = slot.cancel_ok.load(SeqCst);
    let (entered, exited) = (slot.entered.load(SeqCst), slot.exited.load(SeqCst));
    let awaited = slot.awaited.lock().unwrap().clone();
    let returned = slot.returned.lock().unwrap().clone();
    let ctx = format!(
        "task {k} ({plan:?}, swallow {swallow}): final {fin:?}, awaited {awaited:?}, returned \
         {returned:?}, {requested} cancel requests accepted, entered {entered} exited {exited}"
    );
    assert!(view.done(), "{ctx}");
    assert_eq!(
        slot.callback_runs.load(SeqCst),
        1,
        "{ctx}: done-callback runs"
    );
    assert_eq!(
        slot.callback_saw.lock().unwrap().as_ref(),
        Some(&fin),
        "{ctx}"
    );
    assert!(
        entered <= 1 && entered == exited,
        "{ctx}: the body ran twice or half"
    );
    match &fin {
        Seen::Value(v) => {
            assert!(!view.cancelled(), "{ctx}");
            assert_eq!(returned, Some(Seen::Value(*v)), "{ctx}");
        }
        Seen::Cancelled(_) => {
            assert!(view.cancelled(), "{ctx}");
            if entered == 0 {
                assert!(requested >= 1, "{ctx}: cancelled before it ran, by nobody");
            } else {
                // Propagated a cancellation, or returned Ok while a request was
                // still undelivered (T3).
                let propagated = matches!(returned, Some(Seen::Cancelled(_)));
                assert!(propagated || requested >= 1, "{ctx}");
            }
        }
        Seen::Failed(_) => panic!("{ctx}: no task fails"),
    }
    if entered == 1 {
        let awaited = awaited.as_ref().unwrap();
        match (plan, awaited) {
            (Plan::Await(j), Seen::Value(v)) => {
                assert_eq!(seen(&world.shared[j].fut), Seen::Value(*v), "{ctx}");
            }
            (Plan::Await(j), Seen::Cancelled(_)) => {
                assert!(world.shared[j].fut.cancelled() || requested >= 1, "{ctx}");
            }
            (Plan::Yield(_), Seen::Value(v)) => assert_eq!(*v, YIELD_TAG | k as u64, "{ctx}"),
            (Plan::Yield(_), Seen::Cancelled(_)) => assert!(requested >= 1, "{ctx}"),
            (_, Seen::Failed(_)) => panic!("{ctx}: the await failed"),
        }
        let expected_return = match awaited {
            Seen::Cancelled(_) if swallow => Seen::Value(SWALLOWED),
            other => other.clone(),
        };
        assert_eq!(returned.as_ref(), Some(&expected_return), "{ctx}");
    }
    if requested == 0 {
        // Nobody cancelled the task: it ended with what its body returned.
        assert_eq!(Some(&fin), returned.as_ref(), "{ctx}");
    }
}

/// Four threads for a bounded time, on two loops: `LoopHandle::spawn`,
/// `call_soon_threadsafe` and `call_later` (with `Handle::cancel` / `TimerHandle::cancel`
/// from other threads), `set_result` / `cancel_with` on 4096 shared futures that the
/// tasks await, and `cancel_with` on tasks spawned by other threads. Afterwards (the
/// test thread completes the shared futures still pending, so every task can finish):
/// every task ended once, in a state explained by its plan and the requests it got;
/// every shared future has exactly one successful completion; every callback and
/// timer either ran once or was cancelled by exactly one successful `cancel`; every
/// done-callback ran once and saw the final state; no task is left on either loop.
#[test]
fn four_threads_spawn_schedule_complete_and_cancel_across_two_loops() {
    bounded("four threads on two loops", || {
        let a = LoopThread::start("stress-loop-a");
        let b = LoopThread::start("stress-loop-b");
        let shared = (0..SHARED)
            .map(|j| {
                let owner = if j % 2 == 0 { &a.handle } else { &b.handle };
                SharedFut {
                    fut: owner.create_future(),
                    set_ok: AtomicU32::new(0),
                    set_value: Mutex::new(None),
                    cancel_ok: AtomicU32::new(0),
                    cancel_message: Mutex::new(None),
                    callback_runs: AtomicU32::new(0),
                    callback_saw: Mutex::new(None),
                }
            })
            .collect();
        let world = Arc::new(World {
            loops: [a.handle.clone(), b.handle.clone()],
            shared,
            tasks: (0..MAX_TASKS).map(|_| TaskSlot::default()).collect(),
            next_task: AtomicUsize::new(0),
            callbacks: (0..MAX_CALLBACKS)
                .map(|_| CallbackSlot::default())
                .collect(),
            next_callback: AtomicUsize::new(0),
        });
        for j in 0..SHARED {
            let w = world.clone();
            world.shared[j].fut.add_done_callback(move |f| {
                let s = &w.shared[j];
                *s.callback_saw.lock().unwrap() = Some(seen(f));
                s.callback_runs.fetch_add(1, SeqCst);
            });
        }

        let deadline = Instant::now() + RUN_FOR;
        let workers: Vec<_> = (0..THREADS)
            .map(|me| {
                let world = world.clone();
                thread::spawn(move || worker(world, me, deadline))
            })
            .collect();
        let ops: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();

        // Complete what is still pending so that every awaiting task can finish.
        for (j, s) in world.shared.iter().enumerate() {
            let v = value_code(FINALIZER, j as u64);
            if s.fut.set_result(v).is_ok() {
                s.set_ok.fetch_add(1, SeqCst);
                *s.set_value.lock().unwrap() = Some(v);
            }
        }

        let tasks = world.published_tasks();
        let callbacks = world.published_callbacks();
        eventually("every task's done-callback ran", || {
            world.tasks[..tasks]
                .iter()
                .all(|t| t.callback_runs.load(SeqCst) >= 1)
        });
        eventually("every shared future's done-callback ran", || {
            world
                .shared
                .iter()
                .all(|s| s.callback_runs.load(SeqCst) >= 1)
        });
        eventually("every callback ran or was cancelled", || {
            world.callbacks[..callbacks]
                .iter()
                .all(|c| c.runs.load(SeqCst) + c.cancel_ok.load(SeqCst) >= 1)
        });
        // Anything duplicated would be queued by now: let both loops drain.
        for _ in 0..2 {
            a.round_trip();
            b.round_trip();
        }

        assert!(
            tasks > 100 && callbacks > 100,
            "{ops} operations: too little load"
        );
        for (j, s) in world.shared.iter().enumerate() {
            check_shared(j, s);
        }
        let mut ended = [0usize; 2];
        for (k, slot) in world.tasks[..tasks].iter().enumerate() {
            check_task(&world, k, slot);
            ended[usize::from(slot.view.get().unwrap().cancelled())] += 1;
        }
        assert_eq!(ended[0] + ended[1], tasks, "each task ended exactly once");
        let (mut ran, mut cancelled) = (0, 0);
        for (k, c) in world.callbacks[..callbacks].iter().enumerate() {
            let handle = c
                .handle
                .get()
                .expect("every reserved callback was published");
            let (runs, cancel_ok) = (c.runs.load(SeqCst), c.cancel_ok.load(SeqCst));
            assert_eq!(
                runs + cancel_ok,
                1,
                "callback {k}: ran {runs}, cancelled {cancel_ok}"
            );
            assert_eq!(handle.cancelled(), cancel_ok == 1, "callback {k}");
            ran += runs as usize;
            cancelled += cancel_ok as usize;
        }
        assert_eq!(ran + cancelled, callbacks);
        // The races were exercised: both final states and both callback fates occurred.
        assert!(ended[0] > 0 && ended[1] > 0, "task outcomes {ended:?}");
        assert!(
            ran > 0 && cancelled > 0,
            "callbacks: {ran} ran, {cancelled} cancelled"
        );
        for owner in [&a, &b] {
            assert_eq!(owner.handle.stats().live_tasks, 0, "a task was left behind");
        }
        a.shutdown();
        b.shutdown();
    });
}
