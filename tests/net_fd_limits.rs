//! Accept under descriptor exhaustion (SPEC N5, Q3): `EMFILE` on accept is returned as
//! an error, the loop does not spin on it (the listener stays readable, so retrying at
//! once would), and accept serves again once descriptors are free.
//!
//! RLIMIT_NOFILE is process-wide, so the scenario runs in a child process: the parent
//! test re-executes this test binary with `EVLOOP_FD_LIMIT_CHILD=1`, filtered to the
//! child-mode test, and checks its exit status and report. Without the variable the
//! child-mode test does nothing.

mod common;

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evloop::net::{TcpListener, TcpStream};
use evloop::{Error, LoopHandle, Runtime, time};

const CHILD_ENV: &str = "EVLOOP_FD_LIMIT_CHILD";
const CHILD_TEST: &str = "child_mode_accept_under_a_low_fd_limit";

/// The width of the window in which the loop must stay (nearly) idle at EMFILE.
const WINDOW: Duration = Duration::from_millis(300);
/// Loop iterations allowed in the window. The back-off (10 ms doubling to 500 ms) makes
/// at most a handful of retries in 300 ms, a few iterations each; an accept loop that
/// spins makes hundreds of thousands.
const MAX_ITERATIONS: u64 = 1000;
/// Accept errors allowed in the window (a spin inside one task poll shows up here).
const MAX_ERRORS: u64 = 100;

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    emfile: AtomicU64,
    other_errors: AtomicU64,
}

/// The soft limit that leaves exactly `free` descriptor numbers available: new fds take
/// the lowest free number, and must be below the limit (open fds above it stay usable).
fn limit_leaving(free: usize) -> u64 {
    let mut found = 0;
    for fd in 0.. {
        // SAFETY: F_GETFD only queries the descriptor table; any number is allowed.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            found += 1;
            if found == free {
                return fd as u64 + 1;
            }
        }
    }
    unreachable!()
}

fn set_soft_nofile(limit: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = limit;
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit is always permitted.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
        0,
        "setrlimit: {}",
        io::Error::last_os_error()
    );
}

