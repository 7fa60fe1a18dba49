//! The hierarchical timer wheel: a pure data structure keyed by nanoseconds.
//!
//! Owns: timer entries (in `storage`), their slot lists, and the wheel's notion of
//! elapsed time. Must not touch: clocks, the reactor, callbacks or wakers — the loop
//! (`core`) converts `Instant`s to nanoseconds since its base and decides what a
//! payload means when it fires (and drops removed payloads outside its borrows).
//!
//! Firing is exact: `advance(now)` fires precisely the entries whose deadline is at or
//! before `now`, in `(deadline, insertion order)`. The threshold is monotone, so the
//! order also holds across calls, and nothing ever fires early.
//!
//! Time is bucketed in *ticks* of `2^TICK_SHIFT` ns (the deadline rounded down; see
//! `maths`). Entries live at the level given by the highest bit in which their tick
//! differs from `elapsed` (six bits per level), in a singly-linked list of `u32`
//! indices, pushed at the front: an insert writes the new entry and one list head,
//! nothing else. Per-level occupancy bitmaps find the next non-empty slot. When the
//! wheel reaches a slot, its entries cascade to lower levels, or, once their tick has
//! been reached, to the `due` list, where each fires as soon as `now` passes its exact
//! deadline (at most one tick later). Entries further away than the wheel's span wait
//! in the `overflow` list until they come into range. Lists are unordered: the entries
//! firing in one `advance` are sorted by `(deadline, seq)` first.
//!
//! Cancelling is lazy. [`Wheel::remove`] takes the payload out (a cancelled timer can
//! never fire, and the caller drops the payload at once) and leaves a *tombstone* in the
//! slot list; only an entry at the head of its list is unlinked and freed on the spot.
//! So a cancel touches the entry alone: no neighbour, no second cache line of another
//! entry. Tombstones are freed when the wheel reaches their slot, and memory stays
//! bounded by two rules: when tombstones outnumber the live timers (and exceed
//! `MIN_TOMBSTONES`) a compaction (`compact`) frees them all, so after every operation
//! `tombstones <= max(live, MIN_TOMBSTONES)` and the entries in use are at most
//! `2 * live + MIN_TOMBSTONES`; and when the last live timer goes, the storage is
//! cleared (its memory kept), so the next timers are laid out in order again. A
//! compaction costs O(entries in use) — a sequential pass over the storage while it is
//! mostly in use, a walk of the lists otherwise — and follows at least `live` cancels:
//! O(1) per cancel, amortised.

mod compact;
mod maths;
// proptest is not a dependency of loom builds.
#[cfg(all(test, not(loom)))]
mod model;
mod storage;

use maths::{
    LEVELS, SLOTS, SPAN, level_for, next_occupied, slot_for, slot_start, tick_of, tick_start_ns,
};
use storage::{Entry, NIL, Storage};

const DUE: usize = LEVELS * SLOTS;
const OVERFLOW: usize = DUE + 1;
const LISTS: usize = OVERFLOW + 1;
/// Tombstones tolerated whatever the number of live timers (a compaction of fewer is
/// not worth its walk).
/// Tests use a small one, so that their short sequences compact often.
const MIN_TOMBSTONES: usize = if cfg!(test) { 4 } else { 256 };

/// Identifies an inserted timer; stale keys (fired or removed) are recognised by `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    seq: u64,
}

impl TimerKey {
    pub(crate) fn into_parts(self) -> (u32, u64) {
        (self.index, self.seq)
    }

    pub(crate) fn from_parts(index: u32, seq: u64) -> TimerKey {
        TimerKey { index, seq }
    }
}

/// A hierarchical timer wheel holding payloads of type `P`.
pub(crate) struct Wheel<P> {
    storage: Storage<P>,
    /// First entry of each list: `LEVELS * SLOTS` slots, then `DUE`, then `OVERFLOW`.
    heads: Box<[u32; LISTS]>,
    occupied: [u64; LEVELS],
    /// Ticks fully processed.
    elapsed: u64,
    next_seq: u64,
    /// Entries holding a payload.
    live: usize,
    /// Cancelled entries still linked in a list.
    tombstones: usize,
    /// Lower bound of the ticks in the overflow list.
    overflow_min: u64,
    /// Lower bound of the deadlines (ns) in the due list.
    due_min: u64,
    /// `(deadline, seq, index)` of the entries firing in one `advance`.
    firing: Vec<(u64, u64, u32)>,
    /// Compactions so far: (sequential passes, list walks).
    #[cfg(test)]
    compactions: (usize, usize),
}

