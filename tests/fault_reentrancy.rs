//! Hardening rule 1: user code never runs under evloop's locks or `RefCell` borrows.
//! When an API call replaces or removes a user value (a callback, a handler, a waker),
//! the old value is moved out first and dropped after the lock or borrow is released —
//! its destructor is user code, and may call back into the same API.
//!
//! Each test makes such a destructor re-enter evloop and asserts what a user sees: no
//! panic, no deadlock (every test runs under `bounded`, so a hang fails it), and the
//! re-entrant call taking effect.
//!
//! * `add_reader_replacing_*`: `add_reader(fd, cb)` replacing a callback whose drop
//!   calls `remove_writer(other)` and `add_reader(another, ..)`.
//! * `remove_reader_*`: `remove_reader(fd)` whose removed callback's drop does the same.
//! * `add_signal_handler_replacing_*`: a replaced signal handler whose drop calls
//!   `remove_signal_handler(other)`.
//! * `remove_signal_handler_*`: a removed signal handler whose drop calls
//!   `remove_signal_handler(other)` and `add_signal_handler(..)`.
//! * `set_exception_handler_replacing_*`: a replaced exception handler whose drop calls
//!   `call_exception_handler(..)`: the report goes to the new handler.
//! * `clearing_the_exception_handler_*`: the same with `set_exception_handler(None)`:
//!   the report goes to the default handler (the log).
//! * `remove_done_callback_*`: a removed done-callback whose drop calls `result()` and
//!   `cancel()` on the same future.
//! * `dropping_an_awaiting_handle_*`: a custom waker whose drop calls `result()` on the
//!   future it was registered with, when the awaiting handle is dropped (which
//!   unregisters the waker).

mod common;

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::{entries, new_log, push};
use evloop::{ExceptionContext, Future, LoopHandle, Runtime};

/// Generous bound that turns a hang (a deadlock) into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(10);

/// [`common::bounded`] with this file's [`HANG_LIMIT`].
fn bounded<T: Send + 'static>(what: &'static str, body: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded(HANG_LIMIT, what, body)
}

/// Runs `f` when dropped: the user destructor that re-enters evloop.
struct OnDrop(Option<Box<dyn FnOnce() + Send + Sync>>);

