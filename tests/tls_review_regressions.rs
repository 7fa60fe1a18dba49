//! Regressions from the review of `evloop::tls` (issue 20): each test names the bug it
//! pins, which a review helper reproduced before the fix.
#![cfg(feature = "tls")]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::future::{Future as _, poll_fn};
use std::io::ErrorKind;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::task::{Context, Waker};
use std::time::Duration;

use evloop::net::TcpStream;
use evloop::{Error, create_task, time};
use tls::{GUARD, NAME, Pki, listen, pair};

/// Bug: a read into an empty buffer returned rustls's `Ok(0)`, which futures-rustls
/// took for the end of the stream, so every later read returned `Ok(0)` too — bytes
/// waiting in the session silently lost, as if the peer had closed cleanly. The empty
/// read must still be `Ok(0)`, and the next real read must get the data.
#[test]
fn an_empty_read_does_not_end_the_stream() {
    let pki = Pki::new("tls-regress-empty-read");
    common::run_guarded(async move {
        let (mut client, mut server) = pair(&pki).await?;
        server.write_all(b"hello").await?;
        assert_eq!(client.read(&mut []).await?, 0);
        let mut buf = [0u8; 16];
        let n = time::timeout(GUARD, client.read(&mut buf)).await??;
        assert_eq!(&buf[..n], b"hello");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// The same bug through tokio's trait: a `poll_read` with a `ReadBuf` that has no room
/// (legal, and common in codecs) must not end the stream.
#[cfg(feature = "tokio-io")]
#[test]
fn a_full_tokio_read_buf_does_not_end_the_stream() {
    let pki = Pki::new("tls-regress-empty-read-tokio");
    common::run_guarded(async move {
        let (mut client, mut server) = pair(&pki).await?;
        server.write_all(b"hello").await?;
        let mut none = [0u8; 0];
        poll_fn(|cx| {
            let mut rb = tokio::io::ReadBuf::new(&mut none);
            tokio::io::AsyncRead::poll_read(Pin::new(&mut client), cx, &mut rb)
        })
        .await?;
        let mut buf = [0u8; 16];
        let n = time::timeout(GUARD, client.read(&mut buf)).await??;
        assert_eq!(&buf[..n], b"hello");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Bug: a write that returned the task's cancellation had already handed its bytes to
/// rustls (futures-rustls encrypts first, then meets the cancellation at the socket),
/// so they went out with the next write: the server received "ghostreal". As on a plain
/// stream, an `Err(Cancelled)` from a write must mean nothing was sent.
#[test]
fn a_write_that_returns_the_cancellation_sends_nothing() {
    let pki = Pki::new("tls-regress-cancel-write");
    common::run_guarded(async move {
        let (client, mut server) = pair(&pki).await?;
        let writer = create_task(async move {
            let mut client = client;
            let me = evloop::current_task().unwrap();
            me.cancel();
            let refused = client.write(b"ghost").await.unwrap_err();
            me.uncancel();
            client.write_all(b"real\n").await?;
            client.shutdown().await?;
            Ok::<_, Error>(Error::from(refused).is_cancelled())
        });
        assert!(
            time::timeout(GUARD, writer).await??,
            "the write saw the cancellation"
        );
        let mut got = Vec::new();
        time::timeout(GUARD, server.read_to_end(&mut got)).await??;
        assert_eq!(got, b"real\n");
        Ok::<_, Error>(())
    })
    .unwrap();
}

fn poll_again<F: std::future::Future>(fut: Pin<&mut F>) -> String {
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = fut.poll(&mut cx);
    }))
    .expect_err("polling a completed handshake future panics");
    common::panic_message(&*panic)
}

/// Bug: polling a completed `Connect` or `Accept` again panicked with futures-rustls's
/// bare "unexpected polling after handshake", and after a handshake timeout it even
/// went on handshaking and returned a second error with an empty peer. Now each panics
/// naming evloop's future and what to do, whatever the first outcome was.
#[test]
fn a_handshake_future_polled_after_it_completed_panics_naming_it() {
    let pki = Pki::new("tls-regress-repoll");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let acceptor = pki.good.acceptor();
        let server = create_task(async move {
            let (tcp, _) = listener.accept().await?;
            let mut accept = pin!(acceptor.accept(tcp));
            poll_fn(|cx| accept.as_mut().poll(cx)).await?;
            let message = poll_again(accept);
            // A silent peer, then the timeout.
            let (tcp, _) = listener.accept().await?;
            let quick = acceptor.with_handshake_timeout(Some(Duration::from_millis(10)));
            let mut accept = pin!(quick.accept(tcp));
            let err = poll_fn(|cx| accept.as_mut().poll(cx)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            Ok::<_, Error>((message, poll_again(accept)))
        });
        let tcp = TcpStream::connect(addr).await?;
        let mut connect = pin!(pki.connector().connect(NAME, tcp));
        poll_fn(|cx| connect.as_mut().poll(cx)).await?;
        let connect_message = poll_again(connect);
        let silent = TcpStream::connect(addr).await?;
        let (accept_message, timed_out_message) = time::timeout(GUARD, server).await??;
        drop(silent);
        assert!(
            connect_message.starts_with("evloop::tls::Connect polled after it completed"),
            "{connect_message}"
        );
        for message in [accept_message, timed_out_message] {
            assert!(
                message.starts_with("evloop::tls::Accept polled after it completed"),
                "{message}"
            );
        }
        let (_other, other_addr) = listen().await?;
        let tcp = TcpStream::connect(other_addr).await?;
        let mut invalid = pin!(pki.connector().connect("", tcp));
        poll_fn(|cx| invalid.as_mut().poll(cx)).await.unwrap_err();
        let message = poll_again(invalid);
        assert!(
            message.starts_with("evloop::tls::Connect polled after it completed"),
            "{message}"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Bug: an `Accept` with its default timeout, polled off any evloop loop, panicked with
/// "a time::Sleep was polled outside a running event loop", naming a type the user
/// never made. The message now names the TLS future and the two ways out.
#[test]
fn a_handshake_with_a_timeout_polled_off_the_loop_says_what_to_do() {
    let pki = Pki::new("tls-regress-off-loop");
    let rt = evloop::Runtime::new().unwrap();
    let (accept, _keep) = rt.block_on(async {
        let (listener, addr) = listen().await.unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        (pki.good.acceptor().accept(tcp), (client, listener))
    });
    let message = std::thread::spawn(move || {
        let mut accept = Box::pin(accept);
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = accept.as_mut().poll(&mut cx);
        }))
        .expect_err("polled off the loop");
        common::panic_message(&*panic)
    })
    .join()
    .unwrap();
    assert!(message.contains("evloop::tls::Accept"), "{message}");
    assert!(
        message.contains("with_handshake_timeout(None)"),
        "{message}"
    );
}

/// Bug: an encrypted private key was reported as "no PEM private key in the file",
/// which sends the user looking for a key that is there. The message now says the key
/// is encrypted and how to decrypt it.
#[test]
fn an_encrypted_private_key_is_named_as_such() {
    let pki = Pki::new("tls-regress-encrypted-key");
    let encrypted = pki.dir.join("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n\
         -----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = evloop::tls::load_private_key(&encrypted).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let text = err.to_string();
    assert!(text.contains(encrypted.to_str().unwrap()), "{text}");
    assert!(text.contains("encrypted"), "{text}");
    assert!(text.contains("openssl pkey"), "{text}");
}

/// Bug: brackets were stripped from any server name, so `[localhost]` was accepted as
/// `localhost`. They belong only around an IPv6 address (`[::1]`, as in a URL).
#[test]
fn brackets_are_accepted_only_around_an_ipv6_address() {
    let pki = Pki::new("tls-regress-brackets");
    common::run_guarded(async move {
        let (listener, addr) = listen().await?;
        let _accepting = create_task(async move {
            loop {
                let _ = listener.accept().await?;
            }
            #[allow(unreachable_code)]
            Ok::<_, Error>(())
        });
        for bad in ["[localhost]", "[1.2.3.4]", "localhost:443"] {
            let tcp = TcpStream::connect(addr).await?;
            let err = pki.connector().connect(bad, tcp).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        let tcp = TcpStream::connect(addr).await?;
        let err = pki
            .connector()
            .connect("localhost:443", tcp)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("without its port"), "{err}");
        Ok::<_, Error>(())
    })
    .unwrap();
}
