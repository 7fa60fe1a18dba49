//! G6: `gather!(a, b, c)` over futures of different types is a `Future<(A, B, C)>`
//! with `gather`'s semantics (G1–G5).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop::{Error, Future, Task, create_task};

fn cancel_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

type Triple = (u8, String, Vec<(u8, char)>);

#[test]
fn three_types_from_tasks_and_futures() {
    let out = common::run_guarded(async {
        let n: Task<u8> = create_task(async { Ok(7) });
        let s: Future<String> = Future::new();
        let v: Task<Vec<(u8, char)>> = create_task(async {
            evloop::yield_now().await?;
            Ok(vec![(1, 'a'), (2, 'b')])
        });
        // The tuple's type is spelled out: the macro yields `Future<(A, B, C)>`.
        let outer: Future<Triple> = evloop::gather!(n, s.clone(), v);
        common::yield_times(3).await;
        assert!(!outer.done(), "the String future is still pending");
        s.set_result(String::from("seven")).unwrap();
        outer.await
    });
    assert_eq!(
        out.unwrap(),
        (7, String::from("seven"), vec![(1, 'a'), (2, 'b')])
    );
}

#[test]
fn a_failing_child_fails_the_tuple_while_the_others_keep_running() {
    common::run_guarded(async {
        let n: Future<u8> = Future::new();
        let s = create_task(async { Err::<String, _>(Error::msg("macro child failed")) });
        let v: Future<Vec<u8>> = Future::new();
        let outer = evloop::gather!(n.clone(), s, v.clone(),);
        let err = outer.clone().await.unwrap_err();
        assert_eq!(err.to_string(), "macro child failed");
        assert!(!outer.cancelled());
        assert!(!n.done() && !v.done(), "the others are not cancelled");
        n.set_result(1).unwrap();
        v.set_result(vec![]).unwrap();
    });
}

#[test]
fn a_cancelled_child_is_a_cancelled_exception() {
    common::run_guarded(async {
        let n: Future<u8> = Future::new();
        let s: Future<String> = Future::new();
        let outer = evloop::gather!(n.clone(), s.clone());
        s.cancel_with("child");
        let err = outer.clone().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("child"));
        assert!(!outer.cancelled());
        assert!(!n.done());
        n.set_result(0).unwrap();
    });
}

/// G4 for the tuple form: `cancel()` cancels the children and is true; the outer is
/// pending right after, then ends with a `Cancelled` exception (not `cancelled()`);
/// after that, `cancel()` is false.
#[test]
fn outer_cancel_semantics() {
    common::run_guarded(async {
        let started = Arc::new(AtomicUsize::new(0));
        let task = {
            let started = started.clone();
            create_task(async move {
                started.fetch_add(1, Ordering::SeqCst);
                Future::<Vec<u8>>::new().await
            })
        };
        let view = task.future();
        while started.load(Ordering::SeqCst) == 0 {
            evloop::yield_now().await.unwrap();
        }
        let done: Future<u8> = Future::new();
        done.set_result(1).unwrap();
        let s: Future<String> = Future::new();
        let outer = evloop::gather!(done.clone(), s.clone(), task);
        assert!(outer.cancel_with("tuple"));
        assert!(!outer.done(), "not done right after cancel()");
        assert!(s.cancelled());
        assert_eq!(done.result().unwrap(), 1, "a done child is untouched");
        let err = outer.clone().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("tuple"));
        assert!(!outer.cancelled());
        assert!(!outer.cancel(), "false once done");
        common::yield_times(3).await;
        assert!(view.cancelled());
        assert_eq!(
            cancel_message(&view.result().unwrap_err()).as_deref(),
            Some("tuple")
        );
    });
}

