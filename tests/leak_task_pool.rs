//! Bounded, reused memory for task cells (`task::pool`, issue 17). A loop keeps the
//! allocations of finished tasks for its next tasks while it is busy, gives them back
//! when it goes to sleep, and frees all of them when it is dropped:
//!
//! - a second burst of 1 000 tasks, while all 1 000 are alive, holds no more
//!   allocations than the first burst left behind (the cells come from the pool);
//! - after both bursts the heap is exactly where the first one left it;
//! - a 1 ms sleep (a blocking poll) gives all but `IDLE_BYTES` (64 KiB) of the pooled
//!   cells back;
//! - dropping the runtime leaves the heap where it was before the runtime existed (after
//!   a first runtime has been created and dropped, so one-time initialisation is not
//!   counted).
//!
//! Method: this binary installs the counting `#[global_allocator]` and holds a single
//! test (parallel tests would disturb the counts).

mod common;

use std::time::Duration;

use common::counting_alloc::{Live, Watchdog, live};
use evloop::{Runtime, create_task, time::sleep};

#[global_allocator]
static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;

const BURST: usize = 1000;
/// The counts are process-wide, and the test harness's main thread allocates and frees a
/// few objects (under 1 KiB) while the test starts: comparisons allow this many
/// allocations either way. Every property checked moves hundreds.
const SLACK: isize = 16;

/// Spawns `BURST` tasks, reads the heap while all of them are alive, awaits them.
async fn burst() -> Live {
    let tasks: Vec<_> = (0..BURST)
        .map(|i| create_task(async move { Ok(i) }))
        .collect();
    let during = live();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), i);
    }
    during
}

#[test]
fn task_cells_are_reused_while_busy_returned_when_idle_and_freed_with_the_loop() {
    let _watchdog = Watchdog::arm("leak_task_pool", Duration::from_secs(60));
    // A first runtime with a burst and a sleep, dropped: what the process initialises
    // once (thread-locals, id blocks, the harness's own lazies) exists before the
    // baseline.
    let warm = Runtime::new().unwrap();
    warm.block_on(async {
        burst().await;
        sleep(Duration::from_millis(1)).await.unwrap();
    });
    drop(warm);
    let before_runtime = live();
    let rt = Runtime::new().unwrap();
    let (first_during, after_first, second_during, after_second, after_sleep) =
        rt.block_on(async {
            let first_during = burst().await;
            let after_first = live();
            let second_during = burst().await;
            let after_second = live();
            sleep(Duration::from_millis(1)).await.unwrap();
            let after_sleep = live();
            (
                first_during,
                after_first,
                second_during,
                after_second,
                after_sleep,
            )
        });
    println!(
        "first burst {first_during:?}, after {after_first:?}; second burst {second_during:?}, \
         after {after_second:?}; after a sleep {after_sleep:?}"
    );
    // The second burst's 1 000 live cells come from the pool: only its handle vector
    // (one allocation) is new.
    assert!(
        second_during.allocations <= after_first.allocations + 1 + SLACK,
        "a burst after a burst allocates its cells anew: {after_first:?} -> {second_during:?}"
    );
    assert!(
        (after_second.allocations - after_first.allocations).abs() <= SLACK,
        "two identical bursts leave the same heap: {after_first:?} -> {after_second:?}"
    );
    // Sleeping gives back all but 64 KiB of pooled cells (each is at least 200 bytes, so
    // at most ≈ 330 stay).
    assert!(
        after_first.allocations - after_sleep.allocations >= (BURST - 330) as isize,
        "a sleeping loop keeps its burst's cells: {after_first:?} -> {after_sleep:?}"
    );
    drop(rt);
    let after_runtime = live();
    println!("before the runtime {before_runtime:?}, after dropping it {after_runtime:?}");
    // After the sleep ≈ 240 cells were still pooled (64 KiB): a loop that kept them
    // would be far outside the slack.
    assert!(
        (after_runtime.allocations - before_runtime.allocations).abs() <= SLACK,
        "a dropped loop frees its pooled cells: {before_runtime:?} -> {after_runtime:?}"
    );
}
