//! `examples/http_server.rs` as a real process, against real HTTP clients: curl
//! (HTTP/1.1 and HTTP/2 with prior knowledge), h2load (HTTP/2 and pipelined HTTP/1.1
//! load), wrk and ab (HTTP/1.1 keep-alive load), and raw sockets for the header-read
//! timeout (`--header-timeout-ms`) and the graceful shutdown on SIGTERM (in-flight
//! requests finish, new connections are refused, exit status 0).
//!
//! The example binary is built once with `cargo build --example http_server --features
//! hyper` (a no-op when `cargo test` already built it) and run from the target
//! directory, and watched as a process, by `tests/common/example.rs`.
//!
//! The external tools may be missing on a developer machine: a test whose tool is not
//! on `PATH` prints `skipped: …` to stderr and passes, unless `EVLOOP_REQUIRE_HTTP_TOOLS=1`
//! (set by CI, which installs the Debian packages curl, nghttp2-client, wrk and
//! apache2-utils), in which case it fails naming the package to install.
#![cfg(feature = "hyper")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::example::ExampleServer;
use common::tools::{require_tool, run_tool, tool_stdout};

/// Hang guard for waits on the server and on socket reads (never a timing assertion).
const GUARD: Duration = Duration::from_secs(20);

/// The example's binary, built on first use.
fn example_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| common::example::build_example("http_server", Some("hyper")))
}

type Server = ExampleServer;

impl ExampleServer {
    /// The example server on a free port, with `args`.
    fn start_http(args: &[&str]) -> Server {
        let args: Vec<&str> = ["--port", "0"].iter().chain(args).copied().collect();
        ExampleServer::start(example_binary(), &args, GUARD, "http://")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's request counter, read from `/json` on a fresh connection (the
    /// count includes this `/json` request itself).
    fn request_count(&self) -> u64 {
        let (head, body) = raw_get(self.addr, "/json");
        assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
        let rest = body
            .split("\"requests\":")
            .nth(1)
            .unwrap_or_else(|| panic!("no request count in {body:?}"));
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a request count")
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the example");
    s.set_read_timeout(Some(GUARD)).unwrap();
    s
}

/// Reads until end of stream; `Err` for an error other than a reset (a reset also ends
/// the stream). A read timeout (the hang guard) is an error.
fn read_until_closed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(e),
        }
    }
}

/// `GET path` with `Connection: close` on a raw socket: (status line + headers, body).
fn raw_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let response = read_until_closed(&mut s).expect("the response");
    split_response(&response)
}

fn split_response(response: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(response);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_owned(), body.to_owned()),
        None => panic!("not an HTTP response: {text:?}"),
    }
}

/// curl's `-w '%{http_version} %{http_code}'` output appended to the body.
fn curl(curl: &PathBuf, protocol: &str, url: &str) -> String {
    tool_stdout(Command::new(curl).args([
        "-sS",
        "--max-time",
        "60",
        protocol,
        "-w",
        "%{http_version} %{http_code}",
        url,
    ]))
}

#[test]
fn curl_http1_1() {
    let Some(curl_bin) = require_tool("curl", "curl") else {
        return;
    };
    let server = Server::start_http(&[]);
    assert_eq!(
        curl(&curl_bin, "--http1.1", &server.url("/")),
        "Hello, world!\n1.1 200"
    );
    let json = curl(&curl_bin, "--http1.1", &server.url("/json"));
    assert!(json.contains("\"protocol\":\"HTTP/1.1\""), "{json:?}");
    assert!(json.ends_with("}1.1 200"), "{json:?}");
    assert_eq!(
        curl(&curl_bin, "--http1.1", &server.url("/nope")),
        "not found\n1.1 404"
    );
}

#[test]
fn curl_http2_prior_knowledge() {
    let Some(curl_bin) = require_tool("curl", "curl") else {
        return;
    };
    let server = Server::start_http(&[]);
    assert_eq!(
        curl(&curl_bin, "--http2-prior-knowledge", &server.url("/")),
        "Hello, world!\n2 200"
    );
    let json = curl(&curl_bin, "--http2-prior-knowledge", &server.url("/json"));
    assert!(json.contains("\"protocol\":\"HTTP/2.0\""), "{json:?}");
    assert!(json.ends_with("}2 200"), "{json:?}");
}

/// The line of h2load's summary starting with `prefix`.
fn h2load_line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in h2load's output:\n{out}"))
}

/// Checks h2load's summary: every one of `n` requests succeeded with a 2xx.
fn assert_h2load_all_ok(out: &str, n: u32) {
    let requests = h2load_line(out, "requests:");
    assert!(
        requests.contains(&format!(
            "{n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, 0 timeout"
        )),
        "{requests}\n{out}"
    );
    let status = h2load_line(out, "status codes:");
    assert!(
        status.contains(&format!("{n} 2xx, 0 3xx, 0 4xx, 0 5xx")),
        "{status}\n{out}"
    );
}

