//! Shadow (reference) models for the attacks, trained next to a target run.
//!
//! The **candidate pool** is the target's members followed by its non-members, in the order of
//! `signals/indices.npy`. Each shadow model trains on a random subset of the candidates as
//! large as the target's training set, with the target's recipe (architecture, optimiser,
//! epochs, augmentation) and, by default, the target's training-time defense: the *adaptive*
//! attacker. When there are as many non-members as members, shadows come in complementary
//! pairs (shadow `2j+1` trains on exactly what `2j` left out), so every candidate is IN for
//! half of any even number of shadows.
//!
//! Every shadow is queried on the candidates and on `population` extra examples from the
//! split's shadow pool (never trained on by anyone; RMIA's `z` samples), under the standard
//! augmented [`Query`] list. What is cached (`SHADOWS` is `RUN/shadows` unless told otherwise):
//!
//! | file | content |
//! |---|---|
//! | `SHADOWS/pool.json` | the [`PoolSpec`] every shadow shares |
//! | `SHADOWS/target_logits.npy` | `float32 [K, N+Z, C]` the target on every query |
//! | `SHADOWS/labels.npy` | `int64 [N+Z]` labels of the candidates, then the population |
//! | `SHADOWS/NNN/keep.npy` | `bool [N]` which candidates shadow NNN trained on |
//! | `SHADOWS/NNN/logits.npy` | `float32 [K, N+Z, C]` shadow NNN on every query |
//! | `SHADOWS/NNN/summary.json` | its accuracies and time (written last: marks it done) |
//! | `SHADOWS/NNN/model.bpk` | its weights |
//!
//! Shadow `i`'s keep-mask and seed depend only on the run's seed and `i`, so shards of a job
//! array (`--shard I/K` trains the indices `i ≡ I mod K`) need no coordination, and asking
//! for more shadows later reuses every finished one. Within one process, shadows train side
//! by side on threads ([`default_jobs`]); the results are the same in any order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use burn::prelude::Device;
use mia_core::layout::{RunLayout, ShadowLayout};
use mia_core::npy::NpyArray;
use mia_core::rng::mix;
use mia_core::{ModelConfig, Query};
use mia_data::{Dataset, Split};
use serde::{Deserialize, Serialize};

use crate::epochs::Fitted;
use crate::job::{Job, accuracy_and_loss, predict, predict_queries, save_record};
use crate::run::{read_json, write_json, write_npy};
use crate::trainer::fit;
use crate::{DefenseConfig, DeviceChoice, Observer, TrainConfig, TrainError};
pub use mia_core::shadows::keep_mask;

/// Which part of a job array this process is: it trains the shadows `i` with `i % of == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard number.
    pub index: usize,
    /// Number of shards.
    pub of: usize,
}

impl Shard {
    /// The whole job in one process.
    pub const ALL: Shard = Shard { index: 0, of: 1 };
}

impl std::str::FromStr for Shard {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TrainError::Config(format!("shard `{s}` is not I/K with 0 <= I < K"));
        let (i, k) = s.split_once('/').ok_or_else(bad)?;
        let (index, of) =
            (i.trim().parse().map_err(|_| bad())?, k.trim().parse().map_err(|_| bad())?);
        if of == 0 || index >= of {
            return Err(bad());
        }
        Ok(Shard { index, of })
    }
}

/// What `mia shadows` was asked for.
#[derive(Debug, Clone)]
pub struct ShadowOptions {
    /// Total shadows wanted (finished ones are reused).
    pub count: usize,
    /// This process's share.
    pub shard: Shard,
    /// Augmented queries per example (`Query::standard(queries)`); `None` keeps an existing
    /// folder's, or else follows the target's training augmentation ([`default_queries`]).
    pub queries: Option<usize>,
    /// Population examples (`z`) to query besides the candidates.
    pub population: usize,
    /// Training-time defense of the shadows; `None` copies the target's (adaptive attacker).
    pub defense: Option<DefenseConfig>,
    /// Device override.
    pub device: Option<DeviceChoice>,
    /// Shadows trained at once on threads; `None` picks [`default_jobs`].
    pub jobs: Option<usize>,
    /// Dataset folder override (when the run moved to another machine).
    pub data_dir: Option<PathBuf>,
    /// Shadow folder; `None` means `RUN/shadows`.
    pub dir: Option<PathBuf>,
}

