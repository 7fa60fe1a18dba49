//! [`Command`]: std's process builder, spawning children watched by the loop.
//!
//! Owns: the builder (a `std::process::Command` plus `kill_on_drop`) and the spawn —
//! fork/exec by std, then the child's pipes and exit watch registered with the loop on
//! this thread. Must not touch: a running child (`child`) or its exit (`exit`).

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use super::child::Child;
use super::error::spawn_error;
use super::exit;

/// A process builder (std's, with the same methods), whose [`spawn`](Self::spawn)
/// gives a [`Child`] whose exit and pipes are awaited on the loop — asyncio's
/// `create_subprocess_exec`, tokio's `process::Command`.
///
/// ```
/// use evloop::process::{Command, Stdio};
/// evloop::run(async {
///     let out = Command::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3").output().await?;
///     assert_eq!(out.status.code(), Some(3));
///     assert_eq!(out.stdout, b"out\n");
///     assert_eq!(out.stderr, b"err\n");
///
///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
///     let out = child.communicate(b"through cat").await?;
///     assert_eq!(out.stdout, b"through cat");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    stdin_set: bool,
}

/// A builder method forwarding to std's.
macro_rules! forward {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(&mut self, $($arg: $ty),*) -> &mut Command {
            self.std.$name($($arg),*);
            self
        }
    };
}

impl Command {
    /// A builder for running `program` (looked up in `PATH` when it has no `/`), with
    /// no arguments, the parent's environment and working directory, and inherited
    /// standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    forward!(
        /// Clears the child's environment (only variables set afterwards are passed).
        env_clear()
    );

    /// Sets the child's working directory. A missing directory fails the spawn with
    /// `NotFound`, the error naming the directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input: `Stdio::piped()` makes [`Child::stdin`] an evloop
    /// stream; `Stdio::null()`, `inherit()` (the default for `spawn`), or a file.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's standard output (`Stdio::piped()`: [`Child::stdout`]).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's standard error (`Stdio::piped()`: [`Child::stderr`]).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether dropping the [`Child`] unreaped kills it (`SIGKILL`) first. Off by
    /// default (as tokio): a dropped child runs on, and is reaped when it exits.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    forward!(
        /// Runs the child with user id `id` (`setuid`).
        uid(id: u32)
    );

    forward!(
        /// Runs the child with group id `id` (`setgid`).
        gid(id: u32)
    );

    forward!(
        /// Puts the child in process group `pgroup` (0: a new group led by the child).
        process_group(pgroup: i32)
    );

    /// The name the child sees as `argv[0]`.
    pub fn arg0(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg0(arg);
        self
    }

    /// The program to run.
    pub fn get_program(&self) -> &OsStr {
        self.std.get_program()
    }

    /// The std builder, to read its settings.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The std builder, for settings this type does not forward (`pre_exec`, …).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child. Its piped streams and its exit are registered with the loop
    /// on this thread: the pipes' awaits make progress while that loop runs, and
    /// [`Child::wait`] works on any loop (the watch moves to the loop that waits) or,
    /// while the spawning loop runs, from any executor.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`](super::SpawnError) naming the program (and the working
    /// directory when one was set), of the OS error's kind: `NotFound` for a missing
    /// program or directory, `PermissionDenied` for a file that is not executable. An
    /// error, before anything is started, when no event loop runs on this thread.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let Some(owner) = crate::LoopHandle::try_current() else {
            return Err(io::Error::other(format!(
                "spawn {}: no running event loop on this thread; a child's exit and pipes \
                 are watched by the loop it is spawned on (spawn inside Runtime::block_on \
                 or a task)",
                self.get_program().to_string_lossy()
            )));
        };
        exit::reap_orphans();
        let child = self
            .std
            .spawn()
            .map_err(|e| spawn_error(self.std.get_program(), self.std.get_current_dir(), e))?;
        Child::new(owner, child, self.kill_on_drop)
    }

    /// Runs the child to its end and collects its output: stdout and stderr piped
    /// (whatever was set), stdin `Stdio::null()` unless set with [`stdin`](Self::stdin)
    /// (a stdin set through [`as_std_mut`](Self::as_std_mut) is replaced) — std's and
    /// tokio's rule.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), then as [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        self.std.stdout(Stdio::piped()).stderr(Stdio::piped());
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        self.spawn()?.wait_with_output().await
    }

    /// Runs the child to its end with inherited streams (those not set) and returns its
    /// status.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), then as [`Child::wait`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// The [`Command`] for running `cmd` with the shell, `/bin/sh -c cmd` — asyncio's
/// `create_subprocess_shell`. A builder, since Rust has no keyword arguments: set its
/// streams, then [`spawn`](Command::spawn). As with any shell, never put untrusted
/// input in `cmd`.
///
/// ```
/// use evloop::process::{create_subprocess_shell, Stdio};
/// evloop::run(async {
///     let mut child = create_subprocess_shell("echo $((6 * 7))").stdout(Stdio::piped()).spawn()?;
///     let out = child.communicate(b"").await?;
///     assert_eq!(out.stdout, b"42\n");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_subprocess_shell(cmd: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(cmd);
    command
}
