//! SPEC §15 X3 (issue 20), `evloop::tls` against real peers: Python's `ssl` module (an
//! OpenSSL server and client), `openssl s_client`, and evloop itself.
//!
//! Each test makes its own CA and certificates with rcgen (`tests/common/tls.rs`): a
//! leaf for `localhost` / `127.0.0.1`, an expired one, one for the wrong name. Covered:
//! a round trip with ALPN and TLS 1.3 against Python's server; `close_notify` as Python's
//! client sees it (a clean end after `shutdown()`, `SSLEOFError` after a drop); `openssl
//! s_client` verifying the chain and negotiating `h2`; certificates refused (expired,
//! wrong name) with errors that name the server, its address and the reason, and the
//! alert the server side gets naming the client; a truncation (`UnexpectedEof`) against
//! a clean end (`Ok(0)`); 100 concurrent handshakes; handshake failures (plaintext peer,
//! silent peer and the handshake timeout, a close mid-handshake, a bad server name, bad
//! PEM files); cancellation of a pending handshake; `io::BufReader` over a `TlsStream`.
//!
//! Peers are child processes killed on drop (`KillOnDrop`); their own sockets time out
//! after 15 s. Nothing asserts on time: `GUARD` (20 s) only keeps a hang from lasting.
//! A missing `python3` skips the Python tests with a note; a missing `openssl` skips
//! the s_client test unless `EVLOOP_REQUIRE_HTTP_TOOLS=1`, which makes it fail.
#![cfg(feature = "tls")]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::python::KillOnDrop;
use common::{entries, new_log, push};
use evloop::io::BufReader;
use evloop::net::{TcpListener, TcpStream};
use evloop::tls::rustls::{self, AlertDescription, CertificateError};
use evloop::tls::{
    DEFAULT_HANDSHAKE_TIMEOUT, HandshakeError, TlsAcceptor, load_certs, load_private_key,
};
use evloop::{Error, Task, create_task, time};
use tls::{Close, GUARD, NAME, Pki, listen, serve_many, serve_one};

// ---------------------------------------------------------------------------------------
// Peer processes.

/// A peer process with piped stdout and stderr, killed and reaped on drop.
struct Peer {
    what: String,
    child: KillOnDrop,
    stdout: std::io::BufReader<ChildStdout>,
}

/// What a peer printed, once it has exited successfully.
struct Finished {
    stdout: String,
    stderr: String,
}

impl Peer {
    fn spawn(mut cmd: Command) -> Peer {
        let what = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = KillOnDrop::new(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting {what}: {e}")),
        );
        let stdout = std::io::BufReader::new(child.child().stdout.take().expect("piped"));
        Peer {
            what,
            child,
            stdout,
        }
    }

    fn python(script: &str, args: &[&OsStr]) -> Peer {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script).args(args).stdin(Stdio::null());
        Peer::spawn(cmd)
    }

    /// The first line the peer prints (blocking: call it before the loop runs, for a
    /// peer that prints it at once).
    fn first_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reading the peer");
        if line.is_empty() {
            let status = self.child.child().wait();
            let mut stderr = String::new();
            if let Some(mut e) = self.child.child().stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            panic!(
                "{} printed nothing ({status:?}); stderr:\n{stderr}",
                self.what
            );
        }
        line.trim_end().to_string()
    }

    /// Waits on the loop (checking every 5 ms, for at most [`GUARD`], a hang guard) for
    /// the peer to exit; what it printed, or a panic with it if it failed.
    async fn finish(mut self) -> Finished {
        let deadline = Instant::now() + GUARD;
        let status = loop {
            if let Some(status) = self.child.child().try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {GUARD:?}",
                self.what
            );
            time::sleep(Duration::from_millis(5)).await.unwrap();
        };
        let mut stdout = String::new();
        let _ = self.stdout.read_to_string(&mut stdout);
        let mut stderr = String::new();
        if let Some(mut e) = self.child.child().stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(
            status.success(),
            "{} failed: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.what
        );
        Finished { stdout, stderr }
    }
}

/// A Python `ssl` server for one connection. argv: cert, key, mode. It prints its port,
/// then what it negotiated, echoes one line, and ends the connection: `notify` waits for
/// the client's `close_notify` and answers it (`unwrap()`), `drop` closes the socket
/// with no `close_notify`.
const PY_SERVER: &str = r#"
import socket, ssl, sys

cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(['h2', 'http/1.1'])
names = []
ctx.sni_callback = lambda sock, name, c: names.append(name)
srv = socket.create_server(('127.0.0.1', 0))
srv.settimeout(15)
print(srv.getsockname()[1], flush=True)
raw, _ = srv.accept()
raw.settimeout(15)
conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
print('version', conn.version())
print('alpn', conn.selected_alpn_protocol())
print('sni', names)
data = b''
while not data.endswith(b'\n'):
    chunk = conn.recv(4096)
    if not chunk:
        break
    data += chunk
conn.sendall(data)
print('received', data)
if mode == 'notify':
    print('then', conn.recv(4096))
    conn.unwrap().close()
else:
    conn.close()
print('done', flush=True)
"#;

/// A Python `ssl` client. argv: port, CA file. It verifies the server as `localhost`
/// against the CA, offers ALPN `http/1.1`, sends a line and reads until the end of the
/// stream with `suppress_ragged_eofs=False`, so a close without `close_notify` raises
/// `SSLEOFError` instead of looking like the end.
const PY_CLIENT: &str = r#"
import socket, ssl, sys

port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(['http/1.1'])
raw = socket.create_connection(('127.0.0.1', port), timeout=15)
s = ctx.wrap_socket(raw, server_hostname='localhost', suppress_ragged_eofs=False)
print('version', s.version())
print('alpn', s.selected_alpn_protocol())
s.sendall(b'hello from python\n')
data = b''
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            print('reply', data)
            print('end clean')
            break
        data += chunk
except ssl.SSLEOFError as e:
    print('reply', data)
    print('end SSLEOFError', e)
s.close()
"#;

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The handshake of the one connection `listener` accepts, as the server sees it.
fn accept_outcome(listener: TcpListener, acceptor: TlsAcceptor) -> Task<std::io::Result<()>> {
    create_task(async move {
        let (tcp, _) = time::timeout(GUARD, listener.accept()).await??;
        let outcome = time::timeout(GUARD, acceptor.accept(tcp)).await?;
        Ok(outcome.map(drop))
    })
}

#[track_caller]
fn handshake_error(err: &std::io::Error) -> &HandshakeError {
    HandshakeError::of(err).unwrap_or_else(|| panic!("not a HandshakeError: {err:?}"))
}

// ---------------------------------------------------------------------------------------
// Python's ssl module.

