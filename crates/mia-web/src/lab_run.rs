//! Lab mode's run, as one async task that yields to the page every ~30 ms so clicks stay
//! answered: features of the student's images from the shipped model's trunk, the target
//! head on the members, S shadow heads on complementary random halves of all the images
//! (same recipe and defense: the adaptive attacker), every head's logits, and every attack's
//! scores. The arithmetic is mia-core's, the same code the native tests run.

use std::cell::Cell;
use std::rc::Rc;

use burn::prelude::Device;
use mia_core::InputSpec;
use mia_core::bundle::Manifest;
use mia_core::lab::file::MIN_SHADOWS;
use mia_core::lab::{
    AttackDraws, HeadTrainer, LabAttack, LabNet, LabScores, Models, RunPlan, Split, TrainSet,
    lab_logits, normalize_features, rotate, rows_of,
};
use mia_core::models::Model;
use mia_core::posterior::argmax;
use yew::UseReducerHandle;

use mia_core::inference::Chain;

use crate::analysis;
use crate::engine::{self, Backend, LoadedModel, SharedBundle};
use crate::hooks::Engine;
use crate::lab_history;
use crate::lab_state::{
    LabAction, LabDefense, LabImage, LabLogits, LabResult, LabSettings, LabState, SavedNet,
};

/// Seed of the lab's heads (the split has its own).
const SEED: u64 = 11;

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
    slice: engine::Slice,
    cancel: Rc<Cell<bool>>,
}

impl Pacer {
    fn new(cancel: Rc<Cell<bool>>) -> Self {
        Self { slice: engine::Slice::start(), cancel }
    }

