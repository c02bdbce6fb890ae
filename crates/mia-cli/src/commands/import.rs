//! `mia import`: a model trained elsewhere (a PyTorch state_dict or a safetensors file) becomes
//! a model of the zoo, stored as burnpack with its preprocessing in an imported-model folder
//! ([`ImportedLayout`]) that `mia export --model` reads. With `--check-images` and
//! `--check-logits` it also proves the import: the model's logits on those images must equal
//! the ones given (PyTorch's) within `--tolerance`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use mia_core::bundle::{ReferenceSample, sha256_hex};
use mia_core::layout::ImportedLayout;
use mia_core::models::import::{ImportOptions, WeightsFormat, import_weights};
use mia_core::npy::{NpyArray, NpyData};
use mia_core::{Architecture, InputSpec, ModelConfig, Normalization};
use mia_train::DeviceChoice;
use serde::{Deserialize, Serialize};

use super::hinted;

/// Arguments of `mia import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The weights: a PyTorch state_dict (`.pt`, `.pth`, `.bin`) or a safetensors file.
    weights: PathBuf,
    /// The architecture they are for: small-cnn, ml-leaks-cnn, resnet20, vgg16-bn,
    /// mobilenet-v2, mlp (key names: docs/import.md).
    #[arg(long)]
    arch: Architecture,
    /// A TOML file with `input`, `classes`, `mean`, `std` and optionally `dataset` and
    /// `class_names` (the flags below override it).
    #[arg(long)]
    preprocess: Option<PathBuf>,
    /// Input shape, CxHxW (e.g. 3x32x32).
    #[arg(long)]
    input: Option<String>,
    /// Number of classes.
    #[arg(long)]
    classes: Option<usize>,
    /// Per-channel mean subtracted after scaling pixels to [0, 1], comma-separated.
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, comma-separated.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Rename keys before reading them: `REGEX=REPLACEMENT` (repeatable, applied in order;
    /// `$1` refers to a group), e.g. `--key-map '^backbone\.=' --key-map '^head\.=linear.'`.
    #[arg(long = "key-map")]
    key_map: Vec<String>,
    /// The checkpoint entry holding the state_dict (e.g. `state_dict`, `net`), when the file
    /// is a dictionary around it.
    #[arg(long)]
    top_level_key: Option<String>,
    /// Images to check the import on: a uint8 .npy [N, H, W, C] or [N, C, H, W], or a folder of
    /// PNG/JPEG files (sorted by name).
    #[arg(long, requires = "check_logits")]
    check_images: Option<PathBuf>,
    /// The logits the original framework gave on those images, float32 [N, classes].
    #[arg(long, requires = "check_images")]
    check_logits: Option<PathBuf>,
    /// Largest logit difference the check accepts.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f32,
    /// Output folder (`model.bpk`, `imported.json`).
    #[arg(long)]
    out: PathBuf,
}

/// The preprocessing file (`--preprocess`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreprocessFile {
    input: Option<String>,
    classes: Option<usize>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    dataset: Option<String>,
    class_names: Option<Vec<String>>,
}

/// `imported.json`: what `mia export --model` needs besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportedModel {
    /// Architecture, input and classes.
    pub model: ModelConfig,
    /// The preprocessing the model was trained with.
    pub normalization: Normalization,
    /// The dataset's name, as the page shows it.
    pub dataset: String,
    /// One name per class.
    pub class_names: Vec<String>,
    /// The file imported (its name).
    pub source: String,
    /// The SHA-256 of the imported file.
    pub source_sha256: String,
    /// The check's result: images compared and the largest logit difference.
    pub checked: Option<(usize, f32)>,
}

