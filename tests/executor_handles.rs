//! NEW API — `evloop::JobHandle<T>` (SPEC E1–E3 with T2's shape): `spawn_blocking`,
//! `Executor::submit`, `Executor::submit_to` and `LoopHandle::run_in_executor` return a
//! `JobHandle<T>`, which is to an executor job what `Task<T>` is to a coroutine:
//! awaiting it yields `Result<T, Error>` and *moves* the value out (no `T: Clone`); it
//! derefs to its `Future<T>` (`done()`, `cancel()`, `add_done_callback`, …);
//! `job.future()` gives a cloneable `Future<T>` view; `Future<T>: From<JobHandle<T>>`,
//! so `gather` accepts handles.
//!
//! This file does not compile before that API exists (the other test files do not
//! depend on it).
//!
//! Covers:
//! * `spawn_blocking(|| Command::new("true").output()).await` compiles and gives the
//!   output with a success status — `io::Error` is not `Clone`, so this did not
//!   compile when the job's future was awaited by clone;
//! * a `std::fs::File` moved out of `spawn_blocking`, `Executor::submit`,
//!   `Executor::submit_to` (from another thread) and `LoopHandle::run_in_executor`;
//! * `future()` views shared by two awaiters (`T: Clone`), and the deref to
//!   `Future<T>` (`done`, `add_done_callback`, `get_loop`);
//! * cancelling a handle before its job starts (a one-thread executor kept busy by a
//!   first job blocked on a channel): the job never runs, awaiting gives
//!   `Err(Cancelled)`;
//! * after awaiting the handle, `future().result()` is `Err(InvalidState)` (the value
//!   was taken);
//! * `gather` over `JobHandle`s, results in argument order;
//! * `JobHandle<T>` is `Send` for `T: Send` (a handle may be awaited on another loop).

use std::fs::File;
use std::io::{self, Read};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use evloop::{Error, Executor, Future, JobHandle, LoopHandle, gather, spawn_blocking};

const TEN_S: Duration = Duration::from_secs(10);

/// `evloop::run` under a bound: a job that never completes fails the test after 30 s
/// instead of hanging it.
fn run_bounded<F: std::future::Future>(fut: F) -> F::Output {
    evloop::run(async move {
        evloop::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("the test's loop work finished within 30 s")
    })
}

