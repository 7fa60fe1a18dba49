//! What `/proc` says about processes and descriptors, for the subprocess tests
//! (`tests/process_*.rs`, which include this file with `#[path]`): a process's state and
//! parent, this process's children, its pidfds, and bounded waits on the loop until a
//! process is gone.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Fields 3 and 4 of `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (a zombie: exited, not reaped), `T`, …
    pub state: char,
    pub ppid: u32,
}

/// `/proc/<pid>/stat`'s state and parent; `None` once the process is gone (reaped).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The fields after the command name, which is in parentheses and may itself hold
/// spaces and parentheses (so the last `)` ends it).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid })
}

/// Every process whose parent is this process, with its state letter.
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc is mounted") {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if s.ppid == me {
                out.push((pid, s.state));
            }
        }
    }
    out.sort_unstable();
    out
}

/// The children of this process that are zombies (exited, not reaped).
pub fn zombies() -> Vec<u32> {
    children()
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// How many of this process's descriptors are pidfds (`anon_inode:[pidfd]`).
pub fn pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:[pidfd]")
        .count()
}

/// The bound of every wait below: a hang guard, not a timing assertion.
pub const GUARD: Duration = Duration::from_secs(10);

/// Yields to the loop (then sleeps 1 ms per round, so a reaper and timers can run)
/// until `done()` gives `Some`; after [`GUARD`] fails the test with `what` and the last
/// state `describe()` reports.
pub async fn until<T>(
    what: &str,
    mut done: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + GUARD;
    let mut round = 0u32;
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "still not true after {GUARD:?}: {what}; last seen: {}",
            describe()
        );
        if round < 20 {
            evloop::yield_now().await.expect("yield_now");
        } else {
            evloop::time::sleep(Duration::from_millis(1))
                .await
                .expect("sleep");
        }
        round += 1;
    }
}

/// Waits on the loop until `/proc/<pid>` is gone: the process exited *and* was reaped.
pub async fn until_reaped(pid: u32, what: &str) {
    until(
        &format!("process {pid} ({what}) reaped"),
        || stat(pid).is_none().then_some(()),
        || format!("{:?}", stat(pid)),
    )
    .await
}

/// Waits on the loop until this process has no children at all (none running, no
/// zombie).
pub async fn until_no_children(what: &str) {
    until(
        &format!("no child processes left ({what})"),
        || children().is_empty().then_some(()),
        || {
            let c = children();
            let zombies = c.iter().filter(|(_, s)| *s == 'Z').count();
            format!(
                "{} children, {zombies} of them zombies: {:?}",
                c.len(),
                &c[..c.len().min(20)]
            )
        },
    )
    .await
}

#[test]
fn parse_stat_handles_parentheses_in_the_name() {
    let s = parse_stat("42 (a (b) c) S 17 42 42 0 -1").unwrap();
    assert_eq!(
        s,
        Stat {
            state: 'S',
            ppid: 17
        }
    );
}
