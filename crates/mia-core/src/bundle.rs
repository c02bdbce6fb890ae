//! The web bundle: what `mia export` writes into `pretrained/` and the browser lab loads.
//!
//! `manifest.json` ([`Manifest`]) names every file with its size and SHA-256; loading checks
//! the format version first, then each file against its entry, so a stale or truncated
//! bundle is a clear error, never a wrong picture. The binary files:
//!
//! - **weights** (`*.bpk`): burnpack records of [`crate::ModelConfig`] models;
//! - **reference sample** ([`ReferenceSample`]): `MIAREF02`, then little-endian `u32` count,
//!   channels, height, width; then per example `label u8, member u8`; then per example its
//!   pixels as MED-prediction residuals (`u8`, HWC; lossless, see `med_residuals`), which a
//!   transport compressor shrinks ~23 % more than the raw pixels. `MIAREF01` (bundles made
//!   before) stores the raw `u8` CHW pixels instead and is still read;
//! - **LiRA statistics** ([`LiraStats`]): `MIALIRA1`, `u32` count, then per example four
//!   `f32`: μ_in, σ_in, μ_out, σ_out of the logit-scaled confidence φ under the identity
//!   query, from the shadow models.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CoreError;
use crate::models::ModelConfig;
use crate::preprocess::{InputSpec, Normalization};
use crate::scores::{ScoreKind, calibrate};

/// The bundle format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A file of the bundle, relative to the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// Path relative to the manifest's folder.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl FileRef {
    /// The entry describing `data` at `path`.
    pub fn describe(path: &str, data: &[u8]) -> Self {
        Self { path: path.into(), bytes: data.len() as u64, sha256: sha256_hex(data) }
    }

    /// Checks `data` against the entry.
    pub fn verify(&self, data: &[u8]) -> Result<(), CoreError> {
        if data.len() as u64 != self.bytes {
            return Err(CoreError::Bundle(format!(
                "{} has {} bytes, the manifest says {} (truncated or stale download?)",
                self.path,
                data.len(),
                self.bytes
            )));
        }
        let got = sha256_hex(data);
        if got != self.sha256 {
            return Err(CoreError::Bundle(format!(
                "{} has SHA-256 {got}, the manifest says {}",
                self.path, self.sha256
            )));
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The attacks the browser recomputes live, in display order: `mia export` stores each one's
/// reference-sample AUC and shadow-calibrated threshold, and the page recomputes both. The one
/// list both sides read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserAttack {
    /// p_y, as log-odds.
    Confidence,
    /// −CE.
    Loss,
    /// −Mentr (Song & Mittal).
    ModifiedEntropy,
    /// Online LiRA with the shipped (or re-fitted) per-example Gaussians ([`LiraStats`]).
    Lira,
}

impl BrowserAttack {
    /// All, in display order.
    pub const ALL: [Self; 4] = [Self::Confidence, Self::Loss, Self::ModifiedEntropy, Self::Lira];

    /// The name used by `mia attack` and the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confidence => "confidence",
            Self::Loss => "loss",
            Self::ModifiedEntropy => "modified-entropy",
            Self::Lira => "lira-online-fixed",
        }
    }

    /// The attack called `name`, if the browser runs it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The per-example score of a threshold attack; `None` for LiRA, whose score needs the
    /// shadows' Gaussians ([`LiraStats::online`]).
    pub fn score_kind(self) -> Option<ScoreKind> {
        match self {
            Self::Confidence => Some(ScoreKind::Confidence),
            Self::Loss => Some(ScoreKind::Loss),
            Self::ModifiedEntropy => Some(ScoreKind::ModifiedEntropy),
            Self::Lira => None,
        }
    }

    /// The global threshold of a threshold attack, calibrated on shadow models: `shadows`
    /// yields each shadow's `[n × classes]` logits on the same `n` examples (labels `labels`),
    /// `keep[s * n + i]` whether shadow `s` trained on example `i`. LiRA decides "member"
    /// above 0 (equal priors).
    pub fn shadow_threshold<'a>(
        self,
        shadows: impl IntoIterator<Item = &'a [f32]>,
        classes: usize,
        labels: &[usize],
        keep: &[bool],
    ) -> Result<f32, CoreError> {
        let Some(kind) = self.score_kind() else { return Ok(0.0) };
        let mut pooled = Vec::with_capacity(keep.len());
        for z in shadows {
            if z.len() != classes * labels.len() {
                return Err(CoreError::Shape(format!(
                    "shadow logits hold {} values, not {} examples × {classes} classes",
                    z.len(),
                    labels.len()
                )));
            }
            pooled.extend(z.chunks(classes).zip(labels).map(|(r, &y)| kind.score(r, y)));
        }
        calibrate(&pooled, keep)
    }
}

