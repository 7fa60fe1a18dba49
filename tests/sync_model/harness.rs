//! What every property shares: the worker log, the exploration of a model's
//! interleavings, the real workers and the loop they run on.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future as StdFuture;
use std::hash::Hash;
use std::rc::Rc;

use evloop::{Error, Future, LoopHandle, Runtime, Task, create_task};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// What workers report.

/// What a worker observed, in the shared log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Out {
    /// `lock()` / `acquire()` returned `Ok`.
    Acquired,
    /// The guard or permit was dropped.
    Released,
    /// The permit was `forget()`-ed.
    Forgot,
    /// The wait returned `Err(Cancelled)`.
    Cancelled,
    /// `Event::wait` returned `Ok`.
    Woke,
    /// `put(v)` returned `Ok`.
    Put(u32),
    /// `get` returned `Ok(v)`.
    Got(u32),
    /// `put` / `get` returned `Err(QueueShutDown)`.
    ShutDown,
    /// `join` returned `Ok`.
    Joined,
    /// `Barrier::wait` returned `Ok(index)`.
    Index(usize),
    /// `Barrier::wait` returned `Err(BrokenBarrierError)`.
    Broken,
    /// Anything else (always a mismatch).
    Unexpected(String),
}

/// What a live worker is suspended on (at a quiescent point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shown {
    Idle,
    Waiting,
    Holding,
    WaitPut,
    WaitGet,
    WaitJoin,
    /// In `Condition::wait` (for a notification, or re-acquiring the lock).
    WaitCond,
}

pub(crate) fn unexpected(what: &str, e: &Error) -> Out {
    Out::Unexpected(format!("{what}: {e:?}"))
}

// ---------------------------------------------------------------------------------------
// Models: plain state machines, explored over every order of their ready steps.

pub(crate) trait Model: Clone + Eq + Hash + Debug {
    /// Workers with a step to take (they were started, woken or cancelled).
    fn ready(&self) -> Vec<usize>;
    /// The states after worker `i`'s step (more than one where the API leaves it open).
    fn step(&self, i: usize) -> Vec<Self>;
}

/// Every quiescent state reachable from `cands` by running the ready steps in any order.
pub(crate) fn settle_models<M: Model>(cands: &[M]) -> Vec<M> {
    let mut seen: HashSet<M> = HashSet::new();
    let mut stack: Vec<M> = cands.to_vec();
    let mut out: Vec<M> = Vec::new();
    while let Some(m) = stack.pop() {
        if !seen.insert(m.clone()) {
            continue;
        }
        let ready = m.ready();
        if ready.is_empty() {
            if !out.contains(&m) {
                out.push(m);
            }
            continue;
        }
        for i in ready {
            for next in m.step(i) {
                if !seen.contains(&next) {
                    stack.push(next);
                }
            }
        }
    }
    out
}

/// Spawn order: a started worker takes its first step only after every worker started
/// before it (`seq` is its creation number, `None` once it ran).
pub(crate) fn first_in_spawn_order(
    seqs: impl Iterator<Item = (usize, Option<u32>)>,
) -> Option<usize> {
    seqs.filter_map(|(i, s)| s.map(|s| (s, i)))
        .min()
        .map(|(_, i)| i)
}

/// Applies `f` to every candidate; true (the operation was applied).
pub(crate) fn each<M>(cands: &mut [M], f: impl Fn(&mut M)) -> bool {
    for c in cands.iter_mut() {
        f(c);
    }
    true
}

/// Keeps the candidates whose observation is `real`; the error describes the mismatch.
pub(crate) fn filter<M: Model, O: PartialEq + Debug>(
    cands: &mut Vec<M>,
    real: &O,
    obs: impl Fn(&M) -> O,
    history: &[String],
) -> Result<(), String> {
    let before = cands.clone();
    cands.retain(|m| obs(m) == *real);
    if cands.is_empty() {
        let expected: Vec<O> = before.iter().map(&obs).collect();
        return Err(format!(
            "after {:?}\n  observed: {real:?}\n  the model allows: {expected:#?}",
            history
        ));
    }
    Ok(())
}

