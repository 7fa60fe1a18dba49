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
        Ok(Results { times, metrics })
    }

    /// The median of `group`/`function`, in nanoseconds.
    pub fn time(&self, group: &str, function: &str) -> Option<f64> {
        self.times.get(group)?.get(function).copied()
    }

    /// A value of the metrics bench.
    pub fn metric(&self, what: &str, peer: &str, key: &str) -> Option<f64> {
        self.metrics[what][peer][key].as_f64()
    }
}
