//! G5: a gather over futures of two loops. Runtime A runs on the test thread; runtime
//! B runs `run_forever` on a thread of its own. Children are created on B (tasks via
//! `LoopHandle::spawn`, futures via `LoopHandle::create_future`) and gathered on A,
//! mixed with A's own futures; their completions reach A through the cross-thread
//! queue. (asyncio refuses futures of another loop; evloop extends it, see
//! src/gather.rs.)

mod common;
use common::{entries, new_log, push};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{JoinHandle, ThreadId};

use evloop::{Error, Future, LoopHandle, Runtime, Task, gather, gather_results};

/// Loop B on its own thread; stopped and joined on drop.
struct LoopB {
    handle: LoopHandle,
    thread_id: ThreadId,
    thread: Option<JoinHandle<()>>,
}

impl LoopB {
    fn start() -> LoopB {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = Runtime::new().unwrap();
            tx.send((rt.handle(), std::thread::current().id())).unwrap();
            rt.run_forever();
            // Dropping the runtime here shuts B down on its own thread.
        });
        let (handle, thread_id) = rx.recv().unwrap();
        LoopB {
            handle,
            thread_id,
            thread: Some(thread),
        }
    }

    /// Stops B and joins its thread (panics if B's thread panicked).
    fn shutdown(mut self) {
        self.handle.stop();
        self.thread.take().unwrap().join().expect("loop B's thread");
        assert!(self.handle.is_closed(), "B's runtime was dropped");
    }
}

impl Drop for LoopB {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            let _ = t.join();
        }
    }
}

/// Lets loop A iterate until `cond()` holds (bare iterations, then 1 ms sleeps: the
/// condition is usually met by loop B's thread), a few seconds at most.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for i in 0..5000 {
        if cond() {
            return;
        }
        if i < 100 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(std::time::Duration::from_millis(1))
                .await
                .unwrap();
        }
    }
    panic!("never happened: {what}");
}

fn cancel_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

/// A task on B that waits on a future of its own (bound to B) until cancelled, logs
/// the thread and message it saw the cancellation with, and propagates it.
fn hanging_task_on_b(b: &LoopB, log: &common::Log, started: &Arc<AtomicUsize>) -> Task<u32> {
    let (log, started) = (log.clone(), started.clone());
    b.handle.spawn(async move {
        let hang: Future<u32> = Future::new();
        started.fetch_add(1, Ordering::SeqCst);
        let r = hang.await;
        if let Err(e) = &r {
            push(
                &log,
                format!("{:?} {:?}", std::thread::current().id(), cancel_message(e)),
            );
        }
        r
    })
}

#[test]
fn results_from_both_loops_arrive_on_a_in_argument_order() {
    let b = LoopB::start();
    let ran_on = new_log();
    common::run_guarded(async {
        let a_loop = LoopHandle::current();
        let a_thread = std::thread::current().id();
        // Two tasks on B.
        let b_tasks: Vec<Task<u32>> = (0..2)
            .map(|i| {
                let ran_on = ran_on.clone();
                b.handle.spawn(async move {
                    push(&ran_on, format!("{:?}", std::thread::current().id()));
                    evloop::yield_now().await?;
                    Ok::<_, Error>(100 + i)
                })
            })
            .collect();
        // A future bound to B, completed on B.
        let b_fut: Future<u32> = b.handle.create_future();
        // A's own futures.
        let a_fut: Future<u32> = Future::new();
        let a_task = evloop::create_task(async { Ok::<u32, Error>(1) });
        let mut b_tasks = b_tasks.into_iter();
        let outer = gather(vec![
            a_fut.clone(),
            b_tasks.next().unwrap().into(),
            b_fut.clone(),
            a_task.into(),
            b_tasks.next().unwrap().into(),
        ]);
        assert_eq!(
            outer.get_loop().id(),
            a_loop.id(),
            "bound to the caller's loop"
        );
        let callback_thread = new_log();
        {
            let callback_thread = callback_thread.clone();
            outer.add_done_callback(move |_| {
                push(
                    &callback_thread,
                    format!("{:?}", std::thread::current().id()),
                );
            });
        }
        {
            let b_fut = b_fut.clone();
            b.handle
                .call_soon_threadsafe(move || b_fut.set_result(50).unwrap());
        }
        a_fut.set_result(0).unwrap();
        let out = outer.clone().await.unwrap();
        assert_eq!(out, [0, 100, 50, 1, 101]);
        until("outer callback", || !entries(&callback_thread).is_empty()).await;
        assert_eq!(entries(&callback_thread), [format!("{a_thread:?}")]);
        assert_eq!(b_fut.get_loop().id(), b.handle.id());
    });
    let b_thread = format!("{:?}", b.thread_id);
    assert_eq!(entries(&ran_on), [b_thread.clone(), b_thread]);
    b.shutdown();
}

#[test]
fn an_exception_on_b_finishes_the_outer_on_a() {
    let b = LoopB::start();
    common::run_guarded(async {
        let log = new_log();
        let started = Arc::new(AtomicUsize::new(0));
        let pending_on_b = hanging_task_on_b(&b, &log, &started);
        let failing_on_b = b
            .handle
            .spawn(async { Err::<u32, _>(Error::msg("failed on B")) });
        let a_fut: Future<u32> = Future::new();
        let outer = gather(vec![
            a_fut.clone(),
            pending_on_b.future(),
            failing_on_b.into(),
        ]);
        let err = outer.clone().await.unwrap_err();
        assert_eq!(err.to_string(), "failed on B");
        assert!(!outer.cancelled());
        assert!(
            !a_fut.done() && !pending_on_b.done(),
            "the others keep running"
        );
        // Clean up: cancel B's task from A.
        until("B task started", || started.load(Ordering::SeqCst) == 1).await;
        assert!(pending_on_b.cancel());
        until("B task done", || pending_on_b.done()).await;
        assert!(pending_on_b.cancelled());
        a_fut.set_result(0).unwrap();
    });
    b.shutdown();
}

