//! `gather` (SPEC §5 G1–G6): [`gather`], [`gather_results`] and [`gather!`](crate::gather!).
//!
//! Owns: the outer future of a gather and its bookkeeping. Must not touch: the
//! children's state machine — a child is observed through a `Notify` entry in its own
//! registration list (no allocation per child beyond that slot) and read with its
//! public accessors once done.
//!
//! Children hold their registration weakly, and a gather that is freed removes its
//! registration from every child still pending (Q8): a gather nobody holds any more
//! (nobody awaits or keeps its outer future) is freed, and leaves nothing behind, even
//! while children are pending.
//!
//! Cancelling a gather cancels its children, and a child that is itself a gather
//! cancels its own children first (asyncio's `_GatheringFuture.cancel` recursion): that
//! walk runs on an explicit stack ([`cancel_tree`]), so gathers nested 100 000 deep are
//! cancelled in bounded stack (rule 3); a task child's cancellation is queued by the
//! task module's worklist.
//!
//! A child's completion pushes its index to the gather's queue (on whatever thread
//! completed it) and, if none is pending, schedules one batch callback on the outer's
//! loop (`call_soon`, cross-thread when needed: G5). The batch applies asyncio's rules
//! on the loop, in a later iteration — so `outer.cancel()` returns with the outer
//! still pending (G4), as in asyncio:
//!
//! * without `return_exceptions`, the first child that failed or was cancelled
//!   finishes the outer with that error (a cancelled child as `Error::Cancelled`, an
//!   *exception*: the outer is not `cancelled()`); later children's errors are marked
//!   retrieved (G1);
//! * once every child is done the outer gets the results in argument order — or,
//!   after a successful `outer.cancel()`, `Error::Cancelled` as an exception, whatever
//!   `return_exceptions` (G4).

use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::closing::Closable;
use crate::error::{CancelledError, Error};
use crate::future::{CancelHook, Future, FutureCore, FutureObj, Notify, Outcome};
use crate::handle::LoopHandle;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::task::TaskOps;

/// A child of a gather, whatever its type.
pub(crate) trait Child: Send + Sync {
    fn notify_on_done(&self, observer: Weak<dyn Notify>, index: u32);
    /// Removes the registration of `observer` (a gather being freed) for `index`.
    fn forget_observer(&self, observer: *const (), index: u32);
    /// The child as a gather, if it is one (for the cancellation walk).
    fn as_gather(&self) -> Option<&dyn GatherNode>;
    fn is_done(&self) -> bool;
    /// The child's error (exception, or `Cancelled`), observing it (F10).
    fn error(&self) -> Option<Error>;
    fn cancel_with(&self, message: Option<Arc<str>>) -> bool;
    fn owner(&self) -> LoopHandle;
}

impl<T: Send + 'static> Child for Future<T> {
    fn notify_on_done(&self, observer: Weak<dyn Notify>, index: u32) {
        self.add_notify(observer, index);
    }

    fn forget_observer(&self, observer: *const (), index: u32) {
        self.obj.core().remove_notify(observer, index);
    }

    fn as_gather(&self) -> Option<&dyn GatherNode> {
        self.obj.as_gather()
    }

    fn is_done(&self) -> bool {
        self.done()
    }

    fn error(&self) -> Option<Error> {
        Future::error(self)
    }

    fn cancel_with(&self, message: Option<Arc<str>>) -> bool {
        self.obj.cancel(self, message)
    }

    fn owner(&self) -> LoopHandle {
        self.get_loop()
    }
}

/// The children of one gather and how their results become the outer's value.
pub(crate) trait Children: Send + Sync + 'static {
    type Output: Send + 'static;
    fn len(&self) -> usize;
    fn child(&self, index: usize) -> &dyn Child;
    /// Every child is done: the outer's value (`Err` if a result cannot be read).
    fn collect(&self) -> Result<Self::Output, Error>;
}

/// `gather`: every child's result, in order.
struct Results<T>(Vec<Future<T>>);

impl<T: Send + Clone + 'static> Children for Results<T> {
    type Output = Vec<T>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn child(&self, index: usize) -> &dyn Child {
        &self.0[index]
    }

    fn collect(&self) -> Result<Vec<T>, Error> {
        self.0.iter().map(Future::result).collect()
    }
}

