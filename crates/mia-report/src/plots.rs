//! The report's plots, as pure functions from results to SVG text: member vs non-member score
//! histograms, ROC curves on linear and log-log axes, and the privacy-utility scatter.

use mia_core::metrics::Roc;

use crate::svg::{PALETTE, Plot, Scale};

/// Member and non-member score histograms (densities over 40 shared bins, 1st–99th
/// percentile range so one outlier cannot squash the picture).
pub fn histogram(title: &str, scores: &[f32], is_member: &[bool]) -> String {
    let mut sorted: Vec<f64> =
        scores.iter().map(|&s| f64::from(s)).filter(|s| s.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| {
        sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0)
    };
    let (mut lo, mut hi) = (q(0.01), q(0.99));
    if hi <= lo {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let bins = 40;
    let density = |member: bool| -> Vec<f64> {
        let mut counts = vec![0f64; bins];
        let mut total = 0f64;
        for (&s, &m) in scores.iter().zip(is_member) {
            if m != member {
                continue;
            }
            total += 1.0;
            let b = (((f64::from(s) - lo) / (hi - lo)) * bins as f64).floor();
            counts[(b.max(0.0) as usize).min(bins - 1)] += 1.0;
        }
        let w = (hi - lo) / bins as f64;
        counts.iter().map(|c| c / total.max(1.0) / w).collect()
    };
    let (dm, dn) = (density(true), density(false));
    let top = dm.iter().chain(&dn).copied().fold(0.0, f64::max).max(1e-12) * 1.08;
    let mut p = Plot::new(
        title,
        "attack score (higher = more likely a member)",
        "density",
        Scale::Linear(lo, hi),
        Scale::Linear(0.0, top),
    );
    p.histogram(lo, hi, &dn, PALETTE[0], "non-members");
    p.histogram(lo, hi, &dm, PALETTE[1], "members");
    p.finish()
}

/// ROC curves of several attacks; `log` draws both axes from 1e-4 to 1, the low-FPR view
/// that LiRA made standard. The dashed diagonal is random guessing.
pub fn roc(title: &str, curves: &[(String, Roc)], log: bool) -> String {
    let scale = if log { Scale::Log(1e-4, 1.0) } else { Scale::Linear(0.0, 1.0) };
    let mut p = Plot::new(title, "false-positive rate", "true-positive rate", scale, scale);
    p.legend_bottom = true;
    let chance: Vec<(f64, f64)> = if log {
        (0..=40).map(|i| 10f64.powf(-4.0 + i as f64 / 10.0)).map(|v| (v, v)).collect()
    } else {
        vec![(0.0, 0.0), (1.0, 1.0)]
    };
    p.line(&chance, "#888888", Some("chance"), true);
    for (i, (name, curve)) in curves.iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            curve.fpr.iter().copied().zip(curve.tpr.iter().copied()).collect();
        p.line(&pts, PALETTE[i % PALETTE.len()], Some(name), false);
    }
    p.finish()
}

/// A privacy-utility scatter: one labelled point per run, test accuracy against a leakage
/// measure.
pub fn tradeoff(title: &str, x_label: &str, points: &[(String, f64, f64)], x: Scale) -> String {
    let (ymin, ymax) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.2), b.max(p.2)));
    let pad = ((ymax - ymin) * 0.15).max(0.02);
    let y = Scale::Linear((ymin - pad).max(0.0), (ymax + pad).min(1.0));
    let mut p = Plot::new(title, x_label, "test accuracy", x, y);
    let pts: Vec<(f64, f64, &str, &str)> = points
        .iter()
        .enumerate()
        .map(|(i, (label, xv, yv))| (*xv, *yv, PALETTE[i % PALETTE.len()], label.as_str()))
        .collect();
    p.labelled_points(&pts);
    p.finish()
}