impl ImportedModel {
    /// Reads `DIR/imported.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = ImportedLayout::new(dir).description();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            hinted(
                format!("cannot read {}: {e}", path.display()),
                "pass --model with a folder written by `mia import`",
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

fn parse_input(text: &str) -> Result<InputSpec> {
    let dims: Vec<usize> = text
        .split('x')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| hinted(format!("input `{text}` is not CxHxW"), "e.g. --input 3x32x32"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 && c * h * w <= 1 << 24 => Ok(InputSpec::new(c, h, w)),
        _ => Err(hinted(format!("input `{text}` is not CxHxW"), "e.g. --input 3x32x32")),
    }
}

fn key_map(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                hinted(
                    format!("key map `{p}` has no `=`"),
                    "write REGEX=REPLACEMENT, e.g. '^net\\.='",
                )
            })
        })
        .collect()
}

/// The model's description from the flags and the preprocessing file.
fn describe(args: &ImportArgs) -> Result<ImportedModel> {
    let file: PreprocessFile = match &args.preprocess {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => PreprocessFile::default(),
    };
    let need = "give --input, --classes, --mean and --std, or --preprocess with them";
    let missing = |what: &str| hinted(format!("the import needs {what}"), need);
    let input = parse_input(
        args.input.as_ref().or(file.input.as_ref()).ok_or_else(|| missing("the input shape"))?,
    )?;
    let classes = args.classes.or(file.classes).ok_or_else(|| missing("the number of classes"))?;
    let mean = args.mean.clone().or(file.mean).ok_or_else(|| missing("the mean"))?;
    let std = args.std.clone().or(file.std).ok_or_else(|| missing("the standard deviation"))?;
    if mean.len() != input.channels || std.len() != input.channels {
        return Err(hinted(
            format!(
                "{} channels need as many means and deviations ({} and {} given)",
                input.channels,
                mean.len(),
                std.len()
            ),
            "one value per channel, comma-separated",
        ));
    }
    if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || mean.iter().any(|m| !m.is_finite()) {
        return Err(hinted(
            "every deviation must be positive and every mean finite",
            "e.g. --std 0.247,0.243,0.261",
        ));
    }
    if !(2..=1000).contains(&classes) {
        return Err(hinted(format!("{classes} classes"), "between 2 and 1000"));
    }
    let class_names = match file.class_names {
        Some(names) if names.len() == classes => names,
        Some(names) => {
            return Err(hinted(
                format!("{} class names for {classes} classes", names.len()),
                "list one name per class in class_names",
            ));
        }
        None => (0..classes).map(|c| format!("class {c}")).collect(),
    };
    let model = ModelConfig::new(args.arch, input, classes);
    model.validate()?;
    let bytes = std::fs::read(&args.weights)
        .with_context(|| format!("reading {}", args.weights.display()))?;
    Ok(ImportedModel {
        model,
        normalization: Normalization { mean, std },
        dataset: file.dataset.unwrap_or_else(|| "imported".into()),
        class_names,
        source: args
            .weights
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        source_sha256: sha256_hex(&bytes),
        checked: None,
    })
}

