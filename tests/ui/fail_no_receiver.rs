use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    fn work(n: u32) -> u32 {
        n
    }
}

fn main() {}
