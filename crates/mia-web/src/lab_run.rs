//! Lab mode's run, as one async task that yields to the page every ~30 ms so clicks stay
//! answered: features of the student's images from the shipped model's trunk, the target
//! head on the members, S shadow heads on complementary random halves of all the images
//! (same recipe and defense: the adaptive attacker), every head's logits, and every attack's
//! scores. The arithmetic is mia-core's, the same code the native tests run.

use std::cell::Cell;
use std::rc::Rc;

use burn::prelude::Device;
use mia_core::lab::{
    HeadTrainer, LabAttack, LabScores, Split, TrainSet, head_logits, normalize_features,
    shadow_keep,
};
use mia_core::posterior::argmax;
use yew::UseReducerHandle;

use mia_core::inference::Chain;

use crate::analysis;
use crate::engine::{self, Backend, LoadedModel, SharedBundle};
use crate::hooks::Engine;
use crate::lab_state::{LabAction, LabLogits, LabResult, LabState};

/// Seed of the lab's heads (the split has its own).
const SEED: u64 = 11;
/// Longest stretch of work between two yields to the page, ms.
const SLICE_MS: f64 = 30.0;

/// What a run needs from the page.
pub struct RunInputs {
    /// The bundle.
    pub bundle: SharedBundle,
    /// The model whose trunk gives the features, and its files.
    pub model: (String, Rc<LoadedModel>),
    /// The backend and its generation.
    pub backend: (Backend, u32),
    /// The engine's caches.
    pub engine: Engine,
    /// Set to stop the run at its next yield.
    pub cancel: Rc<Cell<bool>>,
}

/// Yields when the current slice of work is used up; an error when the student cancelled.
struct Pacer {
    slice_start: f64,
    cancel: Rc<Cell<bool>>,
}

impl Pacer {
    async fn tick(&mut self) -> Result<(), String> {
        if engine::now_ms() - self.slice_start > SLICE_MS {
            engine::yield_now().await;
            self.slice_start = engine::now_ms();
        }
        if self.cancel.get() { Err("cancelled".into()) } else { Ok(()) }
    }
}

/// Runs the lab on `snapshot` and dispatches progress and the result to `lab`.
pub async fn run(lab: UseReducerHandle<LabState>, snapshot: Rc<LabState>, inputs: RunInputs) {
    let started = engine::now_ms();
    match run_inner(&lab, &snapshot, &inputs, started).await {
        Ok(r) => lab.dispatch(LabAction::Finished(Rc::new(r))),
        Err(e) => lab.dispatch(LabAction::Failed(e)),
    }
}

async fn run_inner(
    lab: &UseReducerHandle<LabState>,
    snap: &LabState,
    inputs: &RunInputs,
    started: f64,
) -> Result<LabResult, String> {
    let images = &snap.images;
    let n = images.len();
    let settings = &snap.settings;
    let s = settings.shadows;
    let total = s + 1;
    let progress = |what: &str, done: usize| {
        lab.dispatch(LabAction::Progress(what.into(), done, total, engine::now_ms() - started));
    };
    progress("computing the features of your images", 0);
    let mut pacer = Pacer { slice_start: engine::now_ms(), cancel: inputs.cancel.clone() };
    let (backend, generation) = inputs.backend;
    let device = inputs.engine.device(backend).await?;
    let bundle = &inputs.bundle;
    let (id, files) = (&inputs.model.0, &inputs.model.1);
    let model =
        inputs.engine.model(bundle, (id.as_str(), files.as_ref()), generation, &device).await?;
    let pixels: Vec<u8> = images.iter().flat_map(|im| im.pixels.iter().copied()).collect();
    let mut features =
        engine::features(&model, &device, &bundle.manifest, (&pixels, n), &|_| ()).await?;
    let dim = features.len() / n.max(1);
    normalize_features(&mut features, dim);
    let labels: Vec<usize> = images.iter().map(|im| im.class).collect();
    let member: Vec<bool> = images.iter().map(|im| im.member).collect();
    let classes = snap.classes.len();
    let keep = shadow_keep(n, s, snap.split_seed);

    let mut all_logits = Vec::with_capacity(total);
    let mut epsilon = None;
    for m in 0..total {
        let rows: Vec<usize> = if m == 0 {
            (0..n).filter(|&i| member[i]).collect()
        } else {
            (0..n).filter(|&i| keep[(m - 1) * n + i]).collect()
        };
        let what = if m == 0 {
            "training your model on the members".to_string()
        } else {
            format!("training shadow model {m} of {s}")
        };
        progress(&what, m);
        let all = Features { values: &features, dim, labels: &labels, classes };
        let cfg = settings.head(SEED + m as u64);
        let (logits, eps) = train_one(cfg, &all, &rows, &device, &mut pacer).await?;
        if m == 0 {
            epsilon = eps;
        }
        all_logits.push(logits);
    }
    progress("scoring every attack", total);
    let target = all_logits.remove(0);
    let shadows: Vec<f32> = all_logits.concat();
    let logits = LabLogits { labels: labels.clone(), classes, target, shadows, keep };
    let attacks = score(&logits, &member)?;
    let target = &logits.target;
    let right = |want: bool| {
        let rows: Vec<usize> = (0..n).filter(|&i| member[i] == want).collect();
        let ok = rows
            .iter()
            .filter(|&&i| argmax(&target[i * classes..(i + 1) * classes]) == labels[i])
            .count();
        ok as f64 / rows.len().max(1) as f64
    };
    let accuracy = (right(true), right(false));
    Ok(LabResult {
        ids: images.iter().map(|im| im.id).collect(),
        member,
        attacks,
        epsilon,
        accuracy,
        ms: engine::now_ms() - started,
        logits: Rc::new(logits),
        shadows: s,
    })
}

