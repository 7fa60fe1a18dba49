//! Networking on the loop (SPEC §7): TCP, UDP and Unix sockets.
//!
//! Owns: the socket types and their options. Must not touch: mio — sockets are std /
//! socket2 sockets registered by fd with the reactor of the loop they are created on
//! (`source`), which caches their readiness (edge-triggered) and clears it when a
//! syscall reports `WouldBlock` or a stream transfer proves the queue drained (small
//! stream reads learn that through a scratch buffer, `scratch`).
//!
//! * Every wait (`accept`, `read`, `write`, `readable`, …) is a loop-native await: a
//!   cancelled task blocked in one resumes with an `io::Error` wrapping
//!   [`CancelledError`](crate::CancelledError), which `?` into [`Error`](crate::Error)
//!   turns back into `Error::Cancelled` (T3).
//! * Dropping a pending read future loses no data; halves from `into_split` let one task
//!   read while another writes (N4).
//! * Errors are returned, never swallowed; `EMFILE` / `ENFILE` on accept back off instead
//!   of spinning; writes never raise SIGPIPE (N5). A connect, bind, accept or lookup
//!   error names its address, path or name ([`AddrError`]) and keeps its `ErrorKind`
//!   (N6).
//! * Names are looked up on the blocking pool ([`lookup_host`]); a TCP connect to a
//!   name with several addresses races them with Happy Eyeballs (RFC 8305, `happy`).
//! * Stream types implement `futures_io::AsyncRead` / `AsyncWrite` (I1), so the
//!   `futures-util` extension traits and codecs work on them.
//!
//! An I/O object is driven by the reactor of the loop it was created on: it can be
//! used from other loops' tasks, but only while its own loop runs. Once that loop is
//! closed (its `Runtime` dropped), an operation that would have to wait fails with an
//! `io::Error` instead of waiting forever.

mod addr;
mod error;
mod happy;
#[cfg(any(feature = "hyper", feature = "tokio-io"))]
pub(crate) mod poll_traits;
pub(crate) mod scratch;
mod server;
mod source;
pub(crate) use source::Registration;
pub(crate) mod stream;
mod tcp;
mod udp;
mod unix;

pub use addr::{ToSocketAddrs, lookup_host};
pub use error::AddrError;
pub(crate) use error::is_cancellation;
pub use server::{
    Server, StreamReader, StreamWriter, open_connection, start_server, start_server_with,
};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, ReuniteError, SplitStream};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Options of a listening TCP socket for [`TcpListener::bind_with`].
///
/// ```
/// use evloop::net::{ListenOptions, TcpListener};
///
/// evloop::run(async {
///     let options = ListenOptions { reuse_port: true, backlog: 128, ..Default::default() };
///     let a = TcpListener::bind_with("127.0.0.1:0", options.clone()).await?;
///     // With SO_REUSEPORT a second listener may share the port (one per loop).
///     let b = TcpListener::bind_with(a.local_addr()?, options).await?;
///     assert_eq!(a.local_addr()?, b.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// `SO_REUSEADDR` (default `true`): rebind right after a restart.
    pub reuse_address: bool,
    /// `SO_REUSEPORT` (default `false`): several listeners share the port and the
    /// kernel spreads connections among them.
    pub reuse_port: bool,
    /// The `listen(2)` backlog (default 1024).
    pub backlog: i32,
    /// `IPV6_V6ONLY` for IPv6 addresses (`None`: the system default).
    pub only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            reuse_address: true,
            reuse_port: false,
            backlog: 1024,
            only_v6: None,
        }
    }
}

const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// After `EMFILE` / `ENFILE` on accept the listener stays readable (the connection is
/// still pending), so retrying at once would spin: the next accept waits first.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    /// (retry not before, current delay)
    state: Mutex<Option<(Instant, Duration)>>,
}

impl AcceptBackoff {
    fn until(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|(until, _)| until)
    }

    /// Waits out a back-off in progress (a loop-native sleep: cancellable).
    pub(crate) async fn wait(&self) -> io::Result<()> {
        if let Some(until) = self.until().filter(|u| *u > Instant::now()) {
            crate::time::sleep_until(until)
                .await
                .map_err(io::Error::from)?;
        }
        Ok(())
    }

    /// Records the outcome of an accept: descriptor exhaustion grows the back-off,
    /// success resets it. The result is passed through.
    pub(crate) fn record<T>(&self, result: io::Result<T>) -> io::Result<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(_) => *state = None,
            Err(e) if crate::sys::is_fd_exhaustion(e) => {
                let delay = state.map_or(BACKOFF_START, |(_, d)| (d * 2).min(BACKOFF_MAX));
                *state = Some((Instant::now() + delay, delay));
                log::warn!(target: "evloop", "accept: {e}; retrying in {} ms", delay.as_millis());
            }
            Err(_) => {}
        }
        result
    }
}
