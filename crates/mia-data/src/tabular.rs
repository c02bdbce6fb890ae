//! Tabular data (Purchase-100 / Texas-100 style): a CSV file of numeric features and one
//! integer class label per row. The label column is `label` when the header has one, else the
//! last column; a header row is detected when its cells are not all numbers. Labels must be
//! `0..C`.

use std::path::Path;

use mia_core::{InputSpec, Normalization};

use crate::{DataError, Dataset, Samples};

/// Most classes a CSV dataset may have (Purchase-100 and Texas-100 have 100).
pub const MAX_CLASSES: usize = 10_000;

/// Loads a CSV dataset.
pub fn load(path: &Path, label_column: Option<&str>) -> Result<Dataset, DataError> {
    let text = crate::dataset::read_file(path, "csv")?;
    parse(&text, path, label_column)
}

/// Parses CSV bytes (`path` names the file in errors).
pub fn parse(text: &[u8], path: &Path, label_column: Option<&str>) -> Result<Dataset, DataError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(false).from_reader(text);
    let mut rows = reader.records();
    let first = match rows.next() {
        Some(r) => r.map_err(|e| DataError::corrupt(path, e.to_string()))?,
        None => return Err(DataError::corrupt(path, "the file is empty")),
    };
    let is_header = first.iter().any(|c| c.trim().parse::<f64>().is_err());
    let width = first.len();
    if width < 2 {
        return Err(DataError::corrupt(path, "needs at least one feature column and a label"));
    }
    let label_idx = match (is_header, label_column) {
        (true, Some(name)) => first.iter().position(|c| c.trim() == name).ok_or_else(|| {
            DataError::Invalid(format!("no column named `{name}` in {}", path.display()))
        })?,
        (false, Some(name)) => {
            return Err(DataError::Invalid(format!(
                "--label-column {name} given but the CSV has no header"
            )));
        }
        (true, None) => first.iter().position(|c| c.trim() == "label").unwrap_or(width - 1),
        (false, None) => width - 1,
    };
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    let body = if is_header { None } else { Some(Ok(first)) };
    for (line, row) in body.into_iter().chain(rows).enumerate() {
        let row = row.map_err(|e| DataError::corrupt(path, e.to_string()))?;
        for (i, cell) in row.iter().enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                DataError::corrupt(path, format!("row {}: `{cell}` is not a number", line + 1))
            })?;
            if i == label_idx {
                if v < 0.0 || v.fract() != 0.0 {
                    return Err(DataError::corrupt(
                        path,
                        format!("row {}: label {v} is not a class index", line + 1),
                    ));
                }
                labels.push(v as u32);
            } else {
                features.push(v as f32);
            }
        }
    }
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    if classes < 2 {
        return Err(DataError::corrupt(path, "needs at least two classes"));
    }
    // Labels name classes 0..C: one label of 4e9 would otherwise make 4e9 class names.
    if classes > MAX_CLASSES {
        return Err(DataError::corrupt(
            path,
            format!("label {} is past the {MAX_CLASSES} classes MIA Lab supports", classes - 1),
        ));
    }
    Dataset {
        name: format!("csv:{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()),
        input: InputSpec::new(1, 1, width - 1),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        samples: Samples::F32(features),
        labels,
        normalization: Normalization::identity(),
    }
    .validate(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_and_headerless_files_and_rejects_bad_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("purchase.csv");
        std::fs::write(&p, "label,f1,f2\n1,0,1\n0,1,1\n2,0.5,0\n").unwrap();
        let ds = load(&p, None).unwrap();
        assert_eq!((ds.len(), ds.input.width, ds.num_classes()), (3, 2, 3));
        assert_eq!(ds.labels, vec![1, 0, 2]);
        assert_eq!(ds.samples, Samples::F32(vec![0.0, 1.0, 1.0, 1.0, 0.5, 0.0]));
        std::fs::write(&p, "0,1,1\n1,0,0\n").unwrap();
        assert_eq!(load(&p, None).unwrap().labels, vec![1, 0]);
        std::fs::write(&p, "0,1,1\n1,x,0\n").unwrap();
        assert!(matches!(load(&p, None), Err(DataError::Corrupt { .. })));
        std::fs::write(&p, "0,1,1\n1,0\n").unwrap();
        assert!(load(&p, None).is_err());
        std::fs::write(&p, "").unwrap();
        assert!(load(&p, None).is_err());
        // Found by the fuzzer: a huge label made billions of class names.
        std::fs::write(&p, "0,1,1\n1,0,4000000000\n").unwrap();
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("classes MIA Lab supports"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(load(&p, None).is_err());
    }
}
