//! External command-line tools in tests: finding one on `PATH` (skipping, or failing
//! under `EVLOOP_REQUIRE_HTTP_TOOLS=1`, when it is missing) and running one to completion
//! under a hang guard.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Hang guard for one run of an external tool.
pub const TOOL_GUARD: Duration = Duration::from_secs(120);

/// The external tool `name` from `PATH`, if installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The tool `name` (from the Debian package `package`), or `None` after printing a
/// skip line. With `EVLOOP_REQUIRE_HTTP_TOOLS=1` a missing tool fails the test.
pub fn require_tool(name: &str, package: &str) -> Option<PathBuf> {
    if let Some(path) = tool(name) {
        return Some(path);
    }
    if std::env::var("EVLOOP_REQUIRE_HTTP_TOOLS").as_deref() == Ok("1") {
        panic!(
            "{name} is not installed and EVLOOP_REQUIRE_HTTP_TOOLS=1: install the Debian \
             package {package} (apt-get install {package})"
        );
    }
    eprintln!("skipped: {name} not installed (Debian package {package})");
    None
}

/// Runs `cmd` to completion, killing it (and failing) after [`TOOL_GUARD`].
pub fn run_tool(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + TOOL_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {TOOL_GUARD:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A tool's stdout, after checking that it exited successfully.
pub fn tool_stdout(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run_tool(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
