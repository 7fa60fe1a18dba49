//! Running one test's scenario in a child process, for failures that would take the
//! whole test binary down with them: a process abort (a panic while panicking, as in a
//! destructor that panics during unwinding) or a stack overflow.
//!
//! [`isolate`] re-executes the test binary (`std::env::current_exe()`) with
//! `--exact <test name> --nocapture` and [`CHILD_ENV`] set to the test's name. In the
//! child the same test function runs again, sees the variable, and runs the scenario
//! itself; in the parent it only waits for the child and asserts that it exited
//! successfully, with the child's output and the signal that killed it (if one did) in
//! the failure message.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Set (to the test's name) in a child started by [`isolate`].
pub const CHILD_ENV: &str = "EVLOOP_TEST_CHILD";

/// How long a child may run before it counts as hung and is killed.
pub const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Printed by the child once the scenario returned, so the parent knows the scenario
/// really ran (and a misspelt test name, which makes libtest run nothing and exit 0,
/// is caught).
const DONE_MARKER: &str = "evloop-child-scenario-finished:";

/// What a child run produced.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Killed by the parent after [`CHILD_LIMIT`].
    pub timed_out: bool,
}

impl ChildRun {
    /// A one-line description of how the child ended: "exit status 0", "killed by
    /// signal 6 (SIGABRT)", …
    pub fn describe(&self) -> String {
        if self.timed_out {
            return format!("hung: killed after {CHILD_LIMIT:?}");
        }
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, None) => format!("{:?}", self.status),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT: the process aborted",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        _ => "another signal",
    }
}

/// Whether this process is the child started for `test_name`.
pub fn is_child_for(test_name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test_name)
}

/// Runs the test `test_name` of this binary in a child process and returns how it
/// ended. The child's `RUST_MIN_STACK` is removed, so its test thread has the default
/// stack size whatever the parent's environment, and backtraces are off.
pub fn run_child(test_name: &str) -> ChildRun {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .env_remove("RUST_MIN_STACK")
        // Short reports: the parent shows the tail of the child's output.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-executing the test binary");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + CHILD_LIMIT;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            // The child is ours (spawned just above): end it by its own handle.
            let _ = child.kill();
            break child.wait().expect("waiting for the killed child");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ChildRun {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    }
}

/// The last `n` lines of `text` (child output in failure messages).
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `scenario` in a child process (see the module docs) and asserts that the
/// child ran it to the end and exited successfully. `test_name` is the calling test's
/// name as libtest reports it (for a top-level test function: its name).
///
/// In the child, `scenario` runs on the test thread (the default 2 MiB stack); a panic
/// in it fails the child, an abort or a stack overflow kills it — each is reported by
/// the parent with the child's output.
pub fn isolate(test_name: &str, scenario: impl FnOnce()) {
    if is_child_for(test_name) {
        scenario();
        // On a line of its own (libtest has printed "test NAME ... " without a newline).
        println!("\n{DONE_MARKER} {test_name}");
        return;
    }
    let run = run_child(test_name);
    let finished = run
        .stdout
        .lines()
        .any(|l| l.trim() == format!("{DONE_MARKER} {test_name}"));
    assert!(
        run.status.success() && finished,
        "the child process running {test_name:?} failed: {} (scenario finished: {finished})\n\
         --- child stdout (tail) ---\n{}\n--- child stderr (tail) ---\n{}",
        run.describe(),
        tail(&run.stdout, 15),
        tail(&run.stderr, 25),
    );
}
