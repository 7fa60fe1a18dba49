//! Y1 `Mutex` and Y4 `Semaphore` / `BoundedSemaphore`: one model of permits handed
//! over in FIFO order (the lock is a semaphore of one permit nobody adds to).

use std::collections::VecDeque;
use std::future::Future as StdFuture;

use evloop::sync::{BoundedSemaphore, Mutex, Semaphore};
use evloop::{Error, Future};
use proptest::prelude::*;

use crate::harness::*;

// ---------------------------------------------------------------------------------------
// Y1 Mutex.

#[derive(Clone, Debug)]
enum LockOp {
    /// Worker starts `lock()`; holds the guard once it has it.
    Acquire(usize),
    /// Worker drops its guard (as soon as it holds it).
    Release(usize),
    Cancel(usize),
    /// `abort()`: the pending lock future, or the guard, is dropped at once.
    Abort(usize),
    Settle,
}

fn lock_op(n: usize) -> BoxedStrategy<LockOp> {
    prop_oneof![
        4 => (0..n).prop_map(LockOp::Acquire),
        3 => (0..n).prop_map(LockOp::Release),
        2 => (0..n).prop_map(LockOp::Cancel),
        1 => (0..n).prop_map(LockOp::Abort),
        3 => Just(LockOp::Settle),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LSt {
    Idle,
    /// Created, not polled yet.
    Spawned,
    /// In the waiter list.
    Waiting,
    /// Handed the lock / a permit, not run yet.
    Granted,
    /// Ran with the guard / permit.
    Holding,
    /// Cancelled while waiting: resumes with `Err(Cancelled)`.
    Cancelling,
    /// Handed the lock / a permit, then cancelled before it ran: the grant stays its
    /// own until its task runs, which passes it on and returns `Err(Cancelled)`
    /// (asyncio; ARCHITECTURE "A permit", step 3).
    CancellingGranted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct LW {
    st: LSt,
    cancel: bool,
    /// `Some(DROP | FORGET)` once told to release.
    release: Option<u8>,
    seq: Option<u32>,
}

const LW_IDLE: LW = LW {
    st: LSt::Idle,
    cancel: false,
    release: None,
    seq: None,
};

/// One model for the lock (1 permit, nobody can `release()` it from outside) and the
/// semaphores: `avail` permits, FIFO `waiters`, a permit handed to the first waiter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PermitModel {
    w: Vec<LW>,
    avail: usize,
    waiters: VecDeque<usize>,
    next_seq: u32,
    /// Permits forgotten and not yet given back by the driver's `release()`.
    forgotten: usize,
    log: Vec<(usize, Out)>,
}

impl PermitModel {
    fn new(n: usize, permits: usize) -> PermitModel {
        PermitModel {
            w: vec![LW_IDLE; n],
            avail: permits,
            waiters: VecDeque::new(),
            next_seq: 0,
            forgotten: 0,
            log: Vec::new(),
        }
    }

    /// A permit comes back: to the first waiter, or to the pool.
    fn hand_over(&mut self) {
        match self.waiters.pop_front() {
            Some(j) => self.w[j].st = LSt::Granted,
            None => self.avail += 1,
        }
    }

    fn start(&mut self, i: usize) {
        self.w[i] = LW {
            st: LSt::Spawned,
            cancel: false,
            release: None,
            seq: Some(self.next_seq),
        };
        self.next_seq += 1;
    }

    fn release(&mut self, i: usize, how: u8) {
        self.w[i].release = Some(how);
    }

    fn cancel(&mut self, i: usize) {
        self.w[i].cancel = true;
        match self.w[i].st {
            LSt::Waiting => {
                self.waiters.retain(|&j| j != i);
                self.w[i].st = LSt::Cancelling;
            }
            // Handed the permit but not run: it passes to the next waiter when the
            // task runs, not now.
            LSt::Granted => self.w[i].st = LSt::CancellingGranted,
            _ => {}
        }
    }

    fn abort(&mut self, i: usize) {
        match self.w[i].st {
            LSt::Waiting => self.waiters.retain(|&j| j != i),
            // The coroutine is dropped with its guard / permit (even one it was told
            // to forget but did not yet): released.
            LSt::Granted | LSt::CancellingGranted | LSt::Holding => self.hand_over(),
            _ => {}
        }
        self.w[i] = LW_IDLE;
    }

    /// The driver's `Semaphore::release()`.
    fn add(&mut self) {
        self.hand_over();
    }

    fn shown(&self) -> Vec<Shown> {
        self.w
            .iter()
            .map(|w| match w.st {
                LSt::Idle => Shown::Idle,
                LSt::Waiting => Shown::Waiting,
                LSt::Holding => Shown::Holding,
                // Not quiescent: never observed.
                _ => Shown::Idle,
            })
            .collect()
    }
}

impl Model for PermitModel {
    fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.w.len())
            .filter(|&i| {
                let w = &self.w[i];
                match w.st {
                    LSt::Granted | LSt::Cancelling | LSt::CancellingGranted => true,
                    LSt::Holding => w.release.is_some() || w.cancel,
                    _ => false,
                }
            })
            .collect();
        let spawned = self
            .w
            .iter()
            .enumerate()
            .map(|(i, w)| (i, if w.st == LSt::Spawned { w.seq } else { None }));
        ready.extend(first_in_spawn_order(spawned));
        ready
    }

    fn step(&self, i: usize) -> Vec<Self> {
        let mut m = self.clone();
        let w = m.w[i];
        match w.st {
            LSt::Spawned if w.cancel => m.w[i] = LW_IDLE,
            LSt::Spawned => {
                m.w[i].seq = None;
                if m.avail > 0 && m.waiters.is_empty() {
                    m.avail -= 1;
                    m.log.push((i, Out::Acquired));
                    m.w[i].st = LSt::Holding;
                } else {
                    m.waiters.push_back(i);
                    m.w[i].st = LSt::Waiting;
                }
            }
            LSt::Granted => {
                m.log.push((i, Out::Acquired));
                m.w[i].st = LSt::Holding;
            }
            LSt::Cancelling => {
                m.log.push((i, Out::Cancelled));
                m.w[i] = LW_IDLE;
            }
            LSt::CancellingGranted => {
                m.hand_over();
                m.log.push((i, Out::Cancelled));
                m.w[i] = LW_IDLE;
            }
            LSt::Holding => {
                m.w[i] = LW_IDLE;
                let mut released = m.clone();
                released.log.push((i, Out::Released));
                released.hand_over();
                if w.release != Some(FORGET) {
                    return vec![released];
                }
                m.log.push((i, Out::Forgot));
                m.forgotten += 1;
                if w.cancel {
                    // Told to forget and cancelled before it ran: the worker's
                    // `release.await` may see either.
                    return vec![m, released];
                }
            }
            LSt::Idle | LSt::Waiting => unreachable!("not ready"),
        }
        vec![m]
    }
}

