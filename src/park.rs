//! The park / notify / closed state machine behind wake-up coalescing.
//!
//! Owns: one atomic byte shared by the loop thread and every producer thread. Must not
//! touch: the queues or the eventfd — callers push before [`ParkState::notify`] and
//! write the eventfd when it answers [`Notify::Unpark`].
//!
//! | bit | set by | when | cleared |
//! |---|---|---|---|
//! | `PARKED` | loop | just before it blocks in the reactor | by the loop, after the poll returns |
//! | `NOTIFIED` | the first producer that sees exactly `PARKED` | it then writes the eventfd | with `PARKED` |
//! | `CLOSED` | the runtime's drop | once | never |
//!
//! Rules:
//! * The loop blocks only after setting `PARKED`, a `SeqCst` fence, and re-checking
//!   that there is no remote work ([`ParkState::park`]).
//! * A producer pushes its item, fences (`SeqCst`), then loads the state
//!   ([`ParkState::notify`]): the two fences pair up (Dekker), so either the loop sees
//!   the item before blocking or the producer sees `PARKED` and unparks it.
//! * Only one producer per park writes the eventfd (the `PARKED → PARKED|NOTIFIED` CAS);
//!   while the loop is not parked a producer makes no system call at all.
//! * After `CLOSED` nobody will drain the queue again except producers themselves.

use crate::loom::sync::atomic::{AtomicU8, Ordering, fence};

const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;
const CLOSED: u8 = 4;

/// What a producer must do after pushing.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notify {
    /// The loop is parked and this producer won the right to wake it: write the eventfd.
    Unpark,
    /// The loop is awake or already being woken: nothing to do.
    Nothing,
    /// The loop is closed: the pushed item will never be run; drain and cancel it.
    Closed,
}

/// Whether the loop may block.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Park {
    /// `PARKED` is set and no work was seen: block; call [`ParkState::unpark`] after.
    Block,
    /// Work arrived: poll without blocking (still call [`ParkState::unpark`] after).
    Skip,
}

/// How the loop woke from a park.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unparked {
    /// A producer wrote the eventfd during this park.
    Notified,
    /// Woken by I/O, a timer, or never blocked.
    Quiet,
}

#[derive(Debug, Default)]
pub(crate) struct ParkState(AtomicU8);

impl ParkState {
    pub(crate) fn new() -> ParkState {
        ParkState(AtomicU8::new(0))
    }

    /// Loop thread, before blocking: publish `PARKED`, then re-check `has_work`.
    pub(crate) fn park(&self, has_work: impl FnOnce() -> bool) -> Park {
        self.0.fetch_or(PARKED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if has_work() { Park::Skip } else { Park::Block }
    }

    /// Loop thread, after the reactor returned: clear `PARKED | NOTIFIED`.
    pub(crate) fn unpark(&self) -> Unparked {
        let prev = self.0.fetch_and(!(PARKED | NOTIFIED), Ordering::SeqCst);
        if prev & NOTIFIED != 0 {
            Unparked::Notified
        } else {
            Unparked::Quiet
        }
    }

    /// Producer, after pushing its item (or setting the stop flag).
    pub(crate) fn notify(&self) -> Notify {
        fence(Ordering::SeqCst);
        let state = self.0.load(Ordering::SeqCst);
        if state & CLOSED != 0 {
            Notify::Closed
        } else if state == PARKED
            && self
                .0
                .compare_exchange(
                    PARKED,
                    PARKED | NOTIFIED,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
        {
            Notify::Unpark
        } else {
            Notify::Nothing
        }
    }

    /// Marks the loop closed; the caller then drains the queue.
    pub(crate) fn close(&self) {
        self.0.fetch_or(CLOSED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLOSED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_producer_unparks() {
        let s = ParkState::new();
        assert_eq!(s.notify(), Notify::Nothing, "awake loop: no syscall");
        assert_eq!(s.park(|| false), Park::Block);
        assert_eq!(s.notify(), Notify::Unpark);
        assert_eq!(s.notify(), Notify::Nothing, "coalesced");
        assert_eq!(s.unpark(), Unparked::Notified);
        assert_eq!(s.notify(), Notify::Nothing);
    }

    #[test]
    fn park_sees_work_and_close_wins() {
        let s = ParkState::new();
        assert_eq!(s.park(|| true), Park::Skip);
        assert_eq!(s.unpark(), Unparked::Quiet);
        s.close();
        assert!(s.is_closed());
        assert_eq!(s.notify(), Notify::Closed);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::SegQueue;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// No lost wake-up: a producer pushing while the loop goes to sleep. Either the loop
    /// sees the item before blocking, or the producer wins the right to write the
    /// eventfd (modelled by a flag) — in every interleaving.
    #[test]
    fn a_push_racing_the_park_is_never_lost() {
        loom::model(|| {
            let state = Arc::new(ParkState::new());
            let queue = Arc::new(SegQueue::new());
            let eventfd = Arc::new(AtomicBool::new(false));
            let producer = {
                let (state, queue, eventfd) = (state.clone(), queue.clone(), eventfd.clone());
                loom::thread::spawn(move || {
                    queue.push(1u8);
                    if state.notify() == Notify::Unpark {
                        eventfd.store(true, Ordering::SeqCst);
                    }
                })
            };
            let decision = state.park(|| !queue.is_empty());
            producer.join().unwrap();
            if decision == Park::Block {
                assert!(
                    eventfd.load(Ordering::SeqCst),
                    "the loop blocked and nobody woke it"
                );
            }
            let _ = state.unpark();
        });
    }

    /// Two producers and one park: at most one eventfd write.
    #[test]
    fn one_park_costs_at_most_one_wakeup() {
        loom::model(|| {
            let state = Arc::new(ParkState::new());
            assert_eq!(state.park(|| false), Park::Block);
            let writes = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (state, writes) = (state.clone(), writes.clone());
                    loom::thread::spawn(move || {
                        if state.notify() == Notify::Unpark {
                            writes.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(writes.load(Ordering::SeqCst), 1);
            assert_eq!(state.unpark(), Unparked::Notified);
        });
    }
}
