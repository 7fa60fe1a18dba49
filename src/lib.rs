//! # evloop
//!
//! An event loop for Rust with the programming model of Python's asyncio and Tornado's
//! IOLoop, on its own mio reactor.
//!
//! One loop runs on one thread. [`Runtime::block_on`] runs it until a future completes
//! (no `Send` bound); a [`LoopHandle`] — `Clone + Send + Sync` — schedules work on it
//! from anywhere: callbacks ([`LoopHandle::call_soon`],
//! [`call_soon_threadsafe`](LoopHandle::call_soon_threadsafe)), timers
//! ([`call_later`](LoopHandle::call_later), [`call_at`](LoopHandle::call_at)) and the
//! futures of [`time`]. Panics in callbacks are caught and reported to the loop's
//! exception handler; the loop keeps running.
//!
//! ```
//! use std::time::Duration;
//! use evloop::{LoopHandle, Runtime};
//!
//! let rt = Runtime::new()?;
//! let loop_ = rt.handle();
//!
//! // A worker thread hands its result to the loop; the loop wakes up for it.
//! let worker = {
//!     let loop_ = loop_.clone();
//!     std::thread::spawn(move || {
//!         let answer = 6 * 7;
//!         loop_.call_soon_threadsafe(move || {
//!             println!("the worker says {answer}");
//!             LoopHandle::current().stop();
//!         });
//!     })
//! };
//! loop_.call_later(Duration::from_secs(60), || unreachable!("stopped long before"));
//! rt.run_forever();
//! worker.join().unwrap();
//!
//! let stats = loop_.stats();
//! assert_eq!(stats.callbacks_run, 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Guarantees
//!
//! * **Tick semantics (L6).** Each iteration polls the reactor (not blocking when work is
//!   ready), moves expired timers to the ready queue in `(deadline, insertion order)`,
//!   then runs exactly the items that were ready when the run phase began; anything
//!   scheduled meanwhile runs in a later iteration. With I/O sources registered, the
//!   reactor is polled again (without blocking) every 64 items.
//! * **Timers** never fire early, fire in `(deadline, insertion order)`, and are precise
//!   to well under a millisecond (a timerfd, not epoll's millisecond timeout).
//! * **Wake-ups are coalesced.** Scheduling from another thread while the loop is busy
//!   makes no system call; [`LoopStats::wakeups`] counts the ones that were needed.
//! * **Closed loops are safe.** After the [`Runtime`] is dropped, scheduling through a
//!   handle never runs the callback and never panics: the handle is already cancelled.
//!   A pending future that something outside the loop waits on is completed with
//!   `Error::InvalidState("event loop is closed")`, so nothing waits forever.
//! * **User code cannot break the loop.** Wakers, callbacks, handlers and destructors
//!   never run while evloop holds a lock or a borrow; a panic in one of them is caught
//!   per item and reported to the exception handler (which writes to stderr when no
//!   `log` logger is installed), and the rest of its batch still runs; chains of 100 000
//!   tasks or futures are cancelled and freed in bounded stack; every wait registration
//!   is removed when its future is dropped; dropping a `Runtime` never aborts.
//!
//! ## Streams and names
//!
//! [`net`] has TCP, UDP and Unix sockets; [`net::lookup_host`] resolves names on the
//! blocking pool and [`net::TcpStream::connect`] races a name's addresses with Happy
//! Eyeballs; every connect, bind and accept error names its address. [`io`] has
//! asyncio's `StreamReader` / `StreamWriter` methods on [`io::BufReader`] /
//! [`io::BufWriter`], and [`net::start_server`] / [`net::open_connection`] hand them
//! out per connection — a line server (the README's):
//!
//! ```no_run
//! #[evloop::main]
//! async fn main() -> Result<(), evloop::Error> {
//!     let server = evloop::net::start_server(|mut reader, mut writer| async move {
//!         loop {
//!             let line = reader.readline().await?;        // b"" once the client is done
//!             if line.is_empty() {
//!                 return Ok::<_, evloop::Error>(());
//!             }
//!             writer.write(&line.to_ascii_uppercase())?;  // sent once the task waits
//!             writer.drain().await?;                      // backpressure past 64 KiB
//!         }
//!     }, "127.0.0.1:7878").await?;
//!     server.serve_forever().await
//! }
//! ```
//!
//! ## Files
//!
//! [`fs`] has tokio::fs's functions on the blocking pool (`read`, `write`, `copy`,
//! `rename`, `read_dir` as a stream, …) and [`fs::File`], an open file read ahead up to
//! 1 MiB per pool job and written behind, with futures-io's `AsyncRead` / `AsyncWrite` /
//! `AsyncSeek` (and tokio's with `tokio-io`); every error names its path.
//!
//! ## Subprocesses
//!
//! [`process`] has asyncio's `create_subprocess_exec` / `_shell` as std's builder,
//! [`process::Command`], and [`process::create_subprocess_shell`]: a
//! [`process::Child`]'s exit is awaited through a pidfd on the reactor (`SIGCHLD` as the
//! fallback; no thread per child, no zombie left), its piped streams are evloop streams,
//! and [`process::Child::communicate`] feeds and drains them at once.
//!
//! ```
//! evloop::run(async {
//!     let out = evloop::process::Command::new("echo").arg("hi").output().await?;
//!     assert_eq!(out.stdout, b"hi\n");
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Locks and queues
//!
//! [`sync`] has asyncio's primitives with asyncio's semantics — `Mutex` / `Lock`,
//! `Event`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Barrier`, `Queue`,
//! `LifoQueue`, `PriorityQueue` — loop-local (`!Send`, no atomics), FIFO-fair, and
//! cancellation-safe (a lock, permit or item handed to a task that is cancelled goes to
//! the next waiter); and thread-safe channels and locks for tasks of different loops
//! and plain threads (`mpsc`, `broadcast`, `watch`, `SharedMutex`, `SharedSemaphore`,
//! `SharedEvent`).
//!
//! ## Task groups
//!
//! [`TaskGroup`] is asyncio's `TaskGroup` (structured concurrency): children spawned
//! with `tg.spawn(coro)?` are awaited by `tg.join().await`; the first child that fails
//! cancels the others and interrupts the parent, and `join` returns every failure in
//! an [`ExceptionGroup`] (`Error::Group`). `tg.join_next().await` hands the results
//! out as they come, as tokio's `JoinSet` does; dropping a group cancels its children.
//! [`time::timeout_scope`] is asyncio's `timeout()` (the deadline cancels the task, so
//! the body can clean up); [`wait`] and [`as_completed`] wait on many futures.
//!
//! ## Context, introspection and fairness
//!
//! [`ContextVar`] is asyncio's `contextvars` (a task starts with a copy of its
//! creator's context; callbacks run in the context they were scheduled in).
//! [`LoopHandle::dump_tasks`] / [`TaskRef::info`] say what every task waits on. A task
//! whose awaits keep completing without suspending is made to yield after a budget of
//! 128 (tokio's), so it cannot starve timers and I/O; [`task::unconstrained`] opts out.
//!
//! ## More than one core
//!
//! [`LoopGroup`] runs n loops on n threads (thread-per-core); listeners bound with
//! `ListenOptions { reuse_port: true, .. }` on every loop let the kernel spread
//! connections, and futures, tasks and `gather` work across the loops.
//!
//! ## Cargo features
//!
//! * `hyper` — runs [hyper](https://docs.rs/hyper) 1.x servers and clients on the loop:
//!   `hyper::rt::{Read, Write}` on the stream sockets, executors and a timer (module
//!   `hyper`). No tokio runtime is compiled.
//! * `tokio-io` — `tokio::io::{AsyncRead, AsyncWrite}` on every stream and split half
//!   (and `AsyncSeek` too on [`fs::File`]), so crates written against tokio's traits
//!   (tokio-util's codecs, tokio-rustls, tokio-tungstenite) run on the loop; only
//!   tokio's trait definitions are compiled (no tokio feature at all).
//! * `tls` — module `tls`: `TlsAcceptor` / `TlsConnector` / `TlsStream` over rustls
//!   (re-exported as `tls::rustls`) through futures-rustls, with the ring crypto
//!   provider; ALPN, `close_notify` on `shutdown`, handshake errors naming the peer, and
//!   hyper's and tokio's traits on `TlsStream` with `hyper` / `tokio-io`. The module
//!   docs serve and fetch over TLS in a dozen lines.
//!
//! The architecture (how callbacks, wake-ups, timers and I/O events travel through the
//! loop) is described in `ARCHITECTURE.md`; the README has a table of where evloop
//! deliberately differs from asyncio.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::undocumented_unsafe_blocks, unreachable_pub)]

