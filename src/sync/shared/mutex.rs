//! [`SharedMutex`]: an async mutex for tasks of any loop and plain threads — one
//! permit of the shared acquire / release protocol (`semaphore.rs`) and the value.
//!
//! Owns: the value cell and the guard that gives access to it. Must not touch: the
//! permit protocol itself (`semaphore::Acquire` and `semaphore::release`).
//!
//! Why an `UnsafeCell`: the guard must be `Send` (a task of `LoopHandle::spawn` holds it
//! across an `.await`, and such futures must be `Send`), which rules out keeping the
//! value in a `std::sync::Mutex` and holding its guard (`!Send`: it must be unlocked on
//! the thread that locked it). Exclusivity comes from the permit instead: a
//! `SharedMutexGuard` exists only while its holder owns the mutex's single permit, and
//! it gives up its access to the value before it releases the permit. Under loom the
//! cell is loom's, so the models check that no two accesses overlap.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::semaphore::{Acquire, release};
use super::support::{block_on, lock};
use crate::error::Error;
use crate::loom::cell::{MutPtr, UnsafeCell};
use crate::loom::sync::Mutex;
use crate::sync::permits::Permits;

struct Inner<T> {
    /// One permit: the lock.
    permits: Mutex<Permits>,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a `SharedMutexGuard`, which is created only
// when its holder has been granted the single permit of `permits` (an `Acquire` that
// completed, or a successful `try_acquire(1)`), and which ends its access (drops its
// `MutPtr`) before it releases that permit. So at most one thread accesses the value
// at a time, and the permit's mutex orders one holder's accesses before the next's.
// `T: Send` because the value is accessed (and finally dropped) by whichever thread
// holds the lock.
unsafe impl<T: Send> Sync for Inner<T> {}

/// An async mutex shared between threads and loops (SPEC Y7): the thread-safe
/// counterpart of the loop-local `Mutex`. `Clone` shares it (an `Arc` inside); the
/// lock goes to waiters first come, first served, whichever loop or thread they wait
/// on; a lock handed to a waiter that is dropped or cancelled before it ran passes to
/// the next one.
///
/// ```
/// use evloop::sync::SharedMutex;
///
/// let group = evloop::LoopGroup::new(2)?;
/// let counter = SharedMutex::new(0u64);
/// let results = group.block_on_each({
///     let counter = counter.clone();
///     move |_, _| {
///         let counter = counter.clone();
///         async move {
///             for _ in 0..100 {
///                 let mut n = counter.lock().await?;
///                 *n += 1;
///                 evloop::yield_now().await?; // held across an await
///             }
///             Ok::<_, evloop::Error>(())
///         }
///     }
/// });
/// assert!(results.iter().all(|r| r.is_ok()));
/// assert_eq!(*counter.try_lock().unwrap(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMutex<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for SharedMutex<T> {
    fn clone(&self) -> Self {
        SharedMutex {
            inner: self.inner.clone(),
        }
    }
}

impl<T> SharedMutex<T> {
    /// A mutex guarding `value`, unlocked.
    ///
    /// ```
    /// let m = evloop::sync::SharedMutex::new(vec![1, 2]);
    /// assert!(!m.locked());
    /// ```
    pub fn new(value: T) -> SharedMutex<T> {
        SharedMutex {
            inner: Arc::new(Inner {
                permits: Mutex::new(Permits::new(1)),
                value: UnsafeCell::new(value),
            }),
        }
    }

    /// Waits for the lock (FIFO among waiters); a free lock with nobody waiting is
    /// taken without suspending. The guard releases it when dropped.
    ///
    /// Cancellation-safe: a waiter that is dropped or cancelled takes nothing, and a
    /// lock handed to it before it ran passes to the next waiter.
    ///
    /// ```
    /// evloop::run(async {
    ///     let m = evloop::sync::SharedMutex::new(1);
    ///     *m.lock().await? += 1;
    ///     assert_eq!(*m.lock().await?, 2);
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting evloop task is cancelled.
    pub fn lock(&self) -> impl Future<Output = Result<SharedMutexGuard<'_, T>, Error>> + '_ {
        Lock {
            mutex: self,
            acquire: Acquire::new(&self.inner.permits),
        }
    }

