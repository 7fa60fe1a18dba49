//! The loop's pool of cell allocations: a finished task's (or plain future's) memory is
//! kept on its loop thread for the next one of the same type, instead of going back to
//! `malloc`.
//!
//! Owns: the shelves of free, *uninitialised* cell allocations (one shelf per cell type),
//! how many bytes they may hold, and the one sound way a last reference becomes a free
//! allocation ([`recycle`]). Must not touch: what a cell contains — its value is dropped
//! by [`recycle`] before the memory enters a shelf, and written afresh by
//! `TaskCell::new` after it leaves one.
//!
//! Why: a task is one `Arc` allocation of ≈ 270 bytes; a loop that spawns bursts of
//! tasks (P1: 10 000 at a time) overflows the allocator's per-thread cache (glibc keeps
//! 7 chunks per size), so every spawn and every free took glibc's slow paths — 23 % of
//! P1's instructions and about half of its time. A shelf is a `Vec` of pointers: taking
//! and returning a cell is a hash lookup and a push or pop.
//!
//! Rules, each needed for soundness or for memory to stay bounded:
//!
//! | rule | why |
//! |---|---|
//! | a cell enters only when its `Arc` is the last reference, tested by `Arc::get_mut` (strong count 1 and no `Weak`, read with the weak count locked), on its owner loop's thread | nobody else can reach the memory, nor create a reference to it (a `Weak` could upgrade into the next task); two plain loads of the counts would race with a `Weak` being upgraded and dropped between them |
//! | `get_mut`'s acquire ordering | the other threads' last accesses (their `Release` decrements) happen before the memory is reused, as in `Arc::drop` |
//! | the value is dropped *before* the pool is borrowed | a destructor is user code (rule 1) and may spawn, which takes from the pool |
//! | a shelf holds `Arc<MaybeUninit<C>>` (as raw pointers) | freeing one never drops a value twice |
//! | at most [`MAX_BYTES`] per loop; a blocking park trims to [`IDLE_BYTES`]; dropping the loop frees all | a burst's memory is reused while the loop is busy and returned when it sleeps |
//!
//! Not under loom: loom does not model `std::sync::Arc`'s counts, so under `cfg(loom)`
//! nothing is pooled.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::context;
use crate::core::Local;

/// The most bytes of free cells one loop keeps (≈ 15 000 cells of a small task).
pub(crate) const MAX_BYTES: usize = 4 << 20;
/// What a loop keeps when it goes to sleep (a blocking poll of the reactor).
pub(crate) const IDLE_BYTES: usize = 64 << 10;

/// An allocation for one `C`, not initialised, that nothing else references: fresh, or
/// taken from a shelf. Write it with [`init`](Self::init), or field by field through
/// [`as_mut_ptr`](Self::as_mut_ptr) and then [`assume_init`](Self::assume_init).
pub(crate) struct Pooled<C>(Arc<MaybeUninit<C>>);

impl<C> Pooled<C> {
    /// A new allocation from the global allocator.
    #[inline]
    pub(crate) fn fresh() -> Pooled<C> {
        // (`Arc::new` of an uninit value: its layout is a constant, where `new_uninit`
        // computes it at run time.)
        Pooled(Arc::new(MaybeUninit::uninit()))
    }

    /// Where the value goes: the allocation's own pointer (`Arc::as_ptr` derives it from
    /// the allocation, not from a reference), writable because nothing else references
    /// the allocation.
    #[inline]
    pub(crate) fn as_mut_ptr(&self) -> *mut C {
        Arc::as_ptr(&self.0).cast_mut().cast::<C>()
    }

    /// The `Arc` of the value written through [`as_mut_ptr`](Self::as_mut_ptr).
    ///
    /// # Safety
    ///
    /// Every field of the value must have been written.
    #[inline]
    pub(crate) unsafe fn assume_init(self) -> Arc<C> {
        // SAFETY: the caller's contract.
        unsafe { self.0.assume_init() }
    }

