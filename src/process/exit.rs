//! How a child's exit reaches the task awaiting it, and the reaper that leaves no
//! zombie behind.
//!
//! Owns: the exit watch of one child — a pidfd registered with the reactor (Linux ≥
//! 5.3), or, where there is none, a wait for `SIGCHLD` through the signal module — and
//! the process-wide list of orphans (children whose `Child` was dropped unreaped while
//! no loop could watch them). Must not touch: the child's pipes (`pipe`) or its public
//! API (`child`); mio (the pidfd goes through `net::Registration`).
//!
//! The path of an exit: the kernel marks the child a zombie and wakes the pidfd's wait
//! queue → the reactor's `epoll_wait` reports the registered pidfd readable → the
//! waiting task is woken as for any socket → its `wait` calls `waitpid(pid, WNOHANG)`
//! (std's `Child::try_wait`), which reaps the child and yields its `ExitStatus`. In the
//! fallback, the signal module's `SIGCHLD` handler sets its pending bit and wakes the
//! loop, which completes every `signal::wait(SIGCHLD)` future; each waiting child then
//! tries `waitpid` on its own pid (one `SIGCHLD` may stand for several exits, so every
//! waiter checks). Neither path has a thread per child, and a cancelled wait only
//! drops its readiness or signal wait: the child runs on.

use std::future::Future as _;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use crate::LoopHandle;
use crate::future::Future;
use crate::net::Registration;
use crate::reactor::{Direction, Interest};
use crate::task::coop;

/// The environment variable that forces the `SIGCHLD` fallback (read once per process,
/// at the first spawn): for testing the fallback on a kernel with pidfds, and as an
/// escape hatch where a seccomp policy misreports `pidfd_open`.
pub(super) const NO_PIDFD_ENV: &str = "EVLOOP_PROCESS_NO_PIDFD";

/// Whether to try `pidfd_open`: cleared for good by the environment variable or by the
/// first `pidfd_open` that fails with `ENOSYS` / `Unsupported`.
static PIDFD_USABLE: AtomicBool = AtomicBool::new(true);
static PIDFD_CHECKED_ENV: std::sync::Once = std::sync::Once::new();

fn pidfd_usable() -> bool {
    PIDFD_CHECKED_ENV.call_once(|| {
        if std::env::var_os(NO_PIDFD_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
            PIDFD_USABLE.store(false, Ordering::Relaxed);
        }
    });
    PIDFD_USABLE.load(Ordering::Relaxed)
}

/// How one child's exit is observed. The registration is declared before the fd so it
/// is deregistered before the fd closes.
pub(super) enum Watch {
    Pidfd {
        registration: Registration,
        _fd: OwnedFd,
    },
    /// The current `signal::wait(SIGCHLD)` and the loop it waits on, created before
    /// each `waitpid` attempt so that no signal can fall between the attempt and the
    /// wait. `owner` is the spawning loop, waited on when the poller is not on a loop.
    Sigchld {
        owner: LoopHandle,
        wait: Option<(u64, Future<()>)>,
    },
}

impl Watch {
    /// A watch for child `pid`, registered with `owner`, the loop on this thread.
    /// Never fails: without a pidfd (old kernel, fd limit) the child is watched through
    /// `SIGCHLD`.
    pub(super) fn new(owner: &LoopHandle, pid: u32) -> Watch {
        if pidfd_usable() {
            match crate::sys::pidfd_open(pid) {
                Ok(fd) => match Registration::new(fd.as_raw_fd(), Interest::Readable) {
                    Ok(registration) => {
                        return Watch::Pidfd {
                            registration,
                            _fd: fd,
                        };
                    }
                    Err(e) => log::debug!(target: "evloop", "pidfd not registered ({e}): SIGCHLD"),
                },
                Err(e)
                    if e.kind() == io::ErrorKind::Unsupported
                        || e.raw_os_error() == Some(libc::ENOSYS) =>
                {
                    PIDFD_USABLE.store(false, Ordering::Relaxed);
                }
                Err(e) => log::debug!(target: "evloop", "pidfd_open({pid}): {e}; using SIGCHLD"),
            }
        }
        Watch::Sigchld {
            owner: owner.clone(),
            wait: None,
        }
    }

    /// Whether this watch is a pidfd (for the tests' and docs' claims).
    #[cfg(test)]
    pub(super) fn is_pidfd(&self) -> bool {
        matches!(self, Watch::Pidfd { .. })
    }

