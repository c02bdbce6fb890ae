//! Lab mode's state and its reducer: the student's classes and images, each image's role
//! (member: trained on; held-out: never trained on), the training recipe, and where a run
//! stands. The run itself is an effect ([`crate::lab_run`]) that dispatches progress and the
//! result.

use std::rc::Rc;

use mia_core::defense::{DefenseConfig, RelaxVariant, SmoothingForm};
use mia_core::lab::file::{FileInstructions, FileRun, FileSettings, MAX_SHADOWS, MIN_SHADOWS};
use mia_core::lab::{AttackDraws, DpSgd, HeadConfig, LabAttack, NetShape};
use yew::Reducible;

/// The most classes a lab holds (its file's bound).
pub use mia_core::lab::file::MAX_CLASSES;
/// The most images a lab holds (its file's bound).
pub use mia_core::lab::file::MAX_IMAGES;

/// One of the student's images, at the model's input size.
#[derive(Debug, Clone, PartialEq)]
pub struct LabImage {
    /// Stable id.
    pub id: u64,
    /// Class index.
    pub class: usize,
    /// CHW pixels.
    pub pixels: Rc<Vec<u8>>,
    /// Data URL thumbnail.
    pub preview: String,
    /// Trained on (true) or held out.
    pub member: bool,
}

/// The training-time defense of the lab's heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabDefense {
    /// Plain cross-entropy.
    Erm,
    /// Label smoothing.
    LabelSmoothing,
    /// Confidence penalty.
    ConfidencePenalty,
    /// RelaxLoss.
    RelaxLoss,
    /// DP-SGD (cross-entropy with clipping and noise).
    DpSgd,
}

impl LabDefense {
    /// Every choice, in menu order.
    pub const ALL: [Self; 5] =
        [Self::Erm, Self::LabelSmoothing, Self::ConfidencePenalty, Self::RelaxLoss, Self::DpSgd];

    /// Menu value.
    pub fn value(self) -> &'static str {
        match self {
            Self::Erm => "erm",
            Self::LabelSmoothing => "label-smoothing",
            Self::ConfidencePenalty => "confidence-penalty",
            Self::RelaxLoss => "relaxloss",
            Self::DpSgd => "dp-sgd",
        }
    }

    /// What the student reads, with the parameter the strength slider sets.
    pub fn title(self) -> &'static str {
        match self {
            Self::Erm => "none (ERM: plain cross-entropy)",
            Self::LabelSmoothing => "label smoothing (ε) ⚠ can make attacks stronger",
            Self::ConfidencePenalty => "confidence penalty (β)",
            Self::RelaxLoss => "RelaxLoss (target loss α)",
            Self::DpSgd => "DP-SGD (noise multiplier σ)",
        }
    }

    /// Why this defense can help the attacker instead, where it can (shown with the recipe).
    pub fn backfires(self) -> Option<&'static str> {
        match self {
            Self::LabelSmoothing => Some(
                "Label smoothing can make membership easier to see: a head that fits its members \
                 puts every member's confidence exactly at the smoothed target 1 − ε + ε/C, while \
                 held-out images land anywhere, and an attacker who knows the recipe (LiRA's \
                 shadow models) reads membership from that exact value. In the lab it often takes \
                 LiRA close to 1.",
            ),
            _ => None,
        }
    }

    /// Parses a menu value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.value() == s)
    }

    /// (default, min, max, step) of the strength parameter.
    pub fn strength(self) -> Option<(f32, f32, f32, f32)> {
        match self {
            Self::Erm => None,
            Self::LabelSmoothing => Some((0.1, 0.01, 0.9, 0.01)),
            Self::ConfidencePenalty => Some((0.5, 0.0, 4.0, 0.1)),
            Self::RelaxLoss => Some((0.5, 0.05, 2.0, 0.05)),
            Self::DpSgd => Some((1.0, 0.1, 20.0, 0.1)),
        }
    }
}

