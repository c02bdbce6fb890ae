//! The lab file: one JSON document with the classes, every image at the model's input size
//! (CHW bytes as hex), its role, the recipe, the trained network's weights, the last run's
//! outputs, the comparison table and, in a prepared lab, the teacher's instructions. The page
//! writes and reads it (`mia-web`'s `lab_files`, which turns the recipe into its settings) and
//! keeps the student's lab in the browser as one; files travel between students, so reading
//! one is strict: [`read`] returns the contents only when every part is well formed, and a
//! network's weights are checked again when loaded ([`crate::weights`]). A run's attack scores
//! are never read from a file: the page recomputes them from the stored logits.
//! tests/fuzz.rs fuzzes [`read`] and the network's loading together.

use serde::{Deserialize, Serialize};

use super::{AttackDraws, LabAttack, NetShape};
use crate::InputSpec;

/// The file's format tag.
pub const FORMAT: &str = "mia-lab";
/// Version 2 adds the network and the recipe's batch size, clip norm, early stopping and
/// fine-tuning; version 3 the last run's outputs, the comparison table and a prepared lab's
/// instructions. Older files still read.
pub const VERSION: u32 = 3;
/// The most classes a lab holds.
pub const MAX_CLASSES: usize = 10;
/// The most images a lab holds.
pub const MAX_IMAGES: usize = 400;
/// The fewest shadow models a run trains (fewer leave offline LiRA's OUT fits with a
/// handful of points).
pub const MIN_SHADOWS: usize = 6;
/// The most shadow models a run trains.
pub const MAX_SHADOWS: usize = 64;
/// The most runs the comparison table keeps (the oldest go first).
pub const MAX_RUNS: usize = 24;
/// The longest instructions text, in characters.
pub const MAX_TEXT: usize = 6000;
/// The most questions a prepared lab asks.
pub const MAX_QUESTIONS: usize = 20;
/// DP-SGD's clip norm when a version-1 file has none.
pub const DEFAULT_CLIP: f32 = 1.0;
/// The batch size when a version-1 file has none.
pub const DEFAULT_BATCH: usize = 16;

/// One image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileImage {
    /// Its class index.
    pub class: usize,
    /// Whether the target trains on it.
    pub member: bool,
    /// CHW bytes as hex.
    pub pixels: String,
}

/// The recipe as stored (the page checks its ranges when it reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileSettings {
    pub defense: String,
    pub strength: f32,
    pub hidden: usize,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub dropout: f64,
    pub shadows: usize,
    pub delta: f64,
    #[serde(default = "default_clip")]
    pub clip: f32,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub early_stopping: Option<usize>,
    #[serde(default)]
    pub fine_tune: bool,
}

impl Default for FileSettings {
    /// The page's starting recipe: plain cross-entropy, a linear head, 60 epochs at learning
    /// rate 0.1, 32 shadow models.
    fn default() -> Self {
        Self {
            defense: "erm".into(),
            strength: 0.0,
            hidden: 0,
            epochs: 60,
            lr: 0.1,
            weight_decay: 0.0,
            dropout: 0.0,
            shadows: 32,
            delta: 1e-5,
            clip: DEFAULT_CLIP,
            batch_size: DEFAULT_BATCH,
            early_stopping: None,
            fine_tune: false,
        }
    }
}

fn default_clip() -> f32 {
    DEFAULT_CLIP
}

fn default_batch() -> usize {
    DEFAULT_BATCH
}

/// The trained target network: its shape and burnpack weights as hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileNet {
    /// Its shape.
    pub shape: NetShape,
    /// Its weights, burnpack as hex.
    pub weights: String,
}

/// The last run's outputs: which images it ran on and every model's logits on them. The page
/// recomputes the scores, AUCs and intervals from these, so a file cannot claim numbers its
/// logits do not give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    /// The run's images, as positions in the file's `images`.
    pub images: Vec<usize>,
    /// Whether the target trained on each (members it only validated on count as held out).
    pub member: Vec<bool>,
    /// Each image's class at the time of the run.
    pub labels: Vec<usize>,
    /// Classes C of the run.
    pub classes: usize,
    /// The target's logits `[n × C]`.
    pub target: Vec<f32>,
    /// The shadows' logits `[S × n × C]`.
    pub shadows: Vec<f32>,
    /// `[S × n]`: whether shadow `s` trained on image `i`.
    pub keep: Vec<bool>,
    /// Members the target only validated on (early stopping), as positions in `images`.
    #[serde(default)]
    pub validation: Vec<usize>,
    /// (ε, δ) DP-SGD spent.
    #[serde(default)]
    pub epsilon: Option<(f64, f64)>,
    /// The epoch whose weights the target kept, of the planned epochs.
    pub kept_epoch: (usize, usize),
    /// Wall time of the run, ms.
    pub ms: f64,
    /// The recipe in words.
    pub recipe: String,
    /// Label smoothing's ε, when the run used it.
    #[serde(default)]
    pub smoothing: Option<f32>,
    /// Runs with equal keys trained every draw on the same images.
    pub pairing: u64,
    /// The images or roles changed after the run.
    #[serde(default)]
    pub stale: bool,
}