    /// Moves `value` into the allocation.
    #[inline]
    pub(crate) fn init(self, value: C) -> Arc<C> {
        // SAFETY: nothing else references the allocation (the type's invariant), so the
        // write through its own pointer races with nothing; it initialises the value.
        unsafe {
            self.as_mut_ptr().write(value);
            self.assume_init()
        }
    }
}

/// Free cell allocations of one cell type.
struct Shelf {
    /// `Arc::into_raw` of `Arc<MaybeUninit<C>>`s, each the only reference to its memory.
    cells: Vec<NonNull<()>>,
    /// Bytes one cell occupies (the `Arc`'s two counts and `C`).
    bytes_each: usize,
    /// Frees one entry of `cells` (`free_cell::<C>`).
    free: unsafe fn(NonNull<()>),
}

/// The shelves of one loop (see the module docs). `!Send`: it lives in the loop's core.
#[derive(Default)]
pub(crate) struct CellPool {
    shelves: HashMap<TypeId, Shelf, BuildHasherDefault<TypeIdHasher>>,
    bytes: usize,
}

impl std::fmt::Debug for CellPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellPool")
            .field("types", &self.shelves.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// # Safety
///
/// `ptr` must be an entry of a shelf of `C` cells, removed from it.
unsafe fn free_cell<C>(ptr: NonNull<()>) {
    // SAFETY: the caller's contract: `ptr` came from `Arc::into_raw` of an
    // `Arc<MaybeUninit<C>>` and is owned by nobody else; dropping a `MaybeUninit` drops
    // no value, so this only frees the memory.
    drop(unsafe { Arc::from_raw(ptr.as_ptr().cast_const().cast::<MaybeUninit<C>>()) });
}

fn bytes_of<C>() -> usize {
    std::mem::size_of::<C>() + 2 * std::mem::size_of::<usize>()
}

impl CellPool {
    /// A free allocation for a `C`, if one is on the shelf: the only reference to it.
    #[inline]
    pub(crate) fn take<C: 'static>(&mut self) -> Option<Pooled<C>> {
        if self.bytes == 0 {
            return None;
        }
        let shelf = self.shelves.get_mut(&TypeId::of::<C>())?;
        let ptr = shelf.cells.pop()?;
        self.bytes -= shelf.bytes_each;
        // SAFETY: the shelf of `C` holds only `Arc::into_raw` of `Arc<MaybeUninit<C>>`s
        // that nothing else references (`put`); popping it hands that ownership back.
        Some(Pooled(unsafe {
            Arc::from_raw(ptr.as_ptr().cast_const().cast::<MaybeUninit<C>>())
        }))
    }

    /// Shelves `cell`, or hands it back when the pool is full (the caller frees it).
    #[inline]
    pub(crate) fn put<C: 'static>(&mut self, cell: Pooled<C>) -> Option<Pooled<C>> {
        let bytes_each = bytes_of::<C>();
        if self.bytes + bytes_each > MAX_BYTES {
            return Some(cell);
        }
        let shelf = self
            .shelves
            .entry(TypeId::of::<C>())
            .or_insert_with(|| Shelf {
                cells: Vec::new(),
                bytes_each,
                free: free_cell::<C>,
            });
        let ptr = Arc::into_raw(cell.0).cast_mut().cast::<()>();
        // (`Arc::into_raw` never returns null.)
        shelf
            .cells
            .push(NonNull::new(ptr).expect("Arc::into_raw is not null"));
        self.bytes += bytes_each;
        None
    }

    /// Frees cells until at most `keep` bytes are shelved. Frees memory only (no value
    /// is dropped): safe under any borrow.
    pub(crate) fn trim(&mut self, keep: usize) {
        if self.bytes <= keep {
            return;
        }
        for shelf in self.shelves.values_mut() {
            while self.bytes > keep {
                let Some(ptr) = shelf.cells.pop() else { break };
                self.bytes -= shelf.bytes_each;
                // SAFETY: `ptr` was just removed from this shelf, whose `free` is its
                // type's `free_cell`.
                unsafe { (shelf.free)(ptr) };
            }
            // The shelf's own vector shrinks with it (it grew to the burst's size).
            if shelf.cells.capacity() > 2 * shelf.cells.len() + 16 {
                shelf.cells.shrink_to(shelf.cells.len());
            }
            if self.bytes <= keep {
                break;
            }
        }
    }

    /// Bytes of free cells on the shelves.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for CellPool {
    fn drop(&mut self) {
        self.trim(0);
    }
}

