//! The procedural macros (SPEC E5; R1 through `#[evloop::test]`):
//! `#[run_on_executor]` in its three spellings on methods of a `Clone` service, and
//! `#[evloop::test]` with builder options, return types and `#[should_panic]`.
//!
//! `#[evloop::main]` shares its expansion with `#[evloop::test]` (only the
//! `#[test]` attribute differs); a test binary cannot have a second `main`, so it is
//! covered by `tests/ui/pass_*.rs` through trybuild (see `macros_compile_fail.rs`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};

use evloop::JobHandle;
use evloop::{Error, Executor, Future, LoopHandle, run_on_executor};

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_string()
}

fn assert_pool_thread_name(name: &str) {
    let n = name
        .strip_prefix("evloop-blocking-")
        .unwrap_or_else(|| panic!("ran on {name:?}, expected evloop-blocking-N"));
    assert!(n.parse::<u64>().is_ok(), "ran on {name:?}");
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

/// A service in Tornado's style: executors as fields, shared state behind an `Arc`.
struct Service {
    executor: Executor,
    pool: Executor,
    /// Shared by every clone: proves the body sees the same underlying data.
    events: Arc<Mutex<Vec<String>>>,
    /// How many times this value (or a clone of it) was cloned.
    clones: Arc<AtomicUsize>,
    /// A plain per-value field, copied into clones.
    label: String,
}

impl Clone for Service {
    fn clone(&self) -> Service {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Service {
            executor: self.executor.clone(),
            pool: self.pool.clone(),
            events: self.events.clone(),
            clones: self.clones.clone(),
            label: self.label.clone(),
        }
    }
}

impl Service {
    fn new(label: &str) -> Service {
        Service {
            executor: Executor::new(2),
            pool: Executor::new(1),
            events: Arc::new(Mutex::new(Vec::new())),
            clones: Arc::new(AtomicUsize::new(0)),
            label: label.to_string(),
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn shutdown(&self) {
        self.executor.shutdown(true);
        self.pool.shutdown(true);
    }

    /// Where the body ran, and what it saw of `self`.
    #[run_on_executor]
    fn whereabouts(&self) -> (String, ThreadId, String, usize) {
        self.events
            .lock()
            .unwrap()
            .push(format!("whereabouts of {}", self.label));
        (
            thread_name(),
            thread::current().id(),
            self.label.clone(),
            Arc::as_ptr(&self.events) as usize,
        )
    }

    #[run_on_executor()]
    fn add(&self, a: u32, b: u32) -> u32 {
        a + b
    }

    /// Runs on `self.pool` (a pool of one thread).
    #[run_on_executor(executor = "pool")]
    fn on_pool(&self) -> ThreadId {
        thread::current().id()
    }

    #[run_on_executor]
    fn executor_thread(&self) -> ThreadId {
        thread::current().id()
    }

    /// Arguments of several kinds: a tuple pattern, a `mut` binding, a struct pattern,
    /// `_` and an underscore name.
    #[run_on_executor(executor = "pool")]
    fn patterns(
        &self,
        (a, b): (i64, i64),
        mut acc: Vec<i64>,
        Point { x, y }: Point,
        _: u8,
        _ignored: String,
    ) -> Vec<i64> {
        acc.push(a * b);
        acc.push(x + y);
        acc
    }

    /// Unit return type: the method returns `Future<()>`.
    #[run_on_executor]
    fn record(&self, what: String) {
        self.events.lock().unwrap().push(what);
    }

    /// `return` and `?` inside the body are the body's own. A `Result` body gives
    /// `Future<u32>`.
    #[run_on_executor]
    fn parse_positive(&self, text: String) -> Result<u32, std::num::ParseIntError> {
        let n: i64 = text.trim().parse()?;
        if n <= 0 {
            return Ok(0);
        }
        Ok(n as u32)
    }

    /// The body may call other methods of `Self`.
    #[run_on_executor]
    fn describe(&self, n: u32) -> String {
        format!("{}:{}", self.label, self.helper(n))
    }

    fn helper(&self, n: u32) -> u32 {
        n * 10
    }

    /// Attributes on the method are kept (a `#[deprecated]` method would warn at the
    /// call site; see tests/ui for the compile-time checks).
    #[run_on_executor]
    #[inline]
    #[must_use = "the returned future carries the result"]
    pub fn public_method(&self) -> &'static str {
        "public"
    }

    /// Panics become the future's exception, as with `Executor::submit`.
    #[run_on_executor]
    fn explode(&self, msg: String) -> u8 {
        panic!("{msg}")
    }
}

#[test]
fn the_body_runs_on_a_pool_thread_with_a_clone_of_self() {
    let svc = Service::new("alpha");
    let s = svc.clone();
    let clones_before = svc.clones.load(Ordering::SeqCst);
    let (name, id, label, events_ptr) = common::run_guarded(async move {
        let fut: Future<(String, ThreadId, String, usize)> = s.whereabouts();
        assert_eq!(
            fut.get_loop(),
            LoopHandle::current(),
            "bound to the calling loop"
        );
        fut.await.unwrap()
    });
    assert_pool_thread_name(&name);
    assert_ne!(id, thread::current().id());
    assert_eq!(label, "alpha");
    assert_eq!(
        events_ptr,
        Arc::as_ptr(&svc.events) as usize,
        "the clone shares the Arc"
    );
    assert_eq!(
        svc.events(),
        ["whereabouts of alpha"],
        "mutation is visible here"
    );
    assert_eq!(
        svc.clones.load(Ordering::SeqCst) - clones_before,
        1,
        "self is cloned exactly once per call"
    );
    svc.shutdown();
}

#[test]
fn the_three_spellings_pick_the_right_executor() {
    let svc = Service::new("beta");
    let s = svc.clone();
    common::run_guarded(async move {
        assert_eq!(s.add(2, 40).await.unwrap(), 42);
        let on_pool = s.on_pool().await.unwrap();
        assert_eq!(
            s.pool.threads(),
            1,
            "executor = \"pool\" used the pool field"
        );
        let on_executor = s.executor_thread().await.unwrap();
        assert_ne!(on_pool, on_executor, "the two fields are different pools");
        assert!(s.executor.threads() >= 1);
        // `pool` has one thread: every call lands on it.
        assert_eq!(s.on_pool().await.unwrap(), on_pool);
    });
    svc.shutdown();
}

#[test]
fn arguments_of_several_kinds_are_forwarded() {
    let svc = Service::new("gamma");
    let s = svc.clone();
    let out = common::run_guarded(async move {
        s.patterns(
            (6, 7),
            vec![1],
            Point { x: 10, y: 5 },
            0,
            String::from("unused"),
        )
        .await
        .unwrap()
    });
    assert_eq!(out, [1, 42, 15]);
    svc.shutdown();
}

#[test]
fn a_unit_method_returns_a_future_of_unit() {
    let svc = Service::new("delta");
    let s = svc.clone();
    common::run_guarded(async move {
        let fut: Future<()> = s.record("recorded".to_string());
        fut.await.unwrap();
    });
    assert_eq!(svc.events(), ["recorded"]);
    svc.shutdown();
}

#[test]
fn return_question_mark_and_self_methods_work_in_the_body() {
    let svc = Service::new("eps");
    let s = svc.clone();
    common::run_guarded(async move {
        // A `Result` body: `Future<u32>`, the `Err` stored as the exception.
        assert_eq!(s.parse_positive(" 17 ".into()).await.unwrap(), 17);
        assert_eq!(s.parse_positive("-3".into()).await.unwrap(), 0);
        let err = s.parse_positive("x".into()).await.unwrap_err();
        assert!(
            err.downcast_ref::<std::num::ParseIntError>().is_some(),
            "{err:?}"
        );
        assert_eq!(s.describe(4).await.unwrap(), "eps:40");
        let public: Future<&'static str> = s.public_method();
        assert_eq!(public.await.unwrap(), "public");
    });
    svc.shutdown();
}

#[test]
fn a_panicking_body_fails_the_future() {
    let svc = Service::new("zeta");
    let s = svc.clone();
    common::run_guarded(async move {
        let err = s.explode("service blew up".into()).await.unwrap_err();
        match err {
            Error::Panic(p) => assert_eq!(p.message(), "service blew up"),
            other => panic!("expected Error::Panic, got {other:?}"),
        }
        assert_eq!(s.add(1, 1).await.unwrap(), 2, "the service still works");
    });
    svc.shutdown();
}

#[test]
fn calling_a_run_on_executor_method_off_a_loop_panics_like_submit() {
    let svc = Service::new("eta");
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.add(1, 2)))
        .expect_err("no running loop");
    let msg = common::panic_message(payload.as_ref());
    assert!(msg.contains("no running event loop"), "message: {msg}");
    svc.shutdown();
}