/// One row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRun {
    /// Run number, from 1.
    pub number: usize,
    /// The recipe in words.
    pub recipe: String,
    /// Runs with equal keys trained every draw on the same images.
    pub pairing: u64,
    /// Accuracy on the members and on the held-out images.
    pub accuracy: (f64, f64),
    /// (ε, δ) spent, DP-SGD only.
    #[serde(default)]
    pub epsilon: Option<(f64, f64)>,
    /// Every attack over the run's draws.
    pub draws: Vec<AttackDraws>,
}

impl FileRun {
    /// The draws of `attack`.
    pub fn attack(&self, attack: LabAttack) -> Option<&AttackDraws> {
        self.draws.iter().find(|d| d.attack == attack)
    }
}

/// A prepared lab's instructions, shown beside the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInstructions {
    /// Its title.
    pub title: String,
    /// What to do, in paragraphs separated by blank lines.
    pub text: String,
    /// Questions for the student.
    #[serde(default)]
    pub questions: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabFile {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written.
    pub version: u32,
    /// [channels, height, width] of every image.
    pub input: [usize; 3],
    /// Class names.
    pub classes: Vec<String>,
    /// The seed of the member split.
    pub split_seed: u64,
    /// The recipe.
    pub settings: FileSettings,
    /// The images.
    pub images: Vec<FileImage>,
    /// The trained network, if any.
    #[serde(default)]
    pub network: Option<FileNet>,
    /// The last run's outputs, if any (with the network it trained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<FileResult>,
    /// The comparison table, oldest run first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<FileRun>,
    /// A prepared lab's instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<FileInstructions>,
}

/// A lab file's contents, every part checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LabContents {
    /// Class names (at most 40 characters each).
    pub classes: Vec<String>,
    /// The seed of the member split.
    pub split_seed: u64,
    /// (class, member, CHW pixels) of every image.
    pub images: Vec<(usize, bool, Vec<u8>)>,
    /// The recipe, as stored.
    pub settings: FileSettings,
    /// The network's shape and burnpack bytes.
    pub network: Option<(NetShape, Vec<u8>)>,
    /// The last run's outputs (only with a network).
    pub result: Option<FileResult>,
    /// The comparison table.
    pub history: Vec<FileRun>,
    /// A prepared lab's instructions.
    pub instructions: Option<FileInstructions>,
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex; `None` when damaged.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Reads a lab file's text for a model taking `input`; the reason, in words, when it cannot.
pub fn read(text: &str, input: InputSpec) -> Result<LabContents, String> {
    let f: LabFile =
        serde_json::from_str(text).map_err(|e| format!("this is not a lab file ({e})"))?;
    if f.format != FORMAT || !(1..=VERSION).contains(&f.version) {
        return Err(format!(
            "this is a {} file of version {}, not a MIA Lab lab file of version {VERSION}",
            f.format, f.version
        ));
    }
    if f.input != [input.channels, input.height, input.width] {
        return Err(format!("its images are {:?}, this page's model takes {input}", f.input));
    }
    if f.classes.len() < 2 || f.classes.len() > MAX_CLASSES || f.images.len() > MAX_IMAGES {
        return Err(format!("a lab holds 2–{MAX_CLASSES} classes and at most {MAX_IMAGES} images"));
    }
    let mut images = Vec::with_capacity(f.images.len());
    for im in f.images {
        let pixels = unhex(&im.pixels)
            .filter(|p| p.len() == input.numel())
            .ok_or("an image's pixels are damaged")?;
        if im.class >= f.classes.len() {
            return Err("an image belongs to a class the file does not have".into());
        }
        images.push((im.class, im.member, pixels));
    }
    let network = match f.network {
        None => None,
        Some(n) => {
            let bytes = unhex(&n.weights).ok_or("its network's weights are damaged")?;
            crate::weights::check(&bytes)
                .map_err(|e| format!("its network's weights are damaged ({e})"))?;
            Some((n.shape, bytes))
        }
    };
    let result = match f.result {
        Some(r) if network.is_some() => Some(check_result(r, images.len())?),
        _ => None,
    };
    check_history(&f.history)?;
    if let Some(i) = &f.instructions {
        check_instructions(i)?;
    }
    Ok(LabContents {
        classes: f.classes.into_iter().map(|c| c.chars().take(40).collect()).collect(),
        split_seed: f.split_seed,
        images,
        settings: f.settings,
        network,
        result,
        history: f.history,
        instructions: f.instructions,
    })
}

