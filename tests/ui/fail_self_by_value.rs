use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    fn work(self) -> u32 {
        1
    }
}

fn main() {}
