//! The hierarchical timer wheel: a pure data structure keyed by nanoseconds.
//!
//! Owns: timer entries (in a `slab`), their slot lists, and the wheel's notion of
//! elapsed time. Must not touch: clocks, the reactor, callbacks or wakers — the loop
//! (`core`) converts `Instant`s to nanoseconds since its base and decides what a
//! payload means when it fires.
//!
//! Firing is exact: `advance(now)` fires precisely the entries whose deadline is at or
//! before `now`, in `(deadline, insertion order)`. The threshold is monotone, so the
//! order also holds across calls, and nothing ever fires early.
//!
//! Time is bucketed in *ticks* of `2^TICK_SHIFT` ns (the deadline rounded down). Entries
//! live at the level given by the highest bit in which their tick differs from
//! `elapsed` (six bits per level), in an intrusive doubly-linked list, so insert and
//! cancel are O(1). Per-level occupancy bitmaps find the next non-empty slot. When the
//! wheel reaches a slot, its entries cascade to lower levels, or, once their tick has
//! been reached, to the `due` list, where each fires as soon as `now` passes its exact
//! deadline (at most one tick later). Entries further away than the wheel's span wait
//! in the `overflow` list until they come into range.

use slab::Slab;

/// log2 of the tick length in nanoseconds (1 tick = 1024 ns).
pub(crate) const TICK_SHIFT: u32 = 10;
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const LEVELS: usize = 7;
/// Number of ticks the wheel covers; later deadlines wait in the overflow list.
const SPAN: u64 = 1 << (LEVEL_BITS as u64 * LEVELS as u64);
const DUE: usize = LEVELS * SLOTS;
const OVERFLOW: usize = DUE + 1;
const LISTS: usize = OVERFLOW + 1;
const NIL: u32 = u32::MAX;

/// The tick containing `ns` (rounded down).
fn tick_of(ns: u64) -> u64 {
    ns >> TICK_SHIFT
}

/// The first nanosecond of `tick`, saturating.
fn tick_start_ns(tick: u64) -> u64 {
    tick.saturating_mul(1 << TICK_SHIFT)
}

/// Ticks covered by one slot at `level`.
fn slot_range(level: usize) -> u64 {
    1u64 << (LEVEL_BITS as usize * level)
}

/// The level for an entry due at `when` (ticks) seen from `elapsed`, `when > elapsed`,
/// `when - elapsed < SPAN`: the six-bit group holding the highest differing bit.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / LEVEL_BITS as usize).min(LEVELS - 1)
}

/// The slot of `when` at `level`.
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (LEVEL_BITS as usize * level)) as usize) & (SLOTS - 1)
}

/// First occupied slot after `pos`, wrapping around so that `pos` itself comes last:
/// at the top level a slot at or before `pos` holds entries of the *next* rotation.
fn next_occupied(occupied: u64, pos: usize) -> Option<usize> {
    if occupied == 0 {
        return None;
    }
    let from = (pos + 1) % SLOTS;
    let zeros = occupied.rotate_right(from as u32).trailing_zeros() as usize;
    Some((from + zeros) % SLOTS)
}

/// Start tick of `slot` at `level` in the rotation containing `elapsed`, moved one
/// rotation forward when that start is not after `elapsed` (only the top level wraps).
fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let range = slot_range(level);
    let level_span = range * SLOTS as u64;
    let start = (elapsed & !(level_span - 1)) + slot as u64 * range;
    if start <= elapsed {
        start + level_span
    } else {
        start
    }
}

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

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

struct Entry<P> {
    /// Exact deadline in ns.
    deadline: u64,
    tick: u64,
    /// Insertion sequence number: tie-break and stale-key check.
    seq: u64,
    prev: u32,
    next: u32,
    /// Index into `lists`.
    list: u16,
    payload: P,
}

/// A hierarchical timer wheel holding payloads of type `P`.
pub(crate) struct Wheel<P> {
    entries: Slab<Entry<P>>,
    lists: Box<[List; LISTS]>,
    occupied: [u64; LEVELS],
    /// Ticks fully processed.
    elapsed: u64,
    next_seq: u64,
    /// Lower bound of the ticks in the overflow list.
    overflow_min: u64,
    /// Lower bound of the deadlines (ns) in the due list.
    due_min: u64,
    scratch: Vec<u32>,
}