    /// Ready with the exit status once the child has exited and been reaped. A
    /// loop-native await: a pending cancellation of the current task is returned as an
    /// error (and the child keeps running).
    ///
    /// Polled on a running loop other than the one the watch waits on (the `Child`
    /// moved, or its loop closed), the watch moves to this loop first: the other loop
    /// may close, or never poll again, while this one waits.
    pub(super) fn poll_exit(
        &mut self,
        cx: &mut Context<'_>,
        child: &mut std::process::Child,
    ) -> Poll<io::Result<ExitStatus>> {
        let here = LoopHandle::try_current().filter(|h| !h.is_closed());
        if let (Watch::Pidfd { registration, .. }, Some(here)) = (&*self, &here) {
            if registration.owner_id() != here.id() {
                if let Some(status) = child.try_wait()? {
                    return Poll::Ready(Ok(status));
                }
                *self = Watch::new(here, child.id());
            }
        }
        match self {
            Watch::Pidfd { registration, .. } => {
                // Readable means exited: `waitpid(WNOHANG)` then reaps it. A `None`
                // (never seen) is treated as `WouldBlock`: readiness is cleared and the
                // next event awaited.
                registration.poll_io(cx, Direction::Read, || {
                    child
                        .try_wait()?
                        .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))
                })
            }
            Watch::Sigchld { owner, wait } => {
                loop {
                    if let Some(cancelled) = coop::take_cancel() {
                        *wait = None;
                        return Poll::Ready(Err(io::Error::from(cancelled)));
                    }
                    let Some(target) = here
                        .clone()
                        .or_else(|| Some(owner.clone()).filter(|o| !o.is_closed()))
                    else {
                        *wait = None;
                        return Poll::Ready(Err(io::Error::other(
                            "evloop: cannot wait for the child: the loop it was spawned on is \
                             closed and no loop runs on this thread (await wait() inside \
                             Runtime::block_on)",
                        )));
                    };
                    if wait.as_ref().is_some_and(|(id, _)| *id != target.id()) {
                        *wait = None;
                    }
                    let (_, pending) = wait.get_or_insert_with(|| {
                        (target.id(), crate::signal::wait_on(&target, libc::SIGCHLD))
                    });
                    if let Some(status) = child.try_wait()? {
                        *wait = None;
                        return Poll::Ready(Ok(status));
                    }
                    match Pin::new(pending).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => *wait = None,
                        // The task's cancellation, delivered through the wait by its
                        // cancel hook (a wait left from a closed loop is never polled:
                        // it was replaced above).
                        Poll::Ready(Err(e)) => {
                            *wait = None;
                            return Poll::Ready(Err(io::Error::from(e)));
                        }
                    }
                }
            }
        }
    }
}

/// Children dropped unreaped whose watching task could not run (their loop closed):
/// tried with `waitpid(WNOHANG)` at every spawn and every observed exit.
static ORPHANS: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

/// Adds `child` to the orphan list (it is running, or exited and unreaped).
pub(super) fn adopt(child: std::process::Child) {
    ORPHANS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(child);
}

/// Reaps every orphan that has exited. Runs no user code (std's `Child` has no user
/// drop), so holding the lock throughout is fine.
pub(super) fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(PoisonError::into_inner);
    if orphans.is_empty() {
        return;
    }
    // An error from `waitpid` (ECHILD: someone else reaped it) also ends the watch.
    orphans.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
}

/// How many orphans wait in the list (for tests).
#[cfg(test)]
pub(super) fn orphan_count() -> usize {
    ORPHANS.lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// A dropped, unreaped child on its way to being reaped: its watch's task awaits the
/// exit; if the task never gets to finish (its loop closed), the child goes to the
/// orphan list.
pub(super) struct Orphan {
    child: Option<(std::process::Child, Watch)>,
}

impl Orphan {
    pub(super) fn new(child: std::process::Child, watch: Watch) -> Orphan {
        Orphan {
            child: Some((child, watch)),
        }
    }

    /// Awaits the exit and reaps the child.
    pub(super) async fn reap(mut self) -> Result<(), crate::Error> {
        let reaped = std::future::poll_fn(|cx| match &mut self.child {
            Some((child, watch)) => watch.poll_exit(cx, child),
            None => Poll::Ready(Err(io::Error::other("no child"))),
        })
        .await;
        if reaped.is_ok() {
            self.child = None;
        }
        reap_orphans();
        Ok(())
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some((mut child, watch)) = self.child.take() {
            drop(watch);
            if matches!(child.try_wait(), Ok(None)) {
                adopt(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exited_orphan_is_reaped_and_a_running_one_kept() {
        let done = std::process::Command::new("true").spawn().unwrap();
        let running = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let running_pid = running.id();
        let base = orphan_count();
        adopt(done);
        adopt(running);
        // `true` exits at once; give it a bounded while.
        for _ in 0..500 {
            reap_orphans();
            if orphan_count() == base + 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(orphan_count(), base + 1, "the exited orphan was reaped");
        // SAFETY: `running_pid` is our unreaped child (in the orphan list), so the pid
        // cannot have been reused.
        unsafe { libc::kill(running_pid as libc::pid_t, libc::SIGKILL) };
        for _ in 0..500 {
            reap_orphans();
            if orphan_count() == base {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(orphan_count(), base, "the killed orphan was reaped");
    }

    #[test]
    fn pidfd_watch_is_used_on_this_kernel() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let child = std::process::Command::new("true").spawn().unwrap();
            let watch = Watch::new(&crate::LoopHandle::current(), child.id());
            let mut child = child;
            let _ = child.wait();
            assert!(watch.is_pidfd(), "Linux >= 5.3 has pidfd_open");
        });
    }
}
