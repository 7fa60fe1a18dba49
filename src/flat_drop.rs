//! Dropping nested futures in bounded stack (rule 3 of ARCHITECTURE.md).
//!
//! Owns: the per-thread worklist of future cells whose drop was deferred. Must not
//! touch: what the cells hold — it only drops them.
//!
//! A future's done-callbacks may hold other futures (a `chain_future` chain), a
//! `gather` holds its children, a shield its inner future, a value may be a future:
//! dropping the last handle of the head of a 100 000-long chain would recurse 100 000
//! destructors deep. So a cell drops what it holds inside a [`scope`]; while a scope
//! runs on a thread, a `Future` handle that is the last reference to its cell does not
//! free it but [`defer`]s it (an `Arc`, no allocation), and the scope frees the
//! deferred cells one by one afterwards — each dropping its own contents in a nested
//! scope that only defers. The stack stays a few frames deep whatever the chain's
//! length; outside a scope (the usual case, a future holding nothing but a plain
//! value) nothing changes.
//!
//! Each deferred cell is dropped under its own `catch_unwind` (rule 7), so a panicking
//! destructor never loses the rest of the worklist; the first panic is resumed once the
//! worklist is empty — the caller sees what a plain drop would have raised — unless the
//! thread is already unwinding, where it is logged instead (a second panic would abort).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::future::CancelHook;

/// A future cell (plain, task, gather, shield, signal wait), type-erased.
pub(crate) type AnyCell = Arc<dyn CancelHook>;

thread_local! {
    /// A `scope` is running on this thread: last handles defer their cells.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// Something was deferred (the outermost scope then drains the worklist).
    static DEFERRED_ANY: Cell<bool> = const { Cell::new(false) };
    static DEFERRED: RefCell<Vec<AnyCell>> = const { RefCell::new(Vec::new()) };
}

/// Whether a [`scope`] runs on this thread (then a last handle must [`defer`] its cell).
/// (`DRAINING` has no destructor: it exists even during thread teardown.)
#[inline]
pub(crate) fn draining() -> bool {
    !cfg!(loom) && DRAINING.with(Cell::get)
}

/// Runs `f` — a cell dropping what it holds — so that the cells freed by it are
/// dropped afterwards, one by one, not inside it (see the module docs).
pub(crate) fn scope(f: impl FnOnce()) {
    // loom's simulated threads share the OS thread's thread-locals.
    if cfg!(loom) || DRAINING.with(|d| d.replace(true)) {
        // Nested: the outer scope drains what this defers (and catches what unwinds).
        f();
        return;
    }
    let mut first_panic = catch_unwind(AssertUnwindSafe(f)).err();
    if DEFERRED_ANY.with(|d| d.replace(false)) {
        drain(&mut first_panic);
    }
    DRAINING.with(|d| d.set(false));
    if let Some(payload) = first_panic {
        if std::thread::panicking() {
            log::error!(target: "evloop", "a destructor panicked while a chain of futures was dropped");
        } else {
            resume_unwind(payload);
        }
    }
}

/// Queues the last reference to a cell while a scope runs (or, at thread teardown,
/// when the worklist is gone, drops it in place).
pub(crate) fn defer(cell: AnyCell) {
    let mut cell = Some(cell);
    let _ = DEFERRED.try_with(|q| q.borrow_mut().extend(cell.take()));
    match cell {
        None => DEFERRED_ANY.with(|d| d.set(true)),
        Some(cell) => drop(cell),
    }
}

/// Drops everything deferred, and everything that defers in turn, each under a catch.
fn drain(first_panic: &mut Option<Box<dyn std::any::Any + Send>>) {
    loop {
        // The borrow ends before the cell is dropped: its drop may defer more.
        let next = DEFERRED.try_with(|q| q.borrow_mut().pop()).ok().flatten();
        let Some(next) = next else {
            break;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(next))) {
            first_panic.get_or_insert(payload);
        }
    }
    DEFERRED_ANY.with(|d| d.set(false));
    let _ = DEFERRED.try_with(|q| {
        let mut q = q.borrow_mut();
        if q.capacity() > 64 {
            *q = Vec::new();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A singly linked list of cells, each holding the next: like a chain of futures
    /// each holding the next. A link drops its successor inside a `scope`, releasing
    /// the last reference as a `Future` handle does (`defer` inside a scope).
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
                scope(move || {
                    if draining() {
                        defer(next);
                    }
                });
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
            .spawn(move || drop(head))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), n);
    }

    /// A panicking destructor in the middle does not stop the rest from being dropped;
    /// the panic reaches the caller once everything is dropped, and the thread's
    /// worklist works again afterwards.
    #[test]
    fn a_panic_in_the_middle_loses_nothing_and_is_resumed() {
        let drops = Arc::new(AtomicUsize::new(0));
        let head = chain(100, &drops, Some(50));
        let result = catch_unwind(AssertUnwindSafe(|| drop(head)));
        assert!(result.is_err(), "the panic is resumed");
        assert_eq!(drops.load(Ordering::Relaxed), 100);
        assert!(!draining(), "the scope ended");
        let again = chain(10, &drops, None);
        drop(again);
        assert_eq!(drops.load(Ordering::Relaxed), 110);
    }
}
