//! The rows of `BENCHMARKS.md`: one per SPEC §11 workload, with every peer's result,
//! the ratio to tokio `current_thread`, the target and whether it is met.

use std::fmt::Write;
use std::process::Command;

use crate::results::Results;

mod budget;
mod raised;

pub const EVLOOP: &str = "evloop";
pub const EVLOOP_NO_BUDGET: &str = "evloop_no_budget";
pub const TOKIO_CT: &str = "tokio_current_thread";
pub const TOKIO_MT1: &str = "tokio_multi_thread_1";
pub const SMOL: &str = "smol";
pub const MIO_FLOOR: &str = "mio_floor";

/// The peers with a column of their own, in column order.
const PEERS: [&str; 4] = [EVLOOP, TOKIO_CT, TOKIO_MT1, SMOL];

/// One line of the table.
pub struct Row {
    pub id: &'static str,
    /// A few words for the plot.
    pub short: &'static str,
    pub workload: &'static str,
    /// One cell per entry of `PEERS` ("–" when the peer does not run it).
    pub cells: Vec<String>,
    /// Other functions of the group (variants, the mio floor), as "name: value".
    pub other: Vec<String>,
    /// evloop vs tokio `current_thread`: > 1 means evloop is better.
    pub ratio: Option<f64>,
    pub target: &'static str,
    /// The ratio the target asks for, when the target is a ratio.
    pub target_ratio: Option<f64>,
    /// `None`: not measured.
    pub met: Option<bool>,
    /// The raised target of SPEC §11's second round (issue 17), if the row has one; set
    /// by `raised::apply`.
    pub raised: Option<&'static str>,
    /// Whether the raised target is met (`None`: no raised target, or not measured).
    pub raised_met: Option<bool>,
}

/// A throughput workload measured by criterion: the ratio is tokio's time over evloop's.
struct TimeWorkload {
    id: &'static str,
    group: &'static str,
    workload: &'static str,
    target: &'static str,
    target_ratio: f64,
}

const TIME_WORKLOADS: [TimeWorkload; 12] = [
    tw(
        "P1",
        "P1_spawn_many_local",
        "spawn 10 000 tasks that finish at once, await all",
        1.25,
    ),
    tw(
        "P2",
        "P2_spawn_many_remote",
        "10 000 spawns from another thread, await all",
        1.25,
    ),
    tw("P3", "P3_yield_many", "200 tasks × 1 000 `yield_now`", 1.25),
    tw(
        "P4",
        "P4_ping_pong",
        "1 000 task pairs exchanging a message and its reply",
        1.25,
    ),
    tw(
        "P5",
        "P5_chained_spawn",
        "each task spawns the next, depth 1 000",
        1.25,
    ),
    tw(
        "P6",
        "P6_request_reply",
        "1 000 round trips to a server task",
        1.25,
    ),
    TimeWorkload {
        id: "P7",
        group: "P7_timers_insert_cancel",
        workload: "1 000 000 timers over 0–10 s inserted, half cancelled",
        target: "≥ 1.5×",
        target_ratio: 1.5,
    },
    tw(
        "P7",
        "P7_timers_fire",
        "100 000 timers due now, fired",
        1.25,
    ),
    tw(
        "P9",
        "P9_cross_thread",
        "2 threads × 500 000 cross-thread schedules, loop busy",
        1.25,
    ),
    TimeWorkload {
        id: "P10",
        group: "P10_executor",
        workload: "10 000 trivial blocking jobs, batches of 16",
        target: "≥ 1.0×",
        target_ratio: 1.0,
    },
    tw(
        "P11",
        "P11_gather",
        "gather of 100 000 futures completed from a worker thread",
        1.25,
    ),
    TimeWorkload {
        id: "P12",
        group: "P12_tcp_echo",
        workload: "64 TCP connections × 100 round trips of 64 bytes, loopback",
        target: "≥ 1.05×; ≥ 0.95× the mio floor",
        target_ratio: 1.05,
    },
];