/// An evloop client and a Python (OpenSSL) server agree on TLS 1.3 and ALPN `h2`, the
/// client sends SNI `localhost`, sees the server's certificate, and bytes make the round
/// trip; the client's `shutdown()` reaches Python as a clean end (`b''`) and Python's
/// answering `close_notify` reads as `Ok(0)`.
#[test]
fn an_evloop_client_round_trips_with_a_python_ssl_server() {
    if !common::python::has_module("ssl") {
        return;
    }
    let pki = Pki::new("tls-py-server");
    let mut py = Peer::python(
        PY_SERVER,
        &[
            pki.good.cert.as_os_str(),
            pki.good.key.as_os_str(),
            "notify".as_ref(),
        ],
    );
    let port: u16 = py.first_line().parse().expect("python printed its port");
    let connector = pki.connector().with_alpn(&["h2", "http/1.1"]);
    let leaf = load_certs(&pki.good.cert).unwrap();

    common::run_guarded(async move {
        let tcp = time::timeout(GUARD, TcpStream::connect(("127.0.0.1", port))).await??;
        let mut tls = time::timeout(GUARD, connector.connect(NAME, tcp)).await??;
        assert_eq!(tls.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(
            tls.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(tls.peer_certificates(), Some(&leaf[..1]));
        assert!(tls.is_client());
        assert_eq!(tls.sni_hostname(), None, "a client has no SNI of its own");

        tls.write_all(b"hello from evloop\n").await?;
        let mut back = [0u8; 18];
        time::timeout(GUARD, tls.read_exact(&mut back)).await??;
        assert_eq!(&back, b"hello from evloop\n");
        tls.shutdown().await?;
        let mut buf = [0u8; 16];
        let n = time::timeout(GUARD, tls.read(&mut buf)).await??;
        assert_eq!(n, 0, "python's close_notify ends the stream cleanly");

        let out = py.finish().await;
        assert_eq!(
            lines(&out.stdout),
            [
                "version TLSv1.3",
                "alpn h2",
                "sni ['localhost']",
                "received b'hello from evloop\\n'",
                "then b''",
                "done",
            ],
            "python's account of the connection; stderr:\n{}",
            out.stderr
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Runs [`PY_CLIENT`] against an evloop TLS server that replies and then closes as
/// `close` says; Python's output and what the server saw.
fn python_client_against(close: Close, name: &str) -> (Vec<String>, tls::Served) {
    let pki = Pki::new(name);
    let acceptor = pki.good.acceptor().with_alpn(&["h2", "http/1.1"]);
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = serve_one(listener, acceptor, close);
        let py = Peer::python(
            PY_CLIENT,
            &[addr.port().to_string().as_ref(), pki.ca.as_os_str()],
        );
        let served = time::timeout(GUARD, server).await??;
        let out = py.finish().await;
        let printed = out.stdout.lines().map(str::to_string).collect();
        Ok::<_, Error>((printed, served))
    })
    .unwrap()
}

/// An evloop server's `shutdown()` sends `close_notify`: Python's client, which refuses
/// ragged EOFs, reads the reply and then a clean end of stream. The server saw SNI
/// `localhost`, chose Python's only ALPN offer `http/1.1`, and spoke TLS 1.3.
#[test]
fn an_evloop_server_shutdown_ends_the_stream_cleanly_for_python() {
    if !common::python::has_module("ssl") {
        return;
    }
    let (printed, served) = python_client_against(Close::Notify, "tls-py-client-notify");
    assert_eq!(
        printed,
        [
            "version TLSv1.3",
            "alpn http/1.1",
            "reply b'hello from python\\n'",
            "end clean",
        ]
    );
    assert_eq!(served.received, b"hello from python\n");
    assert_eq!(served.sni.as_deref(), Some(NAME));
    assert_eq!(served.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(served.version, Some(rustls::ProtocolVersion::TLSv1_3));
}

/// The control for the test above: an evloop server that drops its socket after the
/// reply (`into_inner()`, no `shutdown()`) sends no `close_notify`, and the same Python
/// client reads the reply and then reports `SSLEOFError`.
#[test]
fn an_evloop_server_dropped_without_shutdown_is_a_truncation_for_python() {
    if !common::python::has_module("ssl") {
        return;
    }
    let (printed, served) = python_client_against(Close::Drop, "tls-py-client-drop");
    assert_eq!(printed.len(), 4, "{printed:?}");
    assert_eq!(
        printed[..3],
        [
            "version TLSv1.3",
            "alpn http/1.1",
            "reply b'hello from python\\n'"
        ]
    );
    assert!(
        printed[3].starts_with("end SSLEOFError"),
        "python saw no truncation: {printed:?}"
    );
    assert_eq!(served.received, b"hello from python\n");
}

/// A Python server that closes its socket without `close_notify` (no `unwrap()`) after
/// its reply: the evloop client reads the reply, then `UnexpectedEof` saying
/// `close_notify` was missing — not a clean `Ok(0)`.
#[test]
fn a_python_server_closing_without_close_notify_is_unexpected_eof() {
    if !common::python::has_module("ssl") {
        return;
    }
    let pki = Pki::new("tls-py-server-drop");
    let mut py = Peer::python(
        PY_SERVER,
        &[
            pki.good.cert.as_os_str(),
            pki.good.key.as_os_str(),
            "drop".as_ref(),
        ],
    );
    let port: u16 = py.first_line().parse().expect("python printed its port");
    let connector = pki.connector();

    common::run_guarded(async move {
        let tcp = time::timeout(GUARD, TcpStream::connect(("127.0.0.1", port))).await??;
        let mut tls = time::timeout(GUARD, connector.connect(NAME, tcp)).await??;
        assert_eq!(tls.alpn_protocol(), None, "the client offered no ALPN");
        tls.write_all(b"ping\n").await?;
        let mut reply = Vec::new();
        let err = time::timeout(GUARD, tls.read_to_end(&mut reply))
            .await?
            .expect_err("a close without close_notify is not an end of stream");
        assert_eq!(reply, b"ping\n", "the reply arrived before the truncation");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err:?}");
        assert!(err.to_string().contains("close_notify"), "{err}");

        let out = py.finish().await;
        assert_eq!(
            lines(&out.stdout),
            [
                "version TLSv1.3",
                "alpn None",
                "sni ['localhost']",
                "received b'ping\\n'",
                "done",
            ]
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// openssl s_client.

/// `openssl s_client` verifies the evloop server's chain against the CA and its name
/// (`Verify return code: 0 (ok)`), negotiates TLS 1.3 and ALPN `h2` out of the server's
/// `["h2", "http/1.1"]`, and prints the echo of what it sent, after the handshake's
/// summary; the server's `close_notify` ends s_client successfully.
#[test]
fn openssl_s_client_verifies_negotiates_h2_and_gets_the_echo() {
    let Some(openssl) = common::tools::require_tool("openssl", "openssl") else {
        return;
    };
    let pki = Pki::new("tls-s-client");
    let acceptor = pki.good.acceptor().with_alpn(&["h2", "http/1.1"]);
    let line = "hello over openssl s_client\n";

    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = serve_one(listener, acceptor, Close::Notify);
        let mut cmd = Command::new(&openssl);
        cmd.arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .args(["-servername", NAME, "-verify_hostname", NAME, "-CAfile"])
            .arg(&pki.ca)
            .args(["-verify_return_error", "-alpn", "h2"])
            .stdin(Stdio::piped());
        let mut peer = Peer::spawn(cmd);
        // Stdin stays open (an EOF on it would end s_client early): the server's
        // close_notify is what ends it.
        let mut stdin = peer.child.child().stdin.take().expect("piped stdin");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();

        let served = time::timeout(GUARD, server).await??;
        let out = peer.finish().await;
        drop(stdin);
        let text = format!("{}\n{}", out.stdout, out.stderr);
        for needle in ["Verify return code: 0 (ok)", "ALPN protocol: h2", "TLSv1.3"] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
        let verified = out.stdout.find("Verify return code: 0 (ok)").unwrap();
        let echoed = out
            .stdout
            .find(line.trim_end())
            .unwrap_or_else(|| panic!("no echo in:\n{}", out.stdout));
        assert!(
            verified < echoed,
            "the echo came after the handshake:\n{text}"
        );

        assert_eq!(served.received, line.as_bytes());
        assert_eq!(served.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(served.sni.as_deref(), Some(NAME));
        assert_eq!(served.version, Some(rustls::ProtocolVersion::TLSv1_3));
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// Certificates refused.

/// Connects an evloop client (trusting the test CA) to an evloop server presenting
/// `cert`: the client's error, the server's, the server's address and the client's.
fn refused(
    name: &str,
    pick: impl FnOnce(&Pki) -> &tls::CertFiles,
) -> (std::io::Error, std::io::Error, SocketAddr, SocketAddr) {
    let pki = Pki::new(name);
    let acceptor = pick(&pki).acceptor();
    let connector = pki.connector();
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = accept_outcome(listener, acceptor);
        let tcp = TcpStream::connect(addr).await?;
        let client_addr = tcp.local_addr()?;
        let client = time::timeout(GUARD, connector.connect(NAME, tcp))
            .await?
            .expect_err("the certificate is refused");
        let server = time::timeout(GUARD, server)
            .await??
            .expect_err("the server's handshake fails too");
        Ok::<_, Error>((client, server, addr, client_addr))
    })
    .unwrap()
}

/// An expired certificate: `InvalidData` naming `localhost`, the server's address and
/// the expiry, with rustls's `ExpiredContext`; the server gets the client's
/// `certificate_expired` alert, in an error naming the client's address.
#[test]
fn an_expired_certificate_is_refused_with_an_error_naming_the_server() {
    let (client, server, addr, client_addr) = refused("tls-expired", |p| &p.expired);

    assert_eq!(client.kind(), ErrorKind::InvalidData, "{client:?}");
    let text = client.to_string();
    assert!(
        text.starts_with(&format!("TLS handshake with localhost ({addr}) failed: ")),
        "{text}"
    );
    assert!(text.contains("expired"), "{text}");
    let he = handshake_error(&client);
    assert_eq!(he.peer(), addr.to_string());
    assert_eq!(he.server_name(), Some(NAME));
    assert!(
        matches!(
            he.rustls_error(),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ),
        "{:?}",
        he.rustls_error()
    );

    assert_eq!(server.kind(), ErrorKind::InvalidData, "{server:?}");
    let text = server.to_string();
    assert!(
        text.starts_with(&format!("TLS handshake with {client_addr} failed: ")),
        "{text}"
    );
    let he = handshake_error(&server);
    assert_eq!(he.peer(), client_addr.to_string());
    assert_eq!(he.server_name(), None);
    assert_eq!(
        he.rustls_error(),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::CertificateExpired
        ))
    );
}

/// A certificate for `other.example` when the client asked for `localhost`: refused
/// with rustls's `NotValidForNameContext`, the message naming both names; the server
/// gets the client's `bad_certificate` alert, naming the client's address.
#[test]
fn a_certificate_for_another_name_is_refused() {
    let (client, server, addr, client_addr) = refused("tls-wrong-name", |p| &p.wrong_name);

    assert_eq!(client.kind(), ErrorKind::InvalidData, "{client:?}");
    let text = client.to_string();
    assert!(
        text.starts_with(&format!("TLS handshake with localhost ({addr}) failed: ")),
        "{text}"
    );
    assert!(text.contains("other.example"), "{text}");
    let he = handshake_error(&client);
    match he.rustls_error() {
        Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        })) => {
            assert_eq!(
                *expected,
                rustls::pki_types::ServerName::try_from(NAME).unwrap()
            );
            assert!(
                presented.iter().any(|p| p.contains("other.example")),
                "{presented:?}"
            );
        }
        other => panic!("not NotValidForNameContext: {other:?}"),
    }

    let he = handshake_error(&server);
    assert_eq!(he.peer(), client_addr.to_string());
    assert!(server.to_string().contains(&client_addr.to_string()));
    assert_eq!(
        he.rustls_error(),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
        ))
    );
}

// ---------------------------------------------------------------------------------------
// The end of the stream.

/// Against an evloop server, the client reads the reply and then: after the server's
/// `shutdown()`, `Ok(0)` (and `Ok(0)` again); after the server drops the socket without
/// it (`into_inner()`), `UnexpectedEof` naming the missing `close_notify`.
#[test]
fn a_clean_close_reads_as_ok_0_and_a_truncation_as_unexpected_eof() {
    let pki = Pki::new("tls-eof");
    common::run_guarded(async move {
        for close in [Close::Notify, Close::Drop] {
            let (listener, addr) = listen().await?;
            let server = serve_one(listener, pki.good.acceptor(), close);
            let tcp = TcpStream::connect(addr).await?;
            let mut tls = time::timeout(GUARD, pki.connector().connect(NAME, tcp)).await??;
            tls.write_all(b"bye\n").await?;
            let mut reply = [0u8; 4];
            time::timeout(GUARD, tls.read_exact(&mut reply)).await??;
            assert_eq!(&reply, b"bye\n");
            let mut buf = [0u8; 16];
            let next = time::timeout(GUARD, tls.read(&mut buf)).await?;
            match close {
                Close::Notify => {
                    assert_eq!(next?, 0, "close_notify is a clean end");
                    assert_eq!(tls.read(&mut buf).await?, 0, "and it stays ended");
                    tls.shutdown().await?; // lets the server's drain end
                }
                Close::Drop => {
                    let err = next.expect_err("no close_notify: a truncation");
                    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err:?}");
                    assert!(err.to_string().contains("close_notify"), "{err}");
                }
            }
            let served = time::timeout(GUARD, server).await??;
            assert_eq!(served.received, b"bye\n");
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// Many handshakes at once.

/// 100 evloop clients connect at once to one evloop TLS server, which runs a task per
/// connection: every handshake succeeds, each client gets its own index back, and the
/// server counted exactly 100 handshakes, each connection carrying a different index.
#[test]
fn a_hundred_concurrent_handshakes_all_succeed() {
    const N: usize = 100;
    let pki = Pki::new("tls-hundred");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let handshakes = Rc::new(Cell::new(0usize));
        let server = serve_many(listener, pki.good.acceptor(), N, handshakes.clone());
        let connector = pki.connector();
        let clients: Vec<Task<Vec<u8>>> = (0..N)
            .map(|i| {
                let connector = connector.clone();
                create_task(async move {
                    let tcp = TcpStream::connect(addr).await?;
                    let mut tls = connector.connect(NAME, tcp).await?;
                    tls.write_all(format!("client {i}\n").as_bytes()).await?;
                    let mut back = Vec::new();
                    tls.read_to_end(&mut back).await?; // to the server's close_notify
                    tls.shutdown().await?;
                    Ok(back)
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            let back = time::timeout(GUARD, client).await??;
            assert_eq!(String::from_utf8_lossy(&back), format!("client {i}\n"));
        }
        let connections = time::timeout(GUARD, server).await??;
        assert_eq!(connections.len(), N);
        let mut received = Vec::new();
        for connection in connections {
            received.push(String::from_utf8(time::timeout(GUARD, connection).await??).unwrap());
        }
        received.sort();
        let mut expected: Vec<String> = (0..N).map(|i| format!("client {i}\n")).collect();
        expected.sort();
        assert_eq!(received, expected);
        assert_eq!(handshakes.get(), N);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// Handshake failures.

/// A plaintext HTTP request to a TLS acceptor fails the handshake with `InvalidData`,
/// in an error that names the client's address and carries rustls's error.
#[test]
fn a_plaintext_peer_fails_the_handshake_with_its_address() {
    let pki = Pki::new("tls-plaintext");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = accept_outcome(listener, pki.good.acceptor());
        let raw = TcpStream::connect(addr).await?;
        let client_addr = raw.local_addr()?;
        raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let err = time::timeout(GUARD, server)
            .await??
            .expect_err("HTTP is not TLS");
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("TLS handshake with {client_addr} failed: ")),
            "{text}"
        );
        let he = handshake_error(&err);
        assert_eq!(he.peer(), client_addr.to_string());
        assert!(he.rustls_error().is_some(), "{err:?}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A peer that connects and never speaks meets the acceptor's handshake timeout: the
/// accept fails with `TimedOut`, the message names the peer and the timeout.
#[test]
fn a_silent_peer_meets_the_handshake_timeout() {
    let pki = Pki::new("tls-silent");
    let timeout = Duration::from_millis(50);
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let acceptor = pki.good.acceptor().with_handshake_timeout(Some(timeout));
        let server = accept_outcome(listener, acceptor);
        let silent = TcpStream::connect(addr).await?;
        let client_addr = silent.local_addr()?;
        let err = time::timeout(GUARD, server)
            .await??
            .expect_err("the handshake times out");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("TLS handshake with {client_addr} failed: ")),
            "{text}"
        );
        assert!(text.contains("handshake timeout"), "{text}");
        assert!(text.contains(&format!("{timeout:?}")), "{text}");
        let he = handshake_error(&err);
        assert_eq!(he.reason().kind(), ErrorKind::TimedOut);
        assert!(he.rustls_error().is_none());
        drop(silent);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// The first TLS record a client sends: its ClientHello, made by rustls.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let config: Arc<rustls::ClientConfig> = pki.connector().config().clone();
    let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    assert_eq!(hello[0], 22, "a handshake record");
    hello
}

/// A client that sends half a ClientHello and closes: the acceptor's error is
/// `UnexpectedEof`, "the peer closed the connection during the handshake", naming it.
#[test]
fn a_client_closing_mid_handshake_is_unexpected_eof() {
    let pki = Pki::new("tls-client-eof");
    let hello = client_hello(&pki);
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = accept_outcome(listener, pki.good.acceptor());
        let raw = TcpStream::connect(addr).await?;
        let client_addr = raw.local_addr()?;
        raw.write_all(&hello[..hello.len() / 2]).await?;
        raw.shutdown(std::net::Shutdown::Write)?;
        let err = time::timeout(GUARD, server)
            .await??
            .expect_err("half a hello is no handshake");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "TLS handshake with {client_addr} failed: the peer closed the connection \
                 during the handshake"
            )
        );
        drop(raw);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A server that reads the whole ClientHello and closes without answering: the
/// connector's error is `UnexpectedEof` naming `localhost`, the address, and the close.
#[test]
fn a_server_closing_mid_handshake_is_unexpected_eof() {
    let pki = Pki::new("tls-server-eof");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = create_task(async move {
            let (raw, _) = listener.accept().await?;
            let mut header = [0u8; 5];
            raw.read_exact(&mut header).await?;
            let len = u16::from_be_bytes([header[3], header[4]]) as usize;
            let mut body = vec![0u8; len];
            raw.read_exact(&mut body).await?; // all of it: closing leaves nothing unread
            drop(raw);
            Ok(header[0])
        });
        let tcp = TcpStream::connect(addr).await?;
        let err = time::timeout(GUARD, pki.connector().connect(NAME, tcp))
            .await?
            .expect_err("no ServerHello came");
        assert_eq!(
            time::timeout(GUARD, server).await??,
            22,
            "a handshake record"
        );
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "TLS handshake with localhost ({addr}) failed: the peer closed the \
                 connection during the handshake"
            )
        );
        assert_eq!(handshake_error(&err).server_name(), Some(NAME));
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A server name that is neither a DNS name nor an IP address is refused before any
/// byte is sent: `InvalidInput` naming it, no `HandshakeError`.
#[test]
fn a_bad_server_name_is_invalid_input_naming_it() {
    let pki = Pki::new("tls-bad-name");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let tcp = TcpStream::connect(addr).await?;
        let (accepted, _) = listener.accept().await?;
        let err = pki
            .connector()
            .connect("not a name!!", tcp)
            .await
            .expect_err("not a server name");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert!(err.to_string().contains("\"not a name!!\""), "{err}");
        assert!(HandshakeError::of(&err).is_none());
        // Nothing was sent: the connection closes with no byte on it.
        let mut buf = [0u8; 16];
        assert_eq!(time::timeout(GUARD, accepted.read(&mut buf)).await??, 0);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Certificate and key files that are missing, not PEM, or do not match: every error
/// names the file (both files for a key that does not fit the certificate).
#[test]
fn bad_pem_files_give_errors_naming_the_path() {
    let pki = Pki::new("tls-pem");
    let missing = pki.dir.join("missing.pem");
    let not_pem = pki.dir.join("not-pem.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let corrupt = pki.dir.join("corrupt.pem");
    std::fs::write(
        &corrupt,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let names = |err: &std::io::Error, path: &Path| {
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err} does not name {}",
            path.display()
        );
    };

    let err = load_certs(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    names(&err, &missing);
    for bad in [&not_pem, &corrupt] {
        let err = load_certs(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
        names(&err, bad);
    }
    let err = load_private_key(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    names(&err, &missing);
    // A certificate file holds no private key.
    let err = load_private_key(&pki.good.cert).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no PEM private key in the file",
            pki.good.cert.display()
        )
    );

    let err = TlsAcceptor::from_pem_files(&missing, &pki.good.key).unwrap_err();
    names(&err, &missing);
    let err = TlsAcceptor::from_pem_files(&not_pem, &pki.good.key).unwrap_err();
    names(&err, &not_pem);
    let err = TlsAcceptor::from_pem_files(&pki.good.cert, &missing).unwrap_err();
    names(&err, &missing);
    let err = TlsAcceptor::from_pem_files(&pki.good.cert, &not_pem).unwrap_err();
    names(&err, &not_pem);
    // The key of another certificate.
    let err = TlsAcceptor::from_pem_files(&pki.good.cert, &pki.wrong_name.key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    names(&err, &pki.good.cert);
    names(&err, &pki.wrong_name.key);

    let err = evloop::tls::TlsConnector::with_root_file(&not_pem).unwrap_err();
    names(&err, &not_pem);
    let err = evloop::tls::TlsConnector::with_root_file(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    names(&err, &missing);
}

/// ALPN as `with_alpn` documents it: a client offering none of the server's protocols
/// is refused with `no_application_protocol` (both sides see it), and a client offering
/// no ALPN at all is served with `alpn_protocol()` `None` on both ends.
#[test]
fn alpn_without_a_common_protocol_is_refused_and_no_alpn_is_accepted() {
    let pki = Pki::new("tls-alpn");
    common::run_guarded(async move {
        let acceptor = pki.good.acceptor().with_alpn(&["h2"]);

        let (listener, addr) = listen().await?;
        let server = accept_outcome(listener, acceptor.clone());
        let tcp = TcpStream::connect(addr).await?;
        let client = time::timeout(
            GUARD,
            pki.connector().with_alpn(&["spdy/3"]).connect(NAME, tcp),
        )
        .await?
        .expect_err("no common protocol");
        let server = time::timeout(GUARD, server).await??.expect_err("refused");
        assert_eq!(
            handshake_error(&client).rustls_error(),
            Some(&rustls::Error::AlertReceived(
                AlertDescription::NoApplicationProtocol
            )),
            "{client}"
        );
        assert_eq!(
            handshake_error(&server).rustls_error(),
            Some(&rustls::Error::NoApplicationProtocol),
            "{server}"
        );

        let (listener, addr) = listen().await?;
        let server = serve_one(listener, acceptor, Close::Notify);
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = time::timeout(GUARD, pki.connector().connect(NAME, tcp)).await??;
        assert_eq!(tls.alpn_protocol(), None);
        tls.write_all(b"x\n").await?;
        let mut back = Vec::new();
        time::timeout(GUARD, tls.read_to_end(&mut back)).await??;
        tls.shutdown().await?;
        assert_eq!(back, b"x\n");
        let served = time::timeout(GUARD, server).await??;
        assert_eq!(served.alpn, None);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// Cancellation.

/// A task awaiting `accept` on a peer that never speaks, cancelled through its handle,
/// ends cancelled (`Error::Cancelled`): the accept returned the cancellation itself,
/// not a `HandshakeError`, and the code after it never ran. Both with the default
/// handshake timeout (a timer pending too) and with none.
#[test]
fn cancelling_a_pending_accept_ends_the_task_cancelled() {
    let pki = Pki::new("tls-cancel");
    common::run_guarded(async move {
        for timeout in [Some(DEFAULT_HANDSHAKE_TIMEOUT), None] {
            let (listener, addr) = listen().await?;
            let silent = TcpStream::connect(addr).await?;
            let (tcp, _) = listener.accept().await?;
            let acceptor = pki.good.acceptor().with_handshake_timeout(timeout);
            let log = new_log();
            let task = create_task({
                let log = log.clone();
                async move {
                    push(&log, "accepting");
                    let outcome = acceptor.accept(tcp).await;
                    if let Err(e) = &outcome {
                        push(
                            &log,
                            format!(
                                "accept failed; a HandshakeError: {}",
                                HandshakeError::of(e).is_some()
                            ),
                        );
                    }
                    outcome?;
                    push(&log, "handshake done");
                    Ok(())
                }
            });
            let handle = task.future();
            common::eventually("the task awaits the handshake", || {
                entries(&log) == ["accepting"]
            })
            .await;
            assert!(task.cancel());
            let result = time::timeout(GUARD, task).await?;
            assert!(
                matches!(result, Err(Error::Cancelled(_))),
                "{timeout:?}: {result:?}"
            );
            assert!(handle.cancelled());
            assert_eq!(
                entries(&log),
                ["accepting", "accept failed; a HandshakeError: false"],
                "{timeout:?}"
            );
            drop(silent);
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// futures-io interop.

/// `evloop::io::BufReader` over a client `TlsStream` reads the lines a server writes
/// through futures-io's `AsyncWriteExt` in pieces that split lines; futures-io's
/// `close` sends `close_notify`, so the lines end with `None`, not an error.
#[test]
fn buf_reader_reads_lines_over_tls() {
    use futures_util::io::AsyncWriteExt;

    let pki = Pki::new("tls-lines");
    let acceptor = pki.good.acceptor();
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let server = create_task(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = time::timeout(GUARD, acceptor.accept(tcp)).await??;
            for piece in ["one\ntw", "o\r\n", "thr", "ee\nlast without newline"] {
                AsyncWriteExt::write_all(&mut tls, piece.as_bytes()).await?;
                AsyncWriteExt::flush(&mut tls).await?;
            }
            AsyncWriteExt::close(&mut tls).await?;
            Ok(())
        });
        let tcp = TcpStream::connect(addr).await?;
        let tls = time::timeout(GUARD, pki.connector().connect(NAME, tcp)).await??;
        let mut lines = BufReader::new(tls).lines();
        let mut got = Vec::new();
        while let Some(line) = time::timeout(GUARD, lines.next_line()).await?? {
            got.push(line);
        }
        assert_eq!(got, ["one", "two", "three", "last without newline"]);
        time::timeout(GUARD, server).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
}
