//! What `mia attack` writes and `mia report` reads: `attacks.json` (an [`AttackReport`]),
//! `attack_scores.npy` (`float32 [A, N]`, one row per attack in the JSON's order) and
//! `attack_membership.npy` (`bool [N]`), all in one folder (the run directory by default).

use std::path::Path;

use mia_core::npy::{NpyArray, NpyData};
use serde::{Deserialize, Serialize};

use crate::{AttackError, AttackResult};

/// Everything one `mia attack` call found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    /// Format version.
    pub version: u32,
    /// What was attacked (run directory or `.npy` files).
    pub source: String,
    /// Short label for plots and tables (run folder name by default).
    pub label: String,
    /// Dataset, when known.
    pub dataset: Option<String>,
    /// Architecture, when known.
    pub model: Option<String>,
    /// Training-time defense, when known.
    pub defense: Option<String>,
    /// Target test accuracy, when known.
    pub test_acc: Option<f64>,
    /// Target member accuracy, when known.
    pub train_acc: Option<f64>,
    /// Candidates N.
    pub candidates: usize,
    /// Members among them.
    pub members: usize,
    /// Shadow models available.
    pub shadows: usize,
    /// Queries per example available.
    pub queries: usize,
    /// Population samples Z.
    pub population: usize,
    /// Attacks that could not run, with the reason.
    pub skipped: Vec<(String, String)>,
    /// The attacks, in `attack_scores.npy` row order.
    pub attacks: Vec<AttackResult>,
    /// Set when the target's outputs went through an inference-time defense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceInfo>,
}

/// How an inference-time defense was evaluated, and against what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceInfo {
    /// The defense chain's canonical spec.
    pub spec: String,
    /// `naive` (shadows undefended) or `adaptive` (shadows through the same defense).
    pub attacker: String,
    /// Whether every step keeps the predicted label.
    pub preserves_label: bool,
    /// Accuracy of the undefended target on its held-out rows (non-member candidates and
    /// population samples).
    pub accuracy_before: f64,
    /// Accuracy of the released outputs on the same rows.
    pub accuracy_after: f64,
    /// Rows those accuracies count.
    pub accuracy_rows: usize,
    /// The undefended target's results per attack: (name, AUC, advantage).
    pub baseline: Vec<(String, f64, f64)>,
}

impl AttackReport {
    /// Writes the three files into `dir`.
    pub fn write(&self, dir: &Path, is_member: &[bool]) -> Result<(), AttackError> {
        std::fs::create_dir_all(dir).map_err(|e| AttackError::io(dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| AttackError::io(dir, e))?;
        write(&dir.join("attacks.json"), json.as_bytes())?;
        let n = is_member.len();
        let scores: Vec<f32> = self.attacks.iter().flat_map(|a| a.scores.iter().copied()).collect();
        let scores = NpyArray::f32(vec![self.attacks.len(), n], scores)?;
        write(&dir.join("attack_scores.npy"), &scores.to_bytes())?;
        let members = NpyArray::bool(vec![n], is_member.to_vec())?;
        write(&dir.join("attack_membership.npy"), &members.to_bytes())
    }

    /// Reads the files back (scores go into each attack's `scores`); returns the membership.
    pub fn read(dir: &Path) -> Result<(Self, Vec<bool>), AttackError> {
        let path = dir.join("attacks.json");
        let text = std::fs::read_to_string(&path).map_err(|e| AttackError::io(&path, e))?;
        let mut report: AttackReport =
            serde_json::from_str(&text).map_err(|e| AttackError::io(&path, e))?;
        let read = |name: &str| -> Result<NpyArray, AttackError> {
            let p = dir.join(name);
            let bytes = std::fs::read(&p).map_err(|e| AttackError::io(&p, e))?;
            NpyArray::from_bytes(&bytes).map_err(|e| AttackError::io(&p, e))
        };
        let (scores, members) = (read("attack_scores.npy")?, read("attack_membership.npy")?);
        let NpyData::Bool(is_member) = members.data else {
            return Err(AttackError::Shape("attack_membership.npy must be bool".into()));
        };
        let n = is_member.len();
        match scores.data {
            NpyData::F32(v) if scores.shape == [report.attacks.len(), n] => {
                for (a, row) in report.attacks.iter_mut().zip(v.chunks(n.max(1))) {
                    a.scores = row.to_vec();
                }
            }
            _ => {
                return Err(AttackError::Shape(format!(
                    "attack_scores.npy has shape {:?}, expected [{}, {n}]",
                    scores.shape,
                    report.attacks.len()
                )));
            }
        }
        Ok((report, is_member))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AttackError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| AttackError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AttackError::io(path, e))
}
