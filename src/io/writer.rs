//! [`BufWriter`]: asyncio's `StreamWriter` — `write`, `drain`, `close` and the write
//! buffer's water marks — over any `futures_io::AsyncWrite` (N7).
//!
//! Owns: the write buffer, the water marks and the flusher task that empties the buffer
//! in the background. Must not touch: the socket's readiness — every write goes through
//! the inner writer's `poll_write`.
//!
//! asyncio's transport sends what `write()` is given as soon as it can and keeps the
//! rest, which the loop sends as the socket becomes writable; `drain()` waits only
//! while the backlog is above the high-water mark. evloop does the same with no
//! transport object, and coalesces:
//!
//! 1. `write(data)` appends to the buffer and makes sure a *flusher* task exists on the
//!    loop. Nothing is sent yet, so everything a task writes before it next suspends
//!    (a batch of pipelined replies, a header and its body) leaves in one `send` — the
//!    flusher runs in the same loop iteration, right after the writing task suspends.
//!    (asyncio's transport sends each `write` at once; tokio's `write_all` too, unless
//!    the program adds a `BufWriter` and flushes it by hand.)
//! 2. The flusher owns the job of writing the buffer: it polls the inner writer with
//!    its own waker, so it sleeps on the socket's writability, and ends when the buffer
//!    is empty (a later backlog creates a new one). It wakes a `drain` once the backlog
//!    is at the low-water mark, and a `flush` or `close` once it is empty.
//! 3. `close()` (or dropping the writer) asks for the write side to be shut down once
//!    everything buffered is written (`poll_close`); dropping does not wait for it.
//!
//! State rules: the inner writer is taken out of the shared cell while it is polled and
//! put back after, so no borrow is held while the inner writer (which may be user code)
//! runs; a `write` made meanwhile (from that code) only appends to the buffer. Wakers
//! are taken out of the cell before they are woken, each under a catch. An error from
//! the inner writer is kept: the buffered bytes are dropped (they cannot be sent) and
//! every later `write`, `drain`, `flush` and `close` fails with it; a panic while
//! flushing counts as such an error. Bytes buffered imply a flusher, with two lapses
//! that heal themselves: a flusher whose task was cancelled stops and the next `drain`,
//! `flush` or `close` starts another, and a flusher dropped unfinished (its loop shut
//! down) first makes one last non-blocking attempt to send what is buffered.

use std::cell::RefCell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_io::AsyncWrite;

use crate::task::coop;

/// asyncio's default high-water mark (64 KiB).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// A buffer larger than this is freed once it has been written out.
const KEEP_CAPACITY: usize = 64 * 1024;

struct Shared<W> {
    /// `None` while someone polls it (or after the shutdown).
    io: Option<W>,
    buf: Vec<u8>,
    /// `buf[head..]` is still to be written.
    head: usize,
    high: usize,
    low: usize,
    /// A flusher task exists (it owns writing `buf`).
    flushing: bool,
    /// Shut the write side down once the buffer is empty.
    closing: bool,
    /// The shutdown is done (or failed).
    closed: bool,
    /// The first error, reported once; then its kind and text for later calls.
    error: Option<io::Error>,
    failed: Option<(io::ErrorKind, String)>,
    /// The task waiting in `drain` (until the backlog is at most `Some(low)`) or in
    /// `flush` / `close` (`None`: until the buffer is empty and the flusher is done).
    waiter: Option<(Waker, Option<usize>)>,
}

impl<W> Shared<W> {
    fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    fn fail(&mut self, e: io::Error) {
        self.failed = Some((e.kind(), e.to_string()));
        self.error = Some(e);
        self.buf = Vec::new();
        self.head = 0;
    }

    fn take_error(&mut self) -> Option<io::Error> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        let (kind, text) = self.failed.as_ref()?;
        Some(io::Error::new(
            *kind,
            format!("{text} (an earlier write failed)"),
        ))
    }

    /// The waiter to wake now that the backlog is `pending()` (and the flusher done
    /// or not).
    fn due_waiter(&mut self) -> Option<Waker> {
        let done = !self.flushing && self.pending() == 0;
        let due = match &self.waiter {
            None => false,
            Some(_) if self.failed.is_some() => true,
            Some((_, None)) => done,
            Some((_, Some(low))) => self.pending() <= *low,
        };
        if due {
            self.waiter.take().map(|(w, _)| w)
        } else {
            None
        }
    }

    fn append(&mut self, data: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }
}

