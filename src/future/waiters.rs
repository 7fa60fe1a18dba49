//! A future's registrations in order: done-callbacks, awaiters' wakers and internal
//! observers (`gather`, `shield`).
//!
//! Owns: the list (the first entry inline, so the usual single awaiter allocates
//! nothing), the ids that name entries, and removal by id. Must not touch: the future's
//! state or its lock — `future::core` holds the lock while it edits the list, and drops
//! what it removes after releasing it.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Weak};
use std::task::Waker;

use super::Future;
use crate::ids::{Sequence, block_cursor};

/// A done-callback as registered by `add_done_callback`, with its key in the same
/// allocation (so a list entry stays two words).
pub(crate) trait DoneFn<T>: Send {
    fn key(&self) -> CallbackKey;
    fn call(self: Box<Self>, fut: &Future<T>);
}

pub(super) struct Keyed<F> {
    pub(super) key: CallbackKey,
    pub(super) f: F,
}

impl<T, F: FnOnce(&Future<T>) + Send> DoneFn<T> for Keyed<F> {
    fn key(&self) -> CallbackKey {
        self.key
    }

    fn call(self: Box<Self>, fut: &Future<T>) {
        (self.f)(fut)
    }
}

/// Identifies an awaiter's registration within one future (kept by the awaiting
/// handle, which only ever uses it with its own future).
pub(crate) type EntryId = NonZeroU32;

/// Identifies a done-callback registration: unique in the process, so it names the
/// future that issued it (rule 5).
pub(crate) type CallbackKey = NonZeroU64;

static CALLBACK_KEYS: Sequence = Sequence::new();
block_cursor!(CALLBACK_CURSOR);

pub(super) fn next_callback_key() -> CallbackKey {
    NonZeroU64::new(CALLBACK_KEYS.next(&CALLBACK_CURSOR)).expect("keys start at 1")
}

/// An internal observer of completions (a `gather`, a `shield`): told the index it
/// registered with, synchronously, on the completing thread. It must not block or run
/// user code (it schedules a loop callback for that).
pub(crate) trait Notify: Send + Sync {
    fn notify(self: Arc<Self>, index: u32);
}

pub(super) enum Entry<T> {
    Callback(Box<dyn DoneFn<T>>),
    Waker(EntryId, Waker),
    /// No allocation beyond the list slot; removed by the observer's address and index
    /// when the observer goes away. Weak, so a pending child does not keep an abandoned
    /// observer alive.
    Notify(Weak<dyn Notify>, u32),
}

/// What [`WaiterList::remove`] looks for.
#[derive(Clone, Copy)]
pub(super) enum Key {
    Waker(EntryId),
    Callback(CallbackKey),
    Notify(*const (), u32),
}

impl<T> Entry<T> {
    fn matches(&self, key: Key) -> bool {
        match (self, key) {
            (Entry::Waker(id, _), Key::Waker(k)) => *id == k,
            (Entry::Callback(callback), Key::Callback(k)) => callback.key() == k,
            (Entry::Notify(observer, index), Key::Notify(ptr, i)) => {
                *index == i && observer.as_ptr() as *const () == ptr
            }
            _ => false,
        }
    }
}

/// Registrations in order; the first one inline, so the common single awaiter
/// allocates nothing, the rest behind one pointer (every future and task carries this
/// list: P14 keeps it small).
pub(super) struct WaiterList<T> {
    first: Option<Entry<T>>,
    // One pointer where a `Vec` takes three words, in every task (P14); the extra
    // allocation is paid only by the rare second entry.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<Entry<T>>>>,
}

impl<T> WaiterList<T> {
    pub(super) const fn new() -> Self {
        WaiterList {
            first: None,
            rest: None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(super) fn push(&mut self, entry: Entry<T>) {
        if self.first.is_none() {
            self.first = Some(entry);
        } else {
            self.rest.get_or_insert_default().push(entry);
        }
    }

    pub(super) fn take(&mut self) -> impl Iterator<Item = Entry<T>> + use<T> {
        let first = self.first.take();
        let rest = self.rest.take().map(|rest| *rest).unwrap_or_default();
        first.into_iter().chain(rest)
    }

    /// Takes the entry `key` names out of the list (for the caller to drop after the
    /// future's lock is released: its drop is user code).
    pub(super) fn remove(&mut self, key: Key) -> Option<Entry<T>> {
        if self.first.as_ref().is_some_and(|e| e.matches(key)) {
            let next = match self.rest.as_mut() {
                Some(rest) if !rest.is_empty() => Some(rest.remove(0)),
                _ => None,
            };
            return std::mem::replace(&mut self.first, next);
        }
        let rest = self.rest.as_mut()?;
        let i = rest.iter().position(|e| e.matches(key))?;
        Some(rest.remove(i))
    }

    pub(super) fn waker_mut(&mut self, id: EntryId) -> Option<&mut Waker> {
        self.first
            .iter_mut()
            .chain(self.rest.iter_mut().flat_map(|rest| rest.iter_mut()))
            .find_map(|e| match e {
                Entry::Waker(i, w) if *i == id => Some(w),
                _ => None,
            })
    }
}
