//! Weights trained elsewhere into the zoo's models: a PyTorch state_dict (`.pt`, `.pth`) or a
//! safetensors file written from one, read by burn's own burn-store (`PytorchStore`,
//! `SafetensorsStore`, with its PyTorch adapter: linear weights transposed, batch norm's
//! `weight`/`bias` as burn's `gamma`/`beta`, running statistics kept).
//!
//! The file's keys may be those of the common public implementations ([`public_names`]):
//! ResNet-20 as akamaster/pytorch_resnet_cifar10 names it (option-B shortcuts), VGG-16-BN as
//! kuangliu/pytorch-cifar, MobileNetV2 as torchvision (with the CIFAR strides), the MLP as an
//! `nn.Sequential`; or MIA Lab's own names. A `module.` prefix (`nn.DataParallel`) is dropped,
//! PyTorch's `num_batches_tracked` counters are ignored, and the caller's own key map runs
//! first. Every tensor must then find its place exactly: anything missing, left over or of
//! another shape is one [`ImportError::Mismatch`] that names them all.
//!
//! Native only (feature `import`): the page never reads PyTorch files.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    PytorchStoreError, SafetensorsStore, SafetensorsStoreError,
};
use regex::Regex;

use super::{Architecture, Model, ModelConfig};
use crate::CoreError;

/// Why weights could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file's extension names no format this reads.
    #[error("{}: unknown weights format (expected .pt, .pth, .bin or .safetensors)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A key-map pattern is not a regular expression.
    #[error("key map `{pattern}` is not a regular expression")]
    BadKeyMap {
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// burn-store could not read a PyTorch file.
    #[error("reading {}", path.display())]
    Pytorch {
        /// The file.
        path: PathBuf,
        /// burn-store's error.
        #[source]
        source: PytorchStoreError,
    },
    /// burn-store could not read a safetensors file.
    #[error("reading {}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// burn-store's error.
        #[source]
        source: SafetensorsStoreError,
    },
    /// The reader failed on a damaged file.
    #[error("{} is damaged: the reader could not decode it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The file's tensors do not fit the architecture.
    #[error("{}", mismatch_text(arch, missing, unexpected, misshaped))]
    Mismatch {
        /// The architecture.
        arch: Architecture,
        /// The model's tensors the file lacks (their names in the public naming).
        missing: Vec<String>,
        /// The file's tensors the model has no place for (as named in the file, after the key
        /// map).
        unexpected: Vec<String>,
        /// Tensors of another shape or type, each with what was expected and found.
        misshaped: Vec<String>,
    },
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] CoreError),
}

fn mismatch_text(
    arch: &Architecture,
    missing: &[String],
    unexpected: &[String],
    misshaped: &[String],
) -> String {
    let mut text = format!("the weights do not fit {arch}");
    let mut list = |what: &str, items: &[String]| {
        // At most a dozen names a line: the rest is counted.
        const SHOWN: usize = 12;
        if !items.is_empty() {
            let more = items.len().saturating_sub(SHOWN);
            let rest = if more > 0 { format!(", … and {more} more") } else { String::new() };
            let names = items[..items.len().min(SHOWN)].join(", ");
            text.push_str(&format!("\n  {what} ({}): {names}{rest}", items.len()));
        }
    };
    list("missing from the file", missing);
    list("in the file but not in the model", unexpected);
    list("of another shape or type", misshaped);
    text
}

/// The two formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `torch.save(model.state_dict(), …)`: `.pt`, `.pth`, `.bin`.
    Pytorch,
    /// `safetensors.torch.save_file(model.state_dict(), …)`: `.safetensors`.
    Safetensors,
}

impl WeightsFormat {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Result<Self, ImportError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("pt" | "pth" | "bin" | "ckpt") => Ok(Self::Pytorch),
            Some("safetensors") => Ok(Self::Safetensors),
            _ => Err(ImportError::UnknownFormat { path: path.to_path_buf() }),
        }
    }
}

