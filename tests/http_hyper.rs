//! hyper on evloop, in process (feature `hyper`): evloop's hyper client talks to evloop's
//! hyper server on the same loop, with no tokio anywhere.
//!
//! Covers: 100 concurrent HTTP/1.1 exchanges on 100 connections and 100 HTTP/2 streams
//! multiplexed over one connection (a `!Send` service on [`LocalExec`]); hyper's
//! HTTP/1 header-read timeout and HTTP/2 keep-alive pings driven by [`Timer`]; hyper
//! over `UnixStream::pair()` and over split halves (`hyper::rt::Read` on
//! `OwnedReadHalf`, `Write` on `OwnedWriteHalf`); `Timer`'s sleeps (reset in place, the
//! wheel entry freed on drop); [`LoopExec`] from a thread that runs no loop; and
//! cancelling the task that serves a connection while a request is in flight.
//!
//! Every wait has a generous hang guard (`GUARD`, and `run_guarded`'s watchdog); no
//! test asserts on how long anything took.
#![cfg(feature = "hyper")]

mod common;

use std::cell::Cell;
use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use evloop::hyper::{LocalExec, LoopExec, Timer};
use evloop::net::{OwnedReadHalf, OwnedWriteHalf, SplitStream, TcpListener, TcpStream, UnixStream};
use evloop::{Error, LoopHandle, Runtime, Task, create_task, gather};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::{Executor as _, ReadBuf, Timer as _, Write as _};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};

use common::{DropSpy, run_guarded};

/// Hang guard for one phase of a test (never a timing assertion).
const GUARD: Duration = Duration::from_secs(20);

/// How many requests the concurrency tests run at once.
const N: usize = 100;

/// `"<METHOD> <path> id=<x-id> body=<request body>"`: what every echo response carries,
/// so a response delivered to the wrong request is caught.
async fn describe(req: Request<Incoming>) -> Result<String, hyper::Error> {
    let id = req
        .headers()
        .get("x-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let head = format!("{} {} id={id}", req.method(), req.uri().path());
    let body = req.into_body().collect().await?.to_bytes();
    Ok(format!("{head} body={}", String::from_utf8_lossy(&body)))
}

/// The echo service: answers [`describe`] of the request.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    Ok(Response::new(Full::new(Bytes::from(describe(req).await?))))
}

fn get(path: &str, id: usize) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("x-id", id)
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// Sends `req` and returns the status and the whole body as text.
async fn exchange<S>(
    sender: &mut S,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, String), Error>
where
    S: SendRequest,
{
    let resp = sender.send(req).await.map_err(Error::new)?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(Error::new)?;
    Ok((status, String::from_utf8(body.to_bytes().to_vec())?))
}

/// The two hyper client senders behind one method, so [`exchange`] serves both.
trait SendRequest {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<Response<Incoming>>>;
}

impl SendRequest for H1Sender {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<Response<Incoming>>> {
        self.send_request(req)
    }
}

impl SendRequest for hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<Response<Incoming>>> {
        self.send_request(req)
    }
}

type H1Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 client connection over `io`; the connection runs as a task whose result
/// is the connection's.
async fn h1_client<IO>(io: IO) -> Result<(H1Sender, Task<()>), Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(Error::new)?;
    let conn = create_task(async move { conn.await.map_err(Error::new) });
    Ok((sender, conn))
}

/// Serves one HTTP/1.1 connection on `io` with [`echo`], as a task.
fn h1_echo_server<IO>(io: IO) -> Task<()>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    create_task(async move {
        hyper::server::conn::http1::Builder::new()
            .timer(Timer)
            .serve_connection(io, service_fn(echo))
            .await
            .map_err(Error::new)
    })
}

/// A one-shot barrier for `n` arrivals on the loop: every waiter is released once the
/// `n`-th has arrived. It deadlocks (and the hang guard fails the test) unless `n`
/// requests really are in flight at the same time.
#[derive(Clone)]
struct Barrier {
    arrived: Rc<Cell<usize>>,
    n: usize,
    all_in: evloop::Future<()>,
}

impl Barrier {
    fn new(n: usize) -> Barrier {
        Barrier {
            arrived: Rc::default(),
            n,
            all_in: evloop::Future::new(),
        }
    }

    async fn wait(&self) -> Result<(), Error> {
        self.arrived.set(self.arrived.get() + 1);
        if self.arrived.get() == self.n {
            self.all_in
                .set_result(())
                .map_err(|e| Error::msg(format!("barrier: {e}")))?;
        }
        self.all_in.clone().await
    }
}

