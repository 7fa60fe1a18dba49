//! Model tests of the wheel: it must behave as a sorted map of `(deadline, seq)` —
//! firing, cancelling, stale keys, the next deadline — while its tombstones stay
//! within the compaction bound.
//!
//! Owns: these tests only. Must not touch: the wheel's internals beyond the counts it
//! exposes to tests (`tombstones`, `in_use`, `slots`, `assert_bounded`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use proptest::prelude::*;

use super::*;

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
    let mut pending = 0usize;
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
                pending += 1;
            }
            5..=6 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (key, _) = live.swap_remove(i);
                if w.remove(key).is_some() {
                    removed.insert(key.seq);
                    pending -= 1;
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
                pending -= got.len();
                live.retain(|(_, d)| *d > now);
            }
        }
        assert_eq!(w.len(), pending);
        w.assert_bounded();
        let earliest = heap
            .iter()
            .filter(|Reverse((_, seq))| !removed.contains(seq))
            .map(|Reverse((d, _))| *d)
            .min();
        if ops < 20_000 || rng.below(64) == 0 {
            match (w.next_deadline(), earliest) {
                (None, None) => {}
                (Some(next), Some(earliest)) => assert!(next <= earliest, "late wake-up"),
                other => panic!("next_deadline and the model disagree: {other:?}"),
            }
        }
    }
    assert!(
        fired > ops / 10,
        "the model test must exercise firing: {fired}"
    );
}

/// A wheel with 90 % of its timers cancelled keeps its memory bounded. Each round
/// inserts 2 000 timers, cancels the 90 % that are an hour away (in random order)
/// and lets the others fire; 100 timers stay pending throughout, so the wheel is
/// never empty (emptying it would clear it). Without compaction the far tombstones
/// would pile up (1 800 a round, 90 000 in all) until their slot came.
#[test]
fn memory_stays_bounded_with_ninety_percent_cancelled() {
    const HOUR: u64 = 3_600_000_000_000;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut w = Wheel::new();
    for i in 0..100 {
        w.insert(10 * HOUR + i, usize::MAX);
    }
    let mut now = 0;
    let mut peak_live = 0;
    let mut fired = 0;
    for _ in 0..50 {
        let mut far = vec![];
        for i in 0..2_000 {
            if i % 10 == 0 {
                w.insert(now + 1 + next(1_000_000), i);
            } else {
                far.push(w.insert(now + HOUR + next(HOUR), i));
            }
        }
        peak_live = peak_live.max(w.len());
        while !far.is_empty() {
            let key = far.swap_remove(next(far.len() as u64) as usize);
            assert!(w.remove(key).is_some());
            w.assert_bounded();
        }
        now += 1_000_001;
        w.advance(now, |p| {
            assert!(p % 10 == 0, "a cancelled timer fired");
            fired += 1;
        });
        w.assert_bounded();
        assert_eq!(w.len(), 100);
    }
    assert_eq!(fired, 50 * 200);
    assert!(
        w.slots() <= 2 * peak_live + MIN_TOMBSTONES,
        "storage grew to {} entries for at most {peak_live} live timers",
        w.slots()
    );
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    /// A timer `delay` ns from now (or that much in the past).
    Insert { delay: u64, past: bool },
    /// Cancel the n-th key ever issued (modulo their number): live, fired or cancelled.
    Cancel(usize),
    /// Read the payload of the n-th key ever issued.
    Get(usize),
    /// Move the clock forward by that much.
    Advance(u64),
    /// Move the clock to the wheel's next deadline.
    ToNext,
}

fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        0..2_000u64,
        0..100_000u64,
        0..100_000_000u64,
        0..(1u64 << 50),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (delay(), prop::bool::weighted(0.1)).prop_map(|(delay, past)| Op::Insert { delay, past }),
        4 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Get),
        2 => delay().prop_map(Op::Advance),
        1 => Just(Op::ToNext),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 512 },
        ..ProptestConfig::default()
    })]

    /// The wheel against a `BTreeMap` keyed by `(deadline, seq)`: every key, stale or
    /// not, is accepted exactly while its timer is pending; an advance fires exactly the
    /// model's prefix up to `now`, in order; the next deadline exists exactly while a
    /// timer is pending and is never later than the earliest one; and the tombstones
    /// stay within the compaction bound after every step.
    #[test]
    fn wheel_matches_a_sorted_map(start in 0..(1u64 << 40), ops in prop::collection::vec(op(), 1..300)) {
        let mut w = Wheel::starting_at(start);
        let mut model: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        let mut keys: Vec<(TimerKey, u64)> = Vec::new();
        let mut now = start;
        for op in ops {
            match op {
                Op::Insert { delay, past } => {
                    let deadline = if past { now.saturating_sub(delay) } else { now.saturating_add(delay) };
                    let key = w.insert(deadline, keys.len());
                    model.insert((deadline, key.seq), keys.len());
                    keys.push((key, deadline));
                }
                Op::Cancel(n) if !keys.is_empty() => {
                    let (key, deadline) = keys[n % keys.len()];
                    prop_assert_eq!(w.remove(key), model.remove(&(deadline, key.seq)));
                }
                Op::Get(n) if !keys.is_empty() => {
                    let (key, deadline) = keys[n % keys.len()];
                    prop_assert_eq!(w.get_mut(key).copied(), model.get(&(deadline, key.seq)).copied());
                }
                Op::Cancel(_) | Op::Get(_) => {}
                Op::Advance(_) | Op::ToNext => {
                    now = match op {
                        Op::Advance(by) => now.saturating_add(by),
                        _ => w.next_deadline().unwrap_or(now).max(now),
                    };
                    let mut got = vec![];
                    w.advance(now, |id| got.push(id));
                    let later = model.split_off(&(now.saturating_add(1), 0));
                    let want: Vec<usize> = std::mem::replace(&mut model, later).into_values().collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(w.len(), model.len());
            w.assert_bounded();
            match (w.next_deadline(), model.keys().next()) {
                (None, None) => {}
                (Some(next), Some(&(earliest, _))) => prop_assert!(next <= earliest, "late: {} > {}", next, earliest),
                other => prop_assert!(false, "next_deadline and the model disagree: {:?}", other),
            }
        }
    }
}

/// Both ways of compacting keep every live timer, in order, and free every tombstone:
/// the sequential pass (storage mostly in use) and the list walk (storage left large
/// by an earlier peak).
#[test]
fn both_compactions_keep_every_live_timer() {
    const MS: u64 = 1_000_000;
    // Sequential pass: 100 timers, the first 60 cancelled (not list heads: tombstones).
    let mut w = Wheel::new();
    let keys: Vec<_> = (0..100u64).map(|i| w.insert((1 + i % 7) * MS, i)).collect();
    for key in &keys[..60] {
        assert!(w.remove(*key).is_some());
        w.assert_bounded();
    }
    assert_eq!(w.compactions, (1, 0));
    let mut got = vec![];
    w.advance(10 * MS, |p| got.push(p));
    let mut want: Vec<u64> = (60..100).collect();
    want.sort_by_key(|i| ((1 + i % 7) * MS, *i));
    assert_eq!(got, want);

    // List walk: 1 000 timers, 900 fire (their entries stay allocated: the wheel is
    // not empty), then 60 of the 100 far ones are cancelled.
    let mut w = Wheel::new();
    let mut far = vec![];
    for i in 0..1_000u64 {
        if i % 10 == 0 {
            far.push(w.insert(100 * MS + i, i));
        } else {
            w.insert(MS + i, i);
        }
    }
    let mut fired = 0;
    w.advance(2 * MS, |_| fired += 1);
    assert_eq!((fired, w.len(), w.slots()), (900, 100, 1_000));
    for key in far.drain(..60) {
        assert!(w.remove(key).is_some());
        w.assert_bounded();
    }
    assert_eq!(w.compactions, (0, 1));
    let mut got = vec![];
    w.advance(200 * MS, |p| got.push(p));
    assert_eq!(got, (600..1_000).step_by(10).collect::<Vec<u64>>());
}
