//! Callback cells and the public [`Handle`] / [`TimerHandle`] (asyncio's `Handle` and
//! `TimerHandle`).
//!
//! Owns: the one-allocation cell holding a scheduled closure and its state byte, and
//! the run-versus-cancel race. Must not touch: queues or the wheel — the loop (`core`)
//! decides where a cell waits; [`TimerHandle::cancel`] asks `core` to unlink it.
//!
//! | state | set when | final |
//! |---|---|---|
//! | `PENDING` | the cell is created | no |
//! | `DONE` | the loop claims it to run (before calling the closure) | yes |
//! | `CANCELLED` | `cancel()` wins, or the loop closes before it ran | yes |
//!
//! Leaving `PENDING` is one compare-and-swap; exactly one of "run" and "cancel" wins and
//! only the winner touches the closure (running it, or dropping it at once).

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::handle::LoopHandle;
use crate::loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use crate::wheel::TimerKey;

const PENDING: u8 = 0;
const DONE: u8 = 1;
const CANCELLED: u8 = 2;

/// The outcome of trying to move a cell out of `PENDING`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// This caller made the transition and now owns the closure.
    Won,
    /// Another transition happened first.
    Lost,
}

#[derive(Debug)]
struct CellState(AtomicU8);

impl CellState {
    fn claim(&self, to: u8) -> Claim {
        match self
            .0
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Claim::Won,
            Err(_) => Claim::Lost,
        }
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// Where a timer cell sits in its loop's wheel. Only the loop thread reads or writes it
/// (relaxed atomics: plain loads and stores, no read-modify-write).
#[derive(Debug)]
pub(crate) struct TimerSlot {
    index: AtomicU32,
    seq: AtomicU64,
}

impl TimerSlot {
    fn new() -> TimerSlot {
        TimerSlot {
            index: AtomicU32::new(u32::MAX),
            seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn set(&self, key: TimerKey) {
        let (index, seq) = key.into_parts();
        self.seq.store(seq, Ordering::Relaxed);
        self.index.store(index, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<TimerKey> {
        let index = self.index.load(Ordering::Relaxed);
        (index != u32::MAX).then(|| TimerKey::from_parts(index, self.seq.load(Ordering::Relaxed)))
    }
}

/// A scheduled closure, type-erased for the queues.
pub(crate) trait Callback: Send + Sync {
    /// Runs the closure unless it was cancelled; `true` if it ran. Loop thread only.
    fn run(&self) -> bool;
    /// Cancels if still pending, dropping the closure at once. `true` if this call won.
    fn cancel(&self) -> bool;
    fn is_cancelled(&self) -> bool;
    fn is_done(&self) -> bool;
    /// The wheel position of a timer cell; `None` for plain callbacks.
    fn timer_slot(&self) -> Option<&TimerSlot>;
}

struct CallbackCell<F, X> {
    state: CellState,
    extra: X,
    f: UnsafeCell<Option<F>>,
}

// SAFETY: `f` is only accessed by the thread that moved `state` out of PENDING (run or
// cancel, one CAS, exactly one winner), so it is never accessed concurrently and it
// moves between threads only as `F: Send`. `extra` is shared and must be `Sync`.
unsafe impl<F: Send, X: Sync> Sync for CallbackCell<F, X> {}

impl<F, X> Callback for CallbackCell<F, X>
where
    F: FnOnce() + Send + 'static,
    X: AsTimerSlot + Send + Sync + 'static,
{
    fn run(&self) -> bool {
        if self.state.claim(DONE) == Claim::Lost {
            return false;
        }
        // SAFETY: we won the PENDING → DONE transition, so no other thread will ever
        // touch `f` again (see the `Sync` impl).
        let f = unsafe { (*self.f.get()).take() };
        if let Some(f) = f {
            f();
        }
        true
    }

    fn cancel(&self) -> bool {
        if self.state.claim(CANCELLED) == Claim::Won {
            // SAFETY: we won the PENDING → CANCELLED transition; as in `run`.
            drop(unsafe { (*self.f.get()).take() });
            true
        } else {
            false
        }
    }

    fn is_cancelled(&self) -> bool {
        self.state.get() == CANCELLED
    }

    fn is_done(&self) -> bool {
        self.state.get() == DONE
    }

    fn timer_slot(&self) -> Option<&TimerSlot> {
        self.extra.as_timer_slot()
    }
}

trait AsTimerSlot {
    fn as_timer_slot(&self) -> Option<&TimerSlot>;
}

impl AsTimerSlot for () {
    fn as_timer_slot(&self) -> Option<&TimerSlot> {
        None
    }
}

impl AsTimerSlot for TimerSlot {
    fn as_timer_slot(&self) -> Option<&TimerSlot> {
        Some(self)
    }
}

/// A pending callback cell (one allocation holding state and closure).
pub(crate) fn new_callback<F: FnOnce() + Send + 'static>(f: F) -> Arc<dyn Callback> {
    // K5: the callback runs in (a copy of) the context current now.
    match crate::contextvar::capture() {
        None => plain_callback(f),
        Some(ctx) => plain_callback(move || crate::contextvar::run_in(Some(ctx), f)),
    }
}

fn plain_callback<F: FnOnce() + Send + 'static>(f: F) -> Arc<dyn Callback> {
    Arc::new(CallbackCell {
        state: CellState(AtomicU8::new(PENDING)),
        extra: (),
        f: UnsafeCell::new(Some(f)),
    })
}

/// A pending timer cell.
pub(crate) fn new_timer_callback<F: FnOnce() + Send + 'static>(f: F) -> Arc<dyn Callback> {
    match crate::contextvar::capture() {
        None => timer_callback(f),
        Some(ctx) => timer_callback(move || crate::contextvar::run_in(Some(ctx), f)),
    }
}

fn timer_callback<F: FnOnce() + Send + 'static>(f: F) -> Arc<dyn Callback> {
    Arc::new(CallbackCell {
        state: CellState(AtomicU8::new(PENDING)),
        extra: TimerSlot::new(),
        f: UnsafeCell::new(Some(f)),
    })
}

/// A cell that is already cancelled (scheduling on a closed loop); the closure is
/// dropped immediately, on the caller's thread.
pub(crate) fn cancelled_callback() -> Arc<dyn Callback> {
    Arc::new(CallbackCell::<fn(), ()> {
        state: CellState(AtomicU8::new(CANCELLED)),
        extra: (),
        f: UnsafeCell::new(None),
    })
}

fn state_name(cell: &dyn Callback) -> &'static str {
    if cell.is_cancelled() {
        "cancelled"
    } else if cell.is_done() {
        "done"
    } else {
        "pending"
    }
}

