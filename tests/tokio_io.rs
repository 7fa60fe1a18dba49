//! SPEC §15 N8 (feature `tokio-io`): tokio's `AsyncRead` / `AsyncWrite` on evloop's
//! streams and split halves, exercised by crates written against them — tokio-util's
//! `LinesCodec` in a `Framed`, and tokio-tungstenite's WebSocket handshake, messages,
//! ping and close — all running on evloop's loop with no tokio runtime; and `cargo
//! tree` showing that the feature compiles none of tokio's features.
#![cfg(feature = "tokio-io")]

mod common;

use std::time::Duration;

use common::deps::{assert_no_runtime, tokio_features};
use evloop::net::{TcpListener, TcpStream, UnixStream};
use evloop::{Error, time};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LinesCodec};

const GUARD: Duration = Duration::from_secs(20);

#[test]
fn the_feature_compiles_only_tokios_trait_definitions() {
    assert_no_runtime("tokio-io");
    assert_no_runtime("tokio-io,hyper");
    assert_eq!(
        tokio_features("tokio-io").as_deref(),
        Some(&[][..]),
        "tokio-io enables a tokio feature"
    );
}

#[test]
fn lines_codec_over_a_stream_and_over_split_halves() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // The server frames the whole stream; the client frames the two halves.
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await?;
            let mut framed = Framed::new(stream, LinesCodec::new());
            while let Some(line) = framed.next().await {
                let line = line.map_err(Error::new)?;
                framed.send(line.to_uppercase()).await.map_err(Error::new)?;
            }
            Ok::<_, Error>(())
        });
        let (read, write) = TcpStream::connect(addr).await?.into_split();
        let mut lines = FramedRead::new(read, LinesCodec::new());
        let mut out = FramedWrite::new(write, LinesCodec::new());
        for word in ["hello", "framed", "world"] {
            out.send(word).await.map_err(Error::new)?;
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(lines.next().await.expect("a line").map_err(Error::new)?);
        }
        assert_eq!(got, ["HELLO", "FRAMED", "WORLD"]);
        drop(out); // the write half's drop ends the server's stream
        time::timeout(GUARD, server).await??;
        assert!(lines.next().await.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn websocket_messages_ping_and_close_with_tokio_tungstenite() {
    common::run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await?;
            let mut ws = tokio_tungstenite::accept_async(stream)
                .await
                .map_err(Error::new)?;
            let mut echoed = 0;
            while let Some(msg) = ws.next().await {
                match msg.map_err(Error::new)? {
                    m @ (Message::Text(_) | Message::Binary(_)) => {
                        ws.send(m).await.map_err(Error::new)?;
                        echoed += 1;
                    }
                    Message::Close(_) => break,
                    _ => {} // pings are answered by tungstenite itself
                }
            }
            Ok::<_, Error>(echoed)
        });
        let stream = TcpStream::connect(addr).await?;
        let (mut ws, response) =
            tokio_tungstenite::client_async(format!("ws://{addr}/echo"), stream)
                .await
                .map_err(Error::new)?;
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hello")).await.map_err(Error::new)?;
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .map_err(Error::new)?;
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .map_err(Error::new)?;
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(ws.next().await.expect("a message").map_err(Error::new)?);
        }
        assert!(got.contains(&Message::text("hello")), "{got:?}");
        assert!(
            got.contains(&Message::binary(vec![0u8, 1, 2, 255])),
            "{got:?}"
        );
        assert!(
            got.contains(&Message::Pong(b"are you there".to_vec().into())),
            "{got:?}"
        );
        ws.close(None).await.map_err(Error::new)?;
        // The close handshake completes: the server's close frame comes back, then EOF.
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(_)) | Err(_) => {}
                Ok(other) => panic!("after close: {other:?}"),
            }
        }
        assert_eq!(time::timeout(GUARD, server).await??, 2);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_cancelled_task_in_a_tokio_read_resumes_with_the_cancellation() {
    use tokio::io::AsyncReadExt;
    common::run_guarded(async {
        let (a, _b) = UnixStream::pair()?;
        let reader = evloop::create_task(async move {
            let mut a = a;
            let mut buf = [0u8; 16];
            // Nobody writes: only the cancellation ends this read.
            let r = AsyncReadExt::read(&mut a, &mut buf).await;
            Ok::<_, Error>(r.map_err(Error::from).err())
        });
        time::sleep(Duration::from_millis(1)).await?;
        assert!(reader.cancel());
        match time::timeout(GUARD, reader).await? {
            Err(Error::Cancelled(_)) => {}
            Ok(Some(e)) if e.is_cancelled() => {}
            other => panic!("the read did not see the cancellation: {other:?}"),
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}
