//! [`read_dir`]: a directory's entries as a stream, read in batches on the blocking pool.
//!
//! Owns: the directory stream and its entries. Must not touch: the loop (only
//! `spawn_blocking`). One pool round trip reads up to 32 entries (with their
//! file types, which Linux's `getdents` usually gives for free), so listing 10 000
//! entries costs about 300 round trips, not 10 000.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{FileType, Metadata};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::error::named;
use crate::JobHandle;

/// Entries read per pool round trip.
const BATCH: usize = 32;

/// One entry of a directory listing.
#[derive(Debug)]
pub struct DirEntry {
    path: PathBuf,
    file_type: io::Result<FileType>,
}

impl DirEntry {
    /// The entry's full path (the directory's path joined with the name).
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The entry's name.
    pub fn file_name(&self) -> OsString {
        self.path
            .file_name()
            .map(OsString::from)
            .unwrap_or_default()
    }

    /// The entry's type, as read with the listing (no extra syscall).
    ///
    /// # Errors
    ///
    /// When the type could not be read with the listing.
    pub fn file_type(&self) -> io::Result<FileType> {
        match &self.file_type {
            Ok(t) => Ok(*t),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// The entry's metadata (not following a symbolic link), read on the pool.
    ///
    /// # Errors
    ///
    /// As [`symlink_metadata`](super::symlink_metadata).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        super::symlink_metadata(&self.path).await
    }
}

type Batch = (std::fs::ReadDir, VecDeque<io::Result<DirEntry>>, bool);

enum State {
    /// The iterator, between batches.
    Idle(std::fs::ReadDir),
    /// A batch is being read on the pool.
    Reading(JobHandle<Batch>),
    /// The directory has no more entries.
    Done,
}

/// The entries of a directory ([`read_dir`]): a `futures_core::Stream` of
/// `io::Result<DirEntry>`, or [`next_entry`](Self::next_entry). The order is the file
/// system's; `.` and `..` are not listed.
pub struct ReadDir {
    dir: PathBuf,
    ready: VecDeque<io::Result<DirEntry>>,
    state: State,
}

/// Opens a directory for listing (`std::fs::read_dir`, on the pool).
///
/// ```
/// use futures_util::StreamExt;
///
/// evloop::run(async {
///     let dir = std::env::temp_dir().join(format!("evloop-doc-dir-{}", std::process::id()));
///     evloop::fs::create_dir_all(&dir).await?;
///     for name in ["a", "b", "c"] {
///         evloop::fs::write(dir.join(name), name).await?;
///     }
///     let mut names: Vec<_> = evloop::fs::read_dir(&dir)
///         .await?
///         .map(|e| e.unwrap().file_name().into_string().unwrap())
///         .collect()
///         .await;
///     names.sort();
///     assert_eq!(names, ["a", "b", "c"]);
///     evloop::fs::remove_dir_all(&dir).await?;
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// The open's error as a [`PathError`](super::PathError) naming the directory (an entry
/// that cannot be read is an `Err` item of the stream, named too); an `io::Error`
/// wrapping `CancelledError` when the awaiting task is cancelled.
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let dir = path.as_ref().to_path_buf();
    let opened = {
        let dir = dir.clone();
        crate::spawn_blocking(move || std::fs::read_dir(dir))
            .await
            .map_err(io::Error::from)
            .and_then(|r| r)
    };
    let iter = opened.map_err(|e| named("read_dir", &dir, None, e))?;
    Ok(ReadDir {
        dir,
        ready: VecDeque::new(),
        state: State::Idle(iter),
    })
}

/// Reads up to `BATCH` entries; the flag says whether the directory has ended.
fn read_batch(mut iter: std::fs::ReadDir, dir: PathBuf) -> Batch {
    let mut out = VecDeque::with_capacity(BATCH);
    let mut ended = false;
    while out.len() < BATCH {
        match iter.next() {
            None => {
                ended = true;
                break;
            }
            Some(Ok(entry)) => out.push_back(Ok(DirEntry {
                file_type: entry.file_type(),
                path: entry.path(),
            })),
            Some(Err(e)) => out.push_back(Err(named("read_dir", &dir, None, e))),
        }
    }
    (iter, out, ended)
}

impl ReadDir {
    /// The next entry; `None` once the directory has been listed.
    ///
    /// # Errors
    ///
    /// An entry that could not be read (named); an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled (the listing can go on).
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| self.poll_entry(cx))
            .await
            .transpose()
    }

    fn poll_entry(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<DirEntry>>> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Poll::Ready(Some(entry));
            }
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(iter) => {
                    let dir = self.dir.clone();
                    self.state =
                        State::Reading(crate::spawn_blocking(move || read_batch(iter, dir)));
                }
                State::Reading(mut job) => match Pin::new(&mut job).poll(cx) {
                    Poll::Pending => {
                        self.state = State::Reading(job);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok((iter, batch, ended))) => {
                        self.ready = batch;
                        self.state = if ended {
                            State::Done
                        } else {
                            State::Idle(iter)
                        };
                    }
                    Poll::Ready(Err(e)) => {
                        // Cancelled (the job's iterator is lost with it) or the pool
                        // failed: report it; the listing ends.
                        let e = io::Error::from(e);
                        return Poll::Ready(Some(Err(named("read_dir", &self.dir, None, e))));
                    }
                },
            }
        }
    }
}

impl futures_core::Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_entry(cx)
    }
}

impl std::fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadDir")
            .field("dir", &self.dir)
            .field("buffered", &self.ready.len())
            .finish()
    }
}
