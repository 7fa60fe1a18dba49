//! A correct use of `#[run_on_executor]` and `#[evloop::main]`: compiled and run by
//! trybuild. `missing_docs` is denied, so the doc comments on the methods must survive
//! the expansion.
#![deny(missing_docs)]

use std::sync::{Arc, Mutex};

use evloop::{Executor, Future, run_on_executor};

/// A service with two pools.
#[derive(Clone)]
pub struct Service {
    executor: Executor,
    io: Executor,
    seen: Arc<Mutex<Vec<u32>>>,
}

impl Service {
    /// Doubles `n` on the default field.
    #[run_on_executor]
    pub fn double(&self, n: u32) -> u32 {
        self.seen.lock().unwrap().push(n);
        n * 2
    }

    /// Runs on `io`.
    #[run_on_executor(executor = "io")]
    pub fn name(&self) -> String {
        std::thread::current().name().unwrap().to_string()
    }

    /// Unit result.
    #[run_on_executor()]
    pub fn touch(&self, (a, b): (u32, u32), mut rest: Vec<u32>) {
        rest.push(a + b);
        self.seen.lock().unwrap().extend(rest);
    }
}

#[evloop::main(blocking_threads = 2, debug = false, shutdown_timeout_ms = 100)]
async fn main() -> Result<(), evloop::Error> {
    let svc = Service {
        executor: Executor::new(2),
        io: Executor::new(1),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let doubled: Future<u32> = svc.double(21);
    assert_eq!(doubled.await?, 42);
    assert!(svc.name().await?.starts_with("evloop-blocking-"));
    let unit: Future<()> = svc.touch((1, 2), vec![7]);
    unit.await?;
    assert_eq!(*svc.seen.lock().unwrap(), [21, 7, 3]);
    assert!(evloop::LoopHandle::current().is_running());
    Ok(())
}