/// The recipe the target and every shadow head follow.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSettings {
    /// Defense.
    pub defense: LabDefense,
    /// Its strength parameter.
    pub strength: f32,
    /// Hidden units (0 = linear head).
    pub hidden: usize,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f32,
    /// Dropout (hidden heads).
    pub dropout: f64,
    /// Shadow heads.
    pub shadows: usize,
    /// δ for DP-SGD's ε.
    pub delta: f64,
    /// DP-SGD's per-example clip norm C.
    pub clip: f32,
    /// Mini-batch size (expected size under DP-SGD).
    pub batch_size: usize,
    /// Early-stopping patience in epochs (a fifth of each model's training images validate).
    pub early_stopping: Option<usize>,
    /// Train the shipped trunk too instead of a head on frozen features.
    pub fine_tune: bool,
}

impl Default for LabSettings {
    /// The page's starting recipe, [`FileSettings::default`].
    fn default() -> Self {
        Self::within_ranges(FileSettings::default(), LabDefense::Erm)
    }
}

impl LabSettings {
    /// The recipe as the lab file stores it.
    pub fn to_file(&self) -> FileSettings {
        FileSettings {
            defense: self.defense.value().into(),
            strength: self.strength,
            hidden: self.hidden,
            epochs: self.epochs,
            lr: self.lr,
            weight_decay: self.weight_decay,
            dropout: self.dropout,
            shadows: self.shadows,
            delta: self.delta,
            clip: self.clip,
            batch_size: self.batch_size,
            early_stopping: self.early_stopping,
            fine_tune: self.fine_tune,
        }
    }

    /// A stored recipe, within the page's ranges (epochs, hidden units and shadows brought
    /// into them); why not when it cannot run.
    pub fn from_file(s: FileSettings) -> Result<Self, String> {
        let defense = LabDefense::parse(&s.defense).ok_or("an unknown defense")?;
        let settings = Self::within_ranges(s, defense);
        match settings.refused() {
            Some(why) => Err(format!("its recipe is out of range: {why}")),
            None => Ok(settings),
        }
    }

    /// `s` with `defense`, epochs, hidden units and shadows brought into the page's ranges.
    fn within_ranges(s: FileSettings, defense: LabDefense) -> Self {
        Self {
            defense,
            strength: s.strength,
            hidden: s.hidden.min(512),
            epochs: s.epochs.clamp(1, 500),
            lr: s.lr,
            weight_decay: s.weight_decay,
            dropout: s.dropout,
            shadows: s.shadows.clamp(MIN_SHADOWS, MAX_SHADOWS) & !1,
            delta: s.delta,
            clip: s.clip,
            batch_size: s.batch_size,
            early_stopping: s.early_stopping,
            fine_tune: s.fine_tune,
        }
    }

    /// The head recipe with seed `seed`.
    pub fn head(&self, seed: u64) -> HeadConfig {
        let s = self.strength;
        let defense = match self.defense {
            LabDefense::Erm | LabDefense::DpSgd => DefenseConfig::Erm,
            LabDefense::LabelSmoothing => {
                DefenseConfig::LabelSmoothing { epsilon: s, form: SmoothingForm::Uniform }
            }
            LabDefense::ConfidencePenalty => DefenseConfig::ConfidencePenalty { beta: s },
            LabDefense::RelaxLoss => {
                DefenseConfig::Relaxloss { alpha: s, variant: RelaxVariant::Cifar, upper: 1.0 }
            }
        };
        let dp = (self.defense == LabDefense::DpSgd).then_some(DpSgd {
            clip: self.clip,
            noise_multiplier: s,
            delta: self.delta,
        });
        HeadConfig {
            hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            dropout: self.dropout,
            defense,
            dp,
            seed,
            early_stopping: self.early_stopping,
        }
    }

    /// Why this recipe cannot run, if it cannot (checked before a run starts).
    pub fn refused(&self) -> Option<String> {
        if self.fine_tune && self.defense == LabDefense::DpSgd {
            return Some(
                "DP-SGD clips the head's gradients only: turn off fine-tuning to use it".into(),
            );
        }
        self.head(0).validate().err().map(|e| e.to_string())
    }

