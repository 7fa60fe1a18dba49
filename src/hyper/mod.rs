//! hyper on evloop (SPEC §9 I2, feature `hyper`): the three pieces hyper 1.x asks a
//! runtime for, so HTTP/1 and HTTP/2 servers and clients run on the loop with no tokio.
//!
//! * **I/O** — `hyper::rt::Read` / `Write` are implemented directly on
//!   [`TcpStream`](crate::net::TcpStream), [`UnixStream`](crate::net::UnixStream) and the
//!   split halves ([`OwnedReadHalf`](crate::net::OwnedReadHalf) reads,
//!   [`OwnedWriteHalf`](crate::net::OwnedWriteHalf) writes): pass the stream itself to
//!   `serve_connection` / `handshake`, no wrapper. Reads go straight into hyper's
//!   uninitialised buffer; writes are vectored (`sendmsg`).
//! * **Executors** — [`LocalExec`] spawns hyper's background futures (HTTP/2 streams,
//!   client connections) as tasks on the loop running on the calling thread, with no
//!   `Send` bound; [`LoopExec`] spawns `Send` futures onto a given loop from any thread.
//! * **Timer** — [`Timer`] gives hyper sleeps on the loop's timer wheel
//!   (`header_read_timeout`, HTTP/2 keep-alive); `reset` moves the deadline of the same
//!   allocation.
//!
//! **Cancellation.** Cancelling the task that runs a connection is delivered at the
//! connection's next socket await as an `io::Error` wrapping `CancelledError`; hyper
//! returns it inside its own error, and `evloop::Error::new(hyper_error)` (or
//! `Error::from_boxed`) finds it in the source chain, so the task ends cancelled.
//!
//! Owns: the glue between hyper's runtime traits and evloop. Must not touch: sockets'
//! readiness (that is `net`) or the wheel (that is `time`). evloop's feature enables
//! hyper with no protocol features: the application's own `hyper` dependency chooses
//! `http1` / `http2` / `server` / `client`. (hyper's `http2` brings the `h2` crate, which
//! depends on tokio for its I/O traits only — no tokio runtime, reactor or timer.)
//!
//! A complete HTTP/1.1 exchange on one loop:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper::{Request, Response, service::service_fn};
//! use evloop::hyper::{LocalExec, Timer};
//! use evloop::net::{TcpListener, TcpStream};
//!
//! let body = evloop::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     evloop::create_task(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let hello = service_fn(|_req: Request<hyper::body::Incoming>| async {
//!             Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hi"))))
//!         });
//!         hyper::server::conn::http1::Builder::new()
//!             .timer(Timer)
//!             .serve_connection(stream, hello)
//!             .await
//!             .map_err(evloop::Error::new)
//!     });
//!
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(stream)
//!         .await
//!         .map_err(evloop::Error::new)?;
//!     hyper::rt::Executor::execute(&LocalExec, conn); // drives the connection
//!     let req = Request::get("/").body(Full::new(Bytes::new()))?;
//!     let resp = sender.send_request(req).await.map_err(evloop::Error::new)?;
//!     let body = resp.into_body().collect().await.map_err(evloop::Error::new)?;
//!     Ok::<_, evloop::Error>(body.to_bytes())
//! })?;
//! assert_eq!(body, "hi");
//! # Ok::<(), evloop::Error>(())
//! ```

mod exec;
mod io;
mod timer;

pub use exec::{LocalExec, LoopExec};
pub use timer::{Sleep, Timer};
