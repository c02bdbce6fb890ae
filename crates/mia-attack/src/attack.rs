//! The attacks, by name, and what each reports. Every attack turns an [`AttackInput`] into one
//! score per candidate (higher = more likely a member), evaluated threshold-free against the
//! ground truth; attacks with a decision rule (thresholds, attack models) also report the
//! rule's TPR/FPR on the target after calibrating it on the shadow models only.
//!
//! | name | family | needs |
//! |---|---|---|
//! | `confidence`, `loss`, `entropy`, `modified-entropy`, `top1`, `correctness` | threshold (Song & Mittal 2021; Yeom et al. 2018) | nothing; shadows to calibrate |
//! | `label-only` | label-only (correct predictions among K augmented queries; Choquette-Choo et al. 2021) | nothing; shadows to calibrate |
//! | `shadow-{lr,mlp}-{top3,posterior,posterior-label}` | shadow classifier (Shokri et al. 2017; ML-Leaks 2019) | shadows |
//! | `nn`, `nn-top3`, `nn-cls` | shadow classifier: mia_prune's `MIAFC` on the posterior, its top 3, or the posterior and one-hot label (Yuan & Zhang 2022) | shadows |
//! | `samia` | SAMIA: a transformer on posterior, sensitivity and one-hot label (Yuan & Zhang 2022) | shadows and the models' sensitivity |
//! | `lira-{online,offline}`, `-fixed`, `-global` | LiRA (Carlini et al. 2022): per-example, pooled, or the official code's global variance | shadows (online: IN and OUT) |
//! | `rmia-online`, `rmia-offline` | RMIA (Zarifzadeh et al. 2024) | shadows |

use std::time::Instant;

use mia_core::lira::{self, Center, Estimator, OfflineForm, SignalShape, Variance};
use mia_core::metrics::{self, Confusion, Evaluation};
use mia_core::posterior::{argmax, softmax};
use mia_core::rmia;
use mia_core::scores::{ScoreKind, Threshold, calibrate, calibrate_per_class};
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, ClassifierKind, TrainSettings};
use crate::network::{Network, NetworkKind, NetworkSettings};
use crate::{AttackError, AttackInput, Logits};

/// Features the shadow-classifier attack model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Features {
    /// The three largest posteriors, sorted (ML-Leaks adversary 1; label-free).
    Top3,
    /// The full posterior vector.
    Posterior,
    /// The posterior and the one-hot true label (Shokri et al.'s per-class information).
    PosteriorLabel,
}

impl Features {
    /// The name, as in attack names (`shadow-lr-top3`) and serde.
    pub fn name(self) -> &'static str {
        match self {
            Self::Top3 => "top3",
            Self::Posterior => "posterior",
            Self::PosteriorLabel => "posterior-label",
        }
    }
}

/// An attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackKind {
    /// A threshold on a per-example score of the identity query.
    Threshold(ScoreKind),
    /// Correctly classified fraction of the K queries.
    LabelOnly,
    /// An attack model trained on shadow outputs.
    ShadowClassifier(ClassifierKind, Features),
    /// mia_prune's `MIAFC` network trained on shadow outputs (`nn`, `nn-top3`, `nn-cls`).
    Network(Features),
    /// SAMIA: mia_prune's transformer on posterior, sensitivity and one-hot label.
    Samia,
    /// LiRA with IN and OUT Gaussians.
    LiraOnline {
        /// Per-example, pooled (`-fixed`) or global (`-global`, the official code's) spread.
        variance: Variance,
    },
    /// LiRA with OUT Gaussians only.
    LiraOffline {
        /// Per-example, pooled (`-fixed`) or global (`-global`) spread.
        variance: Variance,
    },
    /// RMIA with every reference model.
    RmiaOnline,
    /// RMIA with OUT reference models and the tuned `a`.
    RmiaOffline,
    /// DynaNoise's naive attacker: "member" iff the released top-1 posterior is at least
    /// `percent`/100 (0.9 and 0.5 in the paper); no shadows, no calibration.
    FixedConfidence {
        /// The threshold in percent.
        percent: u8,
    },
}

impl AttackKind {
    /// Every attack, in report order.
    pub fn all() -> Vec<AttackKind> {
        let mut v: Vec<AttackKind> = ScoreKind::ALL.iter().map(|&k| Self::Threshold(k)).collect();
        v.push(Self::LabelOnly);
        for c in [ClassifierKind::Logistic, ClassifierKind::Mlp] {
            for f in [Features::Top3, Features::Posterior, Features::PosteriorLabel] {
                v.push(Self::ShadowClassifier(c, f));
            }
        }
        v.extend(
            [Features::Posterior, Features::Top3, Features::PosteriorLabel].map(Self::Network),
        );
        v.push(Self::Samia);
        let spreads = [Variance::PerExample, Variance::Fixed, Variance::Global];
        v.extend(spreads.map(|variance| Self::LiraOnline { variance }));
        v.extend(spreads.map(|variance| Self::LiraOffline { variance }));
        v.extend([Self::RmiaOnline, Self::RmiaOffline]);
        v
    }

