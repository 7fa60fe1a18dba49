//! The cooperative budget (SPEC K7) and no starvation (Q7), shown by the order of
//! events — never by a time limit.
//!
//! The starvation scenarios are the ones of issue 16: a task reading a socket that
//! always has data, a task looping over a queue that is never empty and a task awaiting
//! ready futures in a loop. Each runs far longer than 1 ms without ever having to
//! suspend; a sibling's 1 ms sleep must fire, and another connection must be served,
//! while it is still early in its work.

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use evloop::net::UnixStream;
use evloop::sync::Queue;
use evloop::{Error, Future, Runtime};

/// What the siblings of the busy task saw: how far the busy task was when the 1 ms
/// timer fired and when the other connection was served.
#[derive(Default)]
struct Probe {
    progress: Cell<u64>,
    timer_fired_at: Cell<Option<u64>>,
    served_at: Cell<Option<u64>>,
}

/// Starts the two siblings: a 1 ms sleep, and a connection whose peer thread sends a
/// line after the busy task started — served when this loop reads it.
fn start_siblings(probe: &Rc<Probe>) {
    let p = probe.clone();
    evloop::create_task(async move {
        evloop::time::sleep(Duration::from_millis(1)).await?;
        p.timer_fired_at.set(Some(p.progress.get()));
        Ok::<_, Error>(())
    });
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let ours = UnixStream::from_std(ours).unwrap();
    std::thread::spawn(move || {
        let mut theirs = theirs;
        theirs.write_all(b"hello\n").unwrap();
        // Keep the peer open until the loop has read the line.
        let mut buf = [0u8; 1];
        let _ = std::io::Read::read(&mut theirs, &mut buf);
    });
    let p = probe.clone();
    evloop::create_task(async move {
        let mut buf = [0u8; 6];
        ours.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello\n");
        p.served_at.set(Some(p.progress.get()));
        Ok::<_, Error>(())
    });
}

fn assert_siblings_ran_early(probe: &Probe, total: u64, what: &str) {
    let fired = probe.timer_fired_at.get().unwrap_or_else(|| {
        panic!("{what}: the sibling's 1 ms timer did not fire before the busy task finished")
    });
    let served = probe.served_at.get().unwrap_or_else(|| {
        panic!("{what}: the other connection was not served before the busy task finished")
    });
    assert!(
        fired < total / 2 && served < total / 2,
        "{what}: the siblings ran only late in the busy task's {total} steps \
         (timer at {fired}, connection at {served})"
    );
}

