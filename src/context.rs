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
//!
//! [`with_current`] and [`with_local`] (every spawn, every future created, every task
//! released) read a plain pointer to the current loop's core instead of borrowing the
//! `RefCell` that owns it (a lazily registered thread-local with a destructor: ≈ 40
//! instructions a call, 8 % of a P4 ping-pong pair). The rules that make the pointer
//! sound:
//!
//! | state | rule |
//! |---|---|
//! | `CURRENT_PTR` | non-null exactly while `CURRENT` holds `Some(rc)`, and then equal to `Rc::as_ptr(rc)`: every change of `CURRENT` goes through `replace_current`, which sets both |
//! | `LENT` | how many `with_current` / `with_local` closures run on this thread; `replace_current` panics while it is not 0 (the `&Local` they hold would dangle), as the `RefCell` borrow did |
//! | thread teardown | `CURRENT`'s value clears `CURRENT_PTR` when the thread-local is destroyed, before it drops its `Rc` (`CURRENT_PTR` and `LENT` have no destructor, so they exist until the thread ends) |

use std::cell::{Cell, RefCell};
use std::ptr;
use std::rc::Rc;

use crate::core::Local;
use crate::loop_ref;
use crate::task::coop;

thread_local! {
    static CURRENT: RefCell<Current> = const { RefCell::new(Current(None)) };
    /// Id of the loop running on this thread; 0 when none.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
    /// `CURRENT`'s loop core as a pointer (see the module docs).
    static CURRENT_PTR: Cell<*const Local> = const { Cell::new(ptr::null()) };
    /// `with_current` / `with_local` closures running (see the module docs).
    static LENT: Cell<u32> = const { Cell::new(0) };
}

/// The owner of the current loop's core; clears `CURRENT_PTR` before letting go of it.
struct Current(Option<Rc<Local>>);

impl Drop for Current {
    fn drop(&mut self) {
        CURRENT_PTR.set(ptr::null());
    }
}

/// Makes `new` the current loop core and returns the previous one: the only place
/// `CURRENT` changes (see the module docs for why `CURRENT_PTR` follows it).
///
/// # Panics
///
/// While a `with_current` / `with_local` closure runs on this thread — evloop code that
/// ran user code inside one (the same bug the `RefCell` reported as "already borrowed").
fn replace_current(new: Option<Rc<Local>>) -> Option<Rc<Local>> {
    assert_not_lent();
    let core = new.as_ref().map_or(ptr::null(), Rc::as_ptr);
    // Null while `CURRENT` changes: at thread teardown `try_with` fails and drops `new`
    // (a core's destructors must not find it current); otherwise the pointer is set
    // right after the swap, which drops nothing (the old core is returned).
    CURRENT_PTR.set(ptr::null());
    CURRENT
        .try_with(|c| {
            let old = std::mem::replace(&mut c.borrow_mut().0, new);
            CURRENT_PTR.set(core);
            old
        })
        .unwrap_or(None)
}

/// See [`replace_current`]'s `# Panics`.
fn assert_not_lent() {
    assert_eq!(
        LENT.get(),
        0,
        "evloop bug: the current loop changed while its core was lent out (user code ran \
         inside with_current)"
    );
}

/// Counts a lent `&Local` for its scope, also when the closure unwinds.
struct Lend;

impl Lend {
    #[inline]
    fn new() -> Lend {
        LENT.set(LENT.get() + 1);
        Lend
    }
}

impl Drop for Lend {
    #[inline]
    fn drop(&mut self) {
        LENT.set(LENT.get() - 1);
    }
}

#[inline]
fn lend<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    let core = CURRENT_PTR.get();
    if core.is_null() {
        return None;
    }
    let _lent = Lend::new();
    // SAFETY: a non-null `CURRENT_PTR` is `Rc::as_ptr` of the `Rc` that `CURRENT` holds
    // (module docs), so the core is alive now; `CURRENT` cannot change while `LENT` is
    // not 0 (`replace_current` panics), so the `Rc` — and the core — outlive `f`.
    Some(f(unsafe { &*core }))
}

