//! The raised targets of SPEC §11's second round (issue 17), shown next to the first
//! ones: P1, P4, P5 ≥ 1.5×; P7 insert + cancel ≥ 2× and ≤ 100 ns per timer at
//! 1 000 000 timers, fire ≥ 1.5×; P12 ≥ 1.10× tokio and ≥ 1.0× the raw mio floor;
//! P13 ≥ 1.10× hyper on tokio.
//!
//! Owns: which row has a raised target and how it is checked. Must not touch: the first
//! target and its verdict (the row keeps both).

use super::{EVLOOP, Row, floor_ratio};
use crate::results::Results;

/// Timers in P7's insert + cancel body (`benches/timers.rs`).
const P7_TIMERS: f64 = 1_000_000.0;

/// Sets the row's raised target and its verdict, if it has one.
pub(super) fn apply(row: &mut Row, results: &Results) {
    let ratio_at_least = |r: f64| row.ratio.map(|x| x >= r);
    let (target, met) = match (row.id, row.short) {
        ("P1" | "P4" | "P5", _) => ("≥ 1.5×", ratio_at_least(1.5)),
        ("P7", "timers_insert_cancel") => {
            let per_timer = results
                .time("P7_timers_insert_cancel", EVLOOP)
                .map(|ns| ns / P7_TIMERS);
            (
                "≥ 2× and ≤ 100 ns per timer",
                ratio_at_least(2.0)
                    .zip(per_timer)
                    .map(|(r, t)| r && t <= 100.0),
            )
        }
        ("P7", "timers_fire") => ("≥ 1.5×", ratio_at_least(1.5)),
        ("P12", _) => (
            "≥ 1.10×; ≥ 1.0× the mio floor",
            ratio_at_least(1.10)
                .zip(floor_ratio(results))
                .map(|(r, f)| r && f >= 1.0),
        ),
        ("P13", _) => ("≥ 1.10× hyper on tokio", ratio_at_least(1.10)),
        _ => return,
    };
    row.raised = Some(target);
    // A row this run did not measure gets its verdict from `carry_over`.
    row.raised_met = met;
}
