//! The wheel's entry storage: a vector of entries addressed by `u32` and a stack of
//! free indices.
//!
//! Owns: the entries' memory, which index is free, and the per-entry fields. Must not
//! touch: the slot lists' structure or the wheel's clock — `Wheel` links entries
//! through `next` and decides when one is freed.
//!
//! An entry is *live* while it holds a payload, a *tombstone* once cancelled (payload
//! dropped, still linked in its slot list until the wheel reaps it) and *vacant* once
//! freed (on the free stack). A key is accepted only by a live entry with its `seq`.

use std::ops::{Index, IndexMut};

/// "No entry" in a link.
pub(super) const NIL: u32 = u32::MAX;
/// The `list` of a vacant entry.
const VACANT: u16 = u16::MAX;

/// One timer: 48 bytes for the loop's payloads (a `Waker` or an `Arc<dyn _>` plus the
/// enum's tag), so a cancel reads one or two adjacent cache lines and writes no other
/// entry.
pub(super) struct Entry<P> {
    /// Exact deadline in ns (the tick is derived from it).
    pub(super) deadline: u64,
    /// Insertion sequence number: tie-break and stale-key check.
    pub(super) seq: u64,
    /// Next entry of the same slot list.
    pub(super) next: u32,
    /// The list (index into the wheel's heads) the entry is linked in; `VACANT` once
    /// freed.
    pub(super) list: u16,
    /// `None`: a tombstone (cancelled, not yet reaped) or a vacant entry.
    pub(super) payload: Option<P>,
}

/// Entries addressed by `u32`, freed indices reused last-in first-out (the most
/// recently freed entry is the one most likely still in cache).
pub(super) struct Storage<P> {
    entries: Vec<Entry<P>>,
    free: Vec<u32>,
}

impl<P> Storage<P> {
    pub(super) fn new() -> Self {
        Storage {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `entry`, returning its index.
    pub(super) fn alloc(&mut self, entry: Entry<P>) -> u32 {
        if let Some(index) = self.free.pop() {
            self.entries[index as usize] = entry;
            return index;
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("evloop: more than 4 billion pending timers");
        self.entries.push(entry);
        index
    }

    /// Makes `index` reusable. Its payload must already be gone (a vacant entry must
    /// not accept keys).
    pub(super) fn free(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        debug_assert!(entry.payload.is_none() && entry.list != VACANT);
        entry.list = VACANT;
        self.free.push(index);
    }

    /// Frees every entry without a payload (tombstones; vacant ones stay free) in one
    /// sequential pass, handing each live entry to `link` (in descending index order).
    /// Trailing free entries are dropped from the vector, and the free stack is rebuilt
    /// so that the lowest index is reused first: new entries fill the holes in order.
    pub(super) fn retain_live(&mut self, mut link: impl FnMut(u32, &mut Entry<P>)) {
        while self.entries.last().is_some_and(|e| e.payload.is_none()) {
            self.entries.pop();
        }
        self.free.clear();
        for (index, entry) in self.entries.iter_mut().enumerate().rev() {
            if entry.payload.is_some() {
                link(index as u32, entry);
            } else {
                entry.list = VACANT;
                self.free.push(index as u32);
            }
        }
    }

    /// The entry at `index`, if `index` was ever allocated since the last `clear`.
    pub(super) fn get_mut(&mut self, index: u32) -> Option<&mut Entry<P>> {
        self.entries.get_mut(index as usize)
    }

    #[cfg(test)]
    pub(super) fn get(&self, index: u32) -> Option<&Entry<P>> {
        self.entries.get(index as usize)
    }

    /// Forgets every entry (none may hold a payload), keeping the memory. The next
    /// allocations fill the vector from its start again, in order.
    pub(super) fn clear(&mut self) {
        debug_assert!(self.entries.iter().all(|e| e.payload.is_none()));
        self.entries.clear();
        self.free.clear();
    }

    /// Takes every payload out, in index order, then clears.
    pub(super) fn drain(&mut self, mut f: impl FnMut(P)) {
        for entry in &mut self.entries {
            if let Some(p) = entry.payload.take() {
                f(p);
            }
        }
        self.clear();
    }

    /// Entries allocated and not freed: live ones and tombstones.
    pub(super) fn in_use(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Entries the vector holds (in use or vacant): the storage's high-water mark
    /// since it was last cleared.
    pub(super) fn slots(&self) -> usize {
        self.entries.len()
    }
}

impl<P> Index<u32> for Storage<P> {
    type Output = Entry<P>;
    fn index(&self, index: u32) -> &Entry<P> {
        &self.entries[index as usize]
    }
}

impl<P> IndexMut<u32> for Storage<P> {
    fn index_mut(&mut self, index: u32) -> &mut Entry<P> {
        &mut self.entries[index as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, payload: Option<&'static str>) -> Entry<&'static str> {
        Entry {
            deadline: 0,
            seq,
            next: NIL,
            list: 0,
            payload,
        }
    }

    #[test]
    fn freed_indices_are_reused_last_in_first_out() {
        let mut s = Storage::new();
        let a = s.alloc(entry(0, Some("a")));
        let b = s.alloc(entry(1, Some("b")));
        let c = s.alloc(entry(2, Some("c")));
        assert_eq!((a, b, c), (0, 1, 2));
        s[a].payload = None;
        s.free(a);
        s[c].payload = None;
        s.free(c);
        assert_eq!(s.in_use(), 1);
        assert_eq!(s.slots(), 3);
        assert_eq!(s.alloc(entry(3, Some("d"))), c, "most recently freed first");
        assert_eq!(s.alloc(entry(4, Some("e"))), a);
        assert_eq!(s.alloc(entry(5, Some("f"))), 3, "then the vector grows");
        assert_eq!(s.in_use(), 4);
    }

    #[test]
    fn retain_live_frees_the_rest_and_reuses_low_indices_first() {
        let mut s = Storage::new();
        for (i, p) in [Some("a"), None, Some("c"), None, None]
            .into_iter()
            .enumerate()
        {
            s.alloc(entry(i as u64, p));
        }
        let vacant = s.alloc(entry(9, None));
        s.free(vacant);
        let mut linked = vec![];
        s.retain_live(|i, e| linked.push((i, e.payload.unwrap())));
        assert_eq!(linked, [(2, "c"), (0, "a")]);
        assert_eq!(
            (s.in_use(), s.slots()),
            (2, 3),
            "the trailing free entries are gone"
        );
        assert_eq!(s.alloc(entry(10, Some("x"))), 1);
        assert_eq!(s.alloc(entry(11, Some("y"))), 3);
    }

    #[test]
    fn drain_hands_out_only_payloads_and_clears() {
        let mut s = Storage::new();
        s.alloc(entry(0, Some("a")));
        s.alloc(entry(1, None));
        s.alloc(entry(2, Some("c")));
        let mut out = vec![];
        s.drain(|p| out.push(p));
        assert_eq!(out, ["a", "c"]);
        assert_eq!((s.in_use(), s.slots()), (0, 0));
        assert!(s.get(0).is_none(), "a cleared index holds nothing");
        assert_eq!(s.alloc(entry(3, Some("d"))), 0, "allocation restarts at 0");
    }
}