fn read_all(mut file: File) -> io::Result<String> {
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// The value type `io::Result<Output>` is not `Clone`: awaiting the handle moves it
/// out. (With `Future<T>` as the return type this line did not compile.)
#[test]
fn a_command_output_is_awaited_without_clone() {
    let output = run_bounded(async {
        let job: JobHandle<io::Result<Output>> = spawn_blocking(|| Command::new("true").output());
        job.await
    });
    let output = output
        .expect("the job ran")
        .expect("`true` could be started");
    assert!(output.status.success(), "{:?}", output.status);
}

/// A `File` (not `Clone`) comes out of every way of submitting a job.
#[test]
fn a_file_is_moved_out_of_every_submission_path() {
    let exec = Executor::new(1);
    let e = exec.clone();
    let texts = run_bounded(async move {
        let loop_ = LoopHandle::current();
        let from_spawn: JobHandle<io::Result<File>> = spawn_blocking(|| File::open("Cargo.toml"));
        let from_submit: JobHandle<io::Result<File>> = e.submit(|| File::open("Cargo.toml"));
        let from_run_in_executor: JobHandle<io::Result<File>> =
            loop_.run_in_executor(None, || File::open("Cargo.toml"));
        let from_explicit: JobHandle<io::Result<File>> =
            loop_.run_in_executor(Some(&e), || File::open("Cargo.toml"));
        // submit_to from a plain thread: the handle crosses back to the loop.
        let from_submit_to: JobHandle<io::Result<File>> = {
            let (e, loop_) = (e.clone(), loop_.clone());
            std::thread::spawn(move || e.submit_to(&loop_, || File::open("Cargo.toml")))
                .join()
                .unwrap()
        };
        let mut texts = Vec::new();
        for job in [
            from_spawn,
            from_submit,
            from_run_in_executor,
            from_explicit,
            from_submit_to,
        ] {
            let file: File = job.await??;
            texts.push(read_all(file)?);
        }
        Ok::<_, Error>(texts)
    })
    .unwrap();
    assert_eq!(texts.len(), 5);
    for text in &texts {
        assert!(text.contains("[package]"), "{text}");
    }
    exec.shutdown(true);
}

/// `future()` views are ordinary shared futures: two awaiters see the same value
/// (`T: Clone`); the handle derefs to its future (`done`, `add_done_callback`,
/// `get_loop`).
#[test]
fn future_views_are_shared_by_two_awaiters_and_the_handle_derefs_to_its_future() {
    run_bounded(async {
        let loop_ = LoopHandle::current();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let job: JobHandle<u32> = spawn_blocking(move || {
            release_rx.recv().unwrap();
            42
        });
        assert_eq!(job.get_loop(), loop_);
        assert!(!job.done());
        let callbacks = Arc::new(AtomicUsize::new(0));
        job.add_done_callback({
            let callbacks = callbacks.clone();
            move |f: &Future<u32>| {
                assert_eq!(f.result().unwrap(), 42);
                callbacks.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (a, b) = (job.future(), job.future());
        assert_eq!(a, b, "views of one job are the same future");
        let first = evloop::create_task(a);
        let second = evloop::create_task(b);
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 42);
        assert_eq!(second.await.unwrap(), 42);
        assert!(job.done());
        for _ in 0..3 {
            evloop::yield_now().await.unwrap();
        }
        assert_eq!(callbacks.load(Ordering::SeqCst), 1);
        // A view does not take the value: the handle still can.
        assert_eq!(job.await.unwrap(), 42);
    });
}

/// Cancelling a handle whose job has not started (the executor's only thread is held
/// by a first job blocked on a channel) means the job never runs: awaiting the handle
/// gives `Err(Cancelled)`, and once the executor has run everything it accepted the
/// job's flag is still unset.
#[test]
fn cancelling_a_handle_before_its_job_starts_means_it_never_runs() {
    let exec = Executor::new(1);
    let ran = Arc::new(AtomicBool::new(false));
    let e = exec.clone();
    let r = ran.clone();
    run_bounded(async move {
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let first: JobHandle<&'static str> = e.submit(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            "first"
        });
        started_rx
            .recv_timeout(TEN_S)
            .expect("the first job holds the thread");
        let second: JobHandle<()> = e.submit(move || r.store(true, Ordering::SeqCst));
        assert!(!second.done());
        assert!(second.cancel(), "cancel() through the deref to Future");
        assert!(second.cancelled());
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), "first");
        let err = second.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
    });
    exec.shutdown(true); // every job the executor accepted has run (or was skipped)
    assert!(!ran.load(Ordering::SeqCst), "the cancelled job ran");
}

/// Awaiting the handle moves the value out (like awaiting a `Task`): a view taken
/// before then sees `Err(InvalidState)` from `result()`.
#[test]
fn after_awaiting_the_handle_a_view_reports_the_value_as_taken() {
    run_bounded(async {
        let job: JobHandle<u32> = spawn_blocking(|| 7);
        let view: Future<u32> = job.future();
        assert_eq!(job.await.unwrap(), 7);
        assert!(view.done());
        assert!(view.result_is_taken());
        let err = view.result().unwrap_err();
        assert!(err.is_invalid_state(), "{err:?}");
    });
}

/// `Future<T>: From<JobHandle<T>>`: `gather` takes handles (argument order, not
/// completion order), also mixed with plain futures.
#[test]
fn gather_accepts_job_handles() {
    let out = run_bounded(async {
        let slow: JobHandle<u32> = spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(20));
            1
        });
        let fast: JobHandle<u32> = spawn_blocking(|| 2);
        let plain: Future<u32> = Future::new();
        plain.set_result(3).unwrap();
        let all = gather(vec![Future::from(slow), Future::from(fast), plain]).await;
        let handles = gather(vec![spawn_blocking(|| 10u32), spawn_blocking(|| 20u32)]).await;
        (all, handles)
    });
    assert_eq!(out.0.unwrap(), [1, 2, 3]);
    assert_eq!(out.1.unwrap(), [10, 20]);
}

/// A handle is `Send` when `T` is (like `Task<T>`), so it can be awaited on another
/// loop than the one the job reports to.
#[test]
fn a_job_handle_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<JobHandle<File>>();
    assert_send::<JobHandle<io::Result<Output>>>();

    let group = evloop::LoopGroup::new(1).unwrap();
    let out = run_bounded(async {
        let job: JobHandle<String> = spawn_blocking(|| String::from("moved"));
        // Awaited by a task of another loop.
        group.spawn(job).await
    });
    assert_eq!(out.unwrap(), "moved");
    group.shutdown().unwrap();
}
