//! SPEC §15 X1, `evloop::process` on one child at a time: exit codes and signals,
//! `status` / `output` / `wait_with_output`, `communicate` with 8 MiB each way (scripts
//! that deadlock a sequential write-then-read), a child closing stdin early (no EPIPE
//! error), environment and working directory, a missing program (`SpawnError`),
//! `kill_on_drop` and a dropped child left running (reaped once it exits, read from
//! `/proc`), a cancelled or timed-out `wait` that neither kills nor reaps, `try_wait` /
//! `id` / `kill` around the exit, the pidfd registered while a `wait` is pending, the
//! pipes as evloop streams (lines, an interleaved conversation with `cat`, `close`,
//! one child's stdout as another's stdin, futures-io and tokio's traits),
//! `create_subprocess_shell`, misuse reported as errors (no loop, input for an unpiped
//! stdin, a write to an exited child), 100 concurrent `output()`s, and a `Child` waited
//! on another loop than its own (moved while its loop runs; outliving its loop).
//!
//! Tests run in parallel in this binary, each on its own loop, so another test's
//! children exist at the same time: every check here is about a pid the test spawned
//! itself (`tests/process_reaping.rs` checks "no child of this process" in child
//! processes of its own). Waits for a process to vanish are bounded loops on the loop
//! (`procfs::GUARD`, a hang guard), never timing assertions.

mod common;
#[path = "common/procfs.rs"]
mod procfs;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;

use common::SplitMix64;
use evloop::io::BufReader;
use evloop::process::{Child, Command, SpawnError, Stdio, create_subprocess_shell};
use evloop::{Error, create_task, time};

