//! [`Interval`]: a periodic tick on top of [`Sleep`](super::Sleep).
//!
//! Owns: the tick schedule and what happens to missed ticks. Must not touch: the
//! wheel (it re-arms its `Sleep` with `reset`, which reuses the wheel's storage).

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Sleep, sleep_until};
use crate::error::Error;
use crate::handle::deadline_after;
use crate::task::coop;

/// What an [`Interval`] does when ticks were missed because the loop (or the code
/// between ticks) was busy for longer than the period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up; the schedule keeps its
    /// original phase (`start + k * period`). The default, as in tokio.
    #[default]
    Burst,
    /// Fire once now, then continue `period` after *now* (the phase shifts).
    Delay,
    /// Fire once now, then continue at the next multiple of `period` on the original
    /// schedule, skipping the missed ones.
    Skip,
}

/// Ticks at `start`, `start + period`, `start + 2 * period`, … (created by
/// [`interval`] / [`interval_at`]). The first tick completes immediately.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(async {
///     let mut every = evloop::time::interval(Duration::from_millis(1));
///     let first = every.tick().await.unwrap();
///     let second = every.tick().await.unwrap();
///     assert_eq!(second - first, Duration::from_millis(1));
/// });
/// ```
pub struct Interval {
    period: Duration,
    /// Scheduled time of the next tick.
    next: Instant,
    sleep: Sleep,
    missed: MissedTickBehavior,
}

/// An interval whose first tick is now.
///
/// # Panics
///
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// An interval whose first tick is at `start`.
///
/// # Panics
///
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "evloop::time::interval: the period must be non-zero"
    );
    Interval {
        period,
        next: start,
        sleep: sleep_until(start),
        missed: MissedTickBehavior::default(),
    }
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    ///
    /// # Errors
    ///
    /// Only on cancellation of the awaiting task.
    pub async fn tick(&mut self) -> Result<Instant, Error> {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (the `poll` form of [`tick`](Self::tick)).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Result<Instant, Error>> {
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Err(cancelled));
        }
        let now = Instant::now();
        if self.next > now {
            match Pin::new(&mut self.sleep).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        let tick = self.next;
        let now = Instant::now();
        self.next = next_tick(tick, now, self.period, self.missed);
        self.sleep.reset(self.next);
        Poll::Ready(Ok(tick))
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.next = deadline_after(Instant::now(), self.period);
        self.sleep.reset(self.next);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}

/// The tick after `tick` (which fired at `now`) under `behavior`. Saturating (rule 6):
/// a period too long to add to an instant gives a tick that is never reached.
fn next_tick(
    tick: Instant,
    now: Instant,
    period: Duration,
    behavior: MissedTickBehavior,
) -> Instant {
    let scheduled = deadline_after(tick, period);
    if scheduled > now {
        return scheduled;
    }
    match behavior {
        MissedTickBehavior::Burst => scheduled,
        MissedTickBehavior::Delay => deadline_after(now, period),
        MissedTickBehavior::Skip => {
            let behind = now.saturating_duration_since(tick).as_nanos();
            let periods = behind / period.as_nanos() + 1;
            let step = u32::try_from(periods).unwrap_or(u32::MAX);
            deadline_after(tick, period.saturating_mul(step))
        }
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.next)
            .field("missed_tick_behavior", &self.missed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_tick_arithmetic() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        // On time: the next tick is one period later whatever the behaviour.
        for b in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            assert_eq!(next_tick(t0, t0 + Duration::from_millis(1), p, b), t0 + p);
        }
        // 35 ms late.
        let now = t0 + Duration::from_millis(35);
        assert_eq!(next_tick(t0, now, p, MissedTickBehavior::Burst), t0 + p);
        assert_eq!(next_tick(t0, now, p, MissedTickBehavior::Delay), now + p);
        assert_eq!(
            next_tick(t0, now, p, MissedTickBehavior::Skip),
            t0 + Duration::from_millis(40)
        );
        // Periods too long to add to an instant saturate instead of panicking.
        for b in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            assert!(next_tick(t0, t0, Duration::MAX, b) > t0 + Duration::from_secs(3600));
        }
        // Exactly on a boundary: Skip moves strictly past now.
        let now = t0 + Duration::from_millis(30);
        assert_eq!(
            next_tick(t0, now, p, MissedTickBehavior::Skip),
            t0 + Duration::from_millis(40)
        );
    }
}
