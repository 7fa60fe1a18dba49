//! evloop TCP against a real, independent peer: Python's asyncio (SPEC N1, N2, N4).
//!
//! (a) A Python asyncio client talks to an evloop echo server; (b) an evloop client
//! talks to a Python asyncio echo server. Both exchange several messages of different
//! sizes (up to 1 MiB, so both sides must read while writing) and finish with a
//! half-close whose end-of-stream the other side must see. Skipped with a note when
//! `python3` (with asyncio) is not available.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Shutdown;
use std::process::{Command, Output, Stdio};

use common::python::KillOnDrop;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{TcpListener, TcpStream};
use evloop::{Error, Task, time};

const TEN_S: Duration = Duration::from_secs(10);

async fn within_10s<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match time::timeout(TEN_S, fut).await {
        Ok(out) => out,
        Err(e) => panic!("{what}: no outcome within 10 s ({e})"),
    }
}

fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((i * 7 + j) % 256) as u8).collect()
}

// ---------------------------------------------------------------------------------
// (a) Python client → evloop server
// ---------------------------------------------------------------------------------

const PY_CLIENT: &str = r#"
import asyncio, sys

def message(i, n):
    return bytes((i * 7 + j) % 256 for j in range(n))

async def main(port):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    sizes = [1, 100, 4096, 65536, 1 << 20]
    ok = 0
    for i, n in enumerate(sizes):
        msg = message(i, n)
        async def send():
            writer.write(msg)
            await writer.drain()
        back, _ = await asyncio.gather(reader.readexactly(n), send())
        if back == msg:
            ok += 1
    writer.write_eof()
    rest = await reader.read()
    writer.close()
    await writer.wait_closed()
    print(f"RESULT ok={ok}/{len(sizes)} after_eof={len(rest)}", flush=True)

asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 10))
"#;

/// The evloop echo server: counts connections and bytes, closes after the peer's EOF.
async fn echo(stream: TcpStream) -> Result<usize, Error> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        stream.write_all(&buf[..n]).await?;
    }
}

#[test]
fn a_python_asyncio_client_talks_to_an_evloop_echo_server() {
    if !common::python::has_module("asyncio") {
        return;
    }
    let (output, echoed) = common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let server: Task<usize> = evloop::create_task(async move {
            let (stream, peer) = listener.accept().await?;
            assert!(peer.ip().is_loopback());
            echo(stream).await
        });
        // The child runs off the loop (on the blocking executor) while the loop serves.
        let client = evloop::spawn_blocking(move || {
            Command::new("python3")
                .arg("-c")
                .arg(PY_CLIENT)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())
        });
        let output: Output = within_10s("the python client", client)
            .await?
            .map_err(Error::msg)?;
        let echoed = within_10s("the echo server", server).await?;
        Ok::<_, Error>((output, echoed))
    })
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert_eq!(
        stdout.trim(),
        "RESULT ok=5/5 after_eof=0",
        "stderr:\n{stderr}"
    );
    assert_eq!(echoed, 1 + 100 + 4096 + 65536 + (1 << 20));
}

// ---------------------------------------------------------------------------------
// (b) evloop client → Python server
// ---------------------------------------------------------------------------------

const PY_SERVER: &str = r#"
import asyncio

async def handle(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    # Ends by itself if the test forgets to kill it.
    await asyncio.wait_for(server.serve_forever(), 60)

asyncio.run(main())
"#;

#[test]
fn an_evloop_client_talks_to_a_python_asyncio_echo_server() {
    if !common::python::has_module("asyncio") {
        return;
    }
    let mut child = KillOnDrop::new(
        Command::new("python3")
            .arg("-c")
            .arg(PY_SERVER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning python3"),
    );
    let mut line = String::new();
    BufReader::new(child.child().stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading the port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python server printed {line:?} instead of a port"));

    common::run_guarded(async move {
        let stream = within_10s("connect", TcpStream::connect(("127.0.0.1", port))).await?;
        stream.set_nodelay(true)?;
        let stream = Rc::new(stream);
        let sizes = [1usize, 100, 4096, 65536, 1 << 20];
        for (i, n) in sizes.into_iter().enumerate() {
            let msg = message(i, n);
            // Write in a task while this coroutine reads: 1 MiB does not fit in the
            // socket buffers.
            let sent = evloop::create_task({
                let (msg, stream) = (msg.clone(), stream.clone());
                async move {
                    stream.write_all(&msg).await?;
                    Ok(())
                }
            });
            let mut back = vec![0u8; n];
            within_10s("read the echo", stream.read_exact(&mut back)).await?;
            within_10s("write", sent).await?;
            assert!(back == msg, "message {i} ({n} bytes) echoed wrongly");
        }
        // Half-close: the Python handler sees EOF, closes, and we see EOF.
        stream.shutdown(Shutdown::Write)?;
        let mut buf = [0u8; 16];
        let n = within_10s("EOF from the python server", stream.read(&mut buf)).await?;
        assert_eq!(n, 0, "the python server closed after our EOF");
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(
        child.child().try_wait().expect("try_wait").is_none(),
        "the python server is still serving (it did not crash)"
    );
}
