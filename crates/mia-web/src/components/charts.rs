//! SVG charts as Yew nodes: member/non-member histograms with a ghost of the undefended
//! distributions, a threshold line and upload markers; ROC curves on linear and log-log axes.

use mia_core::metrics::Roc;
use yew::prelude::*;

/// Okabe–Ito blue (members) and orange (non-members).
pub const MEMBER: &str = "#0072B2";
/// Non-member colour.
pub const NON_MEMBER: &str = "#E69F00";

const W: f64 = 360.0;
const H: f64 = 150.0;
const PAD: f64 = 24.0;

/// The score range shared by the histogram bins and the threshold slider.
pub fn range(sets: &[&[f32]]) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for s in sets {
        for &v in s.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-6 { (lo - 0.5, hi + 0.5) } else { (lo, hi) }
}

fn bins(scores: &[f32], member: &[bool], want: bool, lo: f32, hi: f32, k: usize) -> Vec<f64> {
    let mut counts = vec![0f64; k];
    let mut total = 0f64;
    for (s, m) in scores.iter().zip(member) {
        if *m != want || !s.is_finite() {
            continue;
        }
        let b = (((s - lo) / (hi - lo)) * k as f32).floor().clamp(0.0, (k - 1) as f32) as usize;
        counts[b] += 1.0;
        total += 1.0;
    }
    counts.iter_mut().for_each(|c| *c /= total.max(1.0));
    counts
}

/// Histogram props.
#[derive(Properties, PartialEq)]
pub struct HistogramProps {
    /// Current scores.
    pub scores: Vec<f32>,
    /// Scores before the inference defense (ghost).
    pub ghost: Option<Vec<f32>>,
    /// Membership.
    pub member: Vec<bool>,
    /// Threshold.
    pub threshold: f32,
    /// Shared range.
    pub range: (f32, f32),
    /// Upload scores to mark.
    pub marks: Vec<(String, f32)>,
}

/// Member and non-member score histograms (fractions per bin).
#[function_component(Histogram)]
pub fn histogram(p: &HistogramProps) -> Html {
    let (lo, hi) = p.range;
    let k = 30;
    let x = |v: f32| PAD + f64::from((v - lo) / (hi - lo)).clamp(0.0, 1.0) * (W - 2.0 * PAD);
    let bw = (W - 2.0 * PAD) / k as f64;
    let cur =
        [bins(&p.scores, &p.member, true, lo, hi, k), bins(&p.scores, &p.member, false, lo, hi, k)];
    let ghost = p
        .ghost
        .as_ref()
        .map(|g| [bins(g, &p.member, true, lo, hi, k), bins(g, &p.member, false, lo, hi, k)]);
    let top = cur.iter().chain(ghost.iter().flatten()).flatten().fold(0.01f64, |a, &b| a.max(b));
    let y = |f: f64| H - PAD - f / top * (H - 2.0 * PAD);
    let bars = |counts: &[f64], colour: &str, ghost: bool| -> Html {
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(i, &c)| {
                let (x0, y0) = (PAD + i as f64 * bw, y(c));
                if ghost {
                    html! { <rect x={format!("{x0:.1}")} y={format!("{y0:.1}")} width={format!("{bw:.1}")} height={format!("{:.1}", H - PAD - y0)} fill="none" stroke={colour.to_string()} stroke-dasharray="2,2" stroke-width="1" /> }
                } else {
                    html! { <rect x={format!("{x0:.1}")} y={format!("{y0:.1}")} width={format!("{bw:.1}")} height={format!("{:.1}", H - PAD - y0)} fill={colour.to_string()} fill-opacity="0.55" /> }
                }
            })
            .collect()
    };
    let tx = x(p.threshold);
    html! {
        <svg class="chart" viewBox={format!("0 0 {W} {H}")} role="img" aria-label="member and non-member score histograms">
            <line x1={PAD.to_string()} y1={(H - PAD).to_string()} x2={(W - PAD).to_string()} y2={(H - PAD).to_string()} stroke="#444" />
            { if let Some(g) = &ghost { html! { <>{ bars(&g[0], MEMBER, true) }{ bars(&g[1], NON_MEMBER, true) }</> } } else { html! {} } }
            { bars(&cur[0], MEMBER, false) }
            { bars(&cur[1], NON_MEMBER, false) }
            if p.threshold.is_finite() {
                <line x1={format!("{tx:.1}")} y1="8" x2={format!("{tx:.1}")} y2={(H - PAD).to_string()} stroke="#D55E00" stroke-width="2" />
            }
            { for p.marks.iter().map(|(name, v)| html! {
                <g>
                    <title>{ name.clone() }</title>
                    <path d={format!("M{:.1},{} l-5,-9 h10 z", x(*v), H - PAD)} fill="#009E73" />
                </g>
            }) }
            <text x={PAD.to_string()} y={(H - 6.0).to_string()} font-size="10">{ format!("{lo:.2}") }</text>
            <text x={(W - PAD).to_string()} y={(H - 6.0).to_string()} font-size="10" text-anchor="end">{ format!("{hi:.2}") }</text>
            <text x={(W / 2.0).to_string()} y={(H - 6.0).to_string()} font-size="10" text-anchor="middle">{ "score (higher = member)" }</text>
        </svg>
    }
}

