//! Task-local context (SPEC K5, asyncio's `contextvars`): [`ContextVar`], [`Token`].
//!
//! Owns: the per-thread context, the process-wide "a variable was ever set" flag, and
//! the hooks that carry a context into a task ([`capture`] at its creation; the task
//! keeps it in its loop-local state, where `get` and `set` find it while it is being
//! polled) and into a callback ([`run_in`]). Must not touch: scheduling, or a task's
//! other state.
//!
//! A context is an immutable map from variable to value behind an `Arc`, copied on
//! write: a task created while a context is current shares that `Arc` and `set`
//! replaces its own copy, so a child's changes never reach its parent (and the other
//! way round), as asyncio copies the context into every new task. A callback runs in
//! the context current when it was scheduled.
//!
//! Zero cost when unused: a poll does nothing for contexts (a task's is looked up by
//! `get` / `set` through the current-task pointer, never swapped in), and until some
//! `ContextVar::set` has run in the process, creating a task or scheduling a callback
//! only reads one relaxed atomic flag.
//!
//! | where | current context |
//! |---|---|
//! | a task's poll | the task's own (a copy of its creator's at creation) |
//! | a callback scheduled with `call_soon` / `call_at` / `add_done_callback` | a copy of the one current when it was scheduled |
//! | anything else on a thread (the `block_on` future, plain threads) | the thread's own |

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, InvalidStateError};

type Value = Arc<dyn Any + Send + Sync>;

/// A context: values by variable id, copied on write.
#[derive(Clone, Default)]
pub(crate) struct Map(Vec<(u64, Value)>);

/// What a task or a callback carries: `None` is the empty context.
pub(crate) type Snapshot = Option<Arc<Map>>;

/// Some `ContextVar::set` ran somewhere: contexts must be carried from now on.
static USED: AtomicBool = AtomicBool::new(false);
static NEXT_VAR: AtomicU64 = AtomicU64::new(1);
/// Owners of contexts that are not a task's (a callback's copy, a thread's own): ids
/// with the top bit set, never equal to a task id.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1 << 63);

thread_local! {
    static CURRENT: RefCell<Snapshot> = const { RefCell::new(None) };
    /// Who owns the current context when no task is being polled (0: the thread's
    /// own, id not drawn yet).
    static OWNER: Cell<u64> = const { Cell::new(0) };
}

/// Whether any `ContextVar::set` ran in the process yet.
#[inline]
pub(crate) fn used() -> bool {
    USED.load(Ordering::Relaxed)
}

/// The current context, for a task or callback about to be created (`None` when no
/// variable was ever set, or the current context is empty).
#[inline]
pub(crate) fn capture() -> Snapshot {
    if !used() {
        return None;
    }
    capture_slow()
}

#[cold]
fn capture_slow() -> Snapshot {
    with_context(|ctx| ctx.clone()).flatten()
}

/// Runs `f` on the current context: the polled task's own (kept in its loop-local
/// state), else this thread's. `f` must not run user code (it runs under a borrow):
/// it only clones or moves `Arc`s.
fn with_context<R>(f: impl FnOnce(&mut Snapshot) -> R) -> Option<R> {
    let mut f = Some(f);
    let in_task = crate::task::coop::with_current(|task| {
        let mut state = task.header().local.get().borrow_mut();
        f.take().map(|f| f(&mut state.context))
    })
    .flatten();
    match (in_task, f) {
        (Some(r), _) => Some(r),
        (None, Some(f)) => CURRENT.try_with(|c| f(&mut c.borrow_mut())).ok(),
        (None, None) => None,
    }
}

fn swap(ctx: Snapshot) -> Snapshot {
    CURRENT
        .try_with(|c| std::mem::replace(&mut *c.borrow_mut(), ctx))
        .unwrap_or(None)
}

/// Runs callback `f` in a copy of `ctx` (a callback's context, see [`capture`]).
pub(crate) fn run_in<R>(ctx: Snapshot, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(Snapshot, u64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some((prev, owner)) = self.0.take() {
                // Dropped after the borrow: the values are user data (rule 1).
                let own = swap(prev);
                let _ = OWNER.try_with(|o| o.set(owner));
                drop(own);
            }
        }
    }
    let prev = swap(ctx);
    let owner = OWNER
        .try_with(|o| o.replace(NEXT_OWNER.fetch_add(1, Ordering::Relaxed)))
        .unwrap_or(0);
    let _restore = Restore(Some((prev, owner)));
    f()
}

/// Who owns the current context: the task being polled, else the callback's copy or
/// the thread's own.
fn current_owner() -> u64 {
    if let Some(task) = crate::task::coop::with_current(|t| t.header().id) {
        return task;
    }
    OWNER
        .try_with(|o| {
            if o.get() == 0 {
                o.set(NEXT_OWNER.fetch_add(1, Ordering::Relaxed));
            }
            o.get()
        })
        .unwrap_or(0)
}

