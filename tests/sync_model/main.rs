//! `evloop::sync` checked against plain reference models (SPEC Q9, §13 Y1–Y6).
//!
//! Each property generates a random sequence of operations over 1–6 *workers* (one task
//! at a time per worker) and one primitive, drives the real primitive on one
//! `Runtime`, steps a reference model alongside, and compares every observable.
//!
//! | primitive | operations |
//! |---|---|
//! | `Mutex<u32>` | worker starts `lock()`, releases (drops its guard), is cancelled, is aborted (its pending lock future or its guard dropped at once), settle |
//! | `Semaphore(k)`, `BoundedSemaphore(k)` | worker starts `acquire()`, drops or `forget()`s its permit, cancel, abort; the driver's `release()`; settle |
//! | `Event` | worker starts `wait()`, cancel, abort; the driver's `set()` / `clear()`; settle |
//! | `Condition` over a `Mutex` | worker takes the lock and holds it, or takes it and `wait`s (then holds the re-acquired lock); release, cancel, abort; the driver's `notify(n)`, under the lock or not (`Err(InvalidState)` when nobody holds it); settle |
//! | `Barrier(1–4)` | worker starts `wait()`, cancel, abort; the driver's `reset()` / `abort()`; settle |
//! | `Queue`, `LifoQueue`, `PriorityQueue` (maxsize 0–3) | worker starts `put(v)` / `get()` / `join()`, cancel, abort; the driver's `put_nowait`, `get_nowait`, `task_done`, `shutdown(immediate)`; settle |
//!
//! **How the real side runs.** A driver task (inside `block_on`) applies the operations
//! one after another *without yielding*, so no worker runs between two operations: a
//! worker started, woken, handed the lock or an item, or cancelled only runs at the next
//! *settle*, when the driver yields until the loop's ready queue stays empty. That is
//! how a waiter gets cancelled or aborted after it was handed something but before it
//! ran. Each worker task records what it observed (`Out`) in one shared log and what it
//! is waiting for (`Shown`); a worker is told to release through an `evloop::Future`.
//!
//! **The model is the specification** (`/work/sync_api.md`): FIFO waiters; a lock or
//! permit is handed over directly (a release with waiters keeps `locked()`); a task
//! cancelled while waiting resumes with `Err(Cancelled)` and is no longer a candidate
//! for a hand-over; a waiter handed the lock / a permit and then cancelled or dropped
//! before it ran passes it to the next waiter (dropped: at once; cancelled: when its
//! task runs — until then it is that waiter's, as in asyncio); a waiting put that is
//! cancelled puts nothing; a cancelled barrier wait leaves the round; a notified
//! condition waiter cancelled before it ran passes the notification on, and
//! re-acquires the lock in its FIFO turn before it returns `Err(Cancelled)`; the first
//! poll of a free lock (of an available permit, of a queue with an unclaimed item) does
//! not suspend; new tasks start in the order they were created.
//!
//! **Queues use claims, as asyncio does.** A put always stores its item in the buffer
//! (in the queue's order); if gets wait, the first live one is woken with a *claim*: one
//! buffered item is kept for it. `qsize()` counts claimed items, `full()` is `qsize() >=
//! maxsize`; `get_nowait` and a fresh `get` succeed only while some item is unclaimed,
//! and take the next item in the queue's order. A claimed get takes the next item in
//! the queue's order when it runs (not a particular item), and the room it makes moves
//! the first waiting put's value in. The claim of a get cancelled before it ran passes
//! to the next live waiting get (or lapses) at the next queue operation — the model
//! passes it at `cancel()`, which nothing can tell apart, since every observation of
//! the claims is a queue operation; a dropped get passes it at once. `shutdown(true)`
//! drops claimed items too, and their gets fail with `QueueShutDown`. Items never
//! leave the buffer until a get takes them, so a cancel never reorders a queue.
//!
//! **Interleavings.** When the loop settles, the model runs its ready workers' steps in
//! *every* order (a worker's step is atomic), except that new workers start in creation
//! order, and keeps the set of reachable quiescent states; the observation of the real
//! primitive then filters that set. So the test does not depend on the order in which
//! the loop happens to run woken tasks, only on what the API promises. Where the API
//! leaves an outcome open, the model allows each (an `Event` waiter woken by `set()` and
//! cancelled before it ran may return `Ok` or `Err(Cancelled)`; so may a put whose value
//! was already moved into the queue, a `join()` already released, a waiter already
//! failed by `shutdown`).
//!
//! Compared after every settle: what each worker waits for or holds, the whole log of
//! outcomes in order (who was granted, cancelled, which item each get returned), and
//! `locked()` / `try_lock()`, `available()` / `locked()` / `try_acquire()`, `is_set()`,
//! `qsize()` / `empty()` / `full()`, `n_waiting()` / `broken()`; after every `*_nowait`, `task_done` and driver
//! `release()` and `notify`, its result. At the end every worker is cancelled, the loop settles and
//! everything is compared again; a queue is then drained with `get_nowait` and its
//! contents compared in order, and every item is checked to have been delivered once
//! (or dropped by `shutdown(true)`), none twice, none lost.

mod barrier;
mod condition;
mod event;
mod harness;
mod permits;
mod queue;
mod regressions;
