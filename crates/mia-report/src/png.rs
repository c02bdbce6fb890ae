//! SVG → PNG with resvg, using only the bundled DejaVu Sans (no system fonts are consulted),
//! so plots look the same on every machine and render where no font is installed.

use std::sync::Arc;

use resvg::{tiny_skia, usvg};

use crate::ReportError;

/// The bundled font (DejaVu Sans; license in `assets/DejaVuSans-LICENSE.txt`).
pub const FONT_DATA: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Renders an SVG document to PNG bytes at `scale`.
pub fn render(svg: &str, scale: f32) -> Result<Vec<u8>, ReportError> {
    let mut options = usvg::Options::default();
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(FONT_DATA.to_vec());
    db.set_sans_serif_family(crate::svg::FONT);
    options.fontdb = Arc::new(db);
    let tree =
        usvg::Tree::from_str(svg, &options).map_err(|e| ReportError::Render(e.to_string()))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| ReportError::Render("empty image".into()))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| ReportError::Render("image too large".into()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| ReportError::Render(e.to_string()))
}