/// An attack's result on a shipped model, measured natively at export time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackSummary {
    /// Attack name (as in `mia attack`).
    pub name: String,
    /// AUC on the full candidate set.
    pub auc: f64,
    /// Advantage max(TPR − FPR).
    pub advantage: f64,
    /// TPR at 0.1% FPR.
    pub tpr_at_0_1pct_fpr: f64,
    /// AUC on the shipped reference sample only (what the browser recomputes).
    pub reference_auc: Option<f64>,
    /// Global threshold calibrated on the shadows, in the score's own units (higher = member).
    pub threshold: Option<f32>,
}

/// One shipped model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Short id (`erm`, `relaxloss`, …).
    pub id: String,
    /// Human label.
    pub label: String,
    /// Architecture and shape.
    pub config: ModelConfig,
    /// Training-time defense and its parameters (as in the run's `config.json`).
    pub training_defense: serde_json::Value,
    /// Accuracy on its members.
    pub train_acc: f64,
    /// Accuracy on the test split.
    pub test_acc: f64,
    /// Attacks measured natively, adaptive shadows.
    pub attacks: Vec<AttackSummary>,
    /// Weights (burnpack).
    pub weights: FileRef,
    /// LiRA statistics of the reference sample, when shadows were trained.
    pub lira: Option<FileRef>,
    /// The shadows' logits and keep flags on the reference sample ([`ShadowOutputs`]), so the
    /// browser can play the adaptive attacker: pass them through a defense and recalibrate.
    #[serde(default)]
    pub shadow_outputs: Option<FileRef>,
    /// Shadow models behind `lira` and the thresholds.
    pub shadows: usize,
}

/// The reference sample's file and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceEntry {
    /// The binary file.
    pub file: FileRef,
    /// Members of the target (first in the file).
    pub members: usize,
    /// Non-members.
    pub non_members: usize,
}

/// The index of the models' training images ([`crate::recognise::MembersIndex`]): the page
/// fetches it at the first upload to recognise a member among the student's images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersIndexEntry {
    /// The binary file.
    pub file: FileRef,
    /// Members it holds (every member of the shared split).
    pub members: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Dataset name.
    pub dataset: String,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Model input.
    pub input: InputSpec,
    /// Normalisation applied after scaling pixels to [0, 1].
    pub normalization: Normalization,
    /// The models; the first is the default.
    pub models: Vec<ModelEntry>,
    /// The reference sample every model was trained around (same split).
    pub reference: ReferenceEntry,
    /// How it was made (commands, machine).
    pub provenance: String,
    /// How to cite the work the bundle accompanies (a paper's reference, free text); the page's
    /// "about" panel shows it. Absent in bundles made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<String>,
    /// Every member's image hash, so uploads of training images are recognised. Absent in
    /// bundles made before it existed (`mia index` adds it); the page then says it cannot
    /// tell whether an upload was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_index: Option<MembersIndexEntry>,
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CoreError::Bundle(format!("manifest.json is not JSON: {e}")))?;
        let version = value.get("format_version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(CoreError::Bundle(format!(
                "bundle format {} is not the supported {FORMAT_VERSION}; re-export it with this version's `mia export`",
                version.map_or("missing".to_string(), |v| v.to_string())
            )));
        }
        let m: Manifest = serde_json::from_value(value)
            .map_err(|e| CoreError::Bundle(format!("manifest.json: {e}")))?;
        if m.models.is_empty() {
            return Err(CoreError::Bundle("the manifest lists no model".into()));
        }
        for e in &m.models {
            e.config.validate()?;
            if e.config.input != m.input || e.config.num_classes != m.class_names.len() {
                return Err(CoreError::Bundle(format!(
                    "model {} takes {} with {} classes, the bundle has {} with {}",
                    e.id,
                    e.config.input,
                    e.config.num_classes,
                    m.input,
                    m.class_names.len()
                )));
            }
        }
        Ok(m)
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }
}

