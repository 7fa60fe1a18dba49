//! Helpers shared by the integration tests: a tiny deterministic PRNG and a capturing
//! logger, among others; `child` runs a scenario in a child process (for aborts and
//! stack overflows). Each test binary compiles its own copy, so not every helper is
//! used everywhere.
#![allow(dead_code)]

pub mod child;
pub mod counting_alloc;
pub mod deps;
pub mod example;
pub mod fs;
pub mod leak;
pub mod local;
pub mod python;
pub mod tools;

use std::sync::{Mutex, Once};

/// SplitMix64: a tiny deterministic generator, good enough for test inputs.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Every record logged in this test binary, formatted as `"LEVEL target: message"`.
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        RECORDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

static LOGGER: CaptureLogger = CaptureLogger;

/// Installs the capturing logger (once per test binary). Call it at the start of every
/// test that inspects log output.
pub fn init_logger() {
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger is installed in the tests");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The captured lines containing `marker`. Tests run in parallel inside one binary, so
/// every test filters by a marker string unique to it.
pub fn logs_containing(marker: &str) -> Vec<String> {
    RECORDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|line| line.contains(marker))
        .cloned()
        .collect()
}

/// The message of a caught panic payload (`&str` or `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string panic payload>")
    }
}

/// Guards a test whose failure mode is a loop blocked forever with nothing that could
/// wake it (no timer to fall back on): if the guard is not dropped within `limit`, the
/// whole test binary exits with a failure message instead of hanging.
pub struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(what: &'static str, limit: std::time::Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "watchdog: {what}: still blocked after {limit:?}; failing the test binary"
                );
                std::process::exit(101);
            }
        });
        Watchdog {
            done: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Installs an exception handler on `loop_` that records every context it receives
/// (the handler runs on whichever thread reports, so the list is shared).
pub fn capture_exceptions(
    loop_: &evloop::LoopHandle,
) -> std::sync::Arc<Mutex<Vec<evloop::ExceptionContext>>> {
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    loop_.set_exception_handler(Some(
        move |_: &evloop::LoopHandle, ctx: &evloop::ExceptionContext| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ctx.clone());
        },
    ));
    seen
}

/// A foreign (non-evloop) future source: every [`Gate::wait`] future stays pending
/// until [`Gate::open`] is called, from any thread. It knows nothing about evloop, so
/// a task suspended on it is not suspended on a loop-native awaitable (SPEC T3).
#[derive(Clone, Debug, Default)]
pub struct Gate {
    state: std::sync::Arc<Mutex<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    wakers: Vec<std::task::Waker>,
    polls: usize,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate and wakes every waiter.
    pub fn open(&self) {
        let wakers = {
            let mut state = self.state.lock().unwrap();
            state.open = true;
            std::mem::take(&mut state.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// How many times a `wait()` future was polled.
    pub fn polls(&self) -> usize {
        self.state.lock().unwrap().polls
    }

    /// A future that completes once the gate is open.
    pub fn wait(&self) -> GateWait {
        GateWait {
            state: self.state.clone(),
        }
    }
}

/// Future returned by [`Gate::wait`].
#[derive(Debug)]
pub struct GateWait {
    state: std::sync::Arc<Mutex<GateState>>,
}

impl std::future::Future for GateWait {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut state = self.state.lock().unwrap();
        state.polls += 1;
        if state.open {
            return std::task::Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

/// A value that records, when dropped, the thread it was dropped on. Move it into a
/// coroutine to observe when (and where) the coroutine is dropped.
#[derive(Debug)]
pub struct DropSpy {
    drops: std::sync::Arc<Mutex<Vec<std::thread::ThreadId>>>,
}

/// The observing side of a [`DropSpy`].
#[derive(Clone, Debug)]
pub struct DropProbe {
    drops: std::sync::Arc<Mutex<Vec<std::thread::ThreadId>>>,
}

impl DropSpy {
    pub fn new() -> (DropSpy, DropProbe) {
        let drops = std::sync::Arc::new(Mutex::new(Vec::new()));
        (
            DropSpy {
                drops: drops.clone(),
            },
            DropProbe { drops },
        )
    }
}

impl Drop for DropSpy {
    fn drop(&mut self) {
        self.drops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(std::thread::current().id());
    }
}

impl DropProbe {
    /// How many times the spy was dropped (0 or 1).
    pub fn drops(&self) -> usize {
        self.drops.lock().unwrap().len()
    }

    /// The thread the spy was dropped on, if it was.
    pub fn dropped_on(&self) -> Option<std::thread::ThreadId> {
        self.drops.lock().unwrap().first().copied()
    }
}

/// Yields to the loop `n` times (each `yield_now` lets one more iteration run).
pub async fn yield_times(n: usize) {
    for _ in 0..n {
        evloop::yield_now()
            .await
            .expect("yield_now outside a cancelled task");
    }
}

/// `evloop::run(fut)` under a [`Watchdog`] named after the caller's location: a wake-up
/// or cancellation that never arrives fails the test binary instead of hanging it.
#[track_caller]
pub fn run_guarded<F: std::future::Future>(fut: F) -> F::Output {
    let at: &'static str =
        Box::leak(format!("evloop::run at {}", std::panic::Location::caller()).into_boxed_str());
    let _watchdog = Watchdog::new(at, std::time::Duration::from_secs(30));
    evloop::run(fut)
}

/// A shared, ordered log of what happened, for tests that check an order of events.
pub type Log = std::sync::Arc<Mutex<Vec<String>>>;

pub fn new_log() -> Log {
    std::sync::Arc::new(Mutex::new(Vec::new()))
}

pub fn push(log: &Log, item: impl Into<String>) {
    log.lock().unwrap().push(item.into());
}

pub fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Runs the loop until something calls `stop()`, with a 10 s fallback timer that fails
/// the test if the stop never comes (instead of hanging).
pub fn run_until_stopped(rt: &evloop::Runtime) {
    let fallback = rt
        .handle()
        .call_later(std::time::Duration::from_secs(10), || {
            evloop::LoopHandle::current().stop()
        });
    rt.run_forever();
    assert!(
        fallback.cancel(),
        "the 10 s fallback timer fired: the loop never reached stop()"
    );
}

/// Runs `body` on a thread of its own and waits for it at most `limit`; a panic in
/// `body` is propagated, and a body still running then (a hang, a deadlock) fails the
/// test naming `what` — its thread is left blocked.
pub fn bounded<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {limit:?} (a hang, a deadlock or a lost wake-up)")
        }
    }
}

/// Waits on the loop (yielding, then sleeping 1 ms between checks) until `cond` holds;
/// fails the test naming `what` if it still does not after 10 s (a hang guard, not a
/// timing assertion).
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut round = 0u32;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "still not true after 10 s: {what}"
        );
        if round < 50 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(std::time::Duration::from_millis(1))
                .await
                .unwrap();
        }
        round += 1;
    }
}
