//! The file-system functions of [`evloop::fs`](super): each one job on the blocking
//! pool, its error naming the path.
//!
//! Owns: the functions. Must not touch: the loop (only `spawn_blocking`) or the
//! directory stream (`dir`).

use std::fs::{Metadata, Permissions};
use std::io;
use std::path::{Path, PathBuf};

use super::error::named;

/// Runs `f(path)` on the blocking pool; its error named `op` on `path`.
async fn on_pool<T, F>(op: &'static str, path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
{
    let owned = path.to_path_buf();
    let done = crate::spawn_blocking(move || f(&owned))
        .await
        .map_err(io::Error::from)
        .and_then(|r| r);
    done.map_err(|e| named(op, path, None, e))
}

/// Runs `f(from, to)` on the blocking pool; its error named `op` on both paths.
async fn on_pool2<T, F>(op: &'static str, from: &Path, to: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Path, &Path) -> io::Result<T> + Send + 'static,
{
    let (a, b) = (from.to_path_buf(), to.to_path_buf());
    let done = crate::spawn_blocking(move || f(&a, &b))
        .await
        .map_err(io::Error::from)
        .and_then(|r| r);
    done.map_err(|e| named(op, from, Some(to), e))
}

macro_rules! one_path {
    ($(#[$doc:meta])* $name:ident -> $ret:ty, $std:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        ///
        /// The operation's error as a [`PathError`](super::PathError) naming the path;
        /// an `io::Error` wrapping `CancelledError` when the awaiting task is cancelled.
        ///
        /// # Panics
        ///
        /// When no event loop runs on this thread.
        pub async fn $name(path: impl AsRef<Path>) -> io::Result<$ret> {
            on_pool(stringify!($name), path.as_ref(), $std).await
        }
    };
}

macro_rules! two_paths {
    ($(#[$doc:meta])* $name:ident -> $ret:ty, $std:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        ///
        /// The operation's error as a [`PathError`](super::PathError) naming both paths;
        /// an `io::Error` wrapping `CancelledError` when the awaiting task is cancelled.
        ///
        /// # Panics
        ///
        /// When no event loop runs on this thread.
        pub async fn $name(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<$ret> {
            on_pool2(stringify!($name), from.as_ref(), to.as_ref(), $std).await
        }
    };
}

one_path!(
    /// The whole contents of a file (`std::fs::read`).
    ///
    /// ```
    /// evloop::run(async {
    ///     let path = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    ///     evloop::fs::write(&path, b"hello").await?;
    ///     assert_eq!(evloop::fs::read(&path).await?, b"hello");
    ///     assert_eq!(evloop::fs::read_to_string(&path).await?, "hello");
    ///     evloop::fs::remove_file(&path).await?;
    ///     assert!(!evloop::fs::try_exists(&path).await?);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    read -> Vec<u8>, |p| std::fs::read(p)
);
one_path!(
    /// The whole contents of a file as UTF-8 (`InvalidData` when it is not).
    read_to_string -> String, |p| std::fs::read_to_string(p)
);
one_path!(
    /// Removes a file.
    remove_file -> (), |p| std::fs::remove_file(p)
);
one_path!(
    /// Creates a directory (its parent must exist).
    create_dir -> (), |p| std::fs::create_dir(p)
);
one_path!(
    /// Creates a directory and every missing parent.
    create_dir_all -> (), |p| std::fs::create_dir_all(p)
);
one_path!(
    /// Removes an empty directory.
    remove_dir -> (), |p| std::fs::remove_dir(p)
);
one_path!(
    /// Removes a directory and everything in it.
    remove_dir_all -> (), |p| std::fs::remove_dir_all(p)
);
one_path!(
    /// A file's metadata, following symbolic links.
    metadata -> Metadata, |p| std::fs::metadata(p)
);
one_path!(
    /// A file's metadata, not following a symbolic link.
    symlink_metadata -> Metadata, |p| std::fs::symlink_metadata(p)
);
one_path!(
    /// The absolute path with every symbolic link resolved.
    canonicalize -> PathBuf, |p| std::fs::canonicalize(p)
);
one_path!(
    /// Where a symbolic link points.
    read_link -> PathBuf, |p| std::fs::read_link(p)
);
one_path!(
    /// Whether the path exists (`Ok(false)` for a dangling link or a missing file; an
    /// error when that cannot be told, e.g. no permission).
    try_exists -> bool, |p| p.try_exists()
);
two_paths!(
    /// Copies a file's contents and permissions; the bytes copied.
    copy -> u64, |a, b| std::fs::copy(a, b)
);
two_paths!(
    /// Renames a file or directory, replacing `to` if it is a file.
    rename -> (), |a, b| std::fs::rename(a, b)
);
two_paths!(
    /// Makes `to` a hard link to `from`.
    hard_link -> (), |a, b| std::fs::hard_link(a, b)
);
two_paths!(
    /// Makes `to` a symbolic link pointing at `from`.
    symlink -> (), |a, b| std::os::unix::fs::symlink(a, b)
);

/// Writes `contents` to a file, creating or truncating it (`std::fs::write`). The bytes
/// are copied once, into the pool's job.
///
/// # Errors
///
/// The write's error as a [`PathError`](super::PathError) naming the path; an
/// `io::Error` wrapping `CancelledError` when the awaiting task is cancelled (the write
/// itself still runs to its end on the pool).
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let contents = contents.as_ref().to_vec();
    on_pool("write", path.as_ref(), move |p| std::fs::write(p, contents)).await
}

/// Sets a file's permissions.
///
/// # Errors
///
/// As [`write`](write()).
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn set_permissions(path: impl AsRef<Path>, permissions: Permissions) -> io::Result<()> {
    on_pool("set_permissions", path.as_ref(), move |p| {
        std::fs::set_permissions(p, permissions)
    })
    .await
}
