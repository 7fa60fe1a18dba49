//! The report's unit tests: rows, their order and the carry-over between runs.

use std::collections::BTreeMap;

use super::*;

fn results(times: &[(&str, &str, f64)]) -> Results {
    let mut map: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (group, function, t) in times {
        map.entry(group.to_string())
            .or_default()
            .insert(function.to_string(), *t);
    }
    Results {
        times: map,
        metrics: serde_json::Value::Null,
        paired: BTreeMap::new(),
    }
}

fn table_lines(md: &str) -> Vec<&str> {
    md.lines()
        .filter(|l| l.starts_with("| P") || l.starts_with("| S"))
        .collect()
}

/// A full report, then a run of P15 alone: every other row comes back as it was, the
/// P15 rows are the new ones, and a third run of P1 alone attributes each carried
/// row to the run that measured it.
#[test]
fn rows_without_results_are_carried_over() {
    let mut all = vec![
        ("P1_spawn_many_local", EVLOOP, 2e6),
        ("P1_spawn_many_local", TOKIO_CT, 3e6),
        ("P12_tcp_echo", EVLOOP, 80e6),
        ("P12_tcp_echo", TOKIO_CT, 90e6),
        ("P12_tcp_echo", MIO_FLOOR, 78e6),
    ];
    for w in &SYNC_WORKLOADS {
        all.push((w.group, EVLOOP, 1e6));
        all.push((w.group, TOKIO_CT, 1e6));
    }
    let first_results = results(&all);
    let mut rows_first = rows(&first_results);
    let none = carry_over(&mut rows_first, &first_results, "");
    assert!(none.runs.is_empty());
    let first = markdown("M1", &rows_first, &first_results, &none, None);

    let sync_only = results(&[
        ("P15a_mutex_uncontended", EVLOOP, 1e6),
        ("P15a_mutex_uncontended", TOKIO_CT, 4e6),
    ]);
    let mut rows_second = rows(&sync_only);
    let carried = carry_over(&mut rows_second, &sync_only, &first);
    let second = markdown("M2", &rows_second, &sync_only, &carried, None);
    let (old, new) = (table_lines(&first), table_lines(&second));
    assert_eq!(old.len(), new.len());
    for (o, n) in old.iter().zip(&new) {
        if n.starts_with("| P15a |") {
            assert!(n.contains("| 4.00× |"), "{n}");
            assert!(o.contains("| 1.00× |"), "{o}");
        } else {
            assert_eq!(o, n);
        }
    }
    let floor = |md: &str| {
        md.lines()
            .find(|l| l.starts_with(FLOOR_LINE))
            .map(str::to_string)
    };
    assert!(floor(&first).is_some_and(|l| l.contains("0.97×") || l.contains("0.98×")));
    assert_eq!(floor(&first), floor(&second));
    assert_eq!(carried.runs.len(), 1);
    assert_eq!(carried.runs[0].0, "Machine: M1");
    assert!(carried.ids().contains(&"P1"));
    assert!(carried.ids().contains(&"P15b"));
    assert!(!carried.ids().contains(&"P15a"));
    // P13 was not measured in the first run: there is nothing to carry.
    assert!(!carried.ids().contains(&"P13"));

    let p1_only = results(&[
        ("P1_spawn_many_local", EVLOOP, 1e6),
        ("P1_spawn_many_local", TOKIO_CT, 3e6),
    ]);
    let mut rows_third = rows(&p1_only);
    let carried = carry_over(&mut rows_third, &p1_only, &second);
    let third = markdown("M3", &rows_third, &p1_only, &carried, None);
    let run_of = |id: &str| {
        carried
            .runs
            .iter()
            .find(|(_, ids)| ids.contains(&id))
            .map(|(run, _)| run.as_str())
    };
    assert_eq!(run_of("P15a"), Some("Machine: M2"));
    assert_eq!(run_of("P15b"), Some("Machine: M1"));
    assert_eq!(run_of("P12"), Some("Machine: M1"));
    assert_eq!(run_of("P1"), None);
    assert!(third.contains("| P15a | `Mutex<u64>`"));
    assert!(
        table_lines(&third)
            .iter()
            .any(|l| l.starts_with("| P1 |") && l.contains("3.00×"))
    );
}

