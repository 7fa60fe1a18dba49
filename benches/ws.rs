//! Issue 18 / SPEC §15 N8: a WebSocket echo — 64 connections, each sending 100 binary
//! messages of 64 bytes and awaiting each echo — with tokio-tungstenite on evloop
//! (through the `tokio-io` feature) against the same tokio-tungstenite code on tokio
//! `current_thread` (and `multi_thread` with 1 worker), in the same run. Connections and
//! handshakes are set up once; an iteration is 64 × 100 round trips, one client task and
//! one server task per connection on the same loop or runtime.
//!
//! Run: `cargo bench --features tokio-io --bench ws`.

mod common;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const CONNS: usize = 64;
const ROUNDS: usize = 100;
const MSG: usize = 64;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The client side of one connection for one iteration: ROUNDS messages, each echoed.
async fn rounds<S>(mut ws: WebSocketStream<S>) -> WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = Message::binary(vec![7u8; MSG]);
    for _ in 0..ROUNDS {
        ws.send(msg.clone()).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.len(), MSG);
    }
    ws
}

/// The server side: echo binary and text messages until the client goes away.
async fn serve<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

type EvloopWs = WebSocketStream<evloop::net::TcpStream>;

async fn evloop_setup() -> Vec<EvloopWs> {
    let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let client = evloop::net::TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let accept = evloop::create_task(async move {
            let ws = tokio_tungstenite::accept_async(server).await.unwrap();
            drop(evloop::create_task(async move {
                serve(ws).await;
                Ok(())
            }));
            Ok(())
        });
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), client)
            .await
            .unwrap();
        accept.await.unwrap();
        clients.push(ws);
    }
    clients
}

async fn evloop_round(clients: Vec<EvloopWs>) -> Vec<EvloopWs> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|ws| evloop::create_task(async move { Ok(rounds(ws).await) }))
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn evloop_ws(g: &mut Group<'_>) {
    let rt = evloop_rt();
    let clients = rt.block_on(evloop_setup());
    bench_rounds(g, EVLOOP, clients, |c| rt.block_on(evloop_round(c)));
}

type TokioWs = WebSocketStream<tokio::net::TcpStream>;

async fn tokio_setup() -> Vec<TokioWs> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let accept = tokio::spawn(async move {
            let ws = tokio_tungstenite::accept_async(server).await.unwrap();
            tokio::spawn(serve(ws));
        });
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), client)
            .await
            .unwrap();
        accept.await.unwrap();
        clients.push(ws);
    }
    clients
}

async fn tokio_round(clients: Vec<TokioWs>) -> Vec<TokioWs> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|ws| tokio::spawn(rounds(ws)))
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn tokio_ws(g: &mut Group<'_>) {
    bench_tokio_rounds(g, tokio_setup, tokio_round);
}

fn ws_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("N8_ws_echo");
    evloop_ws(&mut g);
    tokio_ws(&mut g);
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = ws_echo
}
criterion_main!(benches);