impl<P> Wheel<P> {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Wheel::starting_at(0)
    }

    /// A wheel whose clock starts at `now` ns.
    pub(crate) fn starting_at(now: u64) -> Self {
        Wheel {
            storage: Storage::new(),
            heads: Box::new([NIL; LISTS]),
            occupied: [0; LEVELS],
            elapsed: tick_of(now),
            next_seq: 0,
            live: 0,
            tombstones: 0,
            overflow_min: u64::MAX,
            due_min: u64::MAX,
            firing: Vec::new(),
            #[cfg(test)]
            compactions: (0, 0),
        }
    }

    /// Number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Adds a timer due at `deadline` ns. O(1): writes the new entry and a list head.
    pub(crate) fn insert(&mut self, deadline: u64, payload: P) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let list = self.list_for(deadline);
        let index = self.storage.alloc(Entry {
            deadline,
            seq,
            next: self.heads[list],
            list: list as u16,
            payload: Some(payload),
        });
        self.heads[list] = index;
        self.live += 1;
        TimerKey { index, seq }
    }

    /// Removes the timer if it is still pending, returning its payload. O(1) amortised:
    /// the entry becomes a tombstone (see the module doc).
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<P> {
        let entry = self
            .storage
            .get_mut(key.index)
            .filter(|e| e.seq == key.seq)?;
        let payload = entry.payload.take()?;
        let (list, next) = (entry.list as usize, entry.next);
        self.live -= 1;
        if self.heads[list] == key.index {
            self.heads[list] = next;
            if next == NIL && list < DUE {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
            self.storage.free(key.index);
        } else {
            self.tombstones += 1;
        }
        if self.live == 0 {
            self.clear();
        } else if self.tombstones > self.live.max(MIN_TOMBSTONES) {
            self.compact();
        }
        Some(payload)
    }

    /// The payload of a pending timer.
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut P> {
        self.storage
            .get_mut(key.index)
            .filter(|e| e.seq == key.seq)?
            .payload
            .as_mut()
    }

    /// The earliest time (ns) at which [`advance`](Self::advance) has work to do: the
    /// exact next deadline when it is in the due list or a level-0 slot, otherwise the
    /// start of the higher-level slot where it will cascade (also when that slot or the
    /// due list holds only tombstones: the wheel then reaps them). `None` when no timer
    /// is pending.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.live == 0 {
            return None;
        }
        let due = (self.heads[DUE] != NIL).then_some(self.due_min);
        let wheel = self
            .next_expiration()
            .map(|(level, slot, start)| match level {
                0 => self
                    .min_deadline(slot)
                    .unwrap_or_else(|| tick_start_ns(start)),
                _ => tick_start_ns(start),
            });
        match (due, wheel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer whose deadline is at or before `now` ns, in
    /// `(deadline, insertion order)` order.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(P)) {
        let now_tick = tick_of(now);
        self.firing.clear();
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = start;
            let list = if level == LEVELS {
                self.overflow_min = u64::MAX;
                OVERFLOW
            } else {
                self.occupied[level] &= !(1 << slot);
                level * SLOTS + slot
            };
            self.redistribute(list, now);
        }
        self.elapsed = self.elapsed.max(now_tick);
        if self.heads[DUE] != NIL {
            self.due_min = u64::MAX;
            self.redistribute(DUE, now);
        }
        self.fire_collected(&mut fire);
    }

    /// Removes every pending timer (loop close), handing each payload to `f`.
    pub(crate) fn drain(&mut self, f: impl FnMut(P)) {
        self.storage.drain(f);
        self.live = 0;
        self.reset_lists();
    }

    /// Empties list `list` (already marked empty in `occupied`): tombstones are freed,
    /// entries due by `now` join `firing`, the others are linked again relative to
    /// `elapsed` (a lower level, or the due list once their tick is reached).
    fn redistribute(&mut self, list: usize, now: u64) {
        let mut cur = std::mem::replace(&mut self.heads[list], NIL);
        while cur != NIL {
            let entry = &self.storage[cur];
            let (next, deadline) = (entry.next, entry.deadline);
            if entry.payload.is_none() {
                self.tombstones -= 1;
                self.storage.free(cur);
            } else if deadline <= now {
                self.firing.push((deadline, entry.seq, cur));
            } else {
                let to = self.list_for(deadline);
                let entry = &mut self.storage[cur];
                entry.list = to as u16;
                entry.next = self.heads[to];
                self.heads[to] = cur;
            }
            cur = next;
        }
    }

    /// Sorts the collected entries by `(deadline, seq)` and hands their payloads out.
    fn fire_collected(&mut self, fire: &mut impl FnMut(P)) {
        if self.firing.is_empty() {
            return;
        }
        let Wheel {
            storage,
            firing,
            live,
            ..
        } = self;
        // Keys are unique (`seq`); pdqsort is linear on already ordered or reversed runs.
        firing.sort_unstable_by_key(|&(deadline, seq, _)| (deadline, seq));
        for &(_, _, index) in firing.iter() {
            let payload = storage[index].payload.take();
            storage.free(index);
            *live -= 1;
            if let Some(payload) = payload {
                fire(payload);
            }
        }
        firing.clear();
        if self.live == 0 {
            self.clear();
        } else if self.tombstones > self.live.max(MIN_TOMBSTONES) {
            // Fewer live timers now: keep the bound of the module doc.
            self.compact();
        }
    }

    /// Forgets every entry: no live timer is left (tombstones may be). Without
    /// tombstones every list is empty already.
    fn clear(&mut self) {
        debug_assert_eq!(self.live, 0);
        self.storage.clear();
        if self.tombstones > 0 {
            self.reset_lists();
        }
    }

    fn reset_lists(&mut self) {
        *self.heads = [NIL; LISTS];
        self.occupied = [0; LEVELS];
        self.tombstones = 0;
        self.overflow_min = u64::MAX;
        self.due_min = u64::MAX;
    }

    /// (level, slot, start tick) of the earliest non-empty slot; `level == LEVELS` means
    /// "the overflow list comes into range".
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            let pos = slot_for(self.elapsed, level);
            if let Some(slot) = next_occupied(self.occupied[level], pos) {
                let start = slot_start(self.elapsed, level, slot);
                if best.is_none_or(|(_, _, s)| start < s) {
                    best = Some((level, slot, start));
                }
            }
        }
        if self.heads[OVERFLOW] != NIL {
            let start = self.overflow_min.saturating_sub(SPAN - 1).max(self.elapsed);
            if best.is_none_or(|(_, _, s)| start < s) {
                best = Some((LEVELS, 0, start));
            }
        }
        best
    }

    /// The list an entry due at `deadline` belongs to, relative to `elapsed`, with the
    /// bookkeeping of linking one there (occupancy bit, lower bounds).
    fn list_for(&mut self, deadline: u64) -> usize {
        let tick = tick_of(deadline);
        if tick <= self.elapsed {
            self.due_min = self.due_min.min(deadline);
            DUE
        } else if tick - self.elapsed >= SPAN {
            self.overflow_min = self.overflow_min.min(tick);
            OVERFLOW
        } else {
            let level = level_for(self.elapsed, tick);
            let slot = slot_for(tick, level);
            self.occupied[level] |= 1 << slot;
            level * SLOTS + slot
        }
    }

    /// The smallest exact deadline of a live entry in a level-0 slot (all one tick;
    /// usually one entry). `None` if the slot holds only tombstones.
    fn min_deadline(&self, slot: usize) -> Option<u64> {
        let mut cur = self.heads[slot];
        let mut min = None;
        while cur != NIL {
            let e = &self.storage[cur];
            if e.payload.is_some() {
                min = Some(min.map_or(e.deadline, |m: u64| m.min(e.deadline)));
            }
            cur = e.next;
        }
        min
    }
}

