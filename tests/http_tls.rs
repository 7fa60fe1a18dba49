//! HTTPS with the examples (SPEC §15 X3, issue 20): `examples/http_server.rs` with
//! `--tls-cert` / `--tls-key` against curl over HTTP/1.1 and HTTP/2 (chosen by ALPN),
//! `examples/http_client.rs` fetching `https://` URLs from it and from a Python `ssl`
//! HTTP server, and SIGTERM while a TLS handshake is stalled.
//!
//! The certificates come from rcgen (`tests/common/tls.rs`): a test CA, which the
//! clients trust through `--cacert`, and a leaf for `localhost` and `127.0.0.1`. curl is
//! an external tool: missing, the test prints `skipped: …`, unless
//! `EVLOOP_REQUIRE_HTTP_TOOLS=1` (CI), when it fails.
#![cfg(all(feature = "hyper", feature = "tls"))]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::example::{ExampleServer, build_example};
use common::python::KillOnDrop;
use common::tools::{require_tool, run_tool, tool_stdout};
use tls::Pki;

/// Hang guard for waits on the server (never a timing assertion).
const GUARD: Duration = Duration::from_secs(20);

fn server_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("http_server", Some("hyper,tls")))
}

fn client_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("http_client", Some("hyper,tls")))
}

/// The example server serving HTTPS with the good test certificate.
fn start_https(pki: &Pki, extra: &[&str]) -> ExampleServer {
    let (cert, key) = (
        pki.good.cert.to_str().unwrap(),
        pki.good.key.to_str().unwrap(),
    );
    let mut args = vec!["--port", "0", "--tls-cert", cert, "--tls-key", key];
    args.extend(extra);
    ExampleServer::start(server_binary(), &args, GUARD, "https://")
}

/// `curl --cacert ca.pem <protocol> https://localhost:PORT/json`: the body, then the
/// HTTP version curl used on a last line of its own.
fn curl_json(pki: &Pki, server: &ExampleServer, protocol: &str) -> Option<(String, String)> {
    let curl = require_tool("curl", "curl")?;
    let url = format!("https://localhost:{}/json", server.addr.port());
    let out = tool_stdout(
        Command::new(curl)
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(&pki.ca)
            .args([protocol, "--write-out", "\n%{http_version}", &url]),
    );
    let (body, version) = out.rsplit_once('\n').expect("the body, then the version");
    Some((body.to_string(), version.to_string()))
}

/// curl over HTTP/1.1: ALPN gives `http/1.1`, the server answers on its HTTP/1-only
/// builder, and curl verified the chain against the test CA (`--cacert`).
#[test]
fn curl_https_http1_1() {
    let pki = Pki::new("http-tls-curl-h1");
    let server = start_https(&pki, &[]);
    let Some((body, version)) = curl_json(&pki, &server, "--http1.1") else {
        return;
    };
    assert_eq!(version, "1.1", "{body}");
    assert!(body.contains("\"protocol\":\"HTTP/1.1\""), "{body}");
}

/// curl over HTTP/2: ALPN gives `h2` (no prior knowledge: the protocol is chosen in
/// the TLS handshake).
#[test]
fn curl_https_http2_by_alpn() {
    let pki = Pki::new("http-tls-curl-h2");
    let server = start_https(&pki, &[]);
    let Some((body, version)) = curl_json(&pki, &server, "--http2") else {
        return;
    };
    assert_eq!(version, "2", "{body}");
    assert!(body.contains("\"protocol\":\"HTTP/2.0\""), "{body}");
}

/// curl without the CA refuses the server's certificate (exit 60: it cannot verify the
/// chain): the server presents the test chain, not something curl trusts by default.
#[test]
fn curl_without_the_ca_refuses_the_certificate() {
    let Some(curl) = require_tool("curl", "curl") else {
        return;
    };
    let pki = Pki::new("http-tls-curl-noca");
    let server = start_https(&pki, &[]);
    let url = format!("https://localhost:{}/", server.addr.port());
    let out = run_tool(Command::new(curl).args(["--silent", &url]));
    assert_eq!(out.status.code(), Some(60), "{out:?}");
}

