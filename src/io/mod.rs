//! Buffered streams with asyncio's `StreamReader` / `StreamWriter` methods (SPEC §15 N7).
//!
//! * [`BufReader`] — `readline`, `readuntil` (multi-byte separators), `readexactly`,
//!   `read(n)`, `at_eof`, a `limit` past which a line fails with [`LimitOverrun`]
//!   without losing data, and [`Lines`]; also tokio's / std's `read_line`,
//!   `read_until`, `read_exact` into caller-owned buffers, and futures-io's
//!   `AsyncRead` / `AsyncBufRead`.
//! * [`BufWriter`] — `write` (buffers; a background flusher sends what a task wrote
//!   once it suspends, coalesced), `drain` (backpressure at the high-water mark),
//!   `flush`, `close`.
//! * [`IncompleteRead`] and [`LimitOverrun`], carried inside `io::Error`s.
//! * With the `tokio-io` feature, `tokio::io::{AsyncRead, AsyncWrite}` on every evloop
//!   stream and split half (N8), so tokio-util's codecs, tokio-rustls and
//!   tokio-tungstenite run on the loop; only tokio's trait definitions are compiled.
//!
//! Both work over any futures-io reader or writer; over evloop's streams every wait is
//! a loop-native await (cancellation, budget). `net::open_connection` and
//! `net::start_server` hand out a pair of them per connection.
//!
//! Owns: the buffers and their rules. Must not touch: the loop's internals — it is built
//! on the streams' futures-io traits, `create_task` (the writer's flusher) and the task
//! module's loop-native await helpers (cancel delivery, the cooperative budget).

mod error;
mod reader;
#[cfg(feature = "tokio-io")]
mod tokio_io;
mod writer;

pub use error::{IncompleteRead, LimitOverrun};
pub use reader::{BufReader, DEFAULT_LIMIT, Lines};
pub use writer::{BufWriter, DEFAULT_HIGH_WATER};