    async fn tick(&mut self) -> Result<(), String> {
        if self.slice.is_over() {
            self.slice.next().await;
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
    let settings = &snap.settings;
    if let Some(why) = settings.refused() {
        return Err(why);
    }
    let s = settings.shadows;
    let total = s + 1;
    let progress = |what: &str, done: usize| {
        lab.dispatch(LabAction::Progress(what.into(), done, total, engine::now_ms() - started));
    };
    progress("computing the features of your images", 0);
    let mut pacer = Pacer::new(inputs.cancel.clone());
    let (device, model) = device_and_model(inputs).await?;
    let manifest = &inputs.bundle.manifest;
    let (values, dim) = model_inputs(&model, &device, manifest, images, settings.fine_tune).await?;
    let labels: Vec<usize> = images.iter().map(|im| im.class).collect();
    let chosen: Vec<bool> = images.iter().map(|im| im.member).collect();
    let classes = snap.classes.len();
    let all = TrainSet { features: &values, dim, labels: &labels, classes };
    let trunk = settings.fine_tune.then_some((model.as_ref(), manifest.input));
    // Which images each model trains on: the members for the target, random halves for the
    // shadows, less the fifth each validates on under early stopping (OUT for that model).
    let plan = RunPlan::new(&chosen, s, snap.split_seed, settings.early_stopping.is_some(), SEED);
    let run = Training { settings, all: &all, trunk, device: &device };
    let trained = run.train_models(&plan, &mut pacer, &progress).await?;
    let validation = plan.models[0].validation.iter().map(|&i| images[i].id).collect();
    let (member, keep) = (plan.member().to_vec(), plan.shadow_keep().to_vec());
    progress("scoring every attack", total);
    let (target, logits) = gather(trained, labels, classes, keep);
    let (attacks, draws, accuracy) = outcome(&logits, &member)?;
    let trained = member.iter().filter(|m| **m).count();
    Ok(LabResult {
        ids: images.iter().map(|im| im.id).collect(),
        member,
        attacks,
        draws,
        epsilon: target.epsilon.zip(Some(settings.delta)),
        trained,
        accuracy,
        ms: engine::now_ms() - started,
        logits: Rc::new(logits),
        shadows: s,
        validation,
        kept_epoch: (target.kept_epoch, settings.epochs),
        net: saved(&target.net).await?,
        recipe: lab_history::recipe(settings),
        smoothing: (settings.defense == LabDefense::LabelSmoothing).then_some(settings.strength),
        pairing: lab_history::pairing(images, snap.split_seed, settings),
    })
}

/// What every model of a run trains with.
struct Training<'a> {
    settings: &'a LabSettings,
    all: &'a TrainSet<'a>,
    trunk: Option<(&'a Model, InputSpec)>,
    device: &'a Device,
}

impl Training<'_> {
    /// Trains the plan's models in turn (the target, then each shadow), saying which one
    /// through `progress`.
    async fn train_models(
        &self,
        plan: &RunPlan,
        pacer: &mut Pacer,
        progress: &dyn Fn(&str, usize),
    ) -> Result<Vec<Trained>, String> {
        let s = plan.models.len() - 1;
        let mut trained = Vec::with_capacity(plan.models.len());
        for (m, planned) in plan.models.iter().enumerate() {
            let what = if m == 0 {
                "training your model on the members".to_string()
            } else {
                format!("training shadow model {m} of {s}")
            };
            progress(&what, m);
            let cfg = self.settings.head(planned.seed);
            let rows = (&planned.rows[..], &planned.validation[..]);
            trained.push(train_one(cfg, self.all, rows, self.trunk, self.device, pacer).await?);
        }
        Ok(trained)
    }
}

/// A run's logits from its trained models (the target first, then the shadows, whose training
/// flags are `keep`), and the target without its logits.
fn gather(
    mut trained: Vec<Trained>,
    labels: Vec<usize>,
    classes: usize,
    keep: Vec<bool>,
) -> (Trained, LabLogits) {
    let mut target = trained.remove(0);
    let shadows: Vec<f32> = trained.iter().flat_map(|t| t.logits.iter().copied()).collect();
    let logits =
        LabLogits { labels, classes, target: std::mem::take(&mut target.logits), shadows, keep };
    (target, logits)
}

/// Images in the warm-up's made-up lab, and its feature dimension (the trunk's).
const WARM_UP_ROWS: usize = 20;
const WARM_UP_DIM: usize = 128;

/// Runs a small made-up head-only lab on the CPU path (20 rows of made-up features, 2 classes,
/// 6 shadows, the page's starting recipe) and throws it away. The browser first runs the
/// page's code from a quick baseline compilation and optimises what runs often, so a
/// session's first lab run was 1.7× slower than the next (1.2 s against 0.7 s); after this
/// warm-up (about 0.1 s in headless Chromium, run when the lab is first shown) it is not.
/// Stops at its next yield once `stop` is set (a run started).
pub async fn warm_up(stop: Rc<Cell<bool>>) -> Result<(), String> {
    let settings = LabSettings { shadows: MIN_SHADOWS, ..LabSettings::default() };
    let labels: Vec<usize> = (0..WARM_UP_ROWS).map(|i| i % 2).collect();
    let mut features: Vec<f32> = (0..WARM_UP_ROWS * WARM_UP_DIM)
        .map(|k| ((k * 7919 % 101) as f32 / 50.0 - 1.0) + (labels[k / WARM_UP_DIM] as f32))
        .collect();
    normalize_features(&mut features, WARM_UP_DIM);
    let all = TrainSet { features: &features, dim: WARM_UP_DIM, labels: &labels, classes: 2 };
    let member: Vec<bool> = (0..WARM_UP_ROWS).map(|i| i % 4 < 2).collect();
    let plan = RunPlan::new(&member, settings.shadows, SEED, false, SEED);
    let device = Device::flex();
    let run = Training { settings: &settings, all: &all, trunk: None, device: &device };
    let mut pacer = Pacer::new(stop);
    let trained = run.train_models(&plan, &mut pacer, &|_, _| ()).await?;
    let (target, logits) = gather(trained, labels, 2, plan.shadow_keep().to_vec());
    outcome(&logits, plan.member())?;
    saved(&target.net).await?;
    Ok(())
}

/// Every attack's scores, every attack over the draws, and the accuracy on (members,
/// held-out images).
pub type Outcome = (Vec<(LabAttack, Vec<f32>, f64)>, Vec<AttackDraws>, (f64, f64));

/// What a run's logits show: every attack's scores and AUC on the target, every attack over
/// the draws, and the target's accuracy on (members, held-out images). A finished run and a
/// run read back from a lab file both come through here.
pub fn outcome(logits: &LabLogits, member: &[bool]) -> Result<Outcome, String> {
    let attacks = score(logits, member)?;
    let draws = draws(logits, member)?;
    let accuracy = accuracy(&logits.target, &logits.labels, logits.classes, member);
    Ok((attacks, draws, accuracy))
}

/// The page's device and the shipped model whose trunk the lab builds on.
async fn device_and_model(inputs: &RunInputs) -> Result<(Device, Rc<Model>), String> {
    let (backend, generation) = inputs.backend;
    let device = inputs.engine.device(backend).await?;
    let (id, files) = (&inputs.model.0, &inputs.model.1);
    let model = inputs
        .engine
        .model(&inputs.bundle, (id.as_str(), files.as_ref()), generation, &device)
        .await?;
    Ok((device, model))
}

/// What the lab's networks read, as `[n × dim]` rows: the trunk's features of every image,
/// scaled per image, or (fine-tuning) the normalised pixels themselves.
pub async fn model_inputs(
    model: &Model,
    device: &Device,
    manifest: &Manifest,
    images: &[LabImage],
    fine_tune: bool,
) -> Result<(Vec<f32>, usize), String> {
    let n = images.len();
    let pixels: Vec<u8> = images.iter().flat_map(|im| im.pixels.iter().copied()).collect();
    if fine_tune {
        let mut values = Vec::with_capacity(pixels.len() * 4);
        for im in images {
            manifest.normalization.push_u8(&im.pixels, manifest.input, &mut values);
        }
        return Ok((values, manifest.input.numel()));
    }
    let mut features = engine::features(model, device, manifest, (&pixels, n), &|_| ()).await?;
    let dim = features.len() / n.max(1);
    normalize_features(&mut features, dim);
    Ok((features, dim))
}

/// Shares of the members and of the held-out images the target classifies right.
pub fn accuracy(target: &[f32], labels: &[usize], classes: usize, member: &[bool]) -> (f64, f64) {
    let right = |want: bool| {
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| member[i] == want).collect();
        let ok = rows
            .iter()
            .filter(|&&i| argmax(&target[i * classes..(i + 1) * classes]) == labels[i])
            .count();
        ok as f64 / rows.len().max(1) as f64
    };
    (right(true), right(false))
}

