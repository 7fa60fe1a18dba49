//! Where the default exception handler's reports go (SPEC U1, with L9 and F10): with no
//! `log` logger installed they are written to stderr, as asyncio does, so an unhandled
//! task error or a panicking callback is never silent; with a logger they go to the
//! logger (`log::error!`) and not to stderr.
//!
//! Covers, each in a child process (this test binary re-executed with `--exact <name>
//! --nocapture` and `EVLOOP_ERRORS_STDERR_CHILD` selecting the mode; the parent reads
//! the child's stdout and stderr):
//! * mode 1, no logger: a dropped task that failed with "lost-marker" gives a stderr
//!   line with "Task exception was never retrieved" and "lost-marker"; a panicking
//!   `call_soon` callback gives "Exception in callback" and its panic message;
//! * mode 2, a minimal logger writing to stdout with a `LOGGED:` prefix: both reports
//!   reach the logger, and stderr has neither.
//!
//! The child silences Rust's panic hook, so the only possible source of the panic
//! message on its stderr is evloop's report.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evloop::{Error, LoopHandle};

const CHILD_ENV: &str = "EVLOOP_ERRORS_STDERR_CHILD";
const CHILD_TEST: &str = "child_mode_report_lost_errors";
const TASK_MARKER: &str = "lost-marker";
const PANIC_MARKER: &str = "callback-panic-marker";
const LOGGED: &str = "LOGGED:";
const NEVER_RETRIEVED: &str = "Task exception was never retrieved";
const IN_CALLBACK: &str = "Exception in callback";

/// The logger of mode 2: every record on stdout, prefixed, one line each.
struct StdoutLogger;

impl log::Log for StdoutLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        println!(
            "{LOGGED} {} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static STDOUT_LOGGER: StdoutLogger = StdoutLogger;

/// Child mode (a no-op unless `EVLOOP_ERRORS_STDERR_CHILD` is set): mode "2" installs
/// the stdout logger first; then a task fails with nobody retrieving its error and a
/// callback panics.
#[test]
fn child_mode_report_lost_errors() {
    let Some(mode) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    if mode == "2" {
        log::set_logger(&STDOUT_LOGGER).expect("the only logger of the child");
        log::set_max_level(log::LevelFilter::Trace);
    }
    std::panic::set_hook(Box::new(|_| {}));
    evloop::run(async {
        drop(evloop::create_task(async {
            Err::<(), _>(Error::msg(TASK_MARKER))
        }));
        common::yield_times(5).await;
        LoopHandle::current().call_soon(|| panic!("{PANIC_MARKER}"));
        common::yield_times(5).await;
    });
    println!("CHILD done");
}

/// Runs the child in `mode`; fails (after killing it) if it takes more than 20 s.
fn run_child(mode: &str) -> (String, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-executing the test binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("CHILD done"),
        "child (mode {mode}) failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn lines_with<'a>(text: &'a str, all: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| all.iter().all(|needle| line.contains(needle)))
        .collect()
}

/// Pins a bug (fails until fixed; SPEC U1): with no logger installed the default
/// exception handler's `log::error!` goes nowhere, so a task error nobody retrieved and
/// a panicking callback leave no trace at all. They must be written to stderr.
#[test]
fn without_a_logger_lost_errors_are_written_to_stderr() {
    let (_, stderr) = run_child("1");
    assert!(
        !lines_with(&stderr, &[NEVER_RETRIEVED, TASK_MARKER]).is_empty(),
        "no stderr line with {NEVER_RETRIEVED:?} and {TASK_MARKER:?}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(IN_CALLBACK) && stderr.contains(PANIC_MARKER),
        "stderr lacks {IN_CALLBACK:?} with the panic message {PANIC_MARKER:?}; stderr:\n{stderr}"
    );
}

/// With a logger installed the reports go to it (`log::error!`, as before) and stderr
/// stays clean: no duplicate.
#[test]
fn with_a_logger_lost_errors_go_to_the_logger_not_to_stderr() {
    let (stdout, stderr) = run_child("2");
    let task_lines = lines_with(&stdout, &[LOGGED, NEVER_RETRIEVED, TASK_MARKER]);
    assert!(
        task_lines.iter().any(|line| line.contains("ERROR")),
        "the logger got no error record for the lost task error; stdout:\n{stdout}"
    );
    assert!(
        !lines_with(&stdout, &[LOGGED, IN_CALLBACK]).is_empty() && stdout.contains(PANIC_MARKER),
        "the logger got no record of the panicking callback; stdout:\n{stdout}"
    );
    for needle in [NEVER_RETRIEVED, TASK_MARKER, IN_CALLBACK, PANIC_MARKER] {
        assert!(
            !stderr.contains(needle),
            "with a logger, {needle:?} was also written to stderr:\n{stderr}"
        );
    }
}