/// SPEC §11 P15 (issue 15): `evloop::sync` against tokio::sync, one row per primitive
/// (`benches/sync.rs`; the cross-loop mpsc rows are `benches/sync_mpsc.rs`).
const SYNC_WORKLOADS: [TimeWorkload; 7] = [
    sw(
        "P15a",
        "P15a_mutex_uncontended",
        "`Mutex<u64>`: 100 000 lock / increment / unlock in one task",
    ),
    sw(
        "P15b",
        "P15b_mutex_contended",
        "`Mutex<u64>` contended by 100 tasks × 1 000 locks, each held across a `yield_now`",
    ),
    sw(
        "P15c",
        "P15c_semaphore",
        "`Semaphore(10)` shared by 1 000 tasks, each acquiring, yielding once, releasing",
    ),
    sw(
        "P15d",
        "P15d_queue_ping_pong",
        "`Queue` ping-pong: two tasks, two queues of 1 slot, 10 000 round trips (tokio: two \
         `mpsc::channel(1)`)",
    ),
    sw(
        "P15e",
        "P15e_queue_stream",
        "`Queue::new(1024)`: 1 000 000 items producer → consumer (tokio: `mpsc::channel(1024)`)",
    ),
    TimeWorkload {
        id: "P15f",
        group: "P15_mpsc_cross_loop_bounded",
        workload: "`sync::mpsc::channel(1024)`: 1 000 000 items from a task on one loop to a task \
                   on another (tokio: two `current_thread` runtimes on two threads)",
        target: "≥ 1.0× tokio mpsc",
        target_ratio: 1.0,
    },
    TimeWorkload {
        id: "P15f",
        group: "P15_mpsc_cross_loop_unbounded",
        workload: "`sync::mpsc::unbounded_channel()`: the same 1 000 000 items between two loops",
        target: "≥ 1.0× tokio mpsc",
        target_ratio: 1.0,
    },
];

/// SPEC §15 (issue 18): the buffered streams against tokio's (`benches/lines.rs`).
const STREAM_WORKLOADS: [TimeWorkload; 2] = [
    TimeWorkload {
        id: "N7",
        group: "N7_line_echo",
        workload: "line-protocol echo: 64 connections × 10 000 lines of 32 bytes (`start_server`, \
                   `BufReader::read_line`, `BufWriter`; tokio: `BufReader::read_line` + \
                   `write_all`)",
        target: "≥ 1.1×",
        target_ratio: 1.1,
    },
    TimeWorkload {
        id: "N8",
        group: "N8_ws_echo",
        workload: "WebSocket echo: 64 connections × 100 binary messages of 64 bytes, \
                   tokio-tungstenite on evloop (`tokio-io`) vs on tokio",
        target: "≥ 1.0×",
        target_ratio: 1.0,
    },
];

/// SPEC §11 P17 (issue 19): subprocesses and files against tokio::process and tokio::fs
/// (`benches/process.rs`, `benches/fs.rs`).
const PROCESS_FS_WORKLOADS: [TimeWorkload; 3] = [
    TimeWorkload {
        id: "P17",
        group: "P17_spawn",
        workload: "200 × spawn `true` and wait",
        target: "≥ 1.0×",
        target_ratio: 1.0,
    },
    TimeWorkload {
        id: "P17",
        group: "P17_file_read",
        workload: "read a 256 MiB file in 64 KiB chunks (`fs::File::read`; tokio: `fs::File` + \
                   `AsyncReadExt::read`)",
        target: "≥ 1.0×",
        target_ratio: 1.0,
    },
    TimeWorkload {
        id: "P17",
        group: "P17_small_reads",
        workload: "10 000 `fs::read` of 1 KiB files (100 files × 100), sequential awaits",
        target: "≥ 1.0×",
        target_ratio: 1.0,
    },
];

/// SPEC §11 P18: evloop::tls (futures-rustls) against tokio-rustls, both on rustls with
/// the ring provider and the same configurations (`benches/tls.rs`).
const TLS_WORKLOADS: [TimeWorkload; 2] = [
    TimeWorkload {
        id: "P18",
        group: "P18_tls_echo",
        workload: "64 TLS 1.3 connections × 100 round trips of 64 bytes, loopback \
                   (`evloop::tls`; tokio: tokio-rustls; rustls with ring on both)",
        target: "≥ 1.0× tokio-rustls on tokio",
        target_ratio: 1.0,
    },
    TimeWorkload {
        id: "P18",
        group: "P18_tls_handshake",
        workload: "1 000 full TLS handshakes, 16 in flight: TCP connect, `connect` / `accept`, \
                   `close_notify` and close (no resumption)",
        target: "≥ 1.0× tokio-rustls on tokio",
        target_ratio: 1.0,
    },
];