/// Rebuilds the network of an imported lab file on the page's device and measures it on the
/// lab's images: accuracy on the images marked member and on the held-out ones.
pub async fn check_imported(snap: &LabState, inputs: &RunInputs) -> Result<(f64, f64), String> {
    let net = snap.imported.as_ref().ok_or("no network was imported")?;
    let (device, model) = device_and_model(inputs).await?;
    let manifest = &inputs.bundle.manifest;
    let shape = net.shape;
    let trunk = shape.fine_tuned.then_some((model.as_ref(), manifest.input));
    let rebuilt =
        LabNet::from_bytes(net.bytes.to_vec(), shape, trunk, &device).map_err(|e| e.to_string())?;
    let classes = snap.classes.len();
    if shape.classes != classes {
        return Err(format!("it has {} classes, the lab {classes}", shape.classes));
    }
    if snap.images.is_empty() {
        return Ok((0.0, 0.0));
    }
    let (values, dim) =
        model_inputs(&model, &device, manifest, &snap.images, shape.fine_tuned).await?;
    if dim != shape.dim {
        return Err(format!(
            "it reads {} values per image, this page's model gives {dim}",
            shape.dim
        ));
    }
    let logits = logits_of(&rebuilt, &values, dim, &device).await?;
    let labels: Vec<usize> = snap.images.iter().map(|im| im.class).collect();
    let member: Vec<bool> = snap.images.iter().map(|im| im.member).collect();
    Ok(accuracy(&logits, &labels, classes, &member))
}

