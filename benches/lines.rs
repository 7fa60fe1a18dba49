//! Issue 18 / SPEC §15 N7: a line-protocol echo — 64 loopback TCP connections, each
//! sending 10 000 lines of 32 bytes (in batches of 100) and reading them back — with
//! evloop's `net::start_server` + `io::BufReader::read_line` + `io::BufWriter` against
//! tokio's `BufReader::read_line` + `write_all` on tokio `current_thread` (and
//! `multi_thread` with 1 worker), in the same run. `evloop_readline` is the same server
//! with asyncio's `readline()` (a new `Vec` per line) instead of `read_line` into a
//! reused `String`.
//!
//! tokio's server echoes each line with its own `write_all` (a `send` per line), as the
//! issue's comparison asks; evloop's `BufWriter` coalesces what a task writes before it
//! next suspends into one `send`. `tokio_bufwriter` is tokio tuned by hand to do the
//! same (a `tokio::io::BufWriter` flushed whenever the reader's buffer is empty). The
//! clients run on the same loop or runtime as the server, one task per connection, set
//! up once. An iteration is 64 × 10 000 lines.
//!
//! Run: `cargo bench --bench lines`.

mod common;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CONNS: usize = 64;
const LINES: usize = 10_000;
const BATCH: usize = 100;
const LINE: &[u8; 32] = b"the quick brown fox jumps over\r\n";

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn batch() -> Vec<u8> {
    LINE.repeat(BATCH)
}

async fn evloop_setup(asyncio_readline: bool) -> Vec<evloop::net::TcpStream> {
    let server = if asyncio_readline {
        evloop::net::start_server(
            |mut r, mut w| async move {
                loop {
                    let line = r.readline().await?;
                    if line.is_empty() {
                        return Ok::<_, evloop::Error>(());
                    }
                    w.write(&line)?;
                    w.drain().await?;
                }
            },
            "127.0.0.1:0",
        )
        .await
    } else {
        evloop::net::start_server(
            |mut r, mut w| async move {
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok::<_, evloop::Error>(());
                    }
                    w.write(line.as_bytes())?;
                    w.drain().await?;
                }
            },
            "127.0.0.1:0",
        )
        .await
    }
    .unwrap();
    let addr = server.sockets()[0];
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let c = evloop::net::TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        clients.push(c);
    }
    clients
}

async fn evloop_round(clients: Vec<evloop::net::TcpStream>) -> Vec<evloop::net::TcpStream> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            evloop::create_task(async move {
                let out = batch();
                let mut back = vec![0u8; out.len()];
                for _ in 0..LINES / BATCH {
                    c.write_all(&out).await?;
                    c.read_exact(&mut back).await?;
                }
                assert!(back == out);
                Ok::<_, evloop::Error>(c)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn evloop_lines(g: &mut Group<'_>) {
    for (name, readline) in [(EVLOOP, false), ("evloop_readline", true)] {
        let rt = evloop_rt();
        let clients = rt.block_on(evloop_setup(readline));
        bench_rounds(g, name, clients, |c| rt.block_on(evloop_round(c)));
    }
}

/// `buffered`: the tuned tokio server — a `tokio::io::BufWriter` flushed whenever the
/// reader's buffer is empty (one `send` per batch, as evloop's writer does by itself).
async fn tokio_setup(buffered: bool) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (r, w) = stream.into_split();
                let mut r = tokio::io::BufReader::new(r);
                let mut line = String::new();
                if !buffered {
                    let mut w = w;
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if w.write_all(line.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
                let mut w = tokio::io::BufWriter::new(w);
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if w.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    if r.buffer().is_empty() && w.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        clients.push(c);
    }
    clients
}

async fn tokio_round(clients: Vec<tokio::net::TcpStream>) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let out = batch();
                let mut back = vec![0u8; out.len()];
                for _ in 0..LINES / BATCH {
                    c.write_all(&out).await.unwrap();
                    c.read_exact(&mut back).await.unwrap();
                }
                assert!(back == out);
                c
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn tokio_lines(g: &mut Group<'_>) {
    bench_tokio_rounds(g, || tokio_setup(false), tokio_round);
    let rt = tokio_ct();
    let clients = rt.block_on(tokio_setup(true));
    bench_rounds(g, "tokio_bufwriter", clients, |c| {
        rt.block_on(tokio_round(c))
    });
}

fn line_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("N7_line_echo");
    evloop_lines(&mut g);
    tokio_lines(&mut g);
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = line_echo
}
criterion_main!(benches);
