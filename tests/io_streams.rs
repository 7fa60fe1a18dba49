//! SPEC §15 N7 against real peers: Python's asyncio on the other end of a TCP
//! connection, in both directions.
//!
//! (a) Python `asyncio.open_connection` clients against `net::start_server` with
//! `io::BufReader` / `io::BufWriter`: a line, a multi-byte separator sent across several
//! packets, `readexactly` including at the end of the stream, a limit overrun followed
//! by a read of the very bytes that overran, and `drain` against a client that stops
//! reading (the buffer stays bounded, the writer waits, and everything arrives once the
//! client reads). (b) `net::open_connection` against a Python `asyncio.start_server`.
//!
//! The Python peers sleep 20 ms between the pieces of a separator so that they travel
//! in separate segments; nothing asserts on time — a guard of 20 s catches a hang.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use common::python::KillOnDrop;
use evloop::io::{DEFAULT_HIGH_WATER, IncompleteRead, LimitOverrun};
use evloop::net::{StreamReader, StreamWriter, open_connection, start_server};
use evloop::sync::Event;
use evloop::{Error, time};

const GUARD: Duration = Duration::from_secs(20);

fn python(script: &str, args: &[String]) -> KillOnDrop {
    KillOnDrop::new(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 starts"),
    )
}

/// Waits (off the loop) for the child to exit (each script ends itself within 15 s);
/// its stdout, or a panic with its stderr.
async fn finished(mut child: KillOnDrop) -> String {
    let taken = child.take();
    let out = time::timeout(
        GUARD,
        evloop::spawn_blocking(move || taken.wait_with_output()),
    )
    .await
    .expect("the python peer finishes")
    .expect("the job ran")
    .expect("waiting for python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn incomplete(e: &std::io::Error) -> &IncompleteRead {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<IncompleteRead>())
        .unwrap_or_else(|| panic!("not an IncompleteRead: {e:?}"))
}

fn overrun(e: &std::io::Error) -> &LimitOverrun {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<LimitOverrun>())
        .unwrap_or_else(|| panic!("not a LimitOverrun: {e:?}"))
}

const PY_CLIENT: &str = r#"
import asyncio, sys

async def main(port):
    r, w = await asyncio.open_connection('127.0.0.1', port)
    async def line():
        return (await r.readline()).decode().rstrip('\n')
    w.write(b'hello world\n'); await w.drain()
    print(await line())
    for part in (b'HEAD', b'ER\r', b'\n\r', b'\nBODY'):
        w.write(part); await w.drain(); await asyncio.sleep(0.02)
    print(await line())
    w.write(b'12345'); await w.drain()
    print(await line())
    w.write(b'x' * 40 + b'\n' + b'tail\n'); await w.drain()
    print(await line())
    print(await line())
    w.write(b'xyz'); w.write_eof()
    print(await line())
    print('eof' if await r.read() == b'' else 'more')
    w.close(); await w.wait_closed()

asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 15))
"#;

async fn serve_one_client(
    mut r: StreamReader,
    mut w: StreamWriter,
    log: Rc<RefCell<Vec<String>>>,
) -> Result<(), Error> {
    let line = r.readline().await?;
    w.write(format!("line:{}\n", String::from_utf8_lossy(&line).trim_end()).as_bytes())?;
    // The separator arrives in three segments, the first byte of the body with it.
    let head = r.readuntil(b"\r\n\r\n").await?;
    w.write(format!("until:{:?}\n", String::from_utf8_lossy(&head)).as_bytes())?;
    let body = r.readexactly(9).await?;
    w.write(format!("exact:{}\n", String::from_utf8_lossy(&body)).as_bytes())?;
    // 40 bytes and a newline against a limit of 16: refused, and nothing is lost.
    r.set_limit(16);
    let e = r.readline().await.unwrap_err();
    let o = overrun(&e).clone();
    let rest = r.readexactly(41).await?;
    w.write(
        format!(
            "overrun:{}:{}\n",
            o.limit(),
            String::from_utf8_lossy(&rest).trim_end()
        )
        .as_bytes(),
    )?;
    let tail = r.readline().await?;
    w.write(format!("after:{}\n", String::from_utf8_lossy(&tail).trim_end()).as_bytes())?;
    // The client sends three bytes and ends its side.
    let e = r.readexactly(10).await.unwrap_err();
    let partial = incomplete(&e).partial().to_vec();
    assert!(r.at_eof());
    w.write(
        format!(
            "incomplete:{}:{}\n",
            partial.len(),
            String::from_utf8_lossy(&partial)
        )
        .as_bytes(),
    )?;
    w.close().await?;
    log.borrow_mut().push(format!(
        "overrun found={} consumed>16={}",
        o.separator_found(),
        o.consumed() > 16
    ));
    log.borrow_mut().push("done".into());
    Ok(())
}

