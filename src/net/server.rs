//! asyncio's `open_connection` and `start_server` on evloop's buffered streams (N7):
//! [`open_connection`], [`start_server`] and [`Server`].
//!
//! Owns: the accept loop tasks, the set of connection tasks and the `Server` handle's
//! state. Must not touch: the buffers (`crate::io`) or sockets beyond the public
//! `TcpListener` / `TcpStream` API.
//!
//! Each listening socket has an accept loop task. Each accepted connection is split
//! into a [`BufReader`] and a [`BufWriter`] and handed to a new task running the
//! handler; the server keeps a reference to every such task while it runs (for
//! [`close_clients`](Server::close_clients)) and drops it when the task ends. A
//! handler's error is the task's: unretrieved, it goes to the loop's exception handler
//! as asyncio logs an exception of `client_connected_cb`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::addr::{ToSocketAddrs, resolve};
use super::stream::{OwnedReadHalf, OwnedWriteHalf};
use super::{ListenOptions, TcpListener, TcpStream};
use crate::io::{BufReader, BufWriter};
use crate::sync::Event;
use crate::{Error, TaskRef};

/// The reading side of a connection from [`open_connection`] or [`start_server`].
pub type StreamReader = BufReader<OwnedReadHalf<TcpStream>>;
/// The writing side of a connection from [`open_connection`] or [`start_server`].
pub type StreamWriter = BufWriter<OwnedWriteHalf<TcpStream>>;

/// Connects to `addr` (as [`TcpStream::connect`]: Happy Eyeballs for several addresses)
/// and returns a buffered reader and writer over its halves (asyncio's
/// `open_connection`).
///
/// ```
/// evloop::run(async {
///     let server = evloop::net::start_server(
///         |mut reader: evloop::net::StreamReader, mut writer: evloop::net::StreamWriter| async move {
///             let line = reader.readline().await?;
///             writer.write(&line.to_ascii_uppercase())?;
///             writer.close().await?;
///             Ok::<_, std::io::Error>(())
///         },
///         "127.0.0.1:0",
///     )
///     .await?;
///     let (mut reader, mut writer) = evloop::net::open_connection(server.sockets()[0]).await?;
///     writer.write(b"hello\n")?;
///     assert_eq!(reader.readline().await?, b"HELLO\n");
///     server.close();
///     server.wait_closed().await?;
///     Ok::<_, evloop::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// As [`TcpStream::connect`].
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn open_connection(addr: impl ToSocketAddrs) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    Ok((BufReader::new(read), BufWriter::new(write)))
}

struct State {
    accepting: Vec<TaskRef>,
    /// Accept loops not yet ended (each holds its listening socket).
    accept_live: usize,
    sockets: Vec<SocketAddr>,
    /// The connection tasks; `None` while one is being created.
    clients: slab::Slab<Option<TaskRef>>,
    closed: bool,
    /// Set by `close()`.
    stopped: Event,
    /// Set once closed and every connection task has ended.
    idle: Event,
}

/// A TCP server from [`start_server`] (asyncio's `Server`): it accepts on its sockets
/// until [`close`](Self::close), running the handler in a task per connection.
///
/// `Clone` shares the same server. Dropping the handles does not stop it (as an asyncio
/// server keeps serving while its loop runs): call `close`.
#[derive(Clone)]
pub struct Server {
    state: Rc<RefCell<State>>,
}

/// Listens on every address `addr` resolves to and serves each connection with
/// `handler(reader, writer)` in a task of its own (asyncio's `start_server`). Serving
/// starts at once.
///
/// `TCP_NODELAY` is set on accepted connections (asyncio does so too). Accept errors
/// that concern one connection (aborted, reset) or the system's resources (`EMFILE`,
/// with the listener's back-off) are logged and accepting goes on; any other stops that
/// socket's accept loop with an error log.
///
/// # Errors
///
/// Resolution and bind errors ([`AddrError`](super::AddrError)); if one of several
/// addresses fails to bind, the ones already bound are closed.
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn start_server<H, Fut, E>(handler: H, addr: impl ToSocketAddrs) -> io::Result<Server>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Into<Error> + 'static,
{
    start_server_with(handler, addr, ListenOptions::default()).await
}

/// [`start_server`] with explicit [`ListenOptions`] — e.g. `reuse_port`, so that a
/// server on each loop of a [`LoopGroup`](crate::LoopGroup) shares the port (asyncio's
/// `reuse_port=`, `backlog=`).
///
/// # Errors
///
/// As [`start_server`].
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn start_server_with<H, Fut, E>(
    handler: H,
    addr: impl ToSocketAddrs,
    options: ListenOptions,
) -> io::Result<Server>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Into<Error> + 'static,
{
    let resolved = resolve(&addr, "bind").await?;
    let mut listeners = Vec::with_capacity(resolved.addrs.len());
    for a in resolved.addrs {
        listeners.push(TcpListener::bind_with(a, options.clone()).await?);
    }
    let mut sockets = Vec::with_capacity(listeners.len());
    for l in &listeners {
        sockets.push(l.local_addr()?);
    }
    let state = Rc::new(RefCell::new(State {
        accepting: Vec::new(),
        accept_live: 0,
        sockets,
        clients: slab::Slab::new(),
        closed: false,
        stopped: Event::new(),
        idle: Event::new(),
    }));
    let handler = Rc::new(handler);
    for listener in listeners {
        state.borrow_mut().accept_live += 1;
        // The guard owns the listener, so even an accept loop cancelled before its first
        // poll closes its socket and leaves the books.
        let leave = Leave {
            state: Rc::clone(&state),
            client: None,
            listener: Some(listener),
        };
        let (books, handler) = (Rc::clone(&state), Rc::clone(&handler));
        let task = crate::create_task(async move {
            let leave = leave;
            let listener = leave
                .listener
                .as_ref()
                .expect("the guard holds the listener");
            accept_loop(listener, books, handler).await
        });
        let task_ref = task.to_ref();
        drop(task);
        state.borrow_mut().accepting.push(task_ref);
    }
    Ok(Server { state })
}