/// A child swallowing the cancellation: the outer still ends with `Cancelled`.
#[test]
fn outer_cancel_with_a_swallowing_child() {
    common::run_guarded(async {
        let started = Arc::new(AtomicUsize::new(0));
        let task = {
            let started = started.clone();
            create_task(async move {
                started.fetch_add(1, Ordering::SeqCst);
                match Future::<u8>::new().await {
                    Err(e) if e.is_cancelled() => Ok::<_, Error>(String::from("swallowed")),
                    other => panic!("{other:?}"),
                }
            })
        };
        let view = task.future();
        while started.load(Ordering::SeqCst) == 0 {
            evloop::yield_now().await.unwrap();
        }
        let outer = evloop::gather!(task);
        assert!(outer.cancel());
        assert!(outer.clone().await.unwrap_err().is_cancelled());
        assert!(!outer.cancelled());
        assert_eq!(view.result().unwrap(), "swallowed");
    });
}

#[test]
fn one_element() {
    common::run_guarded(async {
        let t = create_task(async { Ok::<_, Error>('x') });
        let (c,) = evloop::gather!(t).await.unwrap();
        assert_eq!(c, 'x');
        let f: Future<u64> = Future::new();
        f.set_result(9).unwrap();
        let outer: Future<(u64,)> = evloop::gather!(f);
        assert_eq!(outer.await.unwrap(), (9,));
    });
}

#[test]
fn twelve_elements_of_mixed_types() {
    let out = common::run_guarded(async {
        let f_u16: Future<u16> = Future::new();
        let f_bool: Future<bool> = Future::new();
        let outer = evloop::gather!(
            create_task(async { Ok::<u8, Error>(1) }),
            f_u16.clone(),
            create_task(async { Ok::<u32, Error>(3) }),
            create_task(async { Ok::<u64, Error>(4) }),
            create_task(async { Ok::<i8, Error>(-5) }),
            create_task(async { Ok::<String, Error>(String::from("six")) }),
            create_task(async { Ok::<char, Error>('7') }),
            f_bool.clone(),
            create_task(async { Ok::<Vec<u8>, Error>(vec![9]) }),
            create_task(async { Ok::<Option<u8>, Error>(Some(10)) }),
            create_task(async { Ok::<(u8, u8), Error>((1, 1)) }),
            create_task(async { Ok::<&'static str, Error>("twelve") }),
        );
        f_bool.set_result(true).unwrap();
        f_u16.set_result(2).unwrap();
        outer.await
    });
    assert_eq!(
        out.unwrap(),
        (
            1u8,
            2u16,
            3u32,
            4u64,
            -5i8,
            String::from("six"),
            '7',
            true,
            vec![9u8],
            Some(10u8),
            (1u8, 1u8),
            "twelve"
        )
    );
}

/// The twelfth child's failure is seen (the last index of the tuple is observed).
#[test]
fn twelve_elements_the_last_one_fails() {
    common::run_guarded(async {
        let futs: Vec<Future<u8>> = (0..11).map(|_| Future::new()).collect();
        let last: Future<String> = Future::new();
        let outer = evloop::gather!(
            futs[0].clone(),
            futs[1].clone(),
            futs[2].clone(),
            futs[3].clone(),
            futs[4].clone(),
            futs[5].clone(),
            futs[6].clone(),
            futs[7].clone(),
            futs[8].clone(),
            futs[9].clone(),
            futs[10].clone(),
            last.clone()
        );
        for f in &futs {
            f.set_result(0).unwrap();
        }
        last.set_exception(Error::msg("twelfth")).unwrap();
        assert_eq!(outer.await.unwrap_err().to_string(), "twelfth");
    });
}

/// G3 for the tuple form: the same future twice fills both positions.
#[test]
fn the_same_future_twice() {
    common::run_guarded(async {
        let f: Future<String> = Future::new();
        let outer = evloop::gather!(f.clone(), f.clone());
        f.set_result(String::from("dup")).unwrap();
        assert_eq!(
            outer.await.unwrap(),
            (String::from("dup"), String::from("dup"))
        );
    });
}