/// A task-local variable (SPEC K5, asyncio's `contextvars.ContextVar`, tokio's
/// `task_local!`): each task sees the value set in its own context, which starts as a
/// copy of its creator's; a callback sees the value current when it was scheduled.
/// Usually a `static`.
///
/// ```
/// use evloop::ContextVar;
///
/// static REQUEST: ContextVar<u32> = ContextVar::new("request");
///
/// evloop::run(async {
///     REQUEST.set(1);
///     let child = evloop::create_task(async {
///         assert_eq!(REQUEST.get(), Some(1), "a copy of the creator's context");
///         REQUEST.set(2);
///         Ok::<_, evloop::Error>(REQUEST.get())
///     });
///     assert_eq!(child.await?, Some(2));
///     assert_eq!(REQUEST.get(), Some(1), "the child's change stays in the child");
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub struct ContextVar<T> {
    name: &'static str,
    /// Drawn on first use, so that `new` can be `const`.
    id: AtomicU64,
    default: Option<T>,
}

impl<T: Clone + Send + Sync + 'static> ContextVar<T> {
    /// A variable with no default: [`get`](Self::get) is `None` until it is set.
    pub const fn new(name: &'static str) -> ContextVar<T> {
        ContextVar {
            name,
            id: AtomicU64::new(0),
            default: None,
        }
    }

    /// A variable whose [`get`](Self::get) gives `default` where it was never set.
    pub const fn with_default(name: &'static str, default: T) -> ContextVar<T> {
        ContextVar {
            name,
            id: AtomicU64::new(0),
            default: Some(default),
        }
    }

    /// The variable's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_VAR.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(drawn) => drawn,
        }
    }

    /// The value in the current context, else the default, else `None`.
    pub fn get(&self) -> Option<T> {
        let value = if used() { self.lookup() } else { None };
        // `T::clone` is user code: run after the context's borrow ended (rule 1).
        match value {
            Some(v) => v.downcast_ref::<T>().cloned(),
            None => self.default.clone(),
        }
    }

    fn lookup(&self) -> Option<Value> {
        let id = self.id();
        with_context(|c| {
            let map = c.as_ref()?;
            map.0.iter().find(|(k, _)| *k == id).map(|(_, v)| v.clone())
        })
        .flatten()
    }

    /// Sets the value in the current context; the [`Token`] restores the previous one
    /// with [`reset`](Self::reset).
    pub fn set(&self, value: T) -> Token<T> {
        USED.store(true, Ordering::Relaxed);
        let prev = self.put(Some(Arc::new(value)));
        Token {
            var: self.id(),
            owner: current_owner(),
            prev: Some(prev),
            _value: PhantomData,
        }
    }

    /// Puts `value` (`None`: removes) and returns the previous value.
    fn put(&self, value: Option<Value>) -> Option<Value> {
        let id = self.id();
        let (old, replaced_map) = with_context(|c| {
            let map = Arc::make_mut(c.get_or_insert_with(Default::default));
            let i = map.0.iter().position(|(k, _)| *k == id);
            let old = match (i, value) {
                (Some(i), Some(v)) => Some(std::mem::replace(&mut map.0[i].1, v)),
                (Some(i), None) => Some(map.0.swap_remove(i).1),
                (None, Some(v)) => {
                    map.0.push((id, v));
                    None
                }
                (None, None) => None,
            };
            let empty = map.0.is_empty();
            (old, if empty { c.take() } else { None })
        })
        .unwrap_or((None, None));
        drop(replaced_map);
        old
    }

    /// Restores the value `token`'s [`set`](Self::set) replaced (asyncio's
    /// `ContextVar.reset`).
    ///
    /// # Errors
    ///
    /// `Error::InvalidState` naming the variable when `token` was made by another
    /// variable, or in another context (another task, or another callback); nothing is
    /// changed then.
    pub fn reset(&self, mut token: Token<T>) -> Result<(), Error> {
        if token.var != self.id() {
            return Err(Error::InvalidState(InvalidStateError::new(format!(
                "ContextVar {:?}: the token was created by another ContextVar",
                self.name
            ))));
        }
        if token.owner != current_owner() {
            return Err(Error::InvalidState(InvalidStateError::new(format!(
                "ContextVar {:?}: the token was created in a different context (another \
                 task or callback)",
                self.name
            ))));
        }
        let replaced = self.put(token.prev.take().flatten());
        drop(replaced);
        Ok(())
    }
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What [`ContextVar::set`] replaced: hand it to [`ContextVar::reset`] to restore it.
pub struct Token<T> {
    var: u64,
    owner: u64,
    /// `Some(previous value or None)` until used.
    prev: Option<Option<Value>>,
    _value: PhantomData<fn() -> T>,
}

impl<T> Token<T> {
    /// The value the variable had before the `set` that made this token (asyncio's
    /// `Token.old_value`); `None` when it had none.
    pub fn old_value(&self) -> Option<T>
    where
        T: Clone + 'static,
    {
        self.prev.as_ref()?.as_ref()?.downcast_ref::<T>().cloned()
    }
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").finish_non_exhaustive()
    }
}