/// A buffered writer with asyncio's `StreamWriter` methods: [`write`](Self::write)
/// (buffers, never waits; the buffer goes out once the task suspends),
/// [`drain`](Self::drain) (waits while the backlog is above the high-water mark),
/// [`flush`](Self::flush) (waits until everything is written) and
/// [`close`](Self::close).
///
/// The buffer is written in the background by a task on the writer's loop, so bytes
/// given to `write` go out even if the program never calls `drain` — as with asyncio's
/// transports. Used on a loop thread only (it is `!Send`).
///
/// ```
/// use evloop::io::{BufReader, BufWriter};
///
/// evloop::run(async {
///     let (a, b) = evloop::net::UnixStream::pair()?;
///     let mut writer = BufWriter::new(a);
///     writer.write(b"hello\n")?;
///     writer.write(b"world\n")?;
///     writer.drain().await?; // below the high-water mark: returns at once
///     let mut reader = BufReader::new(b);
///     assert_eq!(reader.readline().await?, b"hello\n");
///     assert_eq!(reader.readline().await?, b"world\n");
///     writer.close().await?; // flushed, then the write side is shut down
///     assert!(reader.readline().await?.is_empty());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct BufWriter<W: AsyncWrite + Unpin + 'static> {
    shared: Rc<RefCell<Shared<W>>>,
}

impl<W: AsyncWrite + Unpin + 'static> BufWriter<W> {
    /// A writer with asyncio's water marks (high 64 KiB, low 16 KiB).
    pub fn new(inner: W) -> BufWriter<W> {
        BufWriter {
            shared: Rc::new(RefCell::new(Shared {
                io: Some(inner),
                buf: Vec::new(),
                head: 0,
                high: DEFAULT_HIGH_WATER,
                low: DEFAULT_HIGH_WATER / 4,
                flushing: false,
                closing: false,
                closed: false,
                error: None,
                failed: None,
                waiter: None,
            })),
        }
    }

    /// Sets the water marks (asyncio's `transport.set_write_buffer_limits`): `drain`
    /// waits while more than `high` bytes are buffered, until at most `low` are.
    /// `low = None` means `high / 4`, as asyncio.
    ///
    /// # Panics
    ///
    /// If `low` is above `high` (asyncio raises `ValueError`).
    pub fn set_write_buffer_limits(&mut self, high: usize, low: Option<usize>) {
        let low = low.unwrap_or(high / 4);
        assert!(
            low <= high,
            "BufWriter::set_write_buffer_limits: low ({low}) must not exceed high ({high})"
        );
        let mut s = self.shared.borrow_mut();
        s.high = high;
        s.low = low;
    }

    /// The bytes buffered and not yet written (asyncio's
    /// `transport.get_write_buffer_size()`).
    pub fn buffer_size(&self) -> usize {
        self.shared.borrow().pending()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closing(&self) -> bool {
        self.shared.borrow().closing
    }

    /// Writes `data` into the buffer, which a task on this loop writes to the inner
    /// writer once the calling task suspends (what it writes until then goes out
    /// together). Never waits; call [`drain`](Self::drain) to apply backpressure.
    ///
    /// # Errors
    ///
    /// The error an earlier write or flush met (the connection is broken: nothing more
    /// is sent), or `BrokenPipe` after [`close`](Self::close).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread (the flusher is a task of the current
    /// loop).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.shared.borrow_mut();
        if let Some(e) = s.take_error() {
            return Err(e);
        }
        if s.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "BufWriter::write after close()",
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        s.append(data);
        self.ensure_flusher(s)
    }

    /// Makes sure a flusher exists while bytes are buffered (or a shutdown is due).
    /// The borrow is released before the task is created: with eager tasks its first
    /// poll runs inside `create_task`.
    fn ensure_flusher(&self, mut s: std::cell::RefMut<'_, Shared<W>>) -> io::Result<()> {
        let due = s.pending() > 0 || (s.closing && !s.closed);
        if s.flushing || !due {
            return Ok(());
        }
        s.flushing = true;
        drop(s);
        drop(crate::create_task(Flusher {
            shared: Rc::clone(&self.shared),
            done: false,
        }));
        Ok(())
    }

    /// Waits while more than the high-water mark is buffered, until at most the
    /// low-water mark is (asyncio's `drain()`); returns at once otherwise. A
    /// loop-native await: a cancelled task resumes at once with the cancellation.
    ///
    /// # Errors
    ///
    /// The inner writer's error (kept for every later call); an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled.
    pub async fn drain(&mut self) -> io::Result<()> {
        Flushed::new(self, false).await
    }

    /// Waits until everything buffered has been written to the inner writer.
    ///
    /// # Errors
    ///
    /// As [`drain`](Self::drain).
    pub async fn flush(&mut self) -> io::Result<()> {
        Flushed::new(self, true).await
    }

    /// Writes out everything buffered, then shuts the write side down (`poll_close`:
    /// on a socket, the peer reads the end of the stream). Later writes fail.
    ///
    /// # Errors
    ///
    /// As [`drain`](Self::drain), and the shutdown's error.
    pub async fn close(&mut self) -> io::Result<()> {
        {
            let mut s = self.shared.borrow_mut();
            s.closing = true;
            self.ensure_flusher(s)?;
        }
        Flushed::new(self, true).await
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>, empty: bool) -> Poll<io::Result<()>> {
        crate::task::budget::budgeted(cx, |cx| {
            if let Some(cancelled) = coop::take_cancel() {
                let old = self.shared.borrow_mut().waiter.take();
                drop(old);
                return Poll::Ready(Err(io::Error::from(cancelled)));
            }
            let mut s = self.shared.borrow_mut();
            if let Some(e) = s.take_error() {
                return Poll::Ready(Err(e));
            }
            if !s.flushing && (s.pending() > 0 || (s.closing && !s.closed)) {
                // The flusher stopped early (its task was cancelled): start another.
                if let Err(e) = self.ensure_flusher(s) {
                    return Poll::Ready(Err(e));
                }
                s = self.shared.borrow_mut();
            }
            let done = !s.flushing && s.pending() == 0;
            if done || (!empty && s.pending() <= s.high) {
                let old = s.waiter.take();
                drop(s);
                drop(old);
                return Poll::Ready(Ok(()));
            }
            let until = if empty { None } else { Some(s.low) };
            let old = s.waiter.replace((cx.waker().clone(), until));
            drop(s);
            drop(old);
            crate::task::waiting_on_sync("BufWriter");
            Poll::Pending
        })
    }
}