/// 100 HTTP/1.1 client connections, each sending one request, all launched together
/// and collected with `gather`. The server holds every answer until all 100 requests
/// have arrived, so they are really concurrent; each body names its own request.
#[test]
fn h1_hundred_concurrent_connections_each_get_their_own_response() {
    let bodies = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let barrier = Barrier::new(N);
        let server = create_task(async move {
            let mut connections = Vec::new();
            for _ in 0..N {
                let (stream, _) = listener.accept().await?;
                let barrier = barrier.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let barrier = barrier.clone();
                    async move {
                        barrier.wait().await?;
                        let body = describe(req).await?;
                        Ok::<_, Error>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                connections.push(create_task(async move {
                    hyper::server::conn::http1::Builder::new()
                        .timer(Timer)
                        .serve_connection(stream, service)
                        .await
                        .map_err(Error::new)
                }));
            }
            // Each connection ends cleanly once its client closes it.
            gather(connections).await?;
            Ok::<_, Error>(())
        });

        let clients: Vec<Task<(StatusCode, String)>> = (0..N)
            .map(|i| {
                create_task(async move {
                    let stream = TcpStream::connect(addr).await?;
                    let (mut sender, conn) = h1_client(stream).await?;
                    let answer = exchange(&mut sender, get(&format!("/item/{i}"), i)).await?;
                    drop(sender); // closes the connection once it is idle
                    conn.await?;
                    Ok::<_, Error>(answer)
                })
            })
            .collect();
        let answers = evloop::wait_for(gather(clients), GUARD).await?;
        evloop::wait_for(server, GUARD).await?;
        Ok::<_, Error>(answers)
    })
    .expect("the exchange");

    assert_eq!(bodies.len(), N);
    for (i, (status, body)) in bodies.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK, "request {i}");
        assert_eq!(body, &format!("GET /item/{i} id={i} body="), "request {i}");
    }
}

/// 100 HTTP/2 requests multiplexed over ONE connection (`http2::handshake(LocalExec,
/// …)`), against a server whose service holds an `Rc` (`!Send`): [`LocalExec`] spawns
/// hyper's per-stream tasks without a `Send` bound. The server holds every answer until
/// all 100 streams are open, so the multiplexing is real.
#[test]
fn h2_hundred_streams_over_one_connection_with_a_non_send_service() {
    let (answers, seen) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests_seen: Rc<Cell<usize>> = Rc::default(); // !Send, in the service
        let barrier = Barrier::new(N);
        let server = {
            let requests_seen = requests_seen.clone();
            create_task(async move {
                let (stream, _) = listener.accept().await?;
                let service = service_fn(move |req: Request<Incoming>| {
                    let requests_seen = requests_seen.clone();
                    let barrier = barrier.clone();
                    async move {
                        requests_seen.set(requests_seen.get() + 1);
                        barrier.wait().await?;
                        let body = describe(req).await?;
                        Ok::<_, Error>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                hyper::server::conn::http2::Builder::new(LocalExec)
                    .timer(Timer)
                    .max_concurrent_streams(2 * N as u32)
                    .serve_connection(stream, service)
                    .await
                    .map_err(Error::new)
            })
        };

        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http2::handshake(LocalExec, stream)
            .await
            .map_err(Error::new)?;
        let conn = create_task(async move { conn.await.map_err(Error::new) });
        let clients: Vec<Task<(StatusCode, String)>> = (0..N)
            .map(|i| {
                let mut sender = sender.clone();
                create_task(
                    async move { exchange(&mut sender, get(&format!("/stream/{i}"), i)).await },
                )
            })
            .collect();
        let answers = evloop::wait_for(gather(clients), GUARD).await?;
        drop(sender); // the last sender: the client connection closes
        evloop::wait_for(conn, GUARD).await?;
        evloop::wait_for(server, GUARD).await?;
        Ok::<_, Error>((answers, requests_seen.get()))
    })
    .expect("the exchange");

    assert_eq!(seen, N, "the server saw every request once");
    assert_eq!(answers.len(), N);
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK, "stream {i}");
        assert_eq!(body, &format!("GET /stream/{i} id={i} body="), "stream {i}");
    }
}

/// Reads from `stream` until end of stream or an error ([`GUARD`] per read);
/// returns what arrived and how it ended.
async fn read_to_end(stream: &TcpStream) -> Result<(Vec<u8>, std::io::Result<()>), Error> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match evloop::time::timeout(GUARD, stream.read(&mut buf)).await? {
            Ok(0) => return Ok((got, Ok(()))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Ok((got, Err(e))),
        }
    }
}

