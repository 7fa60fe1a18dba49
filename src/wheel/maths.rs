//! The wheel's arithmetic: ticks, levels, slots and slot start times.
//!
//! Owns: the pure functions that map a deadline to its place in the wheel. Must not
//! touch: any state — everything here is a function of its arguments.

/// log2 of the tick length in nanoseconds (1 tick = 1024 ns).
pub(super) const TICK_SHIFT: u32 = 10;
pub(super) const LEVEL_BITS: u32 = 6;
pub(super) const SLOTS: usize = 1 << LEVEL_BITS;
pub(super) const LEVELS: usize = 7;
/// Number of ticks the wheel covers; later deadlines wait in the overflow list.
pub(super) const SPAN: u64 = 1 << (LEVEL_BITS as u64 * LEVELS as u64);

/// The tick containing `ns` (rounded down).
pub(super) fn tick_of(ns: u64) -> u64 {
    ns >> TICK_SHIFT
}

/// The first nanosecond of `tick`, saturating.
pub(super) fn tick_start_ns(tick: u64) -> u64 {
    tick.saturating_mul(1 << TICK_SHIFT)
}

/// Ticks covered by one slot at `level`.
fn slot_range(level: usize) -> u64 {
    1u64 << (LEVEL_BITS as usize * level)
}

/// The level for an entry due at `when` (ticks) seen from `elapsed`, `when > elapsed`,
/// `when - elapsed < SPAN`: the six-bit group holding the highest differing bit.
pub(super) fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / LEVEL_BITS as usize).min(LEVELS - 1)
}

/// The slot of `when` at `level`.
pub(super) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (LEVEL_BITS as usize * level)) as usize) & (SLOTS - 1)
}

/// First occupied slot after `pos`, wrapping around so that `pos` itself comes last:
/// at the top level a slot at or before `pos` holds entries of the *next* rotation.
pub(super) fn next_occupied(occupied: u64, pos: usize) -> Option<usize> {
    if occupied == 0 {
        return None;
    }
    let from = (pos + 1) % SLOTS;
    let zeros = occupied.rotate_right(from as u32).trailing_zeros() as usize;
    Some((from + zeros) % SLOTS)
}

/// Start tick of `slot` at `level` in the rotation containing `elapsed`, moved one
/// rotation forward when that start is not after `elapsed` (only the top level wraps).
pub(super) fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let range = slot_range(level);
    let level_span = range * SLOTS as u64;
    let start = (elapsed & !(level_span - 1)) + slot as u64 * range;
    if start <= elapsed {
        start + level_span
    } else {
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// An entry placed at `level_for` lands in a slot whose range holds its tick, and
    /// that slot starts after `elapsed`: cascading from there can never skip it.
    #[test]
    fn a_placed_tick_lies_in_its_slot_and_the_slot_is_ahead() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let elapsed = x >> 20;
            let when = elapsed + 1 + (x % (SPAN - 1));
            let level = level_for(elapsed, when);
            let slot = slot_for(when, level);
            let start = slot_start(elapsed, level, slot);
            assert!(start > elapsed);
            if level < LEVELS - 1 {
                assert!(start <= when && when < start + slot_range(level));
            } else {
                assert!(start <= when, "top level: the slot is reached first");
            }
        }
    }
}