/// A loop-local P15 workload: ≥ 2× tokio::sync.
const fn sw(id: &'static str, group: &'static str, workload: &'static str) -> TimeWorkload {
    TimeWorkload {
        id,
        group,
        workload,
        target: "≥ 2× tokio::sync",
        target_ratio: 2.0,
    }
}

const fn tw(id: &'static str, group: &'static str, workload: &'static str, r: f64) -> TimeWorkload {
    TimeWorkload {
        id,
        group,
        workload,
        target: "≥ 1.25×",
        target_ratio: r,
    }
}

/// Every row, in SPEC order.
pub fn rows(results: &Results) -> Vec<Row> {
    let mut rows: Vec<Row> = TIME_WORKLOADS
        .iter()
        .map(|w| time_row(results, w))
        .collect();
    rows.insert(8, precision_row(results));
    rows.insert(10, wakeup_row(results));
    rows.push(http_row(results));
    rows.push(memory_row(
        results,
        "idle_task",
        "memory per idle task",
        "bytes per idle task (100 000 tasks awaiting one future)",
        "heap_bytes",
        (200.0, "≤ 200 B heap per task (smol's size)"),
    ));
    rows.push(memory_row(
        results,
        "idle_conn",
        "RSS per idle connection",
        "RSS per idle TCP connection (5 000 accepted, each task in `read`)",
        "rss_bytes",
        (450.0, "≤ 450 B RSS per connection"),
    ));
    rows.extend(SYNC_WORKLOADS.iter().map(|w| time_row(results, w)));
    rows.extend(
        budget::BUDGET_WORKLOADS
            .iter()
            .map(|w| budget::budget_row(results, w)),
    );
    rows.push(budget::starvation_row(results));
    rows.extend(PROCESS_FS_WORKLOADS.iter().map(|w| time_row(results, w)));
    rows.extend(TLS_WORKLOADS.iter().map(|w| time_row(results, w)));
    rows.push(group_row(results));
    rows.extend(STREAM_WORKLOADS.iter().map(|w| time_row(results, w)));
    for row in &mut rows {
        raised::apply(row, results);
    }
    rows
}

/// S1 (issue 10): the loop group's echo throughput, 1 vs 2 loops, and against tokio
/// `multi_thread` with 2 workers (not `current_thread`: the ratio column says which).
fn group_row(results: &Results) -> Row {
    let group = "S1_group_echo";
    let one = results.time(group, "evloop_1_loop");
    let two = results.time(group, "evloop_2_loops");
    let tokio = results.time(group, "tokio_multi_thread_2");
    let mut cells = vec!["–".to_string(); PEERS.len()];
    if let (Some(one), Some(two)) = (one, two) {
        cells[0] = format!("1 loop {}; 2 loops {}", fmt_time(one), fmt_time(two));
    }
    let scaling = one.zip(two).map(|(o, t)| o / t);
    let ratio = two.zip(tokio).map(|(e, t)| t / e);
    let mut other = Vec::new();
    if let Some(t) = tokio {
        other.push(format!("tokio multi_thread, 2 workers: {}", fmt_time(t)));
    }
    if let Some(s) = scaling {
        other.push(format!("scaling 1 → 2 loops: {s:.2}×"));
    }
    Row {
        id: "S1",
        short: "loop group, 2 loops",
        workload: "TCP echo, 64 connections × 20 × 16 messages of 64 bytes, `LoopGroup` with \
                   `SO_REUSEPORT` listeners; ratio: 2 loops vs tokio `multi_thread` with 2 workers",
        cells,
        other,
        ratio,
        target: "≥ 1.6× scaling 1 → 2 loops; ≥ 1.0× tokio multi_thread (2 workers)",
        target_ratio: Some(1.0),
        met: scaling.zip(ratio).map(|(s, r)| s >= 1.6 && r >= 1.0),
        raised: None,
        raised_met: None,
    }
}

