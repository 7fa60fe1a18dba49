//! The loop's pool of task-cell allocations (`task::pool`, issue 17) must be invisible
//! to users: reusing a finished task's memory must not delay or skip any destructor,
//! nor any report a dropped cell makes, and a cell whose last reference is dropped
//! elsewhere (another thread, a handle kept past the loop) is freed as before. Each test
//! pins, by order of events, a case where a wrong recycle would be observable.

mod common;

use common::{DropSpy, capture_exceptions, yield_times};
use evloop::{Error, Runtime, create_task};

/// A finished task's result that nobody took is dropped exactly when the last handle is
/// dropped — the recycle runs the cell's destructors first, it does not keep the value
/// in the pooled memory until a later task reuses it.
#[test]
fn an_untaken_result_is_dropped_when_the_last_handle_is() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (spy, probe) = DropSpy::new();
        let task = create_task(async move { Ok(spy) });
        yield_times(2).await;
        assert!(task.done());
        assert_eq!(probe.drops(), 0, "the result lives while the handle does");
        drop(task);
        assert_eq!(probe.drops(), 1, "dropped with the last handle, not later");
        // The next task of the same type reuses the memory and starts clean.
        let (spy2, probe2) = DropSpy::new();
        let again = create_task(async move { Ok(spy2) });
        assert!(!again.done(), "a reused cell is a new, pending task");
        let value = again.await.unwrap();
        assert_eq!(probe2.drops(), 0);
        drop(value);
        assert_eq!(probe2.drops(), 1);
        assert_eq!(probe.drops(), 1, "the first value is never dropped twice");
    });
}

/// F10 still holds for a recycled cell: a task whose exception nobody retrieved is
/// reported when its last reference goes, whichever side drops last (the loop after
/// the handle, or the handle after the loop).
#[test]
fn never_retrieved_exceptions_are_reported_from_recycled_cells() {
    let rt = Runtime::new().unwrap();
    let seen = capture_exceptions(&rt.handle());
    rt.block_on(async {
        // The handle goes first: the loop's release is the last reference.
        drop(create_task(async {
            Err::<(), _>(Error::msg("pool-marker-loop-last"))
        }));
        yield_times(3).await;
        // The loop releases first: dropping the handle is the last reference.
        let task = create_task(async { Err::<(), _>(Error::msg("pool-marker-handle-last")) });
        yield_times(3).await;
        assert!(task.done());
        drop(task);
        // A third task of the same shape reuses a cell and reports its own failure.
        drop(create_task(async {
            Err::<(), _>(Error::msg("pool-marker-reused"))
        }));
        yield_times(3).await;
    });
    let messages: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|ctx| format!("{ctx:?}"))
        .collect();
    for marker in [
        "pool-marker-loop-last",
        "pool-marker-handle-last",
        "pool-marker-reused",
    ] {
        assert_eq!(
            messages.iter().filter(|m| m.contains(marker)).count(),
            1,
            "{marker} reported exactly once in {messages:?}"
        );
    }
}

/// A handle dropped on another thread is not the loop's to recycle: the value is
/// dropped on that thread, at that moment, and the loop keeps working.
#[test]
fn a_last_handle_dropped_on_another_thread_frees_as_before() {
    let rt = Runtime::new().unwrap();
    let (handle, probe) = rt.block_on(async {
        let (spy, probe) = DropSpy::new();
        let task = create_task(async move { Ok(spy) });
        yield_times(2).await;
        (task, probe)
    });
    let worker = std::thread::spawn(move || {
        drop(handle);
        std::thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(probe.dropped_on(), Some(worker));
    assert_eq!(
        rt.block_on(async { create_task(async { Ok(5) }).await })
            .unwrap(),
        5
    );
}

/// Plain futures share the pool: a future's value is dropped with its last handle, and
/// a reused future cell starts pending with no trace of the old value or callbacks.
#[test]
fn a_reused_future_cell_starts_pending_and_clean() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (spy, probe) = DropSpy::new();
        let fut = evloop::Future::<std::sync::Arc<DropSpy>>::new();
        fut.add_done_callback(|_| {});
        fut.set_result(std::sync::Arc::new(spy)).unwrap();
        yield_times(2).await; // the done-callback ran and let go of its handle
        assert_eq!(probe.drops(), 0);
        drop(fut);
        assert_eq!(probe.drops(), 1, "dropped with the last handle");
        let next = evloop::Future::<std::sync::Arc<DropSpy>>::new();
        assert!(!next.done(), "a reused cell is pending");
        assert!(next.result().is_err(), "and holds no old value");
    });
}

/// Tasks whose last reference outlives the loop (a handle kept after the runtime is
/// dropped) are freed normally when it goes.
#[test]
fn a_handle_that_outlives_its_runtime_is_freed_normally() {
    let (handle, probe) = {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let (spy, probe) = DropSpy::new();
            let task = create_task(async move { Ok(spy) });
            yield_times(2).await;
            (task, probe)
        })
    };
    assert_eq!(probe.drops(), 0);
    drop(handle);
    assert_eq!(probe.drops(), 1);
}