/// The P16 rows come after the P15 ones (before S1): two budget rows whose ratio is
/// the time without the budget over the time with it (met above 0.98), then the
/// starvation probe from the metrics JSON; a later run of one P16 bench carries the
/// others over unchanged.
#[test]
fn budget_rows_and_starvation_probe() {
    let mut first_results = results(&[
        ("P16_yield_many", EVLOOP, 5.0e6),
        ("P16_yield_many", EVLOOP_NO_BUDGET, 4.95e6),
        ("P16_tcp_echo", EVLOOP, 90e6),
        ("P16_tcp_echo", EVLOOP_NO_BUDGET, 87e6),
    ]);
    let probe = |lines: u64, late: f64| serde_json::json!({"lines_before_sibling": lines, "sibling_lateness_ms": late});
    first_results.metrics = serde_json::json!({"starvation": {
        EVLOOP: probe(5637, 0.75),
        EVLOOP_NO_BUDGET: probe(300_000, 15.5),
        TOKIO_CT: probe(7042, 1.0),
    }});
    first_results.paired.insert(
        "P16_tcp_echo".into(),
        serde_json::json!({"ratio": 0.995, "pairs": 94, "on_ms": 88.0, "off_ms": 87.6}),
    );
    let mut rows_first = rows(&first_results);
    let ids: Vec<&str> = rows_first.iter().map(|r| r.id).collect();
    let p16 = ids.iter().position(|&id| id == "P16").unwrap();
    assert_eq!(
        &ids[p16 - 2..],
        [
            "P15f", "P15f", "P16", "P16", "P16", "P17", "P17", "P17", "P18", "P18", "S1", "N7",
            "N8"
        ]
    );

    let (yields, echo, probe_row) = (&rows_first[p16], &rows_first[p16 + 1], &rows_first[p16 + 2]);
    assert_eq!(yields.short, "budget cost, yield_many");
    assert_eq!(yields.cells[0], "budget on 5.00 ms; budget off 4.95 ms");
    assert!((yields.ratio.unwrap() - 0.99).abs() < 1e-9);
    assert_eq!(yields.met, Some(true));
    assert_eq!(
        yields.other,
        [
            "budget cost +1.0 %",
            "ratio: of the two medians (no paired summary)"
        ]
    );
    // The paired summary, when there is one, is the ratio (the medians stay the cells).
    assert!((echo.ratio.unwrap() - 0.995).abs() < 1e-9);
    assert_eq!(echo.met, Some(true));
    assert_eq!(echo.cells[0], "budget on 90.00 ms; budget off 87.00 ms");
    assert_eq!(
        echo.other,
        [
            "budget cost +0.5 %",
            "ratio: median of 94 paired iterations"
        ]
    );
    assert_eq!(probe_row.short, "starvation probe");
    assert_eq!(
        probe_row.cells[0],
        "5637 lines before the sibling ran, sleep 0.75 ms late"
    );
    assert_eq!(probe_row.cells[3], "–");
    assert!(probe_row.other[0].starts_with("evloop without the budget: 300000 lines"));
    assert!((probe_row.ratio.unwrap() - 1.0 / 0.75).abs() < 1e-9);
    assert_eq!(probe_row.met, Some(true));

    let none = carry_over(&mut rows_first, &first_results, "");
    let first = markdown("M1", &rows_first, &first_results, &none, None);
    let yields_only = results(&[
        ("P16_yield_many", EVLOOP, 5.0e6),
        ("P16_yield_many", EVLOOP_NO_BUDGET, 5.1e6),
    ]);
    let mut rows_second = rows(&yields_only);
    let carried = carry_over(&mut rows_second, &yields_only, &first);
    let second = markdown("M2", &rows_second, &yields_only, &carried, None);
    let p16_lines = |md: &str| -> Vec<String> {
        table_lines(md)
            .into_iter()
            .filter(|l| l.starts_with("| P16 |"))
            .map(str::to_string)
            .collect()
    };
    let (old, new) = (p16_lines(&first), p16_lines(&second));
    assert_eq!(old.len(), 3);
    assert_ne!(old[0], new[0]);
    assert!(
        new[0].contains("| 1.02× |") && new[0].contains("| yes |"),
        "{}",
        new[0]
    );
    assert_eq!(old[1..], new[1..]);
    assert_eq!(carried.ids(), ["P16"]);
}