fn time_row(results: &Results, w: &TimeWorkload) -> Row {
    let cells = PEERS
        .iter()
        .map(|p| results.time(w.group, p).map_or("–".into(), fmt_time))
        .collect();
    let other = results
        .times
        .get(w.group)
        .map(|fns| {
            fns.iter()
                .filter(|(name, _)| !PEERS.contains(&name.as_str()))
                .map(|(name, t)| format!("{name}: {}", fmt_time(*t)))
                .collect()
        })
        .unwrap_or_default();
    let evloop = results.time(w.group, EVLOOP);
    let ratio = evloop
        .zip(results.time(w.group, TOKIO_CT))
        .map(|(e, t)| t / e);
    let mut met = ratio.map(|r| r >= w.target_ratio);
    if w.id == "P12" {
        met = met.zip(floor_ratio(results)).map(|(m, f)| m && f >= 0.95);
    }
    Row {
        id: w.id,
        short: w.group.split_once('_').map_or(w.group, |(_, rest)| rest),
        workload: w.workload,
        cells,
        other,
        ratio,
        target: w.target,
        target_ratio: Some(w.target_ratio),
        met,
        raised: None,
        raised_met: None,
    }
}

fn precision_row(results: &Results) -> Row {
    let cells = PEERS
        .iter()
        .map(|p| {
            match (
                results.metric("precision", p, "p50_ms"),
                results.metric("precision", p, "p99_ms"),
            ) {
                (Some(p50), Some(p99)) => format!("p50 {p50:.3} ms, p99 {p99:.3} ms"),
                _ => "–".into(),
            }
        })
        .collect();
    let p50 = |p| results.metric("precision", p, "p50_ms");
    let p99 = results.metric("precision", EVLOOP, "p99_ms");
    Row {
        id: "P8",
        short: "timer precision (p50)",
        workload: "lateness of 1 ms sleeps (2 000 in a row)",
        cells,
        other: vec![],
        ratio: p50(EVLOOP).zip(p50(TOKIO_CT)).map(|(e, t)| t / e),
        target: "p50 ≤ 0.1 ms, p99 ≤ 0.5 ms",
        target_ratio: None,
        met: p50(EVLOOP).zip(p99).map(|(a, b)| a <= 0.1 && b <= 0.5),
        raised: None,
        raised_met: None,
    }
}

fn wakeup_row(results: &Results) -> Row {
    let per = results.metric("wakeups", EVLOOP, "per_1000");
    let mut cells = vec!["–".to_string(); PEERS.len()];
    if let (Some(per), Some(n), Some(remote)) = (
        per,
        results.metric("wakeups", EVLOOP, "wakeups"),
        results.metric("wakeups", EVLOOP, "remote_schedules"),
    ) {
        cells[0] = format!("{per:.3} per 1 000 ({n} for {remote})");
    }
    Row {
        id: "P9",
        short: "wake-ups per 1 000",
        workload: "wake-up syscalls per 1 000 cross-thread schedules (from `stats()`)",
        cells,
        other: vec![],
        ratio: None,
        target: "≤ 10 per 1 000",
        target_ratio: None,
        met: per.map(|p| p <= 10.0),
        raised: None,
        raised_met: None,
    }
}

fn http_row(results: &Results) -> Row {
    let group = "P13_http";
    let mut row = time_row(
        results,
        &TimeWorkload {
            id: "P13",
            group,
            workload: "hyper hello-world, HTTP/1.1 keep-alive, 64 connections",
            target: "≥ 1.0× hyper on tokio",
            target_ratio: 1.0,
        },
    );
    if !results.times.contains_key(group) {
        row.other = vec!["not measured yet: needs the hyper integration (issue 9)".into()];
    }
    row
}

