//! The state machine of [`File`](super::File): which job runs, the read-ahead and its
//! pipelining, the write-behind, the kept error, and the polls every operation is built
//! from.
//!
//! Owns: `State` (idle with the `std::fs::File`, or busy with a job), `ReadAhead` (two
//! buffers and the bytes they hold past the logical position), taking a finished job
//! back in (`finish`), and the position arithmetic of seeks. Must not touch: the pool
//! (jobs start through `job::start` and come back through the `Slot`) or the public
//! API (`super`).

use std::fs::{File as StdFile, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::mem;
use std::task::{Context, Poll, ready};

use super::File;
use crate::fs::error::named;
use crate::fs::job::{self, Done, Outcome, Work};
use crate::task::{budget, coop};

/// The first read job after opening or seeking asks for at least this much.
const MIN_READ: usize = 8 * 1024;

/// Why a job the pool dropped unrun failed.
pub(super) const NOT_RUN: &str = "evloop: the blocking pool did not run the file operation \
                                  (executor shut down, loop closed, or the job panicked)";

/// Which job runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    /// A read of this many bytes.
    Read(usize),
    Write,
    Seek(SeekFrom),
    /// `sync_all`, `sync_data`, `set_len`, `set_permissions`, `metadata`: the name.
    Other(&'static str),
}

#[derive(Debug)]
pub(super) enum State {
    Idle(StdFile),
    Busy(Kind),
}

/// What a finished job leaves for the operation that waited for it.
pub(super) enum Finished {
    Seek(io::Result<u64>),
    Metadata(io::Result<Metadata>),
    /// Nothing to hand over (or no job ran).
    Other,
}

/// The read-ahead, in two buffers: `buf[start..end]`, being handed out, then
/// `next[..next_len]`. Both are read from the OS but not handed out yet, so the logical
/// position is the OS's minus [`unread`](Self::unread).
///
/// Read jobs read into `next` (as long as the largest read so far, zeroed once); when
/// `buf` is used up the two swap. Once reading is sequential at full windows, the next
/// window is read while `buf` is handed out (pipelining: the pool reads while the task
/// consumes), so `buf` is served while that job runs.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    next: Vec<u8>,
    next_len: usize,
    /// After the bytes buffered, the end of file: the next read returns `Ok(0)`.
    eof: bool,
    /// After the bytes buffered, a failed read: the next read returns it.
    err: Option<io::Error>,
    /// The size of the last read job since the last seek (0: none yet).
    window: usize,
    /// The last read job read all it asked for (more is likely to follow).
    full: bool,
}

impl ReadAhead {
    pub(super) fn unread(&self) -> usize {
        self.end - self.start + self.next_len
    }

    fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
        self.next_len = 0;
        self.eof = false;
        self.err = None;
        self.window = 0;
        self.full = false;
    }

    /// Takes a read job's buffer and result in, behind what is still buffered.
    fn take_in(&mut self, buf: Vec<u8>, want: usize, n: usize) {
        debug_assert_eq!(self.next_len, 0, "a read job runs only with `next` free");
        self.full = n == want;
        if self.start == self.end {
            // The used-up buffer becomes the next job's.
            self.next = mem::replace(&mut self.buf, buf);
            (self.start, self.end) = (0, n);
        } else {
            self.next = buf;
            self.next_len = n;
        }
    }
}

impl File {
    /// The file out of an idle `File` (`None` while busy).
    pub(super) fn take_idle(&mut self) -> Option<StdFile> {
        match mem::replace(&mut self.state, State::Busy(Kind::Other("closed"))) {
            State::Idle(std) => Some(std),
            busy => {
                self.state = busy;
                None
            }
        }
    }

    /// `e` from `op` on this file's path (a cancellation passes through).
    pub(super) fn named(&self, op: &'static str, e: io::Error) -> io::Error {
        named(op, &self.path, None, e)
    }

    pub(super) fn kind(&self) -> Option<Kind> {
        match &self.state {
            State::Idle(_) => None,
            State::Busy(kind) => Some(*kind),
        }
    }

    /// Moves the idle file into a job doing `work`.
    pub(super) fn start_job(&mut self, kind: Kind, buf: Vec<u8>, work: Work) {
        match mem::replace(&mut self.state, State::Busy(kind)) {
            State::Idle(std) => job::start(&self.slot, std, buf, work),
            State::Busy(_) => unreachable!("a job was started on a busy file"),
        }
    }