    /// The recipe with fine-tuning switched, with the epochs, learning rate and shadow count
    /// of a fine-tuned run that finishes in seconds to a minute on the CPU path (each model
    /// costs about 70 times a head: docs/benchmarks.md), or the head's defaults back.
    pub fn with_fine_tune(&self, on: bool) -> Self {
        let base = Self::default();
        let (epochs, lr, shadows) =
            if on { (10, 0.01, 16) } else { (base.epochs, base.lr, base.shadows) };
        Self { fine_tune: on, epochs, lr, shadows, ..self.clone() }
    }
}

/// What a finished run shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabResult {
    /// Image ids in the order of the scores.
    pub ids: Vec<u64>,
    /// Membership of those images.
    pub member: Vec<bool>,
    /// Each attack's scores and AUC.
    pub attacks: Vec<(LabAttack, Vec<f32>, f64)>,
    /// Each attack over every draw (each model of the run in turn as the target): mean AUC
    /// and TPR with their 95 % intervals.
    pub draws: Vec<AttackDraws>,
    /// (ε, δ) that DP-SGD spent on the target: every step taken, early stopping included.
    pub epsilon: Option<(f64, f64)>,
    /// Images the target trained on (N, for δ against 1/N).
    pub trained: usize,
    /// Accuracy of the target head on its members and on the held-out images.
    pub accuracy: (f64, f64),
    /// Wall time of the whole run, ms.
    pub ms: f64,
    /// Shadow heads trained.
    pub shadows: usize,
    /// The logits behind the scores (for inference-time defenses on top).
    pub logits: Rc<LabLogits>,
    /// Members the target only validated on (early stopping): not trained on, so the attacks
    /// count them as held out.
    pub validation: Vec<u64>,
    /// The epoch whose weights the target kept, of the planned epochs.
    pub kept_epoch: (usize, usize),
    /// The target network's weights (for export).
    pub net: SavedNet,
    /// The recipe in words (for the comparison table).
    pub recipe: String,
    /// Label smoothing's ε, when the run used it (the page shows its fingerprint).
    pub smoothing: Option<f32>,
    /// Runs with equal keys trained every draw on the same images (the comparison pairs them).
    pub pairing: u64,
}

/// Runs the table keeps (the oldest go first).
pub use mia_core::lab::file::MAX_RUNS;

/// One finished run, as the comparison table shows it and the lab file stores it.
pub type RunRecord = FileRun;

/// The comparison table's row of a finished run numbered `number`.
pub fn record(number: usize, r: &LabResult) -> RunRecord {
    RunRecord {
        number,
        recipe: r.recipe.clone(),
        pairing: r.pairing,
        accuracy: r.accuracy,
        epsilon: r.epsilon,
        draws: r.draws.clone(),
    }
}

/// A trained network's shape and burnpack weights, read back from the device.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedNet {
    /// Its shape.
    pub shape: NetShape,
    /// Burnpack bytes.
    pub bytes: Rc<Vec<u8>>,
}

/// The target's and the shadows' logits on the student's images.
#[derive(Debug, Clone, PartialEq)]
pub struct LabLogits {
    /// Labels.
    pub labels: Vec<usize>,
    /// Classes C.
    pub classes: usize,
    /// `[n × C]`.
    pub target: Vec<f32>,
    /// `[S × n × C]`.
    pub shadows: Vec<f32>,
    /// `[S × n]`.
    pub keep: Vec<bool>,
}

/// A network read from a lab file: its weights until the page rebuilds it, and how it does
/// on the lab's members and held-out images once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedNet {
    /// Its shape.
    pub shape: NetShape,
    /// Burnpack bytes.
    pub bytes: Rc<Vec<u8>>,
    /// Accuracy on (members, held-out images), or why it could not be rebuilt; `None` until
    /// checked (and again after the images or roles change).
    pub check: Option<Result<(f64, f64), String>>,
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// Nothing run yet (or the images changed since).
    Idle,
    /// Working: what, models done, of how many, ms since start.
    Running(String, usize, usize, f64),
    /// Done.
    Done(Rc<LabResult>),
    /// Failed, with why.
    Failed(String),
}

