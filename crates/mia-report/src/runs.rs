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
            report,
            is_member,
        })
    }
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