/// Reads `n` images of shape `input` as CHW bytes: a uint8 .npy (`[N, H, W, C]` or
/// `[N, C, H, W]`) or a folder of PNG/JPEG files taken in name order.
pub fn read_images(path: &Path, input: InputSpec) -> Result<(usize, Vec<u8>)> {
    if path.is_dir() {
        return read_image_folder(path, input);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let array =
        NpyArray::from_bytes(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let NpyData::I64(values) = array.data else {
        return Err(hinted(
            format!("{} is not uint8", path.display()),
            "save the images with dtype uint8",
        ));
    };
    let (c, h, w) = (input.channels, input.height, input.width);
    let hwc = match array.shape[..] {
        [_, hh, ww, cc] if (hh, ww, cc) == (h, w, c) => true,
        [_, cc, hh, ww] if (cc, hh, ww) == (c, h, w) => false,
        _ => {
            return Err(hinted(
                format!(
                    "{} has shape {:?}, not [N, {h}, {w}, {c}] or [N, {c}, {h}, {w}]",
                    path.display(),
                    array.shape
                ),
                "store the images as the model takes them",
            ));
        }
    };
    let pixels: Vec<u8> =
        values.iter().map(|&v| u8::try_from(v)).collect::<Result<_, _>>().map_err(|_| {
            hinted(format!("{} has values outside 0..=255", path.display()), "store uint8 pixels")
        })?;
    let n = array.shape[0];
    if !hwc {
        return Ok((n, pixels));
    }
    let mut chw = vec![0; pixels.len()];
    for (i, image) in pixels.chunks(h * w * c).enumerate() {
        for (p, px) in image.chunks(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                chw[i * h * w * c + ch * h * w + p] = v;
            }
        }
    }
    Ok((n, chw))
}

fn read_image_folder(dir: &Path, input: InputSpec) -> Result<(usize, Vec<u8>)> {
    let (c, h, w) = (input.channels, input.height, input.width);
    if h != w || !matches!(c, 1 | 3) {
        return Err(hinted(
            format!("a folder of images needs square RGB or grayscale inputs, not {input}"),
            "give the images as a uint8 .npy",
        ));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(hinted(
            format!("{} has no PNG or JPEG files", dir.display()),
            "pass a folder of images or a .npy",
        ));
    }
    let mut chw = Vec::with_capacity(files.len() * input.numel());
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let size = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok());
        if size != Some((w as u32, h as u32)) {
            return Err(hinted(
                format!("{} is not a {w}×{h} PNG or JPEG", file.display()),
                "resize the images as the model was trained",
            ));
        }
        // Same size: the decoder's resize is a copy (and its limits hold against huge files).
        let pixels = mia_data::folder::decode_image(&bytes, h, c == 1).map_err(|e| {
            hinted(format!("decoding {}: {e}", file.display()), "pass PNG or JPEG files")
        })?;
        chw.extend(pixels);
    }
    Ok((files.len(), chw))
}

/// The model's logits on CHW `pixels`.
pub fn logits_on(
    model: &mia_core::Model,
    d: &ImportedModel,
    n: usize,
    pixels: Vec<u8>,
) -> Result<Vec<f32>> {
    let sample = ReferenceSample {
        input: d.model.input,
        labels: vec![0; n],
        is_member: vec![false; n],
        pixels,
    };
    Ok(sample.logits(model, &d.normalization, &DeviceChoice::Flex.device()?)?)
}

/// The largest difference between the model's logits on `images` and `expected`.
fn check(
    model: &mia_core::Model,
    d: &ImportedModel,
    images: &Path,
    expected: &Path,
) -> Result<(usize, f32)> {
    let (n, pixels) = read_images(images, d.model.input)?;
    let bytes =
        std::fs::read(expected).with_context(|| format!("reading {}", expected.display()))?;
    let array =
        NpyArray::from_bytes(&bytes).with_context(|| format!("parsing {}", expected.display()))?;
    let classes = d.model.num_classes;
    let NpyData::F32(want) = array.data else {
        return Err(hinted(
            format!("{} is not float32", expected.display()),
            "save the logits as float32",
        ));
    };
    if array.shape != [n, classes] {
        return Err(hinted(
            format!(
                "{} has shape {:?}, the {n} images need [{n}, {classes}]",
                expected.display(),
                array.shape
            ),
            "give the logits of exactly those images, in the same order",
        ));
    }
    let got = logits_on(model, d, n, pixels)?;
    Ok((n, got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)))
}

