//! The thread-safe locks of `evloop::sync` (SPEC §13 Y7) — [`SharedMutex`],
//! [`SharedSemaphore`], [`SharedEvent`] — and, in `support`, what every thread-safe
//! primitive (these and `mpsc`, `broadcast`, `watch`) shares: the parker of the
//! `blocking_*` waits, poison-free locking, wakers carried out of a lock, and dropping
//! user values outside it.
//!
//! Owns: these three types (each in its own file) and the helpers. Must not touch: the
//! loop-local primitives, and the wait-list mechanism itself (`wait_list`, `permits`):
//! every wait here is a `WaitList` / `Permits` node under a `crate::loom::sync::Mutex`,
//! whose wakers are taken out under the lock and woken after it (rule 1 of
//! ARCHITECTURE.md), each under its own catch (rule 2).
//!
//! Every async wait here is loop-native (SPEC T3): its `poll` first asks
//! `coop::take_cancel`, and a cancelled task resumes from it with
//! `Err(Error::Cancelled)` at once, its registration removed and anything handed to it
//! passed on. The `blocking_*` waits are for plain threads and panic on a loop thread.
//!
//! | method | cancellation-safe? |
//! |---|---|
//! | `SharedMutex::lock` | yes: a lock handed to a dropped / cancelled waiter passes to the next |
//! | `SharedSemaphore::acquire` | yes: a permit handed to a dropped / cancelled waiter passes to the next |
//! | `SharedEvent::wait` | yes: nothing is consumed |

mod event;
mod mutex;
mod semaphore;
pub(crate) mod support;
#[cfg(test)]
mod tests;

pub use event::SharedEvent;
pub use mutex::{SharedMutex, SharedMutexGuard};
pub use semaphore::{SharedSemaphore, SharedSemaphorePermit};
