//! Attack inputs and where they come from. The attacks see `N` **candidates** (the examples
//! whose membership is guessed; ground truth only used for scoring) and `Z` optional
//! **population** examples (RMIA's `z`, never trained on), each under `K` queries.
//!
//! Sources: a run directory (`signals/` from `mia train`, plus `shadows/` from `mia shadows`)
//! or plain `.npy` files, so a model trained elsewhere can be audited.

use std::path::Path;

use mia_core::Query;
use mia_core::layout::{RunLayout, ShadowLayout};
use mia_core::npy::{NpyArray, NpyData};
use serde::Deserialize;

use crate::AttackError;

/// Logits of one model: `queries × rows × classes`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// Queries K (1 when there is no augmentation).
    pub queries: usize,
    /// Rows (examples).
    pub rows: usize,
    /// Classes C.
    pub classes: usize,
    /// Values.
    pub data: Vec<f32>,
}

impl Logits {
    /// Wraps `data` after checking its length.
    pub fn new(
        queries: usize,
        rows: usize,
        classes: usize,
        data: Vec<f32>,
    ) -> Result<Self, AttackError> {
        if queries == 0 || classes < 2 || data.len() != queries * rows * classes {
            return Err(AttackError::Shape(format!(
                "{} logits for {queries} queries × {rows} rows × {classes} classes",
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(AttackError::Shape("logits contain NaN or infinity".into()));
        }
        Ok(Self { queries, rows, classes, data })
    }

    /// From a float32 `.npy` array shaped `[N, C]` or `[K, N, C]`.
    pub fn from_npy(array: NpyArray, what: &str) -> Result<Self, AttackError> {
        let NpyData::F32(data) = array.data else {
            return Err(AttackError::Shape(format!("{what} must be float32")));
        };
        match array.shape[..] {
            [n, c] => Self::new(1, n, c, data),
            [k, n, c] => Self::new(k, n, c, data),
            _ => Err(AttackError::Shape(format!(
                "{what} has shape {:?}; expected [N, C] or [K, N, C]",
                array.shape
            ))),
        }
    }

    /// Logit row of example `i` under query `q`.
    pub fn row(&self, q: usize, i: usize) -> &[f32] {
        let start = (q * self.rows + i) * self.classes;
        &self.data[start..start + self.classes]
    }

    /// The first `rows` rows of every query (drops the population part).
    pub fn head(&self, rows: usize) -> Logits {
        let rows = rows.min(self.rows);
        let mut data = Vec::with_capacity(self.queries * rows * self.classes);
        for q in 0..self.queries {
            let start = q * self.rows * self.classes;
            data.extend_from_slice(&self.data[start..start + rows * self.classes]);
        }
        Logits { queries: self.queries, rows, classes: self.classes, data }
    }
}

/// One shadow (reference) model: which candidates it trained on and its logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    /// `keep[i]`: the shadow trained on candidate `i`.
    pub keep: Vec<bool>,
    /// Its logits on the candidates then the population.
    pub logits: Logits,
}

/// Everything the attacks read.
#[derive(Debug, Clone)]
pub struct AttackInput {
    /// The target's logits on the candidates then the population.
    pub target: Logits,
    /// True labels of the candidates then the population.
    pub labels: Vec<usize>,
    /// Ground-truth membership of the candidates (used only to score attacks).
    pub is_member: Vec<bool>,
    /// Shadow models (may be empty).
    pub shadows: Vec<Shadow>,
    /// SAMIA's sensitivity of the target and of every shadow, when computed
    /// ([`AttackInput::with_sensitivity`]).
    pub sensitivity: Option<Sensitivity>,
}

/// SAMIA's per-class posterior sensitivity on the candidates' identity query, `[N × C]` row-major
/// per model ([`mia_core::posterior::sensitivity`]); the trainer computes it from the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    /// The target's.
    pub target: Vec<f32>,
    /// The first shadows' (SAMIA trains on as many as its row budget needs), in the attack
    /// input's shadow order.
    pub shadows: Vec<Vec<f32>>,
}

impl Sensitivity {
    /// Reads `target_sensitivity.npy` and the `sensitivity.npy` of the shadows `shadows` (finished
    /// indices, in order: the first ones of the attack input) from a shadow folder.
    pub fn read(dir: &Path, shadows: &[usize]) -> Result<Self, AttackError> {
        let pool = ShadowLayout::new(dir);
        let load = |path: &Path| -> Result<Vec<f32>, AttackError> {
            match read(path)?.data {
                NpyData::F32(v) => Ok(v),
                _ => Err(AttackError::Shape(format!("{} must be float32", path.display()))),
            }
        };
        Ok(Self {
            target: load(&pool.target_defense_signals().sensitivity)?,
            shadows: shadows
                .iter()
                .map(|&i| load(&pool.shadow(i).defense_signals().sensitivity))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl AttackInput {
    /// Checks that every array agrees.
    pub fn new(
        target: Logits,
        labels: Vec<usize>,
        is_member: Vec<bool>,
        shadows: Vec<Shadow>,
    ) -> Result<Self, AttackError> {
        let n = is_member.len();
        let bad = |m: String| Err(AttackError::Shape(m));
        if n == 0 || target.rows < n {
            return bad(format!("{} membership flags for {} target rows", n, target.rows));
        }
        if labels.len() != target.rows {
            return bad(format!("{} labels for {} target rows", labels.len(), target.rows));
        }
        if let Some(y) = labels.iter().find(|&&y| y >= target.classes) {
            return bad(format!("label {y} is not below the {} classes", target.classes));
        }
        if !is_member.iter().any(|m| *m) || is_member.iter().all(|m| *m) {
            return bad("membership needs both members and non-members".into());
        }
        for (s, shadow) in shadows.iter().enumerate() {
            let l = &shadow.logits;
            if shadow.keep.len() != n
                || (l.queries, l.rows, l.classes) != (target.queries, target.rows, target.classes)
            {
                return bad(format!(
                    "shadow {s}: {} keep flags and logits {}×{}×{}, target {}×{}×{} with {n} candidates",
                    shadow.keep.len(),
                    l.queries,
                    l.rows,
                    l.classes,
                    target.queries,
                    target.rows,
                    target.classes
                ));
            }
        }
        Ok(Self { target, labels, is_member, shadows, sensitivity: None })
    }

    /// Attaches SAMIA's sensitivity, after checking it has one `[N × C]` block for the target
    /// and for each of one or more of the first shadows.
    pub fn with_sensitivity(mut self, s: Sensitivity) -> Result<Self, AttackError> {
        let want = self.candidates() * self.target.classes;
        if s.shadows.is_empty() || s.shadows.len() > self.shadows.len() {
            return Err(AttackError::Shape(format!(
                "sensitivity of {} shadows for {} shadows",
                s.shadows.len(),
                self.shadows.len()
            )));
        }
        for (who, v) in std::iter::once(("the target", &s.target))
            .chain(s.shadows.iter().map(|v| ("a shadow", v)))
        {
            if v.len() != want {
                return Err(AttackError::Shape(format!(
                    "sensitivity of {who}: {} values for {} candidates × {} classes",
                    v.len(),
                    self.candidates(),
                    self.target.classes
                )));
            }
            if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(AttackError::Shape(format!(
                    "sensitivity of {who} holds a negative, NaN or infinite value"
                )));
            }
        }
        self.sensitivity = Some(s);
        Ok(self)
    }

    /// Candidates N.
    pub fn candidates(&self) -> usize {
        self.is_member.len()
    }

    /// Population examples Z.
    pub fn population(&self) -> usize {
        self.target.rows - self.candidates()
    }

    /// Loads a run directory: `signals/` and, when present, the shadow folder `shadow_dir`
    /// (default `RUN/shadows`). Without shadows only the identity query is available.
    pub fn from_run(run: &Path, shadow_dir: Option<&Path>) -> Result<Self, AttackError> {
        let layout = RunLayout::new(run);
        let signals = layout.signals();
        let is_member = bools(read(&signals.is_member())?, "is_member.npy")?;
        let pool = layout.shadows(shadow_dir);
        if !pool.target_logits().exists() {
            if shadow_dir.is_some() {
                return Err(AttackError::io(
                    &pool.root,
                    "no shadows there (target_logits.npy is missing)",
                ));
            }
            let target = Logits::from_npy(read(&signals.logits())?, "logits.npy")?;
            let labels = labels(read(&signals.labels())?, "labels.npy")?;
            return Self::new(target, labels, is_member, Vec::new());
        }
        let target = Logits::from_npy(read(&pool.target_logits())?, "target_logits.npy")?;
        let labels = labels(read(&pool.labels())?, "shadow labels.npy")?;
        let mut shadows = Vec::new();
        for i in pool.finished() {
            let files = pool.shadow(i);
            shadows.push(Shadow {
                keep: bools(read(&files.keep())?, "keep.npy")?,
                logits: Logits::from_npy(read(&files.logits())?, "shadow logits.npy")?,
            });
        }
        Self::new(target, labels, is_member, shadows)
    }

    /// Loads plain `.npy` files: target logits `[N, C]`/`[K, N, C]`, labels `[N]`, membership
    /// `[N]`, and optionally shadow logits `[S, N, C]`/`[S, K, N, C]` with keep-masks `[S, N]`.
    pub fn from_npy(
        logits: &Path,
        labels_path: &Path,
        membership: &Path,
        shadow_logits: Option<&Path>,
        shadow_keep: Option<&Path>,
    ) -> Result<Self, AttackError> {
        let target = Logits::from_npy(read(logits)?, "--logits")?;
        let labels = labels(read(labels_path)?, "--labels")?;
        let is_member = bools(read(membership)?, "--membership")?;
        let shadows = match (shadow_logits, shadow_keep) {
            (None, None) => Vec::new(),
            (Some(l), Some(k)) => {
                let l = read(l)?;
                let k = read(k)?;
                let NpyData::F32(data) = l.data else {
                    return Err(AttackError::Shape("--shadow-logits must be float32".into()));
                };
                let (s, kq, n, c) = match l.shape[..] {
                    [s, n, c] => (s, 1, n, c),
                    [s, kq, n, c] => (s, kq, n, c),
                    _ => {
                        return Err(AttackError::Shape(format!(
                            "--shadow-logits has shape {:?}; expected [S, N, C] or [S, K, N, C]",
                            l.shape
                        )));
                    }
                };
                if k.shape != [s, is_member.len()] {
                    return Err(AttackError::Shape(format!(
                        "--shadow-keep has shape {:?}; expected [{s}, {}]",
                        k.shape,
                        is_member.len()
                    )));
                }
                let keep = bools(k, "--shadow-keep")?;
                let per = kq * n * c;
                (0..s)
                    .map(|m| {
                        Ok(Shadow {
                            keep: keep[m * is_member.len()..(m + 1) * is_member.len()].to_vec(),
                            logits: Logits::new(kq, n, c, data[m * per..(m + 1) * per].to_vec())?,
                        })
                    })
                    .collect::<Result<_, AttackError>>()?
            }
            _ => {
                return Err(AttackError::Shape(
                    "--shadow-logits and --shadow-keep go together".into(),
                ));
            }
        };
        Self::new(target, labels, is_member, shadows)
    }
}

/// Which of the cached augmented queries the attacks use (`mia attack --queries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryChoice {
    /// The queries the target's own training augmentation produces: only the identity for a
    /// target trained without augmentation (mirrored or shifted copies are out of its training
    /// distribution, so members stop looking like members), all for one trained with it.
    #[default]
    Auto,
    /// Every cached query.
    All,
    /// The first `k` cached queries (identity first).
    First(usize),
}

impl std::str::FromStr for QueryChoice {
    type Err = AttackError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "all" => Ok(Self::All),
            k => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(Self::First(k)),
                _ => Err(AttackError::Option(format!(
                    "--queries `{s}` is not auto, all or a number of queries (at least 1)"
                ))),
            },
        }
    }
}

