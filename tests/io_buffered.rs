//! `io::BufReader` / `io::BufWriter` rules (SPEC §15 N7) over Unix stream pairs, and
//! `net::start_server`'s lifecycle: asyncio's limit arithmetic, end-of-stream cases,
//! nothing lost when a read is dropped, `lines()`, the writer's background flush and
//! sticky errors, and `close` / `close_clients` / `wait_closed` / `serve_forever`.

mod common;

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use evloop::io::{BufReader, BufWriter, IncompleteRead, LimitOverrun};
use evloop::net::{TcpStream, UnixStream, start_server};
use evloop::{Error, time};
use futures_util::StreamExt;

fn overrun(e: &std::io::Error) -> LimitOverrun {
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    e.get_ref()
        .and_then(|i| i.downcast_ref::<LimitOverrun>())
        .unwrap_or_else(|| panic!("not a LimitOverrun: {e:?}"))
        .clone()
}

#[test]
fn the_limit_follows_asyncio_and_an_overrun_keeps_the_data() {
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        let mut r = BufReader::with_limit(b, 16);
        // Exactly the limit before the separator is accepted; one more byte is not.
        a.write_all(&[b'a'; 16]).await?;
        a.write_all(b"\n").await?;
        assert_eq!(r.readline().await?, [&[b'a'; 16][..], b"\n"].concat());
        // (One write, so that the separator arrives with the line and is seen.)
        a.write_all(&[&[b'b'; 17][..], b"\n"].concat()).await?;
        let o = overrun(&r.readline().await.unwrap_err());
        assert!(
            o.separator_found() && o.consumed() == 17 && o.limit() == 16,
            "{o:?}"
        );
        // Nothing was consumed: a larger limit reads the same line.
        r.set_limit(64);
        assert_eq!(r.readline().await?, [&[b'b'; 17][..], b"\n"].concat());
        // No separator within the limit, none found at all.
        r.set_limit(16);
        a.write_all(&[b'c'; 20]).await?;
        let o = overrun(&r.readuntil(b"\r\n").await.unwrap_err());
        assert!(!o.separator_found() && o.consumed() > 16, "{o:?}");
        // (One write of 20 bytes: all of them are buffered, and still there.)
        assert_eq!(r.read(100).await?, vec![b'c'; 20]);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn end_of_stream_cases() {
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"one\r\ntwo").await?;
        drop(a);
        let mut r = BufReader::new(b);
        assert_eq!(r.readuntil(b"\r\n").await?, b"one\r\n");
        assert!(!r.at_eof());
        // readuntil at the end: IncompleteRead with what was left, then nothing.
        let e = r.readuntil(b"\r\n").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        let inc = e
            .get_ref()
            .unwrap()
            .downcast_ref::<IncompleteRead>()
            .unwrap();
        assert_eq!((inc.partial(), inc.expected()), (&b"two"[..], None));
        assert!(r.at_eof());
        assert!(r.readline().await?.is_empty());
        assert!(r.read(10).await?.is_empty());
        let mut line = String::new();
        assert_eq!(r.read_line(&mut line).await?, 0);
        assert!(r.readuntil(b"").await.unwrap_err().kind() == ErrorKind::InvalidInput);

        // readline's partial last line, read(n) sizes and read_to_end.
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"abcdef\nlast").await?;
        drop(a);
        let mut r = BufReader::new(b);
        assert!(r.read(0).await?.is_empty());
        assert_eq!(r.read(3).await?, b"abc");
        let mut until = Vec::new();
        assert_eq!(r.read_until(b'\n', &mut until).await?, 4);
        assert_eq!(until, b"def\n");
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).await?, 4);
        assert_eq!(rest, b"last");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_read_dropped_half_way_loses_no_data() {
    // The first readline gets part of a line and is dropped by a timeout; the bytes it
    // had buffered are still there for the next one (each of the four forms).
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        let mut r = BufReader::new(b);
        for round in 0..4 {
            a.write_all(b"par").await?;
            let first = time::timeout(Duration::from_millis(5), async {
                match round {
                    0 => r.readline().await.map(|_| ()),
                    1 => r.readuntil(b"\r\n").await.map(|_| ()),
                    2 => r.readexactly(7).await.map(|_| ()),
                    _ => r.read_line(&mut String::new()).await.map(|_| ()),
                }
            })
            .await;
            assert!(matches!(first, Err(Error::Timeout(_))), "round {round}");
            a.write_all(b"tial\r\n").await?;
            let mut line = String::new();
            r.read_line(&mut line).await?;
            assert_eq!(line, "partial\r\n", "round {round}");
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn lines_strip_endings_and_end_with_the_stream() {
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"a\r\nb\n\nc").await?;
        drop(a);
        let lines: Vec<String> = BufReader::new(b)
            .lines()
            .map(|l| l.unwrap())
            .collect()
            .await;
        assert_eq!(lines, ["a", "b", "", "c"]);

        // Invalid UTF-8: an error for that line (consumed), the next line is fine.
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"\xff\xfe\nok\n").await?;
        let mut r = BufReader::new(b);
        let mut line = String::from("kept");
        let e = r.read_line(&mut line).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(line, "kept");
        let mut lines = r.lines();
        assert_eq!(lines.next_line().await?.as_deref(), Some("ok"));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn read_exact_larger_than_the_buffer() {
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let data = data.clone();
            evloop::create_task(async move {
                a.write_all(&data).await?;
                Ok::<_, Error>(())
            })
        };
        let mut r = BufReader::new(b);
        assert_eq!(r.readexactly(10).await?, data[..10]);
        let mut big = vec![0u8; data.len() - 10];
        r.read_exact(&mut big).await?;
        assert_eq!(big, data[10..]);
        writer.await?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn the_writer_flushes_in_the_background_and_on_drop() {
    common::run_guarded(async {
        // 4 MiB cannot fit the socket buffer: most of it is buffered, and goes out
        // while the writing task does nothing but read the other end.
        let (a, b) = UnixStream::pair()?;
        let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 253) as u8).collect();
        let mut w = BufWriter::new(a);
        w.write(&data)?;
        assert!(w.buffer_size() > 0);
        drop(w); // still flushed, then the write side shut down
        let mut got = Vec::new();
        BufReader::new(b).read_to_end(&mut got).await?;
        assert!(got == data, "{} bytes arrived", got.len());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_broken_connection_fails_every_later_call() {
    common::run_guarded(async {
        let (a, b) = UnixStream::pair()?;
        drop(b);
        let mut w = BufWriter::new(a);
        // The first write meets the closed peer (EPIPE), at once or in the flusher.
        let first = w.write(&[1; 1024]);
        let drained = w.flush().await;
        let e = first.err().or(drained.err()).expect("an error");
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
        let again = w.write(b"more").unwrap_err();
        assert_eq!(again.kind(), ErrorKind::BrokenPipe);
        assert!(w.drain().await.is_err());
        assert!(w.close().await.is_err());

        let (a, _b) = UnixStream::pair()?;
        let mut w = BufWriter::new(a);
        w.close().await?;
        assert!(w.is_closing());
        assert_eq!(w.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn drain_is_a_cancellation_point() {
    common::run_guarded(async {
        let (a, _b) = UnixStream::pair()?;
        let task = evloop::create_task(async move {
            let mut w = BufWriter::new(a);
            w.write(&vec![0; 8 << 20])?; // nobody reads: drain waits
            w.drain().await?;
            Ok::<_, Error>(())
        });
        time::sleep(Duration::from_millis(1)).await?;
        assert!(task.cancel());
        assert!(matches!(task.await, Err(Error::Cancelled(_))));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn server_close_close_clients_and_wait_closed() {
    common::run_guarded(async {
        let events = Rc::new(RefCell::new(Vec::<String>::new()));
        let server = start_server(
            {
                let events = events.clone();
                move |mut r, mut w| {
                    let events = events.clone();
                    async move {
                        let line = r.readline().await?;
                        events
                            .borrow_mut()
                            .push(format!("got {}", String::from_utf8_lossy(&line).trim()));
                        w.write(b"ready\n")?;
                        // Wait for a second line that never comes: only close_clients
                        // ends this.
                        match r.readline().await {
                            Err(e)
                                if e.get_ref()
                                    .is_some_and(|i| i.is::<evloop::CancelledError>()) =>
                            {
                                events.borrow_mut().push("cancelled".into());
                                Err(Error::Cancelled(evloop::CancelledError::new(None)))
                            }
                            other => {
                                events.borrow_mut().push(format!("unexpected {other:?}"));
                                Ok(())
                            }
                        }
                    }
                }
            },
            "127.0.0.1:0",
        )
        .await?;
        assert!(server.is_serving());
        let addr = server.sockets()[0];
        let (mut r, mut w) = evloop::net::open_connection(addr).await?;
        w.write(b"hi\n")?;
        assert_eq!(r.readline().await?, b"ready\n");

        let serving = {
            let server = server.clone();
            evloop::create_task(async move { server.serve_forever().await })
        };
        server.close();
        assert!(!server.is_serving() && server.sockets().is_empty());
        serving.await?; // serve_forever returns once the server is closed
        // The connection is still served: wait_closed waits for it.
        let waiting = {
            let server = server.clone();
            evloop::create_task(async move { server.wait_closed().await })
        };
        time::sleep(Duration::from_millis(5)).await?;
        assert!(!waiting.done());
        server.close_clients();
        time::timeout(Duration::from_secs(10), waiting).await??;
        assert_eq!(*events.borrow(), ["got hi", "cancelled"]);
        // The listening socket is closed.
        let e = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn serve_forever_cancelled_closes_the_server() {
    common::run_guarded(async {
        let server = start_server(|_r, _w| async { Ok::<_, Error>(()) }, "127.0.0.1:0").await?;
        let forever = {
            let server = server.clone();
            evloop::create_task(async move { server.serve_forever().await })
        };
        time::sleep(Duration::from_millis(1)).await?;
        assert!(forever.cancel());
        assert!(matches!(forever.await, Err(Error::Cancelled(_))));
        assert!(!server.is_serving());
        time::timeout(Duration::from_secs(10), server.wait_closed()).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
}