fn memory_row(
    results: &Results,
    what: &str,
    short: &'static str,
    workload: &'static str,
    key: &str,
    (limit, target): (f64, &'static str),
) -> Row {
    let cells = PEERS
        .iter()
        .map(|p| {
            match (
                results.metric(what, p, "heap_bytes"),
                results.metric(what, p, "rss_bytes"),
            ) {
                (Some(heap), Some(rss)) => format!("heap {heap:.0} B, RSS {rss:.0} B"),
                _ => "–".into(),
            }
        })
        .collect();
    let e = results.metric(what, EVLOOP, key);
    let t = results.metric(what, TOKIO_CT, key);
    let ratio = e.zip(t).map(|(e, t)| t / e);
    Row {
        id: "P14",
        short,
        workload,
        cells,
        other: vec![format!("compared: {}", key.replace('_', " "))],
        ratio,
        target,
        // The plot's tick: the limit as a ratio to tokio's bytes.
        target_ratio: t.map(|t| t / limit).or(Some(1.0)),
        met: e.map(|e| e <= limit),
        raised: None,
        raised_met: None,
    }
}

/// P12: the mio floor's time over evloop's (> 1: evloop is faster than the floor).
fn floor_ratio(results: &Results) -> Option<f64> {
    results
        .time("P12_tcp_echo", EVLOOP)
        .zip(results.time("P12_tcp_echo", MIO_FLOOR))
        .map(|(e, f)| f / e)
}

/// A verdict as the table writes it.
fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

/// A verdict read back from the table (`None` for anything but "yes" and "**no**").
fn parse_verdict(cell: &str) -> Option<bool> {
    match cell {
        "yes" => Some(true),
        "**no**" => Some(false),
        _ => None,
    }
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

/// What the machine is, for the report's header.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let output = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores available, {mem_gib:.0} GiB RAM; Linux {}; {}; {}",
        kernel.trim(),
        output("rustc", &["-V"]),
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    )
}

/// What a report takes over from the previous `BENCHMARKS.md` for the workloads this run
/// has no results for (`cargo xtask bench sync` runs one bench: its rows are rewritten,
/// every other row stays as it was).
#[derive(Default)]
pub struct Carried {
    /// The rows carried over, grouped by the run they come from: that run's `Machine:`
    /// line (machine and date), and the ids of its rows, in table order, each once.
    pub runs: Vec<(String, Vec<&'static str>)>,
    /// The previous report's P12 mio-floor sentence, when P12 is carried over.
    pub floor_line: Option<String>,
}

impl Carried {
    /// The ids of every row carried over.
    pub fn ids(&self) -> Vec<&'static str> {
        self.runs
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }
}

const FLOOR_LINE: &str = "P12 against the raw mio floor";
const CARRIED_NOTE: &str =
    "Carried over unchanged from an earlier run (no results for them in `target/` this time): ";
const CARRIED_RUN: &str = ". Measured in the run whose report said: ";

impl Row {
    /// Whether this run measured anything of the row.
    fn measured(&self) -> bool {
        self.ratio.is_some() || self.met.is_some() || self.cells.iter().any(|c| c != "–")
    }

    /// `| id | workload |`: the start of the row's line, the same in every report.
    fn key(&self) -> String {
        format!("| {} | {} |", self.id, self.workload)
    }
}

