//! asyncio's locks and queues (SPEC §13).

mod barrier;
mod bound;
mod condition;
mod event;
mod mutex;
mod permits;
mod queue;
mod queue_kinds;
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