/// `r` when its parts fit together (every length, index and value in range) for a file of
/// `images` images.
fn check_result(r: FileResult, images: usize) -> Result<FileResult, String> {
    let damaged = |what: &str| Err(format!("its last run's outputs are damaged ({what})"));
    let n = r.images.len();
    let c = r.classes;
    if n == 0 || n > images || r.member.len() != n || r.labels.len() != n {
        return damaged("the images do not match");
    }
    if r.images.iter().chain(&r.validation).any(|&i| i >= images)
        || r.validation.iter().any(|i| !r.images.contains(i))
    {
        return damaged("an image the file does not have");
    }
    if !(2..=MAX_CLASSES).contains(&c) || r.labels.iter().any(|&l| l >= c) {
        return damaged("the classes");
    }
    let s = r.keep.len() / n;
    if r.target.len() != n * c
        || r.keep.len() != s * n
        || s > MAX_SHADOWS
        || r.shadows.len() != s * n * c
    {
        return damaged("the logits' shapes");
    }
    if r.target.iter().chain(&r.shadows).any(|x| !x.is_finite())
        || !r.ms.is_finite()
        || r.epsilon.is_some_and(|(e, d)| !e.is_finite() || !d.is_finite())
    {
        return damaged("a value that is not a number");
    }
    if r.recipe.chars().count() > 400 || r.kept_epoch.0 > r.kept_epoch.1 {
        return damaged("the recipe");
    }
    Ok(r)
}