/// G4 across loops: `outer.cancel()` on A cancels B's children (a task suspended on
/// B, and a future bound to B); the tasks see the cancellation on B's thread; the
/// outer on A ends with a `Cancelled` exception once they are done.
#[test]
fn cancelling_the_outer_on_a_cancels_the_children_on_b() {
    let b = LoopB::start();
    let log = new_log();
    common::run_guarded(async {
        let started = Arc::new(AtomicUsize::new(0));
        let b_tasks: Vec<Task<u32>> = (0..3)
            .map(|_| hanging_task_on_b(&b, &log, &started))
            .collect();
        let views: Vec<Future<u32>> = b_tasks.iter().map(|t| t.future()).collect();
        let b_fut: Future<u32> = b.handle.create_future();
        let a_fut: Future<u32> = Future::new();
        until("B tasks started", || started.load(Ordering::SeqCst) == 3).await;
        let mut children: Vec<Future<u32>> = b_tasks.into_iter().map(Into::into).collect();
        children.push(b_fut.clone());
        children.push(a_fut.clone());
        let outer = gather_results(children);
        assert!(outer.cancel_with("cross"));
        assert!(!outer.done());
        assert!(
            b_fut.cancelled(),
            "a plain future bound to B is cancelled at once"
        );
        assert!(a_fut.cancelled());
        let err = outer.clone().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("cross"));
        assert!(!outer.cancelled());
        for v in &views {
            assert!(v.done(), "gather_results waited for every child");
            assert!(v.cancelled());
            assert_eq!(
                cancel_message(&v.result().unwrap_err()).as_deref(),
                Some("cross")
            );
        }
    });
    let b_thread = format!("{:?}", b.thread_id);
    let seen = entries(&log);
    assert_eq!(seen.len(), 3, "{seen:?}");
    for line in &seen {
        assert_eq!(*line, format!("{b_thread} Some(\"cross\")"));
    }
    b.shutdown();
}

/// G4 + T3 across loops: a task on A awaiting a gather of B's tasks is cancelled →
/// every task on B is cancelled.
#[test]
fn cancelling_a_task_on_a_awaiting_a_gather_of_b_tasks() {
    let b = LoopB::start();
    let log = new_log();
    common::run_guarded(async {
        let started = Arc::new(AtomicUsize::new(0));
        let b_tasks: Vec<Task<u32>> = (0..3)
            .map(|_| hanging_task_on_b(&b, &log, &started))
            .collect();
        let views: Vec<Future<u32>> = b_tasks.iter().map(|t| t.future()).collect();
        until("B tasks started", || started.load(Ordering::SeqCst) == 3).await;
        let waiter = evloop::create_task(async move { gather(b_tasks).await });
        common::yield_times(2).await;
        assert!(waiter.cancel_with("from A"));
        let err = waiter.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("from A"));
        assert!(waiter.cancelled());
        until("B tasks done", || views.iter().all(Future::done)).await;
        for v in &views {
            assert!(v.cancelled());
        }
    });
    assert_eq!(entries(&log).len(), 3, "{:?}", entries(&log));
    b.shutdown();
}

/// G2 across loops: a B future cancelled on B is an `Err(Cancelled)` slot on A.
#[test]
fn gather_results_across_loops_holds_each_outcome() {
    let b = LoopB::start();
    common::run_guarded(async {
        let futs: Vec<Future<u32>> = (0..3).map(|_| b.handle.create_future()).collect();
        let a_fut: Future<u32> = Future::new();
        let mut children = futs.clone();
        children.push(a_fut.clone());
        let outer = gather_results(children);
        {
            let futs = futs.clone();
            b.handle.call_soon_threadsafe(move || {
                futs[0].set_result(1).unwrap();
                futs[1].set_exception(Error::msg("on B")).unwrap();
                futs[2].cancel_with("cancelled on B");
            });
        }
        a_fut.set_result(4).unwrap();
        let out = outer.await.unwrap();
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert_eq!(out[1].as_ref().unwrap_err().to_string(), "on B");
        assert_eq!(
            cancel_message(out[2].as_ref().unwrap_err()).as_deref(),
            Some("cancelled on B")
        );
        assert_eq!(*out[3].as_ref().unwrap(), 4);
    });
    b.shutdown();
}

/// Many children of B completed on B's thread while A waits: none is lost.
#[test]
fn many_children_of_b_completed_on_b() {
    const N: u32 = 2000;
    let b = LoopB::start();
    common::run_guarded(async {
        let futs: Vec<Future<u32>> = (0..N).map(|_| b.handle.create_future()).collect();
        let outer = gather(futs.clone());
        b.handle.call_soon_threadsafe(move || {
            for (i, f) in futs.iter().enumerate().rev() {
                f.set_result(i as u32).unwrap();
            }
        });
        let out = outer.await.unwrap();
        assert_eq!(out, (0..N).collect::<Vec<_>>());
    });
    b.shutdown();
}
