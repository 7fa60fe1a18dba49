// `Self` must be `Clone`: the body runs with a clone of `self`.
use evloop::run_on_executor;

struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {}