/// A free allocation for a `C` from the pool of loop `loop_id`, if that loop runs on this
/// thread and has one (for callers that may be on any thread).
pub(crate) fn take_on<C: 'static>(loop_id: u64) -> Option<Pooled<C>> {
    context::with_local(loop_id, |local| local.cells.borrow_mut().take()).flatten()
}

/// Frees `cell` — a cell of the loop `loop_id` — into that loop's pool when this is the
/// last reference and this thread runs that loop; drops it the usual way otherwise.
/// The value's destructors (user code) run here, outside every borrow. `local` is the
/// loop's core when the caller has it (the loop releasing a task), saving the
/// thread-local lookups.
pub(crate) fn recycle<C: 'static>(mut cell: Arc<C>, loop_id: u64, local: Option<&Local>) {
    let on_its_loop = match local {
        Some(local) => local.id() == loop_id,
        None => context::current_id() == loop_id,
    };
    // `get_mut` is the uniqueness test: it locks the weak count while it reads the
    // strong one, and acquires what the other threads did before dropping their
    // references. (Two plain loads of the counts are not enough: between them another
    // thread can upgrade a `Weak` — the reactor's hold on a displaced task — and drop
    // that `Weak`, so both loads pass while it holds a strong reference.)
    if cfg!(loom) || !on_its_loop || Arc::get_mut(&mut cell).is_none() {
        drop(cell);
        return;
    }
    let raw = Arc::into_raw(cell).cast::<MaybeUninit<C>>();
    // SAFETY: `raw` is `Arc::into_raw` of an `Arc<C>`, and `MaybeUninit<C>` has `C`'s
    // size and alignment (`Arc::from_raw`'s requirement for a different `U`).
    let memory = unsafe { Arc::from_raw(raw) };
    // SAFETY: `memory` is the only reference to the allocation: `get_mut` found no other
    // strong or weak reference, and no new one can be made without one. The value is initialised and is dropped exactly once, here, through the
    // allocation's own pointer (`Arc::as_ptr` derives from the allocation, not from a
    // reference); from now on it is treated as uninitialised — a `MaybeUninit` never
    // drops its contents, so if a destructor unwinds, `memory` only frees the memory.
    unsafe { std::ptr::drop_in_place(Arc::as_ptr(&memory).cast_mut().cast::<C>()) };
    // The only reference, its value dropped: the `Pooled` invariant.
    let memory = Pooled(memory);
    let refused = match local {
        Some(local) => local.cells.borrow_mut().put(memory),
        // (A destructor may have swapped or dropped this thread's loop: then it is freed.)
        None => {
            let mut memory = Some(memory);
            let refused = context::with_local(loop_id, |local| {
                memory.take().and_then(|m| local.cells.borrow_mut().put(m))
            });
            refused.flatten().or(memory)
        }
    };
    drop(refused);
}

/// `TypeId`s are already hashes: use 64 of their bits as they are.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `TypeId` today (it writes one `u64`); stay correct if it changes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[cfg(test)]
mod tests {
    use super::{CellPool, Pooled, bytes_of};
    use std::sync::Arc;

    #[test]
    fn a_shelved_allocation_comes_back_for_its_type_only() {
        let mut pool = CellPool::default();
        let cell = Pooled::<[u64; 8]>::fresh();
        let addr = cell.as_mut_ptr() as usize;
        assert!(pool.put(cell).is_none());
        assert_eq!(pool.bytes(), bytes_of::<[u64; 8]>());
        assert!(
            pool.take::<[u64; 9]>().is_none(),
            "another type has its own shelf"
        );
        let again = pool.take::<[u64; 8]>().expect("the shelved cell");
        assert_eq!(again.as_mut_ptr() as usize, addr);
        let value = again.init([7; 8]);
        assert_eq!(Arc::strong_count(&value), 1);
        assert_eq!(*value, [7; 8]);
        assert_eq!(pool.bytes(), 0);
        assert!(pool.take::<[u64; 8]>().is_none());
    }