async fn echo(stream: TcpStream) -> Result<(), Error> {
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// The child-mode scenario (a no-op unless `EVLOOP_FD_LIMIT_CHILD` is set).
#[test]
fn child_mode_accept_under_a_low_fd_limit() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let report = rt
        .block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;

            // 20 connections wait in the accept queue (loopback connects complete in
            // the kernel, before any accept).
            let mut clients: Vec<std::net::TcpStream> = (0..20)
                .map(|_| std::net::TcpStream::connect(addr))
                .collect::<io::Result<_>>()?;

            // An observer thread (started before the limit is lowered) waits for the
            // first EMFILE, then counts loop iterations and accept errors over WINDOW.
            // It checks the bounds itself and ends the process at once if they are
            // broken: an accept loop that spins inside one task poll never lets this
            // loop check anything.
            // The loop waits for the result without iterating (one future, one timer).
            let window: evloop::Future<(u64, u64)> = evloop::Future::new();
            let counts = Arc::new(Counts::default());
            let observer = {
                let (handle, counts, window) =
                    (LoopHandle::current(), counts.clone(), window.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while counts.emfile.load(Ordering::SeqCst) == 0 {
                        if Instant::now() > deadline {
                            eprintln!("CHILD FAIL: accept never reported EMFILE ({counts:?})");
                            std::process::exit(3);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let i0 = handle.stats().iterations;
                    let e0 = counts.emfile.load(Ordering::SeqCst);
                    std::thread::sleep(WINDOW);
                    let iterations = handle.stats().iterations - i0;
                    let errors = counts.emfile.load(Ordering::SeqCst) - e0;
                    if iterations >= MAX_ITERATIONS || errors >= MAX_ERRORS {
                        eprintln!(
                            "CHILD FAIL: the loop spun at EMFILE: {iterations} iterations and \
                             {errors} EMFILE errors in {WINDOW:?} (bounds {MAX_ITERATIONS}, \
                             {MAX_ERRORS})"
                        );
                        std::process::exit(4);
                    }
                    let _ = window.set_result((iterations, errors));
                })
            };

            // Leave room for two more descriptors.
            set_soft_nofile(limit_leaving(2));

            let acceptor: evloop::Task<()> = {
                let counts = counts.clone();
                evloop::create_task(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                counts.accepted.fetch_add(1, Ordering::SeqCst);
                                drop(evloop::create_task(echo(stream)));
                            }
                            // The accept error names the listener (N6); the OS code
                            // is the wrapped error's.
                            Err(e)
                                if e.get_ref()
                                    .and_then(|i| i.downcast_ref::<evloop::net::AddrError>())
                                    .and_then(evloop::net::AddrError::raw_os_error)
                                    == Some(libc::EMFILE) =>
                            {
                                counts.emfile.fetch_add(1, Ordering::SeqCst);
                                log::warn!("fd-limit test: accept failed: {e}");
                            }
                            Err(e) => {
                                let e = Error::from(e);
                                if e.is_cancelled() {
                                    return Err(e);
                                }
                                counts.other_errors.fetch_add(1, Ordering::SeqCst);
                                log::warn!("fd-limit test: accept failed: {e}");
                            }
                        }
                    }
                })
            };

            // The window is measured by the observer thread, with the wall clock.
            let (iterations, errors) = time::timeout(Duration::from_secs(20), window).await??;
            let accepted_at_limit = counts.accepted.load(Ordering::SeqCst);
            assert!(
                accepted_at_limit < 20,
                "EMFILE with {accepted_at_limit} accepted"
            );
            assert_eq!(counts.other_errors.load(Ordering::SeqCst), 0);

            // Free descriptors: close the clients that were never accepted (their
            // queued connections then end at once when accepted).
            clients.truncate(accepted_at_limit as usize);
            let accepted_before = counts.accepted.load(Ordering::SeqCst);

            // A new client is served (its own socket may race the accepts for a free
            // descriptor: retry on EMFILE until the deadline).
            let echoed = evloop::spawn_blocking(move || -> Result<Vec<u8>, String> {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut s = loop {
                    match std::net::TcpStream::connect(addr) {
                        Ok(s) => break s,
                        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                            if Instant::now() > deadline {
                                return Err(format!("client socket: {e}"));
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => return Err(format!("connect: {e}")),
                    }
                };
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                s.write_all(b"served again").map_err(|e| e.to_string())?;
                let mut back = vec![0u8; 12];
                s.read_exact(&mut back).map_err(|e| format!("echo: {e}"))?;
                Ok(back)
            })
            .await?
            .map_err(Error::msg)?;
            assert_eq!(echoed, b"served again");
            assert!(counts.accepted.load(Ordering::SeqCst) > accepted_before);
            acceptor.cancel();
            drop(clients);
            observer.join().expect("observer thread");
            Ok::<_, Error>(format!(
                "accepted_at_limit={accepted_at_limit} iterations_in_window={iterations} \
                 emfile_in_window={errors} total_emfile={}",
                counts.emfile.load(Ordering::SeqCst)
            ))
        })
        .unwrap();
    let backoff_logs = common::logs_containing("retrying in");
    assert!(
        !backoff_logs.is_empty(),
        "evloop logs the back-off (log::warn \"accept: …; retrying in N ms\")"
    );
    println!("CHILD OK {report} backoff_logs={}", backoff_logs.len());
}

#[test]
fn accept_at_emfile_backs_off_without_spinning_and_recovers() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-executing the test binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("CHILD OK "),
        "the child-mode test did not run:\n{stdout}"
    );
    println!(
        "{}",
        stdout.lines().find(|l| l.contains("CHILD OK")).unwrap()
    );
}