#[derive(Clone, Debug, PartialEq)]
struct LockObs {
    shown: Vec<Shown>,
    locked: bool,
    try_lock: bool,
    log: Vec<(usize, Out)>,
}

fn lock_obs(m: &PermitModel) -> LockObs {
    LockObs {
        shown: m.shown(),
        locked: m.avail == 0,
        try_lock: m.avail == 1 && m.waiters.is_empty(),
        log: m.log.clone(),
    }
}

async fn lock_worker(
    m: Mutex<u32>,
    i: usize,
    release: Future<u8>,
    shared: SharedRef,
) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    match m.lock().await {
        Ok(mut guard) => {
            record(&shared, i, Out::Acquired);
            show(&shared, i, Shown::Holding);
            *guard += 1;
            // Cancelled here: the guard is dropped all the same.
            let _ = release.await;
            drop(guard);
            record(&shared, i, Out::Released);
        }
        Err(e) if e.is_cancelled() => record(&shared, i, Out::Cancelled),
        Err(e) => record(&shared, i, unexpected("lock", &e)),
    }
    Ok(())
}

async fn run_lock(n: usize, ops: Vec<LockOp>) -> Result<(), String> {
    let m = Mutex::new(0u32);
    let mut ws = Workers::new(n);
    let mut cands = vec![PermitModel::new(n, 1)];
    let mut history: Vec<String> = Vec::new();

    let observe = |m: &Mutex<u32>, ws: &Workers| {
        let try_lock = m.try_lock().is_some();
        LockObs {
            shown: ws.shown(),
            locked: m.locked(),
            try_lock,
            log: ws.log(),
        }
    };

    for op in ops {
        let applied = match op {
            LockOp::Acquire(i) => {
                let mm = m.clone();
                ws.start(i, |r, s| lock_worker(mm, i, r, s)) && each(&mut cands, |c| c.start(i))
            }
            LockOp::Release(i) => ws.release(i, DROP) && each(&mut cands, |c| c.release(i, DROP)),
            LockOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |c| c.cancel(i)),
            LockOp::Abort(i) => ws.abort(i) && each(&mut cands, |c| c.abort(i)),
            LockOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&m, ws),
                    lock_obs,
                )
                .await?;
                false
            }
        };
        if applied {
            history.push(format!("{op:?}"));
        }
    }
    // Finale: settle, cancel everyone, settle: the lock ends free.
    finish(
        &mut ws,
        &mut cands,
        &mut history,
        |ws| observe(&m, ws),
        lock_obs,
        |c, i| c.cancel(i),
    )
    .await?;
    let acquired = ws.log().iter().filter(|(_, o)| *o == Out::Acquired).count() as u32;
    let value = *m
        .try_lock()
        .ok_or_else(|| "the lock is still held at the end".to_string())?;
    if value != acquired {
        return Err(format!(
            "the guarded counter is {value}, but {acquired} guards were granted"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Y4 Semaphore and BoundedSemaphore.

#[derive(Clone, Debug)]
pub(crate) enum SemOp {
    Acquire(usize),
    /// Worker drops its permit (as soon as it holds one).
    Release(usize),
    /// Worker `forget()`s its permit.
    Forget(usize),
    Cancel(usize),
    Abort(usize),
    /// The driver's `release()`.
    Add,
    Settle,
}

fn sem_op(n: usize) -> BoxedStrategy<SemOp> {
    prop_oneof![
        4 => (0..n).prop_map(SemOp::Acquire),
        3 => (0..n).prop_map(SemOp::Release),
        1 => (0..n).prop_map(SemOp::Forget),
        2 => (0..n).prop_map(SemOp::Cancel),
        1 => (0..n).prop_map(SemOp::Abort),
        2 => Just(SemOp::Add),
        3 => Just(SemOp::Settle),
    ]
    .boxed()
}

/// A permit, type-erased: called with `FORGET` it is forgotten, else dropped.
type Permit<'a> = Box<dyn FnOnce(u8) + 'a>;

/// `Semaphore` and `BoundedSemaphore` behind one interface.
pub(crate) trait AnySem: Clone + 'static {
    fn new(permits: usize) -> Self;
    fn acquire(&self) -> impl StdFuture<Output = Result<Permit<'_>, Error>> + '_;
    fn try_acquire(&self) -> bool;
    /// `release()`; `Err` as `BoundedSemaphore`'s.
    fn add(&self) -> Result<(), Error>;
    fn available(&self) -> usize;
    fn locked(&self) -> bool;
    const BOUNDED: bool;
}

macro_rules! any_sem {
    ($t:ty, $bounded:expr, |$s:ident| $add:expr) => {
        impl AnySem for $t {
            const BOUNDED: bool = $bounded;
            fn new(permits: usize) -> Self {
                <$t>::new(permits)
            }
            fn acquire(&self) -> impl StdFuture<Output = Result<Permit<'_>, Error>> + '_ {
                let fut = <$t>::acquire(self);
                async move {
                    let permit = fut.await?;
                    Ok(Box::new(move |how: u8| {
                        if how == FORGET {
                            permit.forget()
                        } else {
                            drop(permit)
                        }
                    }) as Permit<'_>)
                }
            }
            fn try_acquire(&self) -> bool {
                <$t>::try_acquire(self).is_some()
            }
            fn add(&self) -> Result<(), Error> {
                let $s = self;
                $add
            }
            fn available(&self) -> usize {
                <$t>::available(self)
            }
            fn locked(&self) -> bool {
                <$t>::locked(self)
            }
        }
    };
}

any_sem!(Semaphore, false, |s| {
    s.release();
    Ok(())
});
any_sem!(BoundedSemaphore, true, |s| s.release());

#[derive(Clone, Debug, PartialEq)]
struct SemObs {
    shown: Vec<Shown>,
    available: usize,
    locked: bool,
    try_acquire: bool,
    log: Vec<(usize, Out)>,
}

fn sem_obs(m: &PermitModel) -> SemObs {
    SemObs {
        shown: m.shown(),
        available: m.avail,
        locked: m.avail == 0 || !m.waiters.is_empty(),
        try_acquire: m.avail > 0 && m.waiters.is_empty(),
        log: m.log.clone(),
    }
}

async fn sem_worker<S: AnySem>(
    s: S,
    i: usize,
    release: Future<u8>,
    shared: SharedRef,
) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    match s.acquire().await {
        Ok(permit) => {
            record(&shared, i, Out::Acquired);
            show(&shared, i, Shown::Holding);
            // Cancelled while holding: the permit is dropped.
            let how = release.await.unwrap_or(DROP);
            permit(how);
            record(
                &shared,
                i,
                if how == FORGET {
                    Out::Forgot
                } else {
                    Out::Released
                },
            );
        }
        Err(e) if e.is_cancelled() => record(&shared, i, Out::Cancelled),
        Err(e) => record(&shared, i, unexpected("acquire", &e)),
    }
    Ok(())
}

pub(crate) async fn run_sem<S: AnySem>(
    n: usize,
    permits: usize,
    ops: Vec<SemOp>,
) -> Result<(), String> {
    let s = S::new(permits);
    let mut ws = Workers::new(n);
    let mut cands = vec![PermitModel::new(n, permits)];
    let mut history: Vec<String> = Vec::new();

    let observe = |s: &S, ws: &Workers| {
        let (available, locked) = (s.available(), s.locked());
        SemObs {
            shown: ws.shown(),
            available,
            locked,
            try_acquire: s.try_acquire(), // dropped at once: no waiter (it succeeded)
            log: ws.log(),
        }
    };

    for op in ops {
        let applied = match op {
            SemOp::Acquire(i) => {
                let ss = s.clone();
                ws.start(i, |r, sh| sem_worker(ss, i, r, sh)) && each(&mut cands, |c| c.start(i))
            }
            SemOp::Release(i) => ws.release(i, DROP) && each(&mut cands, |c| c.release(i, DROP)),
            SemOp::Forget(i) => ws.release(i, FORGET) && each(&mut cands, |c| c.release(i, FORGET)),
            SemOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |c| c.cancel(i)),
            SemOp::Abort(i) => ws.abort(i) && each(&mut cands, |c| c.abort(i)),
            SemOp::Add if !S::BOUNDED => {
                s.add().map_err(|e| format!("Semaphore::release: {e:?}"))?;
                each(&mut cands, |c| c.add())
            }
            SemOp::Add => {
                // BoundedSemaphore: only where the outcome is the API's (settled first):
                // a permit that was forgotten comes back (Ok), or every permit is
                // available already (Err). An extra release while permits are held
                // would make their later drop exceed the bound.
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&s, ws),
                    sem_obs,
                )
                .await?;
                let c = &cands[0];
                if c.forgotten > 0 || c.avail >= permits {
                    let real = s.add().map_err(|e| e.is_invalid_state());
                    history.push("Add".into());
                    apply_checked(
                        &mut cands,
                        &real,
                        |c| {
                            if c.forgotten > 0 {
                                c.forgotten -= 1;
                                c.add();
                                Ok(())
                            } else {
                                Err(true)
                            }
                        },
                        &history,
                    )?;
                }
                false
            }
            SemOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&s, ws),
                    sem_obs,
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
        |ws| observe(&s, ws),
        sem_obs,
        |c, i| c.cancel(i),
    )
    .await?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutex_matches_model((n, ops) in case(lock_op, 32)) {
        let out = run_driver(run_lock(n, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }

    #[test]
    fn semaphore_matches_model(permits in 0..3usize, (n, ops) in case(sem_op, 32)) {
        let out = run_driver(run_sem::<Semaphore>(n, permits, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }

    #[test]
    fn bounded_semaphore_matches_model(permits in 1..3usize, (n, ops) in case(sem_op, 32)) {
        let out = run_driver(run_sem::<BoundedSemaphore>(n, permits, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
