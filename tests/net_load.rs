//! Load (SPEC Q5, with N1, N2): 10 000 concurrent loopback TCP connections on one evloop
//! loop, every byte echoed.
//!
//! How: the server is this test process — one `Runtime`, one `TcpListener`, one task per
//! accepted connection echoing until end-of-stream. Both ends of 10 000 connections do
//! not fit under one process's descriptor limit here, so the client side runs in a child
//! process: the test re-executes this test binary with `EVLOOP_NET_LOAD_CHILD=<server
//! address>`, filtered to the child-mode test (a no-op without the variable). The
//! client is an evloop loop too; it
//!
//! 1. opens all 10 000 connections (connect attempts run 500 at a time so the listen
//!    backlog does not overflow) and keeps every one open;
//! 2. only then sends on each a distinct payload of 2–4 KiB that starts with the
//!    connection's index, reads the echo back and checks every byte;
//! 3. closes them all once every echo was verified, and prints a report.
//!
//! The server checks that it accepted 10 000 connections, that all 10 000 were open at
//! the same time (its peak of open connections — guaranteed by step 3 if every echo
//! arrived), that it echoed exactly the number of bytes the client sent, that no
//! connection failed, and that every connection was closed after the client's exit.
//!
//! Both processes raise their soft `RLIMIT_NOFILE` to the hard limit; if the hard limit
//! is below 10 100 the test fails saying so. Waits are bounded (a 120 s watchdog in the
//! server, a 100 s timeout in the client) only so that a hang becomes a failure.

mod common;

use std::cell::Cell;
use std::io;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::SplitMix64;
use evloop::net::{ListenOptions, TcpListener, TcpStream};
use evloop::{Error, Future, Runtime, Task, create_task, time};

const CONNECTIONS: usize = 10_000;
/// Descriptors needed beyond one per connection (listener, epoll, eventfd, timerfd,
/// stdio, the test harness).
const SPARE_FDS: u64 = 100;
/// Connect attempts in flight at once (each wave completes before the next starts).
const CONNECT_WAVE: usize = 500;
const CHILD_ENV: &str = "EVLOOP_NET_LOAD_CHILD";
const CHILD_TEST: &str = "child_mode_ten_thousand_clients";

/// The payload of connection `i`: its index in text, then deterministic bytes; 2–4 KiB.
fn payload(i: usize) -> Vec<u8> {
    let len = 2048 + (i * 7919) % 2048;
    let mut out = format!("connection {i:05} of {CONNECTIONS}\n").into_bytes();
    let mut rng = SplitMix64::new(i as u64);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn total_payload_bytes() -> u64 {
    (0..CONNECTIONS).map(|i| payload(i).len() as u64).sum()
}

/// Raises the soft descriptor limit to the hard one; fails clearly if that is too low.
fn raise_nofile_limit(who: &str) {
    let needed = CONNECTIONS as u64 + SPARE_FDS;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert!(
        lim.rlim_max >= needed,
        "{who}: this test needs RLIMIT_NOFILE of at least {needed} descriptors ({CONNECTIONS} \
         connections + {SPARE_FDS} spare), but the hard limit is {} (`ulimit -Hn`); raise it \
         (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE= in the service / container)",
        lim.rlim_max
    );
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is
    // always permitted.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
        0,
        "{who}: setrlimit: {}",
        io::Error::last_os_error()
    );
}

#[derive(Debug, Default)]
struct ServerStats {
    accepted: Cell<usize>,
    open: Cell<usize>,
    peak_open: Cell<usize>,
    bytes_echoed: Cell<u64>,
    failed: Cell<usize>,
}

/// Echoes everything until end-of-stream, counting the bytes.
async fn echo(stream: TcpStream, stats: Rc<ServerStats>) -> Result<(), Error> {
    let mut buf = vec![0u8; 4096];
    let result = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            stream.write_all(&buf[..n]).await?;
            stats.bytes_echoed.set(stats.bytes_echoed.get() + n as u64);
        }
    }
    .await;
    stats.open.set(stats.open.get() - 1);
    if result.is_err() {
        stats.failed.set(stats.failed.get() + 1);
    }
    Ok(result?)
}

