//! Regressions found by a review of the buffered streams and `start_server` before they
//! landed (issue 18). Each test says in prose what broke.

use std::cell::RefCell;
use std::io::{self, Read};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use evloop::io::BufWriter;
use evloop::net::{StreamReader, StreamWriter, TcpStream, start_server};
use evloop::{Error, time};
use futures_io::AsyncWrite;

const GUARD: Duration = Duration::from_secs(10);

/// `start_server` returns without suspending, so a `close()` right after it cancelled
/// the accept loop before its first poll: its body (and the guard inside it that
/// counts the loop out) never ran, and `wait_closed` waited forever. The guard now owns
/// the listener and is dropped with the task either way.
#[test]
fn close_before_the_accept_loop_first_runs_still_lets_wait_closed_return() {
    evloop::run(async {
        let server = start_server(
            |_r: StreamReader, _w: StreamWriter| async { Ok::<_, Error>(()) },
            "127.0.0.1:0",
        )
        .await?;
        let addr = server.sockets()[0];
        server.close();
        time::timeout(GUARD, server.wait_closed()).await??;
        let e = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        Ok::<_, Error>(())
    })
    .unwrap();
}

thread_local! {
    static REENTRANT: RefCell<Option<BufWriter<Reentrant>>> = const { RefCell::new(None) };
}

/// An inner writer that takes one byte per call and, on its second call, writes into
/// the very `BufWriter` that is flushing it.
struct Reentrant {
    calls: usize,
    out: Rc<RefCell<Vec<u8>>>,
}

impl AsyncWrite for Reentrant {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.calls += 1;
        if this.calls == 2 {
            REENTRANT.with(|w| w.borrow_mut().as_mut().unwrap().write(b"X").unwrap());
        }
        this.out.borrow_mut().push(buf[0]);
        Poll::Ready(Ok(1))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// While the flusher had the buffer out for a write, the cell kept the old `head`
/// against an empty buffer: a `write` from the inner writer's own code panicked in
/// `append` (and `buffer_size` underflowed), killing the flusher and stranding the
/// rest. The cell now holds a clean empty buffer meanwhile.
#[test]
fn a_write_from_inside_the_inner_writer_mid_flush_keeps_the_order() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let sink = out.clone();
    evloop::run(async move {
        REENTRANT.with(|w| {
            *w.borrow_mut() = Some(BufWriter::new(Reentrant {
                calls: 0,
                out: sink,
            }))
        });
        REENTRANT.with(|w| w.borrow_mut().as_mut().unwrap().write(b"abc").unwrap());
        time::sleep(Duration::from_millis(5)).await?;
        let mut w = REENTRANT.with(|w| w.borrow_mut().take()).unwrap();
        time::timeout(GUARD, w.flush()).await??;
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(&*out.borrow(), b"abcX");
}

/// An inner writer whose first `poll_write` panics.
struct PanicsOnce(usize);

impl AsyncWrite for PanicsOnce {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.0 += 1;
        assert!(this.0 > 1, "the inner writer panics once");
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A panic in the inner writer unwound out of the flusher with `flushing` still set:
/// no flusher was ever made again, and `flush` / `drain` / `close` waited forever. The
/// flusher now catches it, marks the writer failed and wakes the waiter.
#[test]
fn a_panicking_inner_writer_fails_the_writer_instead_of_wedging_it() {
    evloop::run(async {
        let mut w = BufWriter::new(PanicsOnce(0));
        w.write(b"a")?;
        let flushed = time::timeout(GUARD, w.flush()).await?;
        let e = flushed.unwrap_err();
        assert!(e.to_string().contains("panic"), "{e}");
        assert!(w.write(b"b").is_err());
        assert!(time::timeout(GUARD, w.close()).await?.is_err());
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// The loop's shutdown cancels every task, and a flusher not yet polled never ran: the
/// bytes of a `write` right before `run` returned (or before the writer was dropped)
/// were lost. A flusher dropped unfinished now makes one last non-blocking write.
#[test]
fn bytes_written_just_before_the_loop_ends_still_arrive() {
    for drop_writer_first in [false, true] {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        evloop::run(async move {
            let mut w = BufWriter::new(evloop::net::UnixStream::from_std(a)?);
            w.write(b"bye\n")?;
            if drop_writer_first {
                drop(w);
            } else {
                // `w` lives until the end of the body (and then until the loop drops).
                let _keep = w;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        b.set_read_timeout(Some(GUARD)).unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye\n", "drop first: {drop_writer_first}");
    }
}

/// After a `LimitOverrun`, `Lines` returned the same error on every poll without
/// reading: a `filter_map(Result::ok)` loop spun forever on the overlong line. The
/// stream now ends after an error, and `into_inner` gives back the reader and its data.
#[test]
fn lines_end_after_an_error_and_the_data_stays_with_the_reader() {
    use futures_util::StreamExt;
    evloop::run(async {
        let (a, b) = evloop::net::UnixStream::pair()?;
        a.write_all(b"ok\n0123456789abcdef0123\nafter\n").await?;
        drop(a);
        let mut lines = evloop::io::BufReader::with_limit(b, 8).lines();
        let mut seen = Vec::new();
        while let Some(line) = time::timeout(GUARD, lines.next()).await? {
            seen.push(line.map_err(|e| e.kind()));
        }
        assert_eq!(
            seen,
            [Ok("ok".to_string()), Err(io::ErrorKind::InvalidData)]
        );
        let mut reader = lines.into_inner();
        reader.set_limit(64);
        assert_eq!(reader.readline().await?, b"0123456789abcdef0123\n");
        assert_eq!(reader.readline().await?, b"after\n");
        Ok::<_, Error>(())
    })
    .unwrap();
}