/// One trained network: its logits on every image, the ε it spent (DP-SGD), the epoch it
/// kept, and the network.
struct Trained {
    logits: Vec<f32>,
    epsilon: Option<f64>,
    kept_epoch: usize,
    net: LabNet,
}

/// Trains one network on images `rows`, validating on `val` under early stopping (yielding
/// to the page between epochs), and returns its logits on every image.
async fn train_one(
    cfg: mia_core::lab::HeadConfig,
    all: &TrainSet<'_>,
    (rows, val): (&[usize], &[usize]),
    trunk: Option<(&Model, InputSpec)>,
    device: &Device,
    pacer: &mut Pacer,
) -> Result<Trained, String> {
    let text = |e: mia_core::CoreError| e.to_string();
    let (d, classes) = (all.dim, all.classes);
    let (xs, ys) = rows_of(all, rows);
    let (vx, vy) = rows_of(all, val);
    let data = TrainSet { features: &xs, dim: d, labels: &ys, classes };
    let early = cfg.early_stopping.is_some();
    let mut trainer = match trunk {
        None => HeadTrainer::new(cfg, data, device),
        Some(t) => HeadTrainer::fine_tune(cfg, data, t, device),
    }
    .map_err(text)?;
    if early {
        let vdata = TrainSet { features: &vx, dim: d, labels: &vy, classes };
        trainer = trainer.with_validation(vdata).map_err(text)?;
    }
    while !trainer.finished() {
        trainer.epoch().map_err(text)?;
        if let Some(loss) = trainer.validation_loss() {
            trainer.observe_validation(read_scalar(loss).await?);
        }
        pacer.tick().await?;
    }
    let (epsilon, kept_epoch) = (trainer.epsilon(), trainer.kept_epoch().0);
    let net = trainer.finish();
    let logits = logits_of(&net, all.features, d, device).await?;
    pacer.tick().await?;
    Ok(Trained { logits, epsilon, kept_epoch, net })
}

/// A network's weights as burnpack bytes, read back from the device without blocking (its
/// parameters are read asynchronously and set on a CPU copy, which is then serialised).
async fn saved(net: &LabNet) -> Result<SavedNet, String> {
    let mut values = Vec::new();
    for t in net.parameter_tensors() {
        let data = t.into_data_async().await.map_err(|e| format!("readback: {e:?}"))?;
        values.push(data.try_to_vec::<f32>().map_err(|e| format!("readback: {e:?}"))?);
    }
    let host = net.clone().with_values(values, &Device::flex()).map_err(|e| e.to_string())?;
    let bytes = host.to_bytes().map_err(|e| e.to_string())?;
    Ok(SavedNet { shape: net.shape(), bytes: Rc::new(bytes) })
}

