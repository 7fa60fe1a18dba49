//! Every raw system call evloop makes, each through the one helper [`cvt`], and
//! everything that is Linux-only.
//!
//! Owns: the precision timer (`timerfd` on Linux), and the pipe and pidfd calls of
//! `process`. Must not touch: mio (the reactor
//! registers the fd like any other source) or any loop state. On other Unix systems
//! [`TimerFd::new`] reports `Unsupported` and the reactor falls back to mio's
//! millisecond poll timeout, so a kqueue port only has to add its timer here.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Turns the `-1`-and-`errno` convention of a libc call into an `io::Result`.
fn cvt(res: libc::c_int) -> io::Result<libc::c_int> {
    if res == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// Flags for `send` on stream sockets: never raise SIGPIPE on a closed peer (N5); the
/// error comes back as `EPIPE` instead.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// Whether an error means the process or system is out of file descriptors.
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Nanoseconds on a coarse monotonic clock, never 0: Linux's `CLOCK_MONOTONIC_COARSE`,
/// which costs a few nanoseconds to read where `Instant::now` costs ≈ 20 (it reads the
/// kernel's last tick instead of the TSC; resolution one tick, 1–4 ms). For
/// bookkeeping that a loop iteration must not pay a precise clock read for (K6's "last
/// polled"); never for timers.
pub(crate) fn coarse_monotonic_ns() -> u64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        if cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) }).is_ok() {
            let ns = (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64);
            return ns.max(1);
        }
    }
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `read(2)` on a raw fd (a subprocess pipe).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call; a bad
    // `fd` is reported as `EBADF`, never undefined behaviour.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    cvt_size(n)
}

/// `write(2)` on a raw fd (a subprocess pipe). A pipe whose reader is gone gives
/// `EPIPE` (Rust programs ignore `SIGPIPE`, as std sets it up before `main`).
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    cvt_size(n)
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    // SAFETY: `F_GETFL` takes no pointer argument.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: `F_SETFL` takes an integer argument, no pointer.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) })?;
    Ok(())
}

/// Sends signal `signum` to process `pid` (`kill(2)`). The caller makes sure `pid` is
/// its own unreaped child, so it cannot name a recycled pid.
pub(crate) fn kill(pid: u32, signum: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid pid {pid}"),
        ));
    }
    // SAFETY: kill takes two integers, no pointers.
    cvt(unsafe { libc::kill(pid, signum) }).map(drop)
}

fn cvt_size(n: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A pidfd for child `pid` (`pidfd_open(2)`, Linux ≥ 5.3): readable once the child has
/// exited; close-on-exec. `Unsupported` where there is none.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        use std::os::fd::FromRawFd;
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
        // SAFETY: pidfd_open takes a pid and a flags word, no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = RawFd::try_from(fd).unwrap_or(-1);
        let fd = cvt(fd)?;
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(any(not(target_os = "linux"), miri))]
    {
        let _ = pid;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use linux::TimerFd;

#[cfg(all(target_os = "linux", not(miri)))]
mod linux {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A one-shot `CLOCK_MONOTONIC` timerfd: non-blocking, close-on-exec.
    #[derive(Debug)]
    pub(crate) struct TimerFd {
        fd: OwnedFd,
    }

    impl TimerFd {
        pub(crate) fn new() -> io::Result<TimerFd> {
            let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
            // SAFETY: timerfd_create takes no pointers; a non-negative result is a fresh
            // fd that nothing else owns.
            let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) })?;
            // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(TimerFd { fd })
        }

        /// Arms the timer to expire once, `after` from now (at least 1 ns: a zero
        /// `it_value` would disarm it). Re-arming resets the expiration count.
        pub(crate) fn set(&self, after: Duration) -> io::Result<()> {
            let after = after.max(Duration::from_nanos(1));
            let secs = libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: secs,
                    tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
                },
            };
            // SAFETY: `self.fd` is an open timerfd for the lifetime of `self`; `spec`
            // is a valid itimerspec on the stack; the old-value pointer may be null.
            cvt(unsafe {
                libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            })?;
            Ok(())
        }

        pub(crate) fn raw_fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
    }
}

#[cfg(any(not(target_os = "linux"), miri))]
pub(crate) use fallback::TimerFd;

#[cfg(any(not(target_os = "linux"), miri))]
mod fallback {
    use super::*;

    /// No precision timer on this platform (or under Miri, which has no timerfd): the
    /// reactor uses mio's poll timeout.
    #[derive(Debug)]
    pub(crate) struct TimerFd(());

    impl TimerFd {
        pub(crate) fn new() -> io::Result<TimerFd> {
            let _ = cvt;
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        pub(crate) fn set(&self, _after: Duration) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        pub(crate) fn raw_fd(&self) -> RawFd {
            -1
        }
    }
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack; timeout 1000 ms.
        let n = cvt(unsafe { libc::poll(&mut pfd, 1, 1000) }).unwrap();
        n == 1
    }

    #[test]
    fn timerfd_expires_after_the_requested_time_not_before() {
        let t = TimerFd::new().unwrap();
        let start = Instant::now();
        t.set(Duration::from_micros(300)).unwrap();
        assert!(readable(t.raw_fd()));
        assert!(start.elapsed() >= Duration::from_micros(300));
    }

    #[test]
    fn zero_duration_still_arms() {
        let t = TimerFd::new().unwrap();
        t.set(Duration::ZERO).unwrap();
        assert!(
            readable(t.raw_fd()),
            "a zero delay must not disarm the timer"
        );
    }
}
