// The named field exists but is not an `evloop::Executor`.
use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: usize,
}

impl Service {
    #[run_on_executor]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Service { executor: 1 };
}