impl<P> Wheel<P> {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Wheel::starting_at(0)
    }

    /// A wheel whose clock starts at `now` ns.
    pub(crate) fn starting_at(now: u64) -> Self {
        Wheel {
            entries: Slab::new(),
            lists: Box::new([EMPTY; LISTS]),
            occupied: [0; LEVELS],
            elapsed: tick_of(now),
            next_seq: 0,
            overflow_min: u64::MAX,
            due_min: u64::MAX,
            scratch: Vec::new(),
        }
    }

    /// Number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a timer due at `deadline` ns. O(1).
    pub(crate) fn insert(&mut self, deadline: u64, payload: P) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tick = tick_of(deadline);
        let index = self.entries.insert(Entry {
            deadline,
            tick,
            seq,
            prev: NIL,
            next: NIL,
            list: 0,
            payload,
        });
        let index = u32::try_from(index).expect("evloop: more than 4 billion pending timers");
        self.place(index);
        TimerKey { index, seq }
    }

    /// Removes the timer if it is still pending, returning its payload. O(1).
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<P> {
        match self.entries.get(key.index as usize) {
            Some(e) if e.seq == key.seq => {}
            _ => return None,
        }
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).payload)
    }

    /// The payload of a pending timer.
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut P> {
        match self.entries.get_mut(key.index as usize) {
            Some(e) if e.seq == key.seq => Some(&mut e.payload),
            _ => None,
        }
    }

    /// The earliest time (ns) at which [`advance`](Self::advance) has work to do: the
    /// exact next deadline when it is in the due list or a level-0 slot, otherwise the
    /// start of the higher-level slot where it will cascade. `None` when empty.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let due = (self.lists[DUE].head != NIL).then_some(self.due_min);
        let wheel = self
            .next_expiration()
            .map(|(level, slot, start)| match level {
                0 => self.min_deadline(slot),
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
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = start;
            if level == LEVELS {
                self.reinsert_overflow();
                continue;
            }
            let list = level * SLOTS + slot;
            let mut cur = std::mem::replace(&mut self.lists[list], EMPTY).head;
            self.occupied[level] &= !(1 << slot);
            while cur != NIL {
                let next = self.entries[cur as usize].next;
                self.place(cur);
                cur = next;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
        self.fire_due(now, &mut fire);
    }

    /// Removes every pending timer (loop close), handing each payload to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(P)) {
        *self.lists = [EMPTY; LISTS];
        self.occupied = [0; LEVELS];
        self.overflow_min = u64::MAX;
        self.due_min = u64::MAX;
        for entry in self.entries.drain() {
            f(entry.payload);
        }
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
        if self.lists[OVERFLOW].head != NIL {
            let start = self.overflow_min.saturating_sub(SPAN - 1).max(self.elapsed);
            if best.is_none_or(|(_, _, s)| start < s) {
                best = Some((LEVELS, 0, start));
            }
        }
        best
    }

    /// Links an entry (its links are stale) into the list its tick belongs to,
    /// relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let (tick, deadline) = {
            let e = &self.entries[index as usize];
            (e.tick, e.deadline)
        };
        let list = if tick <= self.elapsed {
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
        };
        self.push_back(list, index);
    }

    fn reinsert_overflow(&mut self) {
        let mut cur = std::mem::replace(&mut self.lists[OVERFLOW], EMPTY).head;
        self.overflow_min = u64::MAX;
        while cur != NIL {
            let next = self.entries[cur as usize].next;
            self.place(cur);
            cur = next;
        }
    }

    /// The smallest exact deadline in a level-0 slot (all one tick; usually one entry).
    fn min_deadline(&self, slot: usize) -> u64 {
        let mut cur = self.lists[slot].head;
        let mut min = u64::MAX;
        while cur != NIL {
            let e = &self.entries[cur as usize];
            min = min.min(e.deadline);
            cur = e.next;
        }
        min
    }

    /// Fires the due entries whose deadline is at or before `now`, sorted by
    /// `(deadline, seq)`; the others (later within the current tick) stay due.
    fn fire_due(&mut self, now: u64, fire: &mut impl FnMut(P)) {
        self.scratch.clear();
        self.due_min = u64::MAX;
        let mut cur = self.lists[DUE].head;
        while cur != NIL {
            let (next, deadline) = {
                let e = &self.entries[cur as usize];
                (e.next, e.deadline)
            };
            if deadline <= now {
                self.unlink(cur);
                self.scratch.push(cur);
            } else {
                self.due_min = self.due_min.min(deadline);
            }
            cur = next;
        }
        let Wheel {
            entries, scratch, ..
        } = self;
        // Stable, and close to linear on the usual, already ordered input.
        scratch.sort_by_key(|&i| {
            let e = &entries[i as usize];
            (e.deadline, e.seq)
        });
        for &i in scratch.iter() {
            fire(entries.remove(i as usize).payload);
        }
    }

    fn push_back(&mut self, list: usize, index: u32) {
        let tail = self.lists[list].tail;
        {
            let entry = &mut self.entries[index as usize];
            entry.list = list as u16;
            entry.prev = tail;
            entry.next = NIL;
        }
        if tail == NIL {
            self.lists[list].head = index;
        } else {
            self.entries[tail as usize].next = index;
        }
        self.lists[list].tail = index;
    }

    fn unlink(&mut self, index: u32) {
        let (list, prev, next) = {
            let e = &self.entries[index as usize];
            (e.list as usize, e.prev, e.next)
        };
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if list < DUE && self.lists[list].head == NIL {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }
}

