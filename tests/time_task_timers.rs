//! A sleep awaited by one of its loop's own tasks with that task's own waker is held by
//! the timer wheel as the task's slab slot, not as a waker clone (issue 17: no locked
//! instruction per sleep, no vtable call when it fires). These tests pin what must stay
//! true of that shortcut: the slot is replaced when the sleep moves to another task or
//! to a foreign waker, a slot that changed hands is never woken, and a task sleeping
//! in one slot is polled once per fire, not more.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use evloop::time::{self, Sleep};

/// Polls `sleep` once with the calling task's waker; `true` if it completed.
async fn poll_once(sleep: &mut Sleep) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *sleep).poll(cx).is_ready())).await
}

/// A sleep first registered by task A, which then ends and hands the sleep to task B:
/// the wheel held A's slot; B's first poll must replace it, or B would never wake
/// (A's slot is gone by then, so the fire would be skipped) and this test would hang.
#[evloop::test]
async fn a_sleep_registered_by_one_task_wakes_the_task_it_moves_to() {
    let deadline = Instant::now() + Duration::from_millis(20);
    let sleep = evloop::create_task(async move {
        let mut sleep = time::sleep_until(deadline);
        assert!(!poll_once(&mut sleep).await, "not due yet");
        Ok(sleep)
    })
    .await
    .unwrap();
    let woke = evloop::create_task(async move {
        sleep.await.unwrap();
        Ok(Instant::now())
    })
    .await
    .unwrap();
    assert!(woke >= deadline);
}

/// The same hand-over while A is still alive and suspended elsewhere: the fire must
/// reach B (the sleep's current poller), and A — whose slot the wheel no longer holds —
/// is not polled by it.
#[evloop::test]
async fn a_sleep_moved_to_another_live_task_wakes_only_that_task() {
    let deadline = Instant::now() + Duration::from_millis(20);
    let parked = evloop::Future::<()>::new();
    let handed = Arc::new(std::sync::Mutex::new(None::<Sleep>));
    let ready = evloop::Future::<()>::new();
    let (handed2, ready2, parked2) = (handed.clone(), ready.clone(), parked.clone());
    let a = evloop::create_task(async move {
        let mut sleep = time::sleep_until(deadline);
        assert!(!poll_once(&mut sleep).await);
        *handed2.lock().unwrap() = Some(sleep);
        ready2.set_result(()).unwrap();
        parked2.await
    });
    ready.await.unwrap();
    let sleep = handed.lock().unwrap().take().unwrap();
    let a_ref = a.to_ref();
    let polls_before = a_ref.info().polls.unwrap();
    let b = evloop::create_task(async move {
        sleep.await.unwrap();
        Ok(Instant::now())
    });
    assert!(b.await.unwrap() >= deadline);
    // Let any stray wake-up of A run before looking.
    evloop::time::sleep(Duration::ZERO).await.unwrap();
    assert_eq!(
        a_ref.info().polls.unwrap(),
        polls_before,
        "the fire of a sleep A handed over must not poll A"
    );
    parked.set_result(()).unwrap();
    a.await.unwrap();
}

/// A waker counting its wakes: not any task's own waker.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task registers the sleep with its own waker, then re-polls it with a foreign
/// waker (as a combinator with its own waker would): the foreign waker is the one
/// woken at the deadline.
#[evloop::test]
async fn a_sleep_repolled_with_a_foreign_waker_wakes_that_waker() {
    let mut sleep = time::sleep(Duration::from_millis(5));
    assert!(!poll_once(&mut sleep).await);
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
    while counter.0.load(Ordering::SeqCst) == 0 {
        evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
    }
    assert!(Pin::new(&mut sleep).poll(&mut cx).is_ready());
}

/// A registered sleep forgotten (never dropped, so its timer stays in the wheel) by a
/// task that then ends: when the timer fires, the task's slot may hold a new task.
/// That task must not be polled by the stale timer (the slot's generation differs).
#[evloop::test]
async fn a_stale_task_timer_never_polls_the_next_task_in_its_slot() {
    let deadline = Instant::now() + Duration::from_millis(10);
    evloop::create_task(async move {
        let mut sleep = time::sleep_until(deadline);
        assert!(!poll_once(&mut sleep).await);
        std::mem::forget(sleep);
        Ok(())
    })
    .await
    .unwrap();
    // Likely reuses the finished task's slot.
    let never = evloop::Future::<()>::new();
    let wait = never.clone();
    let next = evloop::create_task(wait);
    let next_ref = next.to_ref();
    evloop::time::sleep_until(deadline + Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(
        next_ref.info().polls,
        Some(1),
        "only its first poll: the stale timer of the task before it did not wake it"
    );
    never.set_result(()).unwrap();
    next.await.unwrap();
}

/// Many tasks each sleeping to a different deadline: each is polled exactly twice
/// (register, fire) and they finish in deadline order.
#[test]
fn sleeping_tasks_are_polled_once_per_fire_in_deadline_order() {
    evloop::run(async {
        let start = Instant::now();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..50u64)
            .rev()
            .map(|i| {
                let order = order.clone();
                evloop::create_task(async move {
                    time::sleep_until(start + Duration::from_micros(200 * i))
                        .await
                        .unwrap();
                    order.lock().unwrap().push(i);
                    Ok(())
                })
            })
            .collect();
        let refs: Vec<_> = tasks.iter().map(|t| t.to_ref()).collect();
        for t in tasks {
            t.await.unwrap();
        }
        for r in refs {
            assert_eq!(
                r.info().polls,
                Some(2),
                "one poll to register, one per fire"
            );
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
    });
}
