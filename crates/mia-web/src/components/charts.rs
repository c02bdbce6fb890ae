//! SVG charts as Yew nodes: member/non-member histograms with a ghost of the undefended
//! distributions, a threshold line and upload markers; ROC curves on linear and log-log axes.

use mia_core::metrics::Roc;
use yew::prelude::*;

/// Okabe–Ito blue (members) and orange (non-members).
pub const MEMBER: &str = "#0072B2";
/// Non-member colour.
pub const NON_MEMBER: &str = "#E69F00";

const W: f64 = 360.0;
const H: f64 = 190.0;
/// Left margin (y-axis labels).
const L: f64 = 46.0;
/// Right margin.
const R: f64 = 10.0;
/// Top margin (the legend).
const T: f64 = 30.0;
/// Bottom margin (x-axis labels).
const B: f64 = 34.0;

/// An upload's mark on a histogram: its number in the uploads list, name and score.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// 1-based position in the uploads list.
    pub number: usize,
    /// File name.
    pub name: String,
    /// Score.
    pub score: f32,
}

/// The score range shared by the histogram bins and the threshold slider: the 0.5th to
/// 99.5th percentile of every finite score, so that a few extreme images do not squeeze the
/// rest into one bin (those fall into the edge bins).
pub fn range(sets: &[&[f32]]) -> (f32, f32) {
    let mut all: Vec<f32> =
        sets.iter().flat_map(|s| s.iter().copied()).filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return (0.0, 1.0);
    }
    all.sort_by(f32::total_cmp);
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.005), at(0.995));
    if hi - lo < 1e-6 { (lo - 0.5, hi + 0.5) } else { (lo, hi) }
}

/// About five round tick values covering `lo..=hi`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return Vec::new();
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label without needless digits.
fn tick_label(v: f64) -> String {
    if v.abs() >= 1e5 {
        return format!("{v:.0e}");
    }
    let s = if v.abs() >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if (v * 10.0).fract().abs() < 1e-9 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s == "-0" { "0".into() } else { s }
}

