//! NEW API — `#[run_on_executor]` on methods returning `Result` (SPEC E5, Tornado's
//! behaviour): a method whose return type is spelled as a path ending in `Result` with
//! type arguments — `Result<T, E>`, `std::io::Result<T>`, `Result<T, evloop::Error>`,
//! `std::result::Result<T, E>` — with `E: Into<evloop::Error>`, returns
//! `evloop::Future<T>`: `Ok(v)` becomes the future's result and `Err(e)` its exception.
//! Any other return type `R` (also `std::fmt::Result`, which has no type arguments)
//! still gives `evloop::Future<R>`.
//!
//! This file does not compile before that API exists (the other test files do not
//! depend on it).
//!
//! Covers:
//! * the `Ok` path, for every spelling (and `Result<(), E>` → `Future<()>`);
//! * the `Err` path: the exception downcasts to the original `io::Error` with its kind
//!   and message (a `ParseIntError` likewise; an `evloop::Error` is stored as is);
//! * a panicking body still fails the future with `Error::Panic`;
//! * `gather` of two such futures fails fast with the first error while the other job
//!   still runs (and later finishes with its value);
//! * `chain_future(&m(), &target)` into a `Future<u32>` type-checks and copies the
//!   value, or the error;
//! * `-> u32` still gives `Future<u32>`; `-> std::fmt::Result` gives
//!   `Future<std::fmt::Result>`;
//! * calling such a method off a loop thread panics with a message naming
//!   `#[run_on_executor]`, the method and the missing loop.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use evloop::{Error, Executor, Future, chain_future, gather, run_on_executor};

/// A Tornado-style service: executors as fields.
#[derive(Clone)]
struct Store {
    executor: Executor,
    /// A second pool, so a blocked job does not hold up the others.
    pool: Executor,
}

impl Store {
    fn new() -> Store {
        Store {
            executor: Executor::new(2),
            pool: Executor::new(1),
        }
    }

    fn shutdown(&self) {
        self.executor.shutdown(true);
        self.pool.shutdown(true);
    }

    #[run_on_executor]
    fn double(&self, n: u32) -> Result<u32, io::Error> {
        Ok(n * 2)
    }

    #[run_on_executor]
    fn lookup(&self, name: String) -> std::io::Result<u32> {
        if name == "answer" {
            return Ok(42);
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such key: {name}"),
        ))
    }

    #[run_on_executor]
    fn checked(&self, fail: bool) -> Result<u32, evloop::Error> {
        if fail {
            return Err(Error::msg("evloop-error-marker"));
        }
        Ok(1)
    }

    /// `?` inside the body is the body's own.
    #[run_on_executor]
    fn parse(&self, text: String) -> std::result::Result<u32, std::num::ParseIntError> {
        let n: u32 = text.trim().parse()?;
        Ok(n + 1)
    }

    #[run_on_executor]
    fn touch(&self) -> Result<(), io::Error> {
        Ok(())
    }

    /// Blocks its pool's only thread until `gate` says go.
    #[run_on_executor(executor = "pool")]
    fn after(&self, gate: mpsc::Receiver<()>, value: u32) -> Result<u32, io::Error> {
        gate.recv().map_err(io::Error::other)?;
        Ok(value)
    }

    #[run_on_executor]
    fn explode(&self, msg: String) -> Result<u8, io::Error> {
        panic!("{msg}")
    }

    #[run_on_executor]
    fn plain(&self) -> u32 {
        5
    }

    /// `fmt::Result` has no type arguments: not treated as `Result<T, E>`.
    #[run_on_executor]
    fn formatted(&self) -> std::fmt::Result {
        Ok(())
    }
}

/// `evloop::run` with a bound: a job that never completes fails after 30 s.
fn run_bounded<F: std::future::Future>(fut: F) -> F::Output {
    evloop::run(async move {
        evloop::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("the test's loop work finished within 30 s")
    })
}

fn io_kind(err: &Error) -> Option<io::ErrorKind> {
    err.downcast_ref::<io::Error>().map(io::Error::kind)
}