/// An HTTP/1 server with `header_read_timeout(200 ms)` on [`Timer`] for one connection;
/// the task's value is what `serve_connection` returned.
fn h1_server_with_header_timeout(stream: TcpStream) -> Task<Result<(), hyper::Error>> {
    create_task(async move {
        Ok(hyper::server::conn::http1::Builder::new()
            .timer(Timer)
            .header_read_timeout(Duration::from_millis(200))
            .serve_connection(stream, service_fn(echo))
            .await)
    })
}

/// Pins hyper's header-read timeout on evloop's [`Timer`]: a client that sends an
/// incomplete request head and then waits is disconnected (nothing is answered), and
/// `serve_connection` ends with hyper's timeout error.
#[test]
fn h1_header_read_timeout_drops_a_client_that_never_finishes_its_head() {
    let (received, ended, served) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect(addr).await?;
        let (stream, _) = listener.accept().await?;
        let server = h1_server_with_header_timeout(stream);

        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?; // no blank line
        let (received, ended) = read_to_end(&client).await?;
        let served = evloop::time::timeout(GUARD, server).await??;
        Ok::<_, Error>((received, ended, served))
    })
    .expect("the exchange");

    assert!(
        received.is_empty(),
        "the server answered instead of closing: {:?}",
        String::from_utf8_lossy(&received)
    );
    if let Err(e) = ended {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "the connection ended with {e:?}, not a close or a reset"
        );
    }
    let err = served.expect_err("serve_connection must fail with the header timeout");
    assert!(err.is_timeout(), "not hyper's header timeout: {err:?}");
}

/// The control for the test above: on the same server configuration, a client that
/// sends its whole head at once gets a 200, and the connection then ends cleanly
/// (`Connection: close`).
#[test]
fn h1_header_read_timeout_lets_a_complete_head_through() {
    let (received, served) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect(addr).await?;
        let (stream, _) = listener.accept().await?;
        let server = h1_server_with_header_timeout(stream);

        client
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let (received, ended) = read_to_end(&client).await?;
        ended?;
        let served = evloop::time::timeout(GUARD, server).await??;
        Ok::<_, Error>((received, served))
    })
    .expect("the exchange");

    let text = String::from_utf8(received).expect("an ASCII response");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.ends_with("GET /ok id=- body="), "{text:?}");
    served.expect("the connection ends cleanly");
}

/// HTTP/1.1 over a `UnixStream::pair()`: several requests in sequence on the one
/// keep-alive connection, one with a request body that the server echoes.
#[test]
fn h1_over_a_unix_stream_pair() {
    let answers = run_guarded(async {
        let (server_end, client_end) = UnixStream::pair()?;
        let server = h1_echo_server(server_end);
        let (mut sender, conn) = h1_client(client_end).await?;
        let mut answers = Vec::new();
        for i in 0..3 {
            answers.push(exchange(&mut sender, get(&format!("/unix/{i}"), i)).await?);
        }
        let post = Request::post("/unix/post")
            .header("x-id", 7)
            .body(Full::new(Bytes::from_static(b"hello over a socketpair")))?;
        answers.push(exchange(&mut sender, post).await?);
        drop(sender);
        evloop::wait_for(conn, GUARD).await?;
        evloop::wait_for(server, GUARD).await?;
        Ok::<_, Error>(answers)
    })
    .expect("the exchange");

    let expected = [
        "GET /unix/0 id=0 body=",
        "GET /unix/1 id=1 body=",
        "GET /unix/2 id=2 body=",
        "POST /unix/post id=7 body=hello over a socketpair",
    ];
    assert_eq!(answers.len(), expected.len());
    for ((status, body), want) in answers.iter().zip(expected) {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(body, want);
    }
}

/// Reads once through `hyper::rt::Read` into an uninitialised buffer.
async fn hyper_read_once<R: hyper::rt::Read + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut storage = [MaybeUninit::<u8>::uninit(); 64];
    let mut buf = ReadBuf::uninit(&mut storage);
    poll_fn(|cx| Pin::new(&mut *r).poll_read(cx, buf.unfilled())).await?;
    Ok(buf.filled().to_vec())
}

