//! Y3 `Condition` over a `Mutex`: lock workers and condition waiters share the lock's
//! FIFO; a notified waiter re-acquires in its turn (also when cancelled, then returns
//! `Err(Cancelled)`); a notification that reached a waiter cancelled or dropped before
//! it ran passes to the next waiter.

use std::collections::VecDeque;

use evloop::sync::{Condition, Mutex};
use evloop::{Error, Future};
use proptest::prelude::*;

use crate::harness::*;

#[derive(Clone, Debug)]
enum CondOp {
    /// Worker takes the lock and holds it until told to release.
    Lock(usize),
    /// Worker takes the lock, `wait`s, and holds the re-acquired lock until told to
    /// release.
    Wait(usize),
    Release(usize),
    Cancel(usize),
    Abort(usize),
    /// The driver's `notify(n)` (after the loop settled): with `hold`, under the lock
    /// if it is free; else as it is (`Err(InvalidState)` when nobody holds it).
    Notify(usize, bool),
    Settle,
}

fn cond_op(n: usize) -> BoxedStrategy<CondOp> {
    prop_oneof![
        2 => (0..n).prop_map(CondOp::Lock),
        4 => (0..n).prop_map(CondOp::Wait),
        3 => (0..n).prop_map(CondOp::Release),
        2 => (0..n).prop_map(CondOp::Cancel),
        1 => (0..n).prop_map(CondOp::Abort),
        3 => ((1..3usize), any::<bool>()).prop_map(|(k, hold)| CondOp::Notify(k, hold)),
        2 => Just(CondOp::Settle),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum CSt {
    Idle,
    Spawned,
    /// In the lock's FIFO: first acquire (`reacquire` false) or after a wait.
    LockWaiting,
    /// Handed the lock, not run yet.
    Granted,
    /// Ran with the lock.
    Holding,
    /// In the condition's FIFO.
    CondWaiting,
    /// Notified, or cancelled while in the condition's FIFO; not run yet.
    Notified,
    /// Cancelled while waiting in its first acquire (out of the lock's FIFO): resumes
    /// with `Err(Cancelled)`. (One cancelled after the lock was handed to it stays
    /// `Granted`, and passes the lock on when it runs.)
    Cancelling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CW {
    st: CSt,
    /// A condition waiter (else a plain lock worker).
    cond: bool,
    /// Past `wait()`'s release of the lock: the lock wait is the re-acquire.
    reacquire: bool,
    /// The cancel was taken by the wait (it returns `Err(Cancelled)` once it holds the
    /// lock again).
    wait_cancelled: bool,
    /// Woken by a notification (not by a cancel), and not yet cancelled since: a
    /// cancel passes the notification on.
    notified: bool,
    cancel: bool,
    release: bool,
    seq: Option<u32>,
}

const CW_IDLE: CW = CW {
    st: CSt::Idle,
    cond: false,
    reacquire: false,
    wait_cancelled: false,
    notified: false,
    cancel: false,
    release: false,
    seq: None,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CondModel {
    /// Who holds the lock (handed or running with it).
    holder: Option<usize>,
    lock_waiters: VecDeque<usize>,
    cond_waiters: VecDeque<usize>,
    w: Vec<CW>,
    next_seq: u32,
    log: Vec<(usize, Out)>,
}

impl CondModel {
    fn new(n: usize) -> CondModel {
        CondModel {
            holder: None,
            lock_waiters: VecDeque::new(),
            cond_waiters: VecDeque::new(),
            w: vec![CW_IDLE; n],
            next_seq: 0,
            log: Vec::new(),
        }
    }

    fn start(&mut self, i: usize, cond: bool) {
        self.w[i] = CW {
            st: CSt::Spawned,
            cond,
            seq: Some(self.next_seq),
            ..CW_IDLE
        };
        self.next_seq += 1;
    }

    /// The lock is released: to the first waiter of its FIFO, or free.
    fn hand_over(&mut self) {
        self.holder = self.lock_waiters.pop_front();
        if let Some(j) = self.holder {
            self.w[j].st = CSt::Granted;
        }
    }

    /// Worker `i` asks for the lock (in its turn).
    fn want_lock(&mut self, i: usize) {
        if self.holder.is_none() && self.lock_waiters.is_empty() {
            self.holder = Some(i);
            self.got_lock(i);
        } else {
            self.lock_waiters.push_back(i);
            self.w[i].st = CSt::LockWaiting;
        }
    }

    /// Worker `i` runs with the lock just acquired.
    fn got_lock(&mut self, i: usize) {
        let w = self.w[i];
        if w.cond && !w.reacquire {
            // Acquired, then `wait`: into the condition's FIFO, the lock released.
            self.log.push((i, Out::Acquired));
            self.w[i].st = CSt::CondWaiting;
            self.w[i].reacquire = true;
            self.cond_waiters.push_back(i);
            self.hand_over();
        } else if w.cond && w.wait_cancelled {
            // Re-acquired after a cancel: `Err(Cancelled)`, the guard dropped with it.
            self.log.push((i, Out::Cancelled));
            self.w[i] = CW_IDLE;
            self.hand_over();
        } else {
            self.log
                .push((i, if w.cond { Out::Woke } else { Out::Acquired }));
            self.w[i].st = CSt::Holding;
        }
    }

    fn notify(&mut self, n: usize) {
        for _ in 0..n {
            let Some(j) = self.cond_waiters.pop_front() else {
                break;
            };
            self.w[j].st = CSt::Notified;
            self.w[j].notified = true;
        }
    }

    fn cancel(&mut self, i: usize) {
        self.w[i].cancel = true;
        match self.w[i].st {
            // The first acquire: `Err(Cancelled)` (a lock handed to it passes on).
            CSt::LockWaiting if !self.w[i].reacquire => {
                self.lock_waiters.retain(|&j| j != i);
                self.w[i].st = CSt::Cancelling;
            }
            // Handed the lock, not run: it stays the holder until its task runs, which
            // passes the lock on (asyncio; ARCHITECTURE "A permit", step 3).
            CSt::Granted if !self.w[i].reacquire => {}
            CSt::CondWaiting => {
                self.cond_waiters.retain(|&j| j != i);
                self.w[i].st = CSt::Notified;
                self.w[i].notified = false;
            }
            _ => {}
        }
    }

    fn abort(&mut self, i: usize) {
        let w = self.w[i];
        match w.st {
            CSt::LockWaiting => self.lock_waiters.retain(|&j| j != i),
            CSt::Granted | CSt::Holding => self.hand_over(),
            CSt::CondWaiting => self.cond_waiters.retain(|&j| j != i),
            _ => {}
        }
        // A notification it had got passes on: dropped before it ran, or while it
        // re-takes the lock (asyncio 3.13 notifies another waiter on any exit by
        // error from `wait`; since 277273f). Once it holds the lock, `wait` is over.
        let retaking = matches!(w.st, CSt::LockWaiting | CSt::Granted) && w.reacquire;
        if w.notified && (w.st == CSt::Notified || retaking) {
            self.notify(1);
        }
        self.w[i] = CW_IDLE;
    }

    /// A waiter in `wait()` sees its cancel: it will return `Err(Cancelled)` once it
    /// holds the lock again, and a notification it had consumed passes to the next
    /// waiter (asyncio: a cancel in `wait`, including its re-acquire, re-raises after
    /// the lock is re-taken).
    fn see_cancel(&mut self, i: usize) {
        self.w[i].wait_cancelled = true;
        if std::mem::take(&mut self.w[i].notified) {
            self.notify(1);
        }
    }

    fn locked(&self) -> bool {
        self.holder.is_some()
    }
}

impl Model for CondModel {
    fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.w.len())
            .filter(|&i| {
                let w = &self.w[i];
                match w.st {
                    CSt::Granted | CSt::Notified | CSt::Cancelling => true,
                    CSt::Holding => w.release || w.cancel,
                    // Cancelled while re-taking the lock: it sees the cancel (and passes
                    // its notification on), then keeps waiting for the lock.
                    CSt::LockWaiting => w.reacquire && w.cancel && !w.wait_cancelled,
                    _ => false,
                }
            })
            .collect();
        ready.extend(first_in_spawn_order(
            self.w
                .iter()
                .enumerate()
                .map(|(i, w)| (i, if w.st == CSt::Spawned { w.seq } else { None })),
        ));
        ready
    }

    fn step(&self, i: usize) -> Vec<Self> {
        let mut m = self.clone();
        let w = m.w[i];
        match w.st {
            CSt::Spawned if w.cancel => m.w[i] = CW_IDLE,
            CSt::Spawned => {
                m.w[i].seq = None;
                m.want_lock(i);
            }
            CSt::Cancelling => {
                m.log.push((i, Out::Cancelled));
                m.w[i] = CW_IDLE;
            }
            CSt::LockWaiting => m.see_cancel(i),
            CSt::Granted if !w.reacquire && w.cancel => {
                m.log.push((i, Out::Cancelled));
                m.w[i] = CW_IDLE;
                m.hand_over();
            }
            CSt::Granted => {
                if w.reacquire && w.cancel && !w.wait_cancelled {
                    m.see_cancel(i);
                }
                m.got_lock(i)
            }
            CSt::Notified => {
                if w.cancel {
                    m.see_cancel(i);
                }
                m.want_lock(i);
            }
            CSt::Holding => {
                m.log.push((i, Out::Released));
                m.w[i] = CW_IDLE;
                m.hand_over();
            }
            CSt::Idle | CSt::CondWaiting => unreachable!("not ready"),
        }
        vec![m]
    }
}

#[derive(Clone, Debug, PartialEq)]
struct CondObs {
    shown: Vec<Shown>,
    locked: bool,
    try_lock: bool,
    log: Vec<(usize, Out)>,
}

fn cond_obs(m: &CondModel) -> CondObs {
    CondObs {
        shown: m
            .w
            .iter()
            .map(|w| match w.st {
                CSt::LockWaiting | CSt::CondWaiting if w.reacquire => Shown::WaitCond,
                CSt::LockWaiting => Shown::Waiting,
                CSt::Holding => Shown::Holding,
                _ => Shown::Idle,
            })
            .collect(),
        locked: m.locked(),
        try_lock: !m.locked() && m.lock_waiters.is_empty(),
        log: m.log.clone(),
    }
}

async fn lock_worker(
    c: Condition<u32>,
    i: usize,
    release: Future<u8>,
    shared: SharedRef,
) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    match c.acquire().await {
        Ok(guard) => {
            record(&shared, i, Out::Acquired);
            show(&shared, i, Shown::Holding);
            let _ = release.await;
            drop(guard);
            record(&shared, i, Out::Released);
        }
        Err(e) if e.is_cancelled() => record(&shared, i, Out::Cancelled),
        Err(e) => record(&shared, i, unexpected("acquire", &e)),
    }
    Ok(())
}

async fn wait_worker(
    c: Condition<u32>,
    i: usize,
    release: Future<u8>,
    shared: SharedRef,
) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    let guard = match c.acquire().await {
        Ok(guard) => guard,
        Err(e) => {
            let out = if e.is_cancelled() {
                Out::Cancelled
            } else {
                unexpected("acquire", &e)
            };
            record(&shared, i, out);
            return Ok(());
        }
    };
    record(&shared, i, Out::Acquired);
    show(&shared, i, Shown::WaitCond);
    match c.wait(guard).await {
        Ok(guard) => {
            record(&shared, i, Out::Woke);
            show(&shared, i, Shown::Holding);
            let _ = release.await;
            drop(guard);
            record(&shared, i, Out::Released);
        }
        // The lock was re-acquired, and released with the error.
        Err(e) if e.is_cancelled() => record(&shared, i, Out::Cancelled),
        Err(e) => record(&shared, i, unexpected("wait", &e)),
    }
    Ok(())
}