/// Images with labels and target membership.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceSample {
    /// Image shape.
    pub input: InputSpec,
    /// Labels.
    pub labels: Vec<u8>,
    /// Whether each example trained the target.
    pub is_member: Vec<bool>,
    /// Pixels, CHW, example-major.
    pub pixels: Vec<u8>,
}

const REF_MAGIC: &[u8; 8] = b"MIAREF01";
/// The same layout with each image's pixels stored as [`med_residuals`] (lossless; the file
/// compresses ~23 % smaller over the wire with brotli).
const REF_MAGIC_MED: &[u8; 8] = b"MIAREF02";

/// The MED predictor of JPEG-LS/LOCO-I from the left (`a`), upper (`b`) and upper-left (`c`)
/// neighbours.
fn med(a: u8, b: u8, c: u8) -> u8 {
    let (lo, hi) = (a.min(b), a.max(b));
    if c >= hi {
        lo
    } else if c <= lo {
        hi
    } else {
        // c lies strictly between a and b, so a + b − c lies between them too.
        (i16::from(a) + i16::from(b) - i16::from(c)) as u8
    }
}

/// One CHW image as prediction residuals (pixel − MED prediction, mod 256, 0 outside the
/// image), interleaved HWC so that a transport compressor sees the channels side by side.
fn med_residuals(img: &[u8], input: InputSpec) -> Vec<u8> {
    let (c, h, w) = (input.channels, input.height, input.width);
    let px = |ch: usize, y: usize, x: usize| img[(ch * h + y) * w + x];
    let mut out = Vec::with_capacity(img.len());
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let a = if x > 0 { px(ch, y, x - 1) } else { 0 };
                let b = if y > 0 { px(ch, y - 1, x) } else { 0 };
                let d = if x > 0 && y > 0 { px(ch, y - 1, x - 1) } else { 0 };
                out.push(px(ch, y, x).wrapping_sub(med(a, b, d)));
            }
        }
    }
    out
}

