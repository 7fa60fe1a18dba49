//! Compile-time checks of the procedural macros (SPEC E5) with trybuild: every misuse
//! of `#[run_on_executor]`, `#[evloop::main]` and `#[evloop::test]` is a compile error
//! with a clear message (pinned by the `.stderr` files beside the cases), and a
//! correct use compiles and runs (`tests/ui/pass_*.rs`, which also covers
//! `#[evloop::main]`).
//!
//! Regenerate the expected output after an intended message change with
//! `TRYBUILD=overwrite cargo test --test macros_compile_fail`, then read the diff.

#[test]
fn macro_misuse_is_a_clear_compile_error_and_correct_use_compiles() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
