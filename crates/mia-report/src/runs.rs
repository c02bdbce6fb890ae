//! The report's input: each run's attack results as `mia attack` wrote them, and the report's
//! settings.

use std::path::{Path, PathBuf};

use mia_attack::AttackReport;
use mia_core::layout::RunLayout;
use mia_core::npy::{NpyArray, NpyData};

use crate::ReportError;

/// One run's attack results.
#[derive(Debug, Clone)]
pub struct RunResults {
    /// Where they came from.
    pub dir: PathBuf,
    /// `attacks.json` with scores.
    pub report: AttackReport,
    /// Ground-truth membership of the candidates.
    pub is_member: Vec<bool>,
    /// Dataset indices of the candidates (`signals/indices.npy`), when present.
    pub indices: Option<Vec<i64>>,
    /// Labels of the candidates, when present.
    pub labels: Option<Vec<i64>>,
    /// The target's training time in seconds (`wall_seconds` of the run's `summary.json`,
    /// summed over resumed sessions and, for two-stage recipes, both stages), when present.
    pub train_seconds: Option<f64>,
    /// The PNG sample grid of the synthetic images the run was fine-tuned on (SynthShield:
    /// `grid.png` of the `synthetic_dir` named in its `config.json`), when it can be read.
    pub synthetic_grid: Option<Vec<u8>>,
}

impl RunResults {
    /// Reads a folder written by `mia attack`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let (report, is_member) = AttackReport::read(dir)
            .map_err(|e| ReportError::Input { path: dir.into(), reason: e.to_string() })?;
        let signals = RunLayout::new(dir).signals();
        let ints = |name: PathBuf| -> Option<Vec<i64>> {
            let bytes = std::fs::read(name).ok()?;
            match NpyArray::from_bytes(&bytes).ok()?.data {
                NpyData::I64(v) if v.len() == is_member.len() => Some(v),
                _ => None,
            }
        };
        Ok(Self {
            dir: dir.into(),
            indices: ints(signals.indices()),
            labels: ints(signals.labels()),
            train_seconds: train_seconds(&RunLayout::new(dir).summary()),
            synthetic_grid: synthetic_grid(&RunLayout::new(dir).config()),
            report,
            is_member,
        })
    }
}

/// `wall_seconds` of a training summary; `None` when the file is absent (an imported run) or
/// does not hold a positive number.
fn train_seconds(summary: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(summary).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("wall_seconds")?.as_f64().filter(|s| s.is_finite() && *s > 0.0)
}

/// Report settings.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Title.
    pub title: String,
    /// Also render PNG copies of the plots.
    pub png: bool,
    /// Rows in the most-vulnerable-examples table.
    pub vulnerable: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { title: "MIA Lab report".into(), png: true, vulnerable: 10 }
    }
}

/// The `grid.png` of the first `synthetic_dir` named anywhere in a run's `config.json` (a path
/// as the training command was given it, so relative to where it ran), when it is a PNG.
fn synthetic_grid(config: &Path) -> Option<Vec<u8>> {
    fn find(v: &serde_json::Value) -> Option<&str> {
        match v {
            serde_json::Value::Object(map) => map
                .get("synthetic_dir")
                .and_then(serde_json::Value::as_str)
                .or_else(|| map.values().find_map(find)),
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let text = std::fs::read_to_string(config).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let bytes = std::fs::read(Path::new(find(&value)?).join("grid.png")).ok()?;
    bytes.starts_with(b"\x89PNG\r\n\x1a\n").then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::{synthetic_grid, train_seconds};

    fn seconds_of(text: Option<&str>) -> Option<f64> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("summary.json");
        if let Some(t) = text {
            std::fs::write(&path, t).ok()?;
        }
        train_seconds(&path)
    }

    #[test]
    fn training_seconds_come_from_the_summary() {
        assert_eq!(seconds_of(Some(r#"{"wall_seconds": 27.5, "test_acc": 0.5}"#)), Some(27.5));
    }

    #[test]
    fn a_missing_or_malformed_summary_gives_no_training_seconds() {
        assert_eq!(seconds_of(None), None);
        assert_eq!(seconds_of(Some("not json")), None);
        assert_eq!(seconds_of(Some(r#"{"wall_seconds": "soon"}"#)), None);
        assert_eq!(seconds_of(Some(r#"{"wall_seconds": 0.0}"#)), None);
    }

    #[test]
    fn the_synthetic_grid_is_found_through_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let synthetic = dir.path().join("synthetic");
        std::fs::create_dir(&synthetic).unwrap();
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        std::fs::write(synthetic.join("grid.png"), &png).unwrap();
        let config = dir.path().join("config.json");
        let named = serde_json::json!({ "prune": { "synthetic_dir": synthetic } });
        std::fs::write(&config, named.to_string()).unwrap();
        assert_eq!(synthetic_grid(&config), Some(png));
        std::fs::write(synthetic.join("grid.png"), b"not a png").unwrap();
        assert_eq!(synthetic_grid(&config), None, "only a PNG");
        std::fs::write(&config, r#"{"prune": {"synthetic_dir": null}}"#).unwrap();
        assert_eq!(synthetic_grid(&config), None, "fine-tuned on real data");
    }
}