/// The inverse of [`med_residuals`].
fn med_pixels(res: &[u8], input: InputSpec) -> Vec<u8> {
    let (c, h, w) = (input.channels, input.height, input.width);
    let mut img = vec![0u8; res.len()];
    let at = |ch: usize, y: usize, x: usize| (ch * h + y) * w + x;
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let a = if x > 0 { img[at(ch, y, x - 1)] } else { 0 };
                let b = if y > 0 { img[at(ch, y - 1, x)] } else { 0 };
                let d = if x > 0 && y > 0 { img[at(ch, y - 1, x - 1)] } else { 0 };
                img[at(ch, y, x)] = res[(y * w + x) * c + ch].wrapping_add(med(a, b, d));
            }
        }
    }
    img
}
const SHADOW_MAGIC: &[u8; 8] = b"MIASHAD1";
const LIRA_MAGIC: &[u8; 8] = b"MIALIRA1";

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl ReferenceSample {
    /// `[n × C]` logits of `model` on the sample (normalised with `norm`), in batches of 250;
    /// a blocking read of the result, so not for WebGPU in a page (the page reads async).
    pub fn logits(
        &self,
        model: &crate::Model,
        norm: &Normalization,
        device: &burn::prelude::Device,
    ) -> Result<Vec<f32>, CoreError> {
        let mut out = Vec::new();
        let idx: Vec<usize> = (0..self.len()).collect();
        for chunk in idx.chunks(250) {
            let mut inputs = Vec::with_capacity(chunk.len() * self.input.numel());
            chunk.iter().for_each(|&i| norm.push_u8(self.image(i), self.input, &mut inputs));
            let x = crate::preprocess::batch_tensor(inputs, chunk.len(), self.input, device)?;
            let data = model.forward(x).into_data();
            out.extend(data.try_to_vec::<f32>().map_err(|e| CoreError::Bundle(format!("{e:?}")))?);
        }
        Ok(out)
    }

    /// AUC of the loss and of the confidence attack of these logits (`[n × C]`) on the sample.
    pub fn threshold_aucs(&self, logits: &[f32], classes: usize) -> Result<[f64; 2], CoreError> {
        let auc = |kind: ScoreKind| -> Result<f64, CoreError> {
            let scores: Vec<f32> = logits
                .chunks(classes)
                .zip(&self.labels)
                .map(|(z, &y)| kind.score(z, usize::from(y)))
                .collect();
            Ok(crate::metrics::evaluate(&scores, &self.is_member)?.auc)
        };
        Ok([auc(ScoreKind::Loss)?, auc(ScoreKind::Confidence)?])
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether it holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of example `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.input.numel();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Encodes the sample.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = REF_MAGIC_MED.to_vec();
        for v in [self.len(), self.input.channels, self.input.height, self.input.width] {
            out.extend((v as u32).to_le_bytes());
        }
        for (l, m) in self.labels.iter().zip(&self.is_member) {
            out.extend([*l, u8::from(*m)]);
        }
        for i in 0..self.len() {
            out.extend(med_residuals(self.image(i), self.input));
        }
        out
    }

    /// Decodes and checks a sample for `input`.
    pub fn decode(b: &[u8], input: InputSpec) -> Result<Self, CoreError> {
        let bad = |m: &str| CoreError::Bundle(format!("reference sample: {m}"));
        let residuals = match b.get(..8) {
            Some(m) if m == REF_MAGIC => false,
            Some(m) if m == REF_MAGIC_MED => true,
            _ => return Err(bad("not a MIA Lab reference file")),
        };
        let field = |i: usize| {
            u32_at(b, 8 + 4 * i).map(|v| v as usize).ok_or_else(|| bad("truncated header"))
        };
        let (n, c, h, w) = (field(0)?, field(1)?, field(2)?, field(3)?);
        if InputSpec::new(c, h, w) != input {
            return Err(bad(&format!("images are {c}x{h}x{w}, the models take {input}")));
        }
        let start = 24;
        let expected = start + 2 * n + n * input.numel();
        if b.len() != expected {
            return Err(bad(&format!("{} bytes, expected {expected}", b.len())));
        }
        let meta = &b[start..start + 2 * n];
        let stored = &b[start + 2 * n..];
        let pixels = if residuals {
            stored.chunks(input.numel().max(1)).flat_map(|r| med_pixels(r, input)).collect()
        } else {
            stored.to_vec()
        };
        Ok(Self {
            input,
            labels: meta.chunks(2).map(|p| p[0]).collect(),
            is_member: meta.chunks(2).map(|p| p[1] != 0).collect(),
            pixels,
        })
    }
}

/// Per-example LiRA Gaussians for the reference sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LiraStats {
    /// (μ_in, σ_in, μ_out, σ_out) per example.
    pub rows: Vec<[f32; 4]>,
}

impl LiraStats {
    /// Fits the lab's online-LiRA statistics (the `lira-online-fixed` attack: median centres,
    /// pooled deviation) from shadow φ values `phi[m*n + i]` and keep flags `keep[m*n + i]`
    /// of `shadows` models on `n` examples. The one fit shared by `mia export` and the page.
    pub fn fit(phi: &[f32], keep: &[bool], shadows: usize, n: usize) -> Result<Self, CoreError> {
        let shape = crate::lira::SignalShape { models: shadows, examples: n, queries: 1 };
        let (gin, gout) =
            crate::lira::fit_online(phi, keep, shape, crate::lira::Estimator::default())?;
        Ok(Self {
            rows: (0..n).map(|i| [gin.mean[i], gin.std[i], gout.mean[i], gout.std[i]]).collect(),
        })
    }

    /// Encodes the statistics.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = LIRA_MAGIC.to_vec();
        out.extend((self.rows.len() as u32).to_le_bytes());
        for r in &self.rows {
            r.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        out
    }

    /// Decodes statistics for `n` examples.
    pub fn decode(b: &[u8], n: usize) -> Result<Self, CoreError> {
        let bad = |m: String| CoreError::Bundle(format!("LiRA statistics: {m}"));
        if b.get(..8) != Some(&LIRA_MAGIC[..]) {
            return Err(bad("not a MIA Lab LiRA file".into()));
        }
        let count = u32_at(b, 8).ok_or_else(|| bad("truncated header".into()))? as usize;
        if count != n || b.len() != 12 + 16 * n {
            return Err(bad(format!("{count} rows in {} bytes for {n} examples", b.len())));
        }
        let f = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let rows = (0..n)
            .map(|r| {
                let at = 12 + 16 * r;
                [f(at), f(at + 4), f(at + 8), f(at + 12)]
            })
            .collect::<Vec<_>>();
        if rows.iter().flatten().any(|v| !v.is_finite())
            || rows.iter().any(|r| r[1] <= 0.0 || r[3] <= 0.0)
        {
            return Err(bad("non-finite values or non-positive deviations".into()));
        }
        Ok(Self { rows })
    }

    /// The online LiRA score of φ for example `i`: log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out),
    /// in f64 exactly as `mia attack`'s [`crate::lira::online`] computes it.
    pub fn online(&self, i: usize, phi: f32) -> f32 {
        let [mi, si, mo, so] = self.rows[i].map(f64::from);
        let x = f64::from(phi);
        (crate::lira::log_pdf(x, mi, si) - crate::lira::log_pdf(x, mo, so)) as f32
    }
}

/// Shadow models' identity-query logits on the reference sample and which examples each
/// trained on: `MIASHAD1`, `u32` shadows, examples, classes, then `keep u8 [S × n]`, then
/// `f32 [S × n × C]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowOutputs {
    /// Shadows S.
    pub shadows: usize,
    /// Examples n.
    pub examples: usize,
    /// Classes C.
    pub classes: usize,
    /// `keep[s * n + i]`.
    pub keep: Vec<bool>,
    /// `logits[(s * n + i) * C ..]`.
    pub logits: Vec<f32>,
}

impl ShadowOutputs {
    /// Logits of shadow `s` on example `i`.
    pub fn row(&self, s: usize, i: usize) -> &[f32] {
        let at = (s * self.examples + i) * self.classes;
        &self.logits[at..at + self.classes]
    }

    /// Encodes the outputs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = SHADOW_MAGIC.to_vec();
        for v in [self.shadows, self.examples, self.classes] {
            out.extend((v as u32).to_le_bytes());
        }
        out.extend(self.keep.iter().map(|k| u8::from(*k)));
        self.logits.iter().for_each(|v| out.extend(v.to_le_bytes()));
        out
    }

    /// Decodes outputs for `n` examples of `c` classes.
    pub fn decode(b: &[u8], n: usize, c: usize) -> Result<Self, CoreError> {
        let bad = |m: String| CoreError::Bundle(format!("shadow outputs: {m}"));
        if b.get(..8) != Some(&SHADOW_MAGIC[..]) {
            return Err(bad("not a MIA Lab shadow file".into()));
        }
        let field = |i: usize| u32_at(b, 8 + 4 * i).map(|v| v as usize);
        let (Some(s), Some(en), Some(ec)) = (field(0), field(1), field(2)) else {
            return Err(bad("truncated header".into()));
        };
        let start = 20;
        if en != n || ec != c || b.len() != start + s * n + 4 * s * n * c {
            return Err(bad(format!(
                "{s}×{en}×{ec} in {} bytes, expected n = {n}, C = {c}",
                b.len()
            )));
        }
        let keep = b[start..start + s * n].iter().map(|v| *v != 0).collect();
        let logits: Vec<f32> = b[start + s * n..]
            .chunks(4)
            .map(|q| f32::from_le_bytes([q[0], q[1], q[2], q[3]]))
            .collect();
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(bad("non-finite logits".into()));
        }
        Ok(Self { shadows: s, examples: n, classes: c, keep, logits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Architecture;

    #[test]
    fn browser_attacks_round_trip_their_names() {
        for a in BrowserAttack::ALL {
            assert_eq!(BrowserAttack::parse(a.name()), Some(a));
        }
        assert_eq!(BrowserAttack::parse("rmia-online"), None);
    }

    #[test]
    fn shadow_threshold_separates_the_shadows_members_from_their_non_members() {
        // Two shadows on two examples of 2 classes: members get a large true-class logit.
        let labels = [0usize, 1];
        let s0 = [4.0f32, 0.0, 0.0, -1.0]; // trains on example 0: confident; example 1: wrong
        let s1 = [-1.0f32, 0.0, 0.0, 4.0]; // trains on example 1
        let keep = [true, false, false, true];
        let t = BrowserAttack::Loss
            .shadow_threshold([&s0[..], &s1[..]], 2, &labels, &keep)
            .expect("threshold");
        let member = ScoreKind::Loss.score(&s0[..2], 0);
        let outsider = ScoreKind::Loss.score(&s0[2..], 1);
        assert!(outsider < t && t <= member, "{outsider} < {t} <= {member}");
        let lira = BrowserAttack::Lira.shadow_threshold([&s0[..]], 2, &labels, &keep[..2]);
        assert!(matches!(lira, Ok(t) if t == 0.0), "{lira:?}");
        let short = BrowserAttack::Loss.shadow_threshold([&s0[..3]], 2, &labels, &keep[..2]);
        assert!(matches!(short, Err(CoreError::Shape(_))), "{short:?}");
    }

    fn sample() -> ReferenceSample {
        let input = InputSpec::new(3, 2, 2);
        ReferenceSample {
            input,
            labels: vec![1, 7, 3],
            is_member: vec![true, false, true],
            pixels: (0..36).collect(),
        }
    }

    fn manifest() -> Manifest {
        let input = InputSpec::new(3, 2, 2);
        let cfg = ModelConfig::new(Architecture::Mlp, input, 10);
        Manifest {
            format_version: FORMAT_VERSION,
            dataset: "cifar10".into(),
            class_names: (0..10).map(|i| format!("c{i}")).collect(),
            input,
            normalization: Normalization::cifar10(),
            models: vec![ModelEntry {
                id: "erm".into(),
                label: "ERM".into(),
                config: cfg,
                training_defense: serde_json::json!({"name": "erm"}),
                train_acc: 1.0,
                test_acc: 0.5,
                attacks: vec![],
                weights: FileRef::describe("erm.bpk", b"abc"),
                lira: None,
                shadow_outputs: None,
                shadows: 0,
            }],
            reference: ReferenceEntry {
                file: FileRef::describe("reference.bin", &sample().encode()),
                members: 2,
                non_members: 1,
            },
            provenance: "test".into(),
            citation: None,
            members_index: None,
        }
    }

    #[test]
    fn med_prediction_is_hand_checked() {
        assert_eq!(med(10, 20, 25), 10, "c above both: the smaller");
        assert_eq!(med(10, 20, 5), 20, "c below both: the larger");
        assert_eq!(med(10, 20, 12), 18, "between: a + b - c");
        assert_eq!(med(0, 255, 0), 255);
        // The first row and column predict from zeros: residual = pixel there.
        let input = InputSpec::new(1, 2, 2);
        assert_eq!(med_residuals(&[5, 7, 9, 200], input), [5, 2, 4, 200u8.wrapping_sub(9)]);
    }

    #[test]
    fn med_coding_is_lossless_on_every_byte_pattern() {
        let input = InputSpec::new(3, 8, 8);
        let mut state = 12345u32;
        let noise: Vec<u8> = (0..input.numel())
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        let extremes: Vec<u8> =
            (0..input.numel()).map(|i| if i % 3 == 0 { 255 } else { 0 }).collect();
        let ramp: Vec<u8> = (0..input.numel()).map(|i| (i * 7 % 256) as u8).collect();
        for img in [noise, extremes, ramp] {
            assert_eq!(med_pixels(&med_residuals(&img, input), input), img);
        }
    }

    #[test]
    fn reference_files_of_the_first_format_still_read() {
        let s = sample();
        let mut v1 = REF_MAGIC.to_vec();
        for v in [3u32, 3, 2, 2] {
            v1.extend(v.to_le_bytes());
        }
        s.labels.iter().zip(&s.is_member).for_each(|(l, m)| v1.extend([*l, u8::from(*m)]));
        v1.extend(&s.pixels);
        assert_eq!(ReferenceSample::decode(&v1, s.input).unwrap(), s);
        let v2 = s.encode();
        assert_eq!(&v2[..8], REF_MAGIC_MED);
        assert_eq!(ReferenceSample::decode(&v2, s.input).unwrap(), s);
    }

    #[test]
    fn files_round_trip_and_damage_is_an_error() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(ReferenceSample::decode(&bytes, s.input).unwrap(), s);
        assert_eq!(
            ReferenceSample::decode(&bytes, s.input).unwrap().image(1),
            &(12..24).collect::<Vec<u8>>()[..]
        );
        assert!(ReferenceSample::decode(&bytes[..bytes.len() - 1], s.input).is_err());
        assert!(ReferenceSample::decode(&bytes, InputSpec::new(1, 2, 2)).is_err());
        assert!(ReferenceSample::decode(b"garbage", s.input).is_err());
        let l = LiraStats { rows: vec![[1.0, 0.5, -1.0, 0.7], [0.0, 1.0, 0.0, 1.0]] };
        assert_eq!(LiraStats::decode(&l.encode(), 2).unwrap(), l);
        assert!(LiraStats::decode(&l.encode(), 3).is_err());
        assert!(l.online(0, 1.0) > 0.0 && l.online(0, -1.0) < 0.0);
        let so = ShadowOutputs {
            shadows: 2,
            examples: 3,
            classes: 2,
            keep: vec![true, false, true, false, true, false],
            logits: (0..12).map(|v| v as f32).collect(),
        };
        assert_eq!(ShadowOutputs::decode(&so.encode(), 3, 2).unwrap(), so);
        assert_eq!(so.row(1, 2), &[10.0, 11.0]);
        assert!(ShadowOutputs::decode(&so.encode(), 3, 3).is_err());
        let f = FileRef::describe("x", b"hello");
        assert!(f.verify(b"hello").is_ok());
        assert!(f.verify(b"hell").unwrap_err().to_string().contains("4 bytes"));
        assert!(f.verify(b"hellO").unwrap_err().to_string().contains("SHA-256"));
    }

    #[test]
    fn manifests_are_checked() {
        let m = manifest();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(Manifest::parse(&text).unwrap(), m);
        let old = text.replace("\"format_version\":1", "\"format_version\":0");
        assert!(Manifest::parse(&old).unwrap_err().to_string().contains("format 0"));
        assert!(Manifest::parse("{").unwrap_err().to_string().contains("not JSON"));
        let mut wrong = m.clone();
        wrong.class_names.pop();
        let err = Manifest::parse(&serde_json::to_string(&wrong).unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("with 10 classes") && text.ends_with("with 9"), "{text}");
    }
}