async fn accept_loop<H, Fut, E>(
    listener: &TcpListener,
    state: Rc<RefCell<State>>,
    handler: Rc<H>,
) -> Result<(), Error>
where
    H: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Into<Error> + 'static,
{
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if super::is_cancellation(&e) => return Err(e.into()),
            Err(e) if transient(&e) => {
                log::warn!(target: "evloop", "start_server: {e}; accepting goes on");
                continue;
            }
            Err(e) => {
                log::error!(target: "evloop", "start_server: {e}; this socket stops accepting");
                return Ok(());
            }
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (reader, writer) = (BufReader::new(read), BufWriter::new(write));
        let key = state.borrow_mut().clients.insert(None);
        let leave = Leave {
            state: Rc::clone(&state),
            client: Some(key),
            listener: None,
        };
        let run = handler(reader, writer);
        let task = crate::create_task(async move {
            let _leave = leave;
            run.await.map_err(Into::into)
        });
        let task_ref = task.to_ref();
        drop(task);
        let mut s = state.borrow_mut();
        if let Some(slot) = s.clients.get_mut(key) {
            *slot = Some(task_ref);
        }
        // Otherwise the task already ended (an eager start) and left.
    }
}

/// Leaves the server's books when a connection task (`client: Some(key)`) or an
/// accept loop (`None`, holding its `listener`) ends or is dropped; the last one out
/// after `close` sets `idle`.
struct Leave {
    state: Rc<RefCell<State>>,
    client: Option<usize>,
    listener: Option<TcpListener>,
}

impl Drop for Leave {
    fn drop(&mut self) {
        // The socket is closed before the server can count as closed.
        drop(self.listener.take());
        let Ok(mut s) = self.state.try_borrow_mut() else {
            return;
        };
        let gone = match self.client {
            Some(key) => s.clients.try_remove(key),
            None => {
                s.accept_live -= 1;
                None
            }
        };
        drop(s);
        drop(gone);
        set_idle_if_done(&self.state);
    }
}

/// Sets `idle` once the server is closed and no accept loop or connection task is
/// left. The event is set outside the borrow (setting it wakes tasks).
fn set_idle_if_done(state: &RefCell<State>) {
    let idle = {
        let s = state.borrow();
        (s.closed && s.accept_live == 0 && s.clients.is_empty()).then(|| s.idle.clone())
    };
    if let Some(idle) = idle {
        idle.set();
    }
}

fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    let raw = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<super::AddrError>())
        .and_then(super::AddrError::raw_os_error)
        .or_else(|| e.raw_os_error());
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        raw,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
    )
}

impl Server {
    /// The addresses the server listens on (empty once closed).
    pub fn sockets(&self) -> Vec<SocketAddr> {
        let s = self.state.borrow();
        if s.closed {
            Vec::new()
        } else {
            s.sockets.clone()
        }
    }

    /// Whether the server still accepts connections.
    pub fn is_serving(&self) -> bool {
        !self.state.borrow().closed
    }

    /// Stops accepting: the accept loops are cancelled, and each closes its listening
    /// socket when it next runs (in the loop's next iteration; [`wait_closed`](Self::wait_closed)
    /// returns after that). Connections already accepted go on (asyncio's `close()`);
    /// see [`close_clients`](Self::close_clients).
    pub fn close(&self) {
        let mut s = self.state.borrow_mut();
        if s.closed {
            return;
        }
        s.closed = true;
        let accepting = std::mem::take(&mut s.accepting);
        let stopped = s.stopped.clone();
        drop(s);
        for task in &accepting {
            task.cancel();
        }
        drop(accepting);
        stopped.set();
        set_idle_if_done(&self.state);
    }

    /// Cancels every connection task (asyncio 3.13's `close_clients` closes their
    /// transports; here the handlers see the cancellation at their next await).
    pub fn close_clients(&self) {
        let clients: Vec<TaskRef> = {
            let s = self.state.borrow();
            s.clients.iter().filter_map(|(_, t)| t.clone()).collect()
        };
        for task in &clients {
            task.cancel();
        }
    }

    /// Waits until the server is closed (by [`close`](Self::close)); if the awaiting
    /// task is cancelled, closes the server and returns the cancellation (asyncio's
    /// `serve_forever`).
    ///
    /// # Errors
    ///
    /// `Error::Cancelled` when the awaiting task is cancelled.
    pub async fn serve_forever(&self) -> Result<(), Error> {
        let stopped = self.state.borrow().stopped.clone();
        match stopped.wait().await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.close();
                Err(e)
            }
        }
    }

    /// Waits until the server is closed and every connection task has ended (asyncio
    /// 3.12's `wait_closed`).
    ///
    /// # Errors
    ///
    /// `Error::Cancelled` when the awaiting task is cancelled.
    pub async fn wait_closed(&self) -> Result<(), Error> {
        let idle = self.state.borrow().idle.clone();
        idle.wait().await
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("Server")
                .field("sockets", &s.sockets)
                .field("serving", &!s.closed)
                .field("clients", &s.clients.len())
                .finish(),
            Err(_) => f.write_str("Server { .. }"),
        }
    }
}