/// What a run directory says about its queries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryInfo {
    /// The cached queries, in the order of the logits' first axis (empty when unknown).
    pub queries: Vec<Query>,
    /// Whether the target trained with augmentation (`None` when unknown, e.g. `.npy` input).
    pub augmented: Option<bool>,
}

#[derive(Deserialize)]
struct PoolQueries {
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct TrainAugment {
    #[serde(default)]
    augment: bool,
}

impl QueryInfo {
    /// Reads `SHADOWS/pool.json` and the run's `config.json` (missing files give "unknown").
    pub fn from_run(run: &Path, shadow_dir: Option<&Path>) -> Self {
        let layout = RunLayout::new(run);
        let json = |p: &Path| std::fs::read_to_string(p).ok();
        let queries = json(&layout.shadows(shadow_dir).spec())
            .and_then(|t| serde_json::from_str::<PoolQueries>(&t).ok())
            .map(|p| p.queries)
            .unwrap_or_default();
        let augmented = json(&layout.config())
            .and_then(|t| serde_json::from_str::<TrainAugment>(&t).ok())
            .map(|c| c.augment);
        Self { queries, augmented }
    }

    /// How many of `available` cached queries `choice` keeps, and a sentence saying why.
    pub fn resolve(
        &self,
        choice: QueryChoice,
        available: usize,
    ) -> Result<(usize, String), AttackError> {
        let identity_first = self.queries.first().is_none_or(|q| *q == Query::IDENTITY);
        Ok(match choice {
            QueryChoice::All => {
                (available, format!("all {available} cached queries (--queries all)"))
            }
            QueryChoice::First(k) if k > available => {
                return Err(AttackError::Option(format!(
                    "--queries {k}, but only {available} queries are cached (train the shadows \
                     with `mia shadows --queries {k}` in a new --dir to get more)"
                )));
            }
            QueryChoice::First(k) => {
                (k, format!("the first {k} of {available} cached queries (--queries {k})"))
            }
            QueryChoice::Auto => match self.augmented {
                Some(false) if identity_first => (
                    1,
                    if available > 1 {
                        format!(
                            "the identity query only, of {available} cached: the target was trained \
                             without augmentation, so mirrored or shifted queries are out of its \
                             training distribution (--queries all uses them)"
                        )
                    } else {
                        "the identity query: the target was trained without augmentation".into()
                    },
                ),
                Some(true) => (
                    available,
                    format!(
                        "all {available} cached queries: the target was trained with crop-and-flip \
                         augmentation, which produces them"
                    ),
                ),
                _ => (
                    available,
                    format!(
                        "all {available} queries (the target's training augmentation is unknown)"
                    ),
                ),
            },
        })
    }
}

impl AttackInput {
    /// The same input with only the first `k` queries of every model (query 0 is the
    /// identity).
    pub fn first_queries(&self, k: usize) -> Result<AttackInput, AttackError> {
        if k == 0 || k > self.target.queries {
            return Err(AttackError::Option(format!(
                "{k} queries asked for, {} cached",
                self.target.queries
            )));
        }
        let cut = |l: &Logits| Logits {
            queries: k,
            rows: l.rows,
            classes: l.classes,
            data: l.data[..k * l.rows * l.classes].to_vec(),
        };
        let shadows = self
            .shadows
            .iter()
            .map(|sh| Shadow { keep: sh.keep.clone(), logits: cut(&sh.logits) })
            .collect();
        let out =
            Self::new(cut(&self.target), self.labels.clone(), self.is_member.clone(), shadows)?;
        // The sensitivity is of the identity query, which every cut keeps.
        match &self.sensitivity {
            Some(s) => out.with_sensitivity(s.clone()),
            None => Ok(out),
        }
    }
}

fn read(path: &Path) -> Result<NpyArray, AttackError> {
    let bytes = std::fs::read(path).map_err(|e| AttackError::io(path, e))?;
    NpyArray::from_bytes(&bytes).map_err(|e| AttackError::io(path, e))
}

fn bools(array: NpyArray, what: &str) -> Result<Vec<bool>, AttackError> {
    match array.data {
        NpyData::Bool(v) => Ok(v),
        NpyData::I64(v) if v.iter().all(|x| *x == 0 || *x == 1) => {
            Ok(v.iter().map(|x| *x == 1).collect())
        }
        _ => Err(AttackError::Shape(format!("{what} must be bool (or 0/1 int64)"))),
    }
}

fn labels(array: NpyArray, what: &str) -> Result<Vec<usize>, AttackError> {
    match array.data {
        NpyData::I64(v) if array.shape.len() == 1 => v
            .iter()
            .map(|&y| {
                usize::try_from(y)
                    .map_err(|_| AttackError::Shape(format!("{what}: negative label {y}")))
            })
            .collect(),
        _ => Err(AttackError::Shape(format!("{what} must be a 1-D int64 array"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_inconsistent_inputs() {
        let t = Logits::new(1, 4, 2, vec![0.0; 8]).unwrap();
        let m = vec![true, true, false, false];
        assert!(AttackInput::new(t.clone(), vec![0, 1, 0, 1], m.clone(), vec![]).is_ok());
        assert!(AttackInput::new(t.clone(), vec![0, 1, 0], m.clone(), vec![]).is_err());
        assert!(AttackInput::new(t.clone(), vec![0, 1, 0, 2], m.clone(), vec![]).is_err());
        assert!(AttackInput::new(t.clone(), vec![0; 4], vec![true; 4], vec![]).is_err());
        let bad = Shadow { keep: vec![true; 3], logits: t.clone() };
        assert!(AttackInput::new(t.clone(), vec![0; 4], m, vec![bad]).is_err());
        assert!(Logits::new(1, 2, 2, vec![0.0, f32::NAN, 0.0, 0.0]).is_err());
        assert_eq!(t.head(2).data.len(), 4);
    }

    #[test]
    fn auto_queries_follow_the_targets_training_augmentation() {
        let info = |augmented| QueryInfo { queries: Query::standard(4), augmented };
        let k = |a, c| info(a).resolve(c, 4).unwrap().0;
        assert_eq!(k(Some(false), QueryChoice::Auto), 1, "no augmentation: identity only");
        assert_eq!(k(Some(true), QueryChoice::Auto), 4);
        assert_eq!(k(None, QueryChoice::Auto), 4, "unknown: every query");
        assert_eq!(k(Some(false), QueryChoice::All), 4);
        assert_eq!(k(Some(true), QueryChoice::First(2)), 2);
        assert!(info(Some(true)).resolve(QueryChoice::First(5), 4).is_err());
        assert!("0".parse::<QueryChoice>().is_err() && "x".parse::<QueryChoice>().is_err());
        assert_eq!("all".parse::<QueryChoice>().unwrap(), QueryChoice::All);
        // Cutting keeps the first queries of the target and every shadow.
        let t = Logits::new(2, 4, 2, (0..16).map(|v| v as f32).collect()).unwrap();
        let m = vec![true, true, false, false];
        let sh = Shadow { keep: m.clone(), logits: t.clone() };
        let input = AttackInput::new(t, vec![0, 1, 0, 1], m, vec![sh]).unwrap();
        let one = input.first_queries(1).unwrap();
        assert_eq!(one.target.data, (0..8).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(one.shadows[0].logits.queries, 1);
        assert!(input.first_queries(3).is_err());
    }
}
