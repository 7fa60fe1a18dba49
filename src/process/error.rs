//! [`SpawnError`]: a failed spawn that names the program (X1).
//!
//! Owns: the wrapping of std's spawn error with the program and, when set, the working
//! directory. Must not touch: processes — `command` builds these.

use std::error::Error as StdError;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A spawn that failed: which program, in which working directory (when one was set),
/// and the OS error.
///
/// The `io::Error` of [`Command::spawn`](super::Command::spawn) wraps one of these, so
/// its message names the program (`"spawn nope: No such file or directory (os error
/// 2)"`) while [`io::Error::kind`] is the underlying error's (`NotFound` for a missing
/// program, `PermissionDenied` for one that is not executable).
///
/// ```
/// evloop::run(async {
///     let err = evloop::process::Command::new("evloop-no-such-program").spawn().unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
///     assert_eq!(
///         err.to_string(),
///         "spawn evloop-no-such-program: No such file or directory (os error 2)"
///     );
///     let detail = err.get_ref().unwrap().downcast_ref::<evloop::process::SpawnError>().unwrap();
///     assert_eq!(detail.program(), "evloop-no-such-program");
/// })
/// ```
#[derive(Debug)]
pub struct SpawnError {
    program: OsString,
    current_dir: Option<PathBuf>,
    source: io::Error,
}

impl SpawnError {
    /// The program that was to run.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The working directory set with `current_dir`, if any (a missing directory also
    /// fails the spawn with `NotFound`).
    pub fn current_dir(&self) -> Option<&Path> {
        self.current_dir.as_deref()
    }

    /// The OS error code of the original error (the wrapping `io::Error` has none).
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spawn {}", self.program.to_string_lossy())?;
        if let Some(dir) = &self.current_dir {
            write!(f, " (in {})", dir.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

impl StdError for SpawnError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// `e` from spawning `program` (in `current_dir`), as an `io::Error` of the same kind.
pub(super) fn spawn_error(program: &OsStr, current_dir: Option<&Path>, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        SpawnError {
            program: program.to_os_string(),
            current_dir: current_dir.map(Path::to_path_buf),
            source: e,
        },
    )
}
