//! Regression tests from the review of `evloop::process` (issue 19), each on both exit
//! paths (pidfd, and the SIGCHLD fallback forced by `EVLOOP_PROCESS_NO_PIDFD=1`), each in
//! its own child process. What each pins:
//!
//! - a timed-out `wait` on loop A left A's SIGCHLD wait in the `Child`; after A closed
//!   (cancelling that wait), `wait` on loop B failed with `CancelledError` instead of
//!   waiting for the exit;
//! - a `Child` moved to loop B, waited on there while its spawning loop A closed, hung:
//!   A's close dropped the pidfd's waker, so B's task was never polled again (the watch
//!   now moves to the loop that waits);
//! - a `Child` dropped on a running loop B after its spawning loop A closed stayed a
//!   zombie: the reaper task was spawned on the closed A;
//! - `wait` polled by a foreign executor panicked in the fallback (`signal::wait` needs a
//!   current loop); it now waits on the child's own loop;
//! - `send_signal(1000)` gave a bare "Invalid argument" naming no signal;
//! - no fd is left by piped children that are communicated with, cancelled half-way or
//!   killed; `run` ends (no hang) with a dropped, running child.
mod common;
#[path = "common/procfs.rs"]
mod procfs;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Duration;

use common::child::isolate;
use evloop::Error;
use evloop::process::{Child, Command, Stdio};

fn no_pidfd() {
    // SAFETY: set at the scenario's start in its own child process, before any thread
    // of the test reads the environment.
    unsafe { std::env::set_var("EVLOOP_PROCESS_NO_PIDFD", "1") };
}

/// A `cat` that runs until `ours` is dropped.
fn gated_cat() -> (StdUnixStream, Command) {
    let (ours, theirs) = StdUnixStream::pair().unwrap();
    let mut c = Command::new("cat");
    c.stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null());
    (ours, c)
}

/// SIGCHLD fallback: a wait that timed out on loop A leaves A's signal wait in the
/// Child; A closes (cancelling it); `wait` on loop B then fails with Cancelled
/// instead of waiting for the exit.
fn stale_sigchld_wait_from_a_closed_loop() {
    let (gate, mut cmd) = gated_cat();
    let mut child: Child = common::run_guarded(async move {
        let mut child = cmd.spawn()?;
        let r = evloop::time::timeout(Duration::from_millis(20), child.wait()).await;
        assert!(r.is_err(), "cat is still running: {r:?}");
        Ok::<_, Error>(child)
    })
    .unwrap();
    let r = common::run_guarded(async move {
        drop(gate);
        child.wait().await
    });
    assert!(
        r.as_ref().is_ok_and(|s| s.success()),
        "wait on loop B after a timed-out wait on closed loop A: {r:?}"
    );
}

#[test]
fn sigchld_stale_wait_from_a_closed_loop() {
    isolate("sigchld_stale_wait_from_a_closed_loop", || {
        no_pidfd();
        stale_sigchld_wait_from_a_closed_loop();
    });
}

#[test]
fn pidfd_stale_wait_from_a_closed_loop() {
    isolate(
        "pidfd_stale_wait_from_a_closed_loop",
        stale_sigchld_wait_from_a_closed_loop,
    );
}

/// pidfd: Child moved to loop B, which waits; loop A (the owner) closes while B's
/// wait is pending; then the child exits. B's wait must return.
fn owner_closes_while_other_loop_waits() {
    let (tx, rx) = std::sync::mpsc::channel::<(Child, StdUnixStream)>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let a = std::thread::spawn(move || {
        common::run_guarded(async move {
            let (gate, mut cmd) = gated_cat();
            let child = cmd.spawn()?;
            tx.send((child, gate)).unwrap();
            procfs::until("B is waiting", || go_rx.try_recv().ok(), String::new).await;
            Ok::<_, Error>(())
        })
        .unwrap();
    });
    let (mut child, gate) = rx.recv().unwrap();
    let r = common::run_guarded(async move {
        let waiter = evloop::create_task(async move { Ok::<_, Error>(child.wait().await?) });
        common::yield_times(10).await;
        assert!(!waiter.done(), "cat runs until the gate closes");
        go_tx.send(()).unwrap();
        // A closes while B's wait is pending (blocking B's thread for the join is the
        // point: nothing on B runs until A is gone).
        a.join().unwrap();
        drop(gate);
        // A hang guard, not a timing assertion.
        evloop::time::timeout(Duration::from_secs(10), waiter).await
    });
    assert!(
        matches!(&r, Ok(Ok(s)) if s.success()),
        "wait on B while the owner A closed: {r:?}"
    );
}

#[test]
fn pidfd_owner_closes_while_other_loop_waits() {
    isolate(
        "pidfd_owner_closes_while_other_loop_waits",
        owner_closes_while_other_loop_waits,
    );
}

#[test]
fn sigchld_owner_closes_while_other_loop_waits() {
    isolate("sigchld_owner_closes_while_other_loop_waits", || {
        no_pidfd();
        owner_closes_while_other_loop_waits();
    });
}

