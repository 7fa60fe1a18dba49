//! [`Child`]: a running subprocess — its pipes, its exit, signals to it, and what
//! happens when it is dropped unreaped.
//!
//! Owns: one child's std handle, its exit watch and its status once reaped;
//! `communicate`'s concurrent feeding and draining. Must not touch: how the exit is
//! observed (`exit`) or the pipes' syscalls (`pipe`).

use std::fmt;
use std::io;
use std::process::{ExitStatus, Output};
use std::task::{Context, Poll};

use super::exit::{self, Orphan, Watch};
use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use crate::LoopHandle;

/// A spawned subprocess ([`Command::spawn`](super::Command::spawn)): asyncio's
/// `Process`, tokio's `Child`.
///
/// Its exit is awaited with [`wait`](Self::wait) (no thread per child: a pidfd
/// registered with the loop's reactor, or `SIGCHLD`). Dropped unreaped, the child is
/// killed first if the command said [`kill_on_drop`](super::Command::kill_on_drop),
/// and handed to a reaper either way, so it never stays a zombie.
///
/// ```
/// use evloop::process::Command;
/// evloop::run(async {
///     let mut child = Command::new("sleep").arg("10").spawn()?;
///     assert!(child.try_wait()?.is_none());
///     child.kill().await?;
///     use std::os::unix::process::ExitStatusExt;
///     assert_eq!(child.wait().await?.signal(), Some(libc::SIGKILL));
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    /// The child's standard input, when piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, when piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, when piped.
    pub stderr: Option<ChildStderr>,
    /// `None` only while being dropped.
    inner: Option<(std::process::Child, Watch)>,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
    owner: LoopHandle,
}

