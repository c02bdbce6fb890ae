//! A small, deterministic SVG plotting kit: axes (linear or log10), lines, step histograms,
//! labelled points and a legend. Output depends only on the input (fixed number formatting,
//! no timestamps), so golden files can pin it. Text uses the bundled DejaVu Sans.

use std::fmt::Write;

/// The font every plot names; [`crate::png`] loads the bundled copy under this name.
pub const FONT: &str = "DejaVu Sans";

/// Colour-blind-safe palette (Okabe–Ito).
pub const PALETTE: [&str; 8] =
    ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

/// An axis scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Linear between the bounds.
    Linear(f64, f64),
    /// Base-10 logarithmic between the (positive) bounds.
    Log(f64, f64),
}

impl Scale {
    /// Position of `v` in `[0, 1]` (clamped).
    fn unit(&self, v: f64) -> f64 {
        let t = match *self {
            Scale::Linear(a, b) => (v - a) / (b - a),
            Scale::Log(a, b) => (v.max(a).log10() - a.log10()) / (b.log10() - a.log10()),
        };
        t.clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            Scale::Linear(a, b) => {
                let step = nice_step((b - a) / 5.0);
                let mut v = (a / step).ceil() * step;
                let mut out = Vec::new();
                while v <= b + step * 1e-9 {
                    out.push((v, fmt_tick(v, step)));
                    v += step;
                }
                out
            }
            Scale::Log(a, b) => {
                let (lo, hi) = (a.log10().ceil() as i32, b.log10().floor() as i32);
                (lo..=hi).map(|e| (10f64.powi(e), fmt_pow(e))).collect()
            }
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.abs().max(1e-12).log10().floor());
    let f = raw / mag;
    mag * if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s == "-0" || s.starts_with("-0.") && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

fn fmt_pow(e: i32) -> String {
    match e {
        0 => "1".into(),
        -1 => "0.1".into(),
        -2 => "0.01".into(),
        _ => format!("1e{e}"),
    }
}

/// Escapes text for SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Gap between a point and its label, in pixels.
const LABEL_GAP: f64 = 8.0;
/// Height of a 12 px label's box.
const LABEL_H: f64 = 14.0;

/// An axis-aligned box in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    fn overlap(&self, o: &Rect) -> f64 {
        let w = self.x1.min(o.x1) - self.x0.max(o.x0);
        let h = self.y1.min(o.y1) - self.y0.max(o.y0);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    /// Area outside `frame`.
    fn outside(&self, frame: &Rect) -> f64 {
        let area = (self.x1 - self.x0) * (self.y1 - self.y0);
        area - self.overlap(frame)
    }
}

/// Estimated width of a 12 px DejaVu Sans label (its glyphs average about 0.6 em).
fn text_width(label: &str) -> f64 {
    label.chars().count() as f64 * 7.2
}

/// Places one label box per point (pixel coordinates, label widths), greedily in order: the
/// first of the positions around the point (right, left, above, below, the diagonals, then the
/// same further out) that overlaps no point, no earlier label and stays inside `frame`; when
/// none is free, the position with the least overlap.
pub fn place_labels(points: &[(f64, f64)], widths: &[f64], frame: Rect) -> Vec<Rect> {
    let dots: Vec<Rect> = points
        .iter()
        .map(|&(x, y)| Rect { x0: x - 5.0, y0: y - 5.0, x1: x + 5.0, y1: y + 5.0 })
        .collect();
    let mut placed: Vec<Rect> = Vec::with_capacity(points.len());
    for (&(x, y), &w) in points.iter().zip(widths) {
        let h = LABEL_H;
        // (cost, box); any candidate beats infinity, so this box is always replaced.
        let mut best = (f64::INFINITY, Rect { x0: x, y0: y, x1: x, y1: y });
        'search: for ring in 0..4 {
            let d = LABEL_GAP + ring as f64 * (h + 2.0);
            let candidates = [
                (x + d, y - h / 2.0),
                (x - d - w, y - h / 2.0),
                (x - w / 2.0, y - d - h),
                (x - w / 2.0, y + d),
                (x + d * 0.7, y - d * 0.7 - h),
                (x + d * 0.7, y + d * 0.7),
                (x - d * 0.7 - w, y - d * 0.7 - h),
                (x - d * 0.7 - w, y + d * 0.7),
            ];
            for (x0, y0) in candidates {
                let r = Rect { x0, y0, x1: x0 + w, y1: y0 + h };
                let cost = r.outside(&frame) * 4.0
                    + dots.iter().chain(&placed).map(|o| r.overlap(o)).sum::<f64>()
                    + ring as f64 * 0.5;
                if cost < best.0 {
                    best = (cost, r);
                }
                if cost <= ring as f64 * 0.5 {
                    break 'search;
                }
            }
        }
        placed.push(best.1);
    }
    placed
}

