//! SPEC §11 P13: a hyper hello-world server, HTTP/1.1 keep-alive, 64 connections —
//! hyper on evloop vs hyper on tokio `current_thread` (and `multi_thread` with 1 worker),
//! in the same run. smol is not a peer here (hyper has no smol adapter in this tree).
//!
//! The server runs on its own thread: one loop (or tokio runtime), one task per
//! connection, `http1::Builder` with the runtime's timer (hyper's header-read timeout
//! arms a sleep per request head, as in a real server). The load comes from the bench
//! thread, the same for every peer: a hand-written mio client with 64 keep-alive
//! connections, each sending `GET /` and waiting for the whole response before the next
//! (no pipelining). An iteration is 64 × 50 requests. On this 2-core machine the server
//! and the client each get a core.
//!
//! Run: `cargo bench --features hyper --bench http`.

mod common;

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

const CONNS: usize = 64;
const ROUNDS: usize = 50;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// Starts a server thread running `serve` (which binds, reports its address on the
/// channel and serves forever); returns the address.
fn start_server(
    name: &str,
    serve: impl FnOnce(std::sync::mpsc::Sender<SocketAddr>) + Send + 'static,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{name}-server"))
        .spawn(move || serve(tx))
        .expect("server thread");
    rx.recv().expect("the server reports its address")
}

fn evloop_server() -> SocketAddr {
    use evloop::hyper::Timer;
    start_server(EVLOOP, |tx| {
        let rt = evloop_rt();
        let _ = rt.block_on(async move {
            let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await?;
            tx.send(listener.local_addr()?).unwrap();
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                evloop::create_task(async move {
                    http1::Builder::new()
                        .timer(Timer)
                        .serve_connection(stream, service_fn(hello))
                        .await
                        .map_err(evloop::Error::new)
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), evloop::Error>(())
        });
    })
}

async fn tokio_accept_loop(tx: std::sync::mpsc::Sender<SocketAddr>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tx.send(listener.local_addr().unwrap()).unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

fn tokio_ct_server() -> SocketAddr {
    start_server(TOKIO_CT, |tx| tokio_ct().block_on(tokio_accept_loop(tx)))
}

fn tokio_mt1_server() -> SocketAddr {
    start_server(TOKIO_MT1, |tx| {
        let rt = tokio_mt1();
        tokio_on_worker(&rt, tokio_accept_loop(tx));
    })
}

/// Sends one request on a blocking stream and returns the response's length, checking
/// it is a `200` with the hello body.
fn blocking_request(stream: &mut std::net::TcpStream) -> io::Result<usize> {
    stream.write_all(REQUEST)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("closed during the first request"));
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length in the response");
            if response.len() >= head_end + 4 + length {
                assert!(text.starts_with("http/1.1 200"), "{text}");
                assert!(text.ends_with("hello, world!"), "{text}");
                return Ok(head_end + 4 + length);
            }
        }
    }
}

/// 64 keep-alive connections, each checked with one blocking request first (which also
/// gives the response length), then handed to the mio load generator.
fn connect_load(addr: SocketAddr) -> io::Result<MioLoad> {
    let mut streams = Vec::with_capacity(CONNS);
    let mut response_len = 0;
    for _ in 0..CONNS {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let len = blocking_request(&mut stream)?;
        assert!(
            response_len == 0 || response_len == len,
            "responses differ in length"
        );
        response_len = len;
        streams.push(stream);
    }
    MioLoad::new(streams, REQUEST, response_len)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("P13_http");
    for (peer, addr) in [
        (EVLOOP, evloop_server()),
        (TOKIO_CT, tokio_ct_server()),
        (TOKIO_MT1, tokio_mt1_server()),
    ] {
        let mut load = connect_load(addr).expect("connecting the load generator");
        let cpu = ServerCpu::start(&load);
        g.bench_function(peer, |b| b.iter(|| load.run(ROUNDS).expect("the load run")));
        cpu.report(peer, &load);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = bench
}
criterion_main!(benches);
