//! Subprocesses on the loop (SPEC §15 X1; asyncio's `create_subprocess_exec` /
//! `create_subprocess_shell`, tokio's `process`): [`Command`] (std's builder) spawns a
//! [`Child`] whose exit is awaited with [`Child::wait`] and whose piped standard streams
//! are evloop streams ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`], with
//! futures-io's traits, and tokio's with feature `tokio-io`).
//!
//! ```
//! use evloop::process::{Command, Stdio, create_subprocess_shell};
//! evloop::run(async {
//!     // asyncio: proc = await create_subprocess_exec("tr", "a-z", "A-Z", stdin=PIPE, stdout=PIPE)
//!     let mut child = Command::new("tr")
//!         .args(["a-z", "A-Z"])
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let out = child.communicate(b"shout").await?;
//!     assert_eq!(out.stdout, b"SHOUT");
//!     assert!(out.status.success());
//!
//!     let status = create_subprocess_shell("exit 4").status().await?;
//!     assert_eq!(status.code(), Some(4));
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **How an exit travels.** No thread per child. On Linux ≥ 5.3 each child gets a
//! pidfd, registered with the reactor of the loop that spawned it like a socket; the
//! kernel makes it readable when the child exits, the reactor wakes the task in
//! [`Child::wait`], and `waitpid(WNOHANG)` reaps it. Without pidfds (or with the
//! environment variable `EVLOOP_PROCESS_NO_PIDFD=1` set before the first spawn), the
//! signal module's `SIGCHLD` wait wakes every waiting child, which each try
//! `waitpid(WNOHANG)` on their own pid. A cancelled `wait` only drops the wait.
//!
//! **No zombies.** A `Child` dropped unreaped is killed first when the command said
//! [`kill_on_drop`](Command::kill_on_drop), then watched by a task on its loop that
//! reaps it when it exits; if that loop has closed, the child joins a process-wide
//! orphan list that every later spawn and observed exit sweeps (tokio has the same
//! rule). A process that spawns nothing more after its loops closed keeps such a zombie
//! until it exits.
//!
//! Owns: the builder, the child, its exit watch and pipes. Must not touch: the reactor
//! (pipes and pidfds go through `net::Registration`), or signal dispatch (through
//! `signal::wait`).

mod child;
mod command;
mod error;
mod exit;
mod pipe;

pub use child::Child;
pub use command::{Command, create_subprocess_shell};
pub use error::SpawnError;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};
