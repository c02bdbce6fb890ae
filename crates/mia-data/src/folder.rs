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
        // Hidden folders (`.ipynb_checkpoints`, `mia generate`'s `.generator`) are no class.
        .filter(|name| !name.starts_with('.'))
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
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            let chw = decode_image(&bytes, size, grayscale)
                .map_err(|why| DataError::corrupt(&path, format!("not a readable image: {why}")))?;
            pixels.extend(chw);
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

/// Largest width or height of an image MIA Lab decodes.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Most memory one image decode may allocate.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Decodes a PNG or JPEG file's bytes and resizes it to `size × size` (bilinear), as CHW
/// `u8` (RGB, or grayscale). The header's dimensions are checked against [`MAX_IMAGE_SIDE`]
/// and [`MAX_IMAGE_BYTES`] before any pixel buffer is allocated, so a tiny file claiming
/// 20 000 × 20 000 pixels is refused, not decoded.
pub fn decode_image(bytes: &[u8], size: usize, grayscale: bool) -> Result<Vec<u8>, String> {
    if !(1..=1024).contains(&size) {
        return Err(format!("image size {size} must be in 1..=1024"));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image has no pixels".into());
    }
    let img = img.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle);
    if grayscale {
        return Ok(img.to_luma8().into_raw());
    }
    let rgb = img.to_rgb8();
    // HWC → CHW.
    Ok((0..3).flat_map(|c| rgb.as_raw().iter().skip(c).step_by(3).copied()).collect())
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
        std::fs::create_dir(dir.path().join(".hidden")).unwrap();
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
