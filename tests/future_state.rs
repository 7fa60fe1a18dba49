//! The state machine of `Future<T>` (SPEC §3, F1–F6, F9, F11) and the error
//! conversions of §3 "Errors": what `done()`, `cancelled()`, `result()`, `exception()`,
//! `set_*` and `cancel*` report in each of the four states, binding to a loop, identity,
//! and `?` inside tasks.

mod common;

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use evloop::{CancelledError, Error, Future, InvalidStateError, LoopHandle, Runtime};

fn cancelled_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

#[test]
fn pending_future_reports_invalid_state() {
    common::run_guarded(async {
        let fut: Future<u32> = Future::new();
        assert!(!fut.done());
        assert!(!fut.cancelled());
        let err = fut.result().unwrap_err();
        assert!(err.is_invalid_state(), "result() while pending: {err:?}");
        let err = fut.exception().unwrap_err();
        assert!(err.is_invalid_state(), "exception() while pending: {err:?}");
    });
}

#[test]
fn future_with_a_result() {
    common::run_guarded(async {
        let fut: Future<u32> = Future::new();
        fut.set_result(7).unwrap();
        assert!(fut.done());
        assert!(!fut.cancelled());
        assert_eq!(fut.result().unwrap(), 7);
        assert_eq!(fut.result().unwrap(), 7, "result() can be read again");
        assert!(fut.exception().unwrap().is_none());

        // F3: a done future refuses a second outcome; the first one stays.
        let err: InvalidStateError = fut.set_result(8).unwrap_err();
        assert!(!err.message().is_empty());
        assert!(fut.set_exception(Error::msg("late")).is_err());
        // F6: cancel() is false once done.
        assert!(!fut.cancel());
        assert!(!fut.cancel_with("too late"));
        assert!(!fut.cancelled());
        assert_eq!(fut.result().unwrap(), 7);
        assert_eq!(fut.clone().await.unwrap(), 7);
    });
}

#[derive(Debug)]
struct DiskFull(u32);

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "disk {} is full", self.0)
    }
}

impl std::error::Error for DiskFull {}

#[test]
fn future_with_an_exception() {
    common::run_guarded(async {
        let fut: Future<u32> = Future::new();
        fut.set_exception(DiskFull(3)).unwrap();
        assert!(fut.done());
        assert!(!fut.cancelled());
        let err = fut.result().unwrap_err();
        assert_eq!(err.downcast_ref::<DiskFull>().map(|d| d.0), Some(3));
        assert_eq!(err.to_string(), "disk 3 is full");
        let exc = fut.exception().unwrap().expect("an exception");
        assert_eq!(exc.downcast_ref::<DiskFull>().map(|d| d.0), Some(3));

        assert!(fut.set_result(1).is_err());
        assert!(fut.set_exception(Error::msg("second")).is_err());
        assert!(!fut.cancel());
        assert!(!fut.cancelled());
        let err = fut.clone().await.unwrap_err();
        assert!(err.downcast_ref::<DiskFull>().is_some());
        assert_eq!(fut.result().unwrap_err().to_string(), "disk 3 is full");
    });
}

#[test]
fn cancelled_future() {
    common::run_guarded(async {
        let fut: Future<u32> = Future::new();
        assert!(fut.cancel());
        assert!(fut.done());
        assert!(fut.cancelled());
        let err = fut.result().unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(cancelled_message(&err), None);
        assert!(fut.exception().unwrap_err().is_cancelled());

        // F3: "Err when already done (cancelled included)".
        assert!(fut.set_result(1).is_err());
        assert!(fut.set_exception(Error::msg("x")).is_err());
        assert!(!fut.cancel(), "cancel() is false once cancelled");
        assert!(!fut.cancel_with("again"));
        assert_eq!(
            cancelled_message(&fut.result().unwrap_err()),
            None,
            "a second cancel_with must not replace the (absent) message"
        );
        assert!(fut.clone().await.unwrap_err().is_cancelled());
    });
}