const MIB8: usize = 8 << 20;

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Stdin, stdout and stderr piped.
fn piped(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `a == b` without printing megabytes when they differ.
#[track_caller]
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

fn is_alive(pid: u32) -> bool {
    procfs::stat(pid).is_some_and(|s| s.state != 'Z')
}

/// A shell that exits with code 7 on SIGUSR1 and on nothing else (SIGKILL aside); it
/// prints `ready` once the trap is installed. Stdout is piped.
fn usr1_waiter() -> Command {
    let mut c = sh("trap 'exit 7' USR1; echo ready; while :; do sleep 0.05; done");
    c.stdout(Stdio::piped());
    c
}

/// Reads the `ready` line of a [`usr1_waiter`] (the trap is in place after it).
async fn until_ready(child: &mut Child) -> std::io::Result<()> {
    let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
    assert_eq!(out.readline().await?, b"ready\n");
    Ok(())
}

#[test]
fn exit_codes_and_status() {
    common::run_guarded(async {
        let s = sh("exit 3").spawn()?.wait().await?;
        assert_eq!(s.code(), Some(3));
        assert!(!s.success());
        let s = Command::new("true").spawn()?.wait().await?;
        assert!(s.success());
        assert_eq!(s.code(), Some(0));
        assert_eq!(Command::new("false").status().await?.code(), Some(1));
        assert_eq!(sh("exit 255").status().await?.code(), Some(255));
        assert_eq!(
            create_subprocess_shell("exit 42").status().await?.code(),
            Some(42)
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn children_killed_by_signals() {
    common::run_guarded(async {
        let mut c = Command::new("sleep").arg("1000").spawn()?;
        c.start_kill()?;
        let s = c.wait().await?;
        assert_eq!((s.code(), s.signal()), (None, Some(libc::SIGKILL)));

        let mut c = Command::new("sleep").arg("1000").spawn()?;
        c.terminate()?;
        let s = c.wait().await?;
        assert_eq!((s.code(), s.signal()), (None, Some(libc::SIGTERM)));

        let mut c = Command::new("sleep").arg("1000").spawn()?;
        c.send_signal(libc::SIGINT)?;
        assert_eq!(c.wait().await?.signal(), Some(libc::SIGINT));

        // kill() = start_kill + wait; the status stays available afterwards.
        let mut c = Command::new("sleep").arg("1000").spawn()?;
        c.kill().await?;
        assert_eq!(c.id(), None, "kill() reaps the child");
        assert_eq!(c.wait().await?.signal(), Some(libc::SIGKILL));
        assert_eq!(c.try_wait()?.and_then(|s| s.signal()), Some(libc::SIGKILL));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn output_captures_stdout_stderr_and_the_code() {
    common::run_guarded(async {
        let out = sh("printf out; printf err >&2; exit 4").output().await?;
        assert_eq!(out.stdout, b"out");
        assert_eq!(out.stderr, b"err");
        assert_eq!(out.status.code(), Some(4));
        // stdin is null unless set: `cat` sees end of file at once.
        let out = Command::new("cat").output().await?;
        assert!(out.status.success());
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        // Unless it is set.
        let out = Command::new("cat")
            .stdin(Stdio::from(std::fs::File::open("/proc/self/cmdline")?))
            .output()
            .await?;
        assert!(!out.stdout.is_empty(), "cat read the file given as stdin");
        // wait_with_output on a spawned child with piped streams.
        let child = sh("printf a; printf b >&2; exit 2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let out = child.wait_with_output().await?;
        assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"a"[..], &b"b"[..]));
        assert_eq!(out.status.code(), Some(2));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn output_drains_stdout_and_stderr_concurrently() {
    common::run_guarded(async {
        // 8 MiB to stderr *before* anything to stdout: reading stdout to its end first
        // would wait forever on a child blocked writing stderr.
        let out = sh("head -c 8388608 /dev/zero >&2; printf done")
            .output()
            .await?;
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(out.stdout, b"done");
        assert_same_bytes("stderr", &out.stderr, &vec![0; MIB8]);
        let out = sh("head -c 8388608 /dev/zero; printf done >&2")
            .output()
            .await?;
        assert_same_bytes("stdout", &out.stdout, &vec![0; MIB8]);
        assert_eq!(out.stderr, b"done");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn communicate_8_mib_through_cat() {
    // cat stops reading stdin once its stdout pipe is full: writing all of the input
    // before reading any output deadlocks after ~64 KiB.
    common::run_guarded(async {
        let input = random_bytes(MIB8, 1);
        let mut child = piped(Command::new("cat")).spawn()?;
        let out = child.communicate(&input).await?;
        assert!(out.status.success(), "{:?}", out.status);
        assert_same_bytes("cat's stdout", &out.stdout, &input);
        assert!(out.stderr.is_empty());
        assert_eq!(child.id(), None, "communicate reaps the child");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn communicate_8_mib_in_and_8_mib_on_each_output() {
    common::run_guarded(async {
        let input = random_bytes(MIB8, 2);
        // stderr first, then stdin: a sequential write-then-read blocks on stdin while
        // the child blocks on stderr.
        let mut child = piped(sh("head -c 8388608 /dev/zero >&2; cat")).spawn()?;
        let out = child.communicate(&input).await?;
        assert!(out.status.success(), "{:?}", out.status);
        assert_same_bytes("stdout", &out.stdout, &input);
        assert_same_bytes("stderr", &out.stderr, &vec![0; MIB8]);

        // All three at once: stderr written in the background while cat copies stdin to
        // stdout. stdout's end of file waits for `head` (which holds it too), so reading
        // stdout to its end before touching stderr deadlocks as well.
        let mut child = piped(sh("head -c 8388608 /dev/zero >&2 & cat; wait")).spawn()?;
        let out = child.communicate(&input).await?;
        assert!(out.status.success(), "{:?}", out.status);
        assert_same_bytes("stdout", &out.stdout, &input);
        assert_same_bytes("stderr", &out.stderr, &vec![0; MIB8]);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn communicate_with_a_child_that_closes_stdin_early() {
    common::run_guarded(async {
        let input = random_bytes(MIB8, 3);
        // Reads 10 bytes, prints them and exits: the rest of the write meets EPIPE,
        // which is not an error (asyncio ignores it too).
        let mut child = piped(sh("head -c 10; exit 0")).spawn()?;
        let out = child.communicate(&input).await?;
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(out.stdout, &input[..10]);
        // Never reads at all.
        let mut child = piped(Command::new("true")).spawn()?;
        let out = child.communicate(&input).await?;
        assert!(out.status.success());
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        // Exits with a code of its own after closing stdin: the code is reported.
        let mut child = piped(sh("exec 0<&-; printf bye; exit 9")).spawn()?;
        let out = child.communicate(&input).await?;
        assert_eq!(out.status.code(), Some(9));
        assert_eq!(out.stdout, b"bye");
        // No input at all: stdin is closed, so cat ends.
        let mut child = piped(Command::new("cat")).spawn()?;
        let out = child.communicate(b"").await?;
        assert!(out.status.success() && out.stdout.is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn environment_and_working_directory() {
    let dir = std::env::temp_dir().join(format!("evloop-process-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let canonical = std::fs::canonicalize(&dir).unwrap();
    let cwd = dir.clone();
    common::run_guarded(async move {
        let out = Command::new("env")
            .env("EVLOOP_TEST_A", "1")
            .envs([("EVLOOP_TEST_B", "two"), ("EVLOOP_TEST_C", "3")])
            .output()
            .await?;
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for want in ["EVLOOP_TEST_A=1", "EVLOOP_TEST_B=two", "EVLOOP_TEST_C=3"] {
            assert!(lines.contains(&want), "{want} missing from {text}");
        }
        assert!(
            lines.iter().any(|l| l.starts_with("PATH=")),
            "the parent's environment is inherited"
        );

        let out = Command::new("/usr/bin/env")
            .env_clear()
            .env("ONLY", "this")
            .output()
            .await?;
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "ONLY=this\n");

        let out = Command::new("env")
            .env("EVLOOP_TEST_GONE", "x")
            .env_remove("EVLOOP_TEST_GONE")
            .env_remove("HOME")
            .output()
            .await?;
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("EVLOOP_TEST_GONE"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("HOME=")), "{text}");

        let out = sh("pwd -P").current_dir(&cwd).output().await?;
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", canonical.display())
        );
        Ok::<_, Error>(())
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_program_is_not_found_and_named() {
    common::run_guarded(async {
        let Err(e) = Command::new("evloop-no-such-program").arg("x").spawn() else {
            panic!("spawned a program that does not exist");
        };
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        assert_eq!(
            e.to_string(),
            "spawn evloop-no-such-program: No such file or directory (os error 2)"
        );
        let detail = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<SpawnError>())
            .unwrap_or_else(|| panic!("not a SpawnError: {e:?}"));
        assert_eq!(detail.program(), "evloop-no-such-program");
        // The async helpers report the same error.
        let e = Command::new("evloop-no-such-program")
            .output()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("evloop-no-such-program"), "{e}");
        let e = Command::new("/nonexistent/dir/prog")
            .status()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("/nonexistent/dir/prog"), "{e}");
        // Not executable: the kind is kept (PermissionDenied), the program named.
        let e = Command::new("/etc/passwd").status().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e:?}");
        assert!(e.to_string().starts_with("spawn /etc/passwd: "), "{e}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn kill_on_drop_kills_and_reaps() {
    common::run_guarded(async {
        let child = Command::new("sleep")
            .arg("1000")
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().expect("running");
        assert!(is_alive(pid), "{:?}", procfs::stat(pid));
        drop(child);
        procfs::until_reaped(pid, "sleep 1000 dropped with kill_on_drop(true)").await;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_dropped_child_keeps_running_and_is_reaped_when_it_exits() {
    common::run_guarded(async {
        // cat between two socket pairs whose other ends the test holds: it runs until
        // the test closes its stdin, whatever happens to its `Child`.
        let (stdin_ours, stdin_theirs) = StdUnixStream::pair()?;
        let (mut stdout_ours, stdout_theirs) = StdUnixStream::pair()?;
        stdout_ours.set_read_timeout(Some(procfs::GUARD))?;
        let child = Command::new("cat")
            .stdin(Stdio::from(OwnedFd::from(stdin_theirs)))
            .stdout(Stdio::from(OwnedFd::from(stdout_theirs)))
            .spawn()?;
        let pid = child.id().expect("running");
        drop(child);
        // Let the loop run (a reaper, a kill if there were one) before checking.
        common::yield_times(20).await;
        time::sleep(Duration::from_millis(20)).await?;
        assert!(
            is_alive(pid),
            "dropped without kill_on_drop: {:?}",
            procfs::stat(pid)
        );
        // Still working: it echoes.
        let mut stdin_ours = stdin_ours;
        stdin_ours.write_all(b"ping")?;
        let mut back = [0u8; 4];
        stdout_ours.read_exact(&mut back)?;
        assert_eq!(&back, b"ping");
        // End of its input: it exits by itself, and is reaped (no zombie left).
        drop(stdin_ours);
        procfs::until_reaped(pid, "dropped cat after its stdin closed").await;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_cancelled_wait_neither_kills_nor_reaps() {
    common::run_guarded(async {
        let mut child = usr1_waiter().spawn()?;
        until_ready(&mut child).await?;
        let pid = child.id().expect("running");
        let log = common::new_log();
        let slot: Rc<RefCell<Option<Child>>> = Rc::new(RefCell::new(None));
        let task = {
            let (log, slot) = (log.clone(), slot.clone());
            create_task(async move {
                let mut child = child;
                common::push(&log, "waiting");
                let r = child.wait().await;
                // T3: an I/O wait resumes with an io::Error wrapping CancelledError.
                let cancelled = matches!(
                    &r,
                    Err(e) if e.get_ref().is_some_and(|i| i.is::<evloop::CancelledError>())
                );
                common::push(&log, format!("wait returned cancelled={cancelled}"));
                *slot.borrow_mut() = Some(child);
                r?;
                Ok::<_, Error>(())
            })
        };
        common::yield_times(10).await;
        assert_eq!(common::entries(&log), ["waiting"]);
        assert!(task.cancel());
        let e = task.await.expect_err("the wait was cancelled");
        assert!(e.is_cancelled(), "{e:?}");
        assert_eq!(
            common::entries(&log),
            ["waiting", "wait returned cancelled=true"]
        );
        let mut child = slot
            .borrow_mut()
            .take()
            .expect("the task handed the child back");
        assert!(child.try_wait()?.is_none(), "the child is still running");
        assert_eq!(child.id(), Some(pid));
        assert!(
            is_alive(pid),
            "not killed, not a zombie: {:?}",
            procfs::stat(pid)
        );

        // A wait dropped by a timeout: the same.
        let e = time::timeout(Duration::from_millis(20), child.wait())
            .await
            .expect_err("the child waits for SIGUSR1");
        assert!(e.is_timeout(), "{e:?}");
        assert!(child.try_wait()?.is_none());
        assert!(is_alive(pid), "{:?}", procfs::stat(pid));

        // The child exits while nobody waits (its exit event, a pidfd readiness,
        // arrives with no waiter registered): a new wait still sees it.
        child.send_signal(libc::SIGUSR1)?;
        procfs::until(
            "the shell exited on SIGUSR1",
            || (procfs::stat(pid).map(|s| s.state) == Some('Z')).then_some(()),
            || format!("{:?}", procfs::stat(pid)),
        )
        .await;
        assert_eq!(child.wait().await?.code(), Some(7));
        assert_eq!(child.id(), None);
        assert_eq!(procfs::stat(pid), None, "reaped by the wait");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn try_wait_id_and_kill_around_the_exit() {
    common::run_guarded(async {
        // cat on a piped stdin runs until the test closes it.
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
        let pid = child.id().expect("running");
        assert!(child.try_wait()?.is_none());
        assert!(child.try_wait()?.is_none(), "try_wait is repeatable");
        assert_eq!(child.id(), Some(pid));
        child.stdin.take().expect("piped").close()?;
        let status = procfs::until(
            "try_wait sees cat's exit",
            || child.try_wait().expect("try_wait"),
            || format!("{:?}", procfs::stat(pid)),
        )
        .await;
        assert!(status.success(), "{status:?}");
        assert_eq!(child.id(), None, "reaped by try_wait");
        assert_eq!(procfs::stat(pid), None);
        assert!(child.try_wait()?.is_some_and(|s| s.success()), "kept");
        assert!(child.wait().await?.success(), "wait after try_wait");
        child.kill().await?;
        assert!(
            child.wait().await?.success(),
            "kill after the exit changes nothing"
        );

        // Exited but not yet waited for (a zombie, unless something reaped it already):
        // kill() is Ok and the status is the child's own, not SIGKILL.
        let mut child = Command::new("true").spawn()?;
        let pid = child.id().expect("just spawned");
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
        child.kill().await?;
        let status = child.wait().await?;
        assert_eq!((status.code(), status.signal()), (Some(0), None));

        // Exited before its first wait: the wait returns the status.
        let mut child = sh("exit 12").spawn()?;
        let pid = child.id().expect("just spawned");
        procfs::until(
            "`exit 12` exited",
            || {
                procfs::stat(pid)
                    .is_none_or(|s| s.state == 'Z')
                    .then_some(())
            },
            || format!("{:?}", procfs::stat(pid)),
        )
        .await;
        assert_eq!(child.wait().await?.code(), Some(12));

        // Not piped: no pipes.
        let mut child = Command::new("true").spawn()?;
        assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
        assert!(child.wait().await?.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn wait_closes_stdin_first() {
    common::run_guarded(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        // cat only exits on end of file: wait would never return if it kept stdin open.
        assert!(child.wait().await?.success());
        assert!(child.stdin.is_none(), "wait took and closed stdin");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_pidfd_is_registered_while_a_wait_is_pending() {
    common::run_guarded(async {
        let child = Command::new("sleep").arg("1000").spawn()?;
        let pid = child.id().expect("running");
        let waiter = create_task(async move {
            let mut child = child;
            Ok::<_, Error>(child.wait().await?)
        });
        common::yield_times(5).await;
        assert!(!waiter.done());
        // Other tests' pidfds can only add to the count: presence is what is checked.
        assert!(
            procfs::pidfds() >= 1,
            "no anon_inode:[pidfd] in /proc/self/fd while a wait is pending"
        );
        // The child is ours and unreaped (its waiter is pending), so its pid is still
        // its own.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        let status = waiter.await?;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn lines_of_a_childs_stdout() {
    common::run_guarded(async {
        let mut child = Command::new("printf")
            .arg("a\\nb\\nc\\n")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            seen.push(line);
        }
        assert_eq!(seen, ["a", "b", "c"]);
        assert!(child.wait().await?.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn an_interleaved_conversation_with_cat() {
    common::run_guarded(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        // Each answer is read before the next question is written: cat answers while
        // its stdin stays open.
        for word in ["hello\n", "world\n", "a longer third line\n"] {
            stdin.write_all(word.as_bytes()).await?;
            assert_eq!(stdout.readline().await?, word.as_bytes());
        }
        let n = stdin.write(b"partial").await?;
        assert!(n > 0 && n <= 7);
        let mut back = vec![0u8; n];
        stdout.read_exact(&mut back).await?;
        assert_eq!(back, &b"partial"[..n]);
        // close() ends cat's input: cat exits and its stdout reaches end of file, with
        // no wait() (which would close stdin itself) involved.
        stdin.close()?;
        let mut rest = Vec::new();
        assert_eq!(stdout.read_to_end(&mut rest).await?, 0);
        let e = stdin.write(b"x").await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::BrokenPipe,
            "a write after close: {e:?}"
        );
        let status = procfs::until(
            "cat exited after close()",
            || child.try_wait().expect("try_wait"),
            String::new,
        )
        .await;
        assert!(status.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn one_childs_stdout_as_anothers_stdin() {
    common::run_guarded(async {
        let mut first = Command::new("printf")
            .arg("b\\na\\nc\\n")
            .stdout(Stdio::piped())
            .spawn()?;
        let out = Command::new("sort")
            .stdin(Stdio::try_from(first.stdout.take().expect("piped"))?)
            .output()
            .await?;
        assert_eq!(out.stdout, b"a\nb\nc\n");
        assert!(first.wait().await?.success());

        // The pipe handed over is blocking again: a reader that reaches an empty pipe
        // waits (a non-blocking one would fail with EAGAIN). `gate` holds back the
        // first child's output until the second is asleep in its read.
        let mut first = sh("read x; printf 'after the gate'")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let second = Command::new("cat")
            .stdin(Stdio::try_from(first.stdout.take().expect("piped"))?)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let cat = second.id().expect("running");
        procfs::until(
            "cat asleep in read (or exited)",
            || {
                procfs::stat(cat)
                    .is_some_and(|s| s.state == 'S' || s.state == 'Z')
                    .then_some(())
            },
            || format!("{:?}", procfs::stat(cat)),
        )
        .await;
        let mut gate = first.stdin.take().expect("piped");
        gate.write_all(b"go\n").await?;
        gate.close()?;
        let out = second.wait_with_output().await?;
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "cat's stdin must be a blocking pipe"
        );
        assert_eq!(out.stdout, b"after the gate");
        assert!(out.status.success());
        assert!(first.wait().await?.success());

        // A child's stdin as another's stdout: printf writes straight into cat.
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let into_cat = Stdio::try_from(cat.stdin.take().expect("piped"))?;
        // The Command (and its copy of the pipe) is dropped at the end of the statement,
        // so cat sees end of file once printf exits.
        let mut writer = Command::new("printf")
            .arg("via stdin")
            .stdout(into_cat)
            .spawn()?;
        assert!(writer.wait().await?.success());
        let out = cat.wait_with_output().await?;
        assert_eq!(out.stdout, b"via stdin");

        // And stderr.
        let mut noisy = sh("printf 'to stderr' >&2")
            .stderr(Stdio::piped())
            .spawn()?;
        let out = Command::new("cat")
            .stdin(Stdio::try_from(noisy.stderr.take().expect("piped"))?)
            .output()
            .await?;
        assert_eq!(out.stdout, b"to stderr");
        assert!(noisy.wait().await?.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn create_subprocess_shell_runs_bin_sh() {
    common::run_guarded(async {
        let out = create_subprocess_shell("echo $((6*7)) | tr -d '\\n'")
            .output()
            .await?;
        assert_eq!(out.stdout, b"42");
        assert!(out.status.success());
        let cmd = create_subprocess_shell("exit 5");
        assert_eq!(cmd.as_std().get_program(), "/bin/sh");
        let args: Vec<_> = cmd.as_std().get_args().collect();
        assert_eq!(args, ["-c", "exit 5"]);
        let mut child = create_subprocess_shell("read x; exit $x")
            .stdin(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(b"6\n").await?;
        assert_eq!(child.wait().await?.code(), Some(6));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn from_a_std_command_and_as_std() {
    common::run_guarded(async {
        let mut std_cmd = std::process::Command::new("sh");
        std_cmd.args(["-c", "printf \"$0 $1\"", "zero", "one"]);
        let mut cmd = Command::from(std_cmd);
        cmd.as_std_mut().env("EVLOOP_UNUSED", "1");
        assert_eq!(cmd.as_std().get_program(), "sh");
        let out = cmd.output().await?;
        assert_eq!(out.stdout, b"zero one");
        // The builder can be reused.
        assert_eq!(cmd.output().await?.stdout, b"zero one");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    // Off a loop thread: an error naming the program, nothing started.
    let Err(e) = Command::new("true").spawn() else {
        panic!("spawned with no loop running on this thread");
    };
    assert!(e.to_string().contains("true"), "{e}");
    common::run_guarded(async {
        // Input for a stdin that is not piped.
        let mut child = Command::new("true").stdout(Stdio::piped()).spawn()?;
        let e = child.communicate(b"input").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        assert!(
            child.wait().await?.success(),
            "the child is still there to wait for"
        );
        // Nothing piped: empty output.
        let out = Command::new("true").spawn()?.wait_with_output().await?;
        assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
        // Writing to a child that has exited: BrokenPipe, no SIGPIPE.
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        assert!(child.wait().await?.success());
        let e = stdin.write_all(&[0u8; 1 << 20]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e:?}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// stdout, stderr and exit code of one child.
type Outcome = (Vec<u8>, Vec<u8>, Option<i32>);

#[test]
fn a_hundred_concurrent_outputs() {
    common::run_guarded(async {
        let tasks: Vec<evloop::Task<Outcome>> = (0..100)
            .map(|i| {
                create_task(async move {
                    let out = sh(&format!(
                        "head -c {} /dev/zero | tr '\\0' o; echo err{i} >&2; exit {}",
                        i * 1000,
                        i % 3
                    ))
                    .output()
                    .await?;
                    Ok::<_, Error>((out.stdout, out.stderr, out.status.code()))
                })
            })
            .collect();
        for (i, (stdout, stderr, code)) in evloop::gather(tasks).await?.into_iter().enumerate() {
            assert_eq!(stdout.len(), i * 1000, "child {i}");
            assert!(stdout.iter().all(|&b| b == b'o'), "child {i}");
            assert_eq!(stderr, format!("err{i}\n").as_bytes());
            assert_eq!(code, Some((i % 3) as i32));
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A `Child` outliving the loop it was spawned on: once it has exited, `try_wait`
/// and `wait` (on another loop) still reap it and return its status.
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
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = common::run_guarded(async { child.wait().await })
        .expect("wait on a child that exited after its loop closed");
    assert!(status.success(), "{status:?}");
    assert_eq!(procfs::stat(pid), None);
    assert!(child.try_wait().unwrap().is_some_and(|s| s.success()));
}

#[test]
fn a_child_that_outlives_its_loop_is_still_reaped_by_wait() {
    outliving_its_loop();
}

#[test]
fn a_child_moved_to_another_loop_thread() {
    // Child is Send: spawned on one loop, waited on another while the first still runs.
    let (tx, rx) = std::sync::mpsc::channel::<Child>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let spawner = std::thread::spawn(move || {
        common::run_guarded(async move {
            let child = sh("read x; exit 4")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            tx.send(child).unwrap();
            // Keep this loop (the child's reactor) running until the other side is done.
            procfs::until(
                "the other loop is done",
                || done_rx.try_recv().ok(),
                String::new,
            )
            .await;
            Ok::<_, Error>(())
        })
        .unwrap();
    });
    let mut child = rx.recv().unwrap();
    common::run_guarded(async {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(b"go\n").await?;
        assert_eq!(child.wait().await?.code(), Some(4));
        Ok::<_, Error>(())
    })
    .unwrap();
    done_tx.send(()).unwrap();
    spawner.join().unwrap();
}

#[test]
fn futures_io_traits_on_the_pipes() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    common::run_guarded(async {
        let input = random_bytes(1 << 20, 4);
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let data = input.clone();
        let writer = create_task(async move {
            AsyncWriteExt::write_all(&mut stdin, &data).await?;
            AsyncWriteExt::flush(&mut stdin).await?;
            AsyncWriteExt::close(&mut stdin).await?;
            Ok::<_, Error>(())
        });
        let mut out = Vec::new();
        AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
        writer.await?;
        assert_same_bytes("cat's stdout", &out, &input);
        assert!(child.wait().await?.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[cfg(feature = "tokio-io")]
#[test]
fn tokio_io_traits_on_the_pipes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    common::run_guarded(async {
        let input = random_bytes(1 << 20, 5);
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let data = input.clone();
        let writer = create_task(async move {
            AsyncWriteExt::write_all(&mut stdin, &data).await?;
            AsyncWriteExt::shutdown(&mut stdin).await?;
            Ok::<_, Error>(())
        });
        let mut out = Vec::new();
        AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
        let mut err = Vec::new();
        AsyncReadExt::read_to_end(&mut stderr, &mut err).await?;
        writer.await?;
        assert_same_bytes("cat's stdout", &out, &input);
        assert!(err.is_empty());
        assert!(child.wait().await?.success());
        Ok::<_, Error>(())
    })
    .unwrap();
}
