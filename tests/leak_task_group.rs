//! Bounded memory for `TaskGroup` (K1, Q8): every registration a group makes — its
//! `Notify` entry in each child, its `join` and `join_next` waits — is removed when the
//! group (or the wait) is dropped, and nothing keeps a dropped group's cell alive. So
//! 100 000 groups, each given pending children, with a `join` and a `join_next` polled
//! once and abandoned, then dropped (which cancels the children), leave the heap
//! exactly where it was once the cancelled children have ended.
//!
//! Method: as `tests/leak_sync_waits.rs` — this binary installs the counting
//! `#[global_allocator]` and holds a single test; everything runs in one task of one
//! runtime. Three warm-up batches (the loop's queues and slab reach their steady size),
//! a few iterations, the baseline, then 100 batches of 1 000 groups with the heap
//! compared every 10 batches, and the final count, which must equal the baseline.

mod common;

use std::time::Duration;

use common::counting_alloc::{Live, Watchdog, live};
use common::leak::{poll_once, settle};
use evloop::{Error, Runtime, TaskGroup, create_task, time::sleep, yield_now};

#[global_allocator]
static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;

const HOUR: Duration = Duration::from_secs(3600);
const BATCH: usize = 1000;
const BATCHES: usize = 100;
const CHECKPOINT: usize = 10;
const WARM_UP: usize = 3;

/// One group: two children that sleep an hour (one started, one cancelled before its
/// first poll), `join` and `join_next` each polled once (so both register) and
/// dropped, then the group dropped.
async fn one_group() {
    let tg = TaskGroup::new();
    tg.spawn(sleep(HOUR)).unwrap();
    yield_now().await.unwrap(); // the first child starts and arms its timer
    tg.spawn(sleep(HOUR)).unwrap();
    assert!(!poll_once(tg.join()).await, "join must stay pending");
    assert!(
        !poll_once(tg.join_next()).await,
        "join_next must stay pending"
    );
    drop(tg);
}

async fn batch() {
    for _ in 0..BATCH {
        one_group().await;
    }
    settle().await; // the cancelled children end and are freed
}

async fn scenario() -> (Live, Live, usize) {
    for _ in 0..WARM_UP {
        batch().await;
    }
    settle().await;
    let baseline = live();
    let mut batches = 0;
    while batches < BATCHES {
        for _ in 0..CHECKPOINT {
            batch().await;
        }
        batches += CHECKPOINT;
        if live() != baseline {
            break;
        }
    }
    (baseline, live(), batches * BATCH)
}

#[test]
fn dropped_groups_with_pending_children_leave_the_heap_at_baseline() {
    let watchdog = Watchdog::arm("leak_task_group", Duration::from_secs(300));
    let rt = Runtime::new().expect("runtime");
    let (baseline, after, groups) = rt
        .block_on(async { create_task(async { Ok::<_, Error>(scenario().await) }).await })
        .unwrap();
    drop(rt);
    drop(watchdog);
    println!("{groups} groups: baseline {baseline:?}, after {after:?}");
    assert_eq!(
        after,
        baseline,
        "{} allocations / {} bytes left after {groups} groups",
        after.allocations - baseline.allocations,
        after.bytes - baseline.bytes
    );
}
