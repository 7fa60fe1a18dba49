//! Eager task start (`Builder::eager_tasks`, asyncio 3.12's `eager_task_factory`;
//! issue 17): what a user observes with it on, and that T1 is unchanged with it off.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use evloop::{Error, Future, Runtime, create_task, current_task};

fn eager_rt() -> Runtime {
    Runtime::builder().eager_tasks(true).build().unwrap()
}

#[test]
fn a_task_that_never_suspends_is_done_when_create_task_returns() {
    eager_rt().block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let task = create_task(async move {
            l.borrow_mut().push("child");
            Ok::<_, Error>(42)
        });
        log.borrow_mut().push("parent after create_task");
        assert!(task.done());
        assert_eq!(*log.borrow(), ["child", "parent after create_task"]);
        assert_eq!(task.await.unwrap(), 42);
    });
}

#[test]
fn without_the_option_a_task_never_starts_synchronously() {
    Runtime::new().unwrap().block_on(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let task = create_task(async move {
            r.set(true);
            Ok::<_, Error>(())
        });
        assert!(
            !ran.get() && !task.done(),
            "T1: the first poll is in a later iteration"
        );
        task.await.unwrap();
        assert!(ran.get());
    });
}

#[test]
fn a_task_runs_eagerly_up_to_its_first_suspension_then_as_usual() {
    eager_rt().block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let gate = Future::<u32>::new();
        let (l, g) = (log.clone(), gate.clone());
        let task = create_task(async move {
            l.borrow_mut().push("before await");
            let v = g.await?;
            l.borrow_mut().push("after await");
            Ok::<_, Error>(v * 2)
        });
        log.borrow_mut().push("create_task returned");
        assert!(!task.done());
        gate.set_result(21).unwrap();
        assert_eq!(task.await.unwrap(), 42);
        assert_eq!(
            *log.borrow(),
            ["before await", "create_task returned", "after await"]
        );
    });
}

#[test]
fn the_current_task_in_an_eager_poll_is_the_new_task_and_then_the_parent_again() {
    eager_rt().block_on(async {
        let parent = create_task(async {
            let me = current_task().expect("in a task").id();
            let seen = Rc::new(Cell::new(0));
            let s = seen.clone();
            let child = create_task(async move {
                s.set(current_task().expect("in the child").id());
                Ok::<_, Error>(())
            });
            assert_eq!(seen.get(), child.id(), "the child ran as itself");
            assert_ne!(seen.get(), me);
            assert_eq!(
                current_task().unwrap().id(),
                me,
                "the parent is current again"
            );
            Ok::<_, Error>(())
        });
        parent.await.unwrap();
    });
}

/// A chain of tasks each creating the next would nest one poll per link; nesting stops
/// at 16. Links 0–15 run nested in `block_on`'s poll, link 16 starts lazily; it runs
/// from the loop, not nested, so links 17–32 nest inside it and link 33 is lazy, and so
/// on every 17 links. 100 001 links finish (unbounded nesting would overflow the
/// stack).
#[test]
fn nesting_is_bounded_so_a_long_chain_does_not_grow_the_stack() {
    fn link(n: u32, eager: Rc<RefCell<Vec<bool>>>, done: Future<()>) {
        let inside = Rc::new(Cell::new(true));
        let i = inside.clone();
        let e = eager.clone();
        drop(create_task(async move {
            e.borrow_mut().push(i.get());
            if n == 0 {
                done.set_result(()).unwrap();
            } else {
                link(n - 1, e, done);
            }
            Ok::<_, Error>(())
        }));
        inside.set(false); // create_task returned
    }
    eager_rt().block_on(async {
        let eager = Rc::new(RefCell::new(Vec::new()));
        let done = Future::new();
        link(100_000, eager.clone(), done.clone());
        done.await.unwrap();
        let eager = eager.borrow();
        assert_eq!(eager.len(), 100_001);
        let lazy: Vec<usize> = (0..eager.len()).filter(|&i| !eager[i]).take(3).collect();
        assert_eq!(lazy, [16, 33, 50], "every 17th link waits for the loop");
    });
}

#[test]
fn a_panic_in_an_eager_poll_fails_the_child_not_the_parent() {
    eager_rt().block_on(async {
        let task = create_task(async {
            if true {
                panic!("boom in the first poll");
            }
            Ok::<_, Error>(())
        });
        assert!(task.done());
        let err = task.await.unwrap_err();
        assert!(err.to_string().contains("boom in the first poll"), "{err}");
    });
}

#[test]
fn an_eager_task_that_suspended_can_be_cancelled() {
    eager_rt().block_on(async {
        let never = Future::<()>::new();
        let task = create_task(never.clone());
        assert!(!task.done());
        task.cancel();
        assert!(task.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn an_eager_child_sees_the_parent_context_and_keeps_its_own_sets() {
    static VAR: evloop::ContextVar<u32> = evloop::ContextVar::new("eager");
    eager_rt().block_on(async {
        create_task(async {
            VAR.set(1);
            let seen = Rc::new(Cell::new(None));
            let s = seen.clone();
            let child = create_task(async move {
                s.set(VAR.get());
                VAR.set(2);
                Ok::<_, Error>(())
            });
            assert!(child.done());
            assert_eq!(seen.get(), Some(1), "copied from the parent");
            assert_eq!(VAR.get(), Some(1), "the child's set stays in the child");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    });
}
