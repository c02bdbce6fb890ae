//! CIFAR-10 and CIFAR-100, binary version (Krizhevsky 2009). CIFAR-10 records are 3073 bytes
//! (label, 1024 R, 1024 G, 1024 B); CIFAR-100 records are 3074 bytes (coarse label, fine
//! label, pixels) and MIA Lab uses the 100 fine labels. Training files are required; the test
//! file is added to the pool when present (the shared copy here has no `test_batch.bin`).

use std::path::{Path, PathBuf};

use mia_core::{InputSpec, Normalization};

use crate::dataset::read_file;
use crate::{DataError, Dataset, Samples};

/// CIFAR-10 class names (as in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const PIXELS: usize = 3 * 32 * 32;

/// Looks for the batch folder: `dir` itself or the official archive's sub-folder.
fn batch_dir(dir: &Path, sub: &str, probe: &str) -> PathBuf {
    if dir.join(probe).exists() { dir.to_path_buf() } else { dir.join(sub) }
}

/// Parses records of `label_bytes` label bytes (the last one is used) and 3072 pixels.
pub fn parse_records(
    bytes: &[u8],
    label_bytes: usize,
    classes: usize,
    path: &Path,
) -> Result<(Vec<u8>, Vec<u32>), DataError> {
    let rec = label_bytes + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(DataError::corrupt(
            path,
            format!("{} bytes is not a whole number of {rec}-byte records", bytes.len()),
        ));
    }
    let n = bytes.len() / rec;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for r in bytes.chunks_exact(rec) {
        let label = r[label_bytes - 1];
        if usize::from(label) >= classes {
            return Err(DataError::corrupt(path, format!("label {label} out of range")));
        }
        labels.push(u32::from(label));
        pixels.extend_from_slice(&r[label_bytes..]);
    }
    Ok((pixels, labels))
}

fn read_class_names(path: &Path, fallback: Vec<String>) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let names: Vec<String> =
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            if names.len() == fallback.len() { names } else { fallback }
        }
        Err(_) => fallback,
    }
}

fn load_files(
    files: &[PathBuf],
    optional: &[PathBuf],
    label_bytes: usize,
    name: &str,
    class_names: Vec<String>,
    norm: Normalization,
) -> Result<Dataset, DataError> {
    let mut ds = Dataset {
        name: name.to_string(),
        input: InputSpec::new(3, 32, 32),
        class_names,
        samples: Samples::U8(Vec::new()),
        labels: Vec::new(),
        normalization: norm,
    };
    let present = optional.iter().filter(|p| p.exists());
    for path in files.iter().chain(present) {
        let (pixels, labels) =
            parse_records(&read_file(path, name)?, label_bytes, ds.num_classes(), path)?;
        ds.append(Dataset { samples: Samples::U8(pixels), labels, ..ds.clone() });
    }
    let first = files.first().map(PathBuf::as_path).unwrap_or(Path::new("."));
    ds.validate(first)
}

/// Loads CIFAR-10 from `dir` (the `cifar-10-batches-bin` folder or its parent).
pub fn load_cifar10(dir: &Path) -> Result<Dataset, DataError> {
    let d = batch_dir(dir, "cifar-10-batches-bin", "data_batch_1.bin");
    let files: Vec<PathBuf> = (1..=5).map(|i| d.join(format!("data_batch_{i}.bin"))).collect();
    let names = read_class_names(
        &d.join("batches.meta.txt"),
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    );
    load_files(&files, &[d.join("test_batch.bin")], 1, "cifar10", names, Normalization::cifar10())
}

/// Loads CIFAR-100 (fine labels) from `dir` (the `cifar-100-binary` folder or its parent).
pub fn load_cifar100(dir: &Path) -> Result<Dataset, DataError> {
    let d = batch_dir(dir, "cifar-100-binary", "train.bin");
    let names = read_class_names(
        &d.join("fine_label_names.txt"),
        (0..100).map(|i| format!("class_{i}")).collect(),
    );
    load_files(
        &[d.join("train.bin")],
        &[d.join("test.bin")],
        2,
        "cifar100",
        names,
        Normalization::cifar100(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, label_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend(std::iter::repeat_n((i % 10) as u8, label_bytes));
            out.extend((0..PIXELS).map(|p| ((p + i) % 256) as u8));
        }
        out
    }

    #[test]
    fn reads_cifar10_batches_without_a_test_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&dir).unwrap();
        for i in 1..=5 {
            std::fs::write(dir.join(format!("data_batch_{i}.bin")), records(4, 1)).unwrap();
        }
        let ds = load_cifar10(root.path()).unwrap();
        assert_eq!((ds.len(), ds.num_classes()), (20, 10));
        assert_eq!(ds.labels[5], 1);
        assert_eq!(ds.pixels(1).unwrap()[0], 1);
        assert_eq!(ds.class_names[0], "airplane");
        std::fs::write(dir.join("test_batch.bin"), records(3, 1)).unwrap();
        assert_eq!(load_cifar10(&dir).unwrap().len(), 23);
        // Truncated batch.
        let bad = records(4, 1);
        std::fs::write(dir.join("data_batch_3.bin"), &bad[..bad.len() - 1]).unwrap();
        assert!(matches!(load_cifar10(&dir), Err(DataError::Corrupt { .. })));
        std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
        assert!(matches!(load_cifar10(&dir), Err(DataError::Missing { .. })));
    }

    #[test]
    fn reads_cifar100_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut recs = records(3, 2);
        recs[1] = 42; // fine label of record 0
        std::fs::write(dir.path().join("train.bin"), recs).unwrap();
        let ds = load_cifar100(dir.path()).unwrap();
        assert_eq!((ds.len(), ds.num_classes(), ds.labels[0]), (3, 100, 42));
        std::fs::write(dir.path().join("train.bin"), records(3, 1)).unwrap();
        assert!(load_cifar100(dir.path()).is_err());
    }
}