/// `gather_results`: every child's outcome, in order.
struct Outcomes<T>(Vec<Future<T>>);

impl<T: Send + Clone + 'static> Children for Outcomes<T> {
    type Output = Vec<Result<T, Error>>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn child(&self, index: usize) -> &dyn Child {
        &self.0[index]
    }

    fn collect(&self) -> Result<Vec<Result<T, Error>>, Error> {
        Ok(self.0.iter().map(Future::result).collect())
    }
}

/// The outer future of a gather, with its children and bookkeeping.
struct GatherCell<C: Children> {
    me: Weak<GatherCell<C>>,
    core: FutureCore<C::Output>,
    /// Taken only by `drop` (to free the children in a `flat_drop` scope).
    children: ManuallyDrop<C>,
    return_exceptions: bool,
    /// Children not yet processed by a batch.
    remaining: AtomicUsize,
    /// A successful `outer.cancel()`: finish with `Cancelled` once all are done (G4).
    cancel_requested: AtomicBool,
    cancel_message: Mutex<Option<Arc<str>>>,
    /// Indices of children completed since the last batch.
    done: Mutex<Vec<u32>>,
    batch_scheduled: AtomicBool,
    /// Cancellation walks in progress over this gather (on any thread), and whether the
    /// last child's batch is waiting for them: the outcome must see the request a walk
    /// is about to record (G4), even when `cancel()` runs on another thread.
    cancelling: AtomicUsize,
    finish_deferred: AtomicBool,
}

impl<C: Children> GatherCell<C> {
    fn handle(self: &Arc<Self>) -> Future<C::Output> {
        Future::from_obj(self.clone())
    }

    /// Processes the children completed so far (on the outer's loop).
    fn run_batch(self: &Arc<Self>) {
        self.batch_scheduled.store(false, Ordering::Release);
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        for index in done {
            self.child_done(index as usize);
        }
    }

    fn child_done(self: &Arc<Self>, index: usize) {
        let child = self.children.child(index);
        let error = child.error();
        let last = self.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
        if self.core.is_done() {
            return;
        }
        if !self.return_exceptions {
            if let Some(error) = error {
                self.finish(Outcome::Exception(error));
                return;
            }
        }
        if last {
            self.all_done();
        }
    }

    /// Every child is done. A cancellation walk in progress decides the outcome (it may
    /// be about to record a request): then the walk's end finishes the gather instead.
    /// Exactly one of the two does (the `SeqCst` pair below).
    fn all_done(self: &Arc<Self>) {
        self.finish_deferred.store(true, Ordering::SeqCst);
        if self.cancelling.load(Ordering::SeqCst) > 0 {
            return;
        }
        if self.finish_deferred.swap(false, Ordering::SeqCst) {
            self.finish_all_done();
        }
    }

    fn finish_all_done(self: &Arc<Self>) {
        let outcome = if self.cancel_requested.load(Ordering::Acquire) {
            let message = self
                .cancel_message
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Outcome::Exception(Error::Cancelled(CancelledError::from_arc(message)))
        } else {
            match self.children.collect() {
                Ok(value) => Outcome::Value(value),
                Err(error) => Outcome::Exception(error),
            }
        };
        self.finish(outcome);
    }

    fn finish(self: &Arc<Self>, outcome: Outcome<C::Output>) {
        let _ = self.core.complete(outcome, &|| self.handle());
    }

    /// G4: cancels every child not done; `true` if any of them was cancelled.
    fn cancel_children(&self, message: Option<Arc<str>>) -> bool {
        cancel_tree(self, &message)
    }
}

/// A gather as the cancellation walk sees it, whatever its children's types.
pub(crate) trait GatherNode: Send + Sync {
    fn node_done(&self) -> bool;
    fn child_count(&self) -> usize;
    fn child_at(&self, index: usize) -> &dyn Child;
    /// The walk starts cancelling this gather's children.
    fn begin_cancel(&self);
    /// The walk cancelled this gather's children: `any` of them was cancelled. Records
    /// the request (G4) and returns what `cancel()` returns.
    fn children_cancelled(&self, any: bool, message: &Option<Arc<str>>) -> bool;
}

