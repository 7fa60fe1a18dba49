//! Reading what the benches left in `target/`: criterion's medians and the metrics
//! bench's JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Every measurement found.
pub struct Results {
    /// group → function → median time of one iteration, in nanoseconds.
    pub times: BTreeMap<String, BTreeMap<String, f64>>,
    /// `target/evloop-bench/metrics.json`: measurement → peer → key → value.
    pub metrics: Value,
    /// `target/evloop-bench/<group>.paired.json` (P16, `benches/budget.rs`): group →
    /// the median of the paired ratios and its companions.
    pub paired: BTreeMap<String, Value>,
}

impl Results {
    pub fn load(target: &Path) -> Result<Results, String> {
        let criterion = target.join("criterion");
        let mut times: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        let groups = std::fs::read_dir(&criterion).map_err(|e| {
            format!(
                "no criterion results in {} ({e}); run without --report-only",
                criterion.display()
            )
        })?;
        for group in groups.flatten() {
            let Ok(functions) = std::fs::read_dir(group.path()) else {
                continue;
            };
            for function in functions.flatten() {
                let file = function.path().join("new").join("estimates.json");
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let json: Value =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                if let Some(median) = json["median"]["point_estimate"].as_f64() {
                    times
                        .entry(group.file_name().to_string_lossy().into_owned())
                        .or_default()
                        .insert(function.file_name().to_string_lossy().into_owned(), median);
                }
            }
        }
        let metrics_file = target.join("evloop-bench").join("metrics.json");
        let metrics = match std::fs::read_to_string(&metrics_file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", metrics_file.display()))?,
            Err(_) => Value::Null,
        };
        let mut paired = BTreeMap::new();
        for entry in std::fs::read_dir(target.join("evloop-bench"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(group) = name.strip_suffix(".paired.json") else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let json = serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            paired.insert(group.to_string(), json);
        }
        Ok(Results {
            times,
            metrics,
            paired,
        })
    }

    /// The median of `group`/`function`, in nanoseconds.
    pub fn time(&self, group: &str, function: &str) -> Option<f64> {
        self.times.get(group)?.get(function).copied()
    }

    /// A value of a group's paired summary (P16).
    pub fn paired(&self, group: &str, key: &str) -> Option<f64> {
        self.paired.get(group)?[key].as_f64()
    }

    /// A value of the metrics bench.
    pub fn metric(&self, what: &str, peer: &str, key: &str) -> Option<f64> {
        self.metrics[what][peer][key].as_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Criterion's medians, the metrics JSON and the P16 paired summaries, read from a
    /// target directory laid out as the benches leave it.
    #[test]
    fn load_reads_every_kind_of_result() {
        let target = std::env::temp_dir().join(format!("xtask-results-{}", std::process::id()));
        let estimates = target.join("criterion/P16_tcp_echo/evloop/new");
        std::fs::create_dir_all(&estimates).unwrap();
        std::fs::write(
            estimates.join("estimates.json"),
            r#"{"median":{"point_estimate":90000000.0}}"#,
        )
        .unwrap();
        let bench = target.join("evloop-bench");
        std::fs::create_dir_all(&bench).unwrap();
        std::fs::write(
            bench.join("metrics.json"),
            r#"{"starvation":{"evloop":{"sibling_lateness_ms":0.75}}}"#,
        )
        .unwrap();
        std::fs::write(
            bench.join("P16_tcp_echo.paired.json"),
            r#"{"ratio":0.995,"pairs":94,"on_ms":88.0,"off_ms":87.6}"#,
        )
        .unwrap();
        let results = Results::load(&target);
        std::fs::remove_dir_all(&target).unwrap();
        let results = results.unwrap();
        assert_eq!(results.time("P16_tcp_echo", "evloop"), Some(9e7));
        assert_eq!(
            results.metric("starvation", "evloop", "sibling_lateness_ms"),
            Some(0.75)
        );
        assert_eq!(results.paired("P16_tcp_echo", "ratio"), Some(0.995));
        assert_eq!(results.paired("P16_tcp_echo", "pairs"), Some(94.0));
        assert_eq!(results.paired("P16_yield_many", "ratio"), None);
    }
}
