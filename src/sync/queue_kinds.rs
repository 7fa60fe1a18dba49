//! The public loop-local queues (Y6) — `Queue` (FIFO), `LifoQueue`, `PriorityQueue`
//! (smallest first) — their futures and their errors.
//!
//! Owns: the three buffer orders and the public method set, generated once for the
//! three types by `queue_type!`. Must not touch: the hand-over logic, which is
//! [`Core`]'s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::queue::{Buffer, Core, QueueOps};
use super::wait_list::WaiterId;
use crate::error::Error;

/// First in, first out.
#[derive(Debug)]
pub(crate) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Buffer<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
#[derive(Debug)]
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Buffer<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first (a min-heap).
#[derive(Debug)]
pub(crate) struct Priority<T>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T: Ord> Buffer<T> for Priority<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `put_nowait` found the queue full (or shut down); the value comes back.
pub struct QueueFull<T> {
    value: T,
    shut_down: bool,
}

impl<T> QueueFull<T> {
    pub(crate) fn new(value: T, shut_down: bool) -> QueueFull<T> {
        QueueFull { value, shut_down }
    }

    /// The value that was not put.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Whether the queue refused because it is shut down (not because it is full).
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueFull")
            .field("shut_down", &self.shut_down)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.shut_down {
            "the queue is shut down"
        } else {
            "the queue is full"
        })
    }
}

impl<T> std::error::Error for QueueFull<T> {}

/// `get_nowait` found the queue empty (or shut down and drained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEmpty {
    shut_down: bool,
}

impl QueueEmpty {
    pub(crate) fn new(shut_down: bool) -> QueueEmpty {
        QueueEmpty { shut_down }
    }

    /// Whether the queue is shut down: no item will ever come.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.shut_down {
            "the queue is shut down and empty"
        } else {
            "the queue is empty"
        })
    }
}

impl std::error::Error for QueueEmpty {}

/// A `put` or `get` on a queue that is shut down (Python 3.13's `QueueShutDown`), inside
/// an [`Error`]: `err.downcast_ref::<QueueShutDown>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueShutDown;

impl fmt::Display for QueueShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is shut down")
    }
}

impl std::error::Error for QueueShutDown {}

/// The future of a queue's `get`: a place among its getters, left when dropped (an
/// item already handed to it goes back).
#[must_use = "futures do nothing unless awaited"]
pub struct QueueGet<'a, T> {
    core: &'a dyn QueueOps<T>,
    waiter: Option<WaiterId>,
}

impl<T> Future for QueueGet<'_, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            this.core.poll_get(&mut this.waiter, cx)
        })
    }
}

impl<T> Drop for QueueGet<'_, T> {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            self.core.abandon_get(&mut self.waiter);
        }
    }
}

/// The future of a queue's `put`: holds the value until there is room.
#[must_use = "futures do nothing unless awaited"]
pub struct QueuePut<'a, T> {
    core: &'a dyn QueueOps<T>,
    value: Option<T>,
    waiter: Option<WaiterId>,
}

// The value is never pinned: it moves into the queue.
impl<T> Unpin for QueuePut<'_, T> {}

impl<T> Future for QueuePut<'_, T> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            this.core.poll_put(&mut this.value, &mut this.waiter, cx)
        })
    }
}

impl<T> Drop for QueuePut<'_, T> {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            self.core.abandon_put(&mut self.waiter);
        }
    }
}

/// The future of a queue's `join`.
#[must_use = "futures do nothing unless awaited"]
pub struct QueueJoin<'a, T> {
    core: &'a dyn QueueOps<T>,
    waiter: Option<WaiterId>,
}

impl<T> Future for QueueJoin<'_, T> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            this.core.poll_join(&mut this.waiter, cx)
        })
    }
}

impl<T> Drop for QueueJoin<'_, T> {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            self.core.abandon_join(&mut self.waiter);
        }
    }
}

macro_rules! debug_future {
    ($name:ident) => {
        impl<T> fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("queued", &self.waiter.is_some())
                    .finish()
            }
        }
    };
}
debug_future!(QueueGet);
debug_future!(QueuePut);
debug_future!(QueueJoin);