async fn read_scalar(t: burn::prelude::Tensor<1>) -> Result<f64, String> {
    let data = t.into_data_async().await.map_err(|e| format!("readback: {e:?}"))?;
    let v = data.try_to_vec::<f32>().map_err(|e| format!("readback: {e:?}"))?;
    Ok(v.first().map_or(f64::NAN, |&x| f64::from(x)))
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

/// Every attack over every draw: each model of the run (the target, then each shadow) in turn
/// as the target, the others as its reference models ([`mia_core::lab::rotate`]).
pub fn draws(logits: &LabLogits, member: &[bool]) -> Result<Vec<AttackDraws>, String> {
    let all: Vec<f32> = logits.target.iter().chain(&logits.shadows).copied().collect();
    let keep: Vec<bool> = member.iter().chain(&logits.keep).copied().collect();
    let models =
        Models { labels: &logits.labels, classes: logits.classes, logits: &all, keep: &keep };
    rotate(&models).map_err(|e| e.to_string())
}

/// The logits behind a lab result through an inference-time `chain`: the target's (MemGuard
/// fitted on its own members) and, for the adaptive attacker, every shadow's through the same
/// chain (each with its own members).
pub fn released(logits: &LabLogits, member: &[bool], chain: &Chain) -> Result<LabLogits, String> {
    let (c, n) = (logits.classes, logits.labels.len());
    let ctx = analysis::context(chain, &logits.target, c, member, &[], SEED);
    let target = ctx.and_then(|ctx| analysis::release(chain, &logits.target, c, &ctx, SEED));
    let shadows =
        analysis::release_shadows(chain, &logits.shadows, &logits.keep, (n, c), &[], SEED);
    let (target, shadows) =
        (target.map_err(|e| e.to_string())?, shadows.map_err(|e| e.to_string())?);
    Ok(LabLogits { target, shadows: shadows.concat(), ..logits.clone() })
}

/// A network's logits on every image, read back asynchronously (in chunks of 100 images, so
/// a fine-tuned trunk never holds every image's activations at once).
pub async fn logits_of(
    net: &LabNet,
    inputs: &[f32],
    dim: usize,
    device: &Device,
) -> Result<Vec<f32>, String> {
    let mut out = Vec::new();
    for chunk in inputs.chunks(100 * dim.max(1)) {
        out.extend(logits_chunk(net, chunk, dim, device).await?);
    }
    Ok(out)
}

async fn logits_chunk(
    net: &LabNet,
    inputs: &[f32],
    dim: usize,
    device: &Device,
) -> Result<Vec<f32>, String> {
    let t = lab_logits(net, inputs, dim, device).map_err(|e| e.to_string())?;
    let data = t.into_data_async().await.map_err(|e| format!("readback: {e:?}"))?;
    data.try_to_vec::<f32>().map_err(|e| format!("readback: {e:?}"))
}

/// 8 images, 2 classes; the target and 6 shadows are surer of the images they trained on.
#[cfg(test)]
pub fn test_world() -> (LabLogits, Vec<bool>) {
    use mia_core::lab::shadow_keep;
    let (n, s) = (8usize, 6usize);
    let labels = vec![0, 1, 0, 1, 0, 1, 0, 1];
    let member = vec![true, true, false, false, true, false, true, false];
    let logit = |y: usize, sure: f32| if y == 0 { [sure, 0.0] } else { [0.0, sure] };
    let target = (0..n).flat_map(|i| logit(labels[i], if member[i] { 4.0 } else { 1.0 })).collect();
    let keep = shadow_keep(n, s, 0);
    let shadows = (0..s * n)
        .flat_map(|j| logit(labels[j % n], if keep[j] { 4.0 + 0.1 * (j % 3) as f32 } else { 1.0 }))
        .collect();
    (LabLogits { labels, classes: 2, target, shadows, keep }, member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> (LabLogits, Vec<bool>) {
        test_world()
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

    #[test]
    fn every_model_of_a_run_takes_its_turn_as_the_target() {
        let (logits, member) = world();
        let d = draws(&logits, &member).unwrap();
        let lira = d.iter().find(|a| a.attack == LabAttack::LiraOnline).unwrap();
        assert_eq!(lira.aucs.len(), 7, "the target and 6 shadows");
        assert_eq!(lira.leave_out.len(), 4, "the target, then three pairs, left out");
        let own = score(&logits, &member).unwrap();
        let own = own.iter().find(|a| a.0 == LabAttack::LiraOnline).unwrap().2;
        assert_eq!(lira.aucs[0], own, "draw 0 is the student's own target");
    }
}