#[test]
fn ok_values_become_the_futures_result_for_every_spelling() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let doubled: Future<u32> = s.double(21);
        assert_eq!(doubled.await.unwrap(), 42);
        let found: Future<u32> = s.lookup("answer".into());
        assert_eq!(found.await.unwrap(), 42);
        let checked: Future<u32> = s.checked(false);
        assert_eq!(checked.await.unwrap(), 1);
        let parsed: Future<u32> = s.parse(" 41 ".into());
        assert_eq!(parsed.await.unwrap(), 42);
        let touched: Future<()> = s.touch();
        touched.await.unwrap();
    });
    store.shutdown();
}

/// `Err(e)` is the future's exception: the original error, downcastable, with its kind
/// and message; an `evloop::Error` is stored as it is.
#[test]
fn err_values_become_the_futures_exception() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let missing: Future<u32> = s.lookup("nothing".into());
        let err = missing.clone().await.unwrap_err();
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err:?}");
        assert!(err.to_string().contains("no such key: nothing"), "{err}");
        assert!(!missing.cancelled());
        let stored = missing.exception().unwrap().expect("an exception");
        assert_eq!(io_kind(&stored), Some(io::ErrorKind::NotFound));

        let err = s.parse("x".into()).await.unwrap_err();
        assert!(
            err.downcast_ref::<std::num::ParseIntError>().is_some(),
            "{err:?}"
        );

        let err = s.checked(true).await.unwrap_err();
        assert_eq!(err.to_string(), "evloop-error-marker");
        assert!(!err.is_cancelled() && !err.is_panic(), "{err:?}");
    });
    store.shutdown();
}

#[test]
fn a_panicking_result_method_fails_with_the_panic() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let err = s.explode("result-method-panic".into()).await.unwrap_err();
        match err {
            Error::Panic(p) => assert_eq!(p.message(), "result-method-panic"),
            other => panic!("expected Error::Panic, got {other:?}"),
        }
        assert_eq!(s.double(1).await.unwrap(), 2, "the service still works");
    });
    store.shutdown();
}

/// G1 with `Result` methods: the first error fails the gather at once, while the other
/// job is still blocked on its pool; that job then finishes with its value.
#[test]
fn gather_of_result_methods_fails_fast_with_the_first_error() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let (go, gate) = mpsc::channel::<()>();
        let slow: Future<u32> = s.after(gate, 7);
        let failing: Future<u32> = s.lookup("gathered".into());
        let err = gather(vec![slow.clone(), failing]).await.unwrap_err();
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err:?}");
        assert!(err.to_string().contains("gathered"), "{err}");
        assert!(!slow.done(), "the other job is still running");
        go.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), 7);
    });
    store.shutdown();
}

/// The futures are plain `Future<T>`s: `chain_future` into a `Future<u32>` type-checks
/// and copies the value, or the exception.
#[test]
fn chain_future_from_a_result_method_into_a_future_of_the_value() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let target: Future<u32> = Future::new();
        chain_future(&s.double(4), &target);
        assert_eq!(target.await.unwrap(), 8);

        let failed: Future<u32> = Future::new();
        chain_future(&s.lookup("chained".into()), &failed);
        let err = failed.await.unwrap_err();
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err:?}");
    });
    store.shutdown();
}

/// Return types that are not `Result<T, E>` keep the old rule: `R` → `Future<R>`.
#[test]
fn other_return_types_still_give_a_future_of_that_type() {
    let store = Store::new();
    let s = store.clone();
    run_bounded(async move {
        let plain: Future<u32> = s.plain();
        assert_eq!(plain.await.unwrap(), 5);
        let formatted: Future<std::fmt::Result> = s.formatted();
        assert_eq!(formatted.await.unwrap(), Ok(()));
    });
    store.shutdown();
}

/// Off a loop thread there is no loop to bind the future to: the call panics with a
/// message naming the attribute, the method and the missing loop.
#[test]
fn calling_a_result_method_off_a_loop_thread_panics_with_a_clear_message() {
    let store = Store::new();
    let s = store.clone();
    let payload = std::thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| s.double(1))).expect_err("no running loop")
    })
    .join()
    .expect("the panic was caught on the thread");
    let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string panic payload>")
    };
    for needle in ["#[run_on_executor]", "double", "loop"] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    store.shutdown();
}
