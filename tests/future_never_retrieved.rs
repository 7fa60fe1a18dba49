//! F10: an exception nobody looked at is reported to the loop's exception handler
//! when the last handle of its future (or task) goes away — and only then.
//!
//! A future is reported when its last `Future` handle is dropped; a task when its
//! last reference goes, which may be the loop's own (released when the task
//! finishes). The tests drop their handles explicitly and let the loop iterate.

mod common;

use std::sync::{Arc, Mutex};

use evloop::{Error, ExceptionContext, ExceptionSource, Future, Runtime};

type Reports = Arc<Mutex<Vec<ExceptionContext>>>;

fn reports_of(reports: &Reports) -> Vec<ExceptionContext> {
    reports.lock().unwrap().clone()
}

/// Lets the loop iterate until `reports` holds `n` entries (at most 100 iterations).
async fn until_reported(reports: &Reports, n: usize) {
    for _ in 0..100 {
        if reports.lock().unwrap().len() >= n {
            return;
        }
        evloop::yield_now().await.unwrap();
    }
}

fn assert_future_report(ctx: &ExceptionContext, error_text: &str) {
    assert!(
        ctx.message
            .starts_with("Future exception was never retrieved"),
        "{}",
        ctx.message
    );
    assert_eq!(ctx.source, ExceptionSource::Future);
    let err = ctx.exception.as_ref().expect("the error is reported");
    assert_eq!(err.to_string(), error_text);
}

#[test]
fn unretrieved_future_exception_is_reported_on_drop() {
    let rt = Runtime::builder().debug(true).build().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let fut: Future<u8> = Future::new();
        let clone = fut.clone();
        fut.set_exception(Error::msg("lost-future")).unwrap();
        drop(fut);
        assert!(
            reports_of(&reports).is_empty(),
            "reported while a handle was still alive"
        );
        drop(clone);
        until_reported(&reports, 1).await;
    });
    let got = reports_of(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_future_report(&got[0], "lost-future");
    // L10: the creation site is shown (debug mode).
    assert!(
        got[0].message.contains("future_never_retrieved.rs"),
        "{}",
        got[0].message
    );
    drop(rt);
    assert_eq!(reports_of(&reports).len(), 1, "reported exactly once");
}

#[test]
fn unretrieved_exception_set_and_dropped_off_the_loop_is_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    let fut: Future<u8> = rt.handle().create_future();
    std::thread::spawn(move || {
        fut.set_exception(Error::msg("lost-on-a-worker")).unwrap();
        drop(fut);
    })
    .join()
    .unwrap();
    rt.block_on(common::yield_times(2));
    drop(rt);
    let got = reports_of(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_future_report(&got[0], "lost-on-a-worker");
}

#[test]
fn a_done_callback_that_does_not_look_does_not_retrieve() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let fut: Future<u8> = Future::new();
        fut.add_done_callback(|f| assert!(f.done()));
        fut.set_exception(Error::msg("seen-by-nobody")).unwrap();
        drop(fut);
        until_reported(&reports, 1).await;
    });
    drop(rt);
    let got = reports_of(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_future_report(&got[0], "seen-by-nobody");
}

#[test]
fn retrieved_exceptions_are_not_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let by_result: Future<u8> = Future::new();
        by_result.set_exception(Error::msg("a")).unwrap();
        assert!(by_result.result().is_err());

        let by_exception: Future<u8> = Future::new();
        by_exception.set_exception(Error::msg("b")).unwrap();
        assert!(by_exception.exception().unwrap().is_some());

        let by_await: Future<u8> = Future::new();
        by_await.set_exception(Error::msg("c")).unwrap();
        assert!(by_await.clone().await.is_err());

        // asyncio: cancel() clears the flag first, even though it returns False.
        let by_cancel: Future<u8> = Future::new();
        by_cancel.set_exception(Error::msg("d")).unwrap();
        assert!(!by_cancel.cancel());

        let by_callback: Future<u8> = Future::new();
        by_callback.add_done_callback(|f| {
            let _ = f.exception();
        });
        by_callback.set_exception(Error::msg("e")).unwrap();

        drop((by_result, by_exception, by_await, by_cancel, by_callback));
        common::yield_times(3).await;
    });
    drop(rt);
    assert!(
        reports_of(&reports).is_empty(),
        "{:?}",
        reports_of(&reports)
    );
}