/// 2000 HTTP/2 requests on 8 connections with 10 concurrent streams each.
#[test]
fn h2load_http2_all_requests_succeed() {
    let Some(h2load) = require_tool("h2load", "nghttp2-client") else {
        return;
    };
    let server = Server::start_http(&[]);
    let out = tool_stdout(Command::new(h2load).args([
        "-n",
        "2000",
        "-c",
        "8",
        "-m",
        "10",
        &server.url("/"),
    ]));
    assert_h2load_all_ok(&out, 2000);
}

/// 1000 HTTP/1.1 requests on 4 connections, pipelined 4 deep.
#[test]
fn h2load_http1_pipelined_all_requests_succeed() {
    let Some(h2load) = require_tool("h2load", "nghttp2-client") else {
        return;
    };
    let server = Server::start_http(&[]);
    let out = tool_stdout(Command::new(h2load).args([
        "--h1",
        "-n",
        "1000",
        "-c",
        "4",
        "-m",
        "4",
        &server.url("/"),
    ]));
    assert_h2load_all_ok(&out, 1000);
}

/// wrk for one second on 32 keep-alive connections: requests were made, with no socket
/// errors and no non-2xx/3xx response.
#[test]
fn wrk_no_errors() {
    let Some(wrk) = require_tool("wrk", "wrk") else {
        return;
    };
    let server = Server::start_http(&[]);
    let out = tool_stdout(Command::new(wrk).args([
        "-t1",
        "-c32",
        "-d1s",
        "--timeout",
        "20s",
        &server.url("/"),
    ]));
    let total: u64 = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{out}"));
    assert!(total > 0, "{out}");
    // "Socket errors: connect 0, read 0, write 0, timeout 0" only appears when one is
    // non-zero; check the numbers anyway.
    if let Some(line) = out.lines().find(|l| l.contains("Socket errors:")) {
        let counts: Vec<&str> = line.split([',', ':']).skip(1).map(str::trim).collect();
        assert!(
            counts.iter().all(|c| c.ends_with(" 0")),
            "socket errors: {line}\n{out}"
        );
    }
    assert!(!out.contains("Non-2xx"), "{out}");
}

/// The value of ab's `name:` line.
fn ab_value<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name:?} line in ab's output:\n{out}"))
}

/// ab, 1000 requests at concurrency 16 with HTTP/1.0 keep-alive: all complete, none
/// fails, and every one was served on a kept-alive connection.
#[test]
fn ab_keep_alive_no_failures() {
    let Some(ab) = require_tool("ab", "apache2-utils") else {
        return;
    };
    let server = Server::start_http(&[]);
    let out = tool_stdout(Command::new(ab).args([
        "-q",
        "-s",
        "60",
        "-n",
        "1000",
        "-c",
        "16",
        "-k",
        &server.url("/"),
    ]));
    assert_eq!(ab_value(&out, "Complete requests:"), "1000", "{out}");
    assert_eq!(ab_value(&out, "Failed requests:"), "0", "{out}");
    assert_eq!(ab_value(&out, "Keep-Alive requests:"), "1000", "{out}");
    assert!(!out.contains("Non-2xx responses"), "{out}");
    assert!(!out.contains("Write errors"), "{out}");
}