impl<P> std::fmt::Debug for Wheel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("len", &self.entries.len())
            .field("elapsed_ticks", &self.elapsed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashSet};

    /// SplitMix64: a tiny deterministic generator, enough for model tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn tick_maths() {
        assert_eq!(tick_of(0), 0);
        assert_eq!(tick_of(1023), 0);
        assert_eq!(tick_of(1024), 1);
        assert_eq!(tick_of(u64::MAX), u64::MAX >> TICK_SHIFT);
        assert_eq!(tick_start_ns(3), 3072);
        assert_eq!(tick_start_ns(u64::MAX), u64::MAX, "saturates");
        for ns in [0, 1, 1023, 1024, 5_000_000, u64::MAX / 2] {
            assert!(tick_start_ns(tick_of(ns)) <= ns);
            assert!(tick_start_ns(tick_of(ns) + 1) > ns);
        }
    }

    #[test]
    fn level_and_slot_maths() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(64, 127), 0);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, SPAN - 1), LEVELS - 1);
        // Crossing a top-level boundary clamps to the top level.
        assert_eq!(level_for(SPAN - 1, SPAN + 5), LEVELS - 1);
        assert_eq!(slot_for(130, 0), 2);
        assert_eq!(slot_for(130, 1), 2);
        assert_eq!(slot_for(4096 * 3 + 5, 2), 3);
        assert_eq!(next_occupied(0, 5), None);
        assert_eq!(next_occupied(1 << 7, 5), Some(7));
        assert_eq!(next_occupied(1 << 2, 5), Some(2), "wraps");
        assert_eq!(next_occupied(1 << 5, 5), Some(5), "pos itself comes last");
        // Regression: slot == pos at the top level is a full rotation ahead, so an
        // earlier wrapped slot must be found first (a far timer was skipped).
        assert_eq!(next_occupied((1 << 55) | (1 << 4), 55), Some(4));
        assert_eq!(next_occupied((1 << 63) | (1 << 0), 62), Some(63));
        assert_eq!(slot_start(0, 1, 3), 192);
        assert_eq!(slot_start(200, 0, 10), 202);
        assert_eq!(slot_start(200, 0, 5), 197 + 64, "top-level style wrap");
    }

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
        assert_eq!(w.remove(a), Some('a'));
        assert_eq!(w.remove(a), None);
        let c = w.insert(100_000, 'c'); // reuses a's slab index
        assert_eq!(w.remove(a), None, "stale key must not remove the new entry");
        assert_eq!(w.get_mut(c).copied(), Some('c'));
        let mut out = vec![];
        w.advance(200_000, |p| out.push(p));
        assert_eq!(out, ['b', 'c']);
        assert_eq!(w.remove(b), None, "fired");
        assert_eq!(w.next_deadline(), None);
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

    /// The wheel against a `BinaryHeap` model: 100 000 random inserts (past, near, far
    /// and beyond-span deadlines), cancels and clock advances must fire exactly the
    /// timers whose deadline has passed, in `(deadline, insertion)` order.
    #[test]
    fn model_against_binary_heap() {
        let mut rng = Rng(0x5eed);
        let ops = if cfg!(miri) { 3_000 } else { 100_000 };
        let mut w = Wheel::new();
        let mut heap = BinaryHeap::new();
        let mut removed = HashSet::new();
        let mut live: Vec<(TimerKey, u64)> = Vec::new();
        let mut now: u64 = 0;
        let mut fired = 0usize;
        for _ in 0..ops {
            match rng.below(10) {
                0..=4 => {
                    let delay = match rng.below(6) {
                        0 => rng.below(2_000),
                        1 => rng.below(100_000),
                        2 => rng.below(100_000_000),
                        3 => rng.below(1 << 50),
                        4 => rng.below(1 << 56),
                        _ => 0,
                    };
                    let deadline = if rng.below(8) == 0 {
                        now.saturating_sub(rng.below(1_000_000))
                    } else {
                        now + delay
                    };
                    let key = w.insert(deadline, (deadline, live.len() as u64));
                    heap.push(Reverse((deadline, key.seq)));
                    live.push((key, deadline));
                }
                5..=6 if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    let (key, _) = live.swap_remove(i);
                    if w.remove(key).is_some() {
                        removed.insert(key.seq);
                    }
                }
                _ => {
                    now += match rng.below(4) {
                        0 => rng.below(3_000),
                        1 => rng.below(10_000_000),
                        2 => w.next_deadline().map_or(0, |d| d.saturating_sub(now)),
                        _ => rng.below(1 << 45),
                    };
                    let mut got = vec![];
                    w.advance(now, |(deadline, _)| got.push(deadline));
                    let mut want = vec![];
                    while let Some(&Reverse((deadline, seq))) = heap.peek() {
                        if deadline > now {
                            break;
                        }
                        heap.pop();
                        if !removed.remove(&seq) {
                            want.push(deadline);
                        }
                    }
                    assert!(got.iter().all(|&d| d <= now), "fired early");
                    assert_eq!(got, want);
                    fired += got.len();
                    live.retain(|(_, d)| *d > now);
                }
            }
        }
        assert!(
            fired > ops / 10,
            "the model test must exercise firing: {fired}"
        );
    }
}