macro_rules! queue_type {
    ($(#[$doc:meta])* $name:ident, $buf:ident, [$($bound:tt)*]) => {
        $(#[$doc])*
        ///
        /// Loop-local: `!Send`, and `Clone` shares the same queue. For tasks of
        /// different loops or plain threads use [`mpsc`](crate::sync::mpsc).
        pub struct $name<T: 'static> {
            core: Rc<Core<T, $buf<T>>>,
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name { core: self.core.clone() }
            }
        }

        impl<T: $($bound)*> $name<T> {
            /// A queue of at most `maxsize` items; 0 means unbounded.
            pub fn new(maxsize: usize) -> $name<T> {
                $name { core: Rc::new(Core::new(maxsize, stringify!($name))) }
            }

            /// Puts `value`, waiting while the queue is full (FIFO among putters).
            ///
            /// # Errors
            ///
            /// An error holding [`QueueShutDown`] once the queue is shut down;
            /// `Err(Error::Cancelled)` when the task is cancelled while waiting (the
            /// value is not put, and is dropped).
            ///
            /// # Panics
            ///
            /// When it has to wait on another loop than the first one that waited on
            /// this queue (use `mpsc` across loops).
            pub fn put(&self, value: T) -> QueuePut<'_, T> {
                QueuePut { core: &*self.core, value: Some(value), waiter: None }
            }

            /// Takes the next item, waiting while the queue is empty (FIFO among
            /// getters).
            ///
            /// # Errors
            ///
            /// An error holding [`QueueShutDown`] once the queue is shut down and
            /// empty; `Err(Error::Cancelled)` when the task is cancelled (no item is
            /// lost: the item it was woken for stays in the queue for the next getter).
            ///
            /// # Panics
            ///
            /// As [`put`](Self::put).
            pub fn get(&self) -> QueueGet<'_, T> {
                QueueGet { core: &*self.core, waiter: None }
            }

            /// Puts `value` if there is room.
            ///
            /// # Errors
            ///
            /// [`QueueFull`], with the value, if the queue is full or shut down.
            pub fn put_nowait(&self, value: T) -> Result<(), QueueFull<T>> {
                self.core.put_nowait(value)
            }

            /// Takes the next item if there is one. Items kept for waiting gets that
            /// were woken and have not run yet (FIFO fairness) count in
            /// [`qsize`](Self::qsize) but are not taken here.
            ///
            /// # Errors
            ///
            /// [`QueueEmpty`] if there is none (`is_shut_down()` once none will come).
            pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
                self.core.get_nowait()
            }

            /// The number of items in the queue, including those kept for waiting
            /// gets that have not run yet.
            pub fn qsize(&self) -> usize {
                self.core.qsize()
            }

            /// Whether the queue holds no item.
            pub fn empty(&self) -> bool {
                self.core.qsize() == 0
            }

            /// Whether the queue holds `maxsize` items (never, when unbounded).
            pub fn full(&self) -> bool {
                self.core.full()
            }

            /// The bound given to `new` (0: unbounded).
            pub fn maxsize(&self) -> usize {
                self.core.maxsize()
            }

            /// Marks one item taken with `get` as processed (for [`join`](Self::join)).
            ///
            /// # Errors
            ///
            /// `Err(Error::InvalidState)` when called more often than items were put.
            pub fn task_done(&self) -> Result<(), Error> {
                self.core.task_done()
            }

            /// Waits until every item put has been marked with
            /// [`task_done`](Self::task_done).
            ///
            /// # Errors
            ///
            /// `Err(Error::Cancelled)` when the task is cancelled.
            pub fn join(&self) -> QueueJoin<'_, T> {
                QueueJoin { core: &*self.core, waiter: None }
            }

            /// Shuts the queue down (Python 3.13): later puts fail with
            /// [`QueueShutDown`], gets take what is left and then fail, waiting puts
            /// and gets fail at once. With `immediate`, the items left are dropped
            /// (and count as done for `join`).
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.core, f)
            }
        }
    };
}

queue_type!(
    /// asyncio's `Queue` (Y6): items in first-in, first-out order.
    ///
    /// ```
    /// use evloop::sync::Queue;
    ///
    /// evloop::run(async {
    ///     let q = Queue::new(1);
    ///     let consumer = evloop::create_task({
    ///         let q = q.clone();
    ///         async move {
    ///             let mut got = Vec::new();
    ///             for _ in 0..3 {
    ///                 got.push(q.get().await?);
    ///             }
    ///             Ok(got)
    ///         }
    ///     });
    ///     for i in 0..3 {
    ///         q.put(i).await?; // waits while the consumer has not taken the last one
    ///     }
    ///     assert_eq!(consumer.await?, [0, 1, 2]);
    ///     assert!(q.get_nowait().is_err());
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    Queue, Fifo, [Sized]
);

queue_type!(
    /// asyncio's `LifoQueue` (Y6): the most recently put item first.
    ///
    /// ```
    /// let q = evloop::sync::LifoQueue::new(0);
    /// q.put_nowait(1).unwrap();
    /// q.put_nowait(2).unwrap();
    /// assert_eq!(q.get_nowait().unwrap(), 2);
    /// ```
    LifoQueue, Lifo, [Sized]
);

queue_type!(
    /// asyncio's `PriorityQueue` (Y6): the smallest item first.
    ///
    /// The items' `Ord` is called while the queue is borrowed: an `Ord` implementation
    /// that calls back into the same queue panics (`already borrowed`).
    ///
    /// ```
    /// let q = evloop::sync::PriorityQueue::new(0);
    /// for v in [3, 1, 2] {
    ///     q.put_nowait(v).unwrap();
    /// }
    /// assert_eq!(q.get_nowait().unwrap(), 1);
    /// ```
    PriorityQueue, Priority, [Ord]
);