/// The shadow-folder format [`PoolSpec::version`] this code writes. Version 2: keep-masks and
/// seeds come from [`mia_core::rng::mix`]; version 1's came from the trainer's own mixing
/// function, so a folder of either version is only ever continued by the same version
/// (otherwise complementary pairs could be split across two draws).
pub const POOL_VERSION: u32 = 2;

/// What all shadows of one folder share; a later call must ask for the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Format version.
    pub version: u32,
    /// Hash of the target's split.
    pub split_sha256: String,
    /// Candidates `N` (members then non-members).
    pub candidates: usize,
    /// Candidates each shadow trains on.
    pub in_size: usize,
    /// Whether shadows come in complementary pairs.
    pub paired: bool,
    /// Dataset indices of the population samples `z`.
    pub population: Vec<usize>,
    /// The queries, in the order of the logits' first axis.
    pub queries: Vec<Query>,
    /// The shadows' training-time defense.
    pub defense: DefenseConfig,
    /// Whether that is the target's defense (adaptive attacker).
    pub adaptive: bool,
}

/// Outcome of one shadow model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowSummary {
    /// Shadow index.
    pub index: usize,
    /// Accuracy on its own training set.
    pub train_acc: f32,
    /// Accuracy on the target's test set.
    pub test_acc: f32,
    /// Epochs trained.
    pub epochs: usize,
    /// Epoch whose weights were kept.
    pub kept_epoch: usize,
    /// Seconds of training steps.
    pub train_seconds: f64,
    /// Seconds spent querying.
    pub query_seconds: f64,
}

/// What one `shadows` call did.
#[derive(Debug, Clone, Default)]
pub struct ShadowReport {
    /// Shadow folder.
    pub dir: PathBuf,
    /// Shadows trained by this call.
    pub trained: Vec<ShadowSummary>,
    /// This shard's shadows that were already done.
    pub reused: usize,
    /// Shadows that belong to other shards.
    pub other_shards: usize,
}

/// Receives shadow-level progress (training progress goes through [`Observer`]).
pub trait ShadowObserver: Observer {
    /// Shadow `index` starts; `position` of `total` in this call.
    fn on_shadow(&mut self, _index: usize, _position: usize, _total: usize) {}
    /// Shadow `index` is done.
    fn on_shadow_done(&mut self, _summary: &ShadowSummary) {}
}

/// The target's recipe with the shadow options' overrides (data folder, device, defense),
/// range-checked.
fn shadow_config(target: &TrainConfig, options: &ShadowOptions) -> Result<TrainConfig, TrainError> {
    let mut config = target.clone();
    if let Some(d) = &options.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(d) = options.device {
        config.device = d;
    }
    if let Some(d) = &options.defense {
        config.defense = d.clone();
    }
    config.validate()?;
    Ok(config)
}

/// What every shadow shares, written once (by whichever shard comes first): the queried
/// examples' labels and the target's logits on every query of them.
fn write_target_outputs(
    paths: &RunLayout,
    pool: &ShadowLayout,
    model_config: &ModelConfig,
    ds: &Dataset,
    queried: &[usize],
    queries: &[Query],
    device: &Device,
) -> Result<(), TrainError> {
    let labels_path = pool.labels();
    if !labels_path.exists() {
        let labels = queried.iter().map(|&i| i64::from(ds.labels[i])).collect();
        write_npy(&labels_path, &NpyArray::i64(vec![queried.len()], labels)?)?;
    }
    let target_path = pool.target_logits();
    if !target_path.exists() {
        let bytes = std::fs::read(paths.weights()).map_err(|e| io(&paths.weights(), e))?;
        let model = model_config.load_bytes(bytes, device)?;
        let logits = predict_queries(&model, ds, queried, queries, device)?;
        let shape = vec![queries.len(), queried.len(), ds.num_classes()];
        write_npy(&target_path, &NpyArray::f32(shape, logits)?)?;
    }
    Ok(())
}

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.into(), reason: e.to_string() }
}