/// A Child whose loop closed is dropped on another, running loop; it exits later and
/// that loop keeps running without spawning: zombie?
fn dropped_on_running_loop_after_owner_closed() {
    let (gate, mut cmd) = gated_cat();
    let child = common::run_guarded(async move { Ok::<_, Error>(cmd.spawn()?) }).unwrap();
    let pid = child.id().unwrap();
    common::run_guarded(async move {
        drop(child);
        drop(gate);
        // B spawns nothing more: only the reaper task on B can reap it.
        procfs::until_reaped(pid, "dropped on loop B after its loop A closed").await;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn pidfd_dropped_on_running_loop_after_owner_closed() {
    isolate(
        "pidfd_dropped_on_running_loop_after_owner_closed",
        dropped_on_running_loop_after_owner_closed,
    );
}

#[test]
fn sigchld_dropped_on_running_loop_after_owner_closed() {
    isolate("sigchld_dropped_on_running_loop_after_owner_closed", || {
        no_pidfd();
        dropped_on_running_loop_after_owner_closed();
    });
}

#[test]
fn send_signal_out_of_range_message() {
    common::run_guarded(async {
        let mut child = Command::new("sleep").arg("10").kill_on_drop(true).spawn()?;
        let e = child.send_signal(1000).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("invalid signal number 1000"),
            "message does not name the signal: {e}"
        );
        let e = child.send_signal(-1).unwrap_err();
        assert!(e.to_string().contains("-1"), "{e}");
        // Still an error once the child is reaped (the check comes first).
        child.kill().await?;
        assert!(child.send_signal(1000).is_err());
        assert!(
            child.send_signal(libc::SIGTERM).is_ok(),
            "a reaped child is left alone"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A tiny block_on for polling evloop futures from a plain thread (a foreign executor).
fn foreign_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct T(std::thread::Thread);
    impl Wake for T {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(T(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "foreign_block_on: hung"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Child::wait polled from a plain thread while its loop runs.
fn wait_from_a_foreign_executor() {
    let (tx, rx) = std::sync::mpsc::channel::<Child>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let a = std::thread::spawn(move || {
        common::run_guarded(async move {
            tx.send(Command::new("sleep").arg("0.1").spawn()?).unwrap();
            procfs::until("done", || done_rx.try_recv().ok(), String::new).await;
            Ok::<_, Error>(())
        })
        .unwrap();
    });
    let mut child = rx.recv().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        foreign_block_on(child.wait())
    }));
    done_tx.send(()).unwrap();
    a.join().unwrap();
    match r {
        Ok(r) => assert!(r.as_ref().is_ok_and(|s| s.success()), "{r:?}"),
        Err(p) => panic!(
            "wait from a foreign executor panicked: {}",
            common::panic_message(&*p)
        ),
    }
}

#[test]
fn pidfd_wait_from_a_foreign_executor() {
    isolate(
        "pidfd_wait_from_a_foreign_executor",
        wait_from_a_foreign_executor,
    );
}

#[test]
fn sigchld_wait_from_a_foreign_executor() {
    isolate("sigchld_wait_from_a_foreign_executor", || {
        no_pidfd();
        wait_from_a_foreign_executor();
    });
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// fds after many piped children: communicate, cancelled communicate, dropped.
fn no_fd_leak() {
    common::run_guarded(async {
        // warm up
        let _ = Command::new("true").output().await?;
        let before = fd_count();
        for i in 0..50 {
            let mut c = Command::new("sh")
                .args(["-c", "head -c 300000 /dev/zero; cat >/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if i % 3 == 0 {
                let big = vec![0u8; 1 << 20];
                let _ = evloop::time::timeout(Duration::from_millis(1), c.communicate(&big)).await;
                drop(c);
            } else if i % 3 == 1 {
                c.communicate(b"abc").await?;
            } else {
                let _ = evloop::time::timeout(Duration::from_millis(1), c.wait()).await;
                c.start_kill()?;
                drop(c);
            }
        }
        procfs::until(
            "children reaped",
            || procfs::children().is_empty().then_some(()),
            || format!("{:?}", procfs::children()),
        )
        .await;
        evloop::time::sleep(Duration::from_millis(50)).await?;
        let after = fd_count();
        assert_eq!(before, after, "fd leak");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn pidfd_no_fd_leak() {
    isolate("pidfd_no_fd_leak", no_fd_leak);
}

#[test]
fn sigchld_no_fd_leak() {
    isolate("sigchld_no_fd_leak", || {
        no_pidfd();
        no_fd_leak();
    });
}

#[test]
fn run_returns_promptly_with_a_dropped_running_child() {
    // `run_guarded`'s watchdog fails the test if `run` waits for the `sleep 1000`s.
    isolate("run_returns_promptly_with_a_dropped_running_child", || {
        common::run_guarded(async {
            let c = Command::new("sleep").arg("1000").spawn()?;
            let pid = c.id().unwrap();
            drop(c);
            // and one held by a task that is cancelled at shutdown
            let mut c2 = Command::new("sleep").arg("1000").spawn()?;
            drop(evloop::create_task(async move {
                Ok::<_, Error>(c2.wait().await?)
            }));
            evloop::time::sleep(Duration::from_millis(10)).await?;
            Ok::<_, Error>(pid)
        })
        .unwrap();
        for (pid, _) in procfs::children() {
            // SAFETY: `kill` takes no pointers; `pid` is our own child (from /proc).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
}