#[cfg(test)]
impl<P> Wheel<P> {
    /// Cancelled entries still linked (the compaction bound's subject).
    fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// Entries in use (live and tombstones).
    fn in_use(&self) -> usize {
        self.storage.in_use()
    }

    /// Entries the storage holds, vacant ones included: its high-water mark.
    fn slots(&self) -> usize {
        self.storage.slots()
    }

    /// The bound of the module doc, checked by every test that cancels.
    #[cfg(not(loom))]
    fn assert_bounded(&self) {
        assert_eq!(self.in_use(), self.live + self.tombstones);
        assert!(
            self.tombstones <= self.live.max(MIN_TOMBSTONES),
            "{} tombstones for {} live timers",
            self.tombstones,
            self.live
        );
    }
}

impl<P> std::fmt::Debug for Wheel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("len", &self.live)
            .field("tombstones", &self.tombstones)
            .field("elapsed_ticks", &self.elapsed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut w = Wheel::new();
        w.insert(5_000, "c");
        w.insert(1_000, "a");
        w.insert(5_000, "d");
        w.insert(1_000, "b");
        w.insert(1_000_000_000, "late");
        let mut out = vec![];
        w.advance(10_000, |p| out.push(p));
        assert_eq!(out, ["a", "b", "c", "d"]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline().map(|d| d <= 1_000_000_000), Some(true));
    }

    /// Entries with one deadline reach the due list from different levels (inserted
    /// from far away, then from close by): insertion order still decides.
    #[test]
    fn insertion_order_holds_across_levels() {
        let mut w = Wheel::new();
        let deadline = 50_000_000;
        w.insert(deadline, 0);
        w.advance(deadline - 3_000, |_| unreachable!());
        w.insert(deadline, 1);
        w.advance(deadline - 1_000, |_| unreachable!());
        w.insert(deadline, 2);
        let mut out = vec![];
        w.advance(deadline, |p| out.push(p));
        assert_eq!(out, [0, 1, 2]);
    }

    #[test]
    fn fires_exactly_at_its_deadline_within_a_tick() {
        let mut w = Wheel::new();
        w.insert(1_500, ());
        assert_eq!(
            w.next_deadline(),
            Some(1_500),
            "exact, not the tick's start"
        );
        let mut fired = 0;
        w.advance(1_499, |_| fired += 1);
        assert_eq!(
            fired, 0,
            "never early, although the tick (1024..2048) has begun"
        );
        assert_eq!(w.next_deadline(), Some(1_500));
        w.advance(1_500, |_| fired += 1);
        assert_eq!(fired, 1, "not rounded up to the next tick either");
    }

    /// Regression: deadlines were rounded up to a tick, so a zero-delay timer inserted
    /// less than a tick before the next advance waited one more iteration (L4).
    #[test]
    fn a_deadline_equal_to_now_fires_on_the_very_next_advance() {
        let mut w = Wheel::new();
        w.advance(10_000_100, |_: ()| {});
        w.insert(10_000_300, ());
        let mut fired = 0;
        w.advance(10_000_300, |_| fired += 1);
        assert_eq!(fired, 1);
    }

    #[test]
    fn past_deadlines_fire_on_next_advance() {
        let mut w = Wheel::new();
        w.advance(1_000_000, |_: u32| {});
        w.insert(10, 1);
        w.insert(0, 2);
        assert_eq!(w.next_deadline(), Some(0));
        let mut out = vec![];
        w.advance(1_000_000, |p| out.push(p));
        assert_eq!(out, [2, 1]);
    }

    #[test]
    fn remove_is_exact_and_stale_keys_are_ignored() {
        let mut w = Wheel::new();
        let a = w.insert(100_000, 'a');
        let b = w.insert(100_000, 'b');
        assert_eq!(w.remove(b), Some('b'), "b heads its slot: freed at once");
        assert_eq!(w.remove(b), None);
        let c = w.insert(100_000, 'c');
        assert_eq!(c.index, b.index, "c reuses b's entry");
        assert_eq!(w.remove(b), None, "stale key must not remove the new entry");
        assert!(w.get_mut(b).is_none());
        assert_eq!(w.get_mut(c).copied(), Some('c'));
        let mut out = vec![];
        w.advance(200_000, |p| out.push(p));
        assert_eq!(out, ['a', 'c']);
        assert_eq!(w.remove(a), None, "fired");
        assert_eq!(w.remove(c), None, "fired");
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn a_cancelled_entry_never_fires_and_is_reaped_with_its_slot() {
        let mut w = Wheel::new();
        let x = w.insert(100_000, 'x');
        let _y = w.insert(100_000, 'y');
        let _z = w.insert(5_000_000, 'z');
        assert_eq!(w.remove(x), Some('x'), "not its slot's head: a tombstone");
        assert_eq!((w.len(), w.tombstones()), (2, 1));
        assert_eq!(w.remove(x), None, "a tombstone accepts no key");
        assert!(w.get_mut(x).is_none());
        let c = w.insert(100_000, 'c');
        assert_ne!(c.index, x.index, "a tombstone's entry is not reused");
        let mut out = vec![];
        w.advance(200_000, |p| out.push(p));
        assert_eq!(out, ['y', 'c']);
        assert_eq!((w.len(), w.tombstones(), w.in_use()), (1, 0, 1));
    }

    /// A level-0 slot holding only tombstones must not hide a later live timer, nor
    /// turn into an exact deadline that does not exist; and a wheel whose timers are
    /// all cancelled has no deadline at all (the loop would wake for nothing).
    #[test]
    fn tombstones_never_delay_the_next_deadline() {
        let mut w = Wheel::new();
        let keep = w.insert(1_000, 'k');
        let gone = w.insert(30_000, 'g');
        let _head = w.insert(30_500, 'h');
        let later = w.insert(90_000, 'l');
        assert_eq!(w.remove(keep), Some('k'));
        assert_eq!(w.remove(gone), Some('g'));
        let mut out = vec![];
        w.advance(30_000, |p| out.push(p));
        assert!(out.is_empty());
        assert_eq!(w.next_deadline(), Some(30_500));
        w.advance(30_500, |p| out.push(p));
        assert_eq!(out, ['h']);
        assert!(w.next_deadline().is_some_and(|d| d <= 90_000));
        assert_eq!(w.remove(later), Some('l'));
        assert_eq!(w.next_deadline(), None);
        assert_eq!((w.len(), w.in_use(), w.slots()), (0, 0, 0), "cleared");
    }

    #[test]
    fn far_deadlines_overflow_and_come_back() {
        let mut w = Wheel::new();
        let far = tick_start_ns(SPAN * 3 + 12_345);
        w.insert(far, "far");
        w.insert(u64::MAX, "never");
        let mut out = vec![];
        let mut now = 0;
        while now < far {
            now = w.next_deadline().unwrap().max(now + 1);
            w.advance(now, |p| out.push((p, now)));
        }
        assert_eq!(out, [("far", far)]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn drain_hands_out_the_live_payloads_only() {
        let mut w = Wheel::new();
        let a = w.insert(1_000_000, 'a');
        w.insert(2_000_000, 'b');
        w.insert(SPAN * 4096, 'c');
        w.insert(3_000_000, 'd');
        w.remove(a);
        let mut out = vec![];
        w.drain(|p| out.push(p));
        out.sort_unstable();
        assert_eq!(out, ['b', 'c', 'd']);
        assert_eq!((w.len(), w.in_use(), w.next_deadline()), (0, 0, None));
        w.advance(u64::MAX, |_| unreachable!());
    }

    /// The loop's payloads (a waker or a callback `Arc`) keep an entry at 48 bytes.
    #[test]
    fn an_entry_of_the_loop_is_48_bytes() {
        #[allow(dead_code)]
        enum Payload {
            Callback(std::sync::Arc<dyn Fn() + Send + Sync>),
            Waker(std::task::Waker),
        }
        assert!(std::mem::size_of::<Entry<Payload>>() <= 48);
    }
}