async fn run_condition(n: usize, ops: Vec<CondOp>) -> Result<(), String> {
    let c = Condition::with_lock(Mutex::new(0u32));
    let mut ws = Workers::new(n);
    let mut cands = vec![CondModel::new(n)];
    let mut history: Vec<String> = Vec::new();
    let observe = |c: &Condition<u32>, ws: &Workers| {
        let try_lock = c.lock().try_lock().is_some();
        CondObs {
            shown: ws.shown(),
            locked: c.lock().locked(),
            try_lock,
            log: ws.log(),
        }
    };
    for op in ops {
        let applied = match op {
            CondOp::Lock(i) => {
                let cc = c.clone();
                ws.start(i, |r, s| lock_worker(cc, i, r, s))
                    && each(&mut cands, |m| m.start(i, false))
            }
            CondOp::Wait(i) => {
                let cc = c.clone();
                ws.start(i, |r, s| wait_worker(cc, i, r, s))
                    && each(&mut cands, |m| m.start(i, true))
            }
            CondOp::Release(i) => {
                ws.release(i, DROP) && each(&mut cands, |m| m.w[i].release = true)
            }
            CondOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |m| m.cancel(i)),
            CondOp::Abort(i) => ws.abort(i) && each(&mut cands, |m| m.abort(i)),
            CondOp::Notify(k, hold) => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&c, ws),
                    cond_obs,
                )
                .await?;
                history.push(format!("{op:?}"));
                let guard = if hold { c.lock().try_lock() } else { None };
                let real = c.notify(k).map_err(|e| e.is_invalid_state());
                drop(guard);
                apply_checked(
                    &mut cands,
                    &real,
                    |m| {
                        if m.locked() || hold {
                            m.notify(k);
                            Ok(())
                        } else {
                            Err(true)
                        }
                    },
                    &history,
                )?;
                false
            }
            CondOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&c, ws),
                    cond_obs,
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
        |ws| observe(&c, ws),
        cond_obs,
        |m, i| m.cancel(i),
    )
    .await
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn condition_matches_model((n, ops) in case(cond_op, 32)) {
        let out = run_driver(run_condition(n, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
