//! The thread-local *current loop*.
//!
//! Owns: which loop (if any) is running on this thread, and the guard that sets and
//! restores it around `block_on` / `run_forever`. Must not touch: loop state — it only
//! hands out the loop core (`Rc<Local>`) to code running on that loop's thread.
//!
//! Changing the current loop also settles the loop's handle reserve (`loop_ref`):
//! it belongs to the current loop only.
//!
//! The loop id is kept in its own `Cell<u64>` so that the hot check "am I on loop X's
//! thread?" (every `call_soon`, every waker) is a single thread-local load.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::core::Local;
use crate::loop_ref;
use crate::task::coop;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// Id of the loop running on this thread; 0 when none.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Id of the loop running on this thread, 0 if none (also during thread teardown).
pub(crate) fn current_id() -> u64 {
    CURRENT_ID.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` with the core of loop `id` if that loop is running on this thread.
///
/// The thread-local is borrowed while `f` runs, so `f` must not run user code (a
/// destructor could drop a runtime, which swaps the current loop): hand what must be
/// dropped back out of `f`, or use [`current`] (a reference count) instead.
pub(crate) fn with_local<R>(id: u64, f: impl FnOnce(&Local) -> R) -> Option<R> {
    if current_id() != id {
        return None;
    }
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|local| f(local)))
        .ok()
        .flatten()
}

/// Runs `f` with the core of the loop running on this thread, if any (no reference
/// counting, unlike [`current`]). As for [`with_local`], `f` must not run user code.
pub(crate) fn with_current<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|local| f(local)))
        .ok()
        .flatten()
}

/// The core of the loop running on this thread.
pub(crate) fn current() -> Option<Rc<Local>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The core of loop `id`, by reference count, if that loop is running on this thread:
/// for code that runs user code with it (unlike [`with_local`]'s closure).
pub(crate) fn current_for(id: u64) -> Option<Rc<Local>> {
    if current_id() != id {
        return None;
    }
    current()
}

/// Restores "no loop running" on drop (also when a root future panics).
#[derive(Debug)]
pub(crate) struct EnterGuard {
    _not_send: std::marker::PhantomData<Rc<()>>,
}

/// Makes `local` the running loop of this thread. `Err(id)` if loop `id` already runs
/// here (the caller turns that into a panic that explains what to do).
pub(crate) fn enter(local: Rc<Local>) -> Result<EnterGuard, u64> {
    let running = current_id();
    if running != 0 {
        return Err(running);
    }
    CURRENT_ID.with(|c| c.set(local.id()));
    CURRENT.with(|c| *c.borrow_mut() = Some(local));
    Ok(EnterGuard {
        _not_send: std::marker::PhantomData,
    })
}

/// Makes `local` the current loop for the guard's lifetime even if another loop is
/// running here (a runtime dropped inside another loop's callback shuts down on its
/// own context); the previous one is restored afterwards.
pub(crate) fn enter_for_shutdown(local: Rc<Local>) -> SwapGuard {
    // The previous loop's handle reserve is not this loop's: park it meanwhile. So is
    // a cancellation worklist it may be draining (the shutdown's requests apply now).
    let prev_reserve = loop_ref::suspend_reserve();
    let cancel_scope = coop::suspend_cancel_scope();
    let prev_id = CURRENT_ID.with(|c| c.replace(local.id()));
    let prev = CURRENT.with(|c| c.borrow_mut().replace(local));
    SwapGuard {
        prev: Some((prev_id, prev, prev_reserve)),
        cancel_scope: Some(cancel_scope),
    }
}

/// Restores the loop that was current before [`enter_for_shutdown`].
pub(crate) struct SwapGuard {
    prev: Option<(u64, Option<Rc<Local>>, usize)>,
    cancel_scope: Option<coop::CancelScope>,
}

impl Drop for SwapGuard {
    fn drop(&mut self) {
        if let Some(scope) = self.cancel_scope.take() {
            coop::restore_cancel_scope(scope);
        }
        if let Some((id, prev, prev_reserve)) = self.prev.take() {
            let mine = CURRENT
                .try_with(|c| std::mem::replace(&mut *c.borrow_mut(), prev))
                .ok()
                .flatten();
            if let Some(mine) = &mine {
                loop_ref::flush_reserve(&mine.handle.shared);
            }
            let _ = CURRENT_ID.try_with(|c| c.set(id));
            loop_ref::restore_reserve(prev_reserve);
            drop(mine);
        }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = CURRENT.try_with(|c| c.borrow_mut().take()).ok().flatten();
        if let Some(prev) = &prev {
            // Still the current id, and `prev` holds a handle: see `loop_ref`.
            loop_ref::flush_reserve(&prev.handle.shared);
        }
        let _ = CURRENT_ID.try_with(|c| c.set(0));
        drop(prev);
    }
}
