//! The lab file: one JSON document with the classes, every image at the model's input size
//! (CHW bytes as hex), its role, the recipe and the trained network's weights. The page writes
//! and reads it (`mia-web`'s `lab_files`, which turns the recipe into its settings); files
//! travel between students, so reading one is strict: [`read`] returns the contents only when
//! every part is well formed, and a network's weights are checked again when loaded
//! ([`crate::weights`]). tests/fuzz.rs fuzzes [`read`] and the network's loading together.

use serde::{Deserialize, Serialize};

use super::NetShape;
use crate::InputSpec;

/// The file's format tag.
pub const FORMAT: &str = "mia-lab";
/// Version 2 adds the network and the recipe's batch size, clip norm, early stopping and
/// fine-tuning; version 1 files still read.
pub const VERSION: u32 = 2;
/// The most classes a lab holds.
pub const MAX_CLASSES: usize = 10;
/// The most images a lab holds.
pub const MAX_IMAGES: usize = 400;
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
    Ok(LabContents {
        classes: f.classes.into_iter().map(|c| c.chars().take(40).collect()).collect(),
        split_seed: f.split_seed,
        images,
        settings: f.settings,
        network,
    })
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
            settings: FileSettings {
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
            },
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
