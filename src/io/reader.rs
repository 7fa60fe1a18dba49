//! [`BufReader`]: asyncio's `StreamReader` over any `futures_io::AsyncRead` (N7), and its
//! [`Lines`] stream.
//!
//! Owns: the read buffer, the separator search and the limit rule. Must not touch: the
//! socket — every read goes through the inner reader's `poll_read`, which for evloop's
//! streams is a loop-native await (it delivers the task's cancellation and spends its
//! cooperative budget), so the reader adds no wait of its own.
//!
//! The buffer is one allocation, reused for every line: bytes are consumed by moving a
//! start index, the unread tail is moved to the front only when the end is reached, and
//! the buffer grows (doubling) only while a line is longer than it, up to the limit plus
//! the separator. Nothing is consumed until a read completes, so a read future dropped
//! half-way (a timeout, a cancelled task) loses no data.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncBufRead, AsyncRead};

use super::error::{IncompleteRead, LimitOverrun};

/// asyncio's default `limit` (`2 ** 16`).
pub const DEFAULT_LIMIT: usize = 64 * 1024;
/// The buffer's first size (tokio's and std's `BufReader` default).
const INITIAL_CAPACITY: usize = 8 * 1024;

/// How a separator search ended without a chunk.
enum Until {
    /// The stream ended first.
    Eof,
    Overrun(LimitOverrun),
    Io(io::Error),
}

/// A buffered reader with asyncio's `StreamReader` methods — `readline`, `readuntil`,
/// `readexactly`, `read(n)`, `at_eof` and a `limit` — and tokio's / std's names for the
/// same operations into caller-owned buffers (`read_line`, `read_until`, `read_exact`).
///
/// ```
/// use evloop::io::BufReader;
///
/// evloop::run(async {
///     let (a, b) = evloop::net::UnixStream::pair()?;
///     a.write_all(b"HELO x\r\nDATA\r\n\r\n.\r\n").await?;
///     drop(a);
///     let mut reader = BufReader::new(b);
///     assert_eq!(reader.readline().await?, b"HELO x\r\n");
///     assert_eq!(reader.readuntil(b"\r\n\r\n").await?, b"DATA\r\n\r\n");
///     let mut line = String::new();
///     reader.read_line(&mut line).await?;
///     assert_eq!(line, ".\r\n");
///     assert!(reader.readline().await?.is_empty() && reader.at_eof());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct BufReader<R> {
    inner: R,
    /// `buf[pos..filled]` is unread; the rest is space (initialised, so any reader's
    /// `poll_read` can be given it).
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    eof: bool,
    limit: usize,
}

impl<R: AsyncRead + Unpin> BufReader<R> {
    /// A reader with an 8 KiB buffer and the default [`DEFAULT_LIMIT`] (64 KiB).
    pub fn new(inner: R) -> BufReader<R> {
        BufReader::with_limit(inner, DEFAULT_LIMIT)
    }

    /// A reader whose `readline` / `readuntil` / `read_until` accept chunks of at most
    /// `limit` bytes before the separator (asyncio's `limit=`).
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (asyncio raises `ValueError`).
    pub fn with_limit(inner: R, limit: usize) -> BufReader<R> {
        assert!(limit > 0, "BufReader: the limit must be at least 1 byte");
        BufReader {
            inner,
            buf: vec![0; INITIAL_CAPACITY],
            pos: 0,
            filled: 0,
            eof: false,
            limit,
        }
    }

    /// The limit of [`readline`](Self::readline) and friends.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit (the buffered data is kept).
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn set_limit(&mut self, limit: usize) {
        assert!(
            limit > 0,
            "BufReader::set_limit: the limit must be at least 1 byte"
        );
        self.limit = limit;
    }

    /// `true` once the stream has ended and every buffered byte has been read
    /// (asyncio's `at_eof()`).
    pub fn at_eof(&self) -> bool {
        self.eof && self.pos == self.filled
    }

