//! Project automation.
//!
//! `cargo xtask bench` runs the SPEC §11 benchmark suite (every bench in `benches/`, in
//! release mode, evloop and its peers in the same run) and regenerates `BENCHMARKS.md`
//! and `benchmarks.svg` from the results criterion and the metrics bench left in
//! `target/`.
//!
//! `cargo xtask bench --report-only` regenerates the report from the results already
//! there; `cargo xtask bench tasks timers` runs only those benches first. Rows with no
//! results in `target/` (the benches not run into this target directory) are carried
//! over unchanged from the current `BENCHMARKS.md`, and the report says which: so
//! `cargo xtask bench sync sync_mpsc` rewrites the P15 rows and leaves the others as
//! they were.

mod report;
mod results;
mod svg;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Every bench of the suite, in the order they run.
const BENCHES: [&str; 17] = [
    "tasks",
    "timers",
    "cross_thread",
    "executor",
    "gather",
    "tcp_echo",
    "lines",
    "ws",
    "http",
    "group_echo",
    "sync",
    "sync_mpsc",
    "budget",
    "process",
    "fs",
    "tls",
    "metrics",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match bench(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: cargo xtask bench [--report-only] [BENCH ...]\n\
                 benches: {}",
                BENCHES.join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn bench(args: &[String]) -> Result<(), String> {
    let root = root();
    let report_only = args.iter().any(|a| a == "--report-only");
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    for name in &chosen {
        if !BENCHES.contains(name) {
            return Err(format!("unknown bench {name}; the suite is {BENCHES:?}"));
        }
    }
    if !report_only {
        let run: Vec<&str> = if chosen.is_empty() {
            BENCHES.to_vec()
        } else {
            chosen
        };
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root)
            .arg("bench")
            .arg("--package")
            .arg("evloop")
            // P13 runs hyper on evloop; N8 tokio-tungstenite through `tokio-io`; P18
            // evloop::tls.
            .arg("--features")
            .arg("hyper,tokio-io,tls");
        for b in &run {
            cmd.arg("--bench").arg(b);
        }
        eprintln!("xtask: running {cmd:?}");
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo bench failed: {status}"));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let results = results::Results::load(&target)?;
    let mut rows = report::rows(&results);
    let previous = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    let carried = report::carry_over(&mut rows, &results, &previous);
    let analysis = std::fs::read_to_string(root.join("benches").join("ANALYSIS.md")).ok();
    let machine = report::machine();
    std::fs::write(root.join("benchmarks.svg"), svg::plot(&rows))
        .map_err(|e| format!("writing benchmarks.svg: {e}"))?;
    std::fs::write(
        root.join("BENCHMARKS.md"),
        report::markdown(&machine, &rows, &results, &carried, analysis.as_deref()),
    )
    .map_err(|e| format!("writing BENCHMARKS.md: {e}"))?;
    let missed: Vec<&str> = rows
        .iter()
        .filter(|r| r.met == Some(false))
        .map(|r| r.id)
        .collect();
    let raised_missed: Vec<&str> = rows
        .iter()
        .filter(|r| r.raised_met == Some(false))
        .map(|r| r.id)
        .collect();
    let carried_ids = carried.ids();
    if !carried_ids.is_empty() {
        eprintln!(
            "xtask: no results in {} for {}: carried over from the previous BENCHMARKS.md",
            target.display(),
            carried_ids.join(", ")
        );
    }
    let list = |ids: &[&str]| {
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    eprintln!(
        "xtask: wrote BENCHMARKS.md and benchmarks.svg; targets missed: {}; raised targets \
         missed: {}",
        list(&missed),
        list(&raised_missed)
    );
    Ok(())
}
