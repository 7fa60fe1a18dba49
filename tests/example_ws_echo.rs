//! The `ws_echo` example (SPEC §15 N8: tokio-tungstenite on evloop through `tokio-io`)
//! answering a real peer: Python's `websockets` client (installed from PyPI by `.ci/run`;
//! skipped with a note when it is missing and `EVLOOP_REQUIRE_HTTP_TOOLS` is unset).
//! Text and binary frames come back unchanged, a ping gets its pong, the client's close
//! handshake completes with code 1000, and SIGTERM makes the server close an idle
//! connection with 1001 ("going away") and exit 0.
#![cfg(feature = "tokio-io")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::example::{ExampleServer, build_example};

const GUARD: Duration = Duration::from_secs(30);

fn websockets_available() -> bool {
    let ok = common::python::has_module("websockets.asyncio.client");
    assert!(
        ok || std::env::var_os("EVLOOP_REQUIRE_HTTP_TOOLS").is_none(),
        "python3 with the websockets package is required (pip install websockets)"
    );
    ok
}

fn start() -> ExampleServer {
    let binary = build_example("ws_echo", Some("tokio-io"));
    ExampleServer::start(&binary, &["--port", "0", "--grace-secs", "5"], GUARD, " ")
}

const PY_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main(uri):
    async with connect(uri) as ws:
        await ws.send("hello")
        print("text", await ws.recv())
        await ws.send(bytes([0, 1, 2, 255]))
        print("binary", list(await ws.recv()))
        pong = await ws.ping(b"are you there")
        await pong
        print("pong")
        await ws.send("x" * 100000)
        print("large", len(await ws.recv()))
    print("closed", ws.close_code)

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
"#;

#[test]
fn a_python_websockets_client_gets_its_frames_back() {
    if !websockets_available() {
        return;
    }
    let mut server = start();
    let out = Command::new("python3")
        .args(["-c", PY_CLIENT, &format!("ws://{}/", server.addr)])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "text hello",
            "binary [0, 1, 2, 255]",
            "pong",
            "large 100000",
            "closed 1000"
        ]
    );
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    server.line_containing("bye");
}

const PY_IDLE_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def main(uri):
    async with connect(uri) as ws:
        await ws.send("ready?")
        print(await ws.recv(), flush=True)
        try:
            await ws.recv()
            print("unexpected message")
        except ConnectionClosed as e:
            print("closed by server", e.rcvd.code, e.rcvd.reason)

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
"#;

#[test]
fn sigterm_closes_open_connections_with_going_away_and_exits_0() {
    if !websockets_available() {
        return;
    }
    let mut server = start();
    let mut client = Command::new("python3")
        .args(["-c", PY_IDLE_CLIENT, &format!("ws://{}/", server.addr)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    // Once the client's first message came back, the connection is open and idle.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first.trim(), "ready?");
    server.signal(libc::SIGTERM);
    let out = client.wait_with_output().expect("the client ends");
    let rest = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {:?}\n{rest}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rest.trim(), "closed by server 1001 server shutting down");
    assert!(server.wait_exit().success());
    server.line_containing("no longer accepting");
    server.line_containing("bye");
}