#[test]
fn cancel_message_is_carried_by_every_later_error() {
    common::run_guarded(async {
        let fut: Future<String> = Future::new();
        assert!(fut.cancel_with("shutting down"));
        let msg = Some("shutting down".to_string());
        assert_eq!(cancelled_message(&fut.result().unwrap_err()), msg);
        assert_eq!(cancelled_message(&fut.exception().unwrap_err()), msg);
        assert_eq!(cancelled_message(&fut.clone().await.unwrap_err()), msg);
        assert_eq!(
            fut.result().unwrap_err().to_string(),
            "cancelled: shutting down"
        );
        // The first message wins.
        assert!(!fut.cancel_with("other"));
        assert_eq!(cancelled_message(&fut.result().unwrap_err()), msg);
    });
}

#[test]
fn cancelled_error_set_as_exception_is_not_a_cancellation() {
    common::run_guarded(async {
        let fut: Future<u8> = Future::new();
        fut.set_exception(CancelledError::new(Some("from gather".into())))
            .unwrap();
        assert!(fut.done());
        assert!(!fut.cancelled(), "an exception, not a cancellation");
        assert_eq!(
            cancelled_message(&fut.result().unwrap_err()),
            Some("from gather".to_string())
        );
        // exception() returns it as an exception (Ok(Some)), not as Err(Cancelled).
        let exc = fut.exception().unwrap().expect("an exception");
        assert!(exc.is_cancelled());
        assert!(!fut.cancel());
        assert!(fut.clone().await.unwrap_err().is_cancelled());
    });
}

#[test]
fn awaiting_a_done_future_does_not_suspend() {
    let rt = Runtime::new().unwrap();
    let fut: Future<u8> = rt.handle().create_future();
    fut.set_result(4).unwrap();
    // Polled once with a no-op waker, off the loop: ready at once.
    let mut cx = Context::from_waker(Waker::noop());
    let mut awaiting = pin!(fut.clone());
    assert!(matches!(
        awaiting.as_mut().poll(&mut cx),
        Poll::Ready(Ok(4))
    ));

    let pending: Future<u8> = rt.handle().create_future();
    let mut awaiting = pin!(pending.clone());
    assert!(awaiting.as_mut().poll(&mut cx).is_pending());
    pending.set_result(5).unwrap();
    assert!(matches!(
        awaiting.as_mut().poll(&mut cx),
        Poll::Ready(Ok(5))
    ));
}

#[test]
fn future_new_off_a_loop_panics_with_a_hint() {
    let payload = catch_unwind(|| Future::<u8>::new()).expect_err("Future::new() off a loop");
    let msg = common::panic_message(payload.as_ref());
    assert!(msg.contains("no running event loop"), "{msg}");
    assert!(msg.contains("Future::with_loop"), "{msg}");
    assert!(msg.contains("create_future"), "{msg}");

    // Also on a thread that owns a runtime that is not running.
    let rt = Runtime::new().unwrap();
    let payload = catch_unwind(AssertUnwindSafe(Future::<u8>::new)).expect_err("not running");
    assert!(common::panic_message(payload.as_ref()).contains("no running event loop"));
    drop(rt);
}

#[test]
fn futures_bound_from_another_thread() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let (a, b) = {
        let loop_ = loop_.clone();
        std::thread::spawn(move || {
            let a: Future<u32> = Future::with_loop(&loop_);
            let b: Future<u32> = loop_.create_future();
            assert_eq!(a.get_loop(), loop_);
            assert_eq!(b.get_loop(), loop_);
            a.set_result(1).unwrap();
            (a, b)
        })
        .join()
        .unwrap()
    };
    let completer = {
        let b = b.clone();
        std::thread::spawn(move || b.set_result(2).unwrap())
    };
    let sum = rt.block_on(async { a.await.unwrap() + b.await.unwrap() });
    completer.join().unwrap();
    assert_eq!(sum, 3);
}

#[test]
fn get_loop_names_the_binding_loop() {
    let rt = Runtime::new().unwrap();
    let other = Runtime::new().unwrap();
    let (mine, current) = rt.block_on(async {
        let fut: Future<()> = Future::new();
        (fut.get_loop(), LoopHandle::current())
    });
    assert_eq!(mine, rt.handle());
    assert_eq!(mine, current);
    assert_ne!(mine, other.handle());
    let foreign: Future<()> = other.handle().create_future();
    assert_eq!(foreign.get_loop(), other.handle());
}