/// Runs `mia import`.
pub fn run(args: ImportArgs) -> Result<()> {
    let mut description = describe(&args)?;
    let format = WeightsFormat::of(&args.weights)?;
    let options = ImportOptions {
        top_level_key: args.top_level_key.clone(),
        key_map: key_map(&args.key_map)?,
    };
    let device = DeviceChoice::Flex.device()?;
    let imported = import_weights(&description.model, &args.weights, &options, &device)?;
    println!(
        "{}: {} tensors into {} ({:?}){}",
        args.weights.display(),
        imported.tensors,
        args.arch,
        format,
        if imported.ignored > 0 {
            format!("; {} num_batches_tracked ignored", imported.ignored)
        } else {
            String::new()
        }
    );
    if let (Some(images), Some(logits)) = (&args.check_images, &args.check_logits) {
        let (n, diff) = check(&imported.model, &description, images, logits)?;
        println!(
            "check: {n} images, largest logit difference {diff:.2e} (tolerance {:.0e})",
            args.tolerance
        );
        if diff.is_nan() || diff > args.tolerance {
            return Err(hinted(
                format!(
                    "the imported model's logits differ from {} by up to {diff:.3e}",
                    logits.display()
                ),
                "check --input, --mean and --std against the training code's transforms, and the image layout",
            ));
        }
        description.checked = Some((n, diff));
    }
    use burn::module::Module;
    let bytes = imported.model.into_record().into_bytes().context("encoding the weights")?.to_vec();
    let layout = ImportedLayout::new(&args.out);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    mia_core::files::write_atomic(&layout.weights(), &bytes)
        .with_context(|| format!("writing {}", layout.weights().display()))?;
    let text = serde_json::to_string_pretty(&description)?;
    mia_core::files::write_atomic(&layout.description(), text.as_bytes())
        .with_context(|| format!("writing {}", layout.description().display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_input("3x32x32").unwrap(), InputSpec::new(3, 32, 32));
        for bad in ["3x32", "0x32x32", "axbxc", "3x32x32x1", ""] {
            assert!(parse_input(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_maps_split_at_the_first_equals() {
        let pairs = key_map(&["^net\\.=".into(), "a=b=c".into()]).unwrap();
        assert_eq!(pairs, [("^net\\.".into(), String::new()), ("a".into(), "b=c".into())]);
        assert!(key_map(&["no-equals".into()]).is_err());
    }

    #[test]
    fn npy_images_in_either_layout_read_as_chw() {
        let dir = tempfile::tempdir().unwrap();
        // Two 2×2 RGB images; pixel p of channel c holds 10c + p (+ 100 for the second).
        let chw: Vec<i64> = (0..2)
            .flat_map(|i| (0..3).flat_map(move |c| (0..4).map(move |p| 100 * i + 10 * c + p)))
            .collect();
        let hwc: Vec<i64> = (0..2)
            .flat_map(|i| (0..4).flat_map(move |p| (0..3).map(move |c| 100 * i + 10 * c + p)))
            .collect();
        let input = InputSpec::new(3, 2, 2);
        let want: Vec<u8> = chw.iter().map(|&v| v as u8).collect();
        for (name, shape, data) in
            [("chw", vec![2, 3, 2, 2], chw.clone()), ("hwc", vec![2, 2, 2, 3], hwc)]
        {
            let path = dir.path().join(format!("{name}.npy"));
            std::fs::write(&path, NpyArray::i64(shape, data).unwrap().to_bytes()).unwrap();
            assert_eq!(read_images(&path, input).unwrap(), (2, want.clone()), "{name}");
        }
        // The same images as a folder of PNGs, sorted by name.
        let folder = dir.path().join("png");
        std::fs::create_dir(&folder).unwrap();
        for (i, name) in ["b.png", "a.png"].iter().enumerate() {
            let k = 1 - i as u8; // a.png holds image 0, b.png image 1
            let px: Vec<u8> =
                (0..4).flat_map(|p| (0..3).map(move |c| 100 * k + 10 * c + p)).collect();
            image::RgbImage::from_raw(2, 2, px).unwrap().save(folder.join(name)).unwrap();
        }
        assert_eq!(read_images(&folder, input).unwrap(), (2, want.clone()), "folder");
        image::RgbImage::new(3, 3).save(folder.join("c.png")).unwrap();
        assert!(read_images(&folder, input).is_err(), "an image of another size");
        let wrong = dir.path().join("wrong.npy");
        std::fs::write(&wrong, NpyArray::i64(vec![2, 12], chw).unwrap().to_bytes()).unwrap();
        assert!(read_images(&wrong, input).is_err());
    }
}
