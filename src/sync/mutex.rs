//! Loop-local `Mutex<T>` and `Lock` (Y1): a semaphore of one permit guarding a value.
//!
//! Owns: the guarded value (in a `RefCell`, borrowed only by the guard that holds the
//! permit) and the lock future. Must not touch: the permit machinery beyond
//! [`Sem`]'s interface.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::semaphore::Sem;
use super::wait_list::WaiterId;
use crate::error::Error;

struct Inner<T: ?Sized> {
    sem: Sem,
    value: RefCell<T>,
}

/// An asyncio lock guarding a value (Y1): `lock().await` gives a guard that derefs to
/// the value and releases the lock when dropped. Waiters are served FIFO.
///
/// Loop-local: `!Send`, and `Clone` shares the same lock and value. For tasks of
/// different loops or plain threads use [`SharedMutex`](crate::sync::SharedMutex).
///
/// ```
/// use evloop::sync::Mutex;
///
/// evloop::run(async {
///     let counter = Mutex::new(0);
///     let tasks: Vec<_> = (0..10)
///         .map(|_| {
///             let counter = counter.clone();
///             evloop::create_task(async move {
///                 let mut n = counter.lock().await?;
///                 evloop::yield_now().await?; // still holding the lock
///                 *n += 1;
///                 Ok(())
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await?;
///     }
///     assert_eq!(*counter.lock().await?, 10);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Mutex<T: ?Sized> {
    inner: Rc<Inner<T>>,
}

/// asyncio's `Lock`: a [`Mutex`] guarding nothing. `Lock::default()` makes one.
pub type Lock = Mutex<()>;

impl<T: ?Sized> Clone for Mutex<T> {
    fn clone(&self) -> Self {
        Mutex {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> Mutex<T> {
    /// A lock, free, guarding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            inner: Rc::new(Inner {
                sem: Sem::new(1, ("Mutex", "evloop::sync::SharedMutex")),
                value: RefCell::new(value),
            }),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock (FIFO). A free lock with nobody waiting is taken without
    /// suspending.
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting task is cancelled; if the lock was
    /// handed to it meanwhile, it passes to the next waiter.
    ///
    /// # Panics
    ///
    /// When it has to wait on another loop than the first one that waited on this lock
    /// (use `SharedMutex` across loops).
    pub fn lock(&self) -> LockFuture<'_, T> {
        LockFuture {
            mutex: self,
            waiter: None,
            cancellable: true,
        }
    }

    /// The lock future of `Condition`'s re-acquire, which ignores cancellation.
    pub(crate) fn lock_uncancellable(&self) -> LockFuture<'_, T> {
        LockFuture {
            mutex: self,
            waiter: None,
            cancellable: false,
        }
    }

    /// Takes the lock if it is free and nobody waits.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.inner.sem.try_acquire().then(|| self.guard())
    }

    /// Whether the lock is held (or handed to a waiter that has not run yet).
    pub fn locked(&self) -> bool {
        self.inner.sem.available() == 0
    }

    /// Whether `other` is this same lock (a clone of it).
    pub(crate) fn same_as(&self, other: &Mutex<T>) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            value: Some(
                self.inner
                    .value
                    .try_borrow_mut()
                    .expect("evloop::sync::Mutex: the permit is held by one guard only"),
            ),
        }
    }
}

/// The future of [`Mutex::lock`]: a place in the lock's FIFO, left when dropped.
#[must_use = "futures do nothing unless awaited"]
pub struct LockFuture<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    waiter: Option<WaiterId>,
    cancellable: bool,
}

impl<'a, T: ?Sized> Future for LockFuture<'a, T> {
    type Output = Result<MutexGuard<'a, T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            let mutex = this.mutex;
            mutex
                .inner
                .sem
                .poll_acquire(&mut this.waiter, cx, this.cancellable)
                .map(|r| r.map(|()| mutex.guard()))
        })
    }
}

impl<T: ?Sized> Drop for LockFuture<'_, T> {
    fn drop(&mut self) {
        self.mutex.inner.sem.abandon(&mut self.waiter);
    }
}

/// Access to the value of a locked [`Mutex`]; dropping it releases the lock (to the
/// first waiter, if any).
#[must_use = "the lock is released at once when the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// `None` only inside `drop`.
    value: Option<RefMut<'a, T>>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The lock this guard holds.
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value.as_deref().expect("a live guard holds the value")
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_deref_mut()
            .expect("a live guard holds the value")
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The borrow of the value ends before the next holder can be woken.
        drop(self.value.take());
        self.mutex.inner.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.inner.value.try_borrow() {
            Ok(value) => d.field("value", &&*value),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.field("locked", &self.locked()).finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> fmt::Debug for LockFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFuture")
            .field("queued", &self.waiter.is_some())
            .finish()
    }
}