#[test]
fn identity_equality_and_hash() {
    let rt = Runtime::new().unwrap();
    let a: Future<u8> = rt.handle().create_future();
    let a2 = a.clone();
    let b: Future<u8> = rt.handle().create_future();
    assert_eq!(a, a2);
    assert_ne!(a, b);
    let state = RandomState::new();
    assert_eq!(state.hash_one(&a), state.hash_one(&a2));

    // Equality does not depend on the state: finishing one handle changes neither.
    b.set_result(1).unwrap();
    a.set_result(1).unwrap();
    assert_ne!(a, b, "same value, different futures");
    assert_eq!(a, a2);

    let mut set = HashSet::new();
    assert!(set.insert(a.clone()));
    assert!(!set.insert(a2), "a clone is the same future");
    assert!(set.insert(b.clone()));
    assert_eq!(set.len(), 2);
    assert!(set.contains(&a) && set.contains(&b));
}

#[test]
fn debug_shows_the_state() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let pending: Future<u8> = loop_.create_future();
    let done: Future<u8> = loop_.create_future();
    done.set_result(1).unwrap();
    let failed: Future<u8> = loop_.create_future();
    failed.set_exception(Error::msg("x")).unwrap();
    let cancelled: Future<u8> = loop_.create_future();
    cancelled.cancel();
    let show = |f: &Future<u8>| format!("{f:?}");
    assert!(show(&pending).contains("pending"), "{}", show(&pending));
    assert!(show(&done).contains("finished"), "{}", show(&done));
    assert!(show(&failed).contains("finished"), "{}", show(&failed));
    assert!(
        show(&cancelled).contains("cancelled"),
        "{}",
        show(&cancelled)
    );
    assert!(!show(&pending).contains("finished"));
    let _ = failed.exception();
}

#[test]
fn question_mark_on_io_error_in_a_task_gives_a_downcastable_exception() {
    let err = common::run_guarded(async {
        let task = evloop::create_task(async {
            let failing: io::Result<()> =
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset"));
            failing?;
            Ok::<u8, Error>(1)
        });
        task.await.unwrap_err()
    });
    assert!(
        matches!(err, Error::Exception(_)),
        "an io::Error is an Error::Exception: {err:?}"
    );
    let io = err
        .downcast_ref::<io::Error>()
        .expect("downcasts to io::Error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(err.to_string(), "peer reset");
    // And back into an io::Error, keeping the kind.
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn cancelled_error_inside_io_error_converts_to_cancelled() {
    let err = Error::from(io::Error::other(CancelledError::new(Some("io".into()))));
    assert_eq!(cancelled_message(&err), Some("io".to_string()));

    // In a task: `?` on such an io::Error ends the task cancelled (a cancellation, as
    // an I/O operation interrupted by T3 reports it).
    let rt = Runtime::new().unwrap();
    let (cancelled, message) = rt.block_on(async {
        let task = evloop::create_task(async {
            let interrupted: io::Result<()> = Err(io::Error::other(CancelledError::new(Some(
                "read interrupted".into(),
            ))));
            interrupted?;
            Ok::<(), Error>(())
        });
        let err = task.future().await.unwrap_err();
        (task.cancelled(), cancelled_message(&err))
    });
    assert!(
        cancelled,
        "a CancelledError propagated with ? ends the task cancelled"
    );
    assert_eq!(message.as_deref(), Some("read interrupted"));

    // Error -> io::Error -> Error round trip keeps the cancellation.
    let back = Error::from(io::Error::from(Error::Cancelled(CancelledError::new(None))));
    assert!(back.is_cancelled());
    // And Box<dyn Error>.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Error::msg("boxed").into();
    assert_eq!(boxed.to_string(), "boxed");
}

#[test]
fn futures_are_send_and_sync_for_send_values() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Future<std::cell::Cell<u8>>>();
    send_sync::<Future<Vec<String>>>();
    send_sync::<Error>();
}