    /// The attack's name (as on the command line).
    pub fn name(&self) -> String {
        match self {
            Self::Threshold(k) => k.name().into(),
            Self::LabelOnly => "label-only".into(),
            Self::ShadowClassifier(c, f) => format!(
                "shadow-{}-{}",
                match c {
                    ClassifierKind::Logistic => "lr",
                    ClassifierKind::Mlp => "mlp",
                },
                f.name()
            ),
            Self::Network(f) => match f {
                Features::Posterior => "nn".into(),
                Features::Top3 => "nn-top3".into(),
                Features::PosteriorLabel => "nn-cls".into(),
            },
            Self::Samia => "samia".into(),
            Self::LiraOnline { variance } => format!("lira-online{}", spread_suffix(*variance)),
            Self::LiraOffline { variance } => format!("lira-offline{}", spread_suffix(*variance)),
            Self::RmiaOnline => "rmia-online".into(),
            Self::RmiaOffline => "rmia-offline".into(),
            Self::FixedConfidence { percent } => format!("fixed-{}", f32::from(*percent) / 100.0),
        }
    }

    /// DynaNoise's fixed-threshold attacks (0.9 and 0.5 on the top-1 posterior), the naive
    /// baseline of inference-time defense papers. Not part of [`AttackKind::all`].
    pub fn fixed_thresholds() -> Vec<AttackKind> {
        vec![Self::FixedConfidence { percent: 90 }, Self::FixedConfidence { percent: 50 }]
    }

    /// Looks an attack up by name.
    pub fn parse(name: &str) -> Result<AttackKind, AttackError> {
        Self::all()
            .into_iter()
            .chain(Self::fixed_thresholds())
            .find(|a| a.name() == name)
            .ok_or_else(|| AttackError::UnknownAttack(name.to_string()))
    }

    /// The family, for grouping in reports.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Threshold(ScoreKind::Correctness) | Self::LabelOnly => "label-only",
            Self::Threshold(_) | Self::FixedConfidence { .. } => "threshold",
            Self::ShadowClassifier(..) | Self::Network(_) | Self::Samia => "shadow-classifier",
            Self::LiraOnline { .. } | Self::LiraOffline { .. } => "lira",
            Self::RmiaOnline | Self::RmiaOffline => "rmia",
        }
    }

    /// Whether the attack cannot run without shadow models.
    pub fn needs_shadows(&self) -> bool {
        !matches!(self, Self::Threshold(_) | Self::LabelOnly | Self::FixedConfidence { .. })
    }
}

/// The attack-name suffix of a LiRA spread.
fn spread_suffix(v: Variance) -> &'static str {
    match v {
        Variance::PerExample => "",
        Variance::Fixed => "-fixed",
        Variance::Global => "-global",
    }
}

/// Attack settings.
#[derive(Debug, Clone, Copy)]
pub struct AttackOptions {
    /// RMIA's γ (default 1).
    pub gamma: f32,
    /// RMIA's offline `a`; `None` tunes it on the shadows.
    pub rmia_a: Option<f32>,
    /// LiRA's centre estimator (default median).
    pub lira_center: Center,
    /// LiRA's per-example deviation floor, a fraction of the pooled deviation in `[0, 1]`.
    pub lira_std_floor: f32,
    /// LiRA's offline statistic (default the one-sided CDF test).
    pub offline_form: OfflineForm,
    /// Seed of the attack models.
    pub seed: u64,
    /// At most this many shadow rows train an attack model (a random subset beyond).
    pub max_classifier_rows: usize,
    /// How the neural attack models (`nn*`, `samia`) train.
    pub network: NetworkSettings,
    /// At most this many shadow rows train a neural attack model (a random subset beyond).
    pub max_network_rows: usize,
}

impl Default for AttackOptions {
    fn default() -> Self {
        Self {
            gamma: 1.0,
            rmia_a: None,
            lira_center: Center::Median,
            lira_std_floor: lira::DEFAULT_STD_FLOOR,
            offline_form: OfflineForm::OneSidedCdf,
            seed: 0,
            max_classifier_rows: 60_000,
            network: NetworkSettings::default(),
            max_network_rows: 20_000,
        }
    }
}

/// The share of (example, query) pairs whose per-example LiRA deviation may sit on the floor
/// before an attack warns that the floor, not the shadows, decides its scores.
pub const FLOOR_WARNING_SHARE: f64 = 0.05;

impl AttackOptions {
    /// Checks every parameter's range (the CLI turns the error into `error:`/`hint:`).
    pub fn validate(&self) -> Result<(), AttackError> {
        let bad = |m: String| Err(AttackError::Option(m));
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return bad(format!(
                "RMIA's γ = {} must be a positive number (usually 1 or 2)",
                self.gamma
            ));
        }
        if let Some(a) = self.rmia_a
            && !(0.0..=1.0).contains(&a)
        {
            return bad(format!(
                "RMIA's offline a = {a} must be between 0 and 1 (Pr(x) ≈ ((1 + a)·Pr_OUT(x) + 1 − a) / 2)"
            ));
        }
        self.estimator(Variance::PerExample).validate()?;
        self.network.validate()?;
        for rows in [self.max_classifier_rows, self.max_network_rows] {
            if rows < 2 {
                return bad(format!("the attack models need at least 2 training rows, not {rows}"));
            }
        }
        Ok(())
    }

    fn estimator(&self, variance: Variance) -> Estimator {
        Estimator { center: self.lira_center, variance, std_floor: self.lira_std_floor }
    }
}