/// How to read the file's keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// The entry of a checkpoint dictionary that holds the state_dict (`state_dict`,
    /// `model_state_dict`, `net`, …); `None` when the file is the state_dict itself.
    pub top_level_key: Option<String>,
    /// `(regex, replacement)` pairs applied to every key, in order, before the built-in
    /// naming; the replacement may use `$1`.
    pub key_map: Vec<(String, String)>,
}

/// What an import loaded.
#[derive(Debug)]
pub struct Imported {
    /// The model with the file's weights.
    pub model: Model,
    /// How many tensors were loaded.
    pub tensors: usize,
    /// The file's tensors left out on purpose (batch norm's `num_batches_tracked`).
    pub ignored: usize,
}

/// The public implementation's key prefixes and the model's own, for `arch`: a file key that
/// starts with the first is read as the second. Keys already in MIA Lab's own names match no
/// prefix and load as they are.
pub fn public_names(arch: Architecture) -> Vec<(String, String)> {
    let pair = |a: String, b: String| (a, b);
    match arch {
        Architecture::SmallCnn | Architecture::MlLeaksCnn => Vec::new(),
        Architecture::Mlp => {
            let mut v: Vec<_> =
                (0..4).map(|i| pair(format!("{}.", 2 * i), format!("hidden.{i}."))).collect();
            v.push(pair("8.".into(), "out.".into()));
            v
        }
        Architecture::Resnet20 => {
            let mut v =
                vec![pair("conv1.".into(), "stem.".into()), pair("bn1.".into(), "bn.".into())];
            for l in 0..3 {
                for b in 0..3 {
                    v.push(pair(format!("layer{}.{b}.", l + 1), format!("blocks.{}.", 3 * l + b)));
                }
            }
            v.push(pair("linear.".into(), "fc.".into()));
            v
        }
        Architecture::Vgg16Bn => {
            // features: [conv, bn, relu] per layer, one index per max-pool.
            let (mut v, mut index, mut layer) = (Vec::new(), 0, 0);
            for &c in &super::vgg::CFG {
                if c == 0 {
                    index += 1;
                    continue;
                }
                v.push(pair(format!("features.{index}."), format!("convs.{layer}.")));
                v.push(pair(format!("features.{}.", index + 1), format!("bns.{layer}.")));
                (index, layer) = (index + 3, layer + 1);
            }
            v.push(pair("classifier.".into(), "fc.".into()));
            v
        }
        Architecture::MobilenetV2 => {
            let mut v = vec![
                pair("features.0.0.".into(), "stem.0.".into()),
                pair("features.0.1.".into(), "stem.1.".into()),
            ];
            let mut block = 0;
            for (t, _, n, _) in super::mobilenet::STAGES {
                for _ in 0..n {
                    let (f, b) =
                        (format!("features.{}.conv.", block + 1), format!("blocks.{block}."));
                    let parts: &[(&str, &str)] = if t == 1 {
                        &[
                            ("0.0.", "depthwise.0."),
                            ("0.1.", "depthwise.1."),
                            ("1.", "project.0."),
                            ("2.", "project.1."),
                        ]
                    } else {
                        &[
                            ("0.0.", "expand.0."),
                            ("0.1.", "expand.1."),
                            ("1.0.", "depthwise.0."),
                            ("1.1.", "depthwise.1."),
                            ("2.", "project.0."),
                            ("3.", "project.1."),
                        ]
                    };
                    v.extend(parts.iter().map(|(p, q)| pair(format!("{f}{p}"), format!("{b}{q}"))));
                    block += 1;
                }
            }
            let head = block + 1;
            v.push(pair(format!("features.{head}.0."), "head.0.".into()));
            v.push(pair(format!("features.{head}.1."), "head.1.".into()));
            v.push(pair("classifier.1.".into(), "fc.".into()));
            v
        }
    }
}

/// `path` (a model's tensor) in the public naming of `arch`, for messages.
fn public_name(arch: Architecture, path: &str) -> String {
    public_names(arch)
        .iter()
        .find_map(|(public, own)| {
            path.strip_prefix(own.as_str()).map(|rest| format!("{public}{rest}"))
        })
        .unwrap_or_else(|| path.to_string())
}