#[test]
fn many_concurrent_calls_are_gathered_in_order() {
    let svc = Service::new("theta");
    let s = svc.clone();
    let sums = common::run_guarded(async move {
        let futs: Vec<Future<u32>> = (0..50).map(|i| s.add(i, i)).collect();
        evloop::gather(futs).await.unwrap()
    });
    assert_eq!(sums, (0..50).map(|i| 2 * i).collect::<Vec<u32>>());
    svc.shutdown();
}

/// A generic `impl` is fine as long as the method itself is not generic.
#[derive(Clone)]
struct Wrapper<T> {
    executor: Executor,
    value: T,
}

impl<T: Clone + Send + std::fmt::Debug + 'static> Wrapper<T> {
    #[run_on_executor]
    fn show(&self, prefix: String) -> String {
        format!("{prefix}{:?}", self.value)
    }
}

#[test]
fn run_on_executor_works_in_a_generic_impl() {
    let w = Wrapper {
        executor: Executor::new(1),
        value: vec![1u8, 2],
    };
    let w2 = w.clone();
    let shown = common::run_guarded(async move { w2.show("v=".into()).await.unwrap() });
    assert_eq!(shown, "v=[1, 2]");
    w.executor.shutdown(true);
}

// ---------------------------------------------------------------------------------
// #[evloop::test]
// ---------------------------------------------------------------------------------