/// ROC props.
#[derive(Properties, PartialEq)]
pub struct RocProps {
    /// The curve.
    pub roc: Roc,
    /// Before the defense.
    pub ghost: Option<Roc>,
    /// Log-log axes.
    pub log: bool,
}

fn path(r: &Roc, log: bool, size: f64) -> String {
    let lo = 1e-3f64;
    let map = |v: f64| if log { (v.max(lo).log10() - lo.log10()) / -lo.log10() } else { v };
    let mut d = String::new();
    let step = (r.fpr.len() / 400).max(1);
    for (i, (f, t)) in r.fpr.iter().zip(&r.tpr).enumerate() {
        if i % step != 0 && i + 1 != r.fpr.len() {
            continue;
        }
        let (x, y) =
            (PAD + map(*f) * (size - 2.0 * PAD), size - PAD - map(*t) * (size - 2.0 * PAD));
        d.push_str(&format!("{}{x:.1},{y:.1} ", if d.is_empty() { "M" } else { "L" }));
    }
    d
}

/// A ROC curve with the chance diagonal.
#[function_component(RocChart)]
pub fn roc_chart(p: &RocProps) -> Html {
    let s = 170.0;
    html! {
        <svg class="roc" viewBox={format!("0 0 {s} {s}")} role="img" aria-label={if p.log { "ROC, log-log" } else { "ROC" }}>
            <rect x={PAD.to_string()} y={PAD.to_string()} width={(s - 2.0 * PAD).to_string()} height={(s - 2.0 * PAD).to_string()} fill="none" stroke="#999" />
            <line x1={PAD.to_string()} y1={(s - PAD).to_string()} x2={(s - PAD).to_string()} y2={PAD.to_string()} stroke="#bbb" stroke-dasharray="3,3" />
            if let Some(g) = &p.ghost {
                <path d={path(g, p.log, s)} fill="none" stroke="#999" stroke-dasharray="3,2" />
            }
            <path d={path(&p.roc, p.log, s)} fill="none" stroke={MEMBER} stroke-width="2" />
            <text x={(s / 2.0).to_string()} y={(s - 6.0).to_string()} font-size="9" text-anchor="middle">{ if p.log { "FPR (log, 0.1%–1)" } else { "FPR" } }</text>
            <text x="8" y={(s / 2.0).to_string()} font-size="9" transform={format!("rotate(-90 8 {})", s / 2.0)} text-anchor="middle">{ "TPR" }</text>
        </svg>
    }
}
