//! The run directory, the hand-off between the trainer, the attacks, the report and the
//! export: the one place that names its files. Every other crate asks these types for a path.
//!
//! | path | content |
//! |---|---|
//! | `config.json` | the trainer's `TrainConfig` |
//! | `model.json` | the [`crate::ModelConfig`] (architecture, input, classes, dropout) |
//! | `split.json` | who is a member, with a hash |
//! | `model.bpk` | final weights (burnpack) |
//! | `metrics.jsonl` | one line of metrics per epoch |
//! | `summary.json` | the trainer's `Summary` (accuracies, recipe, cost) |
//! | `signals/indices.npy` | `int64 [N]` pool indices: the members, then the non-members |
//! | `signals/logits.npy` | `float32 [N, C]` target logits on those examples |
//! | `signals/labels.npy` | `int64 [N]` true labels |
//! | `signals/is_member.npy` | `bool [N]` membership |
//! | `checkpoint/eNNNN/` | `model.bpk`, `optim.bpk`, `state.json` after epoch NNNN (for `--resume`) |
//! | `checkpoint/best.bpk` | the best validation epoch's weights (early stopping) |
//! | `shadows/` | the shadow pool ([`ShadowLayout`]) |
//! | `attacks.json`, `attack_scores.npy`, `attack_membership.npy` | `mia attack`'s output |
//! | `inference/<defense>/` | `mia attack --defense`'s output, one folder per chain |
//!
//! A shadow pool (`shadows/` by default, or any folder given with `--shadow-dir`):
//!
//! | path | content |
//! |---|---|
//! | `pool.json` | how the pool was drawn (candidates, queries, recipe) |
//! | `labels.npy`, `target_logits.npy` | the candidates' labels and the target's logits on every query |
//! | `NNN/keep.npy`, `NNN/logits.npy` | shadow NNN's membership mask and logits |
//! | `NNN/model.bpk`, `NNN/summary.json`, `NNN/metrics.jsonl`, `NNN/checkpoint/` | as in a run; `summary.json` marks the shadow finished |
//! | `target_random_logits.npy`, `target_gradient_norms.npy`, `NNN/random_logits.npy`, `NNN/gradient_norms.npy` | inference-defense signals ([`DefenseSignalFiles`]) |
//! | `target_sensitivity.npy`, `NNN/sensitivity.npy` | SAMIA's posterior sensitivity on the candidates ([`DefenseSignalFiles::sensitivity`]) |
//!
//! A model trained elsewhere, as `mia import` writes it ([`ImportedLayout`]):
//!
//! | path | content |
//! |---|---|
//! | `model.bpk` | the imported weights (burnpack) |
//! | `imported.json` | architecture, input, classes, preprocessing, class names, source file |

use std::path::{Path, PathBuf};

use crate::inference::{GRADIENT_NORMS_FILE, RANDOM_LOGITS_FILE};

/// The file name of a model's SAMIA sensitivity ([`DefenseSignalFiles::sensitivity`]).
pub const SENSITIVITY_FILE: &str = "sensitivity.npy";

/// `attacks.json`: the attack report.
pub const ATTACKS: &str = "attacks.json";
/// `attack_scores.npy`: every attack's scores.
pub const ATTACK_SCORES: &str = "attack_scores.npy";
/// `attack_membership.npy`: the candidates' membership, in score order.
pub const ATTACK_MEMBERSHIP: &str = "attack_membership.npy";
/// The attackers `mia attack --defense` writes a folder for: one that ignores the defense and
/// one whose shadows go through it.
pub const ATTACKERS: [&str; 2] = ["naive", "adaptive"];
/// `summary.json`, in a run and in a finished shadow's folder.
pub const SUMMARY: &str = "summary.json";
/// `model.bpk`: weights, in a run, a shadow and a checkpoint generation.
pub const WEIGHTS: &str = "model.bpk";

/// Paths inside an imported-model folder (`mia import --out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLayout {
    /// The folder.
    pub root: PathBuf,
}

