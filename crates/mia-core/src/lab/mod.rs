//! Lab mode: a student's own images, split into members and held-out images, a head trained
//! on the members (on frozen features of a shipped model), shadow heads trained the same way
//! on random halves of all the images (the adaptive attacker: same recipe, same defense), and
//! every attack scored on the student's members against their held-out images. The page runs
//! this code in wasm; native tests run the same code.

mod audit;
pub mod file;
mod head;
mod interval;
mod plan;
mod trainer;

pub use audit::{
    LabAttack, LabScores, Split, VALIDATION_SHARE, at_smoothing_target, shadow_keep, split_members,
    validation_split,
};
pub use head::{
    DpSgd, Head, HeadConfig, LabNet, NetShape, TrainSet, lab_logits, normalize_features,
};
pub use interval::{AttackDraws, Interval, Models, paired_difference, rotate, t_975};
pub use plan::{ModelPlan, RunLogits, RunPlan, rows_of, run_heads};
pub use trainer::HeadTrainer;
