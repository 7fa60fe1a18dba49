//! asyncio's locks and queues (SPEC §13).
pub mod broadcast;
pub mod mpsc;
mod permits;
mod shared;
mod wait_list;
pub mod watch;
pub use shared::{
    SharedEvent, SharedMutex, SharedMutexGuard, SharedSemaphore, SharedSemaphorePermit,
};
#[cfg(all(test, loom))]
mod loom_models;