/// Trains this shard's missing shadows of the run in `run` (see the module docs).
pub fn shadows(
    run: &Path,
    options: &ShadowOptions,
    observer: &mut dyn ShadowObserver,
) -> Result<ShadowReport, TrainError> {
    let paths = RunLayout::new(run);
    if !paths.summary().exists() {
        return Err(TrainError::Resume {
            path: run.into(),
            reason: "no finished target run there (summary.json is missing)".into(),
        });
    }
    let target: TrainConfig = read_json(&paths.config())?;
    let pool = paths.shadows(options.dir.as_deref());
    let dir = pool.root.clone();
    let spec_path = pool.spec();
    let saved: Option<PoolSpec> =
        if spec_path.exists() { Some(read_json(&spec_path)?) } else { None };
    let queries = resolve_queries(options.queries, saved.as_ref(), &target)?;
    let model_config: ModelConfig = read_json(&paths.model_config())?;
    let split = Split::load(&paths.split())?;
    let config = shadow_config(&target, options)?;
    let ds = config.dataset.load(&config.data_dir, &config.load)?;
    if split.pool_size != ds.len() || split.dataset != ds.name {
        return Err(TrainError::Resume {
            path: run.into(),
            reason: "the dataset differs from the one the target was trained on".into(),
        });
    }
    if queries > 1 && ds.pixels(0).is_none() {
        return Err(TrainError::Config(
            "augmented queries need image data; use --queries 1 for tabular data".into(),
        ));
    }
    let candidates: Vec<usize> = split.members.iter().chain(&split.non_members).copied().collect();
    let n = candidates.len();
    let in_size = split.members.len();
    let spec = PoolSpec {
        version: POOL_VERSION,
        split_sha256: split.sha256.clone(),
        candidates: n,
        in_size,
        paired: n == 2 * in_size,
        population: split.shadow_pool.iter().take(options.population).copied().collect(),
        queries: Query::standard(queries),
        defense: config.defense.clone(),
        adaptive: config.defense == target.defense,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    if let Some(saved) = saved {
        if saved != spec {
            return Err(TrainError::ShadowMismatch { path: dir });
        }
    } else {
        write_json(&spec_path, &spec)?;
    }
    let queried: Vec<usize> = candidates.iter().chain(&spec.population).copied().collect();
    let shape = vec![spec.queries.len(), queried.len(), ds.num_classes()];
    let base = config.device.device()?;
    write_target_outputs(&paths, &pool, &model_config, &ds, &queried, &spec.queries, &base)?;

    let done = pool.finished();
    let mine: Vec<usize> =
        (0..options.count).filter(|i| i % options.shard.of == options.shard.index).collect();
    let todo: Vec<usize> = mine.iter().copied().filter(|i| !done.contains(i)).collect();
    let mut report = ShadowReport {
        dir: dir.clone(),
        trained: Vec::new(),
        reused: mine.len() - todo.len(),
        other_shards: options.count - mine.len(),
    };
    let ctx = ShadowJob {
        config: &config,
        model_config: &model_config,
        ds: &ds,
        split: &split,
        pool: &pool,
        seed: target.seed,
        candidates: &candidates,
        in_size,
        paired: spec.paired,
        queried: &queried,
        queries: &spec.queries,
        shape: &shape,
        device: &base,
    };
    report.trained = train_all(&ctx, &todo, options.jobs, observer)?;
    Ok(report)
}

/// Trains the shadows `todo`, one after another or `jobs` side by side (see [`default_jobs`]).
fn train_all(
    ctx: &ShadowJob<'_>,
    todo: &[usize],
    jobs: Option<usize>,
    observer: &mut dyn ShadowObserver,
) -> Result<Vec<ShadowSummary>, TrainError> {
    let dropout = ctx.model_config.dropout > 0.0;
    if dropout && jobs.is_some_and(|j| j > 1) {
        return Err(TrainError::Config(
            "shadows with dropout train one at a time in a process: dropout draws from burn's \
             process-wide RNG, so side-by-side models would depend on thread timing; use \
             --jobs 1, or several processes with --shard I/K"
                .into(),
        ));
    }
    let jobs = match jobs {
        _ if dropout => 1,
        Some(j) => j,
        None => default_jobs(ctx.config.device),
    }
    .clamp(1, todo.len().max(1));
    if jobs > 1 {
        return train_side_by_side(ctx, todo, jobs, observer);
    }
    let mut trained = Vec::new();
    for (position, &index) in todo.iter().enumerate() {
        observer.on_shadow(index, position, todo.len());
        let summary = ctx.train(index, observer)?;
        observer.on_shadow_done(&summary);
        trained.push(summary);
    }
    Ok(trained)
}

/// The queries per example: asked for, else an existing folder's, else [`default_queries`].
fn resolve_queries(
    asked: Option<usize>,
    saved: Option<&PoolSpec>,
    target: &TrainConfig,
) -> Result<usize, TrainError> {
    let queries =
        asked.or_else(|| saved.map(|s| s.queries.len())).unwrap_or_else(|| default_queries(target));
    if queries == 0 || queries > Query::MAX_STANDARD {
        return Err(TrainError::Config(format!(
            "--queries {queries} is out of range: it must be between 1 and {}",
            Query::MAX_STANDARD
        )));
    }
    Ok(queries)
}

/// Queries per example when `--queries` is not given and no shadow folder exists yet: the
/// identity alone for a target trained without augmentation (mirrored or shifted copies are
/// out of its training distribution and only weaken the attacks), the identity, mirror and a
/// shifted pair (4) for one trained with crop-and-flip augmentation.
pub fn default_queries(target: &TrainConfig) -> usize {
    if target.augment { 4 } else { 1 }
}

/// Shadows trained at once by default: one per core on CPU backends (small models leave
/// cores idle inside a step, so side by side is what fills the machine; `mia bench` measures
/// it), capped at 8 to bound memory; one on GPUs, whose kernels already fill the device.
/// Models with dropout always train one at a time (see the trainer's `BACKEND_RNG`).
pub fn default_jobs(device: DeviceChoice) -> usize {
    match device {
        DeviceChoice::Flex | DeviceChoice::Ndarray => {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
        }
        _ => 1,
    }
}

/// Runs `work` with burn-flex's multi-threaded kernels confined to the calling thread: when
/// several models train side by side, each on its own thread, splitting every matrix product
/// across the shared pool as well only adds contention (`mia bench` measured 4 side-by-side
/// small CNNs 15–22 % slower that way). Falls back to the shared pool if a pool cannot be made.
pub(crate) fn on_one_core<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// Everything one shadow needs; shared read-only by the training threads.
struct ShadowJob<'a> {
    config: &'a TrainConfig,
    model_config: &'a ModelConfig,
    ds: &'a Dataset,
    split: &'a Split,
    pool: &'a ShadowLayout,
    seed: u64,
    candidates: &'a [usize],
    in_size: usize,
    paired: bool,
    queried: &'a [usize],
    queries: &'a [Query],
    shape: &'a [usize],
    device: &'a Device,
}

