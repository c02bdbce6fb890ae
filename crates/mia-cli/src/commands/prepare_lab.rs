//! `mia prepare-lab`: a lab prepared in advance, as the page's lab file. A TOML spec names the
//! instructions and questions, the classes of the bundle's reference sample to draw images
//! from (its non-members only: the shipped models never trained on them), how many per class,
//! and the recipe; the images get the page's own half-and-half member split. A teacher serves
//! the file next to the page and hands out `?lab=labs/NAME.json` (web/labs/make.sh builds the
//! shipped ones). With `--from`, the images come from a lab exported from the page instead
//! (the teacher's own photos), and the spec adds the instructions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mia_core::bundle::ReferenceSample;
use mia_core::lab::file::{self, FileImage, FileInstructions, FileSettings, LabFile};
use mia_core::lab::split_members;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{hinted, read_checked, read_manifest};

/// Arguments of `mia prepare-lab`.
#[derive(Args)]
pub struct PrepareLabArgs {
    /// The lab's spec (TOML: title, text, questions, [images], [recipe]; see docs/teaching/).
    spec: PathBuf,
    /// Bundle folder whose reference non-members give the images (the page's `pretrained/`).
    #[arg(long, default_value = "pretrained")]
    bundle: PathBuf,
    /// The lab file to write.
    #[arg(long)]
    out: PathBuf,
    /// Take the classes, images, roles and recipe from a lab exported from the page (a lab of
    /// your own photos) instead of the spec's [images]; the spec gives the instructions (and
    /// may override the recipe). Its network, run and table are left out.
    #[arg(long)]
    from: Option<PathBuf>,
}

/// Which images: classes of the reference sample by index, with the names the lab shows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesSpec {
    classes: Vec<usize>,
    names: Vec<String>,
    per_class: usize,
    /// Seed of the draw (labs drawn with other seeds get other images).
    seed: u64,
    /// Seed of the member split (the page's "re-draw members" adds one).
    #[serde(default = "one")]
    split_seed: u64,
}

fn one() -> u64 {
    1
}

/// The spec file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    title: String,
    text: String,
    #[serde(default)]
    questions: Vec<String>,
    /// What a student should find (for the worksheet; not written into the lab).
    #[serde(default)]
    conclusion: String,
    /// Which images (absent with `--from`).
    images: Option<ImagesSpec>,
    /// The starting recipe (with `--from`, the exported lab's unless given).
    recipe: Option<FileSettings>,
}

/// Reference non-members of class `c`, shuffled by `rng`, the first `n` of them.
fn draw(
    reference: &ReferenceSample,
    c: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>> {
    let mut of: Vec<usize> = (0..reference.len())
        .filter(|&i| !reference.is_member[i] && usize::from(reference.labels[i]) == c)
        .collect();
    if of.len() < n {
        return Err(hinted(
            format!("class {c} has {} reference non-members, fewer than per_class = {n}", of.len()),
            "lower per_class in the spec",
        ));
    }
    of.shuffle(rng);
    of.truncate(n);
    Ok(of)
}

/// The images drawn from the bundle's reference non-members, with the page's member split.
fn drawn(im: &ImagesSpec, args: &PrepareLabArgs) -> Result<(Vec<String>, u64, Vec<FileImage>)> {
    if im.classes.len() != im.names.len()
        || !(2..=file::MAX_CLASSES).contains(&im.classes.len())
        || im.per_class < 4
        || im.classes.len() * im.per_class > file::MAX_IMAGES
    {
        return Err(hinted(
            format!(
                "a lab needs 2–{} classes, a name for each, and 4 to {} images in all",
                file::MAX_CLASSES,
                file::MAX_IMAGES
            ),
            "e.g. classes = [3, 5], names = [\"cat\", \"dog\"], per_class = 30",
        ));
    }
    let (_, manifest) = read_manifest(&args.bundle)?;
    let bytes = read_checked(&args.bundle, &manifest.reference.file)?;
    let reference = ReferenceSample::decode(&bytes, manifest.input)?;
    let mut rng = ChaCha8Rng::seed_from_u64(im.seed);
    let mut rows = Vec::new();
    for (k, &c) in im.classes.iter().enumerate() {
        rows.extend(draw(&reference, c, im.per_class, &mut rng)?.into_iter().map(|i| (i, k)));
    }
    let labels: Vec<usize> = rows.iter().map(|&(_, k)| k).collect();
    let member = split_members(&labels, 0.5, im.split_seed)?;
    let images = rows
        .iter()
        .zip(&member)
        .map(|(&(i, k), &m)| FileImage {
            class: k,
            member: m,
            pixels: file::hex(reference.image(i)),
        })
        .collect();
    Ok((im.names.clone(), im.split_seed, images))
}

/// Runs `mia prepare-lab`.
pub fn run(args: PrepareLabArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading {}", args.spec.display()))?;
    let spec: Spec = toml::from_str(&text).map_err(|e| {
        hinted(format!("{}: {e}", args.spec.display()), "see docs/teaching/ for a spec to copy")
    })?;
    let (_, manifest) = read_manifest(&args.bundle)?;
    let input = manifest.input;
    let (classes, split_seed, images, recipe) = match (&args.from, &spec.images) {
        (Some(from), None) => {
            let text = std::fs::read_to_string(from)
                .with_context(|| format!("reading {}", from.display()))?;
            let lab = file::read(&text, input).map_err(|e| {
                hinted(format!("{}: {e}", from.display()), "export the lab again from the page")
            })?;
            let images = lab
                .images
                .iter()
                .map(|(class, member, pixels)| FileImage {
                    class: *class,
                    member: *member,
                    pixels: file::hex(pixels),
                })
                .collect();
            (lab.classes, lab.split_seed, images, spec.recipe.unwrap_or(lab.settings))
        }
        (None, Some(im)) => {
            let recipe = spec.recipe.ok_or_else(|| {
                hinted("the spec has no [recipe]", "copy one from web/labs/overfitting.toml")
            })?;
            let (classes, split_seed, images) = drawn(im, &args)?;
            (classes, split_seed, images, recipe)
        }
        _ => {
            return Err(hinted(
                "give the images either in the spec's [images] or with --from, not both or neither",
                "--from takes a lab exported from the page (\"export the lab\")",
            ));
        }
    };
    let lab = LabFile {
        format: file::FORMAT.into(),
        version: file::VERSION,
        input: [input.channels, input.height, input.width],
        classes,
        split_seed,
        settings: recipe,
        images,
        network: None,
        result: None,
        history: Vec::new(),
        instructions: Some(FileInstructions {
            title: spec.title,
            text: spec.text,
            questions: spec.questions,
        }),
    };
    let json = serde_json::to_string(&lab)?;
    // The page reads it with the same checks as a student's file.
    file::read(&json, input)
        .map_err(|e| hinted(format!("the lab is not valid: {e}"), "fix the spec"))?;
    mia_core::files::write_atomic(&args.out, json.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let (n, c) = (lab.images.len(), lab.classes.len());
    println!("wrote {}: {n} images of {c} classes", args.out.display());
    if !spec.conclusion.is_empty() {
        println!("the worksheet's conclusion: {}", spec.conclusion);
    }
    Ok(())
}
