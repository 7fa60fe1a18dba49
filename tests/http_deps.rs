//! I2: evloop's `hyper` feature brings no tokio *runtime* into an application's build.
//!
//! hyper 1.x itself depends on the `tokio` crate for its `sync` primitives, and `h2` (when
//! the application enables hyper's `http2`) for its I/O traits, so the crate is in the
//! tree as a library. What must never be compiled for evloop's normal (non-dev)
//! dependencies is any part of tokio that runs things: its scheduler (`rt`,
//! `rt-multi-thread`), reactor (`net`), timer (`time`) and the rest listed below. This
//! test reads `cargo tree` and fails if a dependency change ever enables one.

use std::process::Command;

/// The tokio features compiled for evloop's normal dependencies with `features`, or
/// `None` when tokio is not in the tree at all.
fn tokio_features(features: &str) -> Option<Vec<String>> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--quiet", "-p", "evloop", "-e", "normal,features"])
        .args(["-i", "tokio", "--prefix", "none"]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let out = cmd.output().expect("running cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // `-i tokio` on a tree without tokio is an error naming the package.
        assert!(
            stderr.contains("did not match any packages") || stderr.contains("nothing to print"),
            "cargo tree failed: {stderr}"
        );
        return None;
    }
    if stdout.trim().is_empty() {
        return None; // newer cargo: a warning, and nothing printed
    }
    let mut found: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tokio feature \""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    Some(found)
}

const RUNTIME_FEATURES: [&str; 10] = [
    "rt",
    "rt-multi-thread",
    "net",
    "time",
    "io-std",
    "fs",
    "process",
    "signal",
    "macros",
    "full",
];

fn assert_no_runtime(features: &str) {
    if let Some(found) = tokio_features(features) {
        for f in &found {
            assert!(
                !RUNTIME_FEATURES.contains(&f.as_str()),
                "with --features {features:?} tokio's {f:?} feature is compiled: {found:?}"
            );
        }
    }
}

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