impl<C: Children> GatherNode for GatherCell<C> {
    fn node_done(&self) -> bool {
        self.core.is_done()
    }

    fn child_count(&self) -> usize {
        self.children.len()
    }

    fn child_at(&self, index: usize) -> &dyn Child {
        self.children.child(index)
    }

    fn begin_cancel(&self) {
        self.cancelling.fetch_add(1, Ordering::SeqCst);
    }

    fn children_cancelled(&self, any: bool, message: &Option<Arc<str>>) -> bool {
        if any {
            *self
                .cancel_message
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = message.clone();
            self.cancel_requested.store(true, Ordering::Release);
        }
        if self.cancelling.fetch_sub(1, Ordering::SeqCst) == 1
            && self.finish_deferred.swap(false, Ordering::SeqCst)
        {
            // The last child's batch ran during the walk and left the outcome to it.
            if let Some(me) = self.me.upgrade() {
                self.core.owner.call_soon(move || me.finish_all_done());
            }
        }
        any
    }
}

/// asyncio's recursive `_GatheringFuture.cancel` on an explicit stack: every child not
/// done is cancelled, a child that is a pending gather is walked into first, and each
/// gather learns whether any of its children was cancelled — in the order and with the
/// results of the recursion, in bounded stack (rule 3).
fn cancel_tree<'a>(root: &'a dyn GatherNode, message: &Option<Arc<str>>) -> bool {
    if root.node_done() {
        return false;
    }
    // (gather, next child to visit, whether any child so far was cancelled)
    root.begin_cancel();
    let mut stack: Vec<(&'a dyn GatherNode, usize, bool)> = vec![(root, 0, false)];
    loop {
        let Some(&mut (node, ref mut next, ref mut any)) = stack.last_mut() else {
            unreachable!("the root frame is popped by the return below");
        };
        if *next == node.child_count() {
            let cancelled = node.children_cancelled(*any, message);
            stack.pop();
            match stack.last_mut() {
                Some(parent) => parent.2 |= cancelled,
                None => return cancelled,
            }
            continue;
        }
        let child = node.child_at(*next);
        *next += 1;
        if child.is_done() {
            continue;
        }
        match child.as_gather() {
            Some(gather) if !gather.node_done() => {
                gather.begin_cancel();
                stack.push((gather, 0, false));
            }
            Some(_) => {}
            None => *any |= child.cancel_with(message.clone()),
        }
    }
}

impl<C: Children> Notify for GatherCell<C> {
    fn notify(self: Arc<Self>, index: u32) {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(index);
        if !self.batch_scheduled.swap(true, Ordering::AcqRel) {
            let owner = self.core.owner.clone();
            owner.call_soon(move || self.run_batch());
        }
    }
}

impl<C: Children> Closable for GatherCell<C> {
    fn loop_closed(self: Arc<Self>) {
        self.core.close_pending(&|| self.handle());
    }
}

impl<C: Children> Drop for GatherCell<C> {
    fn drop(&mut self) {
        // Q8: a child still pending forgets this gather (its entry would otherwise keep
        // this allocation alive through the weak reference until the child completes).
        let me = self as *const Self as *const ();
        for index in 0..self.children.len() {
            self.children.child(index).forget_observer(me, index as u32);
        }
        // F10 for the outer future: it failed and nobody looked.
        crate::future::report_unretrieved(&self.core, "gather ");
        // SAFETY: `children` is not used after this line: this is the cell's drop.
        let children = unsafe { ManuallyDrop::take(&mut self.children) };
        // Children that are gathers free their own children after this (rule 3).
        crate::flat_drop::scope(move || drop(children));
    }
}

impl<C: Children> CancelHook for GatherCell<C> {
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool {
        self.cancel_children(message)
    }
}

impl<C: Children> FutureObj<C::Output> for GatherCell<C> {
    fn core(&self) -> &FutureCore<C::Output> {
        &self.core
    }

    fn task(&self) -> Option<&dyn TaskOps> {
        None
    }

    fn cancel(&self, _handle: &Future<C::Output>, message: Option<Arc<str>>) -> bool {
        self.cancel_children(message)
    }

    fn as_gather(&self) -> Option<&dyn GatherNode> {
        Some(self)
    }
}

/// Starts a gather over `children`, bound to the caller's loop (or, off a loop, the
/// first child's).
#[track_caller]
pub(crate) fn start<C: Children>(children: C, return_exceptions: bool) -> Future<C::Output> {
    let owner = LoopHandle::try_current()
        .or_else(|| (children.len() > 0).then(|| children.child(0).owner()))
        .unwrap_or_else(|| {
            panic!(
                "evloop::gather: no running event loop and no child to bind the result to; \
                 call it on a loop thread"
            )
        });
    let len = children.len();
    let cell = Arc::new_cyclic(|me| GatherCell {
        me: me.clone(),
        core: FutureCore::new(owner, std::panic::Location::caller()),
        children: ManuallyDrop::new(children),
        return_exceptions,
        remaining: AtomicUsize::new(len),
        cancel_requested: AtomicBool::new(false),
        cancel_message: Mutex::new(None),
        done: Mutex::new(Vec::new()),
        batch_scheduled: AtomicBool::new(false),
        cancelling: AtomicUsize::new(0),
        finish_deferred: AtomicBool::new(false),
    });
    if len == 0 {
        // G3: nothing to wait for.
        match cell.children.collect() {
            Ok(value) => cell.finish(Outcome::Value(value)),
            Err(error) => cell.finish(Outcome::Exception(error)),
        }
        return cell.handle();
    }
    for index in 0..len {
        let observer: Weak<dyn Notify> = Arc::downgrade(&cell) as Weak<dyn Notify>;
        cell.children.child(index).notify_on_done(
            observer,
            u32::try_from(index).expect("fewer than 2^32 children"),
        );
    }
    cell.handle()
}

/// Waits for every future and returns their results in argument order (asyncio's
/// `gather`, G1). The first child to fail — an exception, or a cancellation, which
/// counts as an `Error::Cancelled` *exception* — finishes the returned future at once
/// with that error; the others keep running and their later errors are marked
/// retrieved (never reported as unretrieved).
///
/// * Empty input gives a future that is already done with `vec![]`; a future passed
///   twice fills both slots (G3).
/// * `outer.cancel()` cancels every child not yet done and returns whether any was;
///   the outer then finishes (in a later iteration) with `Error::Cancelled` as its
///   exception — so awaiting it yields `Err(Cancelled)` while `outer.cancelled()` is
///   `false` (G4). A task awaiting a gather that is cancelled cancels the gather and so
///   every child.
/// * Children may belong to different loops (G5; asyncio refuses this): their
///   completions reach the outer's loop through the cross-thread queue. The outer is
///   bound to the caller's loop.
///
/// There is no allocation per child: each child holds one registration for the gather.
///
/// ```
/// use evloop::{Error, create_task, gather, time::sleep};
/// use std::time::Duration;
///
/// let out = evloop::run(async {
///     let tasks = (1..=3u64).map(|i| {
///         create_task(async move {
///             sleep(Duration::from_millis(4 - i)).await?;
///             Ok::<_, Error>(i * 10)
///         })
///     });
///     gather(tasks).await
/// });
/// assert_eq!(out.unwrap(), [10, 20, 30], "argument order, not completion order");
/// ```
///
/// # Panics
///
/// Off a loop thread with no child to bind the result to.
#[track_caller]
pub fn gather<T, I>(futs: I) -> Future<Vec<T>>
where
    T: Send + Clone + 'static,
    I: IntoIterator,
    I::Item: Into<Future<T>>,
{
    start(Results(futs.into_iter().map(Into::into).collect()), false)
}

/// Like [`gather`] with asyncio's `return_exceptions=True` (G2): every slot holds its
/// child's outcome, `Err(Error::Cancelled)` for a cancelled child; the returned future
/// itself only fails if it is cancelled (G4).
///
/// ```
/// let out = evloop::run(async {
///     let ok = evloop::create_task(async { Ok::<u8, evloop::Error>(1) });
///     let bad = evloop::create_task(async { Err::<u8, _>(evloop::Error::msg("boom")) });
///     evloop::gather_results([ok, bad]).await
/// })
/// .unwrap();
/// assert_eq!(*out[0].as_ref().unwrap(), 1);
/// assert_eq!(out[1].as_ref().unwrap_err().to_string(), "boom");
/// ```
///
/// # Panics
///
/// As [`gather`].
#[track_caller]
pub fn gather_results<T, I>(futs: I) -> Future<Vec<Result<T, Error>>>
where
    T: Send + Clone + 'static,
    I: IntoIterator,
    I::Item: Into<Future<T>>,
{
    start(Outcomes(futs.into_iter().map(Into::into).collect()), true)
}

/// Tuples of futures for [`gather!`](crate::gather!): mixed result types.
macro_rules! tuple_children {
    ($len:literal; $($name:ident $index:tt),+) => {
        impl<$($name),+> Children for ($(Future<$name>,)+)
        where
            $($name: Send + Clone + 'static),+
        {
            type Output = ($($name,)+);

            fn len(&self) -> usize {
                $len
            }

            fn child(&self, index: usize) -> &dyn Child {
                match index {
                    $($index => &self.$index,)+
                    _ => unreachable!("index within the tuple"),
                }
            }

            fn collect(&self) -> Result<Self::Output, Error> {
                Ok(($(self.$index.result()?,)+))
            }
        }

        impl<$($name),+> __private::sealed::Sealed for ($(Future<$name>,)+) where $($name: Send + Clone + 'static),+ {}

        impl<$($name),+> __private::GatherTuple for ($(Future<$name>,)+)
        where
            $($name: Send + Clone + 'static),+
        {
            type Output = ($($name,)+);

            #[track_caller]
            fn gather(self) -> Future<Self::Output> {
                start(self, false)
            }
        }
    };
}

tuple_children!(1; A 0);
tuple_children!(2; A 0, B 1);
tuple_children!(3; A 0, B 1, C 2);
tuple_children!(4; A 0, B 1, C 2, D 3);
tuple_children!(5; A 0, B 1, C 2, D 3, E 4);
tuple_children!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_children!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_children!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_children!(9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_children!(10; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_children!(11; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_children!(12; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// Support for the [`gather!`](crate::gather!) macro; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::future::Future;

    pub(crate) mod sealed {
        pub trait Sealed {}
    }

    /// A tuple of futures `gather!` accepts (sealed: implemented for tuples of
    /// `Future`s of 1 to 12 elements).
    pub trait GatherTuple: sealed::Sealed {
        /// The tuple of results.
        type Output: Send + 'static;
        /// Starts the gather.
        fn gather(self) -> Future<Self::Output>;
    }

    /// Converts one argument of `gather!` (a `Future<T>` or a `Task<T>`).
    pub fn into_future<T: Send + 'static>(fut: impl Into<Future<T>>) -> Future<T> {
        fut.into()
    }

    /// Starts `gather!`.
    #[track_caller]
    pub fn gather_tuple<C: GatherTuple>(children: C) -> Future<C::Output> {
        children.gather()
    }
}

/// `gather` for futures of different types (G6): `gather!(a, b, c)` is a
/// `Future<(A, B, C)>` with [`gather`]'s semantics (G1–G5). Up to 12 arguments, each
/// a `Future<T>` or a `Task<T>` with `T: Clone`.
///
/// ```
/// let (n, s, v) = evloop::run(async {
///     let n = evloop::create_task(async { Ok::<_, evloop::Error>(1u8) });
///     let s = evloop::create_task(async { Ok::<_, evloop::Error>("two") });
///     let v = evloop::create_task(async { Ok::<_, evloop::Error>(vec![3]) });
///     evloop::gather!(n, s, v).await
/// })
/// .unwrap();
/// assert_eq!((n, s, v), (1, "two", vec![3]));
/// ```
#[macro_export]
macro_rules! gather {
    ($($fut:expr),+ $(,)?) => {
        $crate::__gather_private::gather_tuple(($($crate::__gather_private::into_future($fut),)+))
    };
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GatherCell<Results<u8>>>();
}
