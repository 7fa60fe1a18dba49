//! Running an example as a real process: building it in the test binary's profile, and
//! watching its stdout and stderr lines, sending it signals and waiting for its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds `examples/<name>.rs` in the profile of the running test binary and returns its
/// path: a no-op when `cargo test` already built it. The features are this test binary's
/// own plus `features`: building with fewer than `cargo test` did would rebuild the crate
/// a second time, and two tests asking for different sets would overwrite each other's
/// binary.
pub fn build_example(name: &str, features: Option<&str>) -> PathBuf {
    let mut wanted: Vec<&str> = [
        ("hyper", cfg!(feature = "hyper")),
        ("tokio-io", cfg!(feature = "tokio-io")),
        ("tls", cfg!(feature = "tls")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    for feature in features.into_iter().flat_map(|f| f.split(',')) {
        if !wanted.contains(&feature) {
            wanted.push(feature);
        }
    }
    let features = (!wanted.is_empty()).then(|| wanted.join(","));
    let features = features.as_deref();
    // This test binary is target/<profile dir>/deps/<name>; examples are built into
    // target/<profile dir>/examples. Build with the same profile.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile dir>");
    let mut args = vec!["build", "--example", name, "--quiet"];
    if let Some(features) = features {
        args.extend(["--features", features]);
    }
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    if profile != "debug" {
        args.extend(["--profile", profile]);
    }
    let status = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo {args:?} failed");
    let binary = profile_dir.join("examples").join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// A running example: its stdout lines arrive on a channel and its stderr lines are
/// collected (each read by a thread); it is killed on drop if still running. Every wait
/// gives up after `guard` (a hang guard, never a timing assertion).
pub struct ExampleProcess {
    child: Child,
    lines: Receiver<String>,
    /// The stdout lines read so far.
    pub seen: Vec<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    guard: Duration,
}

impl ExampleProcess {
    pub fn start(binary: &Path, args: &[&str], guard: Duration) -> ExampleProcess {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        ExampleProcess {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            guard,
        }
    }

    /// Waits for the next stdout line containing `needle` (earlier lines go to `seen`).
    pub fn line_containing(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + self.guard;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stdout line containing {needle:?} within {:?}; saw {:?}; stderr {:?}",
                    self.guard,
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn stderr_line_containing(&self, needle: &str) -> String {
        let deadline = Instant::now() + self.guard;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line containing {needle:?} within {:?}; saw {:?}",
                self.guard,
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signum: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid, signum) }, 0);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + self.guard;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit within {:?}; stdout so far: {:?}",
                self.guard,
                self.seen
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit and for both pipes to close; returns its status and
    /// everything it wrote to stdout and to stderr, one line each.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let status = self.wait_exit();
        let deadline = Instant::now() + self.guard;
        // The stdout reader ends (dropping its sender) at end-of-file.
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open after the exit"),
            }
        }
        // The stderr reader holds the other reference to the lines until end-of-file.
        while Arc::strong_count(&self.stderr) > 1 {
            assert!(
                Instant::now() < deadline,
                "stderr still open after the exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        (status, std::mem::take(&mut self.seen), stderr)
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server example: its process and the address from its first `listening on` line
/// (the text after the last `marker` on that line: `" "` or `"http://"`).
pub struct ExampleServer {
    pub process: ExampleProcess,
    pub addr: SocketAddr,
}

impl ExampleServer {
    pub fn start(binary: &Path, args: &[&str], guard: Duration, marker: &str) -> ExampleServer {
        let mut process = ExampleProcess::start(binary, args, guard);
        let line = process.line_containing("listening on ");
        let addr = line
            .rsplit(marker)
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        ExampleServer { process, addr }
    }
}

impl std::ops::Deref for ExampleServer {
    type Target = ExampleProcess;
    fn deref(&self) -> &ExampleProcess {
        &self.process
    }
}

impl std::ops::DerefMut for ExampleServer {
    fn deref_mut(&mut self) -> &mut ExampleProcess {
        &mut self.process
    }
}
