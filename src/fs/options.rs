//! [`OpenOptions`]: how to open a [`File`] (std's `OpenOptions`, opened on the pool).
//!
//! Owns: the option set and the open job. Must not touch: the File's state machine
//! (`file`) — it only builds a `File` from the opened `std::fs::File`.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::named;
use super::file::File;

/// Options and flags to open a [`File`] with (std's and tokio's `OpenOptions`); the
/// open itself runs on the blocking pool.
///
/// ```
/// use std::io::SeekFrom;
/// use evloop::fs::OpenOptions;
///
/// evloop::run(async {
///     let path = std::env::temp_dir().join(format!("evloop-doc-opts-{}", std::process::id()));
///     evloop::fs::write(&path, "one\n").await?;
///     let mut log = OpenOptions::new().append(true).open(&path).await?;
///     log.seek(SeekFrom::Start(0)).await?; // append ignores the position
///     log.write_all(b"two\n").await?;
///     log.flush().await?;
///     assert_eq!(evloop::fs::read_to_string(&path).await?, "one\ntwo\n");
///     evloop::fs::remove_file(&path).await?;
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions(std::fs::OpenOptions);

impl OpenOptions {
    /// No access and no flags: set `read`, `write` or `append` before opening.
    pub fn new() -> OpenOptions {
        OpenOptions(std::fs::OpenOptions::new())
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.0.read(read);
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.0.write(write);
        self
    }

    /// Opens for appending (`O_APPEND`): every write goes to the end of the file,
    /// wherever the position is. Implies `write`.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.0.append(append);
        self
    }

    /// Truncates the file to 0 bytes when it is opened (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.0.truncate(truncate);
        self
    }

    /// Creates the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.0.create(create);
        self
    }

    /// Creates the file, failing with `AlreadyExists` if it exists (atomically;
    /// `create` and `truncate` are then ignored).
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.0.create_new(create_new);
        self
    }

    /// The permission bits a created file gets (before the umask; `0o666` by default).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.0.mode(mode);
        self
    }

    /// Extra `open(2)` flags, or-ed in (e.g. `libc::O_NOFOLLOW`).
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.0.custom_flags(flags);
        self
    }

    /// Opens `path` with these options (one pool job).
    ///
    /// # Errors
    ///
    /// The open's error as a [`PathError`](super::PathError) naming the path (`"open
    /// /etc/nope: No such file or directory (os error 2)"`); an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled (an open already running
    /// completes, and the file it opened is closed).
    ///
    /// # Panics
    ///
    /// When no event loop runs on this thread.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_path_buf();
        let (options, at) = (self.0.clone(), path.clone());
        let opened = crate::spawn_blocking(move || options.open(at))
            .await
            .map_err(io::Error::from)
            .and_then(|r| r);
        match opened {
            Ok(std) => Ok(File::from_parts(std, path)),
            Err(e) => Err(named("open", &path, None, e)),
        }
    }
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    fn from(options: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions(options)
    }
}
