//! Lab mode: a student's own images, split into members and held-out images, a head trained
//! on the members (on frozen features of a shipped model), shadow heads trained the same way
//! on random halves of all the images (the adaptive attacker: same recipe, same defense), and
//! every attack scored on the student's members against their held-out images. The page runs
//! this code in wasm; native tests run the same code.

mod audit;
mod head;

pub use audit::{LabAttack, LabScores, Split, shadow_keep, split_members};
pub use head::{DpSgd, Head, HeadConfig, HeadTrainer, TrainSet, head_logits, normalize_features};