impl ShadowJob<'_> {
    /// Trains, queries and saves shadow `index`; its result depends only on the run and
    /// `index`, never on which thread or in which order it ran.
    fn train(
        &self,
        index: usize,
        observer: &mut dyn Observer,
    ) -> Result<ShadowSummary, TrainError> {
        let (ds, split, n) = (self.ds, self.split, self.candidates.len());
        let classes = ds.num_classes();
        let files = self.pool.shadow(index);
        let checkpoints = files.checkpoint();
        std::fs::create_dir_all(&checkpoints.dir).map_err(|e| io(&checkpoints.dir, e))?;
        let keep = keep_mask(self.seed, index, n, self.in_size, self.paired);
        let train: Vec<usize> =
            self.candidates.iter().zip(&keep).filter(|(_, k)| **k).map(|(&i, _)| i).collect();
        let job = Job {
            config: self.config,
            model_config: self.model_config,
            ds,
            train: &train,
            scored: &train,
            validation: &split.validation,
            test: &split.test,
            checkpoints: &checkpoints,
            metrics: &files.metrics(),
            seed: mix(self.seed ^ 0x5AD0_0000, index as u64),
            init: None,
            masks: None,
            eval_each_epoch: false,
        };
        // An interrupted shadow continues from its checkpoint.
        let Fitted { model, state, kept_epoch, .. } = fit(&job, self.device, true, observer)?;
        let started = Instant::now();
        let logits = predict_queries(&model, ds, self.queried, self.queries, self.device)?;
        let query_seconds = started.elapsed().as_secs_f64();
        // Query 0 is the identity: its first N rows are the candidates.
        let (in_idx, in_rows): (Vec<usize>, Vec<f32>) = self
            .candidates
            .iter()
            .zip(logits[..n * classes].chunks(classes))
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|((&i, row), _)| (i, row))
            .fold((Vec::new(), Vec::new()), |(mut a, mut b), (i, row)| {
                a.push(i);
                b.extend_from_slice(row);
                (a, b)
            });
        let train_acc = accuracy_and_loss(&in_rows, ds, &in_idx).0;
        let test_logits = predict(&model, ds, &split.test, self.device)?;
        let test_acc = accuracy_and_loss(&test_logits, ds, &split.test).0;
        let summary = ShadowSummary {
            index,
            train_acc,
            test_acc,
            epochs: state.next_epoch,
            kept_epoch,
            train_seconds: state.train_seconds,
            query_seconds,
        };
        write_npy(&files.keep(), &NpyArray::bool(vec![n], keep)?)?;
        write_npy(&files.logits(), &NpyArray::f32(self.shape.to_vec(), logits)?)?;
        save_record(&model, &files.weights())?;
        write_json(&files.summary(), &summary)?;
        // Another process finishing the same shadow (same seed, so the same bytes) may have
        // removed it first.
        match std::fs::remove_dir_all(&checkpoints.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&checkpoints.dir, e));
            }
            _ => {}
        }
        Ok(summary)
    }
}

