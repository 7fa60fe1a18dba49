//! SPEC §15 X1's "no zombies": hundreds of children awaited concurrently, hundreds
//! dropped without a wait (exited, running, killed on drop), children dropped on a
//! loop that then ends, children on two loops at once, no pidfd and no thread left per
//! child — and the SIGCHLD fallback (`EVLOOP_PROCESS_NO_PIDFD=1`) through the same
//! scenarios, next to a blocking `std::process` wait it must not steal from.
//!
//! Every test runs in a child process of its own (`common::child::isolate`): "no child
//! of this process left" and "no pidfd open" are statements about the whole process,
//! which other tests' children would falsify, and the fallback is chosen once per
//! process, before its first spawn.

mod common;
#[path = "common/procfs.rs"]
mod procfs;

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;

use common::child::isolate;
use evloop::process::{Child, Command, Stdio};
use evloop::{Error, Task, create_task};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn no_pidfd() {
    // The scenario runs alone in its process (isolate), before any spawn.
    unsafe { std::env::set_var("EVLOOP_PROCESS_NO_PIDFD", "1") };
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Spawns `n` children exiting with `i % 7` and awaits them all at once (a task each,
/// gathered); checks each code, then that none is left (no zombie, nothing running) and
/// no pidfd is open. `pidfds: false` (the fallback): none at any time.
async fn concurrent_children(n: usize, pidfds: bool) -> Result<(), Error> {
    let threads_before = threads();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        children.push(sh(&format!("exit {}", i % 7)).spawn()?);
    }
    let tasks: Vec<Task<ExitStatus>> = children
        .into_iter()
        .map(|mut c| create_task(async move { Ok::<_, Error>(c.wait().await?) }))
        .collect();
    common::yield_times(3).await;
    if !pidfds {
        assert_eq!(procfs::pidfds(), 0, "a pidfd in the SIGCHLD fallback");
    }
    assert!(
        threads() < threads_before + n,
        "a thread per child? {threads_before} threads before, {} with {n} waits pending",
        threads()
    );
    let statuses = evloop::gather(tasks).await?;
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(s.code(), Some((i % 7) as i32), "child {i}: {s:?}");
    }
    assert_eq!(procfs::children(), [], "every awaited child is reaped");
    assert_eq!(
        procfs::pidfds(),
        0,
        "pidfds closed once their children are reaped"
    );
    Ok(())
}

/// 200 children dropped without a wait: exited ones, running short sleeps, long
/// sleeps killed on drop, some with pipes; then the loop keeps running until none is
/// left.
async fn dropped_children() -> Result<(), Error> {
    let mut children: Vec<Child> = Vec::new();
    let mut exited = Vec::new();
    for i in 0..200 {
        let child = match i % 4 {
            0 => Command::new("true").spawn()?,
            1 => Command::new("sleep").arg("0.05").spawn()?,
            2 => Command::new("sleep")
                .arg("1000")
                .kill_on_drop(true)
                .spawn()?,
            _ => Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(i % 8 == 3)
                .spawn()?,
        };
        if i % 4 == 0 {
            exited.push(child.id().expect("just spawned"));
        }
        children.push(child);
    }
    // The `true`s have exited (zombies, or already reaped) before their drop.
    for &pid in &exited {
        procfs::until(
            "`true` exited",
            || {
                procfs::stat(pid)
                    .is_none_or(|s| s.state == 'Z')
                    .then_some(())
            },
            || format!("{:?}", procfs::stat(pid)),
        )
        .await;
    }
    drop(children);
    procfs::until_no_children("200 children dropped without a wait").await;
    assert_eq!(procfs::pidfds(), 0);
    Ok(())
}

