//! Which signal numbers `add_signal_handler` and `signal::wait` accept (SPEC L12):
//! every signal the OS lets a process catch, up to and including `SIGRTMAX`.
//!
//! Covers:
//! * `SIGRTMAX`: a handler runs when the signal is raised, and `signal::wait` completes;
//! * `SIGRTMIN`: a handler runs;
//! * every catchable signal from 1 to `SIGRTMAX` in turn (all but `SIGKILL` and
//!   `SIGSTOP`, which no process can catch, `SIGILL`, `SIGFPE` and `SIGSEGV`, which
//!   evloop refuses on purpose, and the numbers between 31 and `SIGRTMIN` that the C
//!   library keeps for its threads);
//! * 0, -1, `SIGRTMAX + 1` (65) and `SIGKILL` are refused with
//!   `ErrorKind::InvalidInput` and a message naming the number, by
//!   `add_signal_handler` and by `signal::wait`.
//!
//! Signals are process-wide and the last test raises nearly all of them, so the tests
//! of this binary hold one lock for their whole run. Signals are sent with `raise(3)`
//! once the handler is installed (after removal evloop keeps the signal ignored, so a
//! late delivery cannot kill the process).

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use evloop::{Error, LoopHandle, signal, time};

const TEN_S: Duration = Duration::from_secs(10);

/// Serializes the tests of this binary (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// Raises `signum` in this thread (its handler is installed).
fn raise(signum: i32) {
    // SAFETY: raise(3) of a signal this process handles.
    let rc = unsafe { libc::raise(signum) };
    assert_eq!(rc, 0, "raise({signum}): {}", io::Error::last_os_error());
}

use common::eventually;

/// Installs a counting handler for `signum`, raises it, waits for the handler, removes
/// it. `Err` with the refusal if `add_signal_handler` refused the signal.
async fn handle_once(loop_: &LoopHandle, signum: i32) -> io::Result<()> {
    let runs = counter();
    loop_.add_signal_handler(signum, {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
        }
    })?;
    raise(signum);
    eventually(&format!("the handler of signal {signum} ran"), || {
        get(&runs) >= 1
    })
    .await;
    assert!(loop_.remove_signal_handler(signum), "signal {signum}");
    Ok(())
}

/// Whether `message` names `n` as a number of its own (not a digit of another one).
fn names_number(message: &str, n: i32) -> bool {
    message
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .any(|word| word == n.to_string())
}

/// Pins a bug (fails until fixed): evloop accepts only signal numbers 1–63 (its pending
/// set is one `u64` bit per signal), so `SIGRTMAX` (64 on Linux) is refused as
/// "invalid signal number 64" although any process may catch it. Its handler must run
/// when it is raised, and `signal::wait(SIGRTMAX)` must complete.
#[test]
fn sigrtmax_can_be_handled_and_waited_for() {
    let _serial = serial();
    let sig = libc::SIGRTMAX();
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        if let Err(e) = handle_once(&loop_, sig).await {
            panic!("add_signal_handler(SIGRTMAX = {sig}) refused: {e}");
        }

        let waiter = signal::wait(sig);
        common::yield_times(3).await;
        assert!(
            !waiter.done(),
            "signal::wait(SIGRTMAX = {sig}) is done before the signal: {:?}",
            waiter.exception()
        );
        raise(sig);
        time::timeout(TEN_S, waiter).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// `SIGRTMIN` (34 with glibc) is handled like any other signal.
#[test]
fn sigrtmin_can_be_handled() {
    let _serial = serial();
    let sig = libc::SIGRTMIN();
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        if let Err(e) = handle_once(&loop_, sig).await {
            panic!("add_signal_handler(SIGRTMIN = {sig}) refused: {e}");
        }
    });
}

/// Pins the same bug (fails until fixed, at `SIGRTMAX`): every signal a process may
/// catch is accepted and its handler runs — the standard ones and every real-time one.
/// The refused ones are listed, so the failure names every number that did not work.
#[test]
fn every_catchable_signal_can_be_handled() {
    let _serial = serial();
    let not_catchable = [libc::SIGKILL, libc::SIGSTOP];
    let refused_by_design = [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV];
    // glibc reserves 32 and 33 for its threads; SIGRTMIN is the first one left.
    let reserved_by_libc = 32..libc::SIGRTMIN();
    let catchable: Vec<i32> = (1..=libc::SIGRTMAX())
        .filter(|n| {
            !not_catchable.contains(n)
                && !refused_by_design.contains(n)
                && !reserved_by_libc.contains(n)
        })
        .collect();
    let refused = common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        let mut refused = Vec::new();
        for &signum in &catchable {
            if let Err(e) = handle_once(&loop_, signum).await {
                refused.push(format!("{signum}: {e}"));
            }
        }
        refused
    });
    assert!(
        refused.is_empty(),
        "catchable signals refused by add_signal_handler: {refused:?}"
    );
}

/// Numbers that are not signals, and `SIGKILL`, are refused with `InvalidInput` and a
/// message naming the number — by `add_signal_handler` and by `signal::wait` (whose
/// future fails at once); nothing is left registered.
#[test]
fn non_signals_and_sigkill_are_refused_with_the_number() {
    let _serial = serial();
    let above = libc::SIGRTMAX() + 1;
    assert_eq!(above, 65, "Linux has 64 signals");
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        for signum in [0, -1, above, libc::SIGKILL] {
            let err = loop_
                .add_signal_handler(signum, || {})
                .expect_err("refused");
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "signal {signum}: {err}"
            );
            let message = err.to_string();
            assert!(
                names_number(&message, signum),
                "the refusal of {signum} does not name it: {message:?}"
            );
            assert!(!loop_.remove_signal_handler(signum), "signal {signum}");

            let waiter = signal::wait(signum);
            assert!(waiter.done(), "signal::wait({signum}) fails at once");
            let err = waiter.exception().expect("done").expect("an exception");
            assert!(!err.is_cancelled(), "signal::wait({signum}): {err:?}");
            assert_eq!(
                err.downcast_ref::<io::Error>().map(io::Error::kind),
                Some(io::ErrorKind::InvalidInput),
                "signal::wait({signum}): {err:?}"
            );
            assert!(
                names_number(&err.to_string(), signum),
                "signal::wait({signum}): the error does not name it: {err}"
            );
        }
    });
}