/// The second round's raised targets sit next to the first ones: a ratio can meet the
/// first and miss the raised one, P7's raised target also bounds the time per timer,
/// and P14 is checked against SPEC's byte limits, not against tokio.
#[test]
fn raised_targets_are_checked_beside_the_first_ones() {
    let r = results(&[
        ("P1_spawn_many_local", EVLOOP, 1e6),
        ("P1_spawn_many_local", TOKIO_CT, 1.4e6),
        ("P5_chained_spawn", EVLOOP, 1e6),
        ("P5_chained_spawn", TOKIO_CT, 1.6e6),
        // 3× tokio, but 120 ns per timer.
        ("P7_timers_insert_cancel", EVLOOP, 120e6),
        ("P7_timers_insert_cancel", TOKIO_CT, 360e6),
        ("P12_tcp_echo", EVLOOP, 80e6),
        ("P12_tcp_echo", TOKIO_CT, 90e6),
        ("P12_tcp_echo", MIO_FLOOR, 82e6),
    ]);
    let rows = rows(&r);
    let row = |id: &str, short: &str| {
        rows.iter()
            .find(|x| x.id == id && x.short.contains(short))
            .unwrap_or_else(|| panic!("no row {id} {short}"))
    };
    let p1 = row("P1", "");
    assert_eq!((p1.met, p1.raised_met), (Some(true), Some(false)));
    let p5 = row("P5", "");
    assert_eq!((p5.met, p5.raised_met), (Some(true), Some(true)));
    let p7 = row("P7", "insert_cancel");
    assert_eq!((p7.met, p7.raised_met), (Some(true), Some(false)));
    let p12 = row("P12", "");
    // 1.125× tokio and 1.025× the floor: both rounds met.
    assert_eq!((p12.met, p12.raised_met), (Some(true), Some(true)));
    let p3 = row("P3", "");
    assert_eq!(
        (p3.raised, p3.raised_met),
        (None, None),
        "P3 has no raised target"
    );
    let md = markdown("M", &rows, &r, &Carried::default(), None);
    let line = md.lines().find(|l| l.starts_with("| P1 |")).unwrap();
    assert!(
        line.ends_with("| ≥ 1.25× | yes | ≥ 1.5× | **no** |"),
        "{line}"
    );
}

/// P14's verdict is SPEC's limit (≤ 200 B heap per task, ≤ 450 B RSS per
/// connection), whatever tokio's bytes are.
#[test]
fn p14_is_checked_against_the_spec_limits() {
    let mut r = results(&[]);
    r.metrics = serde_json::json!({
        "idle_task": {
            "evloop": {"heap_bytes": 250.0, "rss_bytes": 300.0},
            "tokio_current_thread": {"heap_bytes": 266.0, "rss_bytes": 457.0}
        },
        "idle_conn": {
            "evloop": {"heap_bytes": 500.0, "rss_bytes": 440.0},
            "tokio_current_thread": {"heap_bytes": 512.0, "rss_bytes": 920.0}
        }
    });
    let rows = rows(&r);
    let p14: Vec<&Row> = rows.iter().filter(|x| x.id == "P14").collect();
    assert_eq!(p14.len(), 2);
    assert_eq!(
        p14[0].met,
        Some(false),
        "250 B per task is over 200 B although below tokio"
    );
    assert_eq!(p14[1].met, Some(true), "440 B RSS per connection");
}
