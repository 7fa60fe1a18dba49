use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    fn work<T: Send + 'static>(&self, value: T) -> T {
        value
    }
}

fn main() {}
