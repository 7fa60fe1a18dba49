//! TCP on the loop (SPEC N1, N2, N4, N5, I1): `TcpListener` / `TcpStream` echo under
//! load, connect errors, bind options, name resolution, socket options, owned split
//! halves, dropped reads, back-pressure, peer resets, broken pipes (in a child process
//! with SIGPIPE at its default action), `try_*` / readiness waits, half-close, 2 000
//! concurrent connections and the `futures-io` traits.
//!
//! Every wait for a background event is bounded (`time::timeout` of 10 s, or the 30 s
//! watchdog of `run_guarded`), so a lost wake-up fails the test instead of hanging it.

mod common;

use std::cell::Cell;
use std::future::{Future as _, poll_fn};
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::SplitMix64;
use evloop::net::{ListenOptions, TcpListener, TcpStream};
use evloop::{Error, Future, Task, time};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};

const TEN_S: Duration = Duration::from_secs(10);

/// Deterministic test bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

use common::eventually;

/// `time::timeout(10 s, fut)`, failing the test on timeout.
async fn within_10s<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match time::timeout(TEN_S, fut).await {
        Ok(out) => out,
        Err(e) => panic!("{what}: no outcome within 10 s ({e})"),
    }
}

/// Echoes everything it reads until end-of-stream, then closes the connection.
async fn echo(stream: TcpStream) -> Result<(), Error> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// An accept loop that echoes every connection in its own task.
fn serve_echo(listener: TcpListener) -> Task<()> {
    evloop::create_task(async move {
        loop {
            let (stream, _) = listener.accept().await?;
            drop(evloop::create_task(echo(stream)));
        }
    })
}

/// A connected (client, server-side) pair on the current loop.
async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let connecting = evloop::create_task(async move { Ok(TcpStream::connect(addr).await?) });
    let (server, _) = listener.accept().await?;
    let client = connecting.await.map_err(io::Error::from)?;
    Ok((client, server))
}

fn describe_io<T: std::fmt::Debug>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error {:?}", e.kind()),
    }
}

// ---------------------------------------------------------------------------------
// N1 / N2: echo under load, connect, bind
// ---------------------------------------------------------------------------------

