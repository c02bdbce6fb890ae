//! Users' own images: a folder with one sub-folder per class (sorted by name), holding PNG or
//! JPEG files. Every image is resized to `size × size` (bilinear) and kept as RGB or grayscale.

use std::path::Path;

use mia_core::{InputSpec, Normalization};

use crate::{DataError, Dataset, Samples};

/// Loads an image-folder dataset.
pub fn load(dir: &Path, size: usize, grayscale: bool) -> Result<Dataset, DataError> {
    if !(1..=1024).contains(&size) {
        return Err(DataError::Invalid(format!("image size {size} must be in 1..=1024")));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            path: dir.to_path_buf(),
            hint: "pass a folder with one sub-folder of images per class".into(),
        },
        _ => DataError::io(dir, e),
    })?;
    let mut classes: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.len() < 2 {
        return Err(DataError::corrupt(dir, "needs at least two class sub-folders"));
    }
    let channels = if grayscale { 1 } else { 3 };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (label, class) in classes.iter().enumerate() {
        let cdir = dir.join(class);
        let mut files: Vec<_> = std::fs::read_dir(&cdir)
            .map_err(|e| DataError::io(&cdir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        for path in files {
            let img = image::open(&path)
                .map_err(|e| DataError::corrupt(&path, format!("not a readable image: {e}")))?;
            let img =
                img.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle);
            if grayscale {
                pixels.extend_from_slice(img.to_luma8().as_raw());
            } else {
                let rgb = img.to_rgb8();
                // HWC → CHW.
                for c in 0..3 {
                    pixels.extend(rgb.as_raw().iter().skip(c).step_by(3));
                }
            }
            labels.push(label as u32);
        }
    }
    if labels.is_empty() {
        return Err(DataError::corrupt(dir, "no PNG or JPEG images found in the class folders"));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Dataset {
        name: format!("folder:{name}"),
        input: InputSpec::new(channels, size, size),
        class_names: classes,
        samples: Samples::U8(pixels),
        labels,
        normalization: Normalization::symmetric(channels),
    }
    .validate(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_classes_resizes_and_rejects_bad_images() {
        let dir = tempfile::tempdir().unwrap();
        for (c, colour) in [("cat", [255u8, 0, 0]), ("dog", [0, 0, 255])] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
            let img = image::RgbImage::from_pixel(10, 6, image::Rgb(colour));
            img.save(dir.path().join(c).join("a.png")).unwrap();
            img.save(dir.path().join(c).join("b.jpg")).unwrap();
        }
        let ds = load(dir.path(), 8, false).unwrap();
        assert_eq!(
            (ds.len(), ds.input, ds.class_names.clone()),
            (4, InputSpec::new(3, 8, 8), vec!["cat".to_string(), "dog".into()])
        );
        // CHW: first plane of a red cat image is all 255, the blue plane 0.
        let p = ds.pixels(0).unwrap();
        assert_eq!((p[0], p[64 * 2]), (255, 0));
        assert_eq!(load(dir.path(), 8, true).unwrap().input.channels, 1);
        std::fs::write(dir.path().join("dog").join("c.png"), b"not a png").unwrap();
        assert!(matches!(load(dir.path(), 8, false), Err(DataError::Corrupt { .. })));
    }
}
