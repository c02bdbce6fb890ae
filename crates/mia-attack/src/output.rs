//! What `mia attack` writes and `mia report` reads: `attacks.json` (an [`AttackReport`]),
//! `attack_scores.npy` (`float32 [A, N]`, one row per attack in the JSON's order) and
//! `attack_membership.npy` (`bool [N]`), all in one folder (the run directory by default).

use std::path::Path;

use mia_core::layout::{ATTACK_MEMBERSHIP, ATTACK_SCORES, ATTACKS};
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
    /// Queries per example the attacks used.
    pub queries: usize,
    /// Which cached queries were used and why (e.g. the identity only for a target trained
    /// without augmentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_note: Option<String>,
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
        write(&dir.join(ATTACKS), json.as_bytes())?;
        let n = is_member.len();
        let scores: Vec<f32> = self.attacks.iter().flat_map(|a| a.scores.iter().copied()).collect();
        let scores = NpyArray::f32(vec![self.attacks.len(), n], scores)?;
        write(&dir.join(ATTACK_SCORES), &scores.to_bytes())?;
        let members = NpyArray::bool(vec![n], is_member.to_vec())?;
        write(&dir.join(ATTACK_MEMBERSHIP), &members.to_bytes())
    }

    /// Reads the files back (scores go into each attack's `scores`); returns the membership.
    pub fn read(dir: &Path) -> Result<(Self, Vec<bool>), AttackError> {
        let bytes = |name: &str| -> Result<Vec<u8>, AttackError> {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| AttackError::io(&p, e))
        };
        let json = bytes(ATTACKS)?;
        let (scores, members) = (bytes(ATTACK_SCORES)?, bytes(ATTACK_MEMBERSHIP)?);
        Self::parse(&json, &scores, &members).map_err(|e| match e {
            AttackError::Io { path, reason } => AttackError::io(dir.join(path), reason),
            other => other,
        })
    }

    /// Parses the three files' bytes (as [`AttackReport::read`] does, without the folder).
    pub fn parse(
        json: &[u8],
        scores: &[u8],
        members: &[u8],
    ) -> Result<(Self, Vec<bool>), AttackError> {
        let mut report: AttackReport =
            serde_json::from_slice(json).map_err(|e| AttackError::io(ATTACKS, e))?;
        let npy =
            |name: &str, b: &[u8]| NpyArray::from_bytes(b).map_err(|e| AttackError::io(name, e));
        let (scores, members) = (npy(ATTACK_SCORES, scores)?, npy(ATTACK_MEMBERSHIP, members)?);
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
    mia_core::files::write_atomic(path, bytes).map_err(|e| AttackError::io(path, e))
}