/// A callback scheduled with [`LoopHandle::call_soon`] or
/// [`LoopHandle::call_soon_threadsafe`].
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let rt = evloop::Runtime::new()?;
/// let ran = Arc::new(AtomicBool::new(false));
/// let flag = ran.clone();
/// let handle = rt.handle().call_soon(move || flag.store(true, Ordering::SeqCst));
/// assert!(handle.cancel(), "cancelled before the loop ran it");
/// assert!(handle.cancelled());
/// assert!(!handle.cancel(), "idempotent");
/// rt.block_on(evloop::time::sleep(std::time::Duration::from_millis(1))).unwrap();
/// assert!(!ran.load(Ordering::SeqCst));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) cell: Arc<dyn Callback>,
}

impl Handle {
    /// Prevents the callback from running. Returns `true` if this call cancelled it;
    /// `false` if it already ran, is running, or was cancelled before (idempotent).
    /// Callable from any thread.
    pub fn cancel(&self) -> bool {
        self.cell.cancel()
    }

    /// `true` once the callback is cancelled and will never run. A callback that has
    /// already run is not cancelled, even after `cancel()` (which is then a no-op).
    pub fn cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("state", &state_name(&*self.cell))
            .finish()
    }
}

/// A callback scheduled with [`LoopHandle::call_later`] or [`LoopHandle::call_at`].
///
/// Cancelling on the loop thread unlinks the timer from the wheel and frees it at once;
/// from another thread the closure is dropped at once and the loop unlinks the entry
/// when it next drains its cross-thread queue.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(async {
///     let loop_ = evloop::LoopHandle::current();
///     let timer = loop_.call_later(Duration::from_secs(3600), || unreachable!());
///     assert!(timer.when() > loop_.time());
///     assert_eq!(loop_.stats().timers_pending, 1);
///     assert!(timer.cancel());
///     assert!(timer.cancelled());
///     assert_eq!(loop_.stats().timers_pending, 0, "unlinked and freed at once");
/// });
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) cell: Arc<dyn Callback>,
    pub(crate) when: Instant,
    pub(crate) owner: LoopHandle,
}

impl TimerHandle {
    /// Prevents the timer from firing; `true` if this call cancelled it (see
    /// [`Handle::cancel`]). O(1). Callable from any thread.
    pub fn cancel(&self) -> bool {
        let won = self.cell.cancel();
        if won {
            crate::core::unlink_timer(&self.owner, &self.cell);
        }
        won
    }

    /// `true` once the timer is cancelled and will never fire.
    pub fn cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    /// The instant the timer is scheduled for (asyncio's `TimerHandle.when()`).
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("state", &state_name(&*self.cell))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn exactly_one_of_run_and_cancel_wins_under_contention() {
        for _ in 0..if cfg!(miri) { 10 } else { 200 } {
            let runs = Arc::new(AtomicUsize::new(0));
            let r = runs.clone();
            let cell = new_callback(move || {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            let c = cell.clone();
            let t = std::thread::spawn(move || c.cancel());
            cell.run();
            let cancelled = t.join().unwrap();
            let ran = runs.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(ran + usize::from(cancelled), 1);
            assert_eq!(cell.is_cancelled(), cancelled);
        }
    }

    #[test]
    fn cancel_drops_the_closure_at_once() {
        let token = Arc::new(());
        let held = token.clone();
        let cell = new_timer_callback(move || drop(held));
        assert_eq!(Arc::strong_count(&token), 2);
        assert!(cell.cancel());
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "captured state freed by cancel"
        );
        cell.run();
        assert!(cell.is_cancelled() && !cell.is_done());
        assert!(cell.timer_slot().is_some());
        assert!(cancelled_callback().is_cancelled());
    }
}