/// Fills the rows this run did not measure from their lines in `previous` (the current
/// `BENCHMARKS.md`), numbers, ratio and verdict as they were, and notes which run each
/// comes from: the previous report's, or, for a row that report had itself carried
/// over, the run its note names.
pub fn carry_over(rows: &mut [Row], results: &Results, previous: &str) -> Carried {
    let previous_machine = previous
        .lines()
        .find(|l| l.starts_with("Machine: "))
        .map_or("(no machine line)", |l| l.trim_end_matches('.'));
    // The previous report's own carried-over notes: id → the run it named.
    let older: Vec<(&str, Vec<&str>)> = previous
        .lines()
        .filter_map(|l| l.strip_prefix(CARRIED_NOTE))
        .filter_map(|l| l.split_once(CARRIED_RUN))
        .map(|(ids, run)| (run.trim_end_matches('.'), ids.split(", ").collect()))
        .collect();
    let mut carried = Carried::default();
    for row in rows.iter_mut().filter(|r| !r.measured()) {
        let key = row.key();
        let Some(line) = previous.lines().find(|l| l.starts_with(&key)) else {
            continue;
        };
        let Some(fields) = line
            .strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .map(|l| l.split(" | ").collect::<Vec<_>>())
            // 12 fields since the raised-target columns (issue 17), 10 before.
            .filter(|f| f.len() == 10 || f.len() == 12)
        else {
            continue;
        };
        let cells: Vec<String> = fields[2..6].iter().map(|c| c.to_string()).collect();
        let ratio = fields[7].strip_suffix('×').and_then(|r| r.parse().ok());
        let met = parse_verdict(fields[9]);
        if ratio.is_none() && met.is_none() && cells.iter().all(|c| c == "–") {
            // Not measured there either: nothing to carry.
            continue;
        }
        row.cells = cells;
        row.other = if fields[6].is_empty() {
            vec![]
        } else {
            vec![fields[6].to_string()]
        };
        row.ratio = ratio;
        row.met = met;
        row.raised_met = fields.get(11).and_then(|c| parse_verdict(c));
        let run = older
            .iter()
            .find(|(_, ids)| ids.contains(&row.id))
            .map_or(previous_machine, |(run, _)| run);
        match carried.runs.iter_mut().find(|(r, _)| r == run) {
            Some((_, ids)) if ids.contains(&row.id) => {}
            Some((_, ids)) => ids.push(row.id),
            None => carried.runs.push((run.to_string(), vec![row.id])),
        }
    }
    if results.time("P12_tcp_echo", MIO_FLOOR).is_none() {
        carried.floor_line = previous
            .lines()
            .find(|l| l.starts_with(FLOOR_LINE))
            .map(str::to_string);
    }
    carried
}

/// The whole `BENCHMARKS.md`.
pub fn markdown(
    machine: &str,
    rows: &[Row],
    results: &Results,
    carried: &Carried,
    analysis: Option<&str>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# evloop benchmarks\n\n\
         Generated by `cargo xtask bench` (do not edit by hand): every workload of SPEC §11, \
         evloop and its peers in the same run, release mode, criterion medians of one \
         iteration. **Ratio** is evloop against tokio `current_thread` (its time divided by \
         evloop's; for memory, its bytes divided by evloop's): above 1 means evloop is \
         faster or smaller. The workloads, and how each peer runs them, are described at \
         the top of each file in `benches/`.\n\n\
         Machine: {machine}.\n\n\
         ![ratios](benchmarks.svg)\n"
    );
    let _ = writeln!(
        md,
        "| id | workload | evloop | tokio current_thread | tokio multi_thread (1 worker) | smol | also measured | ratio | target | met | raised target (second round) | met (raised) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let raised_met = r.raised.map_or("–", |_| verdict(r.raised_met));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.workload,
            r.cells[0],
            r.cells[1],
            r.cells[2],
            r.cells[3],
            r.other.join("; "),
            r.ratio.map_or("–".into(), |x| format!("{x:.2}×")),
            r.target,
            verdict(r.met),
            r.raised.unwrap_or("–"),
            raised_met
        );
    }
    if let Some(floor) = floor_ratio(results) {
        let _ = writeln!(
            md,
            "\n{FLOOR_LINE} (the same echo with no runtime): {floor:.2}× (target ≥ 0.95×; raised \
             ≥ 1.0×)."
        );
    } else if let Some(line) = &carried.floor_line {
        let _ = writeln!(md, "\n{line}");
    }
    for (run, ids) in &carried.runs {
        let _ = writeln!(md, "\n{CARRIED_NOTE}{}{CARRIED_RUN}{run}.", ids.join(", "));
    }
    let _ = writeln!(
        md,
        "\nRegenerate: `cargo xtask bench` (about 10 minutes; `--report-only` rewrites this \
         file from the results already in `target/`). Criterion's full reports are in \
         `target/criterion/`."
    );
    // The hand-written analysis of the misses (profiles and plans), kept next to the
    // benches so that it survives regeneration.
    if let Some(analysis) = analysis {
        let _ = write!(md, "\n{analysis}");
    }
    md
}

#[cfg(test)]
mod tests;
