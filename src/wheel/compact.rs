//! Compaction: freeing every tombstone at once, which keeps the wheel's memory
//! bounded (the rule and its bound are in the parent module's doc).
//!
//! Owns: the two ways of doing it. Must not touch: when it happens (`Wheel::remove`
//! and `advance` decide) or any live entry's placement — a live entry stays in the
//! list it is in.

use super::storage::NIL;
use super::{DUE, LEVELS, LISTS, SLOTS, Wheel};

impl<P> Wheel<P> {
    /// Frees every tombstone. While the storage is mostly in use, one sequential pass
    /// over it relinks every live entry into the list it is in (their order in a list
    /// does not matter); a storage left large by an earlier peak is not scanned, each
    /// list is walked instead (random accesses, but only the entries in use).
    pub(super) fn compact(&mut self) {
        if self.storage.slots() <= 4 * self.storage.in_use() {
            let Wheel {
                storage,
                heads,
                occupied,
                ..
            } = self;
            **heads = [NIL; LISTS];
            *occupied = [0; LEVELS];
            #[cfg(test)]
            {
                self.compactions.0 += 1;
            }
            storage.retain_live(|index, entry| {
                let list = entry.list as usize;
                entry.next = heads[list];
                heads[list] = index;
                if list < DUE {
                    occupied[list / SLOTS] |= 1 << (list % SLOTS);
                }
            });
        } else {
            #[cfg(test)]
            {
                self.compactions.1 += 1;
            }
            for list in 0..LISTS {
                let mut cur = std::mem::replace(&mut self.heads[list], NIL);
                while cur != NIL {
                    let entry = &mut self.storage[cur];
                    let next = entry.next;
                    if entry.payload.is_none() {
                        self.storage.free(cur);
                    } else {
                        entry.next = self.heads[list];
                        self.heads[list] = cur;
                    }
                    cur = next;
                }
                if list < DUE && self.heads[list] == NIL {
                    self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
                }
            }
        }
        self.tombstones = 0;
    }
}
