//! `mia index`: adds to a bundle the index of its models' training images
//! (`members.index.bin`, see `mia_core::recognise`), so the page recognises a member among a
//! student's uploads instead of calling it unseen. `mia export` writes the index itself; this
//! command serves bundles exported before it did, whose runs may be gone: the split is then
//! drawn again from the seed and member count the runs were trained with, and checked against
//! the bundle's reference sample. `--check N` measures how well uploads are recognised.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use mia_core::InputSpec;
use mia_core::bundle::{FileRef, Manifest, MembersIndexEntry, ReferenceSample};
use mia_core::layout::RunLayout;
use mia_core::recognise::{BLOCK, MATCH_DISTANCE, MembersIndex};
use mia_data::split::SplitSizes;
use mia_data::{Dataset, LoadOptions};
use mia_data::{DatasetKind, Split};
use rayon::prelude::*;

use super::{hinted, read_checked, read_manifest};

/// The index's file name in a bundle.
pub const INDEX_FILE: &str = "members.index.bin";

/// Arguments of `mia index`.
#[derive(Args)]
pub struct IndexArgs {
    /// The bundle folder (written by `mia export`).
    #[arg(long)]
    bundle: PathBuf,
    /// The dataset folder the bundle's models were trained on.
    #[arg(long)]
    data_dir: PathBuf,
    /// A run of the bundle: its split.json names the members.
    #[arg(long, conflicts_with_all = ["members", "seed"], required_unless_present = "members")]
    run: Option<PathBuf>,
    /// Without the runs: the members the models were trained on, drawn again as
    /// `mia train --members N --seed S` drew them.
    #[arg(long, requires = "seed")]
    members: Option<usize>,
    /// The seed of that split.
    #[arg(long)]
    seed: Option<u64>,
    /// Also measure recognition: N members re-encoded as 1024 × 1024 JPEG and resized back,
    /// and every image of the dataset that is not a member.
    #[arg(long, default_value_t = 0)]
    check: usize,
}

/// Runs `mia index`.
pub fn run(args: IndexArgs) -> Result<()> {
    let dir = &args.bundle;
    let (path, mut manifest) = read_manifest(dir)?;
    let kind: DatasetKind = manifest.dataset.parse()?;
    // A folder dataset is read at the bundle's size and colour, as it was for training.
    let options = LoadOptions {
        image_size: manifest.input.height,
        grayscale: manifest.input.channels == 1,
        ..LoadOptions::default()
    };
    let ds = kind.load(&args.data_dir, &options)?;
    if ds.input != manifest.input {
        return Err(hinted(
            format!(
                "the dataset's images are {}, the bundle's model takes {}",
                ds.input, manifest.input
            ),
            "pass the --data-dir the bundle's models were trained on",
        ));
    }
    if !hashable(ds.input) {
        return Err(hinted(
            format!("{} images are too small to hash (at least {BLOCK} × {BLOCK})", ds.input),
            "the page then says it cannot tell whether an upload was trained on",
        ));
    }
    let members = match (&args.run, args.members, args.seed) {
        (Some(run), _, _) => Split::load(&RunLayout::new(run).split())?.members,
        (None, Some(n), Some(seed)) => {
            // Members are the permutation's first draws: the other parts' sizes do not move them.
            let sizes =
                SplitSizes { members: n, non_members: Some(0), test: Some(1), validation: 0 };
            Split::draw(&ds.name, ds.len(), sizes, seed)?.members
        }
        _ => return Err(hinted("no split given", "pass --run, or --members and --seed")),
    };
    let index = build(&ds, &members)?;
    if args.check > 0 {
        check(&ds, &members, &index, args.check)?;
    }
    let reference = read_reference(dir, &manifest)?;
    let copies = agrees_with_reference(&index, &reference)?;
    let bytes = index.encode();
    mia_core::files::write_atomic(&dir.join(INDEX_FILE), &bytes)?;
    manifest.members_index = Some(MembersIndexEntry {
        file: FileRef::describe(INDEX_FILE, &bytes),
        members: index.len(),
    });
    let text = serde_json::to_string_pretty(&manifest)?;
    Manifest::parse(&text)?;
    mia_core::files::write_atomic(&path, text.as_bytes())?;
    println!(
        "wrote {INDEX_FILE}: {} members, {} bytes; the reference sample's {} members are in it; \
         {copies} of its {} non-members match a member (the same photo: datasets hold \
         near-duplicates)",
        index.len(),
        bytes.len(),
        manifest.reference.members,
        manifest.reference.non_members
    );
    Ok(())
}

/// Whether images of `input` can be hashed (RGB or grayscale, at least the hash's block).
pub fn hashable(input: InputSpec) -> bool {
    matches!(input.channels, 1 | 3) && input.height >= BLOCK && input.width >= BLOCK
}

/// The index of `members` (dataset positions) of `ds`.
pub fn build(ds: &Dataset, members: &[usize]) -> Result<MembersIndex> {
    let mut pixels = Vec::with_capacity(members.len() * ds.input.numel());
    let mut labels = Vec::with_capacity(members.len());
    for &i in members {
        pixels.extend_from_slice(ds.pixels(i).ok_or_else(|| {
            hinted("an index needs image data", "index an image dataset (CIFAR-10, MNIST, …)")
        })?);
        labels.push(u8::try_from(ds.labels[i]).context("a label does not fit in a byte")?);
    }
    Ok(MembersIndex::build(&pixels, &labels, ds.input)?)
}

