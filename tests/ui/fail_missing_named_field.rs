// `executor = "pool"` names a field that does not exist: the error names `pool`.
use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor(executor = "pool")]
    fn work(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Service {
        executor: evloop::Executor::new(1),
    };
}