/// The lab.
#[derive(Debug, Clone, PartialEq)]
pub struct LabState {
    /// Class names.
    pub classes: Vec<String>,
    /// Images, oldest first.
    pub images: Vec<LabImage>,
    /// Next image id.
    pub next_id: u64,
    /// Seed of the member/held-out split.
    pub split_seed: u64,
    /// The recipe.
    pub settings: LabSettings,
    /// The run.
    pub run: Run,
    /// A result whose images or roles changed afterwards is kept but marked stale.
    pub stale: bool,
    /// The network of an imported lab file (until a new run replaces it).
    pub imported: Option<ImportedNet>,
    /// Every finished run, oldest first (at most [`MAX_RUNS`]), for the comparison table.
    pub history: Vec<RunRecord>,
    /// The last finished result while a new run trains: a run that is cancelled or fails
    /// brings it back instead of leaving nothing.
    pub previous: Option<Rc<LabResult>>,
    /// What the last change could not do as asked (a setting out of range, a class or images
    /// over the lab's limits), said to the student instead of done silently.
    pub notice: Option<String>,
    /// A prepared lab's instructions (kept with the lab, shown beside it).
    pub instructions: Option<FileInstructions>,
    /// Counts the changes worth keeping (everything but a run's progress): the page keeps
    /// the lab in the browser when it moves.
    pub revision: u64,
}

impl Default for LabState {
    fn default() -> Self {
        Self {
            classes: vec!["class 1".into(), "class 2".into()],
            images: Vec::new(),
            next_id: 0,
            split_seed: 1,
            settings: LabSettings::default(),
            run: Run::Idle,
            stale: false,
            imported: None,
            history: Vec::new(),
            previous: None,
            notice: None,
            instructions: None,
            revision: 0,
        }
    }
}

/// Everything that changes the lab.
pub enum LabAction {
    /// Add a class.
    AddClass,
    /// Rename class `i`.
    Rename(usize, String),
    /// Remove class `i` and its images.
    RemoveClass(usize),
    /// Add images to a class: (class, pixels, preview).
    AddImages(usize, Vec<(Vec<u8>, String)>),
    /// Remove every image.
    ClearImages,
    /// Flip one image's role.
    Flip(u64),
    /// Draw a new half-and-half split of every class.
    Redraw,
    /// Change the recipe.
    Settings(LabSettings),
    /// The run moved on.
    Progress(String, usize, usize, f64),
    /// The run finished.
    Finished(Rc<LabResult>),
    /// The run failed or was cancelled.
    Failed(String),
    /// Replace the whole lab (an imported file, a prepared lab, the lab kept in the browser);
    /// the table of the runs made so far stays unless the new lab brings its own.
    Replace(Box<LabState>),
    /// Start again from an empty lab, with an empty table.
    Reset,
    /// The imported network was rebuilt and checked.
    Checked(Result<(f64, f64), String>),
    /// Empty the comparison table.
    ClearHistory,
    /// Say what a change could not do as asked.
    Notice(String),
    /// The student read the notice.
    DismissNotice,
}

impl LabState {
    /// Re-draws every class's half-and-half member split from `split_seed`.
    fn assign_roles(&mut self) {
        let labels: Vec<usize> = self.images.iter().map(|im| im.class).collect();
        if let Ok(member) = mia_core::lab::split_members(&labels, 0.5, self.split_seed) {
            self.images.iter_mut().zip(member).for_each(|(im, m)| im.member = m);
        }
    }

    fn touched(&mut self) {
        if matches!(self.run, Run::Done(_)) || self.previous.is_some() {
            self.stale = true;
        }
        if let Some(net) = &mut self.imported {
            net.check = None;
        }
    }

    /// Images per class.
    pub fn counts(&self) -> Vec<usize> {
        (0..self.classes.len())
            .map(|c| self.images.iter().filter(|im| im.class == c).count())
            .collect()
    }

    /// Why the lab cannot train yet, if it cannot.
    pub fn not_ready(&self) -> Option<String> {
        let counts = self.counts();
        if counts.iter().filter(|&&k| k > 0).count() < 2 {
            return Some("Add images to at least two classes.".into());
        }
        if counts.iter().any(|&k| k > 0 && k < 4) {
            return Some("Give every class with images at least 4 (2 members, 2 held out).".into());
        }
        None
    }
}

