//! A WebSocket echo server: tokio-tungstenite running on evloop through the `tokio-io`
//! feature (SPEC §15 N8) — no tokio runtime.
//!
//! ```sh
//! cargo run --release --features tokio-io --example ws_echo -- --port 9001
//! python3 -m websockets ws://127.0.0.1:9001/     # in another terminal (pip install websockets)
//! ```
//!
//! Options: `--port N` (default 9001; 0 picks a free port, the first line printed is
//! `listening on ADDR`), `--grace-secs S` (default 5), `--help`.
//!
//! Text and binary messages come back as they were sent; pings are answered (by
//! tungstenite). On Ctrl-C or SIGTERM the server stops accepting, sends every open
//! connection a close frame (1001, "going away"), waits for the close handshakes (at
//! most the grace period) and exits with status 0.

#[path = "common/args.rs"]
mod args;

use std::time::Duration;

use evloop::net::{TcpListener, TcpStream};
use evloop::sync::Event;
use evloop::{Error, Task, time};
use futures_util::future::{Either, select};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const OPTIONS: &[args::Opt] = &[
    args::Opt::value(
        "--port",
        "N",
        "the port to listen on (default 9001; 0: any free port)",
    ),
    args::Opt::value(
        "--grace-secs",
        "S",
        "how long close handshakes may take after a signal (default 5)",
    ),
];

/// One connection: the handshake, then every message echoed until the client closes —
/// or until `stopping` is set, when the server says goodbye with a close frame.
async fn echo(stream: TcpStream, stopping: Event) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream)
        .await
        .map_err(Error::new)?;
    loop {
        let next = {
            let stop = std::pin::pin!(stopping.wait());
            match select(ws.next(), stop).await {
                Either::Left((msg, _)) => msg,
                Either::Right((stopped, _)) => {
                    stopped?;
                    let bye = CloseFrame {
                        code: CloseCode::Away,
                        reason: "server shutting down".into(),
                    };
                    ws.close(Some(bye)).await.map_err(Error::new)?;
                    // Wait for the client's close frame (the handshake's second half).
                    while let Some(Ok(_)) = ws.next().await {}
                    return Ok(());
                }
            }
        };
        match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(Error::new(e)),
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                ws.send(msg).await.map_err(Error::new)?;
            }
            // Pings are answered and close frames returned by tungstenite itself.
            Some(Ok(_)) => {}
        }
    }
}

#[evloop::main]
async fn main() -> Result<(), Error> {
    let args = args::Args::parse(
        "ws_echo",
        "A WebSocket echo server on 127.0.0.1 (tokio-tungstenite on evloop).",
        OPTIONS,
    );
    let port: u16 = args.get("--port", 9001);
    let grace = Duration::from_secs(args.get("--grace-secs", 5));

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let stopping = Event::new();
    for signum in [libc::SIGINT, libc::SIGTERM] {
        let (stopping, signal) = (stopping.clone(), evloop::signal::wait(signum));
        drop(evloop::create_task(async move {
            signal.await?;
            stopping.set();
            Ok(())
        }));
    }

    let mut connections: Vec<Task<()>> = Vec::new();
    loop {
        let accepted = {
            let stop = std::pin::pin!(stopping.wait());
            match select(std::pin::pin!(listener.accept()), stop).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right((stopped, _)) => {
                    stopped?;
                    break;
                }
            }
        };
        match accepted {
            Ok((stream, _peer)) => {
                let stopping = stopping.clone();
                connections.retain(|t| !t.done());
                // A connection that fails (a bad handshake) is logged, not fatal.
                connections.push(evloop::create_task(async move {
                    if let Err(e) = echo(stream, stopping).await {
                        eprintln!("connection: {e}");
                    }
                    Ok(())
                }));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    drop(listener);
    println!("stopping: no longer accepting; closing open connections");
    match time::timeout(grace, evloop::gather_results(connections)).await {
        Ok(_) => {}
        Err(e) if e.is_timeout() => println!("grace period over"),
        Err(e) => return Err(e),
    }
    println!("bye");
    Ok(())
}
