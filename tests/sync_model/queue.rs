//! Y6 `Queue`, `LifoQueue`, `PriorityQueue`.

use std::collections::{HashSet, VecDeque};
use std::future::Future as StdFuture;

use evloop::Error;
use evloop::sync::{LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown};
use proptest::prelude::*;

use crate::harness::*;

// ---------------------------------------------------------------------------------------
// Y6 Queue, LifoQueue, PriorityQueue.

#[derive(Clone, Debug)]
enum QueueOp {
    /// Worker starts `put(v)`; `v` is made unique by the driver (`key * 1000 + serial`),
    /// so a priority queue sees equal keys but items stay distinguishable.
    Put(usize, u32),
    Get(usize),
    Join(usize),
    PutNowait(u32),
    GetNowait,
    TaskDone,
    Cancel(usize),
    Abort(usize),
    Shutdown(bool),
    Settle,
}

fn queue_op(n: usize) -> BoxedStrategy<QueueOp> {
    prop_oneof![
        4 => ((0..n), 0..4u32).prop_map(|(i, k)| QueueOp::Put(i, k)),
        4 => (0..n).prop_map(QueueOp::Get),
        1 => (0..n).prop_map(QueueOp::Join),
        2 => (0..4u32).prop_map(QueueOp::PutNowait),
        2 => Just(QueueOp::GetNowait),
        1 => Just(QueueOp::TaskDone),
        3 => (0..n).prop_map(QueueOp::Cancel),
        1 => (0..n).prop_map(QueueOp::Abort),
        // Rare: everything after it tests the shut-down queue.
        1 => prop::bool::weighted(0.3).prop_map(QueueOp::Shutdown),
        3 => Just(QueueOp::Settle),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum QKind {
    Fifo,
    Lifo,
    Priority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum QSt {
    Idle,
    SpawnedPut(u32),
    SpawnedGet,
    SpawnedJoin,
    WaitPut(u32),
    WaitGet,
    WaitJoin,
    /// Woken with a claim on one buffered item, not run yet: when it runs it takes the
    /// next item in the queue's order (not a particular one).
    Claimed,
    /// Its value was moved into the queue by a get, not run yet.
    GrantedPut(u32),
    /// `join()` released (unfinished reached 0), not run yet.
    WokenJoin,
    /// Cancelled while waiting (or while holding a claim, which has passed on).
    Cancelling,
    /// Failed by `shutdown` while waiting (or, by `shutdown(true)`, while holding a
    /// claim).
    Failing,
}

impl QSt {
    fn spawned(self) -> bool {
        matches!(
            self,
            QSt::SpawnedPut(_) | QSt::SpawnedGet | QSt::SpawnedJoin
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct QW {
    st: QSt,
    cancel: bool,
    seq: Option<u32>,
}

const QW_IDLE: QW = QW {
    st: QSt::Idle,
    cancel: false,
    seq: None,
};

/// The specification (asyncio's claims): every item stays in the buffer until a get
/// takes it; a put while gets wait wakes the first live one with a *claim* on one
/// buffered item, which nobody else may take; the claimed get takes the next item in
/// the queue's order when it runs. A claim of a get cancelled (or dropped) before it
/// ran passes to the next live waiting get, or lapses.
///
/// The implementation passes a cancelled get's claim on at the next queue operation
/// (or when the get's task runs, whichever is first); the model passes it at
/// `cancel()`. The two cannot be told apart: between the cancel and the next queue
/// operation nothing observes the claims (`qsize()` and `full()` count claimed items
/// too), and claims are interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct QueueModel {
    kind: QKind,
    maxsize: usize,
    /// Every item in the queue, claimed ones included. Fifo: index 0 is the next get.
    /// Lifo: the last is the top. Priority: ascending.
    buf: Vec<u32>,
    /// Live gets waiting, in FIFO order (a cancelled one leaves at `cancel()`).
    getters: VecDeque<usize>,
    /// Live puts waiting, in FIFO order.
    putters: VecDeque<usize>,
    unfinished: usize,
    shut: bool,
    /// Items dropped by `shutdown(true)`.
    dropped: Vec<u32>,
    w: Vec<QW>,
    next_seq: u32,
    log: Vec<(usize, Out)>,
}

/// `put_nowait`'s result: `Err(is_shut_down)`.
type PutRes = Result<(), bool>;
/// `get_nowait`'s result: `Err(is_shut_down)`.
type GetRes = Result<u32, bool>;

impl QueueModel {
    fn new(kind: QKind, maxsize: usize, n: usize) -> QueueModel {
        QueueModel {
            kind,
            maxsize,
            buf: Vec::new(),
            getters: VecDeque::new(),
            putters: VecDeque::new(),
            unfinished: 0,
            shut: false,
            dropped: Vec::new(),
            w: vec![QW_IDLE; n],
            next_seq: 0,
            log: Vec::new(),
        }
    }

    /// What `qsize()` says: claimed items count.
    fn size(&self) -> usize {
        self.buf.len()
    }

    fn full(&self) -> bool {
        self.maxsize > 0 && self.size() >= self.maxsize
    }

    /// Buffered items kept for woken gets that have not run yet.
    fn claims(&self) -> usize {
        self.w.iter().filter(|w| w.st == QSt::Claimed).count()
    }

    fn push(&mut self, v: u32) {
        match self.kind {
            QKind::Fifo | QKind::Lifo => self.buf.push(v),
            QKind::Priority => {
                let at = self.buf.partition_point(|&x| x < v);
                self.buf.insert(at, v);
            }
        }
    }

    fn pop(&mut self) -> Option<u32> {
        if self.buf.is_empty() {
            return None;
        }
        Some(match self.kind {
            QKind::Fifo | QKind::Priority => self.buf.remove(0),
            QKind::Lifo => self.buf.pop().unwrap(),
        })
    }

    /// An unclaimed item's claim goes to the first live waiting get, if any.
    fn claim_for_next(&mut self) {
        if let Some(j) = self.getters.pop_front() {
            self.w[j].st = QSt::Claimed;
        }
    }

    /// A new item: into the queue, and a claim on it for the first waiting get.
    fn deliver(&mut self, v: u32) {
        self.unfinished += 1;
        self.push(v);
        self.claim_for_next();
    }

    /// Takes the next item if some item is unclaimed (`get_nowait`, a `get` that does
    /// not wait); the first waiting put's value moves into the room made.
    fn take(&mut self) -> Option<u32> {
        if self.buf.len() <= self.claims() {
            return None;
        }
        let v = self.pop()?;
        self.refill();
        Some(v)
    }

    /// Room was made: the first waiting put's value moves in (giving a claim to a
    /// waiting get, if any) and that put is done.
    fn refill(&mut self) {
        if self.full() {
            return;
        }
        let Some(j) = self.putters.pop_front() else {
            return;
        };
        let QSt::WaitPut(pv) = self.w[j].st else {
            unreachable!()
        };
        self.w[j].st = QSt::GrantedPut(pv);
        self.deliver(pv);
    }

    fn wake_joins(&mut self) {
        if self.unfinished == 0 {
            for w in &mut self.w {
                if w.st == QSt::WaitJoin {
                    w.st = QSt::WokenJoin;
                }
            }
        }
    }

    fn start(&mut self, i: usize, st: QSt) {
        self.w[i] = QW {
            st,
            cancel: false,
            seq: Some(self.next_seq),
        };
        self.next_seq += 1;
    }

    fn put_nowait(&mut self, v: u32) -> PutRes {
        if self.shut {
            Err(true)
        } else if self.full() {
            Err(false)
        } else {
            self.deliver(v);
            Ok(())
        }
    }

    fn get_nowait(&mut self) -> GetRes {
        match self.take() {
            Some(v) => Ok(v),
            None => Err(self.shut),
        }
    }

    fn task_done(&mut self) -> Result<(), ()> {
        if self.unfinished == 0 {
            return Err(());
        }
        self.unfinished -= 1;
        self.wake_joins();
        Ok(())
    }

    fn shutdown(&mut self, immediate: bool) {
        self.shut = true;
        if immediate {
            // Claimed items too: their gets, woken already, find the queue shut down.
            while let Some(v) = self.pop() {
                self.dropped.push(v);
                self.unfinished = self.unfinished.saturating_sub(1);
            }
            for w in &mut self.w {
                if w.st == QSt::Claimed {
                    w.st = QSt::Failing;
                }
            }
            self.wake_joins();
        }
        for j in std::mem::take(&mut self.getters)
            .into_iter()
            .chain(std::mem::take(&mut self.putters))
        {
            self.w[j].st = QSt::Failing;
        }
    }

    /// `Task::cancel`: a waiter leaves its FIFO at once; a claim passes on.
    fn cancel(&mut self, i: usize) {
        self.w[i].cancel = true;
        match self.w[i].st {
            QSt::WaitPut(_) => {
                self.putters.retain(|&j| j != i);
                self.w[i].st = QSt::Cancelling;
            }
            QSt::WaitGet => {
                self.getters.retain(|&j| j != i);
                self.w[i].st = QSt::Cancelling;
            }
            QSt::WaitJoin => self.w[i].st = QSt::Cancelling,
            QSt::Claimed => {
                self.w[i].st = QSt::Cancelling;
                self.claim_for_next();
            }
            _ => {}
        }
    }

    /// The worker's future is dropped: it leaves at once, a claim passes on.
    fn abort(&mut self, i: usize) {
        let st = self.w[i].st;
        self.w[i] = QW_IDLE;
        match st {
            QSt::WaitPut(_) => self.putters.retain(|&j| j != i),
            QSt::WaitGet => self.getters.retain(|&j| j != i),
            QSt::Claimed => self.claim_for_next(),
            _ => {}
        }
    }

    /// `self` logging `out` for `i`, and if `i` was cancelled after the outcome was
    /// decided (before it ran), also the alternative `Err(Cancelled)`.
    fn finish(mut self, i: usize, out: Out, maybe_cancelled: bool) -> Vec<Self> {
        self.w[i] = QW_IDLE;
        let mut other = self.clone();
        self.log.push((i, out));
        if maybe_cancelled {
            other.log.push((i, Out::Cancelled));
            vec![self, other]
        } else {
            vec![self]
        }
    }
}

impl Model for QueueModel {
    fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.w.len())
            .filter(|&i| {
                matches!(
                    self.w[i].st,
                    QSt::Claimed
                        | QSt::GrantedPut(_)
                        | QSt::WokenJoin
                        | QSt::Cancelling
                        | QSt::Failing
                )
            })
            .collect();
        ready.extend(first_in_spawn_order(
            self.w
                .iter()
                .enumerate()
                .map(|(i, w)| (i, if w.st.spawned() { w.seq } else { None })),
        ));
        ready
    }

    fn step(&self, i: usize) -> Vec<Self> {
        let mut m = self.clone();
        let w = m.w[i];
        if w.st.spawned() && w.cancel {
            m.w[i] = QW_IDLE;
            return vec![m];
        }
        match w.st {
            QSt::SpawnedPut(v) => {
                m.w[i].seq = None;
                if m.shut {
                    m.finish(i, Out::ShutDown, false)
                } else if m.full() {
                    m.putters.push_back(i);
                    m.w[i].st = QSt::WaitPut(v);
                    vec![m]
                } else {
                    m.deliver(v);
                    m.finish(i, Out::Put(v), false)
                }
            }
            QSt::SpawnedGet => {
                m.w[i].seq = None;
                match m.take() {
                    Some(v) => m.finish(i, Out::Got(v), false),
                    None if m.shut => m.finish(i, Out::ShutDown, false),
                    None => {
                        m.getters.push_back(i);
                        m.w[i].st = QSt::WaitGet;
                        vec![m]
                    }
                }
            }
            QSt::SpawnedJoin => {
                m.w[i].seq = None;
                if m.unfinished == 0 {
                    m.finish(i, Out::Joined, false)
                } else {
                    m.w[i].st = QSt::WaitJoin;
                    vec![m]
                }
            }
            QSt::Claimed => {
                // Its claim used: it takes the next item; the room goes to a waiting put.
                m.w[i] = QW_IDLE;
                let v = m.pop().expect("a claim is backed by a buffered item");
                m.refill();
                m.finish(i, Out::Got(v), false)
            }
            QSt::GrantedPut(v) => m.finish(i, Out::Put(v), w.cancel),
            QSt::WokenJoin => m.finish(i, Out::Joined, w.cancel),
            QSt::Cancelling => m.finish(i, Out::Cancelled, false),
            QSt::Failing => m.finish(i, Out::ShutDown, w.cancel),
            QSt::Idle | QSt::WaitPut(_) | QSt::WaitGet | QSt::WaitJoin => {
                unreachable!("not ready")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct QueueObs {
    shown: Vec<Shown>,
    qsize: usize,
    empty: bool,
    full: bool,
    log: Vec<(usize, Out)>,
}

fn queue_obs(m: &QueueModel) -> QueueObs {
    QueueObs {
        shown: m
            .w
            .iter()
            .map(|w| match w.st {
                QSt::WaitPut(_) => Shown::WaitPut,
                QSt::WaitGet => Shown::WaitGet,
                QSt::WaitJoin => Shown::WaitJoin,
                _ => Shown::Idle,
            })
            .collect(),
        qsize: m.size(),
        empty: m.size() == 0,
        full: m.full(),
        log: m.log.clone(),
    }
}

/// The three queues behind one interface.
pub(crate) trait AnyQueue: Clone + 'static {
    const KIND: QKind;
    fn new(maxsize: usize) -> Self;
    fn put(&self, v: u32) -> impl StdFuture<Output = Result<(), Error>> + '_;
    fn get(&self) -> impl StdFuture<Output = Result<u32, Error>> + '_;
    fn join(&self) -> impl StdFuture<Output = Result<(), Error>> + '_;
    fn put_nowait(&self, v: u32) -> Result<(), QueueFull<u32>>;
    fn get_nowait(&self) -> Result<u32, QueueEmpty>;
    fn task_done(&self) -> Result<(), Error>;
    fn shutdown(&self, immediate: bool);
    fn qsize(&self) -> usize;
    fn empty(&self) -> bool;
    fn full(&self) -> bool;
    fn maxsize(&self) -> usize;
}

macro_rules! any_queue {
    ($t:ident, $kind:expr) => {
        impl AnyQueue for $t<u32> {
            const KIND: QKind = $kind;
            fn new(maxsize: usize) -> Self {
                $t::new(maxsize)
            }
            fn put(&self, v: u32) -> impl StdFuture<Output = Result<(), Error>> + '_ {
                $t::put(self, v)
            }
            fn get(&self) -> impl StdFuture<Output = Result<u32, Error>> + '_ {
                $t::get(self)
            }
            fn join(&self) -> impl StdFuture<Output = Result<(), Error>> + '_ {
                $t::join(self)
            }
            fn put_nowait(&self, v: u32) -> Result<(), QueueFull<u32>> {
                $t::put_nowait(self, v)
            }
            fn get_nowait(&self) -> Result<u32, QueueEmpty> {
                $t::get_nowait(self)
            }
            fn task_done(&self) -> Result<(), Error> {
                $t::task_done(self)
            }
            fn shutdown(&self, immediate: bool) {
                $t::shutdown(self, immediate)
            }
            fn qsize(&self) -> usize {
                $t::qsize(self)
            }
            fn empty(&self) -> bool {
                $t::empty(self)
            }
            fn full(&self) -> bool {
                $t::full(self)
            }
            fn maxsize(&self) -> usize {
                $t::maxsize(self)
            }
        }
    };
}

any_queue!(Queue, QKind::Fifo);
any_queue!(LifoQueue, QKind::Lifo);
any_queue!(PriorityQueue, QKind::Priority);

fn is_shut_down(e: &Error) -> bool {
    e.downcast_ref::<QueueShutDown>().is_some()
}

async fn put_worker<Q: AnyQueue>(q: Q, i: usize, v: u32, shared: SharedRef) -> Result<(), Error> {
    show(&shared, i, Shown::WaitPut);
    let out = match q.put(v).await {
        Ok(()) => Out::Put(v),
        Err(e) if e.is_cancelled() => Out::Cancelled,
        Err(e) if is_shut_down(&e) => Out::ShutDown,
        Err(e) => unexpected("put", &e),
    };
    record(&shared, i, out);
    Ok(())
}

async fn get_worker<Q: AnyQueue>(q: Q, i: usize, shared: SharedRef) -> Result<(), Error> {
    show(&shared, i, Shown::WaitGet);
    let out = match q.get().await {
        Ok(v) => Out::Got(v),
        Err(e) if e.is_cancelled() => Out::Cancelled,
        Err(e) if is_shut_down(&e) => Out::ShutDown,
        Err(e) => unexpected("get", &e),
    };
    record(&shared, i, out);
    Ok(())
}

async fn join_worker<Q: AnyQueue>(q: Q, i: usize, shared: SharedRef) -> Result<(), Error> {
    show(&shared, i, Shown::WaitJoin);
    let out = match q.join().await {
        Ok(()) => Out::Joined,
        Err(e) if e.is_cancelled() => Out::Cancelled,
        Err(e) => unexpected("join", &e),
    };
    record(&shared, i, out);
    Ok(())
}

/// Runs `ops` on a queue of `maxsize`, checking it against `QueueModel`.
async fn run_queue<Q: AnyQueue>(n: usize, maxsize: usize, ops: Vec<QueueOp>) -> Result<(), String> {
    let q = Q::new(maxsize);
    assert_eq!(q.maxsize(), maxsize);
    let mut ws = Workers::new(n);
    let mut cands = vec![QueueModel::new(Q::KIND, maxsize, n)];
    let mut history: Vec<String> = Vec::new();
    // Item bookkeeping, independent of the model: what went in and what came out.
    let mut all_put: Vec<u32> = Vec::new();
    let mut dropped_by_shutdown = 0usize;
    let mut accepted: Vec<u32> = Vec::new();
    let mut taken: Vec<u32> = Vec::new();
    let mut serial = 0u32;
    let mut fresh = |key: u32| {
        serial += 1;
        key * 1000 + serial
    };

    let observe = |q: &Q, ws: &Workers| QueueObs {
        shown: ws.shown(),
        qsize: q.qsize(),
        empty: q.empty(),
        full: q.full(),
        log: ws.log(),
    };

    for op in ops {
        let applied = match op {
            QueueOp::Put(i, key) => {
                let v = fresh(key);
                let qq = q.clone();
                let started = ws.start(i, |_, s| put_worker(qq, i, v, s));
                if started {
                    all_put.push(v);
                    history.push(format!("Put({i}, {v})"));
                    each(&mut cands, |c| c.start(i, QSt::SpawnedPut(v)));
                }
                false
            }
            QueueOp::Get(i) => {
                let qq = q.clone();
                ws.start(i, |_, s| get_worker(qq, i, s))
                    && each(&mut cands, |c| c.start(i, QSt::SpawnedGet))
            }
            QueueOp::Join(i) => {
                let qq = q.clone();
                ws.start(i, |_, s| join_worker(qq, i, s))
                    && each(&mut cands, |c| c.start(i, QSt::SpawnedJoin))
            }
            QueueOp::PutNowait(key) => {
                let v = fresh(key);
                history.push(format!("PutNowait({v})"));
                let real: PutRes = match q.put_nowait(v) {
                    Ok(()) => {
                        accepted.push(v);
                        Ok(())
                    }
                    Err(full) => {
                        let shut = full.is_shut_down();
                        let back = full.into_inner();
                        if back != v {
                            return Err(format!("QueueFull gave back {back}, not {v}"));
                        }
                        Err(shut)
                    }
                };
                apply_checked(&mut cands, &real, |c| c.put_nowait(v), &history)?;
                false
            }
            QueueOp::GetNowait => {
                history.push("GetNowait".into());
                let real: GetRes = q.get_nowait().map_err(|e| e.is_shut_down());
                if let Ok(v) = real {
                    taken.push(v);
                }
                apply_checked(&mut cands, &real, |c| c.get_nowait(), &history)?;
                false
            }
            QueueOp::TaskDone => {
                history.push("TaskDone".into());
                let real = match q.task_done() {
                    Ok(()) => Ok(()),
                    Err(e) if e.is_invalid_state() => Err(()),
                    Err(e) => return Err(format!("task_done: {e:?}")),
                };
                apply_checked(&mut cands, &real, |c| c.task_done(), &history)?;
                false
            }
            QueueOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |c| c.cancel(i)),
            QueueOp::Abort(i) => ws.abort(i) && each(&mut cands, |c| c.abort(i)),
            QueueOp::Shutdown(immediate) => {
                if immediate {
                    dropped_by_shutdown += q.qsize();
                }
                q.shutdown(immediate);
                each(&mut cands, |c| c.shutdown(immediate))
            }
            QueueOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&q, ws),
                    queue_obs,
                )
                .await?;
                false
            }
        };
        if applied {
            history.push(format!("{op:?}"));
        }
    }
    finish(
        &mut ws,
        &mut cands,
        &mut history,
        |ws| observe(&q, ws),
        queue_obs,
        |c, i| c.cancel(i),
    )
    .await?;
    // Drain, comparing the contents in order.
    history.push("drain".into());
    let mut drained = Vec::new();
    while let Ok(v) = q.get_nowait() {
        drained.push(v);
        assert!(drained.len() <= 10_000, "get_nowait never ran dry");
    }
    apply_checked(
        &mut cands,
        &drained,
        |c| {
            let mut out = Vec::new();
            while let Some(v) = c.take() {
                out.push(v);
            }
            out
        },
        &history,
    )?;
    // Every item accepted came out exactly once or was dropped by `shutdown(true)`;
    // none came out twice; an item came out without an `Ok` put only if its put worker
    // was cancelled or aborted after its value had moved into the queue.
    for (_, out) in ws.log() {
        match out {
            Out::Put(v) => accepted.push(v),
            Out::Got(v) => taken.push(v),
            _ => {}
        }
    }
    taken.extend(&drained);
    let mut seen = HashSet::new();
    let twice: Vec<u32> = taken.iter().copied().filter(|v| !seen.insert(*v)).collect();
    let lost: Vec<u32> = accepted
        .iter()
        .copied()
        .filter(|v| !seen.contains(v))
        .collect();
    let unasked: Vec<u32> = taken
        .iter()
        .copied()
        .filter(|v| !accepted.contains(v) && !all_put.contains(v))
        .collect();
    if !twice.is_empty() || lost.len() > dropped_by_shutdown || !unasked.is_empty() {
        return Err(format!(
            "items delivered twice {twice:?}, lost {lost:?} ({dropped_by_shutdown} dropped \
             by shutdown(true)), never put {unasked:?}, after {history:?}"
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn queue_matches_model(maxsize in 0..4usize, (n, ops) in case(queue_op, 40)) {
        let out = run_driver(run_queue::<Queue<u32>>(n, maxsize, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }

    #[test]
    fn lifo_queue_matches_model(maxsize in 0..4usize, (n, ops) in case(queue_op, 40)) {
        let out = run_driver(run_queue::<LifoQueue<u32>>(n, maxsize, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }

    #[test]
    fn priority_queue_matches_model(maxsize in 0..4usize, (n, ops) in case(queue_op, 40)) {
        let out = run_driver(run_queue::<PriorityQueue<u32>>(n, maxsize, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
