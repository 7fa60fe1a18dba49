//! Y2 `Event`.

use evloop::Error;
use evloop::sync::Event;
use proptest::prelude::*;

use crate::harness::*;

// ---------------------------------------------------------------------------------------
// Y2 Event.

#[derive(Clone, Debug)]
enum EventOp {
    Wait(usize),
    Set,
    Clear,
    Cancel(usize),
    Abort(usize),
    Settle,
}

fn event_op(n: usize) -> BoxedStrategy<EventOp> {
    prop_oneof![
        4 => (0..n).prop_map(EventOp::Wait),
        2 => Just(EventOp::Set),
        2 => Just(EventOp::Clear),
        2 => (0..n).prop_map(EventOp::Cancel),
        1 => (0..n).prop_map(EventOp::Abort),
        3 => Just(EventOp::Settle),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ESt {
    Idle,
    Spawned,
    Waiting,
    /// Woken by `set()`, not run yet: returns `Ok` even if cleared meanwhile.
    Woken,
    Cancelling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct EW {
    st: ESt,
    cancel: bool,
    seq: Option<u32>,
}

const EW_IDLE: EW = EW {
    st: ESt::Idle,
    cancel: false,
    seq: None,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EventModel {
    w: Vec<EW>,
    is_set: bool,
    next_seq: u32,
    log: Vec<(usize, Out)>,
}

impl EventModel {
    fn start(&mut self, i: usize) {
        self.w[i] = EW {
            st: ESt::Spawned,
            cancel: false,
            seq: Some(self.next_seq),
        };
        self.next_seq += 1;
    }

    fn set(&mut self) {
        self.is_set = true;
        for w in &mut self.w {
            if w.st == ESt::Waiting {
                w.st = ESt::Woken;
            }
        }
    }

    fn cancel(&mut self, i: usize) {
        self.w[i].cancel = true;
        if self.w[i].st == ESt::Waiting {
            self.w[i].st = ESt::Cancelling;
        }
    }
}

impl Model for EventModel {
    fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.w.len())
            .filter(|&i| matches!(self.w[i].st, ESt::Woken | ESt::Cancelling))
            .collect();
        ready.extend(first_in_spawn_order(
            self.w
                .iter()
                .enumerate()
                .map(|(i, w)| (i, if w.st == ESt::Spawned { w.seq } else { None })),
        ));
        ready
    }

    fn step(&self, i: usize) -> Vec<Self> {
        let mut m = self.clone();
        let w = m.w[i];
        match w.st {
            ESt::Spawned if w.cancel => m.w[i] = EW_IDLE,
            ESt::Spawned if m.is_set => {
                m.log.push((i, Out::Woke));
                m.w[i] = EW_IDLE;
            }
            ESt::Spawned => {
                m.w[i].st = ESt::Waiting;
                m.w[i].seq = None;
            }
            ESt::Woken => {
                m.w[i] = EW_IDLE;
                if w.cancel {
                    // Woken, then cancelled before it ran: either is the API's.
                    let mut other = m.clone();
                    m.log.push((i, Out::Woke));
                    other.log.push((i, Out::Cancelled));
                    return vec![m, other];
                }
                m.log.push((i, Out::Woke));
            }
            ESt::Cancelling => {
                m.log.push((i, Out::Cancelled));
                m.w[i] = EW_IDLE;
            }
            ESt::Idle | ESt::Waiting => unreachable!("not ready"),
        }
        vec![m]
    }
}

#[derive(Clone, Debug, PartialEq)]
struct EventObs {
    shown: Vec<Shown>,
    is_set: bool,
    log: Vec<(usize, Out)>,
}

fn event_obs(m: &EventModel) -> EventObs {
    EventObs {
        shown: m
            .w
            .iter()
            .map(|w| {
                if w.st == ESt::Waiting {
                    Shown::Waiting
                } else {
                    Shown::Idle
                }
            })
            .collect(),
        is_set: m.is_set,
        log: m.log.clone(),
    }
}

async fn event_worker(e: Event, i: usize, shared: SharedRef) -> Result<(), Error> {
    show(&shared, i, Shown::Waiting);
    let out = match e.wait().await {
        Ok(()) => Out::Woke,
        Err(err) if err.is_cancelled() => Out::Cancelled,
        Err(err) => unexpected("wait", &err),
    };
    record(&shared, i, out);
    Ok(())
}

async fn run_event(n: usize, ops: Vec<EventOp>) -> Result<(), String> {
    let e = Event::new();
    let mut ws = Workers::new(n);
    let mut cands = vec![EventModel {
        w: vec![EW_IDLE; n],
        is_set: false,
        next_seq: 0,
        log: Vec::new(),
    }];
    let mut history: Vec<String> = Vec::new();
    let observe = |e: &Event, ws: &Workers| EventObs {
        shown: ws.shown(),
        is_set: e.is_set(),
        log: ws.log(),
    };
    for op in ops {
        let applied = match op {
            EventOp::Wait(i) => {
                let ee = e.clone();
                ws.start(i, |_, s| event_worker(ee, i, s)) && each(&mut cands, |c| c.start(i))
            }
            EventOp::Set => {
                e.set();
                each(&mut cands, |c| c.set())
            }
            EventOp::Clear => {
                e.clear();
                each(&mut cands, |c| c.is_set = false)
            }
            EventOp::Cancel(i) => ws.cancel(i) && each(&mut cands, |c| c.cancel(i)),
            EventOp::Abort(i) => ws.abort(i) && each(&mut cands, |c| c.w[i] = EW_IDLE),
            EventOp::Settle => {
                settle_and_compare(
                    &mut ws,
                    &mut cands,
                    &mut history,
                    |ws| observe(&e, ws),
                    event_obs,
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
        |ws| observe(&e, ws),
        event_obs,
        |c, i| c.cancel(i),
    )
    .await?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn event_matches_model((n, ops) in case(event_op, 32)) {
        let out = run_driver(run_event(n, ops));
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