/// A decision rule's outcome on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// How the rule was fitted (e.g. "global threshold from 16 shadows").
    pub rule: String,
    /// True-positive rate on the target.
    pub tpr: f64,
    /// False-positive rate on the target.
    pub fpr: f64,
    /// Balanced accuracy on the target.
    pub balanced_accuracy: f64,
    /// Precision of "member" calls.
    pub precision: f64,
}

/// One attack's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackResult {
    /// Attack name.
    pub name: String,
    /// Family.
    pub family: String,
    /// Threshold-free metrics on the target.
    pub evaluation: Evaluation,
    /// Rules calibrated on shadows, applied to the target.
    pub calibrated: Vec<Calibrated>,
    /// Shadow models used.
    pub shadows: usize,
    /// Queries per example used.
    pub queries: usize,
    /// Seconds the attack took (fitting and scoring).
    pub seconds: f64,
    /// Estimator choices and caveats.
    pub notes: Vec<String>,
    /// Scores of the candidates (written to `attack_scores.npy`, not to JSON).
    #[serde(skip)]
    pub scores: Vec<f32>,
}

fn need(kind: &AttackKind, what: &str) -> AttackError {
    AttackError::NeedsShadows { attack: kind.name(), need: what.into() }
}

/// One attack's scores on the candidates and what explains them.
struct Scored {
    scores: Vec<f32>,
    /// Queries per example the scores used.
    queries: usize,
    calibrated: Vec<Calibrated>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

impl Scored {
    fn new(scores: Vec<f32>, queries: usize) -> Self {
        Self { scores, queries, calibrated: Vec::new(), notes: Vec::new(), warnings: Vec::new() }
    }
    fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Runs one attack.
pub fn run(
    kind: AttackKind,
    input: &AttackInput,
    opt: &AttackOptions,
) -> Result<AttackResult, AttackError> {
    opt.validate()?;
    let started = Instant::now();
    let s = input.shadows.len();
    if kind.needs_shadows() && s == 0 {
        return Err(need(&kind, "shadow models"));
    }
    let scored = match kind {
        AttackKind::FixedConfidence { percent } => fixed_confidence(percent, input),
        AttackKind::Threshold(_) | AttackKind::LabelOnly => threshold(kind, input)?,
        AttackKind::ShadowClassifier(model, features) => {
            shadow_classifier(model, features, input, opt)
        }
        AttackKind::Network(features) => network(Some(features), input, opt)?,
        AttackKind::Samia => network(None, input, opt)?,
        AttackKind::LiraOnline { variance } => {
            lira(input, opt.estimator(variance), true, opt.offline_form)?
        }
        AttackKind::LiraOffline { variance } => {
            lira(input, opt.estimator(variance), false, opt.offline_form)?
        }
        AttackKind::RmiaOnline => rmia(input, true, opt)?,
        AttackKind::RmiaOffline => rmia(input, false, opt)?,
    };
    let mut evaluation = metrics::evaluate(&scored.scores, &input.is_member)?;
    evaluation.warnings.extend(scored.warnings);
    Ok(AttackResult {
        name: kind.name(),
        family: kind.family().into(),
        evaluation,
        calibrated: scored.calibrated,
        shadows: if kind.needs_shadows() || s > 0 { s } else { 0 },
        queries: scored.queries,
        seconds: started.elapsed().as_secs_f64(),
        notes: scored.notes,
        scores: scored.scores,
    })
}

/// DynaNoise's naive rule: binary "top-1 posterior ≥ percent/100" scores.
fn fixed_confidence(percent: u8, input: &AttackInput) -> Scored {
    let t = f32::from(percent) / 100.0;
    let scores: Vec<f32> = (0..input.candidates())
        .map(|i| {
            let top = softmax(input.target.row(0, i)).into_iter().fold(0f32, f32::max);
            f32::from(u8::from(top >= t))
        })
        .collect();
    let rule = format!("fixed: member iff top-1 posterior ≥ {t}");
    let calibrated = apply(&rule, &scores, input, |sc, _| sc > 0.5);
    let mut out =
        Scored::new(scores, 1).note("binary scores: the AUC is the rule's balanced accuracy");
    out.calibrated.push(calibrated);
    out
}

/// A threshold score (identity query) or the label-only fraction (all queries), with
/// thresholds calibrated on the shadows when there are any.
fn threshold(kind: AttackKind, input: &AttackInput) -> Result<Scored, AttackError> {
    let queries = if kind == AttackKind::LabelOnly { input.target.queries } else { 1 };
    if input.shadows.is_empty() {
        let n = input.candidates();
        let scores = simple_scores(kind, score_of(kind), &input.target, &input.labels, n);
        return Ok(Scored::new(scores, queries).note("no shadows: threshold-free metrics only"));
    }
    let (target, rules) = calibrated_threshold(kind, input)?;
    let mut out = Scored::new(target, queries);
    out.calibrated = rules;
    Ok(out)
}

/// An attack model trained on the shadows' (features, keep) rows, scoring the target.
fn shadow_classifier(
    model: ClassifierKind,
    features: Features,
    input: &AttackInput,
    opt: &AttackOptions,
) -> Scored {
    let (n, s) = (input.candidates(), input.shadows.len());
    let (x, dim) = featurise(features, &input.target, &input.labels, n);
    let (mut fx, mut fy) = (Vec::new(), Vec::new());
    for sh in &input.shadows {
        fx.extend(featurise(features, &sh.logits, &input.labels, n).0);
        fy.extend_from_slice(&sh.keep);
    }
    let (fx, fy) = subsample(fx, fy, dim, opt.max_classifier_rows, opt.seed);
    let settings = TrainSettings { seed: opt.seed, ..TrainSettings::default() };
    let clf = Classifier::fit(&fx, dim, &fy, model, settings);
    let scores = clf.score(&x);
    let rule = format!("attack model (p > 0.5) trained on {} rows from {s} shadows", fy.len());
    let calibrated = apply(&rule, &scores, input, |sc, _| sc > 0.0);
    let mut out =
        Scored::new(scores, 1).note("features are the identity query's posteriors, standardised");
    out.calibrated.push(calibrated);
    out
}

/// A neural attack model trained on the shadows' rows, scoring the target: `MIAFC` on
/// `features`, or SAMIA's transformer (`None`) on posterior, sensitivity and one-hot label.
fn network(
    features: Option<Features>,
    input: &AttackInput,
    opt: &AttackOptions,
) -> Result<Scored, AttackError> {
    let (n, s) = (input.candidates(), input.shadows.len());
    // `used`: the shadows whose rows train the network (SAMIA: those with a sensitivity, the
    // first ones).
    let (kind, x, dim, fx, used) = match features {
        Some(f) => {
            let (x, dim) = featurise(f, &input.target, &input.labels, n);
            let mut fx = Vec::with_capacity(s * n * dim);
            for sh in &input.shadows {
                fx.extend(featurise(f, &sh.logits, &input.labels, n).0);
            }
            (NetworkKind::Fc, x, dim, fx, s)
        }
        None => {
            let Some(sens) = &input.sensitivity else {
                return Err(AttackError::NeedsSensitivity);
            };
            let x = samia_features(&input.target, &sens.target, &input.labels, n);
            let mut fx = Vec::new();
            for (sh, v) in input.shadows.iter().zip(&sens.shadows) {
                fx.extend(samia_features(&sh.logits, v, &input.labels, n));
            }
            (NetworkKind::Samia, x, 3 * input.target.classes, fx, sens.shadows.len())
        }
    };
    let fy: Vec<bool> =
        input.shadows[..used].iter().flat_map(|sh| sh.keep.iter().copied()).collect();
    let (fx, fy) = subsample(fx, fy, dim, opt.max_network_rows, opt.seed);
    let settings = NetworkSettings { seed: opt.seed, ..opt.network };
    let net = Network::fit(kind, &fx, dim, &fy, &settings)?;
    let scores = net.score(&x, dim)?;
    let rule = format!(
        "attack network (member logit larger) trained on {} rows from {used} shadows",
        fy.len()
    );
    let calibrated = apply(&rule, &scores, input, |sc, _| sc > 0.0);
    let what = match kind {
        NetworkKind::Fc => "MIAFC (512-256-128)",
        NetworkKind::Samia => "SAMIA's transformer on posterior, sensitivity and one-hot label",
    };
    let mut out = Scored::new(scores, 1).note(format!(
        "{what}; SGD {} epochs, lr {} (×0.1 at ½ and ¾), batch {}, balanced rows",
        settings.epochs, settings.lr, settings.batch
    ));
    out.calibrated.push(calibrated);
    Ok(out)
}

/// SAMIA's rows `[posterior (C), sensitivity (C), one-hot label (C)]` of the first `n` rows.
fn samia_features(l: &Logits, sensitivity: &[f32], labels: &[usize], n: usize) -> Vec<f32> {
    let c = l.classes;
    let mut out = Vec::with_capacity(n * 3 * c);
    for (i, &label) in labels.iter().enumerate().take(n) {
        out.extend(softmax(l.row(0, i)));
        out.extend_from_slice(&sensitivity[i * c..(i + 1) * c]);
        out.extend((0..c).map(|j| f32::from(u8::from(j == label))));
    }
    out
}

/// RMIA with every reference model (online, a = 1) or the OUT models and a given or tuned `a`.
fn rmia(input: &AttackInput, online: bool, opt: &AttackOptions) -> Result<Scored, AttackError> {
    let (n, s) = (input.candidates(), input.shadows.len());
    let mut notes = Vec::new();
    let p_target = true_probs(&input.target, &input.labels);
    let p_shadows: Vec<Vec<f32>> =
        input.shadows.iter().map(|sh| true_probs(&sh.logits, &input.labels)).collect();
    let z_range = if input.population() > 0 {
        n..input.target.rows
    } else {
        notes.push("no population samples: the candidates serve as z".into());
        0..n
    };
    let a = if online {
        1.0
    } else if let Some(a) = opt.rmia_a {
        a
    } else if s >= 2 {
        let a = tune_a(input, &p_shadows, z_range.clone(), opt.gamma)?;
        notes.push(format!("a = {a:.1}, tuned with shadow 0 as the target"));
        a
    } else {
        notes.push("one shadow: a = 1 (no tuning possible)".into());
        1.0
    };
    let refs: Vec<usize> = (0..s).collect();
    let scores = rmia_scores(input, &p_target, &p_shadows, &refs, online, a, z_range, opt.gamma)?;
    let mut out = Scored::new(scores, input.target.queries);
    out.notes = notes;
    Ok(out)
}

/// Threshold scores of the target, and the global and per-class thresholds calibrated on the
/// shadows' scores applied to it.
fn calibrated_threshold(
    kind: AttackKind,
    input: &AttackInput,
) -> Result<(Vec<f32>, Vec<Calibrated>), AttackError> {
    let (n, s, score) = (input.candidates(), input.shadows.len(), score_of(kind));
    let target = simple_scores(kind, score, &input.target, &input.labels, n);
    let (mut pooled, mut keep, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for sh in &input.shadows {
        pooled.extend(simple_scores(kind, score, &sh.logits, &input.labels, n));
        keep.extend_from_slice(&sh.keep);
        ys.extend_from_slice(&input.labels[..n]);
    }
    let global = Threshold::Global(calibrate(&pooled, &keep)?);
    let per_class = calibrate_per_class(&pooled, &keep, &ys, input.target.classes)?;
    let rules = [("global threshold", global), ("per-class thresholds", per_class)]
        .into_iter()
        .map(|(rule, t)| {
            apply(&format!("{rule} from {s} shadows"), &target, input, |sc, y| t.is_member(sc, y))
        })
        .collect();
    Ok((target, rules))
}

fn score_of(kind: AttackKind) -> ScoreKind {
    match kind {
        AttackKind::Threshold(k) => k,
        _ => ScoreKind::Correctness,
    }
}

/// Threshold scores of the identity query, or the label-only fraction over all queries.
fn simple_scores(
    kind: AttackKind,
    score: ScoreKind,
    l: &Logits,
    labels: &[usize],
    n: usize,
) -> Vec<f32> {
    if kind == AttackKind::LabelOnly {
        return (0..n)
            .map(|i| {
                let right = (0..l.queries).filter(|&q| argmax(l.row(q, i)) == labels[i]).count();
                right as f32 / l.queries as f32
            })
            .collect();
    }
    (0..n).map(|i| score.score(l.row(0, i), labels[i])).collect()
}

/// TPR/FPR of a decision rule on the target.
fn apply(
    rule: &str,
    scores: &[f32],
    input: &AttackInput,
    member: impl Fn(f32, usize) -> bool,
) -> Calibrated {
    let calls = scores.iter().zip(&input.labels).map(|(&sc, &y)| member(sc, y));
    let c = Confusion::count(calls.zip(input.is_member.iter().copied()));
    Calibrated {
        rule: rule.into(),
        tpr: c.tpr(),
        fpr: c.fpr(),
        balanced_accuracy: c.balanced_accuracy(),
        precision: c.precision(),
    }
}

fn featurise(f: Features, l: &Logits, labels: &[usize], n: usize) -> (Vec<f32>, usize) {
    let c = l.classes;
    let dim = match f {
        Features::Top3 => 3,
        Features::Posterior => c,
        Features::PosteriorLabel => 2 * c,
    };
    let mut out = Vec::with_capacity(n * dim);
    for (i, &label) in labels.iter().enumerate().take(n) {
        let mut p = softmax(l.row(0, i));
        match f {
            Features::Top3 => {
                p.sort_by(|a, b| b.total_cmp(a));
                out.extend((0..3).map(|j| p.get(j).copied().unwrap_or(0.0)));
            }
            Features::Posterior => out.extend(p),
            Features::PosteriorLabel => {
                out.extend(p);
                out.extend((0..c).map(|j| f32::from(u8::from(j == label))));
            }
        }
    }
    (out, dim)
}

fn subsample(
    x: Vec<f32>,
    y: Vec<bool>,
    dim: usize,
    max: usize,
    seed: u64,
) -> (Vec<f32>, Vec<bool>) {
    if y.len() <= max {
        return (x, y);
    }
    use rand::SeedableRng;
    use rand::seq::index::sample;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picked = sample(&mut rng, y.len(), max).into_vec();
    picked.sort_unstable();
    let fx = picked.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    let fy = picked.iter().map(|&i| y[i]).collect();
    (fx, fy)
}

/// LiRA, online (IN and OUT Gaussians) or offline (OUT only), over every query, with the
/// notes and warnings that explain its scores.
fn lira(
    input: &AttackInput,
    est: Estimator,
    online: bool,
    form: OfflineForm,
) -> Result<Scored, AttackError> {
    let (n, s, k) = (input.candidates(), input.shadows.len(), input.target.queries);
    let (shadow_phi, keep) = shadow_phi(input, n);
    let shape = SignalShape { models: s, examples: n, queries: k };
    let target = phi(&input.target, &input.labels, n);
    let mut notes = vec![format!(
        "centre: {:?}; variance: {}; {k} queries, log-likelihoods summed",
        est.center,
        spread_note(&est)
    )];
    let (ins, outs) = in_out_counts(input);
    notes.push(format!("IN samples per example: min {ins}, OUT: min {outs}"));
    let (scores, fits) = if online {
        if ins == 0 {
            notes.push("some examples have no IN shadow: they use the pooled IN fit".into());
        }
        let (gin, gout) = lira::fit_online(&shadow_phi, &keep, shape, est)?;
        (lira::online(&target, &gin, &gout)?, vec![("IN", gin.floored), ("OUT", gout.floored)])
    } else {
        let gout = lira::fit(&shadow_phi, &keep, shape, false, est)?;
        notes.push(format!("offline statistic: {form:?}"));
        if form == OfflineForm::OneSidedCdf {
            notes.push(
                "scores are −log(−Σ log Φ(z)), strictly increasing in the paper's Σ log Φ(z)"
                    .into(),
            );
        }
        (lira::offline(&target, &gout, form)?, vec![("OUT", gout.floored)])
    };
    let mut out = Scored::new(scores, k);
    out.notes = notes;
    if est.variance == Variance::PerExample {
        floor_notes(&mut out, &fits, n * k, est.std_floor);
    }
    Ok(out)
}

/// How the estimator spreads its Gaussians, in words.
fn spread_note(est: &Estimator) -> String {
    match est.variance {
        Variance::PerExample => {
            format!("per example, floored at {} × the pooled deviation", est.std_floor)
        }
        Variance::Fixed => "pooled per query (root mean of the per-example variances)".into(),
        Variance::Global => {
            "global: one deviation of all IN samples, OUT reuses it (the official code's fixed \
             variance)"
                .into()
        }
    }
}

/// Notes how many (example, query) pairs of `pairs` sit on the per-example deviation floor
/// (`fits`: side, count), and warns when a side's share passes [`FLOOR_WARNING_SHARE`].
fn floor_notes(out: &mut Scored, fits: &[(&str, usize)], pairs: usize, std_floor: f32) {
    let counts: Vec<String> = fits.iter().map(|(side, f)| format!("{side} {f}")).collect();
    out.notes.push(format!(
        "deviation floor bound for {} of {pairs} (example, query) pairs",
        counts.join(", ")
    ));
    for &(side, floored) in fits {
        let share = floored as f64 / pairs as f64;
        if share > FLOOR_WARNING_SHARE {
            out.warnings.push(format!(
                "the {side} deviation floor ({std_floor} × pooled σ) bound for {:.1}% of (example, \
                 query) pairs: their shadow outputs barely vary (quantised or capped outputs, or \
                 few shadows), so the floor decides those scores; compare with the pooled-variance \
                 attack",
                100.0 * share
            ));
        }
    }
}

/// φ of the first `n` rows, example-major: `[n × K]`.
fn phi(l: &Logits, labels: &[usize], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * l.queries);
    for (i, &label) in labels.iter().enumerate().take(n) {
        for q in 0..l.queries {
            out.push(lira::logit_confidence(l.row(q, i), label));
        }
    }
    out
}

/// Every shadow's φ (`[S × n × K]`) and keep flags (`[S × n]`).
fn shadow_phi(input: &AttackInput, n: usize) -> (Vec<f32>, Vec<bool>) {
    let mut all = Vec::with_capacity(input.shadows.len() * n * input.target.queries);
    let mut keep = Vec::with_capacity(input.shadows.len() * n);
    for sh in &input.shadows {
        all.extend(phi(&sh.logits, &input.labels, n));
        keep.extend_from_slice(&sh.keep);
    }
    (all, keep)
}

/// The smallest number of IN and of OUT shadows any candidate has.
fn in_out_counts(input: &AttackInput) -> (usize, usize) {
    let n = input.candidates();
    let s = input.shadows.len();
    (0..n)
        .map(|i| {
            let ins = input.shadows.iter().filter(|sh| sh.keep[i]).count();
            (ins, s - ins)
        })
        .fold((usize::MAX, usize::MAX), |(a, b), (x, y)| (a.min(x), b.min(y)))
}

/// `Pr(y|x)` of every row, averaged over the queries.
fn true_probs(l: &Logits, labels: &[usize]) -> Vec<f32> {
    (0..l.rows)
        .map(|i| {
            (0..l.queries).map(|q| softmax(l.row(q, i))[labels[i]]).sum::<f32>() / l.queries as f32
        })
        .collect()
}

/// RMIA scores of `p_target` on the candidates, with `refs` as reference models.
#[allow(clippy::too_many_arguments)]
fn rmia_scores(
    input: &AttackInput,
    p_target: &[f32],
    p_shadows: &[Vec<f32>],
    refs: &[usize],
    online: bool,
    a: f32,
    z: std::ops::Range<usize>,
    gamma: f32,
) -> Result<Vec<f32>, AttackError> {
    let n = input.candidates();
    let prior = |row: usize| -> f32 {
        // Candidates have IN and OUT references; population rows only OUT ones.
        let (sum, count) = refs
            .iter()
            .filter(|&&m| online || row >= n || !input.shadows[m].keep[row])
            .fold((0f32, 0usize), |(s, c), &m| (s + p_shadows[m][row], c + 1));
        let mean = if count == 0 { 0.5 } else { sum / count as f32 };
        if online { mean } else { rmia::offline_prior(mean, a) }
    };
    let prior_x: Vec<f32> = (0..n).map(prior).collect();
    let prior_z: Vec<f32> = z.clone().map(prior).collect();
    Ok(rmia::scores(&p_target[..n], &prior_x, &p_target[z], &prior_z, gamma)?)
}

/// Offline `a` from the grid 0.0, 0.1, …, 1.0: shadow 0 plays the target, the others are the
/// references, and the `a` giving the highest AUC against shadow 0's keep-mask wins.
fn tune_a(
    input: &AttackInput,
    p_shadows: &[Vec<f32>],
    z: std::ops::Range<usize>,
    gamma: f32,
) -> Result<f32, AttackError> {
    let grid: Vec<f32> = (0..=10).map(|i| i as f32 / 10.0).collect();
    let refs: Vec<usize> = (1..input.shadows.len()).collect();
    let truth = &input.shadows[0].keep;
    Ok(rmia::tune_a(&grid, |a| {
        let s = rmia_scores(input, &p_shadows[0], p_shadows, &refs, false, a, z.clone(), gamma)
            .map_err(|e| mia_core::CoreError::Shape(e.to_string()))?;
        Ok(metrics::roc(&s, truth)?.auc())
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shadow;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A synthetic world: `n` candidates of 2 classes, the first half members. A model that
    /// trained on an example gives its true class the logit margin `in_margin[i]`, otherwise
    /// `out_margin[i]`; both vary per example (hard and easy examples), plus noise.
    fn world(n: usize, shadows: usize, noise: f32, seed: u64) -> AttackInput {
        world_with(n, shadows, noise, seed, |i| i % 2)
    }

    /// [`world`] with the true class of example `i` given by `label(i)` (0 or 1).
    fn world_with(
        n: usize,
        shadows: usize,
        noise: f32,
        seed: u64,
        label: impl Fn(usize) -> usize,
    ) -> AttackInput {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let labels: Vec<usize> = (0..n).map(label).collect();
        let easy: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 6.0 - 1.0).collect();
        let model = |keep: &[bool], rng: &mut ChaCha8Rng| -> Logits {
            let mut data = Vec::new();
            for q in 0..2 {
                for i in 0..n {
                    let margin = easy[i]
                        + if keep[i] { 1.5 } else { 0.0 }
                        + noise * (rng.random::<f32>() - 0.5)
                        + 0.1 * q as f32;
                    let mut row = [0.0f32; 2];
                    row[labels[i]] = margin;
                    data.extend(row);
                }
            }
            Logits::new(2, n, 2, data).unwrap()
        };
        let is_member: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
        let target = model(&is_member, &mut rng);
        // SAMIA's sensitivity: a model is less sensitive on what it trained on.
        let sensitivity = |keep: &[bool], rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n * 2)
                .map(|j| {
                    let base = if keep[j / 2] { 0.5 } else { 1.0 };
                    base + noise * rng.random::<f32>()
                })
                .collect()
        };
        let target_sensitivity = sensitivity(&is_member, &mut rng);
        let (mut shadow_sensitivity, mut models) = (Vec::new(), Vec::new());
        for _ in 0..shadows {
            let keep: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
            shadow_sensitivity.push(sensitivity(&keep, &mut rng));
            models.push(Shadow { logits: model(&keep, &mut rng), keep });
        }
        let sensitivity =
            crate::Sensitivity { target: target_sensitivity, shadows: shadow_sensitivity };
        let input = AttackInput::new(target, labels, is_member, models).unwrap();
        if shadows == 0 { input } else { input.with_sensitivity(sensitivity).unwrap() }
    }

    #[test]
    fn feature_names_are_the_serde_names() {
        for f in [Features::Top3, Features::Posterior, Features::PosteriorLabel] {
            let serde = serde_json::to_value(f).unwrap();
            assert_eq!(serde.as_str(), Some(f.name()));
        }
    }

    #[test]
    fn every_attack_finds_the_planted_membership_signal() {
        let input = world(400, 16, 0.5, 1);
        // The neural attack models at a tenth of their epochs and ten times the rate: the
        // planted signal is strong, and the paper's 100 epochs would make this test minutes.
        let network = NetworkSettings { epochs: 10, lr: 1e-2, ..NetworkSettings::default() };
        let options = AttackOptions { network, ..AttackOptions::default() };
        for kind in AttackKind::all() {
            let r = run(kind, &input, &options).unwrap();
            let floor = match kind {
                // Correctness is 1 for most examples (positive margins): weak by design.
                AttackKind::Threshold(ScoreKind::Correctness) | AttackKind::LabelOnly => 0.52,
                // A linear model of the raw posterior (even with the one-hot label appended:
                // `p_y` is a product of the two) cannot tell a confident class-0 member from a
                // confident class-1 member: the known blind spot of these feature sets, which
                // the MLP and the sorted top-3 features do not have.
                AttackKind::ShadowClassifier(
                    ClassifierKind::Logistic,
                    Features::Posterior | Features::PosteriorLabel,
                ) => 0.45,
                _ => 0.6,
            };
            assert!(r.evaluation.auc > floor, "{}: AUC {}", r.name, r.evaluation.auc);
            assert_eq!(r.scores.len(), 400);
            assert_eq!(AttackKind::parse(&r.name).unwrap(), kind);
        }
    }

    #[test]
    fn a_linear_attack_model_on_the_posterior_learns_where_a_linear_direction_exists() {
        // Every example of class 0: p_0 alone orders members above non-members, so the
        // logistic regression must find what its blind spot hides in the two-class world.
        let input = world_with(400, 16, 0.5, 1, |_| 0);
        for f in [Features::Posterior, Features::PosteriorLabel] {
            let kind = AttackKind::ShadowClassifier(ClassifierKind::Logistic, f);
            let r = run(kind, &input, &AttackOptions::default()).unwrap();
            assert!(r.evaluation.auc > 0.6, "{}: AUC {}", r.name, r.evaluation.auc);
        }
    }

    #[test]
    fn per_example_calibration_beats_a_global_threshold_at_low_fpr() {
        // Example difficulty dominates the margin, so the loss attack confuses easy
        // non-members with members; LiRA compares each example with its own shadows.
        let input = world(2000, 16, 0.3, 2);
        let loss =
            run(AttackKind::Threshold(ScoreKind::Loss), &input, &AttackOptions::default()).unwrap();
        let lira = run(
            AttackKind::LiraOnline { variance: Variance::PerExample },
            &input,
            &AttackOptions::default(),
        )
        .unwrap();
        let rmia = run(AttackKind::RmiaOnline, &input, &AttackOptions::default()).unwrap();
        let at = |r: &AttackResult| r.evaluation.tpr_at_low_fpr[0].tpr;
        assert!(lira.evaluation.auc > loss.evaluation.auc + 0.1);
        assert!(at(&lira) > at(&loss) + 0.2, "LiRA {} vs loss {}", at(&lira), at(&loss));
        assert!(rmia.evaluation.auc > loss.evaluation.auc + 0.1);
    }

    #[test]
    fn without_signal_attacks_stay_at_chance_and_calibration_is_from_shadows() {
        let mut input = world(2000, 8, 0.5, 3);
        // Redraw membership independently of the planted signal and of the labels.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        input.is_member = (0..2000).map(|_| rng.random_bool(0.5)).collect();
        let r =
            run(AttackKind::Threshold(ScoreKind::Loss), &input, &AttackOptions::default()).unwrap();
        assert!(r.evaluation.auc_distance < 0.05, "{}", r.evaluation.auc);
        assert_eq!(r.calibrated.len(), 2);
        for c in &r.calibrated {
            assert!((c.balanced_accuracy - 0.5).abs() < 0.05);
        }
    }

    #[test]
    fn shadow_attacks_refuse_to_run_without_shadows() {
        let input = world(100, 0, 0.5, 4);
        assert!(
            run(
                AttackKind::LiraOnline { variance: Variance::PerExample },
                &input,
                &AttackOptions::default()
            )
            .is_err()
        );
        let r =
            run(AttackKind::Threshold(ScoreKind::Loss), &input, &AttackOptions::default()).unwrap();
        assert!(r.calibrated.is_empty());
        assert!(AttackKind::parse("nope").is_err());
    }

    #[test]
    fn samia_without_sensitivity_says_what_it_needs() {
        let mut input = world(100, 4, 0.5, 6);
        input.sensitivity = None;
        let e = run(AttackKind::Samia, &input, &AttackOptions::default()).unwrap_err();
        assert!(matches!(e, AttackError::NeedsSensitivity), "{e}");
    }

    #[test]
    fn sensitivity_of_the_wrong_shape_or_sign_is_refused() {
        let input = world(50, 2, 0.5, 7);
        let good = input.sensitivity.clone().unwrap();
        let mut short = good.clone();
        short.target.pop();
        let mut negative = good.clone();
        negative.shadows[1][3] = -1.0;
        let mut none = good.clone();
        none.shadows.clear();
        let mut extra = good.clone();
        extra.shadows.push(good.target.clone());
        for bad in [short, negative, none, extra] {
            assert!(input.clone().with_sensitivity(bad).is_err());
        }
        // The first shadows alone are enough: SAMIA trains on as many as its rows need.
        let mut first = good.clone();
        first.shadows.pop();
        assert!(input.clone().with_sensitivity(first).is_ok());
        let cut = input.first_queries(1).unwrap();
        assert_eq!(cut.sensitivity, Some(good), "cutting queries keeps the identity's sensitivity");
    }

    #[test]
    fn label_only_counts_correct_queries() {
        // Two queries; example 0 is right on both, examples 1 and 2 on one of them.
        let data = vec![
            2.0, 0.0, 0.0, 1.0, 2.0, 0.0, // query 0: argmax 0, 1, 0
            2.0, 0.0, 1.0, 0.0, 0.0, 1.0, // query 1: argmax 0, 0, 1
        ];
        let l = Logits::new(2, 3, 2, data).unwrap();
        let s = simple_scores(AttackKind::LabelOnly, ScoreKind::Correctness, &l, &[0, 1, 1], 3);
        assert_eq!(s, vec![1.0, 0.5, 0.5]);
        let s = simple_scores(AttackKind::LabelOnly, ScoreKind::Correctness, &l, &[0, 1, 0], 3);
        assert_eq!(s, vec![1.0, 0.5, 0.5]);
    }
}
