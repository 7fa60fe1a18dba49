// A bare word instead of `executor = "field"`.
use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    pool: evloop::Executor,
}

impl Service {
    #[run_on_executor(pool)]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {}