impl Child {
    /// Wraps a freshly spawned std child: its pipes and exit registered with the loop
    /// on this thread. On an error the child is killed and reaped in the background.
    pub(super) fn new(
        owner: LoopHandle,
        mut std: std::process::Child,
        kill_on_drop: bool,
    ) -> io::Result<Child> {
        let pipes = (std.stdin.take(), std.stdout.take(), std.stderr.take());
        let watch = Watch::new(&owner, std.id());
        let mut child = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            inner: Some((std, watch)),
            status: None,
            // Until the pipes are registered: a failure must not leave the child behind.
            kill_on_drop: true,
            owner,
        };
        child.stdin = pipes.0.map(|p| ChildStdin::new(p.into())).transpose()?;
        child.stdout = pipes.1.map(|p| ChildStdout::new(p.into())).transpose()?;
        child.stderr = pipes.2.map(|p| ChildStderr::new(p.into())).transpose()?;
        child.kill_on_drop = kill_on_drop;
        Ok(child)
    }

    fn std(&mut self) -> &mut std::process::Child {
        &mut self.inner.as_mut().expect("present until drop").0
    }

    /// The child's process id; `None` once it has been reaped (the id may then belong
    /// to another process).
    pub fn id(&self) -> Option<u32> {
        match (&self.inner, self.status) {
            (Some((std, _)), None) => Some(std.id()),
            _ => None,
        }
    }

    /// Waits for the child to exit and reaps it. Closes the child's stdin first (so a
    /// child reading it sees end of file instead of waiting forever). Once reaped, the
    /// status is kept: later calls return it at once.
    ///
    /// A loop-native await: cancelling it only stops the waiting — the child runs on,
    /// and a later `wait` (or the reaper, after a drop) still reaps it.
    ///
    /// With stdout or stderr piped, a child that writes more than a pipe holds (64 KiB)
    /// blocks until someone reads it, and `wait` waits with it: read the pipes
    /// concurrently, or use [`communicate`](Self::communicate) /
    /// [`wait_with_output`](Self::wait_with_output), which do (asyncio and tokio have
    /// the same rule).
    ///
    /// # Errors
    ///
    /// An `io::Error` wrapping `CancelledError` when the awaiting task is cancelled; the
    /// OS error of `waitpid` (`ECHILD` when someone else reaped the child).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(status) = self.status {
            return Poll::Ready(Ok(status));
        }
        let (std, watch) = self.inner.as_mut().expect("present until drop");
        let status = std::task::ready!(watch.poll_exit(cx, std))?;
        self.status = Some(status);
        exit::reap_orphans();
        Poll::Ready(Ok(status))
    }

    /// The exit status if the child has exited (reaping it), `None` if it still runs.
    /// Never waits.
    ///
    /// # Errors
    ///
    /// The OS error of `waitpid`.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.std().try_wait()?;
        }
        Ok(self.status)
    }

    /// Sends `SIGKILL` and returns at once; [`wait`](Self::wait) then reaps the child.
    /// A child already reaped is left alone (`Ok`).
    ///
    /// # Errors
    ///
    /// The OS error of `kill(2)`.
    pub fn start_kill(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Kills the child (`SIGKILL`) and waits for it to be reaped.
    ///
    /// # Errors
    ///
    /// As [`start_kill`](Self::start_kill), then as [`wait`](Self::wait).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Sends signal `signum` to the child (asyncio's `send_signal`). A child already
    /// reaped is left alone (`Ok`): its pid may belong to another process by now.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number that is not a signal; the OS error of `kill(2)`.
    pub fn send_signal(&mut self, signum: i32) -> io::Result<()> {
        if !(0..=64).contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send_signal: invalid signal number {signum} (signals are 1 to 64; 0 only \
                     checks that the child exists)"
                ),
            ));
        }
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = self.std().id();
        // Unreaped, so the pid is still this child's.
        crate::sys::kill(pid, signum)
    }

    /// Sends `SIGTERM` (asyncio's `terminate`).
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// asyncio's `communicate`: writes `input` to the child's stdin and closes it,
    /// while reading its stdout and stderr (those piped) — all three at once, so
    /// megabytes each way never deadlock on a full pipe — then waits for the child.
    /// A child that closes its stdin early is not an error (the rest of `input` is
    /// dropped, as asyncio does). Streams not piped give empty output.
    ///
    /// Cancelled half-way, the bytes read so far are lost; the pipes not yet finished
    /// stay in the `Child`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `input` is not empty but stdin is not piped; a read error of
    /// stdout or stderr, a write error of stdin other than `BrokenPipe`; then as
    /// [`wait`](Self::wait).
    pub async fn communicate(&mut self, input: &[u8]) -> io::Result<Output> {
        if !input.is_empty() && self.stdin.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "communicate: input given but the child's stdin is not piped \
                 (spawn it with .stdin(Stdio::piped()))",
            ));
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut written = 0;
        std::future::poll_fn(|cx| {
            if let Some(stdin) = &self.stdin {
                loop {
                    if written == input.len() {
                        self.stdin = None;
                        break;
                    }
                    match stdin.poll_write(cx, &input[written..]) {
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Ready(Err(e)) if is_reader_gone(&e) => {
                            self.stdin = None;
                            break;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    }
                }
            }
            if let Some(stdout) = &self.stdout {
                if drain(cx, &mut out, |cx, buf| stdout.poll_read(cx, buf))?.is_ready() {
                    self.stdout = None;
                }
            }
            if let Some(stderr) = &self.stderr {
                if drain(cx, &mut err, |cx, buf| stderr.poll_read(cx, buf))?.is_ready() {
                    self.stderr = None;
                }
            }
            if self.stdin.is_none() && self.stdout.is_none() && self.stderr.is_none() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    /// Closes stdin, reads stdout and stderr (those piped) to their end concurrently and
    /// waits for the child (tokio's `wait_with_output`; [`communicate`](Self::communicate)
    /// with no input).
    ///
    /// # Errors
    ///
    /// As [`communicate`](Self::communicate).
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        self.communicate(&[]).await
    }
}

/// The write error of a pipe whose reader is gone (the child closed stdin or exited).
fn is_reader_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Reads into `out` until the pipe would block (`Pending`) or ends (`Ready`).
fn drain(
    cx: &mut Context<'_>,
    out: &mut Vec<u8>,
    mut read: impl FnMut(&mut Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>,
) -> io::Result<Poll<()>> {
    const CHUNK: usize = 64 * 1024;
    loop {
        let len = out.len();
        out.resize(len + CHUNK, 0);
        let done = read(cx, &mut out[len..]);
        let n = match done {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => {
                out.truncate(len);
                return Err(e);
            }
            Poll::Pending => 0,
        };
        out.truncate(len + n);
        match done {
            Poll::Pending => return Ok(Poll::Pending),
            Poll::Ready(_) if n == 0 => return Ok(Poll::Ready(())),
            Poll::Ready(_) => {}
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some((mut std, watch)) = self.inner.take() else {
            return;
        };
        if self.status.is_some() {
            return;
        }
        if self.kill_on_drop {
            let _ = std.kill();
        }
        if !matches!(std.try_wait(), Ok(None)) {
            return;
        }
        // Running: a task on the loop that watches it reaps it when it exits; if the
        // loop is closed (or closes first), the orphan list does.
        // The spawning loop, or — when it has closed — the loop this drop runs on.
        let target = match LoopHandle::try_current() {
            Some(here) if self.owner.is_closed() => here,
            _ => self.owner.clone(),
        };
        let orphan = Orphan::new(std, watch);
        drop(target.spawn(orphan.reap()));
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("status", &self.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}
