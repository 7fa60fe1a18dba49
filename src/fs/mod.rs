//! Files and directories on the blocking pool (SPEC §15 X2, tokio::fs's function set):
//! [`read`], [`read_to_string`], [`write`], [`copy`], [`rename`], [`remove_file`],
//! [`create_dir`], [`create_dir_all`], [`remove_dir`], [`remove_dir_all`], [`metadata`],
//! [`symlink_metadata`], [`canonicalize`], [`read_link`], [`hard_link`], [`symlink`],
//! [`set_permissions`], [`try_exists`] and [`read_dir`] (a stream, read in batches).
//!
//! Every call is one job on the loop's default executor (the blocking pool), so a slow
//! disk never blocks the loop, and its result reaches the awaiting task through the
//! loop's cross-thread queue. Every error names its path ([`PathError`]) and keeps its
//! `ErrorKind`. Cancelling the awaiting task resumes it at once with the cancellation;
//! the operation already running on the pool cannot be interrupted and runs to its end
//! (a `write` or `rename` may still happen — as with tokio::fs).
//!
//! Owns: the functions, the directory stream and the path errors. Must not touch: the
//! loop — it is built on `spawn_blocking` only.
//!
//! (`File`, with futures-io's `AsyncRead` / `AsyncWrite` / `AsyncSeek`, is the rest of
//! X2 and not here yet.)

mod dir;
mod error;
mod ops;

pub use dir::{DirEntry, ReadDir, read_dir};
pub use error::PathError;
pub use ops::{
    canonicalize, copy, create_dir, create_dir_all, hard_link, metadata, read, read_link,
    read_to_string, remove_dir, remove_dir_all, remove_file, rename, set_permissions, symlink,
    symlink_metadata, try_exists, write,
};