/// `--header-timeout-ms 200`: a client that sends an incomplete request head and waits
/// is disconnected without an answer (the server logs hyper's timeout), while the
/// server keeps serving: a complete head on a new connection still gets a 200.
#[test]
fn header_read_timeout_disconnects_an_incomplete_head() {
    let server = Server::start_http(&["--header-timeout-ms", "200"]);
    let mut slow = connect(server.addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // no blank line
    let received = read_until_closed(&mut slow)
        .expect("the server closes the connection (the read timeout is the hang guard)");
    assert!(
        received.is_empty(),
        "answered instead of closing: {:?}",
        String::from_utf8_lossy(&received)
    );
    let logged = server.stderr_line_containing("connection 127.0.0.1:");
    assert!(logged.contains("timeout"), "{logged:?}");

    let (head, body) = raw_get(server.addr, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head:?}");
    assert_eq!(body, "Hello, world!\n");
}

/// Waits until the request counter says `in_flight` more requests than the `/json`
/// polls themselves have been counted: those requests have reached the service.
fn wait_until_counted(server: &Server, before: u64, in_flight: u64) {
    let deadline = Instant::now() + GUARD;
    let mut polls = 0;
    loop {
        polls += 1;
        if server.request_count() >= before + polls + in_flight {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the in-flight request never reached the server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `connect` until the server refuses connections.
fn assert_refused_soon(addr: SocketAddr) {
    let deadline = Instant::now() + GUARD;
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting {GUARD:?} after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// SIGTERM while an HTTP/1.1 request (`/sleep/1000`) is in flight: the server stops
/// accepting at once (new connections are refused), the request still gets its full
/// 200 response, and the process exits with status 0.
#[test]
fn sigterm_finishes_an_in_flight_http1_request_and_exits_0() {
    let mut server = Server::start_http(&["--grace-secs", "10"]);
    let before = server.request_count();
    let mut inflight = connect(server.addr);
    inflight
        .write_all(b"GET /sleep/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until_counted(&server, before, 1);

    server.signal(libc::SIGTERM);
    let stopped = server.line_containing("stopped accepting");
    assert!(stopped.contains("signal 15"), "{stopped:?}");
    assert_refused_soon(server.addr);

    let response = read_until_closed(&mut inflight).expect("the in-flight response");
    let (head, body) = split_response(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head:?}");
    assert_eq!(body, "slept 1000 ms\n");

    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("all connections closed; bye");
    let after = TcpStream::connect(server.addr);
    assert!(
        after
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "connect after exit: {after:?}"
    );
}

/// SIGTERM while curl's HTTP/2 request (`/sleep/1000`) is in flight: the stream
/// finishes with its 200 (GOAWAY lets it complete) and the process exits with status 0.
#[test]
fn sigterm_finishes_an_in_flight_http2_request_and_exits_0() {
    let Some(curl_bin) = require_tool("curl", "curl") else {
        return;
    };
    let mut server = Server::start_http(&["--grace-secs", "10"]);
    let before = server.request_count();
    let url = server.url("/sleep/1000");
    let request = std::thread::spawn(move || curl(&curl_bin, "--http2-prior-knowledge", &url));
    wait_until_counted(&server, before, 1);

    server.signal(libc::SIGTERM);
    server.line_containing("stopped accepting");
    assert_refused_soon(server.addr);
    let answer = request.join().expect("curl's thread");
    assert_eq!(answer, "slept 1000 ms\n2 200");

    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("all connections closed; bye");
}

/// A request longer than the grace period (1 s) does not keep the process alive: it
/// is cut (no response) and the process still exits with status 0.
#[test]
fn sigterm_cuts_a_request_longer_than_the_grace_period() {
    let mut server = Server::start_http(&["--grace-secs", "1"]);
    let before = server.request_count();
    let mut inflight = connect(server.addr);
    inflight
        .write_all(b"GET /sleep/60000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until_counted(&server, before, 1);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("grace period over");
    let received = read_until_closed(&mut inflight).expect("closed with the process");
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

/// Issue 10: `--loops 2` runs the server on a `LoopGroup` of two loops sharing the port
/// (`SO_REUSEPORT`). h2load's 16 connections are spread by the kernel: every request
/// succeeds, and on SIGTERM each loop shuts down its own connections and reports what it
/// accepted — the two reports add up to every connection made, and the process exits 0.
#[test]
fn two_loops_share_the_port_serve_every_request_and_exit_0() {
    let Some(h2load) = require_tool("h2load", "nghttp2-client") else {
        return;
    };
    let mut server = Server::start_http(&["--loops", "2"]);
    server.line_containing("2 loops share the port");
    let out = tool_stdout(Command::new(h2load).args([
        "-n",
        "1600",
        "-c",
        "16",
        "-m",
        "4",
        &server.url("/"),
    ]));
    assert_h2load_all_ok(&out, 1600);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    let mut accepted = 0;
    let mut served = 0;
    for index in 0..2 {
        let line = server.line_containing(&format!("loop {index}: accepted"));
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        // "loop I: accepted A connection(s), served R request(s)"
        assert_eq!(numbers.len(), 3, "{line:?}");
        accepted += numbers[1];
        served += numbers[2];
    }
    assert_eq!(accepted, 16, "stdout: {:?}", server.seen);
    assert_eq!(served, 1600, "stdout: {:?}", server.seen);
    server.line_containing("all connections closed; bye");
}

/// `examples/http_client.rs`, built like the server.
fn client_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| common::example::build_example("http_client", Some("hyper")))
}

/// The client example with no URL runs its own server on its loop and fetches 10 URLs
/// at once over HTTP/1.1 and again over HTTP/2: 20 lines with a 200, exit 0.
#[test]
fn http_client_example_demo_fetches_over_both_protocols() {
    let out = run_tool(&mut Command::new(client_binary()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for version in ["HTTP/1.1", "HTTP/2.0"] {
        let ok = stdout
            .lines()
            .filter(|l| l.contains(&format!("{version} 200")))
            .count();
        assert_eq!(ok, 10, "{version} lines in {stdout}");
    }
}

/// The client example against the example server: HTTP/2 multiplexed on one
/// connection, then HTTP/1.1; a refused URL makes it exit 1 and say so.
#[test]
fn http_client_example_against_the_server() {
    let server = Server::start_http(&[]);
    let urls = [server.url("/json"), server.url("/"), server.url("/missing")];
    let out = run_tool(Command::new(client_binary()).arg("--http2").args(&urls));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("HTTP/2.0 200"), "{stdout}");
    assert!(stdout.contains("\"protocol\":\"HTTP/2.0\""), "{stdout}");
    assert!(stdout.contains("HTTP/2.0 404"), "{stdout}");

    // A port nobody listens on (bound, then closed).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let out = run_tool(Command::new(client_binary()).args([&urls[0], &dead_url]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout.contains("HTTP/1.1 200"), "{stdout}");
    assert!(stdout.contains("failed"), "{stdout}");
}