fn bins(scores: &[f32], member: &[bool], want: bool, lo: f32, hi: f32, k: usize) -> Vec<f64> {
    let mut counts = vec![0f64; k];
    let mut total = 0f64;
    for (s, m) in scores.iter().zip(member) {
        if *m != want || s.is_nan() {
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
    pub marks: Vec<Mark>,
    /// What the x axis shows.
    pub axis: AttrValue,
}

fn legend(ghost: bool) -> Html {
    let item = |x: f64, swatch: Html, text: &'static str| {
        html! {
            <g transform={format!("translate({x},6)")}>{ swatch }<text x="14" y="9" font-size="11">{ text }</text></g>
        }
    };
    let box_ = |c: &str, dashed: bool| {
        if dashed {
            html! { <rect width="10" height="10" fill="none" stroke="#555" stroke-dasharray="2,2" /> }
        } else {
            html! { <rect width="10" height="10" fill={c.to_string()} fill-opacity="0.7" /> }
        }
    };
    html! {
        <g class="legend">
            { item(L, box_(MEMBER, false), "members") }
            { item(L + 78.0, box_(NON_MEMBER, false), "non-members") }
            { item(L + 172.0, html! { <rect x="4" width="2.5" height="11" fill={THRESHOLD} /> }, "threshold") }
            if ghost { { item(L + 242.0, box_("", true), "no defense") } }
        </g>
    }
}

/// Upload marks get their number printed while there are at most this many.
const MAX_NUMBERED: usize = 8;

/// Threshold colour (vermillion).
const THRESHOLD: &str = "#D55E00";

/// Member and non-member score histograms (share of each group per bin), with axes, a
/// legend, the threshold and numbered upload marks.
#[function_component(Histogram)]
pub fn histogram(p: &HistogramProps) -> Html {
    let (lo, hi) = p.range;
    let k = 30;
    let (x0, x1, y0, y1) = (L, W - R, H - B, T);
    let x = |v: f32| x0 + f64::from((v - lo) / (hi - lo)).clamp(0.0, 1.0) * (x1 - x0);
    let bw = (x1 - x0) / k as f64;
    let cur =
        [bins(&p.scores, &p.member, true, lo, hi, k), bins(&p.scores, &p.member, false, lo, hi, k)];
    let ghost = p
        .ghost
        .as_ref()
        .map(|g| [bins(g, &p.member, true, lo, hi, k), bins(g, &p.member, false, lo, hi, k)]);
    let top = cur.iter().chain(ghost.iter().flatten()).flatten().fold(0.01f64, |a, &b| a.max(b));
    let y = |f: f64| y0 - f / top * (y0 - y1);
    let bars = |counts: &[f64], colour: &str, ghost: bool| -> Html {
        counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(i, &c)| {
                let (bx, by) = (x0 + i as f64 * bw, y(c));
                let (x, yy, w, h) = (format!("{bx:.1}"), format!("{by:.1}"), format!("{bw:.1}"), format!("{:.1}", y0 - by));
                if ghost {
                    html! { <rect {x} y={yy} width={w} height={h} fill="none" stroke={colour.to_string()} stroke-dasharray="2,2" stroke-width="1.2" /> }
                } else {
                    html! { <rect {x} y={yy} width={w} height={h} fill={colour.to_string()} fill-opacity="0.55" /> }
                }
            })
            .collect()
    };
    let tx = x(p.threshold);
    let xt = ticks(f64::from(lo), f64::from(hi));
    let yt = ticks(0.0, top);
    html! {
        <svg class="chart" viewBox={format!("0 0 {W} {H}")} role="img" aria-label={format!("histograms of {} for members and non-members", p.axis)}>
            { legend(ghost.is_some()) }
            <line x1={x0.to_string()} y1={y0.to_string()} x2={x1.to_string()} y2={y0.to_string()} stroke="#444" />
            <line x1={x0.to_string()} y1={y0.to_string()} x2={x0.to_string()} y2={y1.to_string()} stroke="#444" />
            { for yt.iter().map(|&f| html! { <g>
                <line x1={(x0 - 3.0).to_string()} x2={x0.to_string()} y1={format!("{:.1}", y(f))} y2={format!("{:.1}", y(f))} stroke="#444" />
                <text x={(x0 - 5.0).to_string()} y={format!("{:.1}", y(f) + 4.0)} font-size="11" text-anchor="end">{ format!("{:.0}%", 100.0 * f) }</text>
            </g> }) }
            { for xt.iter().map(|&v| { let px = x(v as f32); html! { <g>
                <line x1={format!("{px:.1}")} x2={format!("{px:.1}")} y1={y0.to_string()} y2={(y0 + 4.0).to_string()} stroke="#444" />
                <text x={format!("{px:.1}")} y={(y0 + 15.0).to_string()} font-size="11" text-anchor="middle">{ tick_label(v) }</text>
            </g> } }) }
            { if let Some(g) = &ghost { html! { <>{ bars(&g[0], MEMBER, true) }{ bars(&g[1], NON_MEMBER, true) }</> } } else { html! {} } }
            { bars(&cur[0], MEMBER, false) }
            { bars(&cur[1], NON_MEMBER, false) }
            if p.threshold.is_finite() {
                <line x1={format!("{tx:.1}")} y1={y1.to_string()} x2={format!("{tx:.1}")} y2={y0.to_string()} stroke={THRESHOLD} stroke-width="2" />
            }
            { for p.marks.iter().enumerate().map(|(j, m)| { let mx = x(m.score); let lift = (j % 3) as f64 * 11.0; html! {
                <g class="mark">
                    <title>{ format!("{} {}: score {:.2}", m.number, m.name, m.score) }</title>
                    <path d={format!("M{mx:.1},{y0} l-5,-9 h10 z")} fill="#009E73" />
                    // Numbers only while they can be told apart; hovering a mark names it.
                    if p.marks.len() <= MAX_NUMBERED {
                        <text x={format!("{mx:.1}")} y={format!("{:.1}", y0 - 11.0 - lift)} font-size="10" text-anchor="middle" fill="#00664a">{ m.number }</text>
                    }
                </g>
            } }) }
            <text x={((x0 + x1) / 2.0).to_string()} y={(H - 4.0).to_string()} font-size="11" text-anchor="middle">{ p.axis.clone() }</text>
            <text x="9" y={((y0 + y1) / 2.0).to_string()} font-size="11" transform={format!("rotate(-90 9 {})", (y0 + y1) / 2.0)} text-anchor="middle">{ "share of group" }</text>
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

const PAD: f64 = 30.0;

/// The smallest false-positive rate `roc` can measure, 1 / non-members (the log axes start
/// there: below it a curve shows nothing but the resolution); 0.1 % at the least.
pub fn fpr_floor(roc: &Roc) -> f64 {
    (1.0 / roc.negatives.max(1) as f64).clamp(1e-3, 0.5)
}

/// `v` on an axis from 0 to 1, linear, or logarithmic from `lo` (a log axis starting at
/// `lo`, values below it drawn at its start).
fn map(v: f64, log: Option<f64>) -> f64 {
    match log {
        Some(lo) => (v.max(lo).log10() - lo.log10()) / -lo.log10(),
        None => v,
    }
}

/// A rate as a short percentage: 2.5%, 0.1%, 10%.
fn percent(v: f64) -> String {
    let p = 100.0 * v;
    let text = if p >= 10.0 { format!("{p:.0}") } else { format!("{p:.2}") };
    let text =
        if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}%")
}

/// The log axes' ticks: the floor, then every decade above it not crowding it.
fn log_ticks(lo: f64) -> Vec<(f64, String)> {
    let mut out = vec![(lo, percent(lo))];
    let mut d = 10f64.powf(lo.log10().floor() + 1.0);
    while d <= 1.0 + 1e-12 {
        if d.log10() - lo.log10() > 0.3 {
            out.push((d, percent(d)));
        }
        d *= 10.0;
    }
    out
}

fn path(r: &Roc, log: Option<f64>, size: f64) -> String {
    let mut d = String::new();
    let step = (r.fpr.len() / 400).max(1);
    for (i, (f, t)) in r.fpr.iter().zip(&r.tpr).enumerate() {
        if i % step != 0 && i + 1 != r.fpr.len() {
            continue;
        }
        let (x, y) = (
            PAD + map(*f, log) * (size - 1.5 * PAD),
            size - PAD - map(*t, log) * (size - 1.5 * PAD),
        );
        d.push_str(&format!("{}{x:.1},{y:.1} ", if d.is_empty() { "M" } else { "L" }));
    }
    d
}

/// A ROC curve with the chance diagonal, ticks on both axes, and the undefended ghost.
#[function_component(RocChart)]
pub fn roc_chart(p: &RocProps) -> Html {
    let s = 190.0;
    let span = s - 1.5 * PAD;
    let log = p.log.then(|| fpr_floor(&p.roc));
    let ticks: Vec<(f64, String)> = match log {
        Some(lo) => log_ticks(lo),
        None => [0.0, 0.5, 1.0].iter().map(|&v| (v, tick_label(v))).collect(),
    };
    let axis = match log {
        Some(_) => format!("FPR (log, from 1/{})", p.roc.negatives.max(1)),
        None => "FPR".to_string(),
    };
    html! {
        <svg class="roc" viewBox={format!("0 0 {s} {s}")} role="img" aria-label={if p.log { "ROC curve, log-log axes" } else { "ROC curve" }}>
            <rect x={PAD.to_string()} y={(PAD / 2.0).to_string()} width={span.to_string()} height={span.to_string()} fill="none" stroke="#999" />
            <line x1={PAD.to_string()} y1={(s - PAD).to_string()} x2={(s - PAD / 2.0).to_string()} y2={(PAD / 2.0).to_string()} stroke="#bbb" stroke-dasharray="3,3" />
            { for ticks.iter().map(|(v, l)| { let u = map(*v, log) * span; html! { <g>
                <text x={format!("{:.1}", PAD + u)} y={(s - PAD + 12.0).to_string()} font-size="10" text-anchor="middle">{ l }</text>
                <text x={(PAD - 3.0).to_string()} y={format!("{:.1}", s - PAD - u + 3.0)} font-size="10" text-anchor="end">{ l }</text>
            </g> } }) }
            if let Some(g) = &p.ghost {
                <path d={path(g, log, s)} fill="none" stroke="#999" stroke-dasharray="3,2" />
            }
            <path d={path(&p.roc, log, s)} fill="none" stroke={MEMBER} stroke-width="2" />
            <text x={(PAD + span / 2.0).to_string()} y={(s - 4.0).to_string()} font-size="10" text-anchor="middle" data-testid="roc-axis">{ axis }</text>
            <text x="8" y={(PAD / 2.0 + span / 2.0).to_string()} font-size="10" transform={format!("rotate(-90 8 {})", PAD / 2.0 + span / 2.0)} text-anchor="middle">{ "TPR" }</text>
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_axes_start_at_the_smallest_measurable_fpr() {
        let roc = |negatives| Roc {
            fpr: vec![0.0, 1.0],
            tpr: vec![0.0, 1.0],
            thresholds: vec![f32::INFINITY, 0.0],
            positives: 40,
            negatives,
        };
        assert_eq!(fpr_floor(&roc(40)), 0.025);
        assert_eq!(fpr_floor(&roc(1000)), 0.001);
        assert_eq!(fpr_floor(&roc(100_000)), 0.001, "0.1 % at the least");
        let labels = |lo| log_ticks(lo).into_iter().map(|t| t.1).collect::<Vec<_>>();
        assert_eq!(labels(0.025), ["2.5%", "10%", "100%"]);
        assert_eq!(labels(0.001), ["0.1%", "1%", "10%", "100%"]);
        assert_eq!(labels(1.0 / 60.0), ["1.67%", "10%", "100%"]);
        assert_eq!(map(0.001, Some(0.025)), 0.0, "below the floor is drawn at it");
        assert!((map(1.0, Some(0.025)) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        assert!((t[3] - 0.6).abs() < 1e-12 && t[5] == 1.0, "{t:?}");
        let t = ticks(-23.66, 22.42);
        assert_eq!(t, vec![-20.0, -10.0, 0.0, 10.0, 20.0]);
        assert!(ticks(1.0, 1.0).is_empty());
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(-8e9), "-8e9");
    }

    #[test]
    fn the_range_ignores_a_few_extreme_scores() {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
        v[0] = -1e6;
        v[999] = 1e6;
        let (lo, hi) = range(&[&v]);
        assert!(lo > -1.0 && hi < 11.0, "{lo} {hi}");
        assert_eq!(range(&[&[f32::NAN]]), (0.0, 1.0));
    }
}
