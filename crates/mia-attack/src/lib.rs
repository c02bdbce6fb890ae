//! MIA Lab attacks. Everything here works on cached logits (the target's and the shadow
//! models' on the candidate examples, under K augmented queries), never on a model, so the
//! same code audits a model trained by `mia train` or any framework that can dump `.npy`
//! logits. [`input`] owns loading and validation, [`attack`] the attacks, [`classifier`] the
//! logistic-regression and MLP attack models, [`network`] mia_prune's neural attack models
//! (burn), [`output`] `attacks.json` and the score files,
//! [`defended`] the naive and adaptive views of an inference-time defense.

pub mod attack;
/// The attack models, shared with the browser (they live in `mia-core`).
pub use mia_core::classifier;
pub mod defended;
pub mod error;
pub mod input;
pub mod network;
pub mod output;

pub use attack::{AttackKind, AttackOptions, AttackResult, Calibrated};
pub use error::AttackError;
pub use input::{AttackInput, Logits, QueryChoice, QueryInfo, Sensitivity, Shadow};
pub use output::{AttackReport, InferenceInfo};