/// `OwnedReadHalf` implements `hyper::rt::Read` and `OwnedWriteHalf` `hyper::rt::Write`
/// (plain and vectored writes, flush, and shutdown, which the peer reads as end of
/// stream), exercised through the traits directly.
#[test]
fn split_halves_implement_hyper_read_and_write() {
    run_guarded(async {
        let (ours, peer) = UnixStream::pair()?;
        let (mut r, mut w) = ours.into_split();

        // Write through hyper::rt::Write; the peer reads it.
        assert!(w.is_write_vectored());
        let n = poll_fn(|cx| Pin::new(&mut w).poll_write(cx, b"plain ")).await?;
        assert_eq!(n, 6);
        let bufs = [
            std::io::IoSlice::new(b"vec"),
            std::io::IoSlice::new(b"tored"),
        ];
        let n = poll_fn(|cx| Pin::new(&mut w).poll_write_vectored(cx, &bufs)).await?;
        assert_eq!(n, 8);
        poll_fn(|cx| Pin::new(&mut w).poll_flush(cx)).await?;
        let mut got = [0u8; 14];
        evloop::time::timeout(GUARD, peer.read_exact(&mut got)).await??;
        assert_eq!(&got, b"plain vectored");

        // Read through hyper::rt::Read what the peer writes.
        peer.write_all(b"from the peer").await?;
        let got = evloop::time::timeout(GUARD, hyper_read_once(&mut r)).await??;
        assert_eq!(got, b"from the peer");

        // Shutdown through hyper::rt::Write: the peer reads end of stream.
        poll_fn(|cx| Pin::new(&mut w).poll_shutdown(cx)).await?;
        let mut rest = [0u8; 8];
        let n = evloop::time::timeout(GUARD, peer.read(&mut rest)).await??;
        assert_eq!(n, 0, "end of stream after poll_shutdown");

        // The peer closes: hyper::rt::Read reports end of stream as an empty read.
        drop(peer);
        let got = evloop::time::timeout(GUARD, hyper_read_once(&mut r)).await??;
        assert!(got.is_empty(), "end of stream is a read of 0 bytes");
        Ok::<_, Error>(())
    })
    .expect("the halves");
}

/// The two halves of a split stream as one hyper I/O object (evloop provides none).
struct Joined<S: SplitStream> {
    read: OwnedReadHalf<S>,
    write: OwnedWriteHalf<S>,
}

impl<S: SplitStream> hyper::rt::Read for Joined<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S: SplitStream> hyper::rt::Write for Joined<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

fn joined<S: SplitStream>((read, write): (OwnedReadHalf<S>, OwnedWriteHalf<S>)) -> Joined<S> {
    Joined { read, write }
}

/// hyper serves and requests over split halves (joined by the test's own wrapper), on
/// a TCP connection: the halves' hyper traits carry a whole HTTP/1.1 exchange.
#[test]
fn h1_over_split_tcp_halves() {
    let answers = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (stream, _) = listener.accept().await?;
        let server = h1_echo_server(joined(stream.into_split()));
        let (mut sender, conn) = h1_client(joined(client.into_split())).await?;
        let mut answers = vec![exchange(&mut sender, get("/halves", 1)).await?];
        let post = Request::post("/halves")
            .header("x-id", 2)
            .body(Full::new(Bytes::from_static(b"split")))?;
        answers.push(exchange(&mut sender, post).await?);
        drop(sender);
        evloop::wait_for(conn, GUARD).await?;
        evloop::wait_for(server, GUARD).await?;
        Ok::<_, Error>(answers)
    })
    .expect("the exchange");

    assert_eq!(
        answers,
        [
            (StatusCode::OK, "GET /halves id=1 body=".to_owned()),
            (StatusCode::OK, "POST /halves id=2 body=split".to_owned()),
        ]
    );
}

/// Polls `fut` once (registering a sleep with the wheel) and checks it is pending.
async fn poll_once_pending(fut: &mut Pin<Box<dyn hyper::rt::Sleep>>) {
    poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending(), "a far deadline");
        Poll::Ready(())
    })
    .await;
}

fn timers_pending() -> u64 {
    LoopHandle::current().stats().timers_pending
}