    /// Takes a finished job back in: the file, its buffer, and the error to keep.
    pub(super) fn finish(&mut self, done: Done) -> Finished {
        let Done { std, buf, outcome } = done;
        let kind = match mem::replace(&mut self.state, State::Idle(std)) {
            State::Busy(kind) => kind,
            State::Idle(_) => unreachable!("a job finished on an idle file"),
        };
        match outcome {
            Outcome::Read(r) => {
                let want = match kind {
                    Kind::Read(want) => want,
                    _ => 0,
                };
                match r {
                    Ok(n) => {
                        self.read.take_in(buf, want, n);
                        self.read.eof = n == 0;
                    }
                    Err(e) => {
                        self.read.take_in(buf, want, 0);
                        self.read.err = Some(self.named("read", e));
                    }
                }
                Finished::Other
            }
            Outcome::Write(r) => {
                self.wbuf = buf;
                if let Err(e) = r {
                    self.kept = Some(self.named("write", e));
                }
                Finished::Other
            }
            Outcome::Unit(r) => {
                if let (Err(e), Kind::Other(op)) = (r, kind) {
                    self.kept = Some(self.named(op, e));
                }
                Finished::Other
            }
            Outcome::Seek(r) => {
                if r.is_ok() {
                    self.read.discard();
                }
                Finished::Seek(r.map_err(|e| self.named("seek", e)))
            }
            Outcome::Metadata(r) => Finished::Metadata(r.map_err(|e| self.named("metadata", e))),
            Outcome::NotRun => {
                let op = match kind {
                    Kind::Read(want) => {
                        self.read.take_in(buf, want, 0);
                        "read"
                    }
                    Kind::Write => {
                        self.wbuf = buf;
                        "write"
                    }
                    Kind::Seek(_) => "seek",
                    Kind::Other(op) => op,
                };
                self.kept = Some(self.named(op, io::Error::other(NOT_RUN)));
                Finished::Other
            }
        }
    }

    /// Waits for the running job, if any, and takes it back in.
    pub(super) fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Finished> {
        if let State::Idle(_) = self.state {
            return Poll::Ready(Finished::Other);
        }
        let done = ready!(self.slot.poll_done(cx));
        Poll::Ready(self.finish(done))
    }