#[test]
fn a_python_client_against_start_server() {
    if !common::python::has_module("asyncio") {
        return;
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    let stdout = common::run_guarded({
        let log = log.clone();
        async move {
            let server = start_server(
                move |r, w| serve_one_client(r, w, log.clone()),
                "127.0.0.1:0",
            )
            .await?;
            let port = server.sockets()[0].port();
            let stdout = finished(python(PY_CLIENT, &[port.to_string()])).await;
            server.close();
            time::timeout(GUARD, server.wait_closed()).await??;
            Ok::<_, Error>(stdout)
        }
    })
    .unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "line:hello world",
            r#"until:"HEADER\r\n\r\n""#,
            "exact:BODY12345",
            &format!("overrun:16:{}", "x".repeat(40)),
            "after:tail",
            "incomplete:3:xyz",
            "eof",
        ]
    );
    let log = log.borrow();
    assert_eq!(log.last().map(String::as_str), Some("done"), "{log:?}");
    assert!(log[0].ends_with("consumed>16=true"), "{log:?}");
}

const PY_SLOW_READER: &str = r#"
import asyncio, sys

async def main(port):
    r, w = await asyncio.open_connection('127.0.0.1', port)
    # Read nothing until the test says so.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    total = 0
    while True:
        chunk = await r.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
    print(total)
    w.close()

asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 15))
"#;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 512; // 32 MiB: far more than the loopback socket buffers hold

#[test]
fn drain_holds_the_writer_back_while_the_client_does_not_read() {
    if !common::python::has_module("asyncio") {
        return;
    }
    let (stdout, max_buffered, blocked_before_reading) = common::run_guarded(async {
        let blocked = Event::new();
        let finished_writing = Event::new();
        let max_buffered = Rc::new(Cell::new(0usize));
        let client_reading = Rc::new(Cell::new(false));
        let blocked_before_reading = Rc::new(Cell::new(false));
        let server = start_server(
            {
                let (blocked, finished_writing) = (blocked.clone(), finished_writing.clone());
                let (max_buffered, client_reading) = (max_buffered.clone(), client_reading.clone());
                let blocked_before_reading = blocked_before_reading.clone();
                move |_r, mut w| {
                    let (blocked, finished_writing) = (blocked.clone(), finished_writing.clone());
                    let (max_buffered, client_reading) =
                        (max_buffered.clone(), client_reading.clone());
                    let blocked_before_reading = blocked_before_reading.clone();
                    async move {
                        let chunk = vec![7u8; CHUNK];
                        for _ in 0..CHUNKS {
                            w.write(&chunk)?;
                            max_buffered.set(max_buffered.get().max(w.buffer_size()));
                            if w.buffer_size() > DEFAULT_HIGH_WATER && !client_reading.get() {
                                // drain will wait: the client has not read anything yet.
                                blocked_before_reading.set(true);
                                blocked.set();
                            }
                            w.drain().await?;
                        }
                        w.close().await?;
                        finished_writing.set();
                        Ok::<_, Error>(())
                    }
                }
            },
            "127.0.0.1:0",
        )
        .await?;
        let port = server.sockets()[0].port();
        let mut child = python(PY_SLOW_READER, &[port.to_string()]);
        time::timeout(GUARD, blocked.wait()).await??;
        assert!(
            !finished_writing.is_set(),
            "the writer ran ahead of a client that reads nothing"
        );
        client_reading.set(true);
        writeln!(child.child().stdin.as_mut().unwrap(), "go").unwrap();
        let stdout = finished(child).await;
        time::timeout(GUARD, finished_writing.wait()).await??;
        server.close();
        Ok::<_, Error>((stdout, max_buffered.get(), blocked_before_reading.get()))
    })
    .unwrap();
    assert_eq!(stdout.trim(), (CHUNK * CHUNKS).to_string());
    assert!(blocked_before_reading);
    // Never more than the high-water mark plus the one write that crossed it.
    assert!(
        max_buffered <= DEFAULT_HIGH_WATER + CHUNK,
        "{max_buffered} bytes buffered"
    );
}

const PY_SERVER: &str = r#"
import asyncio, sys

async def handle(r, w):
    line = await r.readline()
    w.write(line.upper()); await w.drain()
    for part in (b'HEAD', b'ER\r', b'\n\r', b'\nBODY'):
        w.write(part); await w.drain(); await asyncio.sleep(0.02)
    data = await r.readexactly(5)
    w.write(data[::-1] + b'\n'); await w.drain()
    w.write(b'xyz'); await w.drain()
    w.close(); await w.wait_closed()

async def main():
    srv = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await asyncio.sleep(15)

asyncio.run(main())
"#;

#[test]
fn open_connection_against_a_python_server() {
    if !common::python::has_module("asyncio") {
        return;
    }
    let mut child = python(PY_SERVER, &[]);
    let mut port = String::new();
    std::io::BufReader::new(child.child().stdout.as_mut().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port
        .trim()
        .parse()
        .expect("the python server prints its port");
    common::run_guarded(async move {
        let (mut r, mut w) = open_connection(("127.0.0.1", port)).await?;
        w.write(b"hello\n")?;
        w.drain().await?;
        assert_eq!(r.readline().await?, b"HELLO\n");
        assert_eq!(r.readuntil(b"\r\n\r\n").await?, b"HEADER\r\n\r\n");
        assert_eq!(r.readexactly(4).await?, b"BODY");
        w.write(b"abcde")?;
        w.flush().await?;
        assert_eq!(r.readline().await?, b"edcba\n");
        let e = r.readexactly(10).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(incomplete(&e).partial(), b"xyz");
        assert_eq!(incomplete(&e).expected(), Some(10));
        assert!(r.at_eof());
        assert!(r.readline().await?.is_empty());
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(child);
}