/// `Timer::reset` of one of its own sleeps keeps the allocation (no new box) and moves
/// the deadline both ways: a registered far sleep reset to near completes, a near sleep
/// reset to later does not complete before the new deadline; the wheel holds one entry
/// per sleep throughout.
#[test]
fn timer_reset_moves_the_deadline_in_place() {
    run_guarded(async {
        let base = timers_pending();

        // Far -> near.
        let mut sleep = Timer.sleep(Duration::from_secs(3600));
        assert!(sleep.is::<evloop::hyper::Sleep>());
        poll_once_pending(&mut sleep).await;
        assert_eq!(timers_pending(), base + 1, "registered on first poll");
        let before: *const dyn hyper::rt::Sleep = &*sleep;
        let near = Instant::now() + Duration::from_millis(5);
        Timer.reset(&mut sleep, near);
        assert!(
            std::ptr::addr_eq(before, &*sleep),
            "reset kept the allocation"
        );
        evloop::time::timeout(GUARD, sleep.as_mut()).await?;
        assert!(Instant::now() >= near, "completed before its new deadline");
        assert_eq!(timers_pending(), base, "a fired sleep leaves no timer");

        // Near -> later: the old (near) registration must not fire it.
        let mut sleep = Timer.sleep_until(Instant::now() + Duration::from_millis(1));
        poll_once_pending(&mut sleep).await;
        let before: *const dyn hyper::rt::Sleep = &*sleep;
        let later = Instant::now() + Duration::from_millis(40);
        Timer.reset(&mut sleep, later);
        assert!(
            std::ptr::addr_eq(before, &*sleep),
            "reset kept the allocation"
        );
        evloop::time::timeout(GUARD, sleep.as_mut()).await?;
        assert!(
            Instant::now() >= later,
            "completed at the old deadline instead of the new one"
        );

        // Reset of a sleep that was never polled, then awaited.
        let mut sleep = Timer.sleep(Duration::from_secs(3600));
        let before: *const dyn hyper::rt::Sleep = &*sleep;
        let soon = Instant::now() + Duration::from_millis(2);
        Timer.reset(&mut sleep, soon);
        assert!(std::ptr::addr_eq(before, &*sleep));
        evloop::time::timeout(GUARD, sleep).await?;
        assert!(Instant::now() >= soon);
        assert_eq!(timers_pending(), base);
        Ok::<_, Error>(())
    })
    .expect("the sleeps");
}

/// Resetting a registered sleep many times leaves one wheel entry, and a completed
/// sleep that is reset and polled again waits again (hyper reuses its header-timeout
/// sleep this way).
#[test]
fn timer_reset_leaves_one_wheel_entry_and_rearms_a_fired_sleep() {
    run_guarded(async {
        let base = timers_pending();
        let mut sleep = Timer.sleep(Duration::from_secs(3600));
        for i in 0..10 {
            poll_once_pending(&mut sleep).await;
            assert_eq!(timers_pending(), base + 1, "one entry after reset #{i}");
            Timer.reset(&mut sleep, Instant::now() + Duration::from_secs(3600 + i));
        }
        let first = Instant::now() + Duration::from_millis(2);
        Timer.reset(&mut sleep, first);
        evloop::time::timeout(GUARD, sleep.as_mut()).await?;
        assert!(Instant::now() >= first);

        // Fired; reset it to a far deadline: it is pending again, not stuck "fired".
        Timer.reset(&mut sleep, Instant::now() + Duration::from_secs(3600));
        poll_once_pending(&mut sleep).await;
        assert_eq!(timers_pending(), base + 1);
        let second = Instant::now() + Duration::from_millis(2);
        Timer.reset(&mut sleep, second);
        evloop::time::timeout(GUARD, sleep.as_mut()).await?;
        assert!(Instant::now() >= second);
        assert_eq!(timers_pending(), base);
        Ok::<_, Error>(())
    })
    .expect("the sleeps");
}

/// Dropping a registered sleep unlinks its timer at once: the loop's stats show no
/// pending timer left behind.
#[test]
fn timer_dropping_a_registered_sleep_frees_its_timer() {
    run_guarded(async {
        let base = timers_pending();
        let mut sleeps: Vec<_> = (0..5)
            .map(|i| Timer.sleep(Duration::from_secs(3600 + i)))
            .collect();
        for sleep in &mut sleeps {
            poll_once_pending(sleep).await;
        }
        assert_eq!(timers_pending(), base + 5);
        sleeps.truncate(2);
        assert_eq!(timers_pending(), base + 2, "dropped sleeps are unlinked");
        drop(sleeps);
        assert_eq!(timers_pending(), base, "no timer left behind");
        Ok::<_, Error>(())
    })
    .expect("the sleeps");
}