/// The compiled key map: the caller's pairs, `module.` dropped, then the public naming.
fn remapper(arch: Architecture, options: &ImportOptions) -> Result<KeyRemapper, ImportError> {
    let compile = |pattern: &str| {
        Regex::new(pattern)
            .map_err(|source| ImportError::BadKeyMap { pattern: pattern.to_string(), source })
    };
    let mut patterns = Vec::new();
    for (from, to) in &options.key_map {
        patterns.push((compile(from)?, to.clone()));
    }
    patterns.push((compile(r"^module\.")?, String::new()));
    for (public, own) in public_names(arch) {
        patterns.push((compile(&format!("^{}", regex::escape(&public)))?, own));
    }
    Ok(KeyRemapper::from_compiled_patterns(patterns))
}

/// Builds `config`'s model on `device` and loads the weights of `path` into it.
pub fn import_weights(
    config: &ModelConfig,
    path: &Path,
    options: &ImportOptions,
    device: &Device,
) -> Result<Imported, ImportError> {
    let format = WeightsFormat::of(path)?;
    let remap = remapper(config.arch, options)?;
    let mut model = {
        // As in `load_bytes`: building draws from burn's process-wide RNG.
        let _rng = crate::rng::backend_lock();
        config.init(device)?
    };
    let file = path.to_path_buf();
    // The readers index into what they read; a damaged file must be an error, not a panic.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match format {
        WeightsFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path)
                .remap(remap)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            if let Some(key) = &options.top_level_key {
                store = store.with_top_level_key(key.clone());
            }
            model
                .load_from(&mut store)
                .map_err(|source| ImportError::Pytorch { path: file.clone(), source })
        }
        WeightsFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remap)
                .map_indices_contiguous(false)
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(false);
            model
                .load_from(&mut store)
                .map_err(|source| ImportError::Safetensors { path: file.clone(), source })
        }
    }))
    .map_err(|_| ImportError::Corrupt { path: file.clone() })??;
    let (tensors, ignored) = check(config.arch, &read)?;
    Ok(Imported { model, tensors, ignored })
}

