//! asyncio's locks and queues (SPEC §13).
mod permits;
mod wait_list;