/// A sleep some other timer made is replaced by one of ours on `reset`, which then
/// completes at the new deadline.
#[test]
fn timer_reset_replaces_a_foreign_sleep() {
    struct Never;
    impl std::future::Future for Never {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    impl hyper::rt::Sleep for Never {}

    run_guarded(async {
        let mut sleep: Pin<Box<dyn hyper::rt::Sleep>> = Box::pin(Never);
        let deadline = Instant::now() + Duration::from_millis(2);
        Timer.reset(&mut sleep, deadline);
        assert!(
            sleep.is::<evloop::hyper::Sleep>(),
            "replaced by evloop's sleep"
        );
        evloop::time::timeout(GUARD, sleep).await?;
        assert!(Instant::now() >= deadline);
        Ok::<_, Error>(())
    })
    .expect("the sleep");
}

/// `LoopExec::execute` called on a thread that runs no loop runs the future on the
/// given loop's thread.
#[test]
fn loop_exec_execute_from_a_non_loop_thread_runs_on_the_loop() {
    let rt = Runtime::new().expect("a runtime");
    let handle = rt.handle();
    let exec = LoopExec::new(handle.clone());
    assert_eq!(exec.handle().id(), handle.id());
    let done = evloop::Future::<(Option<u64>, std::thread::ThreadId)>::with_loop(&handle);
    let setter = done.clone();
    std::thread::spawn(move || {
        assert!(
            LoopHandle::try_current().is_none(),
            "no loop on this thread"
        );
        exec.execute(async move {
            let here = LoopHandle::try_current().map(|h| h.id());
            let _ = setter.set_result((here, std::thread::current().id()));
        });
    })
    .join()
    .expect("the spawning thread");
    let (loop_id, thread) = rt
        .block_on(evloop::wait_for(done, GUARD))
        .expect("the future ran");
    assert_eq!(loop_id, Some(handle.id()), "ran inside the loop");
    assert_eq!(thread, std::thread::current().id(), "on the loop's thread");
}

/// `LoopExec::current()` spawns onto the loop of the calling thread.
#[test]
fn loop_exec_current_is_the_running_loop() {
    run_guarded(async {
        let exec = LoopExec::current();
        assert_eq!(exec.handle().id(), LoopHandle::current().id());
        let done = evloop::Future::<u64>::new();
        let setter = done.clone();
        exec.execute(async move {
            let _ = setter.set_result(LoopHandle::current().id());
        });
        let ran_on = evloop::wait_for(done, GUARD).await?;
        assert_eq!(ran_on, LoopHandle::current().id());
        Ok::<_, Error>(())
    })
    .expect("the executor");
}

/// On a closed loop `LoopExec::execute` drops the future without running it (L14).
#[test]
fn loop_exec_on_a_closed_loop_drops_the_future() {
    let rt = Runtime::new().expect("a runtime");
    let exec = LoopExec::new(rt.handle());
    drop(rt);
    let ran = Arc::new(AtomicBool::new(false));
    let (spy, probe) = DropSpy::new();
    exec.execute({
        let ran = ran.clone();
        async move {
            let _spy = spy;
            ran.store(true, Ordering::SeqCst);
        }
    });
    assert_eq!(probe.drops(), 1, "the future was dropped");
    assert!(!ran.load(Ordering::SeqCst), "and never ran");
}

/// An HTTP/2 client connection and server driven by `LoopExec` with a `Send` service,
/// with the loop on its own thread and everything else done from the test's thread
/// (which runs no loop): the connection future is handed to `LoopExec::execute` from
/// there, and so are the requests. Every request is answered, on the loop's thread.
#[test]
fn loop_exec_drives_an_h2_connection_from_another_thread() {
    type Answer = Result<(StatusCode, String, Option<u64>), String>;
    const REQUESTS: usize = 20;

    let (handle_tx, handle_rx) = mpsc::channel();
    let loop_thread = std::thread::spawn(move || {
        let rt = Runtime::new().expect("a runtime");
        let stop = evloop::Future::<()>::with_loop(&rt.handle());
        handle_tx.send((rt.handle(), stop.clone())).unwrap();
        rt.block_on(evloop::wait_for(stop, Duration::from_secs(60)))
    });
    let (handle, stop) = handle_rx.recv().expect("the loop's handle");
    let loop_id = handle.id();
    let exec = LoopExec::new(handle.clone());

    // The server, spawned from this thread; its service is Send (an Arc counter).
    let served = Arc::new(AtomicUsize::new(0));
    let (addr_tx, addr_rx) = mpsc::channel();
    let (server_tx, server_rx) = mpsc::channel::<Result<(), String>>();
    let _server = handle.spawn({
        let served = served.clone();
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addr_tx.send(listener.local_addr()?).unwrap();
            let (stream, _) = listener.accept().await?;
            let service = service_fn(move |req: Request<Incoming>| {
                let served = served.clone();
                async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    echo(req).await
                }
            });
            let result = hyper::server::conn::http2::Builder::new(LoopExec::current())
                .timer(Timer)
                .serve_connection(stream, service)
                .await;
            let _ = server_tx.send(result.map_err(|e| e.to_string()));
            Ok::<_, Error>(())
        }
    });
    let addr = addr_rx.recv_timeout(GUARD).expect("the server's address");

    // The handshake runs on the loop; the connection comes back to this thread.
    let (conn_tx, conn_rx) = mpsc::channel();
    let _client = handle.spawn(async move {
        let stream = TcpStream::connect(addr).await?;
        let exec = LoopExec::new(LoopHandle::current());
        let handshake = hyper::client::conn::http2::handshake(exec, stream).await;
        let _ = conn_tx.send(handshake);
        Ok::<_, Error>(())
    });
    let (sender, conn) = conn_rx
        .recv_timeout(GUARD)
        .expect("the handshake finished")
        .expect("the handshake succeeded");

    // Drive the connection from here: LoopExec moves it to the loop.
    let (conn_done_tx, conn_done_rx) = mpsc::channel();
    exec.execute(async move {
        let _ = conn_done_tx.send(conn.await.map_err(|e| e.to_string()));
    });

    let (answer_tx, answer_rx) = mpsc::channel::<(usize, Answer)>();
    for i in 0..REQUESTS {
        let mut sender = sender.clone();
        let answer_tx = answer_tx.clone();
        exec.execute(async move {
            let answer = exchange(&mut sender, get(&format!("/cross/{i}"), i))
                .await
                .map(|(status, body)| (status, body, LoopHandle::try_current().map(|h| h.id())))
                .map_err(|e| e.to_string());
            let _ = answer_tx.send((i, answer));
        });
    }
    drop(answer_tx);
    let mut answers: Vec<Option<Answer>> = vec![None; REQUESTS];
    for _ in 0..REQUESTS {
        let (i, answer) = answer_rx.recv_timeout(GUARD).expect("an answer");
        answers[i] = Some(answer);
    }
    drop(sender); // the last one: the client connection closes
    let conn_result = conn_done_rx
        .recv_timeout(GUARD)
        .expect("the connection ended");
    let server_result = server_rx.recv_timeout(GUARD).expect("the server ended");
    stop.set_result(()).expect("the loop still runs");
    loop_thread
        .join()
        .expect("the loop thread")
        .expect("the loop stopped before its 60 s guard");

    for (i, answer) in answers.into_iter().enumerate() {
        let (status, body, ran_on) = answer.expect("answered").expect("a response");
        assert_eq!(status, StatusCode::OK, "request {i}");
        assert_eq!(body, format!("GET /cross/{i} id={i} body="), "request {i}");
        assert_eq!(ran_on, Some(loop_id), "request {i} ran on the loop");
    }
    assert_eq!(served.load(Ordering::SeqCst), REQUESTS);
    conn_result.expect("the client connection ends cleanly");
    server_result.expect("the server connection ends cleanly");
}

