//! Files and directories on the blocking pool (SPEC §15 X2, tokio::fs's function set):
//! [`read`], [`read_to_string`], [`write`](write()), [`copy`], [`rename`], [`remove_file`],
//! [`create_dir`], [`create_dir_all`], [`remove_dir`], [`remove_dir_all`], [`metadata`],
//! [`symlink_metadata`], [`canonicalize`], [`read_link`], [`hard_link`], [`symlink`],
//! [`set_permissions`], [`try_exists`] and [`read_dir`] (a stream, read in batches);
//! and [`File`] / [`OpenOptions`], an open file with tokio::fs::File's methods and
//! futures-io's `AsyncRead` / `AsyncWrite` / `AsyncSeek` (tokio's with `tokio-io`).
//!
//! Every call is one job on the loop's default executor (the blocking pool), so a slow
//! disk never blocks the loop, and its result reaches the awaiting task through the
//! loop's cross-thread queue. Every error names its path ([`PathError`]) and keeps its
//! `ErrorKind`. Cancelling the awaiting task resumes it at once with the cancellation;
//! the operation already running on the pool cannot be interrupted and runs to its end
//! (a `write` or `rename` may still happen — as with tokio::fs).
//!
//! A [`File`] is batched the same way: a read job reads ahead up to 1 MiB
//! ([`DEFAULT_MAX_BUF_SIZE`]), so reading a file sequentially in 64 KiB chunks costs one
//! pool round trip per MiB, not one per chunk; writes are buffered and written behind,
//! their errors reported by the next operation (`flush` waits for them).
//!
//! Owns: the functions, the directory stream, the file type and the path errors. Must
//! not touch: the loop — it is built on `spawn_blocking` (and, for `File`, the awaiting
//! task's waker and the task module's cancel and budget helpers) only.
//!
//! Files: `ops` (the functions), `dir` (`read_dir`), `file` (`File`'s methods;
//! `file::state` its state machine, `file::traits` its poll-based traits), `job` (the
//! pool side of a `File`: its jobs and the slot they hand the file back through),
//! `options` (`OpenOptions`), `error` (`PathError`).

mod dir;
mod error;
mod file;
mod job;
mod ops;
mod options;

pub use dir::{DirEntry, ReadDir, read_dir};
pub use error::PathError;
pub use file::{DEFAULT_MAX_BUF_SIZE, File};
pub use ops::{
    canonicalize, copy, create_dir, create_dir_all, hard_link, metadata, read, read_link,
    read_to_string, remove_dir, remove_dir_all, remove_file, rename, set_permissions, symlink,
    symlink_metadata, try_exists, write,
};
pub use options::OpenOptions;