impl OnDrop {
    fn new(f: impl FnOnce() + Send + Sync + 'static) -> OnDrop {
        OnDrop(Some(Box::new(f)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Runs `scenario` in `rt.block_on` and returns its output, failing with the panic
/// message if a panic escaped `block_on`.
fn block_on_survives<T>(rt: &Runtime, scenario: impl std::future::Future<Output = T>) -> T {
    match catch_unwind(AssertUnwindSafe(|| rt.block_on(scenario))) {
        Ok(out) => out,
        Err(payload) => panic!(
            "a panic escaped block_on: {:?}",
            common::panic_message(&*payload)
        ),
    }
}

/// A connected pair whose first end is non-blocking, for fd watches (the fd belongs to
/// the caller: keep the pair alive while it is watched).
fn socket_pair() -> (StdUnixStream, StdUnixStream) {
    let (a, b) = StdUnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (a, b)
}

/// The watch API re-entered from a dropped callback: `remove_writer(writer_fd)` (its
/// result recorded in `log`) and `add_reader(reader_fd, ..)` (whose callback logs
/// "re-added reader ran" and removes itself).
fn reentering_drop(log: &common::Log, writer_fd: RawFd, reader_fd: RawFd) -> OnDrop {
    let log = log.clone();
    OnDrop::new(move || {
        let loop_ = LoopHandle::current();
        push(
            &log,
            format!("remove_writer: {}", loop_.remove_writer(writer_fd)),
        );
        let inner = log.clone();
        let added = loop_.add_reader(reader_fd, move || {
            push(&inner, "re-added reader ran");
            LoopHandle::current().remove_reader(reader_fd);
        });
        push(&log, format!("add_reader: {}", added.is_ok()));
    })
}

/// `add_reader(fd, cb)` replacing a callback whose `Drop` calls
/// `LoopHandle::current().remove_writer(other_fd)` and `add_reader(..)`. Today the old
/// callback is dropped by the assignment in `Local::add_watch` (src/watch.rs) while the
/// watch table's `RefCell` is mutably borrowed: "RefCell already borrowed" panics out
/// of the destructor, through `add_reader`, out of `block_on`. Expected: both
/// re-entrant calls work (the writer watch is removed, the new reader watch fires).
#[test]
fn add_reader_replacing_a_callback_whose_drop_reenters_the_watch_api() {
    bounded("add_reader replacing a callback", || {
        let rt = Runtime::new().unwrap();
        let log = new_log();
        let (watched, _watched_peer) = socket_pair();
        let (written, _written_peer) = socket_pair();
        let (readable, mut readable_peer) = socket_pair();
        block_on_survives(&rt, async {
            let loop_ = LoopHandle::current();
            let fd = watched.as_raw_fd();
            loop_.add_writer(written.as_raw_fd(), || {}).unwrap();
            let guard = reentering_drop(&log, written.as_raw_fd(), readable.as_raw_fd());
            loop_
                .add_reader(fd, move || {
                    let _guard = &guard;
                })
                .unwrap();
            push(&log, "replacing");
            loop_.add_reader(fd, || {}).unwrap();
            push(&log, "replaced");
            std::io::Write::write_all(&mut readable_peer, b"x").unwrap();
            for _ in 0..20 {
                if entries(&log).len() == 5 {
                    break;
                }
                evloop::yield_now().await.unwrap();
            }
            loop_.remove_reader(fd);
        });
        assert_eq!(
            entries(&log),
            [
                "replacing",
                "remove_writer: true",
                "add_reader: true",
                "replaced",
                "re-added reader ran"
            ]
        );
    });
}

/// `remove_reader(fd)` whose removed callback's `Drop` re-enters the watch API the same
/// way. (`Local::remove_watch` already drops the callback after the borrow ends.)
#[test]
fn remove_reader_whose_removed_callback_reenters_the_watch_api() {
    bounded("remove_reader of a re-entrant callback", || {
        let rt = Runtime::new().unwrap();
        let log = new_log();
        let (watched, _watched_peer) = socket_pair();
        let (written, _written_peer) = socket_pair();
        let (readable, mut readable_peer) = socket_pair();
        block_on_survives(&rt, async {
            let loop_ = LoopHandle::current();
            let fd = watched.as_raw_fd();
            loop_.add_writer(written.as_raw_fd(), || {}).unwrap();
            let guard = reentering_drop(&log, written.as_raw_fd(), readable.as_raw_fd());
            loop_
                .add_reader(fd, move || {
                    let _guard = &guard;
                })
                .unwrap();
            push(&log, "removing");
            push(&log, format!("remove_reader: {}", loop_.remove_reader(fd)));
            std::io::Write::write_all(&mut readable_peer, b"x").unwrap();
            for _ in 0..20 {
                if entries(&log).len() == 5 {
                    break;
                }
                evloop::yield_now().await.unwrap();
            }
        });
        assert_eq!(
            entries(&log),
            [
                "removing",
                "remove_writer: true",
                "add_reader: true",
                "remove_reader: true",
                "re-added reader ran"
            ]
        );
    });
}

/// `add_signal_handler(sig, h)` replacing a handler whose drop calls
/// `remove_signal_handler(other)`. Today the old handler is dropped by the assignment
/// in `add_signal_handler` (src/signal.rs) while the loop's signal-table `Mutex` is
/// held, and `remove_signal_handler` locks it again: a deadlock. (The signals are never
/// raised.)
#[test]
fn add_signal_handler_replacing_a_handler_whose_drop_removes_another() {
    bounded("add_signal_handler replacing a handler", || {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        let log = new_log();
        loop_.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
        let guard = {
            let (log, loop_) = (log.clone(), loop_.clone());
            OnDrop::new(move || {
                let removed = loop_.remove_signal_handler(libc::SIGUSR2);
                push(&log, format!("remove_signal_handler(SIGUSR2): {removed}"));
            })
        };
        loop_
            .add_signal_handler(libc::SIGUSR1, move || {
                let _guard = &guard;
            })
            .unwrap();
        push(&log, "replacing");
        loop_.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
        push(&log, "replaced");
        assert!(loop_.remove_signal_handler(libc::SIGUSR1));
        assert!(
            !loop_.remove_signal_handler(libc::SIGUSR2),
            "already removed"
        );
        assert_eq!(
            entries(&log),
            [
                "replacing",
                "remove_signal_handler(SIGUSR2): true",
                "replaced"
            ]
        );
        drop(rt);
    });
}

/// `remove_signal_handler(sig)` whose removed handler's drop calls
/// `remove_signal_handler(other)` and `add_signal_handler(..)`. Today the handler is
/// dropped (`watch.handler.take()`) while the signal-table `Mutex` is held: a deadlock.
#[test]
fn remove_signal_handler_whose_removed_handler_reenters_the_signal_api() {
    bounded("remove_signal_handler of a re-entrant handler", || {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        let log = new_log();
        loop_.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
        let guard = {
            let (log, loop_) = (log.clone(), loop_.clone());
            OnDrop::new(move || {
                let removed = loop_.remove_signal_handler(libc::SIGUSR2);
                push(&log, format!("remove_signal_handler(SIGUSR2): {removed}"));
                let added = loop_.add_signal_handler(libc::SIGWINCH, || {});
                push(
                    &log,
                    format!("add_signal_handler(SIGWINCH): {}", added.is_ok()),
                );
            })
        };
        loop_
            .add_signal_handler(libc::SIGUSR1, move || {
                let _guard = &guard;
            })
            .unwrap();
        push(&log, "removing");
        let removed = loop_.remove_signal_handler(libc::SIGUSR1);
        push(&log, format!("remove_signal_handler(SIGUSR1): {removed}"));
        assert!(loop_.remove_signal_handler(libc::SIGWINCH), "it was added");
        assert_eq!(
            entries(&log),
            [
                "removing",
                "remove_signal_handler(SIGUSR2): true",
                "add_signal_handler(SIGWINCH): true",
                "remove_signal_handler(SIGUSR1): true"
            ]
        );
        drop(rt);
    });
}

/// The contexts a handler saw, by message.
type Seen = Arc<Mutex<Vec<String>>>;

fn recording_handler(seen: Seen) -> impl Fn(&LoopHandle, &ExceptionContext) + Send + Sync {
    move |_: &LoopHandle, ctx: &ExceptionContext| seen.lock().unwrap().push(ctx.message.clone())
}

/// `set_exception_handler(Some(h2))` replacing a handler `h1` whose drop calls
/// `call_exception_handler(..)`. Today `h1` is dropped by the assignment in
/// `set_exception_handler` (src/handle.rs) while the handler `Mutex` is held, and
/// `call_exception_handler` locks it again: a deadlock. Expected: no deadlock, and the
/// report goes to the new handler `h2`.
#[test]
fn set_exception_handler_replacing_a_handler_whose_drop_reports() {
    bounded("set_exception_handler replacing a handler", || {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        let (first, second): (Seen, Seen) = Default::default();
        let guard = {
            let loop_ = loop_.clone();
            OnDrop::new(move || {
                loop_.call_exception_handler(ExceptionContext::new("reported by h1's drop"));
            })
        };
        let h1 = recording_handler(first.clone());
        loop_.set_exception_handler(Some(move |l: &LoopHandle, ctx: &ExceptionContext| {
            let _guard = &guard;
            h1(l, ctx);
        }));
        loop_.set_exception_handler(Some(recording_handler(second.clone())));
        assert!(first.lock().unwrap().is_empty());
        assert_eq!(*second.lock().unwrap(), ["reported by h1's drop"]);
        drop(rt);
    });
}

/// The same with `set_exception_handler(None)` (and `clear_exception_handler`): the
/// report from the dropped handler goes to the default handler, which logs it.
#[test]
fn clearing_the_exception_handler_whose_drop_reports_logs_the_report() {
    common::init_logger();
    bounded("clearing the exception handler", || {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        for (marker, clear) in [
            ("reentrancy-marker-set-none", false),
            ("reentrancy-marker-clear", true),
        ] {
            let guard = {
                let loop_ = loop_.clone();
                OnDrop::new(move || {
                    loop_.call_exception_handler(ExceptionContext::new(marker));
                })
            };
            loop_.set_exception_handler(Some(move |_: &LoopHandle, _: &ExceptionContext| {
                let _guard = &guard;
            }));
            if clear {
                loop_.clear_exception_handler();
            } else {
                loop_.set_exception_handler(None::<fn(&LoopHandle, &ExceptionContext)>);
            }
            assert_eq!(common::logs_containing(marker).len(), 1, "{marker}");
        }
        drop(rt);
    });
}

/// `Future::remove_done_callback(id)` whose removed closure's `Drop` calls `result()`
/// and `cancel()` on the same future. Today the closure is dropped inside
/// `FutureCore::remove_callback` (src/future/core.rs) while the future's lock bit is
/// held, and `result()` spins on that lock forever. Expected: `result()` sees a pending
/// future (`InvalidState`), `cancel()` cancels it, `remove_done_callback` returns 1.
#[test]
fn remove_done_callback_whose_closure_drop_reads_and_cancels_the_future() {
    bounded("remove_done_callback of a re-entrant closure", || {
        let rt = Runtime::new().unwrap();
        let log = new_log();
        let fut: Future<u8> = Future::with_loop(&rt.handle());
        let guard = {
            let (log, fut) = (log.clone(), fut.clone());
            OnDrop::new(move || {
                let result = fut.result();
                push(
                    &log,
                    format!(
                        "result is invalid state: {}",
                        result.is_err_and(|e| e.is_invalid_state())
                    ),
                );
                push(&log, format!("cancel: {}", fut.cancel()));
            })
        };
        let id = fut.add_done_callback(move |_: &Future<u8>| {
            let _guard = &guard;
        });
        let removed = fut.remove_done_callback(id);
        assert_eq!(removed, 1);
        assert_eq!(
            entries(&log),
            ["result is invalid state: true", "cancel: true"]
        );
        assert!(fut.cancelled());
        drop(rt);
    });
}

/// A waker that calls `result()` on its future when dropped (and counts that).
struct ReadingWaker {
    fut: Mutex<Option<Future<u8>>>,
    reads: Arc<AtomicUsize>,
}

impl Wake for ReadingWaker {
    fn wake(self: Arc<Self>) {}
}

impl Drop for ReadingWaker {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.get_mut().unwrap().take() {
            assert!(fut.result().is_err_and(|e| e.is_invalid_state()));
            self.reads.fetch_add(1, SeqCst);
        }
    }
}

/// A custom waker whose `Drop` calls `result()` on the future it was registered with;
/// the awaiting handle (the clone that was polled) is dropped while pending, which
/// unregisters — and, as the last reference, drops — the waker. Today the waker is
/// dropped inside `FutureCore::remove_waiter` while the future's lock bit is held:
/// `result()` spins forever.
#[test]
fn dropping_an_awaiting_handle_whose_waker_drop_reads_the_future() {
    bounded("dropping an awaiting handle", || {
        let rt = Runtime::new().unwrap();
        let fut: Future<u8> = Future::with_loop(&rt.handle());
        let reads = Arc::new(AtomicUsize::new(0));
        let mut awaiting = fut.clone();
        {
            let waker = Waker::from(Arc::new(ReadingWaker {
                fut: Mutex::new(Some(fut.clone())),
                reads: reads.clone(),
            }));
            let polled = Pin::new(&mut awaiting).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
        } // only the future's registration holds the waker now
        assert_eq!(reads.load(SeqCst), 0);
        drop(awaiting);
        assert_eq!(
            reads.load(SeqCst),
            1,
            "the waker was dropped with its handle"
        );
        assert!(!fut.done());
        drop(rt);
    });
}