#[evloop::test]
async fn evloop_test_runs_the_body_on_a_running_loop() {
    let loop_ = LoopHandle::current();
    assert!(loop_.is_running());
    assert!(loop_.is_current());
    evloop::time::sleep(std::time::Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(evloop::spawn_blocking(|| 5).await.unwrap(), 5);
}

/// `blocking_threads = 2` reaches the runtime: two jobs hold both threads, so a third
/// waits in the queue (with the default of 512 it would get a thread of its own).
#[evloop::test(blocking_threads = 2)]
async fn evloop_test_with_blocking_threads_and_a_result() -> Result<(), evloop::Error> {
    let loop_ = LoopHandle::current();
    let arrived = Arc::new(Barrier::new(3));
    let leave = Arc::new(Barrier::new(3));
    let held: Vec<JobHandle<()>> = (0..2)
        .map(|_| {
            let (a, l) = (arrived.clone(), leave.clone());
            loop_.run_in_executor(None, move || {
                a.wait();
                l.wait();
            })
        })
        .collect();
    arrived.wait();
    let third = loop_.run_in_executor(None, || 3);
    let stats = loop_.stats();
    leave.wait();
    assert_eq!(stats.executor_threads, 2);
    assert_eq!(stats.executor_queued_jobs, 1);
    evloop::gather(held).await?;
    assert_eq!(third.await?, 3);
    Ok(())
}

const SLOW: &str = "Executing a callback took ";

/// `debug = true` (with a 1 ms threshold) turns on the slow-callback warning (L10);
/// `shutdown_timeout_ms` is accepted (its effect is timing only: not observable here).
#[evloop::test(debug = true, slow_callback_duration_ms = 1, shutdown_timeout_ms = 100)]
async fn evloop_test_with_debug_and_shutdown_timeout() {
    common::init_logger();
    let before = common::logs_containing(SLOW).len();
    LoopHandle::current().call_soon(|| thread::sleep(std::time::Duration::from_millis(5)));
    common::yield_times(2).await;
    assert!(
        common::logs_containing(SLOW).len() > before,
        "debug = true did not enable debug mode"
    );
}

#[evloop::test(event_capacity = 16, thread_keep_alive_ms = 50)]
async fn evloop_test_accepts_the_other_options() -> Result<(), Error> {
    let n = evloop::spawn_blocking(|| 7).await?;
    assert_eq!(n, 7);
    Ok(())
}

#[evloop::test]
#[should_panic(expected = "boom inside an evloop test (after)")]
async fn a_panicking_evloop_test_fails_with_should_panic_after() {
    evloop::yield_now().await.unwrap();
    panic!("boom inside an evloop test (after)");
}

#[should_panic(expected = "boom inside an evloop test (before)")]
#[evloop::test]
async fn a_panicking_evloop_test_fails_with_should_panic_before() {
    evloop::yield_now().await.unwrap();
    panic!("boom inside an evloop test (before)");
}

/// A failing assertion about a blocking job fails the test too.
#[evloop::test]
#[should_panic(expected = "job said 1")]
async fn an_assertion_on_a_job_result_fails_the_evloop_test() {
    let n = evloop::spawn_blocking(|| 1).await.unwrap();
    assert_eq!(n, 2, "job said {n}");
}