    /// One loop-native await: a pending cancellation first, then `f` under the task's
    /// cooperative budget.
    pub(super) fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Err(io::Error::from(cancelled)));
        }
        budget::budgeted(cx, |cx| f(self, cx))
    }

    /// futures-io's `poll_read`.
    pub(super) fn poll_read_slice(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let max = dst.len();
        self.poll_read_with(cx, max, |chunk| dst[..chunk.len()].copy_from_slice(chunk))
    }

    /// Hands up to `max` read-ahead bytes to `take` (reading a window first when none
    /// is buffered); `Ok(0)` at the end of file or for `max == 0`.
    pub(super) fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        take: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let n = ready!(self.poll_op(cx, |me, cx| me.poll_fill(cx, max)))?;
        let r = &mut self.read;
        take(&r.buf[r.start..r.start + n]);
        r.start += n;
        Poll::Ready(Ok(n))
    }

    /// Until read-ahead bytes are buffered: how many of them (at most `max`) to hand out
    /// from `buf`.
    fn poll_fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        loop {
            let buffered = self.read.end - self.read.start;
            match self.kind() {
                // The pipelined read of the next window runs; this one is served.
                Some(Kind::Read(_)) if buffered > 0 => return Poll::Ready(Ok(max.min(buffered))),
                Some(_) => {
                    // (What a seek or `metadata` whose caller left hands over is dropped.)
                    ready!(self.poll_idle(cx));
                    continue;
                }
                None => {}
            }
            if let Some(e) = self.kept.take() {
                return Poll::Ready(Err(e));
            }
            let r = &mut self.read;
            if buffered > 0 {
                if r.full && r.window >= self.max_buf && r.next_len == 0 && self.seekable {
                    // Sequential at full windows: read the next one meanwhile.
                    self.start_read(self.max_buf);
                }
                return Poll::Ready(Ok(max.min(buffered)));
            }
            if r.next_len > 0 {
                mem::swap(&mut r.buf, &mut r.next);
                (r.start, r.end, r.next_len) = (0, r.next_len, 0);
                continue;
            }
            if let Some(e) = r.err.take() {
                return Poll::Ready(Err(e));
            }
            if max == 0 {
                return Poll::Ready(Ok(0));
            }
            if mem::take(&mut r.eof) {
                // At the end: the buffers go (an idle open file keeps no megabytes), and
                // a read past it (the file grew) starts with a small window again.
                (r.buf, r.next, r.window, r.full) = (Vec::new(), Vec::new(), 0, false);
                return Poll::Ready(Ok(0));
            }
            self.start_read(max);
        }
    }

    /// Starts a read job of the next window into `next`: at least `hint` (and
    /// [`MIN_READ`]), doubling with each read job since the last seek, at most the max
    /// buffer size. Idle, with `next` empty.
    fn start_read(&mut self, hint: usize) {
        let r = &mut self.read;
        let window = match r.window {
            _ if !self.seekable => hint.max(1),
            0 => hint.max(MIN_READ),
            w => w.saturating_mul(2).max(hint),
        };
        let want = window.min(self.max_buf);
        r.window = want;
        r.full = false;
        let mut buf = mem::take(&mut r.next);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        self.start_job(Kind::Read(want), buf, Work::Read(want));
    }

    /// Discards the read-ahead and moves the OS position back to the logical one. Idle
    /// only. (A File that is not seekable never reads ahead, so it has nothing unread.)
    pub(super) fn drop_read_ahead(&mut self) -> io::Result<()> {
        let unread = self.read.unread();
        self.read.discard();
        let State::Idle(std) = &self.state else {
            return Ok(());
        };
        if unread == 0 {
            return Ok(());
        }
        let back = -i64::try_from(unread).unwrap_or(i64::MAX);
        match (&*std).seek(SeekFrom::Current(back)) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => Ok(()),
            Err(e) => Err(self.named("seek", e)),
        }
    }

    /// futures-io's / tokio's `poll_write` (under [`poll_op`](Self::poll_op)).
    pub(super) fn poll_write_inner(
        &mut self,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.kind() {
                Some(Kind::Write) => {
                    match ready!(self.slot.poll_write_behind(cx, src, self.max_buf)) {
                        Ok(n) => return Poll::Ready(Ok(n)),
                        Err(done) => {
                            self.finish(done);
                        }
                    }
                }
                Some(_) => {
                    ready!(self.poll_idle(cx));
                }
                None => {
                    if let Some(e) = self.kept.take() {
                        return Poll::Ready(Err(e));
                    }
                    if src.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    self.drop_read_ahead()?;
                    let n = src.len().min(self.max_buf);
                    let mut buf = mem::take(&mut self.wbuf);
                    buf.clear();
                    buf.extend_from_slice(&src[..n]);
                    self.start_job(Kind::Write, buf, Work::Write);
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    /// `poll_flush` (under [`poll_op`](Self::poll_op)): idle, and the kept error.
    pub(super) fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let State::Busy(_) = self.state {
            ready!(self.poll_idle(cx));
        }
        Poll::Ready(self.kept.take().map_or(Ok(()), Err))
    }

    /// futures-io's `poll_seek`.
    pub(super) fn poll_seek_priv(
        &mut self,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.poll_op(cx, |me, cx| me.poll_seek_inner(cx, pos))
    }

    fn poll_seek_inner(&mut self, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        loop {
            match self.kind() {
                // This seek's own job (polled again), or a stale one with the same
                // target, whose answer is the same.
                Some(Kind::Seek(p)) if p == pos => {
                    if let Finished::Seek(r) = ready!(self.poll_idle(cx)) {
                        return Poll::Ready(r);
                    }
                }
                Some(_) => {
                    ready!(self.poll_idle(cx));
                }
                None => {
                    if let Some(e) = self.kept.take() {
                        return Poll::Ready(Err(e));
                    }
                    match self.seek_idle(pos) {
                        Some(r) => return Poll::Ready(r),
                        None => continue,
                    }
                }
            }
        }
    }

    /// A seek of the idle file: done here (`None`: started a pool job for it).
    fn seek_idle(&mut self, pos: SeekFrom) -> Option<io::Result<u64>> {
        let State::Idle(std) = &self.state else {
            unreachable!("seek_idle on a busy file");
        };
        let target = match pos {
            SeekFrom::End(_) => {
                self.start_job(Kind::Seek(pos), Vec::new(), Work::Seek(pos));
                return None;
            }
            SeekFrom::Start(_) => pos,
            SeekFrom::Current(k) => {
                let unread = self.read.unread();
                let buffered = self.read.end - self.read.start;
                let within = usize::try_from(k).is_ok_and(|k| k <= buffered);
                if within {
                    // Inside the buffer being handed out: skip bytes, keep the rest.
                    let r = (&*std)
                        .stream_position()
                        .map(|os| os - (unread - k as usize) as u64);
                    if r.is_ok() {
                        self.read.start += k as usize;
                    }
                    return Some(r.map_err(|e| self.named("seek", e)));
                }
                let Some(k) = k.checked_sub(unread as i64) else {
                    let e = io::Error::new(io::ErrorKind::InvalidInput, "seek offset overflows");
                    return Some(Err(self.named("seek", e)));
                };
                SeekFrom::Current(k)
            }
        };
        let r = (&*std).seek(target);
        if r.is_ok() {
            self.read.discard();
        }
        Some(r.map_err(|e| self.named("seek", e)))
    }

    /// The logical position (tokio's `poll_complete` with no seek started): after the
    /// running job, without discarding the read-ahead.
    #[cfg(feature = "tokio-io")]
    pub(super) fn poll_position(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.poll_seek_priv(cx, SeekFrom::Current(0))
    }
}
