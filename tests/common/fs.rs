//! Helpers of the file-system tests (`tests/fs_*.rs`): a temporary directory removed on
//! drop, and a blocking pool of one thread that a [`Blocker`] can hold.

use std::path::{Path, PathBuf};

/// A fresh directory under the system's temp dir, removed when dropped (even on panic).
/// `name` and the process id make it unique per test and run.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("evloop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime whose blocking pool has one thread, so a [`Blocker`] holds it and every
/// later job waits in the queue until it is released.
pub fn one_pool_thread() -> evloop::Runtime {
    evloop::Runtime::builder()
        .blocking_threads(1)
        .build()
        .unwrap()
}

/// Occupies a pool thread until released.
pub struct Blocker {
    release: std::sync::mpsc::Sender<()>,
    job: evloop::JobHandle<()>,
}

impl Blocker {
    pub fn new() -> Blocker {
        let (release, wait) = std::sync::mpsc::channel();
        let job = evloop::spawn_blocking(move || {
            let _ = wait.recv();
        });
        Blocker { release, job }
    }

    pub async fn release(self) {
        drop(self.release);
        self.job.await.unwrap();
    }
}