#[test]
fn ten_thousand_concurrent_connections_echo_every_byte() {
    raise_nofile_limit("server");
    let _watchdog = common::Watchdog::new("net_load server", Duration::from_secs(120));
    let rt = Runtime::new().unwrap();
    let (stats, report) = rt
        .block_on(async {
            let listener = TcpListener::bind_with(
                "127.0.0.1:0",
                ListenOptions {
                    backlog: 4096,
                    ..ListenOptions::default()
                },
            )
            .await?;
            let addr = listener.local_addr()?;
            let stats = Rc::new(ServerStats::default());
            let acceptor: Task<()> = {
                let stats = stats.clone();
                create_task(async move {
                    loop {
                        let (stream, _) = listener.accept().await?;
                        stats.accepted.set(stats.accepted.get() + 1);
                        stats.open.set(stats.open.get() + 1);
                        stats
                            .peak_open
                            .set(stats.peak_open.get().max(stats.open.get()));
                        drop(create_task(echo(stream, stats.clone())));
                    }
                })
            };

            // The client process; a thread waits for it and hands its output to the loop.
            let exe = std::env::current_exe().expect("the test binary's path");
            let mut child = Command::new(exe)
                .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, addr.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("re-executing the test binary");
            let exited = Future::<std::process::Output>::new();
            let waiter = {
                let exited = exited.clone();
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(110);
                    while child.try_wait().expect("try_wait").is_none() {
                        if Instant::now() > deadline {
                            let _ = child.kill();
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = exited.set_result(child.wait_with_output().expect("wait"));
                })
            };
            let out = exited.take().await?;
            waiter.join().expect("the waiter thread");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "the client process failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status
            );
            let report = stdout
                .lines()
                .find_map(|l| l.find("CLIENT OK ").map(|at| l[at..].to_owned()))
                .unwrap_or_else(|| panic!("the child-mode test did not run:\n{stdout}"));

            // The client closed every connection before exiting: each echo task sees
            // end-of-stream and finishes.
            let deadline = Instant::now() + Duration::from_secs(30);
            while stats.open.get() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "{} connections still open 30 s after the client exited",
                    stats.open.get()
                );
                time::sleep(Duration::from_millis(1)).await?;
            }
            acceptor.cancel();
            Ok::<_, Error>((stats, report))
        })
        .unwrap();

    assert_eq!(stats.accepted.get(), CONNECTIONS, "connections accepted");
    assert_eq!(
        stats.peak_open.get(),
        CONNECTIONS,
        "connections open at the same time on the one loop"
    );
    assert_eq!(
        stats.failed.get(),
        0,
        "connections that failed on the server"
    );
    assert_eq!(
        stats.bytes_echoed.get(),
        total_payload_bytes(),
        "bytes echoed by the server"
    );
    println!(
        "server: accepted {} peak_open {} bytes_echoed {}; {report}",
        stats.accepted.get(),
        stats.peak_open.get(),
        stats.bytes_echoed.get()
    );
}

/// The client process (a no-op unless `EVLOOP_NET_LOAD_CHILD` names the server).
#[test]
fn child_mode_ten_thousand_clients() {
    let Some(addr) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let addr: std::net::SocketAddr = addr.to_str().unwrap().parse().unwrap();
    raise_nofile_limit("client");
    let rt = Runtime::new().unwrap();
    let bytes = rt
        .block_on(time::timeout(Duration::from_secs(100), async move {
            // 1. Every connection established and kept open.
            let mut streams: Vec<TcpStream> = Vec::with_capacity(CONNECTIONS);
            while streams.len() < CONNECTIONS {
                let wave = CONNECT_WAVE.min(CONNECTIONS - streams.len());
                let connects: Vec<Task<TcpStream>> = (0..wave)
                    .map(|_| create_task(async move { Ok(TcpStream::connect(addr).await?) }))
                    .collect();
                for connect in connects {
                    streams.push(connect.await?);
                }
            }

            // 2. Only now any data: each connection sends its payload and checks the
            // echo byte by byte; every stream stays open until all are checked.
            let exchanges: Vec<Task<(TcpStream, u64)>> = streams
                .into_iter()
                .enumerate()
                .map(|(i, stream)| {
                    create_task(async move {
                        let sent = payload(i);
                        stream.write_all(&sent).await?;
                        let mut back = vec![0u8; sent.len()];
                        stream.read_exact(&mut back).await?;
                        if let Some(at) = (0..sent.len()).find(|&k| back[k] != sent[k]) {
                            return Err(Error::msg(format!(
                                "connection {i}: echo differs at byte {at} of {}",
                                sent.len()
                            )));
                        }
                        Ok((stream, sent.len() as u64))
                    })
                })
                .collect();
            let mut open = Vec::with_capacity(CONNECTIONS);
            let mut bytes = 0;
            for exchange in exchanges {
                let (stream, n) = exchange.await?;
                bytes += n;
                open.push(stream);
            }
            assert_eq!(open.len(), CONNECTIONS);

            // 3. Close them all.
            drop(open);
            Ok::<_, Error>(bytes)
        }))
        .expect("the client finished within 100 s")
        .expect("every connection connected and echoed");
    assert_eq!(bytes, total_payload_bytes());
    println!("CLIENT OK connections={CONNECTIONS} bytes_verified={bytes}");
}