/// Cancelling the task that runs `serve_connection` while a request is in flight (its
/// service waiting on a long sleep) ends that task cancelled, and the client sees the
/// connection closed without a response.
///
/// Regression: hyper returns the cancellation as `hyper::Error(Io(io::Error(Cancelled)))`;
/// `Error::new` once wrapped that as an `Exception`, so the task ended failed, not
/// cancelled. It now finds the `CancelledError` in the source chain.
#[test]
fn cancelling_the_serving_task_mid_request_ends_it_cancelled_and_closes_the_connection() {
    let (outcome, was_cancelled, client_err) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let arrived = evloop::Future::<()>::new();
        let server = {
            let arrived = arrived.clone();
            create_task(async move {
                let (stream, _) = listener.accept().await?;
                let service = service_fn(move |_req: Request<Incoming>| {
                    let arrived = arrived.clone();
                    async move {
                        let _ = arrived.set_result(());
                        evloop::time::sleep(Duration::from_secs(3600))
                            .await
                            .map_err(std::io::Error::from)?;
                        Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from("too late"))))
                    }
                });
                hyper::server::conn::http1::Builder::new()
                    .timer(Timer)
                    .serve_connection(stream, service)
                    .await
                    .map_err(Error::new)
            })
        };

        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) = h1_client(stream).await?;
        let request = create_task(async move {
            Ok::<_, Error>(exchange(&mut sender, get("/slow", 1)).await.err())
        });
        evloop::wait_for(arrived, GUARD).await?;
        assert!(server.cancel(), "the serving task was running");
        let outcome = evloop::wait_for(server.future(), GUARD).await;
        let was_cancelled = server.cancelled();
        let client_err = evloop::wait_for(request, GUARD).await?;
        let _ = evloop::wait_for(conn, GUARD).await;
        Ok::<_, Error>((
            outcome.map_err(|e| (e.is_cancelled(), e.to_string())),
            was_cancelled,
            client_err,
        ))
    })
    .expect("the exchange");

    let (is_cancelled, text) = outcome.expect_err("the serving task must not succeed");
    assert!(is_cancelled, "ended with {text:?}, not cancelled");
    assert!(was_cancelled, "task.cancelled()");
    let err = client_err.expect("the client must not get a response");
    assert!(!err.is_timeout(), "{err:?}");
}