    /// [`lock`](Self::lock) for plain threads: blocks until the lock is free.
    ///
    /// ```
    /// let m = evloop::sync::SharedMutex::new(0);
    /// let t = {
    ///     let m = m.clone();
    ///     std::thread::spawn(move || *m.blocking_lock() += 1)
    /// };
    /// t.join().unwrap();
    /// assert_eq!(*m.blocking_lock(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use `lock().await`).
    #[track_caller]
    pub fn blocking_lock(&self) -> SharedMutexGuard<'_, T> {
        let locked = block_on("SharedMutex::blocking_lock", "m.lock().await", self.lock());
        locked.expect("a plain thread's wait is never cancelled")
    }

    /// Takes the lock if it is free and nobody waits.
    ///
    /// ```
    /// let m = evloop::sync::SharedMutex::new(());
    /// let guard = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(guard);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<SharedMutexGuard<'_, T>> {
        let acquired = lock(self.inner.permits.lock()).try_acquire(1);
        acquired.then(|| SharedMutexGuard::new(self))
    }

    /// Whether the mutex is locked.
    ///
    /// ```
    /// let m = evloop::sync::SharedMutex::new(());
    /// let g = m.try_lock();
    /// assert!(m.locked());
    /// drop(g);
    /// assert!(!m.locked());
    /// ```
    pub fn locked(&self) -> bool {
        lock(self.inner.permits.lock()).available() == 0
    }
}

impl<T: Default> Default for SharedMutex<T> {
    fn default() -> Self {
        SharedMutex::new(T::default())
    }
}

impl<T> fmt::Debug for SharedMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let permits = lock(self.inner.permits.lock());
        let (locked, waiting) = (permits.available() == 0, permits.waiting());
        drop(permits);
        f.debug_struct("SharedMutex")
            .field("locked", &locked)
            .field("waiting", &waiting)
            .finish_non_exhaustive()
    }
}

/// The future of [`SharedMutex::lock`].
struct Lock<'a, T> {
    mutex: &'a SharedMutex<T>,
    acquire: Acquire<'a>,
}

impl<'a, T> Future for Lock<'a, T> {
    type Output = Result<SharedMutexGuard<'a, T>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "SharedMutex::lock", move |cx| {
            let mutex = self.mutex;
            self.acquire
                .poll_acquire(cx)
                .map_ok(|()| SharedMutexGuard::new(mutex))
        })
    }
}

/// The lock of a [`SharedMutex`], held: derefs to the value, releases the lock when
/// dropped (handing it to the first waiter). `Send` when `T` is, so a task may hold it
/// across an `.await`.
///
/// ```
/// let m = evloop::sync::SharedMutex::new(String::from("a"));
/// m.try_lock().unwrap().push('b');
/// assert_eq!(*m.try_lock().unwrap(), "ab");
/// ```
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct SharedMutexGuard<'a, T> {
    mutex: &'a SharedMutex<T>,
    /// The access to the value; `None` only inside `drop`.
    value: Option<MutPtr<T>>,
}

// SAFETY: the guard stands for exclusive access to the value (see `Inner`'s `Sync`):
// moving it to another thread moves that access, which needs `T: Send`; the permit it
// releases on drop is a counter under a `Mutex`, releasable from any thread.
unsafe impl<T: Send> Send for SharedMutexGuard<'_, T> {}
// SAFETY: a shared guard only hands out `&T`, which needs `T: Sync` to be shared.
unsafe impl<T: Send + Sync> Sync for SharedMutexGuard<'_, T> {}

impl<'a, T> SharedMutexGuard<'a, T> {
    /// The caller was just granted the mutex's permit.
    fn new(mutex: &'a SharedMutex<T>) -> Self {
        SharedMutexGuard {
            mutex,
            value: Some(mutex.inner.value.get_mut()),
        }
    }

    fn ptr(&self) -> &MutPtr<T> {
        self.value.as_ref().expect("a live guard has access")
    }
}

impl<T> Deref for SharedMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard holds the permit, so no other guard exists (see `Inner`);
        // the shared borrow of `self` keeps `deref_mut` from handing out `&mut T`
        // meanwhile. The pointer is valid: the guard borrows the mutex, whose `Arc`
        // keeps the cell alive.
        self.ptr().with(|value| unsafe { &*value })
    }
}

impl<T> DerefMut for SharedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the unique borrow of `self` makes the access unique.
        self.ptr().with(|value| unsafe { &mut *value })
    }
}

impl<T> Drop for SharedMutexGuard<'_, T> {
    fn drop(&mut self) {
        // The access ends before the permit is released (under loom this drops the
        // `MutPtr`'s access guard).
        self.value = None;
        release(&self.mutex.inner.permits, 1);
    }
}

impl<T: fmt::Debug> fmt::Debug for SharedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for SharedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
