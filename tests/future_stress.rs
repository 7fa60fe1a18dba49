//! Q1 for futures: 4 worker threads and the loop itself race `set_result`,
//! `set_exception`, `cancel_with`, `add_done_callback` and `remove_done_callback` on
//! the same 100 000 futures while the loop runs, and tasks await some of them.
//! Afterwards every future has exactly one successful completion, every state read
//! (`result`, `exception`, `cancelled`, in callbacks, awaiters and at the end) agrees
//! with it, and every registered callback ran exactly once.

mod common;

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::SplitMix64;
use evloop::{Error, Future, Runtime};

const FUTURES: usize = 100_000;
const THREADS: usize = 4;
/// The loop thread acts as a fifth "thread" number.
const LOOP: u8 = THREADS as u8;
/// Every `AWAIT_EVERY`-th future is also awaited by a task.
const AWAIT_EVERY: usize = 100;

const OP_RESULT: u8 = 1;
const OP_EXCEPTION: u8 = 2;
const OP_CANCEL: u8 = 3;

fn code(op: u8, who: u8) -> u8 {
    (op << 4) | who
}

/// Per-future bookkeeping.
#[derive(Default)]
struct Slot {
    /// Successful set_result / set_exception / cancel calls.
    successes: AtomicU32,
    /// `code(op, who)` of the successful completion.
    winner: AtomicU8,
    /// Callbacks that must run (added, and not removed by a remove that returned 1).
    registered: AtomicU32,
    /// Callbacks that ran.
    ran: AtomicU32,
    /// The state code the first callback observed (0: none yet).
    observed: AtomicU8,
}

struct Shared {
    futs: Vec<Future<u8>>,
    slots: Vec<Slot>,
    mismatches: AtomicUsize,
    first_mismatch: Mutex<Option<String>>,
}

impl Shared {
    fn mismatch(&self, what: String) {
        self.mismatches.fetch_add(1, Ordering::SeqCst);
        self.first_mismatch.lock().unwrap().get_or_insert(what);
    }
}

const MESSAGES: [&str; THREADS + 1] = ["t0", "t1", "t2", "t3", "t4"];

/// Reads the state of a done future through all three accessors and checks they agree;
/// returns its code.
fn observe(fut: &Future<u8>) -> Result<u8, String> {
    if !fut.done() {
        return Err("a callback saw a pending future".into());
    }
    let who_of = |text: &str| -> Result<u8, String> {
        MESSAGES
            .iter()
            .position(|m| *m == text)
            .map(|p| p as u8)
            .ok_or_else(|| format!("unknown message {text:?}"))
    };
    if fut.cancelled() {
        let msg = match fut.result() {
            Err(Error::Cancelled(c)) => c.message().unwrap_or("").to_string(),
            other => return Err(format!("cancelled but result() = {other:?}")),
        };
        if !fut.exception().is_err_and(|e| e.is_cancelled()) {
            return Err("cancelled but exception() is not Err(Cancelled)".into());
        }
        return Ok(code(OP_CANCEL, who_of(&msg)?));
    }
    match (fut.exception(), fut.result()) {
        (Ok(None), Ok(v)) => Ok(code(OP_RESULT, v)),
        (Ok(Some(e)), Err(e2)) if e.to_string() == e2.to_string() => {
            Ok(code(OP_EXCEPTION, who_of(&e.to_string())?))
        }
        (exc, res) => Err(format!(
            "inconsistent: exception()={exc:?} result()={res:?}"
        )),
    }
}

fn add_checked_callback(shared: &Arc<Shared>, i: usize) -> evloop::CallbackId {
    let s = shared.clone();
    shared.futs[i].add_done_callback(move |f| {
        let slot = &s.slots[i];
        match observe(f) {
            Ok(c) => {
                if let Err(prev) =
                    slot.observed
                        .compare_exchange(0, c, Ordering::SeqCst, Ordering::SeqCst)
                {
                    if prev != c {
                        s.mismatch(format!("future {i}: callbacks saw {prev:#x} and {c:#x}"));
                    }
                }
            }
            Err(e) => s.mismatch(format!("future {i}: {e}")),
        }
        slot.ran.fetch_add(1, Ordering::SeqCst);
    })
}

/// One random operation on future `i`, by `who`.
fn random_op(shared: &Arc<Shared>, rng: &mut SplitMix64, i: usize, who: u8) {
    let fut = &shared.futs[i];
    let slot = &shared.slots[i];
    let won = |op: u8| {
        slot.successes.fetch_add(1, Ordering::SeqCst);
        slot.winner.store(code(op, who), Ordering::SeqCst);
    };
    match rng.below(5) {
        0 => {
            if fut.set_result(who).is_ok() {
                won(OP_RESULT);
            }
        }
        1 => {
            if fut
                .set_exception(Error::msg(MESSAGES[who as usize]))
                .is_ok()
            {
                won(OP_EXCEPTION);
            }
        }
        2 => {
            if fut.cancel_with(MESSAGES[who as usize]) {
                won(OP_CANCEL);
            }
        }
        3 => {
            add_checked_callback(shared, i);
            slot.registered.fetch_add(1, Ordering::SeqCst);
        }
        _ => {
            let id = add_checked_callback(shared, i);
            match fut.remove_done_callback(id) {
                // Removed before it was scheduled: it must never run.
                1 => {}
                // Already done: scheduled, and it still runs.
                0 => {
                    slot.registered.fetch_add(1, Ordering::SeqCst);
                }
                n => shared.mismatch(format!("future {i}: remove_done_callback = {n}")),
            }
        }
    }
}

