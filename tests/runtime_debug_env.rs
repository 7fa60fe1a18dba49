//! `EVLOOP_DEBUG=1` enables debug mode (SPEC R1, L10).
//!
//! This binary holds a single test because it changes the process environment, which
//! must not race with other tests reading it (every `Builder::build` reads
//! `EVLOOP_DEBUG`).

mod common;

use std::time::Duration;

use evloop::Runtime;

const MSG: &str = "Executing a callback took ";

/// Runs one callback that sleeps 5 ms on a runtime built by `build` (with a 1 ms
/// threshold) and returns how many slow-callback warnings it produced.
fn warnings_for(build: impl FnOnce() -> Runtime) -> usize {
    let before = common::logs_containing(MSG).len();
    let rt = build();
    rt.handle()
        .call_soon(|| std::thread::sleep(Duration::from_millis(5)));
    rt.block_on(evloop::time::sleep(Duration::ZERO)).unwrap();
    common::logs_containing(MSG).len() - before
}

fn with_threshold() -> evloop::Builder {
    Runtime::builder().slow_callback_duration(Duration::from_millis(1))
}

#[test]
fn evloop_debug_env_var_enables_debug_mode_unless_overridden() {
    common::init_logger();
    // SAFETY (std::env::set_var is unsafe since edition 2024): this is the only test of
    // this binary, so no other thread reads or writes the environment meanwhile.
    unsafe { std::env::remove_var("EVLOOP_DEBUG") };
    assert_eq!(warnings_for(|| with_threshold().build().unwrap()), 0);

    unsafe { std::env::set_var("EVLOOP_DEBUG", "1") };
    assert_eq!(
        warnings_for(|| with_threshold().build().unwrap()),
        1,
        "EVLOOP_DEBUG=1 did not enable debug mode"
    );
    assert_eq!(
        warnings_for(|| with_threshold().debug(false).build().unwrap()),
        0,
        "debug(false) must override EVLOOP_DEBUG=1"
    );

    unsafe { std::env::set_var("EVLOOP_DEBUG", "0") };
    assert_eq!(warnings_for(|| with_threshold().build().unwrap()), 0);
    assert_eq!(
        warnings_for(|| with_threshold().debug(true).build().unwrap()),
        1
    );
    unsafe { std::env::remove_var("EVLOOP_DEBUG") };
}