/// What a training thread tells the calling thread (which owns the observer).
enum Event {
    Started(usize),
    Epochs { epochs: usize, steps: usize },
    Step { images: usize, loss: f32 },
    Done(Box<Result<ShadowSummary, TrainError>>),
    Warning(String),
}

/// Forwards a training thread's progress to the calling thread.
struct Forward(mpsc::Sender<Event>);

impl Observer for Forward {
    fn on_start(&mut self, first_epoch: usize, epochs: usize, steps: usize) {
        let epochs = epochs.saturating_sub(first_epoch);
        // A closed channel means the caller stopped listening; training goes on regardless.
        let _ = self.0.send(Event::Epochs { epochs, steps });
    }
    fn on_step(&mut self, images: usize, loss: f32) {
        let _ = self.0.send(Event::Step { images, loss });
    }
    fn on_warning(&mut self, message: &str) {
        let _ = self.0.send(Event::Warning(message.to_string()));
    }
}

/// Trains `todo` on `jobs` threads, each taking the next shadow when it finishes one; after a
/// failure no new shadow starts and the first error is returned (finished shadows stay saved).
fn train_side_by_side(
    ctx: &ShadowJob<'_>,
    todo: &[usize],
    jobs: usize,
    observer: &mut dyn ShadowObserver,
) -> Result<Vec<ShadowSummary>, TrainError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let mut trained = Vec::new();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, next, failed) = (tx.clone(), &next, &failed);
            scope.spawn(move || {
                on_one_core(|| {
                    while !failed.load(Ordering::SeqCst) {
                        let Some(&index) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        if tx.send(Event::Started(index)).is_err() {
                            break;
                        }
                        let result = ctx.train(index, &mut Forward(tx.clone()));
                        if result.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        if tx.send(Event::Done(Box::new(result))).is_err() {
                            break;
                        }
                    }
                });
            });
        }
        drop(tx);
        let (mut started, mut sized) = (0, false);
        for event in rx {
            match event {
                Event::Started(index) => {
                    observer.on_shadow(index, started, todo.len());
                    started += 1;
                }
                Event::Epochs { epochs, steps } if !sized => {
                    // One bar for all of them: every shadow has the same recipe.
                    observer.on_start(0, epochs * todo.len(), steps);
                    sized = true;
                }
                Event::Epochs { .. } => {}
                Event::Step { images, loss } => observer.on_step(images, loss),
                Event::Warning(message) => observer.on_warning(&message),
                Event::Done(result) => match *result {
                    Ok(summary) => {
                        observer.on_shadow_done(&summary);
                        trained.push(summary);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                },
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => {
            trained.sort_by_key(|s| s.index);
            Ok(trained)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_masks_pair_up_and_are_reproducible() {
        let a = keep_mask(7, 0, 10, 5, true);
        let b = keep_mask(7, 1, 10, 5, true);
        assert_eq!(a.iter().filter(|k| **k).count(), 5);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        assert_eq!(a, keep_mask(7, 0, 10, 5, true));
        assert_ne!(a, keep_mask(7, 2, 10, 5, true));
        let c = keep_mask(7, 1, 12, 5, false);
        assert_eq!(c.iter().filter(|k| **k).count(), 5);
    }

    #[test]
    fn shards_parse() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, of: 4 });
        for bad in ["4/4", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
