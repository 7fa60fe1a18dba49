//! The method of the Q8 leak tests (`leak_waits`, `leak_sync_waits`): batches of
//! abandoned waits measured against a baseline with the counting allocator
//! (`counting_alloc`), exactly. See `tests/leak_waits.rs` for why each step is there.
//! Nothing here allocates while a measurement runs, except what a batch itself does.

use std::future::{Future as StdFuture, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use evloop::Error;

use super::counting_alloc::Live;

/// Waits per batch.
pub const BATCH: usize = 1000;
/// Measured batches per kind (after the warm-up): 1 000 000 waits.
pub const BATCHES: usize = 1000;
/// Waits registered at once by [`together`].
pub const ROUND: usize = 100;
/// Warm-up batches, back to back: clean-up a batch schedules (a cancelled shield
/// removing its callback from the inner future) runs during the next batch, so the
/// peak sizes of the measured run are those of consecutive batches, not of one.
pub const WARM_UP: usize = 3;
/// Measured batches between two checks of the heap.
pub const CHECKPOINT: usize = 100;

/// Polls the futures of `futs` (one task, one waker) in rounds of `ROUND`: each round's
/// futures are created, polled until all are ready, each dropped as soon as it is;
/// `check` sees each output. (Rounds rather than the whole batch at once keep the
/// removal of a registration from a list of pending ones — linear, as in asyncio —
/// from dominating the run time.)
pub async fn together<F: StdFuture>(futs: impl IntoIterator<Item = F>, check: impl Fn(F::Output)) {
    let mut futs = futs.into_iter();
    loop {
        let mut round: Vec<Option<Pin<Box<F>>>> = futs
            .by_ref()
            .take(ROUND)
            .map(|f| Some(Box::pin(f)))
            .collect();
        if round.is_empty() {
            return;
        }
        poll_fn(|cx| {
            let mut pending = false;
            for slot in &mut round {
                if let Some(fut) = slot {
                    match fut.as_mut().poll(cx) {
                        Poll::Ready(out) => {
                            *slot = None;
                            check(out);
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// Polls `fut` once, then drops it; whether it was ready.
pub async fn poll_once<F: StdFuture>(fut: F) -> bool {
    let mut fut = pin!(fut);
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// Asserts that `out` is the zero timeout's `Err(Timeout)`.
pub fn timed_out<T>(out: Result<T, Error>) {
    assert!(
        matches!(out, Err(Error::Timeout(_))),
        "the awaited thing completed: it must stay pending"
    );
}

/// Lets the loop run a few iterations: callbacks scheduled by the last batch (a
/// cancelled shield's clean-up, timer removals) run before a measurement.
pub async fn settle() {
    for _ in 0..8 {
        evloop::yield_now().await.unwrap();
    }
}

/// One kind's measurement.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub kind: &'static str,
    /// Abandoned waits between the baseline and the final count.
    pub waits: usize,
    pub baseline: Live,
    pub after: Live,
    /// Time of the measured batches (reported, never checked).
    pub took: Duration,
}

/// Runs `$batch` (an expression giving a future for one batch) `WARM_UP` times, then
/// up to `BATCHES` times after the baseline, and records the outcome. Every
/// `CHECKPOINT` batches the loop settles and the heap is compared with the baseline:
/// exactness is expected at every such point, so a difference is already the
/// failure, and the kind stops there (a leaking kind would otherwise hold hundreds of
/// megabytes and slow the rest of the run down).
#[allow(unused_macros)] // not every binary that compiles tests/common measures
macro_rules! measure {
    ($outcomes:expr, $kind:expr, $batch:expr) => {{
        use $crate::common::counting_alloc::live;
        use $crate::common::leak::{BATCH, BATCHES, CHECKPOINT, Outcome, WARM_UP, settle};
        for _ in 0..WARM_UP {
            $batch.await;
        }
        settle().await;
        let started = std::time::Instant::now();
        let baseline = live();
        let mut batches = 0;
        while batches < BATCHES {
            for _ in 0..CHECKPOINT {
                $batch.await;
            }
            batches += CHECKPOINT;
            settle().await;
            if live() != baseline {
                break;
            }
        }
        let after = live();
        $outcomes.push(Outcome {
            kind: $kind,
            waits: batches * BATCH,
            baseline,
            after,
            took: started.elapsed(),
        });
    }};
}

#[allow(unused_imports)]
pub(crate) use measure;

/// Prints every outcome and returns one line per kind that left memory behind.
pub fn leaks(outcomes: &[Outcome]) -> Vec<String> {
    let mut leaks = Vec::new();
    for o in outcomes {
        let (allocations, bytes) = (
            o.after.allocations - o.baseline.allocations,
            o.after.bytes - o.baseline.bytes,
        );
        println!(
            "{:<48} {:>8} waits {allocations:>9} allocations {bytes:>11} bytes in {:?}",
            o.kind, o.waits, o.took
        );
        if (allocations, bytes) != (0, 0) {
            leaks.push(format!(
                "{}: {allocations} allocations / {bytes} bytes left after {} waits ({:.1} B \
                 per wait)",
                o.kind,
                o.waits,
                bytes as f64 / o.waits as f64
            ));
        }
    }
    leaks
}
