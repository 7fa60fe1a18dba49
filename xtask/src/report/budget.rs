//! The P16 rows (SPEC §11, issue 16): what the cooperative budget (K7) costs on P3 and
//! P12 (`benches/budget.rs`), and the starvation probe (`benches/metrics/starvation.rs`).

use super::{EVLOOP, EVLOOP_NO_BUDGET, PEERS, Row, TOKIO_CT, fmt_time};
use crate::results::Results;

/// SPEC §11 P16 (issue 16, K7): P3 and P12 on evloop with the cooperative budget
/// (function `evloop`) and without it (`evloop_no_budget`, `coop_budget(None)`),
/// `benches/budget.rs`: (group, short, workload).
pub(super) const BUDGET_WORKLOADS: [(&str, &str, &str); 2] = [
    (
        "P16_yield_many",
        "budget cost, yield_many",
        "P3 `yield_many` (200 tasks × 1 000 `yield_now`) on evloop, cooperative budget on vs \
         off (`coop_budget(None)`), each iteration running both; ratio: time off / time on",
    ),
    (
        "P16_tcp_echo",
        "budget cost, tcp_echo",
        "P12 `tcp_echo` (64 connections × 100 round trips of 64 bytes) on evloop, cooperative \
         budget on vs off (`coop_budget(None)`), each iteration running both; ratio: time off \
         / time on",
    ),
];

/// The P16 target: the budget makes the workload at most 2 % slower.
const BUDGET_TARGET_RATIO: f64 = 0.98;

/// One P16 row: evloop's time with and without the budget (criterion's medians); the
/// ratio is off / on (the budget's cost: 0.98× is 2 % slower), taken from the bench's
/// paired summary — the median over iterations that ran both variants back to back,
/// which drift between criterion's two measurement windows does not move — and from
/// the two medians only when the summary is missing.
pub(super) fn budget_row(
    results: &Results,
    (group, short, workload): &(&str, &'static str, &'static str),
) -> Row {
    let on = results.time(group, EVLOOP);
    let off = results.time(group, EVLOOP_NO_BUDGET);
    let mut cells = vec!["–".to_string(); PEERS.len()];
    if let (Some(on), Some(off)) = (on, off) {
        cells[0] = format!("budget on {}; budget off {}", fmt_time(on), fmt_time(off));
    }
    let paired = results.paired(group, "ratio");
    let ratio = paired.or(on.zip(off).map(|(on, off)| off / on));
    let mut other = Vec::new();
    if let Some(r) = ratio {
        other.push(format!("budget cost {:+.1} %", (1.0 / r - 1.0) * 100.0));
    }
    match (paired, results.paired(group, "pairs")) {
        (Some(_), Some(n)) => other.push(format!("ratio: median of {n:.0} paired iterations")),
        _ if ratio.is_some() => other.push("ratio: of the two medians (no paired summary)".into()),
        _ => {}
    }
    Row {
        id: "P16",
        short,
        workload,
        cells,
        other,
        ratio,
        target: "≤ 2 % slower",
        target_ratio: Some(BUDGET_TARGET_RATIO),
        met: ratio.map(|r| r > BUDGET_TARGET_RATIO),
        raised: None,
        raised_met: None,
    }
}

/// The starvation probe of `benches/metrics/starvation.rs` (K7 / Q7, issue 16): how many
/// lines a reader of an always-full socket gets through before a sibling first runs, and
/// how late the sibling's 1 ms sleep returns. The ratio is tokio's lateness over evloop's
/// (above 1: evloop's sibling waits less); `evloop_no_budget` shows the same loop without
/// the budget.
pub(super) fn starvation_row(results: &Results) -> Row {
    let what = "starvation";
    let late = |p| results.metric(what, p, "sibling_lateness_ms");
    let cell = |p| {
        results
            .metric(what, p, "lines_before_sibling")
            .zip(late(p))
            .map(|(lines, late)| {
                format!("{lines:.0} lines before the sibling ran, sleep {late:.2} ms late")
            })
    };
    let cells = PEERS
        .iter()
        .map(|p| cell(p).unwrap_or_else(|| "–".into()))
        .collect();
    let other = cell(EVLOOP_NO_BUDGET)
        .map(|c| vec![format!("evloop without the budget: {c}")])
        .unwrap_or_default();
    let ratio = late(EVLOOP).zip(late(TOKIO_CT)).map(|(e, t)| t / e);
    Row {
        id: "P16",
        short: "starvation probe",
        workload: "starvation probe (K7, Q7): a task reads 96-byte lines with `read_line` from a \
                   Unix socket a peer thread keeps full; lines it reads before a sibling spawned \
                   next to it first runs, and how late the sibling's 1 ms sleep returns counted \
                   from its spawn (median of 5 runs); ratio: tokio's lateness / evloop's",
        cells,
        other,
        ratio,
        target: "sibling no later than on tokio",
        target_ratio: Some(1.0),
        met: ratio.map(|r| r >= 1.0),
        raised: None,
        raised_met: None,
    }
}
