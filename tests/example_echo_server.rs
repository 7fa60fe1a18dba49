//! `examples/echo_server.rs` as a real process: it echoes, and on SIGTERM / SIGINT it
//! stops accepting, lets the open connections finish (within its grace period) and
//! exits with status 0.
//!
//! The example binary is built once with `cargo build --example echo_server` (a no-op
//! when `cargo test` already built it) and run from the target directory.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::example::ExampleServer;

const TEN_S: Duration = Duration::from_secs(10);

/// The example's binary, built on first use.
fn example_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| common::example::build_example("echo_server", None))
}

type Server = ExampleServer;

/// The running example, on any free port (`--port 0`) with a grace period of
/// `grace_secs`.
fn start(grace_secs: u64) -> Server {
    start_with(&["--port", "0", "--grace-secs", &grace_secs.to_string()])
}

fn start_with(args: &[&str]) -> Server {
    ExampleServer::start(example_binary(), args, TEN_S, " ")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the example");
    s.set_read_timeout(Some(TEN_S)).unwrap();
    s
}

fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("the echo");
    assert_eq!(back, msg);
}

#[test]
fn sigterm_stops_accepting_lets_an_open_connection_finish_and_exits_0() {
    let mut server = start(10);
    let mut open = connect(server.addr);
    echo(&mut open, b"hello");

    server.signal(libc::SIGTERM);
    server.line_containing("no longer accepting");

    // New connections are refused once the listener is gone.
    let deadline = Instant::now() + TEN_S;
    loop {
        match TcpStream::connect(server.addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting 10 s after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    // The open connection is still served, and the process waits for it.
    echo(&mut open, b"still here");
    assert!(server.still_running(), "exited while a connection was open");

    drop(open); // EOF: its echo task finishes, and with it the server.
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}; stdout: {:?}", server.seen);
    assert_eq!(status.code(), Some(0));
    let bye = server.line_containing("finished");
    assert!(
        bye.contains("1 connection(s) finished (15 bytes echoed)"),
        "{bye:?}"
    );
}

#[test]
fn sigint_with_no_open_connection_exits_0() {
    let mut server = start(10);
    let mut s = connect(server.addr);
    echo(&mut s, b"one round");
    drop(s);
    server.signal(libc::SIGINT);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("signal 2");
}

/// A connection that never closes does not keep the process alive past the grace
/// period (1 s here).
#[test]
fn a_connection_that_never_closes_is_cut_after_the_grace_period() {
    let mut server = start(1);
    let mut open = connect(server.addr);
    echo(&mut open, b"idle after this");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("grace period over");
    // The connection is closed with the process.
    let mut buf = [0u8; 8];
    let n = open.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the connection ends with the process");
}

/// Issue 10: `--loops 2` serves from two loops sharing the port (`SO_REUSEPORT`): every
/// connection is echoed whichever loop the kernel picked, and SIGTERM stops both loops
/// (each reports its signal) and exits 0 once the connections are closed. (The options
/// in their `--name=VALUE` form here, U3.)
#[test]
fn two_loops_echo_every_connection_and_both_stop_on_sigterm() {
    let mut server = start_with(&["--port=0", "--grace-secs=10", "--loops=2"]);
    let mut conns: Vec<TcpStream> = (0..16).map(|_| connect(server.addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        echo(c, format!("message {i}").as_bytes());
    }
    drop(conns);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("bye");
    // The loops print their own lines in whichever order they stop.
    for index in 0..2 {
        let needle = format!("loop {index}: signal 15");
        assert!(
            server.seen.iter().any(|l| l.contains(&needle)),
            "no {needle:?} in {:?}",
            server.seen
        );
    }
}

// K6: `kill -USR1` prints a dump of the server's tasks on stderr — the acceptor waiting
// on its listening socket and a connection's task waiting on its socket — and the
// server keeps echoing afterwards (a dump does not disturb the loop).
#[test]
fn sigusr1_prints_a_task_dump_and_the_server_keeps_serving() {
    let mut server = start(10);
    let mut open = connect(server.addr);
    echo(&mut open, b"before");
    server.signal(libc::SIGUSR1);
    server
        .process
        .stderr_line_containing("== SIGUSR1: task dump");
    server
        .process
        .stderr_line_containing("live task(s) on loop");
    let waiting = server
        .process
        .stderr_line_containing("waiting on socket fd");
    assert!(waiting.contains("(readable)"), "{waiting}");
    echo(&mut open, b"after");
    drop(open);
    server.signal(libc::SIGTERM);
    assert!(server.process.wait_exit().success());
}