impl ImportedLayout {
    /// The layout of `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `model.bpk`.
    pub fn weights(&self) -> PathBuf {
        self.root.join(WEIGHTS)
    }
    /// `imported.json`.
    pub fn description(&self) -> PathBuf {
        self.root.join("imported.json")
    }
}

/// Paths inside a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    /// The run directory.
    pub root: PathBuf,
}

impl RunLayout {
    /// The layout of the run at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `model.json`.
    pub fn model_config(&self) -> PathBuf {
        self.root.join("model.json")
    }
    /// `split.json`.
    pub fn split(&self) -> PathBuf {
        self.root.join("split.json")
    }
    /// `model.bpk`.
    pub fn weights(&self) -> PathBuf {
        self.root.join(WEIGHTS)
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join(SUMMARY)
    }
    /// `signals/`.
    pub fn signals(&self) -> Signals {
        Signals { dir: self.root.join("signals") }
    }
    /// `checkpoint/`.
    pub fn checkpoint(&self) -> Checkpoints {
        Checkpoints { dir: self.root.join("checkpoint") }
    }
    /// `attacks.json`.
    pub fn attacks(&self) -> PathBuf {
        self.root.join(ATTACKS)
    }
    /// `inference/`: one folder per inference-time defense chain.
    pub fn inference(&self) -> PathBuf {
        self.root.join("inference")
    }
    /// `inference/<chain>/<attacker>/`: `mia attack`'s output through a defense chain (its
    /// file-name slug) for one of [`ATTACKERS`].
    pub fn defended(&self, chain: &str, attacker: &str) -> PathBuf {
        self.inference().join(chain).join(attacker)
    }
    /// The `mia attack --defense` outputs present, in chain then [`ATTACKERS`] order.
    pub fn defended_outputs(&self) -> Vec<PathBuf> {
        let mut chains: Vec<PathBuf> = std::fs::read_dir(self.inference())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        chains.sort();
        chains
            .iter()
            .flat_map(|c| ATTACKERS.map(|a| c.join(a)))
            .filter(|d| d.join(ATTACKS).exists())
            .collect()
    }
    /// The shadow pool: `dir` when given (`--shadow-dir`), else `shadows/`.
    pub fn shadows(&self, dir: Option<&Path>) -> ShadowLayout {
        ShadowLayout::new(dir.map_or_else(|| self.root.join("shadows"), Path::to_path_buf))
    }
    /// `shadows-undefended/`: the pool of undefended shadows for the naive attacker.
    pub fn undefended_shadows(&self) -> ShadowLayout {
        ShadowLayout::new(self.root.join("shadows-undefended"))
    }
}

/// The target's signals (`signals/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signals {
    /// The folder.
    pub dir: PathBuf,
}

impl Signals {
    /// `indices.npy`.
    pub fn indices(&self) -> PathBuf {
        self.dir.join("indices.npy")
    }
    /// `logits.npy`.
    pub fn logits(&self) -> PathBuf {
        self.dir.join("logits.npy")
    }
    /// `labels.npy`.
    pub fn labels(&self) -> PathBuf {
        self.dir.join("labels.npy")
    }
    /// `is_member.npy`.
    pub fn is_member(&self) -> PathBuf {
        self.dir.join("is_member.npy")
    }
    /// A file the inference-time defenses precompute here (gradient norms, random logits).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Checkpoint generations (`checkpoint/`): `eNNNN/` holds the state after epoch NNNN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoints {
    /// The folder.
    pub dir: PathBuf,
}