/// (tensors loaded, tensors ignored), or every mismatch at once.
fn check(arch: Architecture, result: &ApplyResult) -> Result<(usize, usize), ImportError> {
    let ignored = |p: &String| p.ends_with("num_batches_tracked");
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| public_name(arch, p)).collect();
    let unexpected: Vec<String> = result.unused.iter().filter(|p| !ignored(p)).cloned().collect();
    let misshaped: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch { path, expected, found } => format!(
                "{}: the model has {:?}, the file {:?}",
                public_name(arch, path),
                expected.as_slice(),
                found.as_slice()
            ),
            ApplyError::DTypeMismatch { path, expected, found } => format!(
                "{}: the model has {expected:?}, the file {found:?} (save the state_dict as float32)",
                public_name(arch, path)
            ),
            other => other.to_string(),
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
        let ignored = result.unused.iter().filter(|p| ignored(p)).count();
        Ok((result.applied.len(), ignored))
    } else {
        Err(ImportError::Mismatch { arch, missing, unexpected, misshaped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputSpec;
    use burn::store::BurnToPyTorchAdapter;

    fn cifar(arch: Architecture) -> ModelConfig {
        let input = if arch == Architecture::Mlp {
            InputSpec::new(1, 1, 48)
        } else {
            InputSpec::new(3, 32, 32)
        };
        ModelConfig::new(arch, input, 10)
    }

    /// `model` saved as PyTorch would write it: linear weights `[out, in]`, batch norm as
    /// `weight`/`bias`, keys in the public naming of `arch` (or `rename`d further).
    fn save_public(model: &Model, arch: Architecture, path: &Path, rename: &[(&str, &str)]) {
        let mut patterns: Vec<(String, String)> = public_names(arch)
            .into_iter()
            .map(|(public, own)| (format!("^{}", regex::escape(&own)), public))
            .collect();
        patterns.extend(rename.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        let mut store = SafetensorsStore::from_file(path)
            .with_to_adapter(BurnToPyTorchAdapter)
            .skip_enum_variants(true)
            .remap(KeyRemapper::from_patterns(patterns).unwrap());
        model.save_into(&mut store).unwrap();
    }

    fn logits(model: &Model, input: InputSpec, device: &Device) -> Vec<f32> {
        let x = Tensor::<4>::random(
            [4, input.channels, input.height, input.width],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        );
        model.forward(x).into_data().try_to_vec().unwrap()
    }

    #[test]
    fn every_architecture_loads_from_its_public_names() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        for arch in Architecture::ALL {
            let config = cifar(arch);
            let model = config.init(&device).unwrap();
            let path = dir.path().join(format!("{arch}.safetensors"));
            save_public(&model, arch, &path, &[]);
            let imported = import_weights(&config, &path, &ImportOptions::default(), &device)
                .unwrap_or_else(|e| panic!("{arch}: {e}"));
            assert!(imported.tensors > 0, "{arch}");
            let x = Tensor::<4>::ones(
                [2, config.input.channels, config.input.height, config.input.width],
                &device,
            );
            assert_eq!(
                imported.model.forward(x.clone()).into_data(),
                model.forward(x).into_data(),
                "{arch}"
            );
        }
    }

    #[test]
    fn public_names_cover_every_tensor_of_the_deep_models() {
        let device = Device::flex();
        // Every tensor of ResNet-20, VGG-16-BN and MobileNetV2 has a public name (no own name
        // leaks into a file written in the public naming).
        for arch in [Architecture::Resnet20, Architecture::Vgg16Bn, Architecture::MobilenetV2] {
            let model = cifar(arch).init(&device).unwrap();
            let names = public_names(arch);
            for t in model.collect(None, None, true) {
                let path = &t.name;
                assert!(
                    names.iter().any(|(_, own)| path.starts_with(own.as_str())),
                    "{arch}: {path} has no public name"
                );
            }
        }
        assert_eq!(
            public_name(Architecture::Resnet20, "blocks.4.conv1.weight"),
            "layer2.1.conv1.weight"
        );
        assert_eq!(
            public_name(Architecture::Vgg16Bn, "bns.2.running_var"),
            "features.8.running_var"
        );
        assert_eq!(
            public_name(Architecture::MobilenetV2, "blocks.0.project.1.beta"),
            "features.1.conv.2.beta"
        );
    }

    #[test]
    fn a_key_map_and_a_data_parallel_prefix_are_applied() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = cifar(Architecture::SmallCnn);
        let model = config.init(&device).unwrap();
        let path = dir.path().join("prefixed.safetensors");
        save_public(&model, config.arch, &path, &[("^", "module.backbone.")]);
        let plain = import_weights(&config, &path, &ImportOptions::default(), &device);
        assert!(matches!(plain, Err(ImportError::Mismatch { .. })));
        let options = ImportOptions {
            key_map: vec![(r"^module\.backbone\.".into(), String::new())],
            ..ImportOptions::default()
        };
        let imported = import_weights(&config, &path, &options, &device).unwrap();
        assert_eq!(logits(&imported.model, config.input, &device).len(), 40);
        // `module.` alone is dropped without being asked.
        let options =
            ImportOptions { key_map: vec![(r"backbone\.".into(), String::new())], ..options };
        assert!(import_weights(&config, &path, &options, &device).is_ok());
    }

    #[test]
    fn missing_and_unexpected_tensors_are_named() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = cifar(Architecture::Resnet20);
        let model = config.init(&device).unwrap();
        let path = dir.path().join("renamed.safetensors");
        save_public(&model, config.arch, &path, &[(r"^linear\.", "head.")]);
        let err = import_weights(&config, &path, &ImportOptions::default(), &device).unwrap_err();
        let ImportError::Mismatch { missing, unexpected, misshaped, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing.iter().all(|m| m.starts_with("linear.")), "{missing:?}");
        assert_eq!(unexpected.len(), 2, "{unexpected:?}");
        assert!(unexpected.iter().all(|m| m.starts_with("head.")), "{unexpected:?}");
        assert!(misshaped.is_empty());
        let text = err.to_string();
        assert!(text.contains("missing from the file (2): linear."), "{text}");
        assert!(text.contains("in the file but not in the model (2): head."), "{text}");
    }

    #[test]
    fn misshaped_tensors_are_named_with_both_shapes() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("100.safetensors");
        let hundred = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(3, 32, 32), 100);
        save_public(&hundred.init(&device).unwrap(), hundred.arch, &path, &[]);
        let err = import_weights(
            &cifar(Architecture::SmallCnn),
            &path,
            &ImportOptions::default(),
            &device,
        )
        .unwrap_err();
        let ImportError::Mismatch { missing, unexpected, misshaped, .. } = &err else {
            panic!("{err}")
        };
        assert!(missing.is_empty() && unexpected.is_empty());
        assert_eq!(misshaped.len(), 2, "{misshaped:?}");
        assert!(err.to_string().contains("fc2.bias: the model has [10], the file [100]"), "{err}");
    }

    #[test]
    fn bad_files_and_bad_patterns_are_errors() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = cifar(Architecture::SmallCnn);
        let none = ImportOptions::default();
        let unknown = dir.path().join("weights.onnx");
        assert!(matches!(
            import_weights(&config, &unknown, &none, &device),
            Err(ImportError::UnknownFormat { .. })
        ));
        let absent = dir.path().join("absent.pt");
        assert!(matches!(
            import_weights(&config, &absent, &none, &device),
            Err(ImportError::Pytorch { .. })
        ));
        for (name, bytes) in
            [("junk.pt", &b"not a pickle"[..]), ("junk.safetensors", &[0xff; 64][..])]
        {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = import_weights(&config, &path, &none, &device).unwrap_err();
            assert!(
                matches!(
                    err,
                    ImportError::Pytorch { .. }
                        | ImportError::Safetensors { .. }
                        | ImportError::Corrupt { .. }
                ),
                "{name}: {err}"
            );
        }
        let bad = ImportOptions { key_map: vec![("(".into(), String::new())], ..none };
        let path = dir.path().join("w.safetensors");
        save_public(&config.init(&device).unwrap(), config.arch, &path, &[]);
        assert!(matches!(
            import_weights(&config, &path, &bad, &device),
            Err(ImportError::BadKeyMap { .. })
        ));
    }

    /// Every architecture written by PyTorch itself (`python3 bench/pytorch_paper.py
    /// --check-zoo DIR`), in both formats, gives PyTorch's logits within 1e-4. Needs the
    /// files: `MIA_PYTORCH_ZOO=DIR cargo test --workspace pytorch_zoo -- --ignored`.
    #[test]
    #[ignore = "needs MIA_PYTORCH_ZOO, written by bench/pytorch_paper.py --check-zoo"]
    fn pytorch_zoo_logits_match() {
        use crate::npy::{NpyArray, NpyData};
        let dir = PathBuf::from(std::env::var("MIA_PYTORCH_ZOO").expect("MIA_PYTORCH_ZOO"));
        let read = |name: &str| -> (Vec<usize>, Vec<f32>) {
            let a = NpyArray::from_bytes(&std::fs::read(dir.join(name)).unwrap()).unwrap();
            let NpyData::F32(v) = a.data else { panic!("{name} is not float32") };
            (a.shape, v)
        };
        let device = Device::flex();
        let (shape, inputs) = read("inputs.npy");
        let x = Tensor::<4>::from_data(
            TensorData::new(inputs, [shape[0], shape[1], shape[2], shape[3]]),
            &device,
        );
        for arch in Architecture::ALL {
            let config = ModelConfig::new(arch, InputSpec::new(3, 32, 32), 10);
            let (_, expected) = read(&format!("{arch}.logits.npy"));
            for ext in ["pt", "safetensors"] {
                let path = dir.join(format!("{arch}.{ext}"));
                let imported = import_weights(&config, &path, &ImportOptions::default(), &device)
                    .unwrap_or_else(|e| panic!("{arch}.{ext}: {e}"));
                let got: Vec<f32> =
                    imported.model.forward(x.clone()).into_data().try_to_vec().unwrap();
                let diff =
                    got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                eprintln!("{arch}.{ext}: largest logit difference {diff:.2e}");
                assert!(diff < 1e-4, "{arch}.{ext}: {diff}");
            }
        }
    }
}