/// One HTTP/2 frame header: (payload length, type, flags, stream id).
type FrameHeader = (usize, u8, u8, u32);

const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;

/// Reads one HTTP/2 frame; `None` at end of stream or on a reset.
async fn read_frame(stream: &TcpStream) -> Result<Option<(FrameHeader, Vec<u8>)>, Error> {
    let mut head = [0u8; 9];
    match evloop::time::timeout(GUARD, stream.read_exact(&mut head)).await? {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    evloop::time::timeout(GUARD, stream.read_exact(&mut payload)).await??;
    Ok(Some(((len, head[3], head[4], stream_id), payload)))
}

/// Writes one HTTP/2 frame on stream 0.
async fn write_frame(stream: &TcpStream, kind: u8, flags: u8, payload: &[u8]) -> Result<(), Error> {
    let len = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await?;
    Ok(())
}

/// A raw HTTP/2 client: the connection preface and an empty SETTINGS frame.
async fn raw_h2_client(addr: std::net::SocketAddr) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await?;
    write_frame(&stream, FRAME_SETTINGS, 0, &[]).await?;
    Ok(stream)
}

/// An HTTP/2 server for one connection with keep-alive pings every `interval` on
/// [`Timer`]; the task's value is what `serve_connection` returned.
fn h2_keep_alive_server(
    listener: TcpListener,
    interval: Duration,
    timeout: Duration,
) -> Task<Result<(), hyper::Error>> {
    create_task(async move {
        let (stream, _) = listener.accept().await?;
        Ok(hyper::server::conn::http2::Builder::new(LocalExec)
            .timer(Timer)
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .serve_connection(stream, service_fn(echo))
            .await)
    })
}

/// HTTP/2 keep-alive on [`Timer`]: a peer that never answers the server's PING is
/// disconnected once the keep-alive timeout passes, and `serve_connection` ends with
/// hyper's keep-alive timeout error.
#[test]
fn h2_keep_alive_drops_a_peer_that_never_answers_pings() {
    let (kinds, served) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = h2_keep_alive_server(
            listener,
            Duration::from_millis(50),
            Duration::from_millis(100),
        );
        let client = raw_h2_client(addr).await?;
        let mut kinds = Vec::new();
        while let Some(((_, kind, flags, _), _)) = read_frame(&client).await? {
            kinds.push((kind, flags));
        }
        let served = evloop::time::timeout(GUARD, server).await??;
        Ok::<_, Error>((kinds, served))
    })
    .expect("the exchange");

    assert!(
        kinds.contains(&(FRAME_PING, 0)),
        "the server never sent a PING: frames {kinds:?}"
    );
    let err = served.expect_err("serve_connection must fail with the keep-alive timeout");
    assert!(err.is_timeout(), "not hyper's keep-alive timeout: {err:?}");
}

/// The control for the test above: a peer that answers every PING stays connected
/// through several keep-alive rounds (the server's keep-alive sleep is re-armed each
/// round), and the connection is still being served afterwards.
#[test]
fn h2_keep_alive_keeps_a_peer_that_answers_pings() {
    const ROUNDS: usize = 3;
    let (pings, still_serving) = run_guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // A generous timeout: only the answering matters, not how fast it is.
        let server = h2_keep_alive_server(listener, Duration::from_millis(20), GUARD);
        let client = raw_h2_client(addr).await?;
        let mut pings = 0;
        while pings < ROUNDS {
            let Some(((_, kind, flags, _), payload)) = read_frame(&client).await? else {
                return Err(Error::msg(format!("closed after {pings} ping(s)")));
            };
            match (kind, flags & FLAG_ACK) {
                (FRAME_SETTINGS, 0) => write_frame(&client, FRAME_SETTINGS, FLAG_ACK, &[]).await?,
                (FRAME_PING, 0) => {
                    write_frame(&client, FRAME_PING, FLAG_ACK, &payload).await?;
                    pings += 1;
                }
                _ => {}
            }
        }
        let still_serving = !server.done();
        server.cancel();
        Ok::<_, Error>((pings, still_serving))
    })
    .expect("the exchange");

    assert_eq!(pings, ROUNDS);
    assert!(
        still_serving,
        "the connection ended although every PING was answered"
    );
}