impl Checkpoints {
    /// The generation written after `epoch`.
    pub fn generation(&self, epoch: usize) -> Generation {
        Generation { dir: self.dir.join(format!("e{epoch:04}")) }
    }
    /// The complete generations, newest first (a generation is complete once its
    /// `state.json`, written last, exists); a checkpoint of the older flat layout
    /// (`checkpoint/state.json`) counts as the oldest.
    pub fn complete(&self) -> Vec<Generation> {
        let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let epoch = e.file_name().to_str()?.strip_prefix('e')?.parse::<usize>().ok()?;
                Some((epoch, e.path()))
            })
            .collect();
        found.sort_by_key(|g| std::cmp::Reverse(g.0));
        let mut out: Vec<Generation> =
            found.into_iter().map(|(_, dir)| Generation { dir }).collect();
        out.push(Generation { dir: self.dir.clone() });
        out.retain(|g| g.state().exists());
        out
    }
    /// `teacher/`: a distilled run's teacher, checkpointed like the run itself.
    pub fn teacher(&self) -> Checkpoints {
        Checkpoints { dir: self.dir.join("teacher") }
    }
    /// `dense/`: a pruned run's dense model before pruning, checkpointed like the run.
    pub fn dense(&self) -> Checkpoints {
        Checkpoints { dir: self.dir.join("dense") }
    }
    /// `split-ai/NN/`: SELENA's sub-model `k` (its Split-AI part), checkpointed like the run.
    pub fn sub_model(&self, k: usize) -> Checkpoints {
        Checkpoints { dir: self.dir.join("split-ai").join(format!("{k:02}")) }
    }
    /// `metrics.jsonl` beside the generations (a teacher's or sub-model's per-epoch metrics).
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    /// `best.bpk`: the weights of the best validation epoch so far (early stopping).
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.bpk")
    }
    /// Whether `g` is the older flat layout (files directly in `checkpoint/`).
    pub fn is_flat(&self, g: &Generation) -> bool {
        g.dir == self.dir
    }
}

/// One checkpoint generation's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The folder.
    pub dir: PathBuf,
}

impl Generation {
    /// `model.bpk`.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS)
    }
    /// `optim.bpk`.
    pub fn optimizer(&self) -> PathBuf {
        self.dir.join("optim.bpk")
    }
    /// `state.json`, written last.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// `adversary.bpk`: AdvReg's inference model.
    pub fn adversary(&self) -> PathBuf {
        self.dir.join("adversary.bpk")
    }
    /// `adversary-optim.bpk`: AdvReg's inference-model optimiser state.
    pub fn adversary_optimizer(&self) -> PathBuf {
        self.dir.join("adversary-optim.bpk")
    }
    /// Every file of the generation.
    pub fn files(&self) -> [PathBuf; 3] {
        [self.state(), self.weights(), self.optimizer()]
    }
}

/// A shadow pool's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowLayout {
    /// The folder.
    pub root: PathBuf,
}

impl ShadowLayout {
    /// The pool at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `pool.json`.
    pub fn spec(&self) -> PathBuf {
        self.root.join("pool.json")
    }
    /// `labels.npy`: the candidates' labels.
    pub fn labels(&self) -> PathBuf {
        self.root.join("labels.npy")
    }
    /// `target_logits.npy`: the target's logits on every query of the candidates.
    pub fn target_logits(&self) -> PathBuf {
        self.root.join("target_logits.npy")
    }
    /// The target's inference-defense signals, beside the target's logits
    /// (`target_random_logits.npy`, `target_gradient_norms.npy`).
    pub fn target_defense_signals(&self) -> DefenseSignalFiles {
        DefenseSignalFiles::in_folder(&self.root, "target_")
    }
    /// Shadow `index`'s folder (`NNN/`).
    pub fn shadow(&self, index: usize) -> ShadowFiles {
        ShadowFiles { dir: self.root.join(format!("{index:03}")) }
    }
    /// The finished shadows (those with `summary.json`), in index order.
    pub fn finished(&self) -> Vec<usize> {
        let mut out: Vec<usize> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<usize>().ok())
            .filter(|&i| self.shadow(i).summary().exists())
            .collect();
        out.sort_unstable();
        out
    }
}

/// One shadow's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowFiles {
    /// The folder.
    pub dir: PathBuf,
}

