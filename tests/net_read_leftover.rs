//! Stream reads that take more from the kernel than their buffer holds (SPEC §11 P12,
//! `net::scratch`): a read smaller than 32 KiB asks the kernel for 64 KiB, so that a
//! read which fills its buffer exactly still proves the socket drained; the bytes that
//! do not fit stay with the stream and are served first by the next reads.
//!
//! What a user must not be able to tell, pinned here: bytes come out in order and
//! exactly once (plain, split and `futures-io` reads; TCP and Unix streams), the end of
//! the stream and a reset come only after the leftover bytes, `readable()` and
//! `try_read` see leftover bytes as data, a second task waiting on the same stream is
//! served from them, and reading them spends the cooperative budget like any other
//! completed read. Every wait is bounded (10 s) so a lost wake-up fails instead of
//! hanging.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use common::SplitMix64;
use evloop::net::{TcpListener, TcpStream, UnixStream};
use evloop::{Error, time};
use futures_util::io::AsyncReadExt;

const TEN_S: Duration = Duration::from_secs(10);

/// Deterministic test bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn within_10s<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match time::timeout(TEN_S, fut).await {
        Ok(out) => out,
        Err(e) => panic!("{what}: no outcome within 10 s ({e})"),
    }
}

/// A connected loopback pair on the current loop: (client, server).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Reads once, bounded.
async fn read_once(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    within_10s("read", stream.read(buf)).await
}

// Three 64-byte messages sent in one burst and read with a 64-byte buffer: the first
// read takes all three from the kernel; the second and third must return the next
// messages, in order, and nothing more is invented afterwards.
#[test]
fn a_burst_of_three_messages_comes_out_in_order_through_a_64_byte_buffer() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let burst = pattern(1, 192);
        client.write_all(&burst).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < burst.len() {
            let n = read_once(&server, &mut buf).await?;
            assert!(n > 0, "end of stream in the middle of the burst");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, burst);
        let err = server.try_read(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "no byte beyond the burst"
        );
        // And the stream goes on normally: a later message arrives whole.
        client.write_all(&burst[..64]).await?;
        within_10s("read_exact", server.read_exact(&mut buf)).await?;
        assert_eq!(&buf[..], &burst[..64]);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// A 10-byte reader of a 100 000-byte stream written in uneven chunks by another task:
// every byte exactly once, in order, across many leftover and socket reads.
#[test]
fn a_10_byte_reader_reassembles_a_100_000_byte_stream_exactly() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let data = pattern(2, 100_000);
        let sent = data.clone();
        let writer = evloop::create_task(async move {
            let mut rng = SplitMix64::new(3);
            let mut rest = &sent[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(9_000) as usize).min(rest.len());
                client.write_all(&rest[..n]).await?;
                rest = &rest[n..];
                if rng.below(4) == 0 {
                    evloop::yield_now().await?;
                }
            }
            Ok::<_, Error>(())
        });
        let mut got = Vec::with_capacity(data.len());
        let mut buf = [0u8; 10];
        while got.len() < data.len() {
            let n = read_once(&server, &mut buf).await?;
            assert!(n > 0, "end of stream after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        within_10s("writer", writer).await?;
        assert!(got == data, "the reassembled stream differs");
        // The writer is gone: end of stream, and only now.
        assert_eq!(read_once(&server, &mut buf).await?, 0);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// The peer closes while bytes are left over from an earlier read: the reader gets the
// rest of them first, then end-of-stream (0), and 0 again after that.
#[test]
fn end_of_stream_comes_only_after_the_leftover_bytes() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let data = pattern(4, 100);
        client.write_all(&data).await?;
        let mut buf = [0u8; 30];
        let mut got = Vec::new();
        let n = read_once(&server, &mut buf).await?;
        got.extend_from_slice(&buf[..n]);
        drop(client);
        // Usually lets the FIN's event arrive while the bytes are still left over (the
        // case this pins); the outcome must be the same if it comes later.
        time::sleep(Duration::from_millis(20)).await?;
        let mut sizes = Vec::new();
        loop {
            let n = read_once(&server, &mut buf).await?;
            sizes.push(n);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(sizes.last(), Some(&0));
        assert_eq!(
            read_once(&server, &mut buf).await?,
            0,
            "end of stream stays"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

// A reset after the reader took part of the data: the leftover bytes are still
// delivered, in order, and the reset is reported by the next read — errors are not
// swallowed, nor reported before bytes already read from the kernel.
#[test]
fn a_reset_after_leftover_bytes_comes_after_them() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let data = pattern(5, 100);
        client.write_all(&data).await?;
        let mut buf = [0u8; 10];
        let mut got = Vec::new();
        let n = read_once(&server, &mut buf).await?;
        got.extend_from_slice(&buf[..n]);
        // Linger 0: closing sends a reset instead of a FIN.
        client.set_linger(Some(Duration::ZERO))?;
        drop(client);
        // As above: usually the reset's event arrives while bytes are left over.
        time::sleep(Duration::from_millis(20)).await?;
        while got.len() < data.len() {
            let n = read_once(&server, &mut buf).await?;
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        let err = read_once(&server, &mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// Split halves share the leftover bytes of their stream: the read half reads part of
// a burst, the write half writes meanwhile, and the read half — through `read_exact`
// and then `futures-io`'s `AsyncRead` — gets the rest in order, then end-of-stream.
#[test]
fn a_split_read_half_serves_the_leftover_bytes_in_order() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let (mut read_half, write_half) = server.into_split();
        let data = pattern(6, 3_000);
        client.write_all(&data).await?;
        let mut got = vec![0u8; 50];
        within_10s("read_exact", read_half.read_exact(&mut got)).await?;
        write_half.write_all(b"ack").await?;
        let mut ack = [0u8; 3];
        within_10s("read_exact", client.read_exact(&mut ack)).await?;
        assert_eq!(&ack, b"ack");
        let mut more = vec![0u8; 950];
        within_10s("read_exact", read_half.read_exact(&mut more)).await?;
        got.extend_from_slice(&more);
        drop(client);
        let mut rest = Vec::new();
        let mut small = [0u8; 7];
        loop {
            let n = within_10s("AsyncRead", AsyncReadExt::read(&mut read_half, &mut small)).await?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&small[..n]);
        }
        got.extend_from_slice(&rest);
        assert_eq!(got, data);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// While bytes are left over the socket's queue is empty, yet the stream has data for
// its user: `readable()` completes at once, `try_read` returns them, and only then
// does `try_read` report `WouldBlock` (Unix stream).
#[test]
fn readable_and_try_read_see_leftover_bytes_as_data() {
    evloop::run(async {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let ours = UnixStream::from_std(ours)?;
        let data = pattern(7, 100);
        (&theirs).write_all(&data)?;
        let mut buf = [0u8; 10];
        assert_eq!(within_10s("read", ours.read(&mut buf)).await?, 10);
        within_10s("readable with leftover bytes", ours.readable()).await?;
        let mut big = [0u8; 200];
        let n = ours.try_read(&mut big)?;
        assert_eq!(n, 90);
        let mut got = buf.to_vec();
        got.extend_from_slice(&big[..n]);
        assert_eq!(got, data);
        let err = ours.try_read(&mut big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // After that, a read waits for new data as usual.
        (&theirs).write_all(b"z")?;
        assert_eq!(within_10s("read", ours.read(&mut big)).await?, 1);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// Regression: a `try_read` made before the loop had seen any readiness for the stream
// went through the scratch buffer, left bytes over and had no readiness to keep set;
// epoll then reported nothing (the socket's queue was empty), so the next `read()`
// waited forever with the bytes in hand. A read with no readiness seen now reads
// straight into the caller's buffer, so nothing is left over unseen.
#[test]
fn a_try_read_before_any_readiness_leaves_nothing_a_later_read_cannot_see() {
    evloop::run(async {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let ours = UnixStream::from_std(ours)?;
        let data = pattern(11, 100);
        (&theirs).write_all(&data)?;
        // No await since the registration: the loop has polled no event for `ours`.
        let mut buf = [0u8; 10];
        assert_eq!(ours.try_read(&mut buf)?, 10);
        let mut got = buf.to_vec();
        let mut big = [0u8; 200];
        while got.len() < data.len() {
            let n = within_10s("read after an early try_read", ours.read(&mut big)).await?;
            assert!(n > 0, "end of stream before all bytes came");
            got.extend_from_slice(&big[..n]);
        }
        assert_eq!(got, data);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// Two tasks read the same stream with small buffers and the peer sends one burst: the
// first read leaves bytes over, and the other task — woken by the same event — must be
// served from them rather than wait for data that never comes. Together they see the
// burst once, in order; both then see the end of the stream.
#[test]
fn a_second_reader_of_the_same_stream_is_served_from_the_leftover_bytes() {
    evloop::run(async {
        let (client, server) = tcp_pair().await;
        let server = Rc::new(server);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (server, seen) = (server.clone(), seen.clone());
                evloop::create_task(async move {
                    let mut buf = [0u8; 16];
                    loop {
                        let n = within_10s("read", server.read(&mut buf)).await?;
                        if n == 0 {
                            return Ok::<_, Error>(());
                        }
                        seen.borrow_mut().extend_from_slice(&buf[..n]);
                    }
                })
            })
            .collect();
        // Both readers wait before the burst arrives.
        evloop::yield_now().await?;
        let data = pattern(8, 1_000);
        client.write_all(&data).await?;
        drop(client);
        for r in readers {
            within_10s("reader", r).await?;
        }
        assert_eq!(*seen.borrow(), data);
        Ok::<_, Error>(())
    })
    .unwrap();
}

// K7: reads served from leftover bytes never touch the socket and never suspend, so
// they must spend the budget: a sibling task runs while the reader is still early in
// its 5 000 one-byte reads (without the budget it would run only after all of them).
#[test]
fn reads_of_leftover_bytes_spend_the_cooperative_budget() {
    const READS: usize = 5_000;
    evloop::run(async {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let ours = UnixStream::from_std(ours)?;
        (&theirs).write_all(&pattern(9, READS))?;
        within_10s("readable", ours.readable()).await?;
        let progress = Rc::new(Cell::new(0usize));
        let reader = {
            let progress = progress.clone();
            evloop::create_task(async move {
                let mut byte = [0u8; 1];
                for _ in 0..READS {
                    assert_eq!(ours.read(&mut byte).await?, 1);
                    progress.set(progress.get() + 1);
                }
                Ok::<_, Error>(())
            })
        };
        let sibling = {
            let progress = progress.clone();
            evloop::create_task(async move { Ok::<_, Error>(progress.get()) })
        };
        let seen_at = within_10s("sibling", sibling).await?;
        within_10s("reader", reader).await?;
        assert!(
            seen_at < READS / 2,
            "the sibling ran only after {seen_at} of {READS} leftover reads"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}