    #[test]
    fn the_pool_is_bounded_and_trims_to_what_it_keeps() {
        let mut pool = CellPool::default();
        let each = bytes_of::<[u8; 1000]>();
        let mut refused = 0;
        for _ in 0..(super::MAX_BYTES / each + 10) {
            if pool.put(Pooled::<[u8; 1000]>::fresh()).is_some() {
                refused += 1;
            }
        }
        assert_eq!(refused, 10, "past MAX_BYTES cells are handed back");
        assert!(pool.bytes() <= super::MAX_BYTES);
        pool.trim(5 * each);
        assert_eq!(pool.bytes(), 5 * each);
        pool.trim(0);
        assert_eq!(pool.bytes(), 0);
        assert!(pool.take::<[u8; 1000]>().is_none());
    }

    async fn job(n: u8) -> Result<u8, crate::Error> {
        Ok(n)
    }

    fn cell_of<T>(fut: &crate::Future<T>) -> *const () {
        Arc::as_ptr(&*fut.obj).cast::<()>()
    }

    /// The real path, end to end (and under Miri): a finished task's last handle
    /// shelves its cell, the next task of the same type is built in that memory and
    /// runs normally; the same for a plain future.
    #[test]
    fn the_next_task_and_future_are_built_in_the_recycled_memory() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let first = crate::create_task(job(1));
            let addr = cell_of(&first.fut);
            assert_eq!(first.await.unwrap(), 1);
            let second = crate::create_task(job(2));
            assert_eq!(cell_of(&second.fut), addr, "built in the shelved memory");
            assert_eq!(second.await.unwrap(), 2);

            let fut = crate::Future::<u8>::new();
            let addr = cell_of(&fut);
            fut.set_result(3).unwrap();
            assert_eq!(fut.clone().await.unwrap(), 3);
            drop(fut);
            let next = crate::Future::<u8>::new();
            assert_eq!(cell_of(&next), addr, "built in the shelved memory");
            assert!(!next.done());
            next.set_result(4).unwrap();
            assert_eq!(next.await.unwrap(), 4);
        });
    }

    /// Only a sole reference is shelved: a live `Weak` (the reactor holds displaced
    /// tasks weakly) or a second strong reference keeps the cell out of the pool, and the
    /// value is dropped the usual way. (The review of this module found that reading the
    /// two counts separately raced with a `Weak` upgraded and dropped between the reads;
    /// `Arc::get_mut` reads them with the weak count locked.)
    #[test]
    fn a_cell_with_another_reference_is_not_shelved() {
        let rt = crate::Runtime::new().unwrap();
        let local = rt.local_for_tests();
        let id = local.id();
        let shelved = || local.cells.borrow().bytes();

        let cell = Arc::new([1u64; 4]);
        let weak = Arc::downgrade(&cell);
        super::recycle(cell, id, Some(&local));
        assert_eq!(shelved(), 0, "a cell with a Weak is not shelved");
        assert!(weak.upgrade().is_none(), "and is freed as usual");

        let cell = Arc::new([2u64; 4]);
        let other = cell.clone();
        super::recycle(cell, id, Some(&local));
        assert_eq!(
            shelved(),
            0,
            "a cell with another strong reference is not shelved"
        );
        assert_eq!(*other, [2; 4]);

        super::recycle(other, id, Some(&local));
        assert_eq!(
            shelved(),
            bytes_of::<[u64; 4]>(),
            "the sole reference is shelved"
        );
        super::recycle(Arc::new([3u64; 4]), id + 1, Some(&local));
        assert_eq!(
            shelved(),
            bytes_of::<[u64; 4]>(),
            "a cell of another loop is not shelved here"
        );
    }
}
