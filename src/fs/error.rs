//! [`PathError`]: a file-system error that names its path (X2).
//!
//! Owns: the wrapping of an `io::Error` with the operation and the path(s). Must not
//! touch: files — `ops` and `dir` build these. A cancellation is never wrapped.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An I/O error about a path: which operation failed on which path (and, for `copy`,
/// `rename` and links, the second path).
///
/// The `io::Error`s of [`evloop::fs`](super) wrap one of these, so their message names
/// the path (`"open /etc/nope: No such file or directory (os error 2)"`) while
/// [`io::Error::kind`] is the underlying error's; `source()` is the original error.
///
/// ```
/// evloop::run(async {
///     let err = evloop::fs::read("/nonexistent/evloop").await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
///     assert_eq!(
///         err.to_string(),
///         "read /nonexistent/evloop: No such file or directory (os error 2)"
///     );
///     let detail = err.get_ref().unwrap().downcast_ref::<evloop::fs::PathError>().unwrap();
///     assert_eq!(detail.path(), std::path::Path::new("/nonexistent/evloop"));
/// })
/// ```
#[derive(Debug)]
pub struct PathError {
    op: &'static str,
    path: PathBuf,
    to: Option<PathBuf>,
    source: io::Error,
}

impl PathError {
    /// The operation: `"read"`, `"write"`, `"rename"`, …
    pub fn op(&self) -> &str {
        self.op
    }

    /// The path the operation was about (the source, for two-path operations).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The second path of `copy`, `rename`, `hard_link` and `symlink`.
    pub fn to(&self) -> Option<&Path> {
        self.to.as_deref()
    }

    /// The OS error code of the original error (the wrapping `io::Error` has none).
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.path.display())?;
        if let Some(to) = &self.to {
            write!(f, " -> {}", to.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

impl StdError for PathError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// `e` from `op` on `path` (and `to`), as an `io::Error` of the same kind; a
/// cancellation passes through.
pub(crate) fn named(op: &'static str, path: &Path, to: Option<&Path>, e: io::Error) -> io::Error {
    if crate::net::is_cancellation(&e) {
        return e;
    }
    io::Error::new(
        e.kind(),
        PathError {
            op,
            path: path.to_path_buf(),
            to: to.map(Path::to_path_buf),
            source: e,
        },
    )
}