mod callback;
mod chain;
mod closing;
mod context;
mod contextvar;
mod core;
mod error;
mod exception;
mod exception_group;
mod executor;
mod flat_drop;
pub mod fs;
mod future;
mod gather;
mod group;
mod handle;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
mod ids;
pub mod io;
mod loom;
mod loop_ref;
pub mod net;
mod park;
pub mod process;
mod reactor;
mod runtime;
mod self_arc;
mod shared;
pub mod signal;
mod stats;
pub mod sync;
mod sys;
pub mod task;
pub mod time;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
mod wait;
mod watch;
mod wheel;

pub use callback::{Handle, TimerHandle};
pub use chain::{
    WaitFor, chain, chain_future, copy_future, future_add_done_callback,
    future_set_exception_unless_cancelled, future_set_panic, future_set_result_unless_cancelled,
    wait_for,
};
pub use contextvar::{ContextVar, Token};
pub use error::{CancelledError, Error, Exception, InvalidStateError, PanicError, TimeoutError};
pub use evloop_macros::{main, run_on_executor, test};
pub use exception::{ExceptionContext, ExceptionSource};
pub use exception_group::ExceptionGroup;
#[doc(hidden)]
pub use executor::__private as __executor_private;
pub use executor::{Executor, JobHandle, spawn_blocking};
pub use future::{CallbackId, Future, Take};
#[doc(hidden)]
pub use gather::__private as __gather_private;
pub use gather::{gather, gather_results};
pub use group::LoopGroup;
pub use handle::LoopHandle;
pub use runtime::{Builder, Runtime, run};
pub use stats::LoopStats;
pub use task::{Task, TaskGroup, TaskRef, YieldNow, create_task, current_task, shield, yield_now};
pub use wait::{AsCompleted, AsCompletedNext, ReturnWhen, Wait, as_completed, wait};
