//! MNIST and Fashion-MNIST in the IDX format (LeCun et al.): big-endian headers, magic 2051
//! for `u8` images (count, rows, cols) and 2049 for `u8` labels. Files may be gzip-compressed
//! (`.gz`, as distributed) or raw.

use std::io::Read;
use std::path::{Path, PathBuf};

use mia_core::{InputSpec, Normalization};

use crate::dataset::read_file;
use crate::{DataError, Dataset, Samples};

/// MNIST class names.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/// Fashion-MNIST class names.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Finds `stem` or `stem.gz` in `dir`; prefers the compressed official file.
fn locate(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.exists() { gz } else { dir.join(stem) }
}

/// Reads a possibly gzip-compressed file.
fn read_maybe_gz(path: &Path, dataset: &str) -> Result<Vec<u8>, DataError> {
    decompress(read_file(path, dataset)?, path)
}

/// Most bytes a gzip stream may expand to (the largest official IDX file is 47 MB raw), so a
/// small "gzip bomb" cannot exhaust memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Decompresses gzip data (`\x1f\x8b` magic); other bytes pass through unchanged.
pub fn decompress(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    decompress_at_most(raw, path, MAX_DECOMPRESSED)
}

/// [`decompress`] with the expansion capped at `cap` bytes (stops reading past it).
fn decompress_at_most(raw: Vec<u8>, path: &Path, cap: u64) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::corrupt(path, format!("bad gzip stream: {e}")))?;
    if out.len() as u64 > cap {
        return Err(DataError::corrupt(path, format!("decompresses to more than {cap} bytes")));
    }
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file: returns (count, rows, cols, pixels).
pub fn parse_images(
    bytes: &[u8],
    path: &Path,
) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    if bytes.len() < 16 || be_u32(bytes, 0) != 2051 {
        return Err(DataError::corrupt(path, "not an IDX image file (magic 2051)"));
    }
    let (n, r, c) =
        (be_u32(bytes, 4) as usize, be_u32(bytes, 8) as usize, be_u32(bytes, 12) as usize);
    let need = n.checked_mul(r * c).ok_or_else(|| DataError::corrupt(path, "absurd header"))?;
    if bytes.len() - 16 < need {
        return Err(DataError::corrupt(
            path,
            format!(
                "header promises {n} images of {r}x{c} but only {} bytes follow",
                bytes.len() - 16
            ),
        ));
    }
    Ok((n, r, c, bytes[16..16 + need].to_vec()))
}

/// Parses an IDX label file.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 8 || be_u32(bytes, 0) != 2049 {
        return Err(DataError::corrupt(path, "not an IDX label file (magic 2049)"));
    }
    let n = be_u32(bytes, 4) as usize;
    let body = &bytes[8..];
    if body.len() < n {
        return Err(DataError::corrupt(
            path,
            format!("header promises {n} labels, {} present", body.len()),
        ));
    }
    Ok(body[..n].iter().map(|&b| u32::from(b)).collect())
}

fn load_pair(
    dir: &Path,
    prefix: &str,
    name: &str,
) -> Result<(usize, usize, Vec<u8>, Vec<u32>), DataError> {
    let img_path = locate(dir, &format!("{prefix}-images-idx3-ubyte"));
    let lbl_path = locate(dir, &format!("{prefix}-labels-idx1-ubyte"));
    let (n, r, c, pixels) = parse_images(&read_maybe_gz(&img_path, name)?, &img_path)?;
    let labels = parse_labels(&read_maybe_gz(&lbl_path, name)?, &lbl_path)?;
    if labels.len() != n {
        return Err(DataError::corrupt(
            &lbl_path,
            format!("{} labels for {n} images", labels.len()),
        ));
    }
    Ok((r, c, pixels, labels))
}

/// Loads `train-*` (required) and `t10k-*` (if present) from `dir` into one pool.
pub fn load(
    dir: &Path,
    name: &str,
    classes: [&str; 10],
    norm: Normalization,
) -> Result<Dataset, DataError> {
    let (r, c, pixels, labels) = load_pair(dir, "train", name)?;
    let mut ds = Dataset {
        name: name.to_string(),
        input: InputSpec::new(1, r, c),
        class_names: classes.iter().map(|s| s.to_string()).collect(),
        samples: Samples::U8(pixels),
        labels,
        normalization: norm,
    };
    if locate(dir, "t10k-images-idx3-ubyte").exists() {
        let (tr, tc, pixels, labels) = load_pair(dir, "t10k", name)?;
        if (tr, tc) != (r, c) {
            return Err(DataError::corrupt(dir, "train and test images differ in size"));
        }
        let test = Dataset { samples: Samples::U8(pixels), labels, ..ds.clone() };
        ds.append(test);
    }
    ds.validate(dir)
}

/// Encodes images and labels as IDX bytes (used by tests and tools that write datasets).
pub fn encode(images: &[u8], labels: &[u8], rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let n = labels.len() as u32;
    let mut img = Vec::new();
    for v in [2051, n, rows as u32, cols as u32] {
        img.extend_from_slice(&v.to_be_bytes());
    }
    img.extend_from_slice(images);
    let mut lbl = Vec::new();
    for v in [2049, n] {
        lbl.extend_from_slice(&v.to_be_bytes());
    }
    lbl.extend_from_slice(labels);
    (img, lbl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn write_set(dir: &Path, prefix: &str, n: usize, compress: bool) {
        let images: Vec<u8> = (0..n * 4 * 4).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let (img, lbl) = encode(&images, &labels, 4, 4);
        let (img, lbl, ext) = if compress { (gz(&img), gz(&lbl), ".gz") } else { (img, lbl, "") };
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), img).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), lbl).unwrap();
    }

    #[test]
    fn reads_gz_train_and_raw_test_into_one_pool() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), "train", 20, true);
        write_set(dir.path(), "t10k", 5, false);
        let ds = load(dir.path(), "mnist", MNIST_CLASSES, Normalization::mnist()).unwrap();
        assert_eq!((ds.len(), ds.input), (25, InputSpec::new(1, 4, 4)));
        assert_eq!(ds.labels[21], 1);
        assert_eq!(ds.pixels(1).unwrap()[0], 16);
    }

    #[test]
    fn a_gzip_stream_expanding_past_the_cap_is_refused() {
        // 1 MiB of zeros compresses to a few KiB: a small "bomb" against a 64 KiB cap.
        let bomb = gz(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 16 << 10, "{} bytes", bomb.len());
        let e = decompress_at_most(bomb.clone(), Path::new("x.gz"), 1 << 16).unwrap_err();
        assert!(e.to_string().contains("more than 65536 bytes"), "{e}");
        assert_eq!(decompress_at_most(bomb, Path::new("x.gz"), 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn truncated_missing_and_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let load_it = || load(dir.path(), "mnist", MNIST_CLASSES, Normalization::mnist());
        assert!(matches!(load_it(), Err(DataError::Missing { .. })));
        write_set(dir.path(), "train", 20, false);
        let p = dir.path().join("train-images-idx3-ubyte");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(load_it(), Err(DataError::Corrupt { .. })));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(load_it(), Err(DataError::Corrupt { .. })));
        // A broken gzip stream.
        std::fs::remove_file(&p).unwrap();
        let good = gz(&bytes);
        std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), &good[..good.len() / 2])
            .unwrap();
        assert!(matches!(load_it(), Err(DataError::Corrupt { .. })));
    }
}