/// A wait cancelled (task cancel) and one dropped (timeout): the child keeps running,
/// is not reaped, and a later wait sees its own exit code. `pidfds`: whether a pidfd is
/// expected while the wait is pending (none in the fallback).
async fn cancelled_waits(pidfds: bool) -> Result<(), Error> {
    let mut child = sh("trap 'exit 7' USR1; echo ready; while :; do sleep 0.05; done")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = evloop::io::BufReader::new(child.stdout.take().expect("piped"));
    assert_eq!(out.readline().await?, b"ready\n");
    let pid = child.id().expect("running");
    let slot: Rc<RefCell<Option<Child>>> = Rc::new(RefCell::new(None));
    let task = {
        let slot = slot.clone();
        create_task(async move {
            let mut child = child;
            let r = child.wait().await;
            *slot.borrow_mut() = Some(child);
            r?;
            Ok::<_, Error>(())
        })
    };
    common::yield_times(10).await;
    assert!(!task.done());
    assert_eq!(
        procfs::pidfds() >= 1,
        pidfds,
        "pidfds while a wait is pending: {}",
        procfs::pidfds()
    );
    assert!(task.cancel());
    assert!(task.await.expect_err("cancelled").is_cancelled());
    let mut child = slot.borrow_mut().take().expect("handed back");
    assert!(child.try_wait()?.is_none());
    assert!(
        procfs::stat(pid).is_some_and(|s| s.state != 'Z'),
        "{:?}",
        procfs::stat(pid)
    );
    let e = evloop::time::timeout(std::time::Duration::from_millis(20), child.wait())
        .await
        .expect_err("still running");
    assert!(e.is_timeout());
    assert!(child.try_wait()?.is_none());
    // It exits while nobody waits (the SIGCHLD, or the pidfd's readiness, finds no
    // waiter): a new wait still sees the exit.
    child.send_signal(libc::SIGUSR1)?;
    procfs::until(
        "the shell exited on SIGUSR1",
        || (procfs::stat(pid).map(|s| s.state) == Some('Z')).then_some(()),
        || format!("{:?}", procfs::stat(pid)),
    )
    .await;
    assert_eq!(child.wait().await?.code(), Some(7));
    assert_eq!(procfs::stat(pid), None);
    Ok(())
}

/// `kill()`, `kill_on_drop` and signals report what killed the child.
async fn kills() -> Result<(), Error> {
    let mut c = Command::new("sleep").arg("1000").spawn()?;
    c.kill().await?;
    assert_eq!(c.wait().await?.signal(), Some(libc::SIGKILL));
    let mut c = Command::new("sleep").arg("1000").spawn()?;
    c.terminate()?;
    assert_eq!(c.wait().await?.signal(), Some(libc::SIGTERM));
    let c = Command::new("sleep")
        .arg("1000")
        .kill_on_drop(true)
        .spawn()?;
    let pid = c.id().expect("running");
    drop(c);
    procfs::until_reaped(pid, "killed on drop").await;
    Ok(())
}

/// Two loops on two threads, `n` children each (plus one dropped each), at once.
fn two_loops(n: usize) {
    let loops: Vec<_> = (0..2)
        .map(|l| {
            std::thread::spawn(move || {
                common::run_guarded(async move {
                    let dropped = Command::new("sleep").arg("0.02").spawn()?;
                    drop(dropped);
                    let tasks: Vec<Task<ExitStatus>> = (0..n)
                        .map(|i| {
                            let mut c = sh(&format!("exit {}", (i + l) % 5)).spawn().unwrap();
                            create_task(async move { Ok::<_, Error>(c.wait().await?) })
                        })
                        .collect();
                    let statuses = evloop::gather(tasks).await?;
                    for (i, s) in statuses.iter().enumerate() {
                        assert_eq!(s.code(), Some(((i + l) % 5) as i32), "loop {l} child {i}");
                    }
                    // Until the dropped children are gone too (each loop reaps its own;
                    // both wait here until neither has any left).
                    procfs::until_no_children("two loops").await;
                    Ok::<_, Error>(())
                })
            })
        })
        .collect();
    for t in loops {
        t.join().expect("loop thread").unwrap();
    }
    assert_eq!(procfs::children(), []);
}

#[test]
fn two_hundred_children_awaited_concurrently() {
    isolate("two_hundred_children_awaited_concurrently", || {
        common::run_guarded(concurrent_children(200, true)).unwrap();
    });
}

#[test]
fn two_hundred_dropped_children_leave_no_zombie() {
    isolate("two_hundred_dropped_children_leave_no_zombie", || {
        common::run_guarded(dropped_children()).unwrap();
    });
}