/// A wait of `drain` (`empty: false`) or `flush` / `close` (`empty: true`). Dropped
/// while registered, it takes its waker back out of the writer (rule 4: a waiter's
/// registration goes with it).
struct Flushed<'a, W: AsyncWrite + Unpin + 'static> {
    writer: &'a mut BufWriter<W>,
    empty: bool,
}

impl<'a, W: AsyncWrite + Unpin + 'static> Flushed<'a, W> {
    fn new(writer: &'a mut BufWriter<W>, empty: bool) -> Self {
        Flushed { writer, empty }
    }
}

impl<W: AsyncWrite + Unpin + 'static> std::future::Future for Flushed<'_, W> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writer.poll_wait(cx, this.empty)
    }
}

impl<W: AsyncWrite + Unpin + 'static> Drop for Flushed<'_, W> {
    fn drop(&mut self) {
        // The slot holds only this wait's waker (`&mut` makes it the only wait).
        let old = self
            .writer
            .shared
            .try_borrow_mut()
            .ok()
            .and_then(|mut s| s.waiter.take());
        drop(old);
    }
}

/// The flusher task's future.
///
/// * A panic in the inner writer (or in a waker it wakes) is caught here: the writer is
///   marked failed, so every later call reports it instead of waiting for a flusher that
///   is gone, the waiter is woken, and the panic goes on to the task (rule 2).
/// * Dropped before it finished — cancelled with its loop at shutdown, or before its
///   first poll — it makes one last non-blocking attempt to write what is buffered, so
///   the last bytes of a program that writes and returns are not lost.
struct Flusher<W: AsyncWrite + Unpin + 'static> {
    shared: Rc<RefCell<Shared<W>>>,
    done: bool,
}

impl<W: AsyncWrite + Unpin + 'static> std::future::Future for Flusher<W> {
    type Output = Result<(), crate::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = &this.shared;
        match catch_unwind(AssertUnwindSafe(|| poll_flusher(shared, cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.done = true;
                Poll::Ready(Ok(()))
            }
            Err(payload) => {
                this.done = true;
                let waiter = shared.try_borrow_mut().ok().and_then(|mut s| {
                    s.flushing = false;
                    if s.failed.is_none() {
                        s.fail(io::Error::other("BufWriter: a panic while flushing"));
                    }
                    s.waiter.take().map(|(w, _)| w)
                });
                crate::sync::catch::wake_one(waiter);
                resume_unwind(payload)
            }
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> Drop for Flusher<W> {
    fn drop(&mut self) {
        if !self.done {
            last_attempt(&self.shared);
        }
    }
}

/// One non-blocking pass over the buffer (a no-op waker: nothing waits), for a flusher
/// that will not run again; whatever the inner writer does not take stays buffered.
fn last_attempt<W: AsyncWrite + Unpin>(shared: &RefCell<Shared<W>>) {
    let Ok(mut s) = shared.try_borrow_mut() else {
        return;
    };
    s.flushing = false;
    if s.failed.is_some() || s.pending() == 0 {
        return;
    }
    let Some(mut io) = s.io.take() else {
        return;
    };
    let buf = std::mem::take(&mut s.buf);
    let mut head = std::mem::replace(&mut s.head, 0);
    drop(s);
    let mut cx = Context::from_waker(Waker::noop());
    // In a drop: a panicking inner writer must not become a panic during unwinding.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        while head < buf.len() {
            match Pin::new(&mut io).poll_write(&mut cx, &buf[head..]) {
                Poll::Ready(Ok(n)) if n > 0 => head += n.min(buf.len() - head),
                _ => break,
            }
        }
    }));
    if let Ok(mut s) = shared.try_borrow_mut() {
        s.io = Some(io);
        let meanwhile = std::mem::replace(&mut s.buf, buf);
        s.head = head;
        s.buf.extend_from_slice(&meanwhile);
    }
}