// Q7: a reader of a socket that always has data. A peer thread keeps the socket's
// buffer full; the reader takes 16 bytes per read, so every read completes at once and
// the task never has to suspend. Without the budget the sibling timer fires and the
// other connection is served only after all 400 000 reads (issue 16 measured 187 270
// lines before a sibling ran).
#[test]
fn busy_socket_reader_lets_timer_and_other_connection_run() {
    const READS: u64 = 400_000;
    let rt = Runtime::new().unwrap();
    let probe = Rc::new(Probe::default());
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut theirs = theirs;
            let chunk = [b'x'; 65536];
            while !stop.load(Ordering::Relaxed) {
                if theirs.write_all(&chunk).is_err() {
                    break;
                }
            }
        })
    };
    let result = rt.block_on(async {
        let reader = UnixStream::from_std(ours).unwrap();
        // Let the peer fill the socket's buffer first: from then on it always has data.
        reader.readable().await.unwrap();
        let busy = {
            let probe = probe.clone();
            evloop::create_task(async move {
                let mut buf = [0u8; 16];
                for _ in 0..READS {
                    let n = reader.read(&mut buf).await?;
                    assert!(n > 0);
                    probe.progress.set(probe.progress.get() + 1);
                }
                Ok::<_, Error>(())
            })
        };
        start_siblings(&probe);
        busy.await
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    result.unwrap();
    assert_siblings_ran_early(&probe, READS, "socket reader");
}

// Q7: a task looping over a never-empty queue (it puts back every item it gets), so
// every `get` and `put` completes without suspending.
#[test]
fn never_empty_queue_loop_lets_timer_and_other_connection_run() {
    const ROUNDS: u64 = 2_000_000;
    let probe = Rc::new(Probe::default());
    evloop::run(async {
        let queue = Rc::new(Queue::new(0));
        for i in 0..8 {
            queue.put_nowait(i).unwrap();
        }
        let busy = {
            let probe = probe.clone();
            let queue = queue.clone();
            evloop::create_task(async move {
                for _ in 0..ROUNDS {
                    let item = queue.get().await?;
                    queue.put(item).await?;
                    probe.progress.set(probe.progress.get() + 1);
                }
                Ok::<_, Error>(())
            })
        };
        start_siblings(&probe);
        busy.await
    })
    .unwrap();
    assert_siblings_ran_early(&probe, ROUNDS, "queue loop");
}

// Q7 for the third kind K7 names: a loop awaiting futures that are already done.
#[test]
fn ready_future_loop_lets_timer_and_other_connection_run() {
    const ROUNDS: u64 = 4_000_000;
    let probe = Rc::new(Probe::default());
    evloop::run(async {
        let done: Future<u64> = Future::new();
        done.set_result(1).unwrap();
        let busy = {
            let probe = probe.clone();
            evloop::create_task(async move {
                for _ in 0..ROUNDS {
                    let one = done.clone().await?;
                    probe.progress.set(probe.progress.get() + one);
                }
                Ok::<_, Error>(())
            })
        };
        start_siblings(&probe);
        busy.await
    })
    .unwrap();
    assert_siblings_ran_early(&probe, ROUNDS, "ready futures");
}

/// Two tasks each completing `n` ready awaits, logging each; returns the log.
fn interleaving(builder: evloop::Builder, n: usize, unconstrained_a: bool) -> Vec<String> {
    let rt = builder.build().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    rt.block_on(async {
        let done: Future<()> = Future::new();
        done.set_result(()).unwrap();
        let spawn = |name: &'static str, free: bool| {
            let (log, done) = (log.clone(), done.clone());
            let body = async move {
                for i in 0..n {
                    done.clone().await?;
                    log.borrow_mut().push(format!("{name}{i}"));
                }
                Ok::<_, Error>(())
            };
            if free {
                evloop::create_task(async move { evloop::task::unconstrained(body).await })
            } else {
                evloop::create_task(body)
            }
        };
        let a = spawn("a", unconstrained_a);
        let b = spawn("b", false);
        a.await.unwrap();
        b.await.unwrap();
    });
    log.take()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// K7: with a budget of 2 each task completes two awaits per poll, then goes to the back
// of the ready queue — so two busy tasks alternate in twos.
#[test]
fn spent_budget_sends_the_task_to_the_back_of_the_queue() {
    let log = interleaving(Runtime::builder().coop_budget(Some(2)), 5, false);
    assert_eq!(
        log,
        strs(&["a0", "a1", "b0", "b1", "a2", "a3", "b2", "b3", "a4", "b4"])
    );
}

// K7: `task::unconstrained` opts one future out: task a finishes all its awaits in one
// poll while task b is still held to the budget.
#[test]
fn unconstrained_future_is_not_made_to_yield() {
    let log = interleaving(Runtime::builder().coop_budget(Some(2)), 5, true);
    assert_eq!(
        log,
        strs(&["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"])
    );
}

// K7: `Builder::coop_budget(None)` disables the budget for the whole loop (the P16
// comparison), and the default is tokio's 128.
#[test]
fn budget_can_be_disabled_and_defaults_to_128() {
    let log = interleaving(Runtime::builder().coop_budget(None), 3, false);
    assert_eq!(log, strs(&["a0", "a1", "a2", "b0", "b1", "b2"]));
    let log = interleaving(Runtime::builder(), 130, false);
    let first_b = log.iter().position(|e| e == "b0").unwrap();
    assert_eq!(first_b, 128, "task a completes 128 awaits before b runs");
}

// K7: a callback scheduled while a task spins on ready awaits runs before the task has
// finished them: the spent budget lets the ready queue move.
#[test]
fn callback_runs_between_budget_slices() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    evloop::run(async {
        let done: Future<()> = Future::new();
        done.set_result(()).unwrap();
        let task = {
            let order = order.clone();
            evloop::create_task(async move {
                for _ in 0..1_000 {
                    done.clone().await?;
                }
                order.lock().unwrap().push("task finished");
                Ok::<_, Error>(())
            })
        };
        let o = order.clone();
        evloop::LoopHandle::current().call_soon(move || o.lock().unwrap().push("callback"));
        task.await.unwrap();
    });
    assert_eq!(*order.lock().unwrap(), ["callback", "task finished"]);
}