    /// The bytes buffered and not yet read.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader (reading from it directly skips the buffered bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader; the buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn consume_bytes(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.filled);
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
        }
    }

    /// Takes `n` buffered bytes out as a vector.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.consume_bytes(n);
        out
    }

    /// Reads more into the buffer, making room first (moving the unread bytes to the
    /// front, or growing up to `max` bytes). `Ok(0)`: the stream ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        if self.filled == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.filled, 0);
                self.filled -= self.pos;
                self.pos = 0;
            } else {
                let grown = self
                    .buf
                    .len()
                    .saturating_mul(2)
                    .min(max)
                    .max(self.buf.len() + 1);
                self.buf.resize(grown, 0);
            }
        }
        let room = self.buf.len() - self.filled;
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, &mut self.buf[self.filled..]))?;
        // (A reader claiming more than it was given is clamped, not trusted.)
        let n = n.min(room);
        if n == 0 {
            self.eof = true;
        }
        self.filled += n;
        Poll::Ready(Ok(n))
    }

    /// Finds `sep` in the buffered bytes, reading more as needed: the length of the
    /// chunk up to and including it. `searched` is where to resume (the caller keeps it
    /// across polls, so a long line is not searched again from its start).
    fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        sep: &[u8],
        searched: &mut usize,
    ) -> Poll<Result<usize, Until>> {
        let seplen = sep.len();
        loop {
            let data = &self.buf[self.pos..self.filled];
            let from = (*searched).min(data.len());
            let found = if seplen == 1 {
                memchr::memchr(sep[0], &data[from..])
            } else {
                memchr::memmem::find(&data[from..], sep)
            };
            if let Some(i) = found {
                let at = from + i;
                *searched = 0;
                if at > self.limit {
                    return Poll::Ready(Err(Until::Overrun(LimitOverrun::new(
                        at, self.limit, true,
                    ))));
                }
                return Poll::Ready(Ok(at + seplen));
            }
            // A separator may straddle what is here and what comes next.
            *searched = (data.len() + 1).saturating_sub(seplen);
            if *searched > self.limit {
                let consumed = *searched;
                *searched = 0;
                return Poll::Ready(Err(Until::Overrun(LimitOverrun::new(
                    consumed, self.limit, false,
                ))));
            }
            if self.eof {
                *searched = 0;
                return Poll::Ready(Err(Until::Eof));
            }
            let max = self.limit.saturating_add(seplen).max(self.buf.len());
            match ready!(self.poll_fill(cx, max)) {
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(Until::Io(e))),
            }
        }
    }

    async fn until(&mut self, sep: &[u8]) -> Result<usize, Until> {
        let mut searched = 0;
        poll_fn(|cx| self.poll_until(cx, sep, &mut searched)).await
    }

    /// A search's outcome for the line readers: the chunk's length, or at the end of
    /// the stream the length of what is left (0: nothing).
    fn chunk_or_rest(&self, found: Result<usize, Until>) -> io::Result<usize> {
        match found {
            Ok(n) => Ok(n),
            Err(Until::Eof) => Ok(self.filled - self.pos),
            Err(Until::Overrun(o)) => Err(o.into_io()),
            Err(Until::Io(e)) => Err(e),
        }
    }

    /// Reads a line: the bytes up to and including `\n`; at the end of the stream, what
    /// is left (possibly nothing: an empty vector means the stream has ended).
    ///
    /// # Errors
    ///
    /// A [`LimitOverrun`] when the line is longer than the [`limit`](Self::limit) —
    /// the bytes stay buffered (asyncio's `readline` discards them; see the README's
    /// asyncio table); the inner reader's errors, a task cancellation among them.
    pub async fn readline(&mut self) -> io::Result<Vec<u8>> {
        let found = self.until(b"\n").await;
        let n = self.chunk_or_rest(found)?;
        Ok(self.take(n))
    }

    /// Reads a line, as [`readline`](Self::readline), and appends it to `line` (tokio's
    /// and std's `read_line`): the number of bytes appended, 0 at the end of the stream.
    /// The buffer's bytes are consumed only once the whole line is there, so a dropped
    /// call loses nothing.
    ///
    /// # Errors
    ///
    /// `InvalidData` when the line is not UTF-8 (the line is consumed, `line` left as
    /// it was, as std's `read_line`); otherwise as [`readline`](Self::readline).
    pub async fn read_line(&mut self, line: &mut String) -> io::Result<usize> {
        let found = self.until(b"\n").await;
        let n = self.chunk_or_rest(found)?;
        let text = std::str::from_utf8(&self.buf[self.pos..self.pos + n]);
        let appended = text.map(|t| line.push_str(t));
        self.consume_bytes(n);
        match appended {
            Ok(()) => Ok(n),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read_line: the line is not valid UTF-8",
            )),
        }
    }

    /// Reads up to and including `byte`, appending to `out` (tokio's `read_until`); at
    /// the end of the stream, what is left. The number of bytes appended, 0 at the end.
    ///
    /// # Errors
    ///
    /// As [`readline`](Self::readline).
    pub async fn read_until(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<usize> {
        let found = self.until(&[byte]).await;
        let n = self.chunk_or_rest(found)?;
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.consume_bytes(n);
        Ok(n)
    }

    /// Reads up to and including `separator` (several bytes allowed; asyncio's
    /// `readuntil`).
    ///
    /// # Errors
    ///
    /// * `InvalidInput` if `separator` is empty.
    /// * An [`IncompleteRead`] (kind `UnexpectedEof`) when the stream ends first; it
    ///   holds every byte that was left, and the reader is then at its end.
    /// * A [`LimitOverrun`] (kind `InvalidData`) when no separator is found within the
    ///   [`limit`](Self::limit) or it is found beyond it; the bytes stay buffered.
    /// * The inner reader's errors, a task cancellation among them.
    pub async fn readuntil(&mut self, separator: &[u8]) -> io::Result<Vec<u8>> {
        if separator.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "BufReader::readuntil: the separator must not be empty",
            ));
        }
        match self.until(separator).await {
            Ok(n) => Ok(self.take(n)),
            Err(Until::Eof) => {
                let rest = self.take(self.filled - self.pos);
                Err(IncompleteRead::new(rest, None).into_io())
            }
            Err(Until::Overrun(o)) => Err(o.into_io()),
            Err(Until::Io(e)) => Err(e),
        }
    }

    /// Fills `buf` completely (tokio's `read_exact`).
    ///
    /// Up to the [`limit`](Self::limit), the bytes are gathered in the reader's buffer
    /// and consumed only once all have arrived, so a dropped call loses nothing; a
    /// larger `buf` is filled directly, and a call dropped half-way has consumed what it
    /// copied.
    ///
    /// # Errors
    ///
    /// An [`IncompleteRead`] (kind `UnexpectedEof`, with the bytes that did arrive,
    /// which are consumed) when the stream ends first; the inner reader's errors.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        if want <= self.limit {
            return poll_fn(|cx| {
                while self.filled - self.pos < want {
                    if self.eof {
                        let partial = self.take(self.filled - self.pos);
                        return Poll::Ready(
                            Err(IncompleteRead::new(partial, Some(want)).into_io()),
                        );
                    }
                    if self.pos + want > self.buf.len() && self.pos > 0 {
                        self.buf.copy_within(self.pos..self.filled, 0);
                        self.filled -= self.pos;
                        self.pos = 0;
                    }
                    let max = want.max(self.buf.len());
                    ready!(self.poll_fill(cx, max))?;
                }
                buf.copy_from_slice(&self.buf[self.pos..self.pos + want]);
                self.consume_bytes(want);
                Poll::Ready(Ok(()))
            })
            .await;
        }
        let mut done = 0;
        poll_fn(|cx| {
            while done < want {
                if self.pos == self.filled {
                    if self.eof {
                        let partial = buf[..done].to_vec();
                        return Poll::Ready(
                            Err(IncompleteRead::new(partial, Some(want)).into_io()),
                        );
                    }
                    // Larger than the buffer: straight into the caller's.
                    let n = ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf[done..]))?;
                    let n = n.min(want - done);
                    if n == 0 {
                        self.eof = true;
                    }
                    done += n;
                    continue;
                }
                let n = (self.filled - self.pos).min(want - done);
                buf[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.consume_bytes(n);
                done += n;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Reads exactly `n` bytes (asyncio's `readexactly`; a dropped call loses nothing
    /// up to the [`limit`](Self::limit), as [`read_exact`](Self::read_exact)).
    ///
    /// # Errors
    ///
    /// As [`read_exact`](Self::read_exact).
    pub async fn readexactly(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0; n];
        self.read_exact(&mut out).await?;
        Ok(out)
    }

    /// Reads at most `n` bytes (asyncio's `read(n)`): what is buffered, or else what one
    /// read of the stream returns; an empty vector at the end of the stream (or for
    /// `n == 0`).
    ///
    /// # Errors
    ///
    /// The inner reader's errors.
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        poll_fn(|cx| {
            while self.pos == self.filled && !self.eof {
                let room = self.buf.len();
                ready!(self.poll_fill(cx, room))?;
            }
            let take = (self.filled - self.pos).min(n);
            Poll::Ready(Ok(self.take(take)))
        })
        .await
    }

    /// Reads to the end of the stream, appending to `out` (asyncio's `read()` with no
    /// size; no limit applies): the number of bytes appended.
    ///
    /// # Errors
    ///
    /// The inner reader's errors (the bytes read before are in `out`).
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        poll_fn(|cx| {
            loop {
                out.extend_from_slice(&self.buf[self.pos..self.filled]);
                self.pos = 0;
                self.filled = 0;
                if self.eof {
                    return Poll::Ready(Ok(out.len() - start));
                }
                let room = self.buf.len();
                ready!(self.poll_fill(cx, room))?;
            }
        })
        .await
    }

    /// The lines of the stream, without their `\n` or `\r\n` (std's and tokio's
    /// `lines()`), as a `futures_core::Stream` of `io::Result<String>` or with
    /// [`Lines::next_line`].
    pub fn lines(self) -> Lines<R> {
        Lines {
            reader: self,
            searched: 0,
            failed: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BufReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos == this.filled && buf.len() >= this.buf.len() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let available = ready!(Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        this.consume_bytes(n);
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for BufReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos == this.filled && !this.eof {
            let room = this.buf.len();
            ready!(this.poll_fill(cx, room))?;
        }
        Poll::Ready(Ok(&this.buf[this.pos..this.filled]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.filled - this.pos);
        this.consume_bytes(amt);
    }
}

/// The lines of a [`BufReader`] ([`BufReader::lines`]); each line is subject to the
/// reader's limit. After an error (a [`LimitOverrun`], invalid UTF-8, the stream's
/// error) the stream ends — a loop that skips errors cannot spin on the same overlong
/// line — and [`into_inner`](Self::into_inner) gives the reader back with its data.
#[derive(Debug)]
pub struct Lines<R> {
    reader: BufReader<R>,
    searched: usize,
    failed: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    /// The next line without its line ending; `None` at the end of the stream.
    ///
    /// # Errors
    ///
    /// As [`BufReader::read_line`].
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        poll_fn(|cx| self.poll_line(cx)).await.transpose()
    }

    /// The reader, with whatever it still buffers.
    pub fn into_inner(self) -> BufReader<R> {
        self.reader
    }

    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<String>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let line = ready!(self.poll_line_once(cx));
        self.failed = matches!(line, Some(Err(_)));
        Poll::Ready(line)
    }

    fn poll_line_once(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<String>>> {
        let reader = &mut self.reader;
        let found = ready!(reader.poll_until(cx, b"\n", &mut self.searched));
        let n = match reader.chunk_or_rest(found) {
            Ok(0) => return Poll::Ready(None),
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        let mut bytes = reader.take(n);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Poll::Ready(Some(String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "Lines: the line is not valid UTF-8",
            )
        })))
    }
}

impl<R: AsyncRead + Unpin> futures_core::Stream for Lines<R> {
    type Item = io::Result<String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_line(cx)
    }
}
