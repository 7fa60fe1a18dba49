//! `hyper::rt::Timer` on evloop's timer wheel.
//!
//! Owns: the adapter from [`time::Sleep`](crate::time::Sleep) (which yields
//! `Result<(), Error>`) to hyper's `Sleep` (which yields `()` and must be
//! `Send + Sync`). Must not touch: the wheel — registration, rounding and removal stay
//! in `time`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// hyper's timer on the loop's wheel: give it to a connection builder's `.timer(…)` to
/// enable `header_read_timeout`, HTTP/2 keep-alive pings and the like.
///
/// A sleep is registered with the wheel of the loop that first polls it (hyper polls
/// them from the connection future, on the loop) and unlinked in O(1) when dropped.
/// [`reset`](hyper::rt::Timer::reset) moves the deadline of the existing sleep: no new
/// allocation.
///
/// ```
/// use std::time::{Duration, Instant};
/// use hyper::rt::Timer as _;
///
/// evloop::run(async {
///     let timer = evloop::hyper::Timer;
///     let mut sleep = timer.sleep(Duration::from_secs(3600));
///     let before: *const _ = &*sleep;
///     timer.reset(&mut sleep, Instant::now() + Duration::from_millis(1));
///     assert!(std::ptr::addr_eq(before, &*sleep), "reset kept the allocation");
///     sleep.await;
///     Ok::<(), evloop::Error>(())
/// })?;
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Panics
///
/// Polling one of its sleeps off a loop thread panics (as [`time::Sleep`](crate::time::Sleep)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

/// The sleep [`Timer`] hands to hyper: a [`time::Sleep`](crate::time::Sleep) that
/// completes with `()`.
///
/// Unlike `time::Sleep` it does not deliver a pending cancellation of the current task
/// (it has no error to carry it): the cancellation stays pending and arrives at the
/// connection's next socket await, which fails with it.
#[derive(Debug)]
pub struct Sleep {
    inner: crate::time::Sleep,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.poll_timer(cx)
    }
}

impl hyper::rt::Sleep for Sleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep {
            inner: crate::time::sleep(duration),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep {
            inner: crate::time::sleep_until(deadline),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(mut ours) => ours.inner.reset(new_deadline),
            // A sleep some other timer made: replace it.
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

fn _assert_kinds() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<Sleep>();
    send_sync_unpin::<Timer>();
}