/// Applies an operation with a result to every candidate, keeping those that predict
/// the `real` result.
pub(crate) fn apply_checked<M: Model, R: PartialEq + Debug>(
    cands: &mut Vec<M>,
    real: &R,
    op: impl Fn(&mut M) -> R,
    history: &[String],
) -> Result<(), String> {
    let mut kept = Vec::new();
    let mut predicted = Vec::new();
    for m in cands.iter() {
        let mut m = m.clone();
        let r = op(&mut m);
        if r == *real {
            kept.push(m);
        } else {
            predicted.push(r);
        }
    }
    if kept.is_empty() {
        return Err(format!(
            "after {history:?}\n  returned: {real:?}\n  the model predicts: {predicted:?}"
        ));
    }
    *cands = kept;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The real side: worker tasks, their release futures, the shared log.

#[derive(Debug, Default)]
pub(crate) struct Shared {
    shown: Vec<Shown>,
    log: Vec<(usize, Out)>,
}

pub(crate) type SharedRef = Rc<RefCell<Shared>>;

pub(crate) fn record(shared: &SharedRef, i: usize, out: Out) {
    shared.borrow_mut().log.push((i, out));
}

pub(crate) fn show(shared: &SharedRef, i: usize, s: Shown) {
    shared.borrow_mut().shown[i] = s;
}

/// The driver's view of the workers. A worker is busy from its start until a settle
/// finds its task done (or it is aborted): operations are chosen from this view only,
/// so every model candidate receives the same ones.
pub(crate) struct Workers {
    tasks: Vec<Option<Task<()>>>,
    release: Vec<Option<Future<u8>>>,
    cancelled: Vec<bool>,
    released: Vec<bool>,
    shared: SharedRef,
}

/// `release` future values: drop the guard / permit, or `forget()` the permit.
pub(crate) const DROP: u8 = 0;
pub(crate) const FORGET: u8 = 1;

impl Workers {
    pub(crate) fn new(n: usize) -> Workers {
        Workers {
            tasks: (0..n).map(|_| None).collect(),
            release: (0..n).map(|_| None).collect(),
            cancelled: vec![false; n],
            released: vec![false; n],
            shared: Rc::new(RefCell::new(Shared {
                shown: vec![Shown::Idle; n],
                log: Vec::new(),
            })),
        }
    }

    pub(crate) fn busy(&self, i: usize) -> bool {
        self.tasks[i].is_some()
    }

    /// Starts worker `i` (`make` gets its release future and the shared log).
    pub(crate) fn start<F>(
        &mut self,
        i: usize,
        make: impl FnOnce(Future<u8>, SharedRef) -> F,
    ) -> bool
    where
        F: StdFuture<Output = Result<(), Error>> + 'static,
    {
        if self.busy(i) {
            return false;
        }
        let release = Future::<u8>::new();
        self.release[i] = Some(release.clone());
        self.cancelled[i] = false;
        self.released[i] = false;
        self.shared.borrow_mut().shown[i] = Shown::Idle;
        self.tasks[i] = Some(create_task(make(release, self.shared.clone())));
        true
    }

    pub(crate) fn cancel(&mut self, i: usize) -> bool {
        if !self.busy(i) || self.cancelled[i] {
            return false;
        }
        self.cancelled[i] = true;
        self.tasks[i].as_ref().unwrap().cancel();
        true
    }

    pub(crate) fn abort(&mut self, i: usize) -> bool {
        match self.tasks[i].take() {
            Some(task) => {
                task.abort();
                assert!(task.done(), "abort() from the driver ends the task at once");
                true
            }
            None => false,
        }
    }

    pub(crate) fn release(&mut self, i: usize, how: u8) -> bool {
        if !self.busy(i) || self.released[i] {
            return false;
        }
        self.released[i] = true;
        let _ = self.release[i].as_ref().unwrap().set_result(how);
        true
    }

    /// Lets every woken task run (the ready queue stays empty), then forgets the
    /// workers whose task finished.
    pub(crate) async fn settle(&mut self) {
        let handle = LoopHandle::current();
        let mut quiet = 0;
        for round in 0.. {
            evloop::yield_now()
                .await
                .expect("the driver is never cancelled");
            if handle.stats().ready_len == 0 {
                quiet += 1;
            } else {
                quiet = 0;
            }
            if round >= 3 && quiet >= 3 {
                break;
            }
            assert!(round < 10_000, "the loop never went quiet");
        }
        for t in &mut self.tasks {
            if t.as_ref().is_some_and(|t| t.done()) {
                *t = None;
            }
        }
    }

    pub(crate) fn shown(&self) -> Vec<Shown> {
        let shared = self.shared.borrow();
        (0..self.tasks.len())
            .map(|i| {
                if self.busy(i) {
                    shared.shown[i]
                } else {
                    Shown::Idle
                }
            })
            .collect()
    }

    pub(crate) fn log(&self) -> Vec<(usize, Out)> {
        self.shared.borrow().log.clone()
    }

    pub(crate) fn cancel_all(&mut self) -> Vec<usize> {
        (0..self.tasks.len()).filter(|&i| self.cancel(i)).collect()
    }
}

/// Lets the loop settle, explores the model's interleavings to quiescence, and keeps
/// the candidates that agree with what the real primitive shows.
pub(crate) async fn settle_and_compare<M: Model, O: PartialEq + Debug>(
    ws: &mut Workers,
    cands: &mut Vec<M>,
    history: &mut Vec<String>,
    real: impl Fn(&Workers) -> O,
    model: impl Fn(&M) -> O,
) -> Result<(), String> {
    history.push("Settle".into());
    ws.settle().await;
    *cands = settle_models(cands);
    filter(cands, &real(ws), model, history)
}

/// The end of a run: settle and compare, cancel every worker still busy, settle and
/// compare again.
pub(crate) async fn finish<M: Model, O: PartialEq + Debug>(
    ws: &mut Workers,
    cands: &mut Vec<M>,
    history: &mut Vec<String>,
    real: impl Fn(&Workers) -> O,
    model: impl Fn(&M) -> O,
    cancel: impl Fn(&mut M, usize),
) -> Result<(), String> {
    settle_and_compare(ws, cands, history, &real, &model).await?;
    for i in ws.cancel_all() {
        history.push(format!("Cancel({i})"));
        each(cands, |c| cancel(c, i));
    }
    settle_and_compare(ws, cands, history, &real, &model).await
}

/// Runs `driver` as a task of a fresh runtime; a panic in it becomes the error.
pub(crate) fn run_driver<D>(driver: D) -> Result<(), String>
where
    D: StdFuture<Output = Result<(), String>> + 'static,
{
    let rt = Runtime::new().expect("runtime");
    let out =
        rt.block_on(async move { create_task(async move { Ok::<_, Error>(driver.await) }).await });
    match out {
        Ok(r) => r,
        Err(e) => Err(format!("the driver failed: {e}")),
    }
}

/// 512 cases per property (`PROPTEST_CASES` overrides, for a longer hunt).
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(512),
        // Counterexamples found are kept as named tests below instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Worker count and an operation sequence.
pub(crate) fn case<O: Debug + Clone>(
    op: fn(usize) -> BoxedStrategy<O>,
    max_ops: usize,
) -> impl Strategy<Value = (usize, Vec<O>)> {
    (1..=6usize).prop_flat_map(move |n| (Just(n), prop::collection::vec(op(n), 1..max_ops)))
}
