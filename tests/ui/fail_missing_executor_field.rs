// The default field `executor` does not exist: the error names it.
use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    workers: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Service {
        workers: evloop::Executor::new(1),
    };
}