fn read_reference(dir: &Path, manifest: &Manifest) -> Result<ReferenceSample> {
    let bytes = read_checked(dir, &manifest.reference.file)?;
    Ok(ReferenceSample::decode(&bytes, manifest.input)?)
}

/// Every reference member must be found exactly, with its label: else the split is not the
/// bundle's. Returns how many reference non-members the index matches (copies of a member:
/// CIFAR-10 holds near-duplicate photos).
fn agrees_with_reference(index: &MembersIndex, reference: &ReferenceSample) -> Result<usize> {
    let (mut missing, mut copies) = (0usize, 0usize);
    for i in 0..reference.len() {
        let found = index.find(reference.image(i), reference.input)?;
        if reference.is_member[i] {
            let exact = found.is_some_and(|m| m.distance == 0 && m.label == reference.labels[i]);
            missing += usize::from(!exact);
        } else {
            copies += usize::from(found.is_some());
        }
    }
    if missing > 0 {
        return Err(hinted(
            format!(
                "this split does not match the bundle: {missing} of its {} reference members are \
                 not among the split's members",
                reference.is_member.iter().filter(|&&m| m).count()
            ),
            "pass the --run the bundle was exported from, or the --members and --seed its \
             models were trained with, and the same dataset folder",
        ));
    }
    Ok(copies)
}

/// Prints how many of `n` members survive a 1024 × 1024 JPEG round trip, and which of the
/// dataset's other images are taken for members (dataset positions, to look at), with the
/// distances behind both.
fn check(ds: &Dataset, members: &[usize], index: &MembersIndex, n: usize) -> Result<()> {
    let step = (members.len() / n.min(members.len())).max(1);
    let sample: Vec<(usize, usize)> =
        members.iter().copied().enumerate().step_by(step).take(n).collect();
    let jpeg = sample
        .par_iter()
        .map(|&(pos, i)| {
            let img = reencode(ds.pixels(i).unwrap_or_default(), ds.input)?;
            let found = index.find(&img, ds.input)?;
            Ok(found.filter(|m| m.position == pos).map(|m| m.distance))
        })
        .collect::<Result<Vec<_>>>()?;
    let hit: Vec<u32> = jpeg.iter().flatten().copied().collect();
    println!(
        "JPEG 1024 × 1024 (quality 75) and back: {} of {} members recognised; distances (bits: \
         count) {} (a match is ≤ {MATCH_DISTANCE})",
        hit.len(),
        jpeg.len(),
        histogram(&hit)
    );
    let mut is_member = vec![false; ds.len()];
    members.iter().for_each(|&i| is_member[i] = true);
    let others: Vec<usize> = (0..ds.len()).filter(|&i| !is_member[i]).collect();
    let nearest = others
        .par_iter()
        .map(|&i| index.nearest(ds.pixels(i).unwrap_or_default(), ds.input))
        .collect::<Result<Vec<_>, _>>()?;
    let distances: Vec<u32> = nearest.iter().flatten().map(|m| m.distance).collect();
    let near: Vec<u32> = distances.iter().copied().filter(|&d| d <= 2 * MATCH_DISTANCE).collect();
    println!(
        "non-members taken for members: {} of {}; nearest member at (bits: count) {} …",
        distances.iter().filter(|&&d| d <= MATCH_DISTANCE).count(),
        others.len(),
        histogram(&near)
    );
    for (&i, m) in others.iter().zip(&nearest) {
        if let Some(m) = m.filter(|m| m.distance <= MATCH_DISTANCE) {
            let how = if m.mirrored { ", mirrored" } else { "" };
            println!(
                "  non-member {i} ~ member {} ({} bits{how})",
                members[m.position], m.distance
            );
        }
    }
    Ok(())
}

/// `bits: count` pairs in increasing order of bits.
fn histogram(d: &[u32]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    d.iter().for_each(|&x| *counts.entry(x).or_insert(0usize) += 1);
    counts.iter().map(|(b, c)| format!("{b}: {c}")).collect::<Vec<_>>().join(", ")
}

/// An image upscaled to 1024 × 1024, saved as JPEG (quality 75), decoded and resized back to
/// the model's input, as a student's copy reaches the page.
fn reencode(chw: &[u8], input: InputSpec) -> Result<Vec<u8>> {
    let (h, w) = (input.height as u32, input.width as u32);
    let plane = (h * w) as usize;
    let rgb = RgbImage::from_fn(w, h, |x, y| {
        let p = (y * w + x) as usize;
        let c = |k: usize| chw[if input.channels == 1 { p } else { k * plane + p }];
        image::Rgb([c(0), c(1), c(2)])
    });
    let big = image::imageops::resize(&rgb, 1024, 1024, FilterType::CatmullRom);
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 75).encode_image(&big)?;
    let back = image::load_from_memory(&bytes)?;
    let small = DynamicImage::ImageRgb8(back.to_rgb8()).resize_exact(w, h, FilterType::Triangle);
    let small = small.to_rgb8();
    let mut out = vec![0u8; input.numel()];
    for (x, y, p) in small.enumerate_pixels() {
        let at = (y * w + x) as usize;
        if input.channels == 1 {
            out[at] = (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                .round() as u8;
        } else {
            (0..3).for_each(|k| out[k * plane + at] = p[k]);
        }
    }
    Ok(out)
}