#[test]
fn results_cancellations_and_pending_futures_are_not_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let with_result: Future<u8> = Future::new();
        with_result.set_result(1).unwrap();
        let cancelled: Future<u8> = Future::new();
        cancelled.cancel_with("not an exception");
        let pending: Future<u8> = Future::new();
        drop((with_result, cancelled, pending));
        common::yield_times(3).await;
    });
    drop(rt);
    assert!(
        reports_of(&reports).is_empty(),
        "{:?}",
        reports_of(&reports)
    );
}

fn assert_task_report(ctx: &ExceptionContext, task_id: u64, name: &str, error_text: &str) {
    assert!(
        ctx.message
            .starts_with("Task exception was never retrieved"),
        "{}",
        ctx.message
    );
    assert!(
        matches!(
            &ctx.source,
            ExceptionSource::Task { id, name: Some(n), .. } if *id == task_id && n == name
        ),
        "{:?}",
        ctx.source
    );
    let err = ctx.exception.as_ref().expect("the error is reported");
    assert!(err.to_string().contains(error_text), "{err}");
}

#[test]
fn unretrieved_task_exception_is_reported_when_the_task_goes() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    let id = rt.block_on(async {
        let task = evloop::create_task(async { Err::<u8, _>(Error::msg("task-lost")) });
        task.set_name("loser");
        let id = task.id();
        // Our handle goes first; the loop's reference goes when the task finishes.
        drop(task);
        until_reported(&reports, 1).await;
        id
    });
    let got = reports_of(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_task_report(&got[0], id, "loser", "task-lost");
    drop(rt);
    assert_eq!(reports_of(&reports).len(), 1);
}

async fn yield_then_panic() -> Result<u8, Error> {
    evloop::yield_now().await?;
    panic!("panicked-and-lost")
}

#[test]
fn task_reported_when_its_last_handle_is_dropped_after_it_finished() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let task = evloop::create_task(yield_then_panic());
        task.set_name("panicker");
        let id = task.id();
        let view = task.future();
        while !task.done() {
            evloop::yield_now().await.unwrap();
        }
        common::yield_times(2).await;
        assert!(reports_of(&reports).is_empty(), "handles are still alive");
        drop(task);
        assert!(reports_of(&reports).is_empty(), "the future view is alive");
        drop(view);
        let got = reports_of(&reports);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_task_report(&got[0], id, "panicker", "panicked-and-lost");
        assert!(got[0].exception.as_ref().unwrap().is_panic());
    });
}

#[test]
fn retrieved_or_cancelled_tasks_are_not_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let awaited = evloop::create_task(async { Err::<u8, _>(Error::msg("awaited")) });
        assert!(awaited.await.is_err());

        let read = evloop::create_task(async { Err::<u8, _>(Error::msg("read")) });
        let cancel_after = evloop::create_task(async { Err::<u8, _>(Error::msg("cancel")) });
        let cancelled = evloop::create_task(async {
            evloop::time::sleep(std::time::Duration::from_secs(3600)).await?;
            Err::<u8, _>(Error::msg("never"))
        });
        let fine = evloop::create_task(async { Ok::<u8, Error>(1) });
        common::yield_times(2).await;
        assert!(read.exception().unwrap().is_some());
        assert!(!cancel_after.cancel(), "done already");
        assert!(cancelled.cancel());
        common::yield_times(2).await;
        assert!(cancelled.cancelled());
        assert!(fine.done());
        drop((read, cancel_after, cancelled, fine));
        common::yield_times(3).await;
    });
    drop(rt);
    assert!(
        reports_of(&reports).is_empty(),
        "{:?}",
        reports_of(&reports)
    );
}

/// L10: a task's report names the line of the `create_task` call that made it (the
/// creation site is recorded with `#[track_caller]` through `create_task`).
#[test]
fn a_task_report_shows_where_the_task_was_created() {
    let rt = Runtime::builder().debug(true).build().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    let line = rt.block_on(async {
        let line = line!() + 1;
        let task = evloop::create_task(async { Err::<u8, _>(Error::msg("where-from")) });
        drop(task);
        until_reported(&reports, 1).await;
        line
    });
    let got = reports_of(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    let site = format!("future_never_retrieved.rs:{line}:");
    assert!(
        got[0].message.contains(&site),
        "{} lacks {site}",
        got[0].message
    );
}
