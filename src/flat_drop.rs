//! Dropping nested futures in bounded stack (rule 3 of ARCHITECTURE.md).
//!
//! Owns: the per-thread worklist of values whose drop was deferred. Must not touch:
//! what the values are — it only drops them.
//!
//! A future's done-callbacks may hold other futures (a `chain_future` chain), a
//! `gather` holds its children, and so on: dropping the last handle of the head of a
//! 100 000-long chain would recurse 100 000 destructors deep. Instead, a `Future`
//! handle that holds the last reference to its cell hands the cell to [`drop_flat`]:
//! the outermost call on a thread frees it in place, and every call made while that
//! runs (a nested cell being freed) only pushes the cell on the worklist, which the
//! outermost call then drains. The stack stays a few frames deep whatever the length
//! of the chain, and nothing is allocated (a cell is already behind an `Arc`).
//!
//! Each value is dropped under its own `catch_unwind` (rule 7), so a panicking
//! destructor never loses the rest of the worklist; the first panic is resumed once the
//! worklist is empty — the caller sees what a plain drop would have raised — unless the
//! thread is already unwinding, where it is logged instead (a second panic would abort).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::future::CancelHook;

/// A future cell (plain, task, gather, shield), type-erased.
type AnyCell = Arc<dyn CancelHook>;

thread_local! {
    /// A `drop_flat` is running on this thread: nested calls defer.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    static DEFERRED: RefCell<Vec<AnyCell>> = const { RefCell::new(Vec::new()) };
}

/// Drops `value` (the last reference to a future cell), deferring the drops it causes
/// in turn (see the module docs).
pub(crate) fn drop_flat(value: AnyCell) {
    if cfg!(loom) {
        // loom's simulated threads share the OS thread's thread-locals.
        drop(value);
        return;
    }
    // `DRAINING` has no destructor, so it is there even during thread teardown.
    match DRAINING.try_with(|d| d.replace(true)) {
        Ok(false) => {}
        Ok(true) => {
            let mut value = Some(value);
            let deferred = DEFERRED.try_with(|q| {
                if let Some(value) = value.take() {
                    q.borrow_mut().push(value);
                }
            });
            // Thread teardown: nothing to defer to, drop in place.
            if deferred.is_err() {
                drop(value);
            }
            return;
        }
        // Thread teardown.
        Err(_) => {
            drop(value);
            return;
        }
    }
    let mut first_panic = catch_unwind(AssertUnwindSafe(move || drop(value))).err();
    loop {
        // The borrow ends before the value is dropped: its drop may defer more. (At
        // thread teardown the worklist may be gone: nested drops then ran in place.)
        let next = DEFERRED.try_with(|q| q.borrow_mut().pop()).ok().flatten();
        let Some(next) = next else {
            break;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(next))) {
            first_panic.get_or_insert(payload);
        }
    }
    let _ = DEFERRED.try_with(|q| {
        let mut q = q.borrow_mut();
        if q.capacity() > 64 {
            *q = Vec::new();
        }
    });
    DRAINING.with(|d| d.set(false));
    if let Some(payload) = first_panic {
        if std::thread::panicking() {
            log::error!(target: "evloop", "a destructor panicked while a chain of futures was dropped");
        } else {
            resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A singly linked list whose drop goes through `drop_flat`, like a chain of
    /// futures each holding the next.
    struct Link {
        next: Option<AnyCell>,
        drops: Arc<AtomicUsize>,
        bomb: bool,
    }

    impl CancelHook for Link {
        fn cancel_hook(self: Arc<Self>, _: Option<Arc<str>>) -> bool {
            false
        }
    }

    impl Drop for Link {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
            if let Some(next) = self.next.take() {
                drop_flat(next);
            }
            if self.bomb {
                panic!("link destructor");
            }
        }
    }

    fn chain(n: usize, drops: &Arc<AtomicUsize>, bomb_at: Option<usize>) -> AnyCell {
        let mut head = None;
        for i in (0..n).rev() {
            head = Some(Arc::new(Link {
                next: head,
                drops: drops.clone(),
                bomb: bomb_at == Some(i),
            }) as AnyCell);
        }
        head.expect("n > 0")
    }

    /// A 1 000 000-long chain is dropped on a 256 KiB stack: with a recursive drop it
    /// would overflow.
    #[test]
    fn a_long_chain_drops_in_bounded_stack() {
        let n = if cfg!(miri) { 1_000 } else { 1_000_000 };
        let drops = Arc::new(AtomicUsize::new(0));
        let head = chain(n, &drops, None);
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || drop_flat(head))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), n);
    }

    /// A panicking destructor in the middle does not stop the rest from being dropped;
    /// the panic reaches the caller once everything is dropped.
    #[test]
    fn a_panic_in_the_middle_loses_nothing_and_is_resumed() {
        let drops = Arc::new(AtomicUsize::new(0));
        let head = chain(100, &drops, Some(50));
        let result = catch_unwind(AssertUnwindSafe(|| drop_flat(head)));
        assert!(result.is_err(), "the panic is resumed");
        assert_eq!(drops.load(Ordering::Relaxed), 100);
        // The thread's worklist is usable again.
        let again = chain(10, &drops, None);
        drop_flat(again);
        assert_eq!(drops.load(Ordering::Relaxed), 110);
    }
}
