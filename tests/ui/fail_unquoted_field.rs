// The field name must be a string literal.
use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    pool: evloop::Executor,
}

impl Service {
    #[run_on_executor(executor = pool)]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {}