/// One plot under construction.
pub struct Plot {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: Scale,
    y: Scale,
    body: String,
    legend: Vec<(String, String, bool)>,
    /// Put the legend in the lower right corner (empty on ROC plots) instead of the upper.
    pub legend_bottom: bool,
}

impl Plot {
    /// A `width × height` plot with a title and axis labels.
    pub fn new(title: &str, x_label: &str, y_label: &str, x: Scale, y: Scale) -> Self {
        let mut p = Plot {
            width: 640.0,
            height: 420.0,
            left: 64.0,
            right: 16.0,
            top: 36.0,
            bottom: 52.0,
            x,
            y,
            body: String::new(),
            legend: Vec::new(),
            legend_bottom: false,
        };
        p.axes(title, x_label, y_label);
        p
    }

    fn px(&self, v: f64) -> f64 {
        self.left + self.x.unit(v) * (self.width - self.left - self.right)
    }

    fn py(&self, v: f64) -> f64 {
        self.height - self.bottom - self.y.unit(v) * (self.height - self.top - self.bottom)
    }

    fn axes(&mut self, title: &str, x_label: &str, y_label: &str) {
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.height - self.bottom, self.top);
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<rect x="{x0}" y="{y1}" width="{:.1}" height="{:.1}" fill="#fff" stroke="#333"/>"##,
            x1 - x0,
            y0 - y1
        );
        for (v, label) in self.x.ticks() {
            let x = self.px(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{y0}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
                y0 + 16.0,
                escape(&label)
            );
        }
        for (v, label) in self.y.ticks() {
            let y = self.py(v);
            let _ = write!(
                s,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12">{}</text>"##,
                x0 - 6.0,
                y + 4.0,
                escape(&label)
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text><text x="16" y="{:.1}" text-anchor="middle" font-size="13" transform="rotate(-90 16 {:.1})">{}</text>"##,
            self.width / 2.0,
            escape(title),
            (x0 + x1) / 2.0,
            self.height - 12.0,
            escape(x_label),
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            escape(y_label)
        );
        self.body.push_str(&s);
    }

    /// A polyline through `points`, optionally dashed, with a legend entry.
    pub fn line(&mut self, points: &[(f64, f64)], color: &str, label: Option<&str>, dashed: bool) {
        if points.is_empty() {
            return;
        }
        // Points closer than half a pixel to the last one drawn add nothing but bytes.
        let mut d = String::new();
        let mut last: Option<(f64, f64)> = None;
        for (i, &(x, y)) in points.iter().enumerate() {
            let (px, py) = (self.px(x), self.py(y));
            let close = last.is_some_and(|(lx, ly)| (px - lx).abs() < 0.5 && (py - ly).abs() < 0.5);
            if close && i + 1 < points.len() {
                continue;
            }
            let _ = write!(d, "{}{px:.1},{py:.1}", if last.is_none() { "M" } else { "L" });
            last = Some((px, py));
        }
        let dash = if dashed { r#" stroke-dasharray="5,4""# } else { "" };
        let _ = write!(
            self.body,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>"#
        );
        if let Some(l) = label {
            self.legend.push((l.to_string(), color.to_string(), dashed));
        }
    }

    /// A filled step histogram of `counts` over equal bins from `lo` to `hi`.
    pub fn histogram(&mut self, lo: f64, hi: f64, density: &[f64], color: &str, label: &str) {
        let w = (hi - lo) / density.len().max(1) as f64;
        let mut pts = vec![(lo, 0.0)];
        for (i, &d) in density.iter().enumerate() {
            pts.push((lo + i as f64 * w, d));
            pts.push((lo + (i + 1) as f64 * w, d));
        }
        pts.push((hi, 0.0));
        let mut d = String::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            let _ =
                write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, self.px(x), self.py(y));
        }
        let _ = write!(
            self.body,
            r#"<path d="{d}Z" fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-width="1.5"/>"#
        );
        self.legend.push((label.to_string(), color.to_string(), false));
    }

    /// Labelled points: each label goes where it overlaps no other label, point or the frame
    /// edge (see [`place_labels`]); a label pushed away from its point gets a leader line. The
    /// first eight points are dots, the rest squares (the palette's colours repeat after eight).
    /// `points` are `(x, y, colour, label)` in data units.
    pub fn labelled_points(&mut self, points: &[(f64, f64, &str, &str)]) {
        let px: Vec<(f64, f64)> = points.iter().map(|p| (self.px(p.0), self.py(p.1))).collect();
        let widths: Vec<f64> = points.iter().map(|p| text_width(p.3)).collect();
        let frame = Rect {
            x0: self.left,
            y0: self.top,
            x1: self.width - self.right,
            y1: self.height - self.bottom,
        };
        let boxes = place_labels(&px, &widths, frame);
        for (i, ((&(cx, cy), p), b)) in px.iter().zip(points).zip(&boxes).enumerate() {
            let (bx, by) = ((cx).clamp(b.x0, b.x1), (cy).clamp(b.y0, b.y1));
            if (bx - cx).hypot(by - cy) > LABEL_GAP + 4.0 {
                let _ = write!(
                    self.body,
                    r##"<line x1="{cx:.1}" y1="{cy:.1}" x2="{bx:.1}" y2="{by:.1}" stroke="#999" stroke-width="1"/>"##
                );
            }
            // Past the palette's eight colours, squares tell a repeated colour apart.
            let marker = if i < PALETTE.len() {
                format!(r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="5" fill="{}"/>"#, p.2)
            } else {
                format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{}"/>"#,
                    cx - 4.5,
                    cy - 4.5,
                    p.2
                )
            };
            let _ = write!(
                self.body,
                r#"{marker}<text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
                b.x0,
                b.y1 - 3.0,
                escape(p.3)
            );
        }
    }

    /// The finished SVG document.
    pub fn finish(mut self) -> String {
        let rows = self.legend.len() as f64 * 18.0 + 6.0;
        let top = if self.legend_bottom {
            self.height - self.bottom - 10.0 - rows
        } else {
            self.top + 10.0
        };
        let (lx, mut ly) = (self.width - self.right - 8.0, top);
        let widest = self.legend.iter().map(|(l, ..)| l.chars().count()).max().unwrap_or(0) as f64;
        if !self.legend.is_empty() {
            let box_w = widest * 7.0 + 40.0;
            let _ = write!(
                self.body,
                r##"<rect x="{:.1}" y="{:.1}" width="{box_w:.1}" height="{:.1}" fill="#fff" fill-opacity="0.85" stroke="#999"/>"##,
                lx - box_w,
                ly - 4.0,
                self.legend.len() as f64 * 18.0 + 6.0
            );
            for (label, color, dashed) in std::mem::take(&mut self.legend) {
                let dash = if dashed { r#" stroke-dasharray="5,4""# } else { "" };
                let _ = write!(
                    self.body,
                    r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
                    lx - box_w + 6.0,
                    ly + 8.0,
                    lx - box_w + 26.0,
                    ly + 8.0,
                    lx - box_w + 32.0,
                    ly + 12.0,
                    escape(&label)
                );
                ly += 18.0;
            }
        }
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}, sans-serif">{}</svg>
"#,
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        let t: Vec<String> = Scale::Linear(0.0, 1.0).ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t: Vec<String> = Scale::Log(1e-4, 1.0).ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["1e-4", "1e-3", "0.01", "0.1", "1"]);
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn close_points_get_labels_that_do_not_overlap() {
        let frame = Rect { x0: 64.0, y0: 36.0, x1: 624.0, y1: 368.0 };
        // Three points within a few pixels (as HAMP naive/adaptive and AdvReg were), one at the
        // right edge, one in a corner.
        let pts = [(420.0, 200.0), (424.0, 201.0), (540.0, 199.0), (620.0, 100.0), (66.0, 366.0)];
        let widths = [180.0, 180.0, 50.0, 40.0, 60.0];
        let boxes = place_labels(&pts, &widths, frame);
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.outside(&frame) == 0.0, "label {i} leaves the frame: {a:?}");
            for (j, b) in boxes.iter().enumerate().skip(i + 1) {
                assert!(a.overlap(b) == 0.0, "labels {i} and {j} overlap: {a:?} {b:?}");
            }
            for (j, &(x, y)) in pts.iter().enumerate() {
                let dot = Rect { x0: x - 5.0, y0: y - 5.0, x1: x + 5.0, y1: y + 5.0 };
                assert!(a.overlap(&dot) == 0.0, "label {i} covers point {j}");
            }
        }
        // Past eight points the markers turn square, so a repeated colour is told apart.
        let mut p = Plot::new("t", "x", "y", Scale::Linear(0.0, 1.0), Scale::Linear(0.0, 1.0));
        let pts: Vec<(f64, f64, &str, &str)> = (0..10)
            .map(|i| (0.5 + i as f64 / 500.0, 0.5, PALETTE[i % 8], "a long label"))
            .collect();
        p.labelled_points(&pts);
        let svg = p.finish();
        assert_eq!(svg.matches("<circle").count(), 8);
        assert_eq!(svg.matches(r#"width="9" height="9""#).count(), 2);
        // Ten points a pixel apart crowd their labels: the ones pushed away get leader lines, a
        // lone point's label sits beside it without one.
        assert!(svg.contains(r##"stroke="#999" stroke-width="1""##), "no leader line");
        let mut p = Plot::new("t", "x", "y", Scale::Linear(0.0, 1.0), Scale::Linear(0.0, 1.0));
        p.labelled_points(&[(0.5, 0.5, PALETTE[0], "lone")]);
        assert!(!p.finish().contains(r##"stroke="#999" stroke-width="1""##));
        // A lone point keeps its label on the right.
        let lone = place_labels(&[(300.0, 200.0)], &[50.0], frame);
        assert_eq!(lone[0].x0, 308.0);
    }
}