/// The client example fetches `https://` URLs from the example server, trusting the
/// test CA: over HTTP/1.1 (a connection per URL), then HTTP/2 (ALPN `h2`, one
/// connection); without `--cacert` it uses the system's roots, which do not include
/// the test CA, so the fetch fails naming the server and exit status is 1.
#[test]
fn http_client_example_fetches_https_from_the_example_server() {
    let pki = Pki::new("http-tls-client");
    let server = start_https(&pki, &[]);
    let urls = [
        format!("https://localhost:{}/json", server.addr.port()),
        format!("https://127.0.0.1:{}/", server.addr.port()),
    ];
    for (flags, version) in [(&[][..], "HTTP/1.1"), (&["--http2"][..], "HTTP/2.0")] {
        let out = tool_stdout(
            Command::new(client_binary())
                .arg("--cacert")
                .arg(&pki.ca)
                .args(flags)
                .args(&urls),
        );
        assert_eq!(
            out.lines()
                .filter(|l| l.contains(&format!("{version} 200")))
                .count(),
            2,
            "{out}"
        );
        assert!(
            out.contains(&format!("\"protocol\":\"{version}\"")),
            "{out}"
        );
    }

    let out = run_tool(Command::new(client_binary()).arg(&urls[0]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout.contains(&format!(
            "TLS handshake with localhost (127.0.0.1:{})",
            server.addr.port()
        )),
        "{stdout}"
    );
}

/// The client example against a real peer that is not evloop: Python's `http.server`
/// wrapped in an `ssl` context with the test certificate.
#[test]
fn http_client_example_fetches_from_a_python_ssl_server() {
    let pki = Pki::new("http-tls-python");
    let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"python says hi\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(["http/1.1"])
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut python = KillOnDrop::new(
        Command::new("python3")
            .args(["-c", script])
            .arg(&pki.good.cert)
            .arg(&pki.good.key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut port = String::new();
    BufReader::new(python.child().stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let url = format!("https://localhost:{}/hello", port.trim());
    let out = tool_stdout(
        Command::new(client_binary())
            .arg("--cacert")
            .arg(&pki.ca)
            .arg(&url),
    );
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    assert!(out.contains("python says hi"), "{out}");
}

/// SIGTERM while a TLS handshake is stalled (the peer sent the first bytes of a
/// ClientHello record and nothing more): the server abandons the handshake, which holds
/// no request, rather than waiting out the grace period (60 s here) or its handshake
/// timeout; it closes that socket and exits 0.
///
/// Order of events, not timing: the stalled connection is made first, then a full curl
/// request on a second one succeeds. Connections are accepted in order on the one loop
/// and each task starts before the next accept's, so by the time curl has its answer the
/// stalled connection's handshake is under way.
#[test]
fn sigterm_during_a_tls_handshake_exits_0_without_waiting() {
    let pki = Pki::new("http-tls-sigterm");
    let mut server = start_https(&pki, &["--grace-secs", "60"]);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    // A handshake record header announcing 512 bytes, and 3 of them.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .unwrap();
    if curl_json(&pki, &server, "--http1.1").is_none() {
        return;
    }

    server.signal(libc::SIGTERM);
    let stopping = server.line_containing("stopped accepting");
    assert!(
        stopping.contains("shutting down 1 open connection(s)"),
        "{stopping}"
    );
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stdout: {:?}", server.seen);
    server.line_containing("all connections closed; bye");
    assert!(
        !server.seen.iter().any(|l| l.contains("grace period over")),
        "the stalled handshake was waited for: {:?}",
        server.seen
    );

    stalled.set_read_timeout(Some(GUARD)).unwrap();
    let mut rest = Vec::new();
    let end = stalled.read_to_end(&mut rest);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled socket is closed, not left open: {end:?}"
    );
}

/// Bad TLS arguments are refused at start, exit 2, naming what was wrong: a missing
/// key file by its path, and `--tls-cert` without `--tls-key`.
#[test]
fn bad_tls_arguments_exit_2_naming_the_problem() {
    let pki = Pki::new("http-tls-args");
    let cert = pki.good.cert.to_str().unwrap();
    let missing = pki.dir.join("no-such-key.pem");
    let out = run_tool(
        Command::new(server_binary())
            .args(["--tls-cert", cert, "--tls-key"])
            .arg(&missing),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");

    let out = run_tool(Command::new(server_binary()).args(["--tls-cert", cert]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("--tls-cert and --tls-key go together"),
        "{stderr}"
    );
}
