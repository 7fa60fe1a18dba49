// Attributes on the method survive the expansion: `#[deprecated]` still warns at the
// call site (denied here, so it is an error).
#![deny(deprecated)]

use evloop::run_on_executor;

#[derive(Clone)]
struct Service {
    executor: evloop::Executor,
}

impl Service {
    #[run_on_executor]
    #[deprecated(note = "use something else")]
    fn old(&self) -> u32 {
        1
    }
}

fn main() {
    evloop::run(async {
        let svc = Service {
            executor: evloop::Executor::new(1),
        };
        let _ = svc.old();
    });
}