/// Id of the loop running on this thread, 0 if none (also during thread teardown).
pub(crate) fn current_id() -> u64 {
    CURRENT_ID.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` with the core of loop `id` if that loop is running on this thread.
///
/// The core is lent to `f` (module docs), so `f` must not run user code (a destructor
/// could drop a runtime, which swaps the current loop: that panics): hand what must be
/// dropped back out of `f`, or use [`current`] (a reference count) instead.
pub(crate) fn with_local<R>(id: u64, f: impl FnOnce(&Local) -> R) -> Option<R> {
    if current_id() != id {
        return None;
    }
    lend(f)
}

/// Runs `f` with the core of the loop running on this thread, if any (no reference
/// counting, unlike [`current`]). As for [`with_local`], `f` must not run user code.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    lend(f)
}

/// The core of the loop running on this thread.
pub(crate) fn current() -> Option<Rc<Local>> {
    CURRENT.try_with(|c| c.borrow().0.clone()).ok().flatten()
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
    drop(replace_current(Some(local)));
    Ok(EnterGuard {
        _not_send: std::marker::PhantomData,
    })
}

/// Makes `local` the current loop for the guard's lifetime even if another loop is
/// running here (a runtime dropped inside another loop's callback shuts down on its
/// own context); the previous one is restored afterwards.
pub(crate) fn enter_for_shutdown(local: Rc<Local>) -> SwapGuard {
    // Before any change, so a panic leaves the thread's state as it was.
    assert_not_lent();
    // The previous loop's handle reserve is not this loop's: park it meanwhile. So is
    // a cancellation worklist it may be draining (the shutdown's requests apply now).
    let prev_reserve = loop_ref::suspend_reserve();
    let cancel_scope = coop::suspend_cancel_scope();
    let prev_id = CURRENT_ID.with(|c| c.replace(local.id()));
    let prev = replace_current(Some(local));
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
            let mine = replace_current(prev);
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
        let prev = replace_current(None);
        if let Some(prev) = &prev {
            // Still the current id, and `prev` holds a handle: see `loop_ref`.
            loop_ref::flush_reserve(&prev.handle.shared);
        }
        let _ = CURRENT_ID.try_with(|c| c.set(0));
        drop(prev);
    }
}

#[cfg(test)]
mod tests {
    use super::{enter_for_shutdown, with_current, with_local};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// The pointer follows the owning `RefCell` through enter, a nested runtime's
    /// shutdown (`enter_for_shutdown` and its restore) and exit.
    #[test]
    fn the_lent_core_is_the_current_loop_through_enter_swap_and_exit() {
        assert!(with_current(|_| ()).is_none(), "no loop yet");
        let outer = crate::Runtime::new().unwrap();
        let outer_id = outer.handle().id();
        outer.block_on(async {
            assert_eq!(with_current(|l| l.id()), Some(outer_id));
            let inner = crate::Runtime::new().unwrap();
            let inner_id = inner.handle().id();
            drop(inner.handle().spawn(async { Ok(()) }));
            drop(inner); // shuts down on its own context, then restores ours
            assert_eq!(with_current(|l| l.id()), Some(outer_id));
            assert!(with_local(inner_id, |_| ()).is_none());
            assert_eq!(with_local(outer_id, |l| l.id()), Some(outer_id));
        });
        assert!(with_current(|_| ()).is_none(), "no loop after block_on");
    }

    /// Changing the current loop while its core is lent would leave the `&Local` of the
    /// running closure dangling: it panics before changing anything, and the thread's
    /// state is intact afterwards.
    #[test]
    fn changing_the_loop_while_its_core_is_lent_panics_and_changes_nothing() {
        let rt = crate::Runtime::new().unwrap();
        let other = crate::Runtime::new().unwrap();
        let id = rt.handle().id();
        rt.block_on(async {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                with_current(|_| drop(enter_for_shutdown(other.local_for_tests())))
            }));
            let message = caught.expect_err("a change while lent must panic");
            let message = message
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert!(message.contains("lent"), "{message}");
            assert_eq!(with_current(|l| l.id()), Some(id), "still the same loop");
            assert_eq!(super::LENT.get(), 0, "the lend ended with the unwind");
        });
    }
}