#[test]
fn concurrent_completion_cancellation_and_callbacks_on_100k_futures() {
    let _watchdog = common::Watchdog::new("future stress", Duration::from_secs(120));
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let shared = Arc::new(Shared {
        futs: (0..FUTURES).map(|_| loop_.create_future()).collect(),
        slots: (0..FUTURES).map(|_| Slot::default()).collect(),
        mismatches: AtomicUsize::new(0),
        first_mismatch: Mutex::new(None),
    });
    let threads_done: Future<()> = loop_.create_future();
    let awaited: Vec<(usize, Result<u8, Error>)> = rt.block_on({
        let shared = shared.clone();
        let threads_done = threads_done.clone();
        async move {
            // One callback per future, registered on the loop before the race.
            for i in 0..FUTURES {
                add_checked_callback(&shared, i);
                shared.slots[i].registered.fetch_add(1, Ordering::SeqCst);
            }
            let awaiters: Vec<_> = (0..FUTURES)
                .step_by(AWAIT_EVERY)
                .map(|i| {
                    let fut = shared.futs[i].clone();
                    (
                        i,
                        evloop::create_task(async move { Ok::<_, Error>(fut.await) }),
                    )
                })
                .collect();
            evloop::yield_now().await.unwrap(); // the awaiters are suspended now

            let start = Arc::new(Barrier::new(THREADS + 1));
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (shared, start) = (shared.clone(), start.clone());
                    std::thread::spawn(move || {
                        let mut rng = SplitMix64::new(0x5EED + t as u64);
                        start.wait();
                        // Every thread walks the futures in the same order, so they
                        // collide on the same future all the time.
                        for i in 0..FUTURES {
                            random_op(&shared, &mut rng, i, t as u8);
                        }
                    })
                })
                .collect();
            {
                let threads_done = threads_done.clone();
                std::thread::spawn(move || {
                    for w in workers {
                        w.join().unwrap();
                    }
                    threads_done.set_result(()).unwrap();
                });
            }
            start.wait();
            // The loop thread races too, yielding now and then so that callbacks
            // scheduled from the workers run meanwhile.
            let mut rng = SplitMix64::new(0x100F);
            for i in 0..FUTURES {
                random_op(&shared, &mut rng, i, LOOP);
                if i % 1000 == 0 {
                    evloop::yield_now().await.unwrap();
                }
            }
            threads_done.await.unwrap();
            // Whatever is still pending is cancelled by the loop (a completion too).
            for (i, fut) in shared.futs.iter().enumerate() {
                if fut.cancel_with(MESSAGES[LOOP as usize]) {
                    shared.slots[i].successes.fetch_add(1, Ordering::SeqCst);
                    shared.slots[i]
                        .winner
                        .store(code(OP_CANCEL, LOOP), Ordering::SeqCst);
                }
            }
            let mut results = Vec::new();
            for (i, task) in awaiters {
                results.push((i, task.await.unwrap()));
            }
            // Let every scheduled callback run (bounded).
            for _ in 0..1000 {
                let pending = shared
                    .slots
                    .iter()
                    .any(|s| s.ran.load(Ordering::SeqCst) < s.registered.load(Ordering::SeqCst));
                if !pending {
                    break;
                }
                evloop::yield_now().await.unwrap();
            }
            results
        }
    });

    assert_eq!(
        shared.mismatches.load(Ordering::SeqCst),
        0,
        "first: {:?}",
        shared.first_mismatch.lock().unwrap()
    );
    let mut callbacks = 0u64;
    let mut by_op = [0usize; 4];
    for (i, (fut, slot)) in shared.futs.iter().zip(&shared.slots).enumerate() {
        assert_eq!(
            slot.successes.load(Ordering::SeqCst),
            1,
            "future {i}: completions"
        );
        let winner = slot.winner.load(Ordering::SeqCst);
        assert_eq!(
            observe(fut),
            Ok(winner),
            "future {i}: final state vs winner"
        );
        assert_eq!(
            slot.observed.load(Ordering::SeqCst),
            winner,
            "future {i}: callbacks vs winner"
        );
        let (ran, registered) = (
            slot.ran.load(Ordering::SeqCst),
            slot.registered.load(Ordering::SeqCst),
        );
        assert_eq!(ran, registered, "future {i}: callbacks run vs registered");
        callbacks += u64::from(ran);
        by_op[usize::from(winner >> 4)] += 1;
    }
    for (i, outcome) in &awaited {
        let expected = observe(&shared.futs[*i]).unwrap();
        let got = match outcome {
            Ok(v) => code(OP_RESULT, *v),
            Err(Error::Cancelled(c)) => {
                // The future was cancelled (not the awaiting task).
                assert!(shared.futs[*i].cancelled(), "future {i}");
                let who = MESSAGES.iter().position(|m| Some(*m) == c.message());
                code(OP_CANCEL, who.unwrap() as u8)
            }
            Err(e) => {
                let who = MESSAGES.iter().position(|m| *m == e.to_string());
                code(OP_EXCEPTION, who.unwrap() as u8)
            }
        };
        assert_eq!(got, expected, "awaiter of future {i}");
    }
    // Sanity: the race exercised every kind of completion and many callbacks.
    assert!(by_op[1] > 0 && by_op[2] > 0 && by_op[3] > 0, "{by_op:?}");
    assert!(callbacks >= FUTURES as u64);
    assert_eq!(awaited.len(), FUTURES / AWAIT_EVERY);
}
