//! [`File`]: an open file whose reads, writes, syncs and end-relative seeks run on the
//! blocking pool (SPEC §15 X2, tokio::fs::File's API), read ahead in windows of up to
//! 1 MiB and written behind.
//!
//! Owns: the `File` type and its public methods (here), its state machine (`state`: the
//! `std::fs::File`, which is either in the `File` (idle) or inside exactly one pool job
//! (busy), never both; the read-ahead buffers and the logical position they imply; the
//! write buffer; the kept error of a write, sync or `set_len` nobody has been told about
//! yet) and the poll-based traits (`traits`). Must not touch: the loop — jobs go
//! through `fs::job` (`spawn_blocking`), waits through the task module's cancel and
//! budget helpers.
//!
//! A read travels: `poll_read` finds no buffered byte → `job::start` moves the file and
//! the buffer into a pool job → the job `read`s up to one window (8 KiB after a seek,
//! doubling with each sequential read job up to the max buffer size, 1 MiB) → it puts
//! both into the `Slot` and wakes the task (for an evloop task: the loop's cross-thread
//! queue) → the task's next `poll_read` takes them back and copies out of the buffer;
//! the following reads are served from it without a job. Once windows are full-sized
//! the next one is read (into a second buffer) while this one is handed out. A write copies the caller's
//! bytes (up to the max buffer size) into the File's buffer, starts a write job and
//! returns `Ok(n)`; writes made while that job runs are queued in the slot (up to the
//! max buffer size) and written by the same job, so a thousand small writes cost a few
//! pool round trips, not a thousand. Every other operation waits for the running job
//! first and reports its error.

mod state;
mod traits;

