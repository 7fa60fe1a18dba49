//! Y5 `Barrier`.

use evloop::Error;
use evloop::sync::{Barrier, BrokenBarrierError};
use proptest::prelude::*;

use crate::harness::*;

#[derive(Clone, Debug)]
enum BarrierOp {
    Wait(usize),
    Cancel(usize),
    /// `abort()` of the worker's task: its wait future is dropped at once.
    Abort(usize),
    /// `Barrier::reset()`.
    Reset,
    /// `Barrier::abort()`.
    Break,
    Settle,
}

fn barrier_op(n: usize) -> BoxedStrategy<BarrierOp> {
    prop_oneof![
        6 => (0..n).prop_map(BarrierOp::Wait),
        2 => (0..n).prop_map(BarrierOp::Cancel),
        1 => (0..n).prop_map(BarrierOp::Abort),
        1 => Just(BarrierOp::Reset),
        1 => Just(BarrierOp::Break),
        3 => Just(BarrierOp::Settle),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BSt {
    Idle,
    Spawned,
    Waiting,
    /// The round completed with this arrival index; not run yet.
    Released(usize),
    /// Reset or aborted while waiting; not run yet.
    Failing,
    /// Cancelled while waiting, not run yet: still a party of the round (asyncio
    /// counts it until its task runs and leaves).
    Cancelling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BW {
    st: BSt,
    cancel: bool,
    seq: Option<u32>,
}

const BW_IDLE: BW = BW {
    st: BSt::Idle,
    cancel: false,
    seq: None,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BarrierModel {
    parties: usize,
    /// This round's waiters in arrival order.
    waiters: Vec<usize>,
    broken: bool,
    w: Vec<BW>,
    next_seq: u32,
    log: Vec<(usize, Out)>,
}

impl BarrierModel {
    fn new(n: usize, parties: usize) -> BarrierModel {
        BarrierModel {
            parties,
            waiters: Vec::new(),
            broken: false,
            w: vec![BW_IDLE; n],
            next_seq: 0,
            log: Vec::new(),
        }
    }

    fn start(&mut self, i: usize) {
        self.w[i] = BW {
            st: BSt::Spawned,
            cancel: false,
            seq: Some(self.next_seq),
        };
        self.next_seq += 1;
    }

    fn break_waiters(&mut self, broken: bool) {
        self.broken = broken;
        for j in std::mem::take(&mut self.waiters) {
            self.w[j].st = BSt::Failing;
        }
    }

    fn cancel(&mut self, i: usize) {
        self.w[i].cancel = true;
        if self.w[i].st == BSt::Waiting {
            // It stays in the round (and in `n_waiting`) until its task runs.
            self.w[i].st = BSt::Cancelling;
        }
    }

    fn abort(&mut self, i: usize) {
        if matches!(self.w[i].st, BSt::Waiting | BSt::Cancelling) {
            self.waiters.retain(|&j| j != i);
        }
        self.w[i] = BW_IDLE;
    }

    fn finish(mut self, i: usize, out: Out, maybe_cancelled: bool) -> Vec<Self> {
        self.w[i] = BW_IDLE;
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

impl Model for BarrierModel {
    fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.w.len())
            .filter(|&i| {
                let w = &self.w[i];
                matches!(w.st, BSt::Released(_) | BSt::Failing | BSt::Cancelling)
            })
            .collect();
        ready.extend(first_in_spawn_order(
            self.w
                .iter()
                .enumerate()
                .map(|(i, w)| (i, if w.st == BSt::Spawned { w.seq } else { None })),
        ));
        ready
    }

    fn step(&self, i: usize) -> Vec<Self> {
        let mut m = self.clone();
        let w = m.w[i];
        match w.st {
            BSt::Spawned if w.cancel => {
                m.w[i] = BW_IDLE;
                vec![m]
            }
            BSt::Spawned if m.broken => m.finish(i, Out::Broken, false),
            BSt::Spawned if m.waiters.len() + 1 < m.parties => {
                m.waiters.push(i);
                m.w[i].st = BSt::Waiting;
                m.w[i].seq = None;
                vec![m]
            }
            BSt::Spawned => {
                // The last arrival trips the round: indices in arrival order.
                for (k, j) in std::mem::take(&mut m.waiters).into_iter().enumerate() {
                    m.w[j].st = BSt::Released(k);
                }
                let last = m.parties - 1;
                m.finish(i, Out::Index(last), false)
            }
            // Released, or broken, then cancelled before it ran: either is the API's.
            BSt::Released(k) => m.finish(i, Out::Index(k), w.cancel),
            BSt::Failing => m.finish(i, Out::Broken, w.cancel),
            BSt::Cancelling => {
                m.waiters.retain(|&j| j != i);
                m.finish(i, Out::Cancelled, false)
            }
            BSt::Idle | BSt::Waiting => unreachable!("not ready"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct BarrierObs {
    shown: Vec<Shown>,
    n_waiting: usize,
    broken: bool,
    log: Vec<(usize, Out)>,
}

fn barrier_obs(m: &BarrierModel) -> BarrierObs {
    BarrierObs {
        shown: m
            .w
            .iter()
            .map(|w| {
                if matches!(w.st, BSt::Waiting | BSt::Cancelling) {
                    Shown::Waiting
                } else {
                    Shown::Idle
                }
            })
            .collect(),
        n_waiting: m.waiters.len(),
        broken: m.broken,
        log: m.log.clone(),
    }
}

async fn barrier_worker(b: Barrier, i: usize, shared: SharedRef) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    let out = match b.wait().await {
        Ok(index) => Out::Index(index),
        Err(e) if e.is_cancelled() => Out::Cancelled,
        Err(e) if e.downcast_ref::<BrokenBarrierError>().is_some() => Out::Broken,
        Err(e) => unexpected("wait", &e),
    };
    record(&shared, i, out);
    Ok(())
}

async fn run_barrier(n: usize, parties: usize, ops: Vec<BarrierOp>) -> Result<(), String> {
    let b = Barrier::new(parties);
    assert_eq!(b.parties(), parties);
    let mut ws = Workers::new(n);
    let mut cands = vec![BarrierModel::new(n, parties)];
    let mut history: Vec<String> = Vec::new();
    let observe = |b: &Barrier, ws: &Workers| BarrierObs {
        shown: ws.shown(),
        n_waiting: b.n_waiting(),
        broken: b.broken(),
        log: ws.log(),
    };
    for op in ops {
        let applied = match op {
            BarrierOp::Wait(i) => {
                let bb = b.clone();
                ws.start(i, |_, s| barrier_worker(bb, i, s)) && each(&mut cands, |c| c.start(i))
            }
            BarrierOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |c| c.cancel(i)),
            BarrierOp::Abort(i) => ws.abort(i) && each(&mut cands, |c| c.abort(i)),
            BarrierOp::Reset => {
                b.reset();
                each(&mut cands, |c| c.break_waiters(false))
            }
            BarrierOp::Break => {
                b.abort();
                each(&mut cands, |c| c.break_waiters(true))
            }
            BarrierOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&b, ws),
                    barrier_obs,
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
        |ws| observe(&b, ws),
        barrier_obs,
        |c, i| c.cancel(i),
    )
    .await
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn barrier_matches_model(parties in 1..5usize, (n, ops) in case(barrier_op, 32)) {
        let out = run_driver(run_barrier(n, parties, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
