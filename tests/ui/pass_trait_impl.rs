//! Regression: on a trait impl method the macro used to add a hidden sibling method,
//! which is not a member of the trait (E0407). The body now lives inside the method.
//! `#[run_on_executor]` on a method of a trait impl (SPEC E5: "on a method
//! `fn m(&self, args…) -> R` of an `impl`"; Tornado's decorator works on any method).
//! The trait declares the expanded signature, `fn work(&self) -> evloop::Future<u32>`.
use evloop::{Executor, Future, run_on_executor};

#[derive(Clone)]
struct Service {
    executor: Executor,
}

trait Work {
    fn work(&self, n: u32) -> Future<u32>;
}

impl Work for Service {
    #[run_on_executor]
    fn work(&self, n: u32) -> u32 {
        n + 1
    }
}

fn main() {
    let svc = Service {
        executor: Executor::new(1),
    };
    let n = evloop::run(async move { svc.work(41).await.unwrap() });
    assert_eq!(n, 42);
}
