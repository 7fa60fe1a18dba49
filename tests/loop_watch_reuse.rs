//! fd watches on a reused fd number (SPEC L11: `add_reader` / `add_writer`; adding
//! again replaces).
//!
//! A program that closes a watched fd without `remove_reader` / `remove_writer` (the
//! kernel drops a closed fd from the epoll set by itself) and then gets the same number
//! for a new socket — the kernel hands out the lowest free number, so this is the
//! common case — must be able to watch the new socket under that number.
//!
//! Covers, each with a new socket on the number of the closed one:
//! * `add_reader` after a closed reader: the new callback runs when the peer writes;
//! * `add_writer` after a closed writer: the new callback runs (the socket is writable);
//! * `add_writer` after a closed *reader*: accepted, and runs;
//! * in every case the old callback never runs again and the new watch is removable.
//!
//! The number is reused by the kernel when it is the lowest free one; otherwise the
//! new socket is `dup2`-ed onto it. The tests of this binary hold one lock for their
//! whole run, so no other test opens or closes fds in between (`dup2` onto a number
//! another test just got would close that test's fd).

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use evloop::{Error, LoopHandle};

/// Serializes the tests of this binary (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

use common::eventually;

/// A socket pair whose first (non-blocking) end is the watched one.
fn pair() -> (Arc<UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (Arc::new(a), b)
}

/// Whether `fd` is an open descriptor of this process.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; any number is valid input.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// A new socket pair whose watched end has the number `fd` (closed by the caller just
/// before): the kernel's choice when it reused the number, else `dup2` onto it.
fn pair_on(fd: RawFd) -> (Arc<UnixStream>, UnixStream) {
    assert!(!is_open(fd), "fd {fd} was closed");
    let (a, b) = UnixStream::pair().unwrap();
    let (watched, peer) = if a.as_raw_fd() == fd {
        (a, b)
    } else if b.as_raw_fd() == fd {
        (b, a)
    } else {
        // SAFETY: `a` is an open socket and `fd` a free number (checked above; the
        // SERIAL lock keeps other tests of this binary from taking it meanwhile).
        let rc = unsafe { libc::dup2(a.as_raw_fd(), fd) };
        assert_eq!(rc, fd, "dup2: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is now an open descriptor that nothing else owns.
        let moved = unsafe { UnixStream::from_raw_fd(fd) };
        drop(a); // closes the original number; the socket lives on as `fd`
        (moved, b)
    };
    watched.set_nonblocking(true).unwrap();
    assert_eq!(watched.as_raw_fd(), fd);
    (Arc::new(watched), peer)
}

/// Pins a bug (fails until fixed): the watch table keeps the entry of a closed fd, so
/// `add_reader` on the new socket with the same number finds it, stores the callback
/// and returns `Ok` without registering the new socket with epoll (no
/// `EPOLL_CTL_ADD`): writing to its peer never runs the callback.
#[test]
fn add_reader_works_on_a_reused_fd_number_after_a_closed_reader() {
    let _serial = serial();
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let old_runs = counter();
        let fd = {
            let (old, _old_peer) = pair();
            let fd = old.as_raw_fd();
            let runs = old_runs.clone();
            loop_.add_reader(fd, move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })?;
            common::yield_times(3).await;
            fd
            // `old` and its peer are closed here, without remove_reader.
        };
        let (sock, mut peer) = pair_on(fd);
        let runs = counter();
        loop_.add_reader(fd, {
            let (sock, runs) = (sock.clone(), runs.clone());
            move || {
                let mut byte = [0u8; 1];
                if (&*sock).read(&mut byte).is_ok() {
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            }
        })?;
        peer.write_all(b"x")?;
        eventually(
            "the reader of the socket now numbered like the closed one runs",
            || get(&runs) >= 1,
        )
        .await;
        common::yield_times(10).await;
        assert_eq!(get(&runs), 1, "one call for one byte");
        assert_eq!(get(&old_runs), 0, "the replaced callback ran");
        assert!(loop_.remove_reader(fd), "the new watch is registered");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Pins the same bug for `add_writer` (fails until fixed): the new socket is writable
/// at once, yet the callback never runs.
#[test]
fn add_writer_works_on_a_reused_fd_number_after_a_closed_writer() {
    let _serial = serial();
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let old_runs = counter();
        let fd = {
            let (old, _old_peer) = pair();
            let fd = old.as_raw_fd();
            let runs = old_runs.clone();
            loop_.add_writer(fd, move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })?;
            eventually("the old writer ran", || get(&old_runs) >= 1).await;
            fd
            // `old` and its peer are closed here, without remove_writer.
        };
        // Level-triggered, the old writer ran once per iteration until the close.
        common::yield_times(3).await;
        let old_before = get(&old_runs);
        let (sock, _peer) = pair_on(fd);
        let runs = counter();
        loop_.add_writer(fd, {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        eventually(
            "the writer of the socket now numbered like the closed one runs",
            || get(&runs) >= 1,
        )
        .await;
        assert!(loop_.remove_writer(fd), "the new watch is registered");
        common::yield_times(3).await;
        assert_eq!(get(&old_runs), old_before, "the replaced callback ran");
        drop(sock);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Pins the bug's other face (fails until fixed): with the stale reader entry still
/// in the table, `add_writer` on the new socket changes the interest of a
/// registration the kernel no longer has (`EPOLL_CTL_MOD` → `ENOENT`) and is refused.
/// It must be accepted and run; the stale reader must not.
#[test]
fn add_writer_works_on_a_reused_fd_number_after_a_closed_reader() {
    let _serial = serial();
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let old_runs = counter();
        let fd = {
            let (old, _old_peer) = pair();
            let fd = old.as_raw_fd();
            let runs = old_runs.clone();
            loop_.add_reader(fd, move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })?;
            common::yield_times(3).await;
            fd
        };
        let (sock, mut peer) = pair_on(fd);
        let runs = counter();
        let added = loop_.add_writer(fd, {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert!(
            added.is_ok(),
            "add_writer on the reused fd number {fd}: {added:?}"
        );
        eventually(
            "the writer of the socket now numbered like the closed one runs",
            || get(&runs) >= 1,
        )
        .await;
        assert!(loop_.remove_writer(fd), "the new watch is registered");
        // Data on the new socket must not reach the closed socket's reader.
        peer.write_all(b"x")?;
        common::yield_times(20).await;
        assert_eq!(get(&old_runs), 0, "the closed socket's reader ran");
        loop_.remove_reader(fd);
        drop(sock);
        Ok::<_, Error>(())
    })
    .unwrap();
}
