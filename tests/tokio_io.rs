//! SPEC §15 N8 (feature `tokio-io`): tokio's `AsyncRead` / `AsyncWrite` on evloop's
//! streams and split halves, exercised by the three crates N8 names — tokio-util's
//! `LinesCodec` in a `Framed`, tokio-tungstenite's WebSocket handshake, messages, ping
//! and close, and a TLS 1.3 session of tokio-rustls (ring provider, a certificate made
//! by rcgen, `close_notify` at the end) — all on evloop's loop with no tokio runtime;
//! and `cargo tree` showing that the feature compiles none of tokio's features.
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

#[test]
fn tls_1_3_with_tokio_rustls_on_evloop() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types};

    let (server_config, client_config) = ring_configs();

    common::run_guarded(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await?;
            let mut tls = acceptor.accept(stream).await?;
            let mut hello = [0u8; 5];
            tls.read_exact(&mut hello).await?;
            tls.write_all(&hello.to_ascii_uppercase()).await?;
            tls.shutdown().await?; // close_notify, then the TCP write side
            Ok::<_, Error>(())
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector
            .connect(name, TcpStream::connect(addr).await?)
            .await?;
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        tls.write_all(b"hello").await?;
        let mut back = Vec::new();
        // Ends cleanly: the server's close_notify, not a truncation error.
        tls.read_to_end(&mut back).await?;
        assert_eq!(back, b"HELLO");
        time::timeout(GUARD, server).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// `evloop::tls::TlsStream` through tokio's traits (feature `tls` too), against another
/// TLS implementation's driver: evloop's acceptor serves, tokio-rustls connects (both
/// on evloop's loop). The server reads and writes with `tokio::io::AsyncReadExt` /
/// `AsyncWriteExt` and ends with tokio's `shutdown`, which must send `close_notify`:
/// tokio-rustls's `read_to_end` then ends cleanly instead of failing with
/// `UnexpectedEof`.
#[cfg(feature = "tls")]
#[test]
fn evloop_tls_stream_with_tokio_traits_talks_to_tokio_rustls() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types;

    let (server_config, mut client_config) = ring_configs();
    client_config.alpn_protocols = vec![b"shout/1".to_vec()];

    common::run_guarded(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = evloop::tls::TlsAcceptor::new(server_config).with_alpn(&["shout/1"]);
        let server = evloop::create_task(async move {
            let (stream, _) = listener.accept().await?;
            let mut tls = acceptor.accept(stream).await?;
            assert_eq!(tls.alpn_protocol(), Some(&b"shout/1"[..]));
            let mut hello = [0u8; 5];
            AsyncReadExt::read_exact(&mut tls, &mut hello).await?;
            AsyncWriteExt::write_all(&mut tls, &hello.to_ascii_uppercase()).await?;
            AsyncWriteExt::shutdown(&mut tls).await?;
            Ok::<_, Error>(())
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector
            .connect(name, TcpStream::connect(addr).await?)
            .await?;
        tls.write_all(b"hello").await?;
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await?;
        assert_eq!(back, b"HELLO");
        time::timeout(GUARD, server).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A server configuration with a certificate for "localhost" made here, and a client
/// configuration trusting it, both on ring: it builds with a C compiler alone
/// (rustls 0.23.48 deprecates its provider only for lacking post-quantum key exchange,
/// which a loopback test does not need).
fn ring_configs() -> (
    tokio_rustls::rustls::ServerConfig,
    tokio_rustls::rustls::ClientConfig,
) {
    use std::sync::Arc;
    use tokio_rustls::rustls::{self, pki_types};

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = made.cert.der().clone();
    let key = pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server_config, client_config)
}