impl ShadowFiles {
    /// `keep.npy`: which candidates the shadow trained on.
    pub fn keep(&self) -> PathBuf {
        self.dir.join("keep.npy")
    }
    /// `logits.npy`: the shadow's logits on every query of the candidates.
    pub fn logits(&self) -> PathBuf {
        self.dir.join("logits.npy")
    }
    /// `model.bpk`.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS)
    }
    /// `summary.json`, written last: the shadow is finished once it exists.
    pub fn summary(&self) -> PathBuf {
        self.dir.join(SUMMARY)
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    /// `checkpoint/`.
    pub fn checkpoint(&self) -> Checkpoints {
        Checkpoints { dir: self.dir.join("checkpoint") }
    }
    /// The shadow's inference-defense signals (`random_logits.npy`, `gradient_norms.npy`).
    pub fn defense_signals(&self) -> DefenseSignalFiles {
        DefenseSignalFiles::in_folder(&self.dir, "")
    }
}

/// What `mia attack` asks the trainer to precompute per model, beside the cached logits: for
/// the inference-time defenses, logits on random inputs and input-gradient norms; for SAMIA,
/// the posterior's sensitivity to small input perturbations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefenseSignalFiles {
    /// `float32 [R, C]` logits on R random inputs.
    pub random_logits: PathBuf,
    /// `float32 [K, N]` input-gradient norms on every query of every example.
    pub gradient_norms: PathBuf,
    /// `float32 [N, C]` SAMIA's sensitivity of each class posterior on the identity query of
    /// every candidate (members then non-members; no population rows).
    pub sensitivity: PathBuf,
}

impl DefenseSignalFiles {
    fn in_folder(dir: &Path, prefix: &str) -> Self {
        Self {
            random_logits: dir.join(format!("{prefix}{RANDOM_LOGITS_FILE}")),
            gradient_norms: dir.join(format!("{prefix}{GRADIENT_NORMS_FILE}")),
            sensitivity: dir.join(format!("{prefix}{SENSITIVITY_FILE}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mia-layout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn finished_lists_only_shadows_with_a_summary_in_index_order() {
        let pool = ShadowLayout::new(scratch("finished"));
        for i in [10, 2, 7] {
            std::fs::create_dir_all(&pool.shadow(i).dir).expect("dir");
        }
        std::fs::write(pool.shadow(10).summary(), "{}").expect("write");
        std::fs::write(pool.shadow(2).summary(), "{}").expect("write");
        std::fs::write(pool.root.join("notes"), "").expect("write");
        assert_eq!(pool.finished(), vec![2, 10]);
        assert_eq!(pool.shadow(2).dir, pool.root.join("002"));
        let _ = std::fs::remove_dir_all(&pool.root);
    }

    #[test]
    fn complete_generations_are_newest_first_with_the_flat_layout_last() {
        let run = RunLayout::new(scratch("generations"));
        let ck = run.checkpoint();
        for (epoch, complete) in [(3, true), (12, true), (14, false)] {
            let g = ck.generation(epoch);
            std::fs::create_dir_all(&g.dir).expect("dir");
            std::fs::write(g.weights(), "w").expect("write");
            if complete {
                std::fs::write(g.state(), "{}").expect("write");
            }
        }
        std::fs::write(ck.dir.join("state.json"), "{}").expect("write");
        let found = ck.complete();
        let names: Vec<_> = found.iter().map(|g| g.dir.clone()).collect();
        assert_eq!(names, vec![ck.dir.join("e0012"), ck.dir.join("e0003"), ck.dir.clone()]);
        assert!(ck.is_flat(&found[2]));
        let _ = std::fs::remove_dir_all(&run.root);
    }

    #[test]
    fn the_shadow_pool_defaults_to_shadows_and_honours_an_override() {
        let run = RunLayout::new("/runs/erm");
        assert_eq!(run.shadows(None).root, PathBuf::from("/runs/erm/shadows"));
        let own = Path::new("/elsewhere/pool");
        assert_eq!(run.shadows(Some(own)).root, own.to_path_buf());
    }
}