/// Every image's features and labels.
struct Features<'a> {
    values: &'a [f32],
    dim: usize,
    labels: &'a [usize],
    classes: usize,
}

/// Trains one head on images `rows` (yielding to the page between epochs) and returns its
/// logits on every image and, under DP-SGD, the ε it spent.
async fn train_one(
    cfg: mia_core::lab::HeadConfig,
    all: &Features<'_>,
    rows: &[usize],
    device: &Device,
    pacer: &mut Pacer,
) -> Result<(Vec<f32>, Option<f64>), String> {
    let d = all.dim;
    let xs: Vec<f32> =
        rows.iter().flat_map(|&i| all.values[i * d..(i + 1) * d].iter().copied()).collect();
    let ys: Vec<usize> = rows.iter().map(|&i| all.labels[i]).collect();
    let data = TrainSet { features: &xs, dim: d, labels: &ys, classes: all.classes };
    let mut trainer = HeadTrainer::new(cfg, data, device).map_err(|e| e.to_string())?;
    while !trainer.finished() {
        trainer.epoch().map_err(|e| e.to_string())?;
        pacer.tick().await?;
    }
    let epsilon = trainer.epsilon();
    let logits = logits_of(&trainer.finish(), all.values, d, device).await?;
    pacer.tick().await?;
    Ok((logits, epsilon))
}

/// Every attack's scores (loss and entropy on the explore view's log scale, so members'
/// tails stay apart) and AUC against `member`.
pub fn score(
    logits: &LabLogits,
    member: &[bool],
) -> Result<Vec<(LabAttack, Vec<f32>, f64)>, String> {
    let split = Split {
        labels: &logits.labels,
        classes: logits.classes,
        target: &logits.target,
        shadows: &logits.shadows,
        keep: &logits.keep,
    };
    let scores = LabScores::compute(&split).map_err(|e| e.to_string())?;
    let aucs = scores.aucs(member).map_err(|e| e.to_string())?;
    let shown = |a: LabAttack, sc: Vec<f32>| match a {
        LabAttack::Loss | LabAttack::ModifiedEntropy => {
            sc.into_iter().map(crate::analysis::neg_log10_of_neg).collect()
        }
        _ => sc,
    };
    Ok(scores
        .scores
        .into_iter()
        .zip(aucs)
        .map(|((a, sc), (_, auc))| (a, shown(a, sc), auc))
        .collect())
}

/// The logits behind a lab result through an inference-time `chain`: the target's (MemGuard
/// fitted on its own members) and, for the adaptive attacker, every shadow's through the same
/// chain (each with its own members).
pub fn released(logits: &LabLogits, member: &[bool], chain: &Chain) -> Result<LabLogits, String> {
    let (c, n) = (logits.classes, logits.labels.len());
    let ctx = analysis::context(chain, &logits.target, c, member, &[], SEED);
    let target = analysis::release(chain, &logits.target, c, &ctx, SEED);
    let shadows =
        analysis::release_shadows(chain, &logits.shadows, &logits.keep, (n, c), &[], SEED);
    let (target, shadows) =
        (target.map_err(|e| e.to_string())?, shadows.map_err(|e| e.to_string())?);
    Ok(LabLogits { target, shadows: shadows.concat(), ..logits.clone() })
}

/// A head's logits on every image, read back asynchronously.
async fn logits_of(
    head: &mia_core::lab::Head,
    features: &[f32],
    dim: usize,
    device: &Device,
) -> Result<Vec<f32>, String> {
    let t = head_logits(head, features, dim, device).map_err(|e| e.to_string())?;
    let data = t.into_data_async().await.map_err(|e| format!("readback: {e:?}"))?;
    data.try_to_vec::<f32>().map_err(|e| format!("readback: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 images, 2 classes; the target and 4 shadows are surer of the images they trained on.
    fn world() -> (LabLogits, Vec<bool>) {
        let (n, s) = (4usize, 4usize);
        let labels = vec![0, 1, 0, 1];
        let member = vec![true, true, false, false];
        let logit = |y: usize, sure: f32| if y == 0 { [sure, 0.0] } else { [0.0, sure] };
        let target =
            (0..n).flat_map(|i| logit(labels[i], if member[i] { 4.0 } else { 1.0 })).collect();
        let keep = shadow_keep(n, s, 0);
        let shadows = (0..s * n)
            .flat_map(|j| {
                logit(labels[j % n], if keep[j] { 4.0 + 0.1 * (j % 3) as f32 } else { 1.0 })
            })
            .collect();
        (LabLogits { labels, classes: 2, target, shadows, keep }, member)
    }

    #[test]
    fn defenses_on_top_pass_target_and_shadows_through_the_same_chain() {
        let (logits, member) = world();
        let plain = score(&logits, &member).unwrap();
        assert!(plain.iter().all(|(_, _, auc)| *auc == 1.0));
        let chain = Chain::parse("temperature:t=20").unwrap();
        let hot = released(&logits, &member, &chain).unwrap();
        assert_ne!(hot.target, logits.target);
        assert_eq!(hot.shadows.len(), logits.shadows.len());
        // A monotone temperature keeps every ranking: the adaptive attacks still see it all.
        let after = score(&hot, &member).unwrap();
        let lira = after.iter().find(|a| a.0 == LabAttack::LiraOnline).unwrap();
        assert_eq!(lira.2, 1.0);
    }
}