#[test]
fn two_hundred_concurrent_clients_each_echo_4_kib() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = serve_echo(listener);
        let clients: Vec<Task<bool>> = (0..200u64)
            .map(|i| {
                evloop::create_task(async move {
                    let stream = TcpStream::connect(addr).await?;
                    let payload = pattern(i, 4096);
                    stream.write_all(&payload).await?;
                    let mut back = vec![0u8; payload.len()];
                    stream.read_exact(&mut back).await?;
                    Ok(back == payload)
                })
            })
            .collect();
        let results = within_10s("gather of 200 echo clients", evloop::gather(clients)).await?;
        assert_eq!(results.len(), 200);
        assert!(results.iter().all(|ok| *ok), "some client got wrong bytes");
        assert!(server.cancel());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn connect_to_a_refused_port_is_an_error_not_a_hang() {
    // A port that was just free: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    common::run_guarded(async move {
        let r = within_10s(
            "connect to a closed port",
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await;
        let err = r.expect_err("nothing listens there");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn bind_to_port_zero_gets_a_port_and_from_std_works() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        assert_ne!(addr.port(), 0, "the kernel picked a port");
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);

        // from_std: a blocking std listener becomes a working evloop listener.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let std_addr = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        assert_eq!(listener.local_addr()?, std_addr);
        let server = serve_echo(listener);
        let client = TcpStream::connect(std_addr).await?;
        client.write_all(b"via from_std").await?;
        let mut buf = [0u8; 12];
        within_10s("echo via from_std", client.read_exact(&mut buf)).await?;
        assert_eq!(&buf, b"via from_std");
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port_and_both_accept() {
    common::run_guarded(async {
        let options = ListenOptions {
            reuse_port: true,
            ..Default::default()
        };
        let a = TcpListener::bind_with("127.0.0.1:0", options.clone()).await?;
        let addr = a.local_addr()?;
        let b = TcpListener::bind_with(addr, options).await?;
        assert_eq!(b.local_addr()?, addr);

        // Without SO_REUSEPORT the port is taken.
        let err = TcpListener::bind(addr).await.expect_err("port in use");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        // Every connection is accepted by one of the two.
        let accepted = Rc::new(Cell::new(0usize));
        let mut keep = Vec::new();
        let acceptors: Vec<Task<()>> = [a, b]
            .into_iter()
            .map(|listener| {
                let accepted = accepted.clone();
                evloop::create_task(async move {
                    let mut held = Vec::new();
                    loop {
                        let (s, _) = listener.accept().await?;
                        held.push(s);
                        accepted.set(accepted.get() + 1);
                    }
                })
            })
            .collect();
        for _ in 0..32 {
            keep.push(TcpStream::connect(addr).await?);
        }
        eventually("32 connections accepted by the two listeners", || {
            accepted.get() == 32
        })
        .await;
        for t in &acceptors {
            t.cancel();
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn names_are_resolved_for_connect_and_bind() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let port = addr.port();
        let server = serve_echo(listener);

        let by_str = TcpStream::connect(format!("localhost:{port}").as_str()).await?;
        let by_string = TcpStream::connect(format!("localhost:{port}")).await?;
        let by_tuple = TcpStream::connect(("localhost", port)).await?;
        for (i, s) in [by_str, by_string, by_tuple].iter().enumerate() {
            assert_eq!(s.peer_addr()?, addr, "connection {i}");
            let msg = format!("hello {i}");
            s.write_all(msg.as_bytes()).await?;
            let mut buf = vec![0u8; msg.len()];
            within_10s("echo", s.read_exact(&mut buf)).await?;
            assert_eq!(buf, msg.as_bytes());
        }

        let by_name = TcpListener::bind("localhost:0").await?;
        assert!(by_name.local_addr()?.ip().is_loopback());
        assert_ne!(by_name.local_addr()?.port(), 0);
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn addresses_and_nodelay() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connecting = evloop::create_task(async move { Ok(TcpStream::connect(addr).await?) });
        let (server, peer) = listener.accept().await?;
        let client = connecting.await?;

        assert_eq!(client.peer_addr()?, addr);
        assert_eq!(server.local_addr()?, addr);
        assert_eq!(server.peer_addr()?, client.local_addr()?);
        assert_eq!(peer, client.local_addr()?, "accept reports the peer");

        client.set_nodelay(true)?;
        assert!(client.nodelay()?);
        client.set_nodelay(false)?;
        assert!(!client.nodelay()?);
        assert!(client.take_error()?.is_none());
        let dbg = format!("{client:?}");
        assert!(dbg.contains(&addr.to_string()), "{dbg}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// N4: owned halves
// ---------------------------------------------------------------------------------

/// 2 MiB through an echo server: more than the socket buffers hold, so the write
/// completes only if the read runs concurrently (a timeout, not a hang, otherwise).
/// Dropping the write half then sends EOF; the server closes; the reader sees EOF.
#[test]
fn split_halves_read_and_write_concurrently_and_dropping_the_writer_sends_eof() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = serve_echo(listener);
        let stream = TcpStream::connect(addr).await?;
        let (read, write) = stream.into_split();
        assert_eq!(read.as_ref().peer_addr()?, addr);
        assert_eq!(write.as_ref().peer_addr()?, addr);

        let data = Arc::new(pattern(7, 2 << 20));
        let writer = {
            let data = data.clone();
            evloop::create_task(async move {
                for chunk in data.chunks(64 * 1024) {
                    write.write_all(chunk).await?;
                }
                drop(write); // EOF to the echo server, which then closes.
                Ok(())
            })
        };
        let reader = evloop::create_task(async move {
            let mut got = Vec::with_capacity(2 << 20);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = read.read(&mut buf).await?;
                if n == 0 {
                    return Ok(got);
                }
                got.extend_from_slice(&buf[..n]);
            }
        });
        within_10s("the concurrent writer", writer).await?;
        let got = within_10s("the reader reaching EOF", reader).await?;
        assert_eq!(got.len(), data.len());
        assert!(got == *data, "echoed bytes differ");
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn reunite_gives_back_a_working_stream_and_refuses_mismatched_halves() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = serve_echo(listener);
        let one = TcpStream::connect(addr).await?;
        let two = TcpStream::connect(addr).await?;
        let (one_local, two_local) = (one.local_addr()?, two.local_addr()?);
        let (r1, w1) = one.into_split();
        let (r2, w2) = two.into_split();

        let err = r1.reunite(w2).expect_err("halves of different streams");
        assert!(
            err.to_string().contains("not from the same stream"),
            "{err}"
        );
        let evloop::net::ReuniteError(r1, w2) = err;
        let one = r1.reunite(w1).expect("matching halves");
        let two = r2.reunite(w2).expect("matching halves");
        assert_eq!(one.local_addr()?, one_local);
        assert_eq!(two.local_addr()?, two_local);

        // Reuniting did not shut the write direction down.
        for (s, msg) in [(&one, &b"one"[..]), (&two, &b"two"[..])] {
            s.write_all(msg).await?;
            let mut buf = [0u8; 3];
            within_10s("echo after reunite", s.read_exact(&mut buf)).await?;
            assert_eq!(&buf, msg);
        }

        // `forget` keeps the write direction open: the echo server gets no EOF, so it
        // does not close, and the read half sees no end-of-stream.
        let (r, w) = one.into_split();
        assert_eq!(r.as_ref().local_addr()?, one_local);
        w.forget();
        let mut buf = [0u8; 8];
        let r = time::timeout(Duration::from_millis(20), r.read(&mut buf)).await;
        assert!(
            r.as_ref().is_err_and(Error::is_timeout),
            "no EOF after forget(): {r:?}"
        );
        // Dropping the write half (without forget) does send EOF: the server closes.
        let (r, w) = two.into_split();
        drop(w);
        let n = within_10s("EOF after dropping the write half", r.read(&mut buf)).await?;
        assert_eq!(n, 0);
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// N4: dropping an I/O future loses no data
// ---------------------------------------------------------------------------------

#[test]
fn a_read_dropped_by_a_timeout_loses_no_data() {
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        for round in 0..5u64 {
            let mut buf = [0u8; 64];
            let r = time::timeout(Duration::from_millis(10), client.read(&mut buf)).await;
            assert!(
                r.as_ref().is_err_and(Error::is_timeout),
                "round {round}: nothing was sent yet, got {r:?}"
            );
            let msg = pattern(round, 1000 + round as usize);
            server.write_all(&msg).await?;
            let mut got = vec![0u8; msg.len()];
            within_10s("read after the dropped read", client.read_exact(&mut got)).await?;
            assert_eq!(got, msg, "round {round}");
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// The sharper case: the read was registered, the data arrived and woke it, and the
/// future is dropped before it is polled again. The next read gets every byte.
#[test]
fn a_read_woken_by_data_but_dropped_before_its_next_poll_loses_no_data() {
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        let mut first_buf = [0u8; 64];
        {
            let mut read = pin!(client.read(&mut first_buf));
            let first = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx).is_ready())).await;
            assert!(!first, "no data yet: the read is pending");
            server.write_all(b"not lost").await?;
            within_10s("readable", client.readable()).await?;
            // `read` is dropped here, woken but never polled again.
        }
        let mut got = [0u8; 8];
        within_10s("read_exact", client.read_exact(&mut got)).await?;
        assert_eq!(&got, b"not lost");
        assert_eq!(first_buf, [0u8; 64], "the dropped read wrote nothing");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// 16 MiB in one `write_all` to a reader that reads small pieces and sleeps now and
/// then: the writer must wait for buffer space many times; every byte arrives, in order.
#[test]
fn a_16_mib_write_all_to_a_slow_reader_arrives_complete_and_in_order() {
    const LEN: usize = 16 << 20;
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        let data = Arc::new(pattern(16, LEN));
        let writer = {
            let data = data.clone();
            evloop::create_task(async move {
                client.write_all(&data).await?;
                client.shutdown(Shutdown::Write)?;
                Ok(())
            })
        };
        let reader = {
            let data = data.clone();
            evloop::create_task(async move {
                let mut buf = vec![0u8; 8 * 1024];
                let mut at = 0usize;
                let mut reads = 0u64;
                loop {
                    let n = server.read(&mut buf).await?;
                    if n == 0 {
                        return Ok((at, true));
                    }
                    if buf[..n] != data[at..at + n] {
                        return Ok((at, false));
                    }
                    at += n;
                    reads += 1;
                    if reads % 64 == 0 {
                        time::sleep(Duration::from_millis(1)).await?;
                    } else {
                        evloop::yield_now().await?;
                    }
                }
            })
        };
        within_10s("write_all of 16 MiB", writer).await?;
        let (received, in_order) = within_10s("the slow reader", reader).await?;
        assert!(in_order, "bytes differ at offset {received}");
        assert_eq!(received, LEN);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// N5: resets and broken pipes
// ---------------------------------------------------------------------------------

fn is_eof_or_reset(r: &io::Result<usize>) -> bool {
    match r {
        Ok(0) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// The peer resets while a read is pending: the read wakes with EOF or
/// `ConnectionReset`, never hangs.
#[test]
fn a_peer_reset_wakes_a_pending_read_with_eof_or_an_error() {
    let _watchdog = common::Watchdog::new("peer reset while reading", Duration::from_secs(20));
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        let started = Arc::new(AtomicBool::new(false));
        let reader = {
            let started = started.clone();
            evloop::create_task(async move {
                let mut buf = [0u8; 16];
                started.store(true, Ordering::SeqCst);
                let r = client.read(&mut buf).await;
                let first = describe_io(&r);
                let ok = is_eof_or_reset(&r);
                // Later reads keep reporting the end, never block.
                let again = client.read(&mut buf).await;
                Ok((first, ok, describe_io(&again), is_eof_or_reset(&again)))
            })
        };
        eventually("the reader started", || started.load(Ordering::SeqCst)).await;
        common::yield_times(3).await;
        assert!(!reader.done(), "the read is pending: nothing was sent");
        server.set_linger(Some(Duration::ZERO))?;
        drop(server); // RST
        let (first, ok, again, again_ok) = within_10s("the pending read", reader).await?;
        assert!(ok, "first read after the reset: {first}");
        assert!(again_ok, "second read after the reset: {again}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// The reset arrives first: the read reports it; writes fail too.
#[test]
fn a_peer_reset_before_the_read_is_reported_and_writes_fail() {
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        server.set_linger(Some(Duration::ZERO))?;
        drop(server);
        let mut buf = [0u8; 16];
        let r = within_10s("read after the reset", client.read(&mut buf)).await;
        assert!(is_eof_or_reset(&r), "{}", describe_io(&r));
        let deadline = Instant::now() + TEN_S;
        let err = loop {
            match client.write(b"into the void").await {
                Err(e) => break e,
                Ok(_) => {
                    assert!(Instant::now() < deadline, "writes never failed");
                    time::sleep(Duration::from_millis(1)).await?;
                }
            }
        };
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

const SIGPIPE_CHILD: &str = "EVLOOP_NET_TCP_SIGPIPE_CHILD";

/// Runs one test of this binary in a child process with `SIGPIPE_CHILD=mode`.
fn run_child(test: &str, mode: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SIGPIPE_CHILD, mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("re-executing the test binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "child {mode} still running after 20 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("wait")
}

/// Child half of the SIGPIPE tests: with SIGPIPE back at its default action (the Rust
/// runtime ignores it, which would hide the bug), writes to a connection whose write
/// direction is closed. `evloop` mode: every evloop write API must return `BrokenPipe`
/// and the process lives on. `raw` mode: a plain `write(2)` — proves this harness sees
/// a SIGPIPE death.
#[test]
fn sigpipe_child_mode() {
    let Ok(mode) = std::env::var(SIGPIPE_CHILD) else {
        return; // Only meaningful in the child started by the tests below.
    };
    // SAFETY: restores the default disposition of SIGPIPE in this child process, which
    // runs only this test (--test-threads=1).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    evloop::run(async move {
        let mut kinds = Vec::new();
        if mode == "raw" {
            let (client, _server) = connected_pair().await?;
            client.shutdown(Shutdown::Write)?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&client);
            // SAFETY: `fd` is an open socket owned by `client`; the buffer is valid.
            let n = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
            println!("raw write returned {n}: SIGPIPE did not kill the process");
            return Ok(());
        }
        for api in 0..7 {
            let (client, server) = connected_pair().await?;
            client.shutdown(Shutdown::Write)?;
            let r: io::Result<()> = match api {
                0 => client.write(b"x").await.map(drop),
                1 => client.write_all(b"xyz").await,
                2 => client
                    .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
                    .await
                    .map(drop),
                3 => client.try_write(b"x").map(drop),
                4 => {
                    let (_r, w) = client.into_split();
                    w.write_all(b"x").await
                }
                5 => AsyncWriteExt::write_all(&mut &client, b"x").await,
                _ => {
                    // The peer closed: the first write may still be accepted, then EPIPE
                    // or a reset.
                    drop(server);
                    let deadline = Instant::now() + TEN_S;
                    loop {
                        match client.write(b"x").await {
                            Err(e) => break Err(e),
                            Ok(_) if Instant::now() < deadline => {
                                time::sleep(Duration::from_millis(1)).await?;
                            }
                            Ok(_) => break Ok(()),
                        }
                    }
                }
            };
            kinds.push(format!("{api}:{}", describe_io(&r)));
        }
        println!("CHILD RESULTS {}", kinds.join(","));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn writing_to_a_closed_connection_is_an_error_and_never_raises_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("sigpipe_child_mode", "evloop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child died ({:?}, signal {:?}); stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD RESULTS ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result line in\n{stdout}"));
    let results: Vec<&str> = line.split(',').collect();
    assert_eq!(results.len(), 7, "{line}");
    for r in &results[..6] {
        assert!(r.ends_with("error BrokenPipe"), "{line}");
    }
    assert!(
        results[6].ends_with("error BrokenPipe") || results[6].ends_with("error ConnectionReset"),
        "{line}"
    );
}

/// Control for the test above: the child setup really does die of SIGPIPE when a
/// write does not suppress it.
#[test]
fn control_a_raw_write_in_the_child_dies_of_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("sigpipe_child_mode", "raw");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "status {:?}; stdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------------
// N2: try_read / try_write, readable / writable, shutdown
// ---------------------------------------------------------------------------------

#[test]
fn try_read_and_try_write_report_would_block_and_readiness_waits_work() {
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        let mut buf = [0u8; 1024];
        let err = client.try_read(&mut buf).expect_err("nothing sent yet");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // After a WouldBlock, readable() really waits.
        let r = time::timeout(Duration::from_millis(20), client.readable()).await;
        assert!(r.is_err_and(|e| e.is_timeout()), "readable with no data");

        server.write_all(b"ping").await?;
        within_10s("readable", client.readable()).await?;
        let n = client.try_read(&mut buf)?;
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(
            client.try_read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        // Fill the socket buffers with try_write until WouldBlock.
        within_10s("writable", client.writable()).await?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut written = 0usize;
        loop {
            match client.try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
            assert!(written < 1 << 30, "try_write never reported WouldBlock");
        }
        assert!(written > 0);

        // The peer drains everything; the client becomes writable again.
        let mut drained = 0usize;
        let mut big = vec![0u8; 256 * 1024];
        while drained < written {
            let n = within_10s("drain", server.read(&mut big)).await?;
            assert!(big[..n].iter().all(|b| *b == 0x5a));
            drained += n;
        }
        assert_eq!(drained, written);
        within_10s("writable after the drain", client.writable()).await?;
        assert!(client.try_write(b"more")? > 0);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_keeps_the_read_side_open() {
    common::run_guarded(async {
        let (client, server) = connected_pair().await?;
        client.write_all(b"last words").await?;
        client.shutdown(Shutdown::Write)?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = within_10s("server read", server.read(&mut buf)).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"last words");
        // Half-closed: the other direction still works.
        server.write_all(b"reply").await?;
        server.shutdown(Shutdown::Both)?;
        let mut reply = [0u8; 5];
        within_10s("client read", client.read_exact(&mut reply)).await?;
        assert_eq!(&reply, b"reply");
        let n = within_10s("client EOF", client.read(&mut buf)).await?;
        assert_eq!(n, 0);
        let err = within_10s("read_exact past EOF", client.read_exact(&mut reply))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// Load: 2 000 connections open at once on one loop
// ---------------------------------------------------------------------------------

/// Raises the soft RLIMIT_NOFILE to the hard limit; `false` if that is below `need`.
fn raise_nofile(need: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    if lim.rlim_cur < need && lim.rlim_max >= need {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard limit
        // is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return false;
        }
    }
    lim.rlim_cur >= need
}

#[test]
fn two_thousand_concurrent_connections_on_one_loop_all_echo() {
    const N: usize = 2000;
    if !raise_nofile(2 * N as u64 + 512) {
        println!("note: RLIMIT_NOFILE hard limit too low for {N} connections; skipped");
        return;
    }
    common::run_guarded(async {
        let options = ListenOptions {
            backlog: 4096,
            ..Default::default()
        };
        let listener = TcpListener::bind_with("127.0.0.1:0", options).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = serve_echo(listener);
        let connected = Rc::new(Cell::new(0usize));
        let all_connected: Future<()> = Future::new();
        let clients: Vec<Task<bool>> = (0..N as u64)
            .map(|i| {
                let (connected, all_connected) = (connected.clone(), all_connected.clone());
                evloop::create_task(async move {
                    let stream = TcpStream::connect(addr).await?;
                    connected.set(connected.get() + 1);
                    if connected.get() == N {
                        let _ = all_connected.set_result(());
                    }
                    // Every connection is open before any of them talks.
                    all_connected.await?;
                    let payload = pattern(i, 100);
                    stream.write_all(&payload).await?;
                    let mut back = [0u8; 100];
                    stream.read_exact(&mut back).await?;
                    Ok(back[..] == payload[..])
                })
            })
            .collect();
        let results = within_10s("2 000 echo clients", evloop::gather(clients)).await?;
        assert_eq!(connected.get(), N);
        assert_eq!(results.iter().filter(|ok| **ok).count(), N);
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// I1: futures-io
// ---------------------------------------------------------------------------------

/// An echo server written against the futures-io traits: `io::copy` from the read half
/// to the write half, then `close` (EOF to the client).
fn serve_copy(listener: TcpListener) -> Task<()> {
    evloop::create_task(async move {
        loop {
            let (stream, _) = listener.accept().await?;
            drop(evloop::create_task(async move {
                let (read, mut write) = stream.into_split();
                futures_util::io::copy(read, &mut write).await?;
                write.close().await?;
                Ok(())
            }));
        }
    })
}

#[test]
fn futures_io_on_a_whole_stream() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = serve_copy(listener);

        // Owned stream, small payload: write_all, close, read_to_end.
        let mut stream = TcpStream::connect(addr).await?;
        let payload = pattern(1, 48 * 1024);
        AsyncWriteExt::write_all(&mut stream, &payload).await?;
        AsyncWriteExt::flush(&mut stream).await?;
        AsyncWriteExt::close(&mut stream).await?;
        let mut back = Vec::new();
        within_10s(
            "read_to_end",
            AsyncReadExt::read_to_end(&mut stream, &mut back),
        )
        .await?;
        assert!(back == payload, "echo of the owned stream differs");

        // `&TcpStream`: a large payload written by one task while another reads.
        let stream = Rc::new(TcpStream::connect(addr).await?);
        let payload = Rc::new(pattern(2, 3 << 20));
        let writer = {
            let (stream, payload) = (stream.clone(), payload.clone());
            evloop::create_task(async move {
                let mut w = &*stream;
                let (head, tail) = payload.split_at(1000);
                let n = AsyncWriteExt::write_vectored(
                    &mut w,
                    &[IoSlice::new(&head[..500]), IoSlice::new(&head[500..])],
                )
                .await?;
                AsyncWriteExt::write_all(&mut w, &head[n..]).await?;
                AsyncWriteExt::write_all(&mut w, tail).await?;
                AsyncWriteExt::close(&mut w).await?;
                Ok(())
            })
        };
        let mut r = &*stream;
        let mut back = Vec::new();
        within_10s("read_to_end", AsyncReadExt::read_to_end(&mut r, &mut back)).await?;
        within_10s("writer", writer).await?;
        assert_eq!(back.len(), payload.len());
        assert!(back == *payload, "echo of &TcpStream differs");
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn futures_io_on_split_halves() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = serve_copy(listener);
        let (mut read, mut write) = TcpStream::connect(addr).await?.into_split();
        let payload = Arc::new(pattern(3, 3 << 20));
        let writer = {
            let payload = payload.clone();
            evloop::create_task(async move {
                for chunk in payload.chunks(100_000) {
                    AsyncWriteExt::write_all(&mut write, chunk).await?;
                }
                AsyncWriteExt::flush(&mut write).await?;
                AsyncWriteExt::close(&mut write).await?;
                Ok(())
            })
        };
        let mut first = [0u8; 10];
        within_10s(
            "read_exact",
            AsyncReadExt::read_exact(&mut read, &mut first),
        )
        .await?;
        let mut rest = Vec::new();
        within_10s(
            "read_to_end",
            AsyncReadExt::read_to_end(&mut read, &mut rest),
        )
        .await?;
        within_10s("writer", writer).await?;
        assert_eq!(first[..], payload[..10]);
        assert_eq!(rest.len() + 10, payload.len());
        assert!(
            rest[..] == payload[10..],
            "echo through split halves differs"
        );
        server.cancel();
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------
// Regression pin: several tasks waiting on one socket
// ---------------------------------------------------------------------------------

/// Pins a bug (fails until fixed; takes 10 s then): two tasks accepting on one shared
/// listener (tokio's common `Arc<TcpListener>` pattern). The reactor keeps one waker per
/// direction of a socket, and the second task's registration replaces the first's. The
/// second task accepts the first connection and ends; the second connection then
/// waits in the accept queue, the listener is readable, and nobody wakes the first
/// task: a lost wake-up (Q1), a connection never served. The same holds for two tasks
/// in `recv_from` on one `UdpSocket`, or in `readable()` on one stream.
#[test]
fn two_tasks_accepting_on_one_listener_are_both_woken() {
    common::run_guarded(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").await?);
        let addr = listener.local_addr()?;
        let acceptors: Vec<Task<SocketAddr>> = (0..2)
            .map(|_| {
                let listener = listener.clone();
                evloop::create_task(async move {
                    let (_stream, peer) = listener.accept().await?;
                    Ok(peer)
                })
            })
            .collect();
        // Both are blocked in accept before anyone connects.
        common::yield_times(5).await;
        assert!(acceptors.iter().all(|t| !t.done()));
        let first = TcpStream::connect(addr).await?;
        eventually("one acceptor got the first connection", || {
            acceptors.iter().any(|t| t.done())
        })
        .await;
        let second = TcpStream::connect(addr).await?;
        let deadline = Instant::now() + TEN_S;
        while !acceptors.iter().all(|t| t.done()) {
            assert!(
                Instant::now() < deadline,
                "the second connection waits in the accept queue and the other acceptor \
                 was never woken (10 s)"
            );
            time::sleep(Duration::from_millis(1)).await?;
        }
        let mut peers = Vec::new();
        for t in acceptors {
            peers.push(t.await?);
        }
        peers.sort();
        let mut expected = vec![first.local_addr()?, second.local_addr()?];
        expected.sort();
        assert_eq!(peers, expected);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Both ends of a connection are non-blocking and close-on-exec from the moment they
/// exist: `connect` asks `socket` for `SOCK_NONBLOCK | SOCK_CLOEXEC` and `accept` asks
/// `accept4` for them (no `fcntl` / `ioctl` after, and no window in which a spawned
/// child could inherit the socket).
#[test]
fn connected_and_accepted_sockets_are_nonblocking_and_close_on_exec() {
    use std::os::fd::AsRawFd;
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, peer) = listener.accept().await?;
        assert_eq!(peer, client.local_addr()?);
        for fd in [client.as_raw_fd(), server.as_raw_fd()] {
            // SAFETY: F_GETFL / F_GETFD only read the flags of an fd this test owns.
            let (status, descriptor) = unsafe {
                (
                    libc::fcntl(fd, libc::F_GETFL),
                    libc::fcntl(fd, libc::F_GETFD),
                )
            };
            assert_ne!(status & libc::O_NONBLOCK, 0, "fd {fd} is blocking");
            assert_ne!(
                descriptor & libc::FD_CLOEXEC,
                0,
                "fd {fd} is inherited by exec"
            );
        }
        client.write_all(b"x").await?;
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await?;
        assert_eq!(&one, b"x");
        Ok::<_, Error>(())
    })
    .unwrap();
}
