//! asyncio's locks and queues, loop-local and fast, and thread-safe channels (SPEC §13).
//!
//! **Loop-local** — [`Mutex`] / [`Lock`], [`Event`], [`Condition`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Barrier`], [`Queue`], [`LifoQueue`], [`PriorityQueue`]: for
//! the tasks of one loop. They are `!Send` and `Clone` (an `Rc` inside: clones share
//! the primitive), use no atomics, allocate once when created and never on an
//! uncontended operation. Waiting is FIFO-fair. A primitive is bound to the loop of its
//! first wait (as asyncio binds it); waiting on it from another loop panics with a
//! message naming the thread-safe type to use instead — and since the types are
//! `!Send`, using one from another thread is a compile error:
//!
//! ```compile_fail
//! let q = evloop::sync::Queue::<u32>::new(0);
//! std::thread::spawn(move || q.put_nowait(1)); // `Rc` cannot be sent between threads
//! ```
//!
//! **Thread-safe** — the [`mpsc`], [`broadcast`] and [`watch`] channels and
//! [`SharedMutex`], [`SharedSemaphore`], [`SharedEvent`]: `Send + Sync`, for tasks of
//! different loops (a [`LoopGroup`](crate::LoopGroup)) and plain threads (`blocking_*`
//! methods). The oneshot channel is [`Future<T>`](crate::Future).
//!
//! Every wait is a loop-native awaitable (T3): a task cancelled while it waits resumes
//! at once with `Err(Error::Cancelled)`, and its place in the queue is removed, as it
//! is when the wait's future is dropped. Under every primitive is one wait list (a FIFO
//! whose entries are removed in O(1)); `ARCHITECTURE.md` follows a permit and a queue
//! item from the task that releases it to the one that waits.
//!
//! ```
//! use evloop::sync::{Queue, Semaphore};
//!
//! evloop::run(async {
//!     // At most two jobs at a time; results come back through a queue.
//!     let limit = Semaphore::new(2);
//!     let results = Queue::new(0);
//!     for job in 0..5u64 {
//!         let (limit, results) = (limit.clone(), results.clone());
//!         evloop::create_task(async move {
//!             let _permit = limit.acquire().await?;
//!             evloop::time::sleep(std::time::Duration::from_millis(1)).await?;
//!             results.put(job * job).await
//!         });
//!     }
//!     let mut total = 0;
//!     for _ in 0..5 {
//!         total += results.get().await?;
//!     }
//!     assert_eq!(total, 0 + 1 + 4 + 9 + 16);
//!     Ok::<(), evloop::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! ## Cancellation safety (Y8)
//!
//! "Cancelled" means the awaiting task was cancelled (the wait returns
//! `Err(Cancelled)`); "dropped" means the wait's future was dropped before it completed
//! (`select`, a drop-based `time::timeout`). A dropped wait leaves the wait list at once;
//! a loop-local lock, semaphore, condition or queue passes over a cancelled task's wait
//! at once too (what is released goes to the next live waiter), and the task removes it
//! when it runs. A lock or permit handed to a waiter before its task was cancelled stays
//! that waiter's until the task runs, which passes it on (as in asyncio).
//!
//! | method | cancelled or dropped while waiting |
//! |---|---|
//! | `Mutex::lock`, `Condition::acquire` | safe: no lock taken; a lock already handed to it passes to the next waiter when its task runs (dropped: at once), as in asyncio |
//! | `Semaphore::acquire`, `BoundedSemaphore::acquire` | safe: no permit taken; a permit handed to it passes to the next waiter when its task runs (dropped: at once), as in asyncio |
//! | `Event::wait` | safe: nothing to lose |
//! | `Condition::wait`, `wait_for` | cancelled: re-acquires the lock (in FIFO turn), then returns `Err(Cancelled)` and releases it; a notification it had got passes to the next waiter. Dropped: the lock stays released (the guard was given up), a notification passes on |
//! | `Barrier::wait` | safe: the party leaves the round when its task runs (dropped: at once), as in asyncio; if the round tripped first, the wait still returns `Err(Cancelled)` |
//! | `Queue::get` (all three orders) | safe: no item is taken; the claim on an item it was woken for passes to the next waiting `get` (items never leave the queue until a get returns them) |
//! | `Queue::put` | safe: the value is not put (it is dropped with the future). If a `get` had already moved it into the queue, `put` returns `Ok` and the cancel is delivered at the next await |
//! | `Queue::join` | safe: nothing to lose |
//! | `mpsc::Receiver::recv` | safe: no item is taken |
//! | `mpsc::Sender::send` | safe: the value is not sent — a cancelled send returns it (`SendError::Cancelled(value, _)`), a dropped one drops it; a slot granted to it passes to the next sender |
//! | `broadcast::Receiver::recv`, `watch::Receiver::changed` | safe: the receiver's position is unchanged |
//! | `SharedMutex::lock`, `SharedSemaphore::acquire` | safe: no lock or permit taken; one handed to it passes to the next waiter when the cancelled task runs (a thread-safe list cannot see another loop's cancel before that) |
//! | `SharedEvent::wait` | safe: nothing to lose |

mod barrier;
mod bound;
pub(crate) mod catch;
mod condition;
mod event;
mod mutex;
mod permits;
mod queue;
mod queue_kinds;
mod queue_state;
mod semaphore;
mod wait_list;

pub use barrier::{Barrier, BarrierWait, BrokenBarrierError};
pub use condition::{CondWait, Condition};
pub use event::{Event, EventWait};
pub use mutex::{Lock, LockFuture, Mutex, MutexGuard};
pub use queue_kinds::{
    LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueGet, QueueJoin, QueuePut,
    QueueShutDown,
};
pub use semaphore::{Acquire, BoundedSemaphore, Semaphore, SemaphorePermit};
pub mod broadcast;
pub mod mpsc;
mod shared;
pub mod watch;
pub use shared::{
    SharedEvent, SharedMutex, SharedMutexGuard, SharedSemaphore, SharedSemaphorePermit,
};
#[cfg(all(test, loom))]
mod loom_models;
