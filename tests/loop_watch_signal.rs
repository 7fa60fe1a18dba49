//! fd watches (SPEC L11: `add_reader` / `add_writer`, level-triggered as asyncio) and
//! signals (L12: `add_signal_handler`, `remove_signal_handler`, `signal::wait`,
//! `signal::ctrl_c`).
//!
//! Tests run in parallel in one process and signals are process-wide, so every signal
//! test uses its own signal (USR1, USR2, WINCH, URG, HUP), installs its handler before
//! anything sends the signal, and never uses SIGINT / SIGTERM in this process: the
//! `ctrl_c` test runs in a child process (this binary re-executed, filtered to the
//! child-mode test).

mod common;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::DropSpy;
use evloop::{Error, LoopHandle, signal, time};

const TEN_S: Duration = Duration::from_secs(10);

use common::eventually;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// A socket pair whose first end is non-blocking (the watched end).
fn pair() -> (Arc<UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (Arc::new(a), b)
}

/// Sends `signum` to this process (any thread may take it).
fn kill_self(signum: i32) {
    // SAFETY: kill(2) with our own pid and a signal whose handler is installed.
    let rc = unsafe { libc::kill(libc::getpid(), signum) };
    assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------
// L11: add_reader / add_writer
// ---------------------------------------------------------------------------------

/// Five bytes pending and a callback that reads one byte per call: exactly five calls
/// (level-triggered: it is called again while data stays unread), then none until more
/// data arrives. No call ever finds the socket empty.
#[test]
fn add_reader_is_level_triggered() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (reader, mut writer) = pair();
        let fd = reader.as_raw_fd();
        let (calls, empty_calls) = (counter(), counter());
        writer.write_all(b"12345")?;
        {
            let (reader, calls, empty_calls) = (reader.clone(), calls.clone(), empty_calls.clone());
            loop_.add_reader(fd, move || {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut byte = [0u8; 1];
                if (&*reader).read(&mut byte).is_err() {
                    empty_calls.fetch_add(1, Ordering::SeqCst);
                }
            })?;
        }
        eventually("five calls for five bytes", || get(&calls) >= 5).await;
        common::yield_times(30).await;
        assert_eq!(get(&calls), 5, "no call without data");

        writer.write_all(b"67")?;
        eventually("two more calls", || get(&calls) >= 7).await;
        common::yield_times(30).await;
        assert_eq!(get(&calls), 7);
        assert_eq!(get(&empty_calls), 0, "never called on an empty socket");
        assert!(loop_.remove_reader(fd));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn remove_reader_reports_whether_it_was_watched_and_stops_the_callback() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (reader, mut writer) = pair();
        let fd = reader.as_raw_fd();
        assert!(!loop_.remove_reader(fd), "never watched");
        let calls = counter();
        {
            let calls = calls.clone();
            // Never reads: the data stays, so the callback keeps coming.
            loop_.add_reader(fd, move || {
                calls.fetch_add(1, Ordering::SeqCst);
            })?;
        }
        writer.write_all(b"x")?;
        eventually("repeated calls while data stays unread", || {
            get(&calls) >= 3
        })
        .await;
        assert!(!loop_.remove_writer(fd), "no writer was watched");
        assert!(loop_.remove_reader(fd));
        let after = get(&calls);
        common::yield_times(30).await;
        assert_eq!(get(&calls), after, "no call after remove_reader");
        assert!(!loop_.remove_reader(fd), "already removed");

        // Watching again works.
        loop_.add_reader(fd, {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        eventually("called again after re-adding", || get(&calls) > after).await;
        assert!(loop_.remove_reader(fd));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn add_writer_fires_while_writable_and_remove_writer_stops_it() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (sock, mut peer) = pair();
        let fd = sock.as_raw_fd();
        let calls = counter();
        loop_.add_writer(fd, {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        eventually("repeated calls while writable", || get(&calls) >= 3).await;
        assert!(loop_.remove_writer(fd));
        let after = get(&calls);
        common::yield_times(30).await;
        assert_eq!(get(&calls), after, "no call after remove_writer");
        assert!(!loop_.remove_writer(fd));

        // A full socket is not writable: no call until the peer drains it.
        let chunk = [0u8; 8192];
        let mut filled = 0usize;
        loop {
            match (&*sock).write(&chunk) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let full_calls = counter();
        loop_.add_writer(fd, {
            let full_calls = full_calls.clone();
            move || {
                full_calls.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        common::yield_times(30).await;
        assert_eq!(get(&full_calls), 0, "not writable while the buffer is full");
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; filled];
            peer.read_exact(&mut buf).map(|()| peer)
        });
        eventually("writable after the drain", || get(&full_calls) >= 1).await;
        assert!(loop_.remove_writer(fd));
        drain.join().unwrap()?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn adding_again_replaces_the_callback_and_drops_the_old_one() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (reader, mut writer) = pair();
        let fd = reader.as_raw_fd();
        let (first, second) = (counter(), counter());
        let (spy, probe) = DropSpy::new();
        loop_.add_reader(fd, {
            let first = first.clone();
            move || {
                let _keep = &spy;
                first.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        loop_.add_reader(fd, {
            let second = second.clone();
            move || {
                second.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        assert_eq!(probe.drops(), 1, "the replaced callback is dropped");
        writer.write_all(b"x")?;
        eventually("the new callback runs", || get(&second) >= 3).await;
        assert_eq!(get(&first), 0, "the replaced callback never runs");

        // Reader and writer on the same fd are independent.
        let writes = counter();
        loop_.add_writer(fd, {
            let writes = writes.clone();
            move || {
                writes.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        eventually("the writer runs", || get(&writes) >= 2).await;
        assert!(loop_.remove_reader(fd));
        let (r, w) = (get(&second), get(&writes));
        eventually("the writer keeps running alone", || get(&writes) >= w + 3).await;
        assert_eq!(get(&second), r, "the reader stopped");
        assert!(loop_.remove_writer(fd));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn add_reader_off_the_loop_thread_is_an_error() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (reader, mut writer) = pair();
        let fd = reader.as_raw_fd();
        let calls = counter();
        loop_.add_reader(fd, {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        let (added, added_writer, removed) = {
            let loop_ = loop_.clone();
            std::thread::spawn(move || {
                let added = loop_.add_reader(fd, || {}).map_err(|e| e.to_string());
                let added_writer = loop_.add_writer(fd, || {}).map_err(|e| e.to_string());
                (added, added_writer, loop_.remove_reader(fd))
            })
            .join()
            .unwrap()
        };
        let err = added.expect_err("add_reader off the loop thread");
        assert!(err.contains("loop's thread"), "{err}");
        let err = added_writer.expect_err("add_writer off the loop thread");
        assert!(err.contains("loop's thread"), "{err}");
        assert!(!removed, "remove_reader off the loop thread does nothing");
        // The original watch is untouched.
        writer.write_all(b"x")?;
        eventually("the original callback still runs", || get(&calls) >= 1).await;
        assert!(loop_.remove_reader(fd));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn add_reader_refuses_fds_the_reactor_cannot_watch() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        assert!(loop_.add_reader(-1, || {}).is_err(), "an invalid fd");
        // epoll refuses regular files.
        let file = std::fs::File::open(std::env::current_exe()?)?;
        assert!(
            loop_.add_reader(file.as_raw_fd(), || {}).is_err(),
            "a regular file"
        );
        assert!(!loop_.remove_reader(file.as_raw_fd()));
        // An fd an evloop socket already registered with this loop.
        let (a, _b) = evloop::net::UnixStream::pair()?;
        let err = loop_
            .add_reader(a.as_raw_fd(), || {})
            .expect_err("already registered");
        assert!(!loop_.remove_reader(a.as_raw_fd()), "{err}");
        let mut buf = [0u8; 1];
        assert_eq!(
            a.try_read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "the socket is unaffected"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_panicking_reader_callback_is_reported_and_the_watch_keeps_working() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let seen = common::capture_exceptions(&loop_);
        let (reader, mut writer) = pair();
        let fd = reader.as_raw_fd();
        let calls = counter();
        loop_.add_reader(fd, {
            let (reader, calls) = (reader.clone(), calls.clone());
            move || {
                let mut byte = [0u8; 1];
                let _ = (&*reader).read(&mut byte);
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("reader boom");
                }
            }
        })?;
        writer.write_all(b"abc")?;
        eventually("all three bytes consumed", || get(&calls) >= 3).await;
        common::yield_times(20).await;
        assert_eq!(get(&calls), 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].message.contains("reader callback"),
            "{}",
            seen[0].message
        );
        let exc = seen[0].exception.as_ref().expect("the panic");
        assert!(exc.is_panic(), "{exc:?}");
        assert!(exc.to_string().contains("reader boom"), "{exc}");
        assert!(loop_.remove_reader(fd));
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// L12: signals
// ---------------------------------------------------------------------------------

#[test]
fn a_signal_handler_runs_on_the_loop_thread() {
    let test_thread = std::thread::current().id();
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        let ran_on = Arc::new(Mutex::new(Vec::new()));
        loop_.add_signal_handler(libc::SIGUSR1, {
            let (ran_on, loop_) = (ran_on.clone(), loop_.clone());
            move || {
                let on_loop = LoopHandle::try_current().as_ref() == Some(&loop_);
                ran_on
                    .lock()
                    .unwrap()
                    .push((std::thread::current().id(), on_loop));
            }
        })?;
        kill_self(libc::SIGUSR1);
        eventually("the SIGUSR1 handler ran", || {
            !ran_on.lock().unwrap().is_empty()
        })
        .await;
        let (thread, on_loop) = ran_on.lock().unwrap()[0];
        assert_eq!(thread, test_thread, "run on the loop's thread");
        assert!(on_loop, "as a callback of this loop");

        // Another signal runs it again.
        let before = ran_on.lock().unwrap().len();
        kill_self(libc::SIGUSR1);
        eventually("the handler ran again", || {
            ran_on.lock().unwrap().len() > before
        })
        .await;

        assert!(loop_.remove_signal_handler(libc::SIGUSR1));
        assert!(!loop_.remove_signal_handler(libc::SIGUSR1));
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// After removal the handler does not run; adding again replaces. `signal::wait` is
/// the observer that proves the signal was delivered and dispatched.
#[test]
fn remove_signal_handler_stops_it_and_adding_again_replaces() {
    const SIG: i32 = libc::SIGWINCH;
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let (a, b) = (counter(), counter());
        let (spy, probe) = DropSpy::new();
        loop_.add_signal_handler(SIG, {
            let a = a.clone();
            move || {
                let _keep = &spy;
                a.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        loop_.add_signal_handler(SIG, {
            let b = b.clone();
            move || {
                b.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        assert_eq!(probe.drops(), 1, "the replaced handler is dropped");
        kill_self(SIG);
        eventually("the new handler ran", || get(&b) >= 1).await;
        assert_eq!(get(&a), 0, "the replaced handler never runs");

        assert!(loop_.remove_signal_handler(SIG));
        assert!(!loop_.remove_signal_handler(SIG));
        let calls = get(&b);
        let observer = signal::wait(SIG);
        kill_self(SIG);
        time::timeout(TEN_S, observer).await??;
        common::yield_times(10).await;
        assert_eq!(get(&b), calls, "a removed handler does not run");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_panicking_signal_handler_is_reported_and_the_loop_goes_on() {
    const SIG: i32 = libc::SIGURG;
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let seen = common::capture_exceptions(&loop_);
        let calls = counter();
        loop_.add_signal_handler(SIG, {
            let calls = calls.clone();
            move || {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("signal boom");
                }
            }
        })?;
        kill_self(SIG);
        eventually("the handler ran", || get(&calls) >= 1).await;
        kill_self(SIG);
        eventually("the handler ran again", || get(&calls) >= 2).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let exc = seen[0].exception.as_ref().expect("the panic");
        assert!(exc.to_string().contains("signal boom"), "{exc}");
        assert!(loop_.remove_signal_handler(SIG));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn signals_that_cannot_be_handled_are_refused() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 65, 1000] {
            let err = loop_
                .add_signal_handler(signum, || {})
                .expect_err("refused");
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "signal {signum}: {err}"
            );
            assert!(!loop_.remove_signal_handler(signum));
        }
        let err = time::timeout(TEN_S, signal::wait(libc::SIGKILL))
            .await?
            .expect_err("wait(SIGKILL) fails at once");
        assert!(!err.is_cancelled(), "{err:?}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn signal_wait_completes_on_the_next_signal() {
    const SIG: i32 = libc::SIGUSR2;
    common::run_guarded(async {
        let first = signal::wait(SIG);
        let second = signal::wait(SIG);
        common::yield_times(10).await;
        assert!(!first.done() && !second.done(), "no signal yet");
        // SAFETY: raise(3) of a signal this loop watches (signal::wait installed it).
        assert_eq!(unsafe { libc::raise(SIG) }, 0);
        time::timeout(TEN_S, first.clone()).await??;
        time::timeout(TEN_S, second).await??;

        // A wait started afterwards waits for the next one.
        let next = signal::wait(SIG);
        common::yield_times(10).await;
        assert!(
            !next.done(),
            "an earlier signal does not complete a later wait"
        );
        kill_self(SIG);
        time::timeout(TEN_S, next).await??;
        assert!(first.done());
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Two loops on two threads watching the same signal: one signal runs both handlers,
/// each on its own loop's thread.
#[test]
fn one_signal_reaches_every_loop_that_watches_it() {
    const SIG: i32 = libc::SIGHUP;
    let ready = Arc::new(Barrier::new(3));
    let sent = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (ready, sent) = (ready.clone(), sent.clone());
            std::thread::spawn(move || {
                let me = std::thread::current().id();
                common::run_guarded(async move {
                    let loop_ = LoopHandle::current();
                    let ran_on = Arc::new(Mutex::new(None));
                    loop_.add_signal_handler(SIG, {
                        let ran_on = ran_on.clone();
                        move || *ran_on.lock().unwrap() = Some(std::thread::current().id())
                    })?;
                    ready.wait();
                    sent.wait();
                    eventually("the SIGHUP handler ran", || {
                        ran_on.lock().unwrap().is_some()
                    })
                    .await;
                    assert!(loop_.remove_signal_handler(SIG));
                    let ran = ran_on.lock().unwrap().expect("checked");
                    Ok::<_, Error>(ran == me)
                })
            })
        })
        .collect();
    ready.wait();
    kill_self(SIG);
    sent.wait();
    for t in threads {
        assert!(
            t.join().unwrap().unwrap(),
            "the handler ran on its own loop's thread"
        );
    }
}

// ---------------------------------------------------------------------------------
// ctrl_c, in a child process
// ---------------------------------------------------------------------------------

const CHILD_ENV: &str = "EVLOOP_CTRL_C_CHILD";

/// Child mode (a no-op unless `EVLOOP_CTRL_C_CHILD` is set): `ctrl_c()` completes on
/// SIGINT; once the loop is gone, a later SIGINT is ignored (the documented behaviour:
/// evloop's process-wide handler stays installed and no longer forwards it).
#[test]
fn child_mode_ctrl_c() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    evloop::run(async {
        let ctrl_c = signal::ctrl_c();
        common::yield_times(5).await;
        assert!(!ctrl_c.done());
        // SAFETY: raise(3) of SIGINT while ctrl_c() watches it.
        assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
        time::timeout(TEN_S, ctrl_c).await??;
        println!("CHILD ctrl_c completed");
        Ok::<_, Error>(())
    })
    .unwrap();
    // SAFETY: raise(3); the point is what happens to the process.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    println!("CHILD survived a later SIGINT");
}

#[test]
fn ctrl_c_completes_on_sigint_in_a_child_process() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args([
            "child_mode_ctrl_c",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("re-executing the test binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHILD ctrl_c completed"), "{stdout}");
    assert!(stdout.contains("CHILD survived a later SIGINT"), "{stdout}");
}

// ---------------------------------------------------------------------------------
// Regression pins
// ---------------------------------------------------------------------------------

/// Pins a bug (fails until fixed): a connected UDP socket that got an ICMP "port
/// unreachable" has a pending socket error (EPOLLERR). The reader callback consumes it
/// (`recv` returns `ConnectionRefused`); from then on the fd is neither readable nor in
/// error, so a level-triggered watch (asyncio's semantics, L11) must not be called
/// again until something arrives. evloop keeps the error bit of its readiness cache
/// forever (`clear_readiness` clears only the readable / writable bits), so the callback
/// runs on every iteration, each `recv` returning `WouldBlock`: a busy loop.
#[test]
fn a_reader_is_not_called_again_once_a_socket_error_is_consumed() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
        let sock = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0")?);
        sock.set_nonblocking(true)?;
        sock.connect(closed)?; // nothing listens there any more
        let fd = sock.as_raw_fd();
        let results = Arc::new(Mutex::new(Vec::<String>::new()));
        loop_.add_reader(fd, {
            let (sock, results) = (sock.clone(), results.clone());
            move || {
                let mut buf = [0u8; 16];
                let r = sock.recv(&mut buf);
                results.lock().unwrap().push(match r {
                    Ok(n) => format!("data {n}"),
                    Err(e) => format!("{:?}", e.kind()),
                });
            }
        })?;
        sock.send(b"anyone?")?; // answered by ICMP port unreachable
        eventually("the reader saw the error", || {
            !results.lock().unwrap().is_empty()
        })
        .await;
        common::yield_times(50).await;
        let seen = results.lock().unwrap().clone();
        assert!(loop_.remove_reader(fd));
        assert_eq!(
            seen.first().map(String::as_str),
            Some("ConnectionRefused"),
            "{seen:?}"
        );
        assert_eq!(
            seen.len(),
            1,
            "called again with nothing to read ({} calls in 50 iterations; first calls: {:?})",
            seen.len(),
            &seen[..seen.len().min(4)]
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}