/// The flusher's poll: writes the buffer until it is empty (then shuts down if asked),
/// the inner writer blocks, or it fails.
fn poll_flusher<W: AsyncWrite + Unpin>(
    shared: &RefCell<Shared<W>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        let mut s = shared.borrow_mut();
        if s.failed.is_some() || (s.pending() == 0 && (!s.closing || s.closed)) {
            s.flushing = false;
            if s.pending() == 0 {
                s.head = 0;
                s.buf.clear();
                if s.buf.capacity() > KEEP_CAPACITY {
                    s.buf = Vec::new();
                }
            }
            let waiter = s.due_waiter();
            drop(s);
            crate::sync::catch::wake_one(waiter);
            return Poll::Ready(());
        }
        let Some(mut io) = s.io.take() else {
            // Someone else polls it right now (a `write` from inside the inner
            // writer's own code); come back.
            drop(s);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        if s.pending() == 0 {
            // Closing: everything is written; shut the write side down.
            drop(s);
            let r = Pin::new(&mut io).poll_close(cx);
            let mut s = shared.borrow_mut();
            match r {
                Poll::Pending => {
                    s.io = Some(io);
                    return Poll::Pending;
                }
                Poll::Ready(r) => {
                    s.closed = true;
                    if let Err(e) = r {
                        s.fail(e);
                    }
                    drop(s);
                    // The inner writer is dropped outside the borrow.
                    drop(io);
                    continue;
                }
            }
        }
        // While the buffer is out, the cell holds an empty one (and `head` 0) that a
        // `write` from the inner writer's own code appends to.
        let buf = std::mem::take(&mut s.buf);
        let head = std::mem::replace(&mut s.head, 0);
        drop(s);
        let r = Pin::new(&mut io).poll_write(cx, &buf[head..]);
        let mut s = shared.borrow_mut();
        s.io = Some(io);
        let meanwhile = std::mem::replace(&mut s.buf, buf);
        s.head = head;
        s.buf.extend_from_slice(&meanwhile);
        match r {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(0)) => s.fail(write_zero()),
            Poll::Ready(Err(e)) if crate::net::is_cancellation(&e) => {
                // The flusher's own task was cancelled: stop, keeping the bytes (the
                // next write or wait starts another flusher).
                s.flushing = false;
                return Poll::Ready(());
            }
            Poll::Ready(Ok(n)) => {
                let n = n.min(s.pending());
                s.head += n;
                let waiter = s.due_waiter();
                drop(s);
                crate::sync::catch::wake_one(waiter);
            }
            Poll::Ready(Err(e)) => s.fail(e),
        }
    }
}

fn write_zero() -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        "BufWriter: the writer accepted no bytes",
    )
}

impl<W: AsyncWrite + Unpin + 'static> Drop for BufWriter<W> {
    /// Whatever is buffered is still written, and the write side then shut down
    /// (`poll_close`: a TLS stream's `close_notify`), by the flusher; nothing waits for
    /// it. Off any loop, the inner writer is just dropped.
    fn drop(&mut self) {
        let Ok(mut s) = self.shared.try_borrow_mut() else {
            return;
        };
        if s.closed || s.failed.is_some() {
            return;
        }
        s.closing = true;
        if !s.flushing && crate::LoopHandle::try_current().is_some() {
            let _ = self.ensure_flusher(s);
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> std::fmt::Debug for BufWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.shared.try_borrow() {
            Ok(s) => f
                .debug_struct("BufWriter")
                .field("buffered", &s.pending())
                .field("high", &s.high)
                .field("low", &s.low)
                .field("closing", &s.closing)
                .finish(),
            Err(_) => f.write_str("BufWriter { .. }"),
        }
    }
}