impl LabState {
    /// A run's progress, result or failure.
    fn reduce_run(&mut self, action: LabAction) {
        let s = self;
        match action {
            LabAction::Progress(what, done, total, ms) => {
                if let Run::Done(r) = &s.run {
                    s.previous = Some(r.clone());
                }
                s.run = Run::Running(what, done, total, ms)
            }
            LabAction::Finished(r) => {
                let number = s.history.last().map_or(1, |h| h.number + 1);
                s.history.push(record(number, &r));
                if s.history.len() > MAX_RUNS {
                    s.history.remove(0);
                }
                s.run = Run::Done(r);
                s.previous = None;
                s.stale = false;
                s.imported = None;
            }
            LabAction::Failed(e) => match s.previous.take() {
                Some(r) => {
                    s.run = Run::Done(r);
                    s.notice = Some(format!(
                        "The run stopped ({e}): the results shown are still the previous run's."
                    ));
                }
                None => s.run = Run::Failed(e),
            },
            _ => {}
        }
    }
}

impl Reducible for LabState {
    type Action = LabAction;

    fn reduce(self: Rc<Self>, action: LabAction) -> Rc<Self> {
        let mut s = (*self).clone();
        s.notice = None;
        if !matches!(action, LabAction::Progress(..)) {
            s.revision += 1;
        }
        match action {
            LabAction::AddClass if s.classes.len() < MAX_CLASSES => {
                s.classes.push(format!("class {}", s.classes.len() + 1));
            }
            LabAction::AddClass => {
                s.notice = Some(format!(
                    "The lab holds at most {MAX_CLASSES} classes: remove one to add another."
                ));
            }
            LabAction::Rename(i, name) => {
                if let Some(c) = s.classes.get_mut(i) {
                    *c = name.chars().take(40).collect();
                }
            }
            LabAction::RemoveClass(i) if i < s.classes.len() && s.classes.len() > 2 => {
                s.classes.remove(i);
                let before = s.images.len();
                s.images.retain(|im| im.class != i);
                s.images.iter_mut().filter(|im| im.class > i).for_each(|im| im.class -= 1);
                if s.images.len() != before {
                    s.touched();
                }
            }
            LabAction::RemoveClass(_) => {}
            LabAction::AddImages(class, images) if class < s.classes.len() => {
                let room = MAX_IMAGES.saturating_sub(s.images.len());
                if images.len() > room {
                    s.notice = Some(format!(
                        "Added {room} of {} images: the lab holds at most {MAX_IMAGES}.",
                        images.len()
                    ));
                }
                for (pixels, preview) in images.into_iter().take(room) {
                    let id = s.next_id;
                    s.next_id += 1;
                    s.images.push(LabImage {
                        id,
                        class,
                        pixels: Rc::new(pixels),
                        preview,
                        member: false,
                    });
                }
                s.assign_roles();
                s.touched();
            }
            LabAction::AddImages(..) => {}
            LabAction::ClearImages => {
                s.images.clear();
                s.run = Run::Idle;
                s.previous = None;
                s.stale = false;
                s.touched();
            }
            LabAction::Flip(id) => {
                if let Some(im) = s.images.iter_mut().find(|im| im.id == id) {
                    im.member = !im.member;
                    s.touched();
                }
            }
            LabAction::Redraw => {
                s.split_seed += 1;
                s.assign_roles();
                s.touched();
            }
            LabAction::Settings(settings) => s.settings = settings,
            a @ (LabAction::Progress(..) | LabAction::Finished(_) | LabAction::Failed(_)) => {
                s.reduce_run(a)
            }
            LabAction::Replace(lab) => {
                let history = std::mem::take(&mut s.history);
                let revision = s.revision;
                s = *lab;
                if s.history.is_empty() {
                    s.history = history;
                }
                s.revision = revision;
            }
            LabAction::Reset => {
                s = LabState { revision: s.revision, ..LabState::default() };
            }
            LabAction::ClearHistory => s.history.clear(),
            LabAction::Notice(text) => s.notice = Some(text),
            LabAction::DismissNotice => {}
            LabAction::Checked(check) => {
                if let Some(net) = &mut s.imported {
                    net.check = Some(check);
                }
            }
        }
        Rc::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> (Vec<u8>, String) {
        (vec![0u8; 12], String::new())
    }

    fn result() -> Rc<LabResult> {
        let shape = NetShape { dim: 2, hidden: 0, classes: 2, fine_tuned: false };
        let logits = LabLogits {
            labels: vec![0],
            classes: 2,
            target: vec![0.0; 2],
            shadows: Vec::new(),
            keep: Vec::new(),
        };
        Rc::new(LabResult {
            ids: vec![0],
            member: vec![true],
            attacks: Vec::new(),
            draws: Vec::new(),
            epsilon: None,
            trained: 1,
            accuracy: (1.0, 0.5),
            ms: 1.0,
            shadows: 6,
            logits: Rc::new(logits),
            validation: Vec::new(),
            kept_epoch: (1, 1),
            net: SavedNet { shape, bytes: Rc::new(Vec::new()) },
            recipe: "ERM".into(),
            smoothing: None,
            pairing: 0,
        })
    }

    #[test]
    fn a_cancelled_run_brings_back_the_previous_results_and_says_so() {
        let first = result();
        let mut s = Rc::new(LabState::default());
        s = s.reduce(LabAction::Finished(first.clone()));
        s = s.reduce(LabAction::Progress("training".into(), 1, 7, 10.0));
        assert!(matches!(s.run, Run::Running(..)));
        s = s.reduce(LabAction::Failed("cancelled".into()));
        assert!(matches!(&s.run, Run::Done(r) if Rc::ptr_eq(r, &first)), "{:?}", s.notice);
        let n = s.notice.clone().unwrap_or_default();
        assert!(n.contains("cancelled") && n.contains("previous run"), "{n}");
        // Without an earlier result a cancelled run says why it stopped.
        let mut s = Rc::new(LabState::default());
        s = s.reduce(LabAction::Progress("training".into(), 1, 7, 10.0));
        s = s.reduce(LabAction::Failed("cancelled".into()));
        assert!(matches!(&s.run, Run::Failed(e) if e == "cancelled"));
    }

    #[test]
    fn every_change_but_progress_moves_the_revision_that_saving_watches() {
        let mut s = Rc::new(LabState::default());
        s = s.reduce(LabAction::AddClass);
        let r = s.revision;
        s = s.reduce(LabAction::Progress("training".into(), 1, 7, 10.0));
        assert_eq!(s.revision, r, "progress is not worth a save");
        s = s.reduce(LabAction::Finished(result()));
        assert!(s.revision > r);
    }

    #[test]
    fn a_replaced_lab_keeps_the_table_unless_it_brings_one_and_reset_empties_it() {
        let mut s = Rc::new(LabState::default());
        s = s.reduce(LabAction::Finished(result()));
        let r = s.revision;
        s = s.reduce(LabAction::Replace(Box::default()));
        assert_eq!(s.history.len(), 1, "an imported lab without a table keeps this one");
        assert!(s.revision > r, "a replaced lab is saved");
        let with_table = LabState { history: vec![s.history[0].clone(); 3], ..LabState::default() };
        s = s.reduce(LabAction::Replace(Box::new(with_table)));
        assert_eq!(s.history.len(), 3, "a lab with its own table brings it");
        s = s.reduce(LabAction::AddImages(0, vec![image()]));
        s = s.reduce(LabAction::Reset);
        assert!(s.history.is_empty() && s.images.is_empty() && s.revision > r);
    }

    #[test]
    fn a_class_or_images_over_the_limits_are_said_not_dropped_silently() {
        let mut s = Rc::new(LabState::default());
        for _ in 2..MAX_CLASSES {
            s = s.reduce(LabAction::AddClass);
        }
        assert!(s.notice.is_none());
        s = s.reduce(LabAction::AddClass);
        assert_eq!(s.classes.len(), MAX_CLASSES);
        assert!(
            s.notice.as_deref().is_some_and(|n| n.contains("at most 10 classes")),
            "{:?}",
            s.notice
        );
        s = s.reduce(LabAction::AddImages(0, (0..MAX_IMAGES + 3).map(|_| image()).collect()));
        assert_eq!(s.images.len(), MAX_IMAGES);
        let n = s.notice.clone().unwrap_or_default();
        assert!(n.contains(&format!("Added {MAX_IMAGES} of {}", MAX_IMAGES + 3)), "{n}");
        s = s.reduce(LabAction::Redraw);
        assert!(s.notice.is_none(), "a later change clears the notice");
    }

    #[test]
    fn images_get_half_and_half_roles_that_flip_and_redraw() {
        let mut s = Rc::new(LabState::default());
        s = s.reduce(LabAction::AddImages(0, (0..6).map(|_| image()).collect()));
        s = s.reduce(LabAction::AddImages(1, (0..4).map(|_| image()).collect()));
        let members =
            |s: &LabState, c| s.images.iter().filter(|i| i.class == c && i.member).count();
        assert_eq!((members(&s, 0), members(&s, 1)), (3, 2));
        assert!(s.not_ready().is_none());
        let first = s.images[0].member;
        let id = s.images[0].id;
        s = s.reduce(LabAction::Flip(id));
        assert_ne!(s.images[0].member, first);
        let before: Vec<bool> = s.images.iter().map(|i| i.member).collect();
        s = s.reduce(LabAction::Redraw);
        assert_eq!((members(&s, 0), members(&s, 1)), (3, 2), "a redraw keeps half and half");
        assert_ne!(before, s.images.iter().map(|i| i.member).collect::<Vec<_>>());
    }

    #[test]
    fn classes_are_bounded_and_removing_one_removes_its_images() {
        let mut s = Rc::new(LabState::default());
        for _ in 0..20 {
            s = s.reduce(LabAction::AddClass);
        }
        assert_eq!(s.classes.len(), MAX_CLASSES);
        s = s.reduce(LabAction::AddImages(3, vec![image()]));
        s = s.reduce(LabAction::AddImages(4, vec![image()]));
        s = s.reduce(LabAction::RemoveClass(3));
        assert_eq!(s.images.len(), 1);
        assert_eq!(s.images[0].class, 3, "later classes move down");
        s = s.reduce(LabAction::AddImages(99, vec![image()]));
        assert_eq!(s.images.len(), 1, "no class 99");
        assert!(s.not_ready().is_some());
    }

    #[test]
    fn fine_tuning_sets_its_defaults_and_refuses_dp_sgd() {
        let tuned = LabSettings::default().with_fine_tune(true);
        assert_eq!((tuned.fine_tune, tuned.epochs, tuned.lr, tuned.shadows), (true, 10, 0.01, 16));
        assert!(tuned.refused().is_none());
        let dp = LabSettings { defense: LabDefense::DpSgd, strength: 1.0, ..tuned.clone() };
        assert!(dp.refused().is_some_and(|why| why.contains("DP-SGD")));
        assert_eq!(
            tuned.with_fine_tune(false),
            LabSettings::default(),
            "off restores the head's defaults"
        );
        let bad = LabSettings { batch_size: 0, ..LabSettings::default() };
        assert!(bad.refused().is_some(), "an out-of-range recipe is refused before a run");
    }

    #[test]
    fn the_page_starts_from_the_lab_files_default_recipe_and_converts_both_ways() {
        assert_eq!(LabSettings::default().to_file(), FileSettings::default());
        assert_eq!(LabSettings::from_file(FileSettings::default()), Ok(LabSettings::default()));
        let odd = FileSettings { shadows: 1001, epochs: 0, ..FileSettings::default() };
        let read = LabSettings::from_file(odd).unwrap();
        assert_eq!((read.shadows, read.epochs), (MAX_SHADOWS, 1), "brought into range");
        let unknown = FileSettings { defense: "magic".into(), ..FileSettings::default() };
        assert!(LabSettings::from_file(unknown).is_err());
    }

    #[test]
    fn every_defense_choice_gives_a_valid_head_recipe() {
        for d in LabDefense::ALL {
            let strength = d.strength().map_or(0.0, |s| s.0);
            let settings = LabSettings { defense: d, strength, ..LabSettings::default() };
            assert!(settings.head(0).validate().is_ok(), "{d:?}");
            assert_eq!(LabDefense::parse(d.value()), Some(d));
        }
    }
}