use std::fmt;
use std::fs::{File as StdFile, Metadata, Permissions};
use std::future::poll_fn;
use std::io::{self, Seek as _, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::job::{Slot, Work};
use super::options::OpenOptions;
use state::{Finished, Kind, NOT_RUN, ReadAhead, State};

/// The default of [`File::set_max_buf_size`]: 1 MiB. It bounds one read job (the
/// read-ahead window), the bytes one write accepts, and the bytes queued behind a
/// running write job.
pub const DEFAULT_MAX_BUF_SIZE: usize = 1 << 20;

/// An open file on the blocking pool (tokio::fs::File): reads are served from a
/// read-ahead buffer filled by one pool job per window (up to 1 MiB), writes are
/// buffered and written behind by a pool job, and every operation is a loop-native
/// await (cancellable, budgeted).
///
/// Use it with the inherent async methods ([`read`](Self::read),
/// [`write_all`](Self::write_all), [`seek`](Self::seek), …), through futures-io's
/// `AsyncRead` / `AsyncWrite` / `AsyncSeek` (with futures-util's extension traits, or
/// [`io::BufReader`](crate::io::BufReader)), or, with the `tokio-io` feature, through
/// tokio's.
///
/// ```
/// use std::io::SeekFrom;
/// use evloop::fs::File;
///
/// evloop::run(async {
///     let path = std::env::temp_dir().join(format!("evloop-doc-file-{}", std::process::id()));
///     let mut file = File::create(&path).await?;
///     file.write_all(b"hello, file").await?; // buffered: written behind
///     file.flush().await?; // waits for the write and reports its error
///
///     let mut file = File::open(&path).await?;
///     let mut hello = [0; 5];
///     file.read_exact(&mut hello).await?;
///     assert_eq!(&hello, b"hello");
///     assert_eq!(file.seek(SeekFrom::Current(2)).await?, 7);
///     let mut rest = String::new();
///     file.read_to_string(&mut rest).await?;
///     assert_eq!(rest, "file");
///     evloop::fs::remove_file(&path).await?;
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// **Errors** name the path the file was opened with ([`PathError`](super::PathError),
/// kind kept): `"write /dev/full: No space left on device (os error 28)"`. A write
/// returns `Ok` once its bytes are buffered, so its error comes from a later operation:
/// the next read, write, flush, seek, sync, `set_len`, `metadata`, … of this `File`
/// first waits for the running job and returns the error it kept. Cancelling an await
/// therefore never hides a failed write: the job runs on, and its error is the next
/// operation's. A cancelled operation may still take effect (a seek, a write already
/// accepted) — as with tokio.
///
/// **Dropping** a `File` while a write job runs lets the write finish in the background,
/// but its error can no longer be reported (as with tokio): call
/// [`flush`](Self::flush) (or [`sync_all`](Self::sync_all)) before dropping a file you
/// wrote to.
///
/// A `SeekFrom::Start` or `SeekFrom::Current` seek is an `lseek` on the loop thread
/// (it never waits for the disk); `SeekFrom::End` may ask a network file system for the
/// size, so it is a pool job.
pub struct File {
    /// The path errors name (`<fd N>` for [`from_std`](Self::from_std)).
    path: PathBuf,
    state: State,
    /// Where this File's jobs hand the file back (one at a time).
    slot: Arc<Slot>,
    read: ReadAhead,
    /// The bytes of the write job to start; moved into it.
    wbuf: Vec<u8>,
    /// The error of a write, sync or `set_len` not reported yet.
    kept: Option<io::Error>,
    max_buf: usize,
    /// Whether the OS position can move back (not a pipe, socket or terminal): only
    /// then does the File read ahead of what callers ask for.
    pub(super) seekable: bool,
    /// A seek tokio's `start_seek` asked for, done by `poll_complete`.
    #[cfg(feature = "tokio-io")]
    pub(super) pending_seek: Option<SeekFrom>,
}

impl File {
    /// Opens a file for reading (`std::fs::File::open`, on the pool).
    ///
    /// # Errors
    ///
    /// The open's error as a [`PathError`](super::PathError) naming the path (`"open
    /// /etc/nope: No such file or directory (os error 2)"`); an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens a file for writing, creating it or truncating it
    /// (`std::fs::File::create`, on the pool).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates a new file for reading and writing; fails with `AlreadyExists` if there
    /// is one (`O_CREAT | O_EXCL`, atomically).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// Options to open a file with ([`OpenOptions::new`]).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`; its errors name `<fd N>`.
    pub fn from_std(std: StdFile) -> File {
        let path = PathBuf::from(format!("<fd {}>", std.as_raw_fd()));
        File::from_parts(std, path)
    }

    pub(super) fn from_parts(std: StdFile, path: PathBuf) -> File {
        // A pipe, socket or terminal cannot move its position back over bytes read
        // ahead: such a File reads only what each caller asks for (no read-ahead).
        let seekable = !matches!(
            (&std).stream_position(),
            Err(e) if e.raw_os_error() == Some(libc::ESPIPE)
        );
        File {
            seekable,
            path,
            state: State::Idle(std),
            slot: Arc::default(),
            read: ReadAhead::default(),
            wbuf: Vec::new(),
            kept: None,
            max_buf: DEFAULT_MAX_BUF_SIZE,
            #[cfg(feature = "tokio-io")]
            pending_seek: None,
        }
    }

    /// Sets the most bytes one read job reads ahead, one write accepts, and the bytes
    /// queued behind a running write ([`DEFAULT_MAX_BUF_SIZE`] by default; at least 1).
    pub fn set_max_buf_size(&mut self, max_buf_size: usize) {
        self.max_buf = max_buf_size.max(1);
    }

    /// Reads into `buf` (from the read-ahead, or one read job when it is empty); `Ok(0)`
    /// at the end of file (or for an empty `buf`).
    ///
    /// # Errors
    ///
    /// The read's error, or a kept error of an earlier write, named; an `io::Error`
    /// wrapping `CancelledError` when the awaiting task is cancelled.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_slice(cx, buf)).await
    }

    /// Reads exactly `buf.len()` bytes.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` (named) when the file ends first — what was read is in `buf` —,
    /// otherwise as [`read`](Self::read).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn read_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read(buf).await?;
            if n == 0 {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer");
                return Err(self.named("read", e));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads to the end of file, appending to `buf` straight from the read-ahead; the
    /// number of bytes appended.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); what was read before the error stays in `buf`.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let before = buf.len();
        loop {
            let n = poll_fn(|cx| {
                self.poll_read_with(cx, usize::MAX, |chunk| buf.extend_from_slice(chunk))
            })
            .await?;
            if n == 0 {
                return Ok(buf.len() - before);
            }
        }
    }

    /// Reads to the end of file, appending to `buf`.
    ///
    /// # Errors
    ///
    /// `InvalidData` (named) when the bytes are not UTF-8 (`buf` is then unchanged),
    /// otherwise as [`read`](Self::read).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes).await?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let e = io::Error::new(io::ErrorKind::InvalidData, e.utf8_error());
            self.named("read", e)
        })?;
        buf.push_str(&text);
        Ok(text.len())
    }

    /// Buffers up to the max buffer size of `buf` and returns how many bytes it took;
    /// a pool job writes them behind. Waits only while a write job runs with a full
    /// queue, or for another running job.
    ///
    /// # Errors
    ///
    /// A kept error of an earlier write (or other operation), named; an `io::Error`
    /// wrapping `CancelledError` when the awaiting task is cancelled.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_op(cx, |me, cx| me.poll_write_inner(cx, buf))).await
    }

    /// Buffers all of `buf` (in pieces of the max buffer size); the bytes are written
    /// behind — [`flush`](Self::flush) waits for them.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write). A cancellation may come after part of `buf` was
    /// accepted.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits for the running job — every write accepted so far is written — and
    /// returns its error, if any.
    ///
    /// # Errors
    ///
    /// The kept error of a write (or sync, `set_len`), named (`"write /dev/full: No
    /// space left on device (os error 28)"`); an `io::Error` wrapping `CancelledError`
    /// when the awaiting task is cancelled (the error is then kept for the next
    /// operation).
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_op(cx, Self::poll_flush_inner)).await
    }

    /// Moves the position: the new position from the start of the file. A
    /// `SeekFrom::Current` counts from the logical position (bytes read ahead but not
    /// handed out are accounted for), and the read-ahead is discarded unless the seek
    /// stays inside it.
    ///
    /// # Errors
    ///
    /// The seek's error (e.g. `InvalidInput` before the start), or a kept error,
    /// named; an `io::Error` wrapping `CancelledError` when the awaiting task is
    /// cancelled.
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread (`SeekFrom::End` is a pool job).
    pub async fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        poll_fn(|cx| self.poll_seek_priv(cx, pos)).await
    }

    /// Flushes the data and metadata to the device (`fsync`, on the pool), after the
    /// running write.
    ///
    /// # Errors
    ///
    /// The write's or the sync's error, named; an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled (the sync runs on; its
    /// error is kept for the next operation).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        self.run("sync_all", Work::SyncAll).await.map(drop)
    }

    /// As [`sync_all`](Self::sync_all), without the metadata that reading the data back
    /// does not need (`fdatasync`).
    ///
    /// # Errors
    ///
    /// As [`sync_all`](Self::sync_all).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn sync_data(&mut self) -> io::Result<()> {
        self.run("sync_data", Work::SyncData).await.map(drop)
    }

    /// Truncates or extends the file to `size` bytes (on the pool); the position is
    /// unchanged (the read-ahead is dropped).
    ///
    /// # Errors
    ///
    /// As [`sync_all`](Self::sync_all).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.run("set_len", Work::SetLen(size)).await.map(drop)
    }

    /// Changes the file's permissions (on the pool).
    ///
    /// # Errors
    ///
    /// As [`sync_all`](Self::sync_all).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn set_permissions(&mut self, permissions: Permissions) -> io::Result<()> {
        self.run("set_permissions", Work::SetPermissions(permissions))
            .await
            .map(drop)
    }

    /// The file's metadata (`fstat`, on the pool), after the running write.
    ///
    /// # Errors
    ///
    /// As [`sync_all`](Self::sync_all).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn metadata(&mut self) -> io::Result<Metadata> {
        match self.run("metadata", Work::Metadata).await? {
            Finished::Metadata(r) => r,
            _ => Err(self.named("metadata", io::Error::other(NOT_RUN))),
        }
    }

    /// A second `File` on the same open file description (`dup`), after the running
    /// job; both share the position (the read-ahead is dropped first, so it is the
    /// logical one). Unlike tokio's, it takes `&mut self`: the file may be in a job.
    ///
    /// # Errors
    ///
    /// The `dup`'s error or a kept error, named; an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled.
    pub async fn try_clone(&mut self) -> io::Result<File> {
        self.flush().await?;
        self.drop_read_ahead()?;
        let State::Idle(std) = &self.state else {
            unreachable!("idle after flush");
        };
        let dup = std.try_clone().map_err(|e| self.named("try_clone", e))?;
        Ok(File::from_parts(dup, self.path.clone()))
    }

    /// The `std::fs::File`, after the running job, at the logical position. Unlike
    /// tokio's, it returns a kept error instead of dropping it (the file is then closed).
    ///
    /// # Errors
    ///
    /// A kept error, named; an `io::Error` wrapping `CancelledError` when the awaiting
    /// task is cancelled.
    pub async fn into_std(mut self) -> io::Result<StdFile> {
        self.flush().await?;
        self.drop_read_ahead()?;
        Ok(self.take_idle().expect("idle after flush"))
    }

    /// The `std::fs::File` at the logical position if no job runs and no error is
    /// kept; otherwise the `File` back (await [`flush`](Self::flush) first).
    ///
    /// # Errors
    ///
    /// `Err(self)` while a job runs, with a kept error, or if the position cannot be
    /// corrected.
    #[allow(
        clippy::result_large_err,
        reason = "tokio's signature: the File itself back"
    )]
    pub fn try_into_std(mut self) -> Result<StdFile, File> {
        if let State::Busy(_) = self.state {
            match self.slot.try_take() {
                Some(done) => {
                    self.finish(done);
                }
                None => return Err(self),
            }
        }
        if self.kept.is_some() || self.drop_read_ahead().is_err() {
            return Err(self);
        }
        self.take_idle().ok_or(self)
    }

    /// Runs `work` as a job after the running one; its error (kept meanwhile, so a
    /// cancelled wait leaves it for the next operation) is the result.
    async fn run(&mut self, op: &'static str, work: Work) -> io::Result<Finished> {
        self.flush().await?;
        if let Work::SetLen(_) = work {
            self.drop_read_ahead()?;
        }
        self.start_job(Kind::Other(op), Vec::new(), work);
        let finished = poll_fn(|cx| self.poll_op(cx, |me, cx| me.poll_idle(cx).map(Ok))).await?;
        match self.kept.take() {
            Some(e) => Err(e),
            None => Ok(finished),
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("File");
        d.field("path", &self.path);
        match &self.state {
            State::Idle(std) => d.field("idle", std),
            State::Busy(kind) => d.field("busy", kind),
        };
        d.field("read_ahead", &self.read.unread())
            .field("kept_error", &self.kept)
            .field("max_buf_size", &self.max_buf)
            .finish()
    }
}