#[test]
fn cancelled_waits_leave_no_pidfd_behind() {
    isolate("cancelled_waits_leave_no_pidfd_behind", || {
        common::run_guarded(async {
            assert_eq!(procfs::pidfds(), 0, "before any spawn");
            cancelled_waits(true).await?;
            kills().await?;
            assert_eq!(procfs::pidfds(), 0, "after the children are reaped");
            assert_eq!(procfs::children(), []);
            Ok::<_, Error>(())
        })
        .unwrap();
    });
}

#[test]
fn children_on_two_loops_at_once() {
    isolate("children_on_two_loops_at_once", || two_loops(50));
}

#[test]
fn children_dropped_on_a_loop_that_ends_are_reaped_later() {
    // Beyond the loop's life: a child dropped unreaped on a loop that then shuts down,
    // and exits after that, is reaped by the next spawn on a later loop.
    isolate(
        "children_dropped_on_a_loop_that_ends_are_reaped_later",
        || {
            let (stdin_ours, stdin_theirs) = StdUnixStream::pair().unwrap();
            let (waited_ours, waited_theirs) = StdUnixStream::pair().unwrap();
            let (killed, running, waited) = common::run_guarded(async move {
                let killed = Command::new("sleep")
                    .arg("1000")
                    .kill_on_drop(true)
                    .spawn()?;
                let running = Command::new("cat")
                    .stdin(Stdio::from(OwnedFd::from(stdin_theirs)))
                    .stdout(Stdio::null())
                    .spawn()?;
                // A third one is being waited for by a task still pending when the
                // loop shuts down (the task is cancelled, its `Child` dropped then).
                let mut waited = Command::new("cat")
                    .stdin(Stdio::from(OwnedFd::from(waited_theirs)))
                    .stdout(Stdio::null())
                    .spawn()?;
                let ids = (
                    killed.id().unwrap(),
                    running.id().unwrap(),
                    waited.id().unwrap(),
                );
                drop(create_task(
                    async move { Ok::<_, Error>(waited.wait().await?) },
                ));
                drop((killed, running));
                common::yield_times(3).await;
                Ok::<_, Error>(ids)
            })
            .unwrap();
            // The first loop is gone; the cats are still running (their stdin is open).
            assert!(procfs::stat(running).is_some_and(|s| s.state != 'Z'));
            assert!(procfs::stat(waited).is_some_and(|s| s.state != 'Z'));
            drop((stdin_ours, waited_ours));
            // All exit with no loop running: zombies, on the process-wide orphan list
            // (src/process/mod.rs: swept by every later spawn and observed exit).
            for pid in [killed, running, waited] {
                let deadline = std::time::Instant::now() + procfs::GUARD;
                while procfs::stat(pid).is_some_and(|s| s.state != 'Z') {
                    assert!(std::time::Instant::now() < deadline, "{pid} never exited");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            common::run_guarded(async move {
                assert!(Command::new("true").status().await?.success());
                assert_eq!(
                    procfs::stat(killed),
                    None,
                    "killed on drop as its loop ended"
                );
                assert_eq!(
                    procfs::stat(running),
                    None,
                    "dropped, exited after its loop ended"
                );
                assert_eq!(
                    procfs::stat(waited),
                    None,
                    "its waiting task cancelled at shutdown"
                );
                assert_eq!(procfs::children(), []);
                Ok::<_, Error>(())
            })
            .unwrap();
        },
    );
}

/// A `Child` outliving the loop it was spawned on: once it has exited, `wait` on
/// another loop still reaps it (as `tests/process_child.rs` checks with pidfds).
fn outliving_its_loop() {
    let (stdin_ours, stdin_theirs) = StdUnixStream::pair().unwrap();
    let mut child = common::run_guarded(async move {
        Command::new("cat")
            .stdin(Stdio::from(OwnedFd::from(stdin_theirs)))
            .stdout(Stdio::null())
            .spawn()
    })
    .unwrap();
    let pid = child.id().expect("running");
    drop(stdin_ours);
    let deadline = std::time::Instant::now() + procfs::GUARD;
    while procfs::stat(pid).is_some_and(|s| s.state != 'Z') {
        assert!(std::time::Instant::now() < deadline, "cat never exited");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let status = common::run_guarded(async { child.wait().await })
        .expect("wait on a child that exited after its loop closed");
    assert!(status.success(), "{status:?}");
    assert_eq!(procfs::children(), []);
}

#[test]
fn sigchld_fallback_child_outliving_its_loop() {
    isolate("sigchld_fallback_child_outliving_its_loop", || {
        no_pidfd();
        outliving_its_loop();
    });
}

#[test]
fn sigchld_fallback_exit_codes_signals_and_cancelled_waits() {
    isolate(
        "sigchld_fallback_exit_codes_signals_and_cancelled_waits",
        || {
            no_pidfd();
            common::run_guarded(async {
                assert_eq!(sh("exit 3").status().await?.code(), Some(3));
                assert!(Command::new("true").status().await?.success());
                let out = sh("printf out; printf err >&2").output().await?;
                assert_eq!(
                    (&out.stdout[..], &out.stderr[..]),
                    (&b"out"[..], &b"err"[..])
                );
                let mut cat = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let big = vec![b'x'; 1 << 20];
                assert!(cat.communicate(&big).await?.stdout == big);
                cancelled_waits(false).await?;
                kills().await?;
                assert_eq!(procfs::pidfds(), 0, "no pidfd in the fallback");
                assert_eq!(procfs::children(), []);
                Ok::<_, Error>(())
            })
            .unwrap();
        },
    );
}

#[test]
fn sigchld_fallback_fifty_concurrent_children() {
    isolate("sigchld_fallback_fifty_concurrent_children", || {
        no_pidfd();
        common::run_guarded(concurrent_children(50, false)).unwrap();
    });
}

#[test]
fn sigchld_fallback_dropped_children_leave_no_zombie() {
    isolate("sigchld_fallback_dropped_children_leave_no_zombie", || {
        no_pidfd();
        common::run_guarded(dropped_children()).unwrap();
    });
}

#[test]
fn sigchld_fallback_on_two_loops_at_once() {
    isolate("sigchld_fallback_on_two_loops_at_once", || {
        no_pidfd();
        two_loops(25);
    });
}

#[test]
fn sigchld_fallback_leaves_other_children_to_their_waiters() {
    // The fallback reaps only its own children (waitpid(pid), never waitpid(-1)): a
    // blocking std::process wait on another thread gets its child's status while
    // evloop's children exit around it.
    isolate(
        "sigchld_fallback_leaves_other_children_to_their_waiters",
        || {
            no_pidfd();
            let (gate_ours, gate_theirs) = StdUnixStream::pair().unwrap();
            let mut foreign = std::process::Command::new("sh")
                .args(["-c", "read x; exit 3"])
                .stdin(std::process::Stdio::from(OwnedFd::from(gate_theirs)))
                .spawn()
                .unwrap();
            let foreign_pid = foreign.id();
            let foreign_waiter = std::thread::spawn(move || foreign.wait());
            common::run_guarded(async move {
                // evloop children exit (SIGCHLD each) while the foreign one runs…
                let tasks: Vec<Task<ExitStatus>> = (0..20)
                    .map(|_| {
                        let mut c = Command::new("true").spawn().unwrap();
                        create_task(async move { Ok::<_, Error>(c.wait().await?) })
                    })
                    .collect();
                for s in evloop::gather(tasks).await? {
                    assert!(s.success());
                }
                // …and while it exits (its SIGCHLD reaches evloop's handler too).
                let mut gate = gate_ours;
                std::io::Write::write_all(&mut gate, b"go\n")?;
                procfs::until(
                    "the foreign child exited",
                    || {
                        procfs::stat(foreign_pid)
                            .is_none_or(|s| s.state == 'Z')
                            .then_some(())
                    },
                    || format!("{:?}", procfs::stat(foreign_pid)),
                )
                .await;
                let tasks: Vec<Task<ExitStatus>> = (0..20)
                    .map(|_| {
                        let mut c = Command::new("true").spawn().unwrap();
                        create_task(async move { Ok::<_, Error>(c.wait().await?) })
                    })
                    .collect();
                for s in evloop::gather(tasks).await? {
                    assert!(s.success());
                }
                Ok::<_, Error>(())
            })
            .unwrap();
            let status = foreign_waiter
                .join()
                .unwrap()
                .expect("std's wait got its own child (not ECHILD)");
            assert_eq!(status.code(), Some(3));
            assert_eq!(procfs::children(), []);
        },
    );
}
