//! What `cargo tree` says evloop compiles of tokio: the guard behind the promise that
//! evloop's `hyper` and `tokio-io` features bring no tokio runtime into a build
//! (`tests/http_deps.rs`, `tests/tokio_io.rs`).

use std::process::Command;

/// The tokio features compiled for evloop's normal dependencies with `features`, or
/// `None` when tokio is not in the tree at all.
pub fn tokio_features(features: &str) -> Option<Vec<String>> {
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

pub const RUNTIME_FEATURES: [&str; 10] = [
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

pub fn assert_no_runtime(features: &str) {
    if let Some(found) = tokio_features(features) {
        for f in &found {
            assert!(
                !RUNTIME_FEATURES.contains(&f.as_str()),
                "with --features {features:?} tokio's {f:?} feature is compiled: {found:?}"
            );
        }
    }
}