/// Whether a number of the table is a share (0 to 1).
fn share(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// The comparison table, when every row is in range.
fn check_history(history: &[FileRun]) -> Result<(), String> {
    if history.len() > MAX_RUNS {
        return Err(format!("its comparison table has more than {MAX_RUNS} runs"));
    }
    let row_ok = |r: &FileRun| {
        r.recipe.chars().count() <= 400
            && share(r.accuracy.0)
            && share(r.accuracy.1)
            && r.epsilon.is_none_or(|(e, d)| e.is_finite() && d.is_finite())
            && r.draws.len() <= LabAttack::ALL.len()
            && r.draws.iter().all(|d| {
                d.aucs.len() <= MAX_SHADOWS + 1
                    && d.aucs.iter().chain(&d.tprs).copied().all(share)
                    && [d.auc.mean, d.auc.lo, d.auc.hi, d.tpr.mean, d.fpr]
                        .iter()
                        .all(|x| x.is_finite())
            })
    };
    match history.iter().all(row_ok) {
        true => Ok(()),
        false => Err("its comparison table is damaged".into()),
    }
}

/// A prepared lab's instructions, when within their bounds.
fn check_instructions(i: &FileInstructions) -> Result<(), String> {
    let long = |t: &str| t.chars().count() > MAX_TEXT;
    if long(&i.title) || long(&i.text) || i.questions.len() > MAX_QUESTIONS {
        return Err(format!(
            "its instructions are too long (at most {MAX_TEXT} characters, {MAX_QUESTIONS} questions)"
        ));
    }
    if i.questions.iter().any(|q| long(q)) {
        return Err(format!("a question is longer than {MAX_TEXT} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_damage() {
        let b = vec![0u8, 15, 16, 255];
        assert_eq!(hex(&b), "000f10ff");
        assert_eq!(unhex(&hex(&b)), Some(b));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None, "not a char boundary");
    }

    #[test]
    fn a_version_1_file_reads_with_the_defaults() {
        let v1 = r#"{"format":"mia-lab","version":1,"input":[1,2,2],"classes":["a","b"],
            "split_seed":3,"settings":{"defense":"erm","strength":0.0,"hidden":0,"epochs":60,
            "lr":0.1,"weight_decay":0.0,"dropout":0.0,"shadows":32,"delta":1e-5},
            "images":[{"class":1,"member":true,"pixels":"01020304"}]}"#;
        let c = read(v1, InputSpec::new(1, 2, 2)).unwrap();
        assert_eq!((c.settings.clip, c.settings.batch_size), (DEFAULT_CLIP, DEFAULT_BATCH));
        assert_eq!(c.images, [(1, true, vec![1, 2, 3, 4])]);
        assert!(read(v1, InputSpec::new(3, 2, 2)).is_err(), "another input size");
        assert!(read(&v1.replace("\"class\":1", "\"class\":2"), InputSpec::new(1, 2, 2)).is_err());
        assert!(read(&v1.replace("mia-lab", "other"), InputSpec::new(1, 2, 2)).is_err());
    }

    #[test]
    fn a_network_with_crafted_weights_is_refused_when_read() {
        let text = |weights: &str| {
            format!(
                r#"{{"format":"mia-lab","version":2,"input":[1,2,2],"classes":["a","b"],
                "split_seed":3,"settings":{{"defense":"erm","strength":0.0,"hidden":0,"epochs":60,
                "lr":0.1,"weight_decay":0.0,"dropout":0.0,"shadows":32,"delta":1e-5}},"images":[],
                "network":{{"shape":{{"dim":4,"hidden":0,"classes":2,"fine_tuned":false}},"weights":"{weights}"}}}}"#
            )
        };
        let input = InputSpec::new(1, 2, 2);
        assert!(read(&text("00ff"), input).unwrap_err().contains("weights are damaged"));
        assert!(read(&text("0"), input).is_err());
    }

    /// A version-3 file of four 1 × 2 × 2 images with a linear head, the last run's outputs
    /// (two shadows), a comparison table and instructions, as JSON.
    fn v3() -> serde_json::Value {
        let device = burn::prelude::Device::flex();
        let net = super::super::LabNet::head(super::super::Head::new(
            4,
            2,
            &super::super::HeadConfig::default(),
            &device,
        ));
        let draws = AttackDraws::from_parts(
            LabAttack::Loss,
            (vec![0.6, 0.7, 0.8], vec![0.1, 0.0, 0.2]),
            0.5,
            &[(0.7, 0.1), (0.65, 0.15)],
        )
        .unwrap();
        serde_json::json!({
            "format": "mia-lab", "version": 3, "input": [1, 2, 2], "classes": ["a", "b"],
            "split_seed": 3,
            "settings": {"defense": "erm", "strength": 0.0, "hidden": 0, "epochs": 60, "lr": 0.1,
                "weight_decay": 0.0, "dropout": 0.0, "shadows": 2, "delta": 1e-5},
            "images": (0..4).map(|i| serde_json::json!({"class": i % 2, "member": i < 2,
                "pixels": "01020304"})).collect::<Vec<_>>(),
            "network": {"shape": net.shape(), "weights": hex(&net.to_bytes().unwrap())},
            "result": {"images": [0, 1, 2, 3], "member": [true, true, false, false],
                "labels": [0, 1, 0, 1], "classes": 2, "target": [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.2, 0.1],
                "shadows": vec![0.25f32; 16], "keep": [true, false, true, false, false, true, false, true],
                "validation": [1], "epsilon": null, "kept_epoch": [40, 60], "ms": 812.0,
                "recipe": "ERM, linear head", "smoothing": null, "pairing": 9},
            "history": [{"number": 1, "recipe": "ERM", "pairing": 9, "accuracy": [1.0, 0.5],
                "epsilon": null, "draws": [draws]}],
            "instructions": {"title": "Overfitting", "text": "Train twice.", "questions": ["Why?"]},
        })
    }

    #[test]
    fn a_version_3_file_carries_the_run_the_table_and_the_instructions() {
        let input = InputSpec::new(1, 2, 2);
        let c = read(&v3().to_string(), input).unwrap();
        let r = c.result.unwrap();
        assert_eq!((r.images.len(), r.keep.len(), r.validation.clone()), (4, 8, vec![1]));
        assert_eq!(c.history.len(), 1);
        assert_eq!(c.instructions.unwrap().questions, ["Why?"]);
        let mut no_net = v3();
        no_net["network"] = serde_json::Value::Null;
        let c = read(&no_net.to_string(), input).unwrap();
        assert!(c.result.is_none(), "outputs without their network are dropped");
    }

    #[test]
    fn a_damaged_run_table_or_instructions_is_refused() {
        let input = InputSpec::new(1, 2, 2);
        let damaged = |path: &[&str], value: serde_json::Value| {
            let mut f = v3();
            let mut at = &mut f;
            for p in &path[..path.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at[path[path.len() - 1]] = value;
            read(&f.to_string(), input).unwrap_err()
        };
        use serde_json::json;
        for (path, value) in [
            (&["result", "images"][..], json!([0, 1, 2, 9])),
            (&["result", "member"][..], json!([true])),
            (&["result", "labels"][..], json!([0, 1, 0, 2])),
            (&["result", "classes"][..], json!(11)),
            (&["result", "target"][..], json!([1.0])),
            (&["result", "shadows"][..], json!(vec![0.5f32; 15])),
            (&["result", "validation"][..], json!([7])),
            // 1e39 is beyond f32: it reads as infinity.
            (&["result", "target"][..], json!([1e39, 0.0, 0.0, 1.0, 0.5, 0.5, 0.2, 0.1])),
            (&["result", "kept_epoch"][..], json!([61, 60])),
        ] {
            let why = damaged(path, value.clone());
            assert!(why.contains("outputs are damaged"), "{path:?} = {value}: {why}");
        }
        let mut rows = v3();
        let row = rows["history"][0].clone();
        rows["history"] = json!(vec![row; MAX_RUNS + 1]);
        assert!(read(&rows.to_string(), input).unwrap_err().contains("more than 24 runs"));
        let why = damaged(&["history", "0", "accuracy"], json!([1.5, 0.5]));
        assert!(why.contains("table is damaged"), "{why}");
        let why = damaged(&["instructions", "text"], json!("x".repeat(MAX_TEXT + 1)));
        assert!(why.contains("instructions are too long"), "{why}");
    }

    /// A lab file for the shipped CIFAR-10 model whose network claims a quantized dtype (burn
    /// panics on such data when nothing checks it), kept in tests/e2e/fixtures/ for the page's
    /// own test (hostile.mjs). Deterministic: the crafted tensors' data replaces the weights.
    fn crafted_lab() -> String {
        use burn::tensor::{Bytes, DType, quantization::QuantScheme};
        use burn_pack::{Reader, Writer};
        let device = burn::prelude::Device::flex();
        let net = super::super::LabNet::head(super::super::Head::new(
            128,
            2,
            &super::super::HeadConfig::default(),
            &device,
        ));
        let bytes = net.to_bytes().unwrap();
        let tensors: Vec<_> = Reader::from_bytes(Bytes::from_bytes_vec(bytes))
            .unwrap()
            .into_tensors()
            .unwrap()
            .into_iter()
            .map(|t| {
                let (name, _, shape, _, data) = t.into_parts().unwrap();
                let q = DType::QFloat(QuantScheme::default());
                burn_pack::Tensor::new(
                    name,
                    q,
                    shape,
                    None, // no parameter ids: they are drawn anew for every network
                    Bytes::from_bytes_vec(vec![7; data.len()]),
                )
            })
            .collect();
        let weights = Writer::new(tensors).into_bytes().unwrap().to_vec();
        let file = LabFile {
            format: FORMAT.into(),
            version: VERSION,
            input: [3, 32, 32],
            classes: vec!["crafted".into(), "network".into()],
            split_seed: 1,
            settings: FileSettings::default(),
            images: (0..4)
                .map(|i| FileImage {
                    class: i % 2,
                    member: i < 2,
                    pixels: hex(&[40 * i as u8; 3072]),
                })
                .collect(),
            network: Some(FileNet {
                shape: NetShape { dim: 128, hidden: 0, classes: 2, fine_tuned: false },
                weights: hex(&weights),
            }),
            result: None,
            history: Vec::new(),
            instructions: None,
        };
        serde_json::to_string(&file).unwrap()
    }

    #[test]
    fn the_crafted_lab_fixture_is_current_and_refused() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/e2e/fixtures/lab-crafted-network.json");
        let text = crafted_lab();
        if std::env::var_os("MIA_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let why = read(&text, InputSpec::new(3, 32, 32)).unwrap_err();
        assert!(why.contains("weights are damaged") && why.contains("QFloat"), "{why}");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale: MIA_UPDATE_GOLDEN=1 cargo test crafted_lab",
            path.display()
        );
    }
}
