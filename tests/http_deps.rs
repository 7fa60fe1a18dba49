//! I2: evloop's `hyper` feature brings no tokio *runtime* into an application's build.
//!
//! hyper 1.x itself depends on the `tokio` crate for its `sync` primitives, and `h2` (when
//! the application enables hyper's `http2`) for its I/O traits, so the crate is in the
//! tree as a library. What must never be compiled for evloop's normal (non-dev)
//! dependencies is any part of tokio that runs things: its scheduler (`rt`,
//! `rt-multi-thread`), reactor (`net`), timer (`time`) and the rest listed below. This
//! test reads `cargo tree` and fails if a dependency change ever enables one.

mod common;

use common::deps::{assert_no_runtime, tokio_features};

#[test]
fn the_default_build_has_no_tokio_at_all() {
    assert_eq!(
        tokio_features(""),
        None,
        "tokio in evloop's default dependency tree"
    );
}

#[test]
fn the_hyper_feature_compiles_no_tokio_runtime() {
    assert_no_runtime("hyper");
    // hyper's sync primitives are the only reason tokio is there.
    assert_eq!(
        tokio_features("hyper").as_deref(),
        Some(&["default".to_string(), "sync".to_string()][..])
    );
}

#[test]
fn with_http1_http2_server_and_client_still_no_tokio_runtime() {
    assert_no_runtime("hyper,hyper/http1,hyper/http2,hyper/server,hyper/client");
}
