//! Every run the student made, side by side: recipe, accuracy, ε with δ, each attack's mean
//! AUC with its 95 % interval (and TPR at the smallest FPR every draw measures), whether each
//! run differs from the first run on the same images by more than the noise, and a
//! privacy–utility chart (held-out accuracy against LiRA's AUC).

use mia_core::lab::{AttackDraws, LabAttack};
use yew::prelude::*;

use super::charts::ticks;
use crate::lab_history::{Versus, versus};
use crate::lab_state::{LabAction, LabState, RunRecord};

/// Props.
#[derive(Properties, PartialEq)]
pub struct LabCompareProps {
    /// The lab.
    pub lab: UseReducerHandle<LabState>,
}

/// The attack the chart plots and the verdicts name.
const CHART_ATTACK: LabAttack = LabAttack::LiraOnline;

/// One attack's cell: mean AUC (interval), TPR at the low FPR, and the paired comparison.
fn cell(d: Option<&AttackDraws>, v: Versus) -> Html {
    let Some(d) = d else { return html! { <td>{ "–" }</td> } };
    let vs = match v {
        Versus::Baseline => "baseline".to_string(),
        Versus::Unpaired => "not paired".to_string(),
        Versus::Paired(k, i) => format!(
            "vs #{k}: {:+.3} ({:+.3} to {:+.3}), {}",
            i.mean,
            i.lo,
            i.hi,
            if v.beyond_noise() { "beyond noise" } else { "within noise" }
        ),
    };
    let class = if v.beyond_noise() { "vs beyond" } else { "vs" };
    html! {
        <td>
            <b>{ format!("{:.3}", d.auc.mean) }</b>{ format!(" ({:.2}–{:.2})", d.auc.lo, d.auc.hi) }
            <br /><span class="muted">{ format!("TPR {:.0}% at FPR ≤ {:.1}%", 100.0 * d.tpr.mean, 100.0 * d.fpr) }</span>
            <br /><span class={class}>{ vs }</span>
        </td>
    }
}

fn row(runs: &[RunRecord], i: usize) -> Html {
    let r = &runs[i];
    let eps = r.epsilon.map_or("–".to_string(), |(e, d)| format!("{e:.2} at δ {d:.0e}"));
    html! {
        <tr data-testid={format!("lab-compare-row-{}", r.number)}>
            <td>{ format!("#{}", r.number) }</td>
            <td>{ r.recipe.clone() }</td>
            <td>{ format!("{:.0}% / {:.0}%", 100.0 * r.accuracy.0, 100.0 * r.accuracy.1) }</td>
            <td>{ eps }</td>
            { for LabAttack::ALL.iter().map(|&a| cell(r.attack(a), versus(runs, i, a))) }
        </tr>
    }
}

/// Held-out accuracy (x) against LiRA's mean AUC with its interval (y), one labelled point
/// per run.
fn chart(runs: &[RunRecord]) -> Html {
    let (w, h, l, b, t, rm) = (420.0, 240.0, 46.0, 34.0, 12.0, 12.0);
    let points: Vec<(usize, f64, f64, f64, f64)> = runs
        .iter()
        .filter_map(|r| {
            r.attack(CHART_ATTACK).map(|d| (r.number, r.accuracy.1, d.auc.mean, d.auc.lo, d.auc.hi))
        })
        .collect();
    let (ylo, yhi) = points
        .iter()
        .fold((0.45f64, 0.75f64), |(lo, hi), p| (lo.min(p.3 - 0.02), hi.max(p.4 + 0.02)));
    let (ylo, yhi) = (ylo.max(0.0), yhi.min(1.0));
    let x = |v: f64| l + v * (w - l - rm);
    let y = |v: f64| t + (yhi - v) / (yhi - ylo) * (h - t - b);
    html! {
        <svg class="chart" viewBox={format!("0 0 {w} {h}")} role="img" aria-label="privacy–utility chart" data-testid="lab-compare-chart">
            <line x1={x(0.0).to_string()} x2={x(1.0).to_string()} y1={y(0.5).to_string()} y2={y(0.5).to_string()} stroke="#999" stroke-dasharray="4 3" />
            { for ticks(ylo, yhi).into_iter().map(|v| html! { <text x={(l - 4.0).to_string()} y={(y(v) + 4.0).to_string()} text-anchor="end" font-size="11">{ format!("{v:.2}") }</text> }) }
            { for ticks(0.0, 1.0).into_iter().map(|v| html! { <text x={x(v).to_string()} y={(h - b + 16.0).to_string()} text-anchor="middle" font-size="11">{ format!("{:.0}%", 100.0 * v) }</text> }) }
            <text x={((w + l) / 2.0).to_string()} y={(h - 4.0).to_string()} text-anchor="middle" font-size="11">{ "held-out accuracy → better utility" }</text>
            <text x="12" y={((h - b + t) / 2.0).to_string()} font-size="11" text-anchor="middle" transform={format!("rotate(-90 12 {})", (h - b + t) / 2.0)}>{ "LiRA AUC ↑ more leakage" }</text>
            { for points.iter().map(|&(k, acc, m, lo, hi)| html! {
                <g>
                    <line x1={x(acc).to_string()} x2={x(acc).to_string()} y1={y(lo).to_string()} y2={y(hi).to_string()} stroke="#0072B2" />
                    <circle cx={x(acc).to_string()} cy={y(m).to_string()} r="4" fill="#0072B2" />
                    <text x={(x(acc) + 6.0).to_string()} y={(y(m) - 4.0).to_string()} font-size="11">{ format!("#{k}") }</text>
                </g>
            }) }
        </svg>
    }
}

/// The comparison table and chart (nothing before the first run).
#[function_component(LabCompare)]
pub fn lab_compare(p: &LabCompareProps) -> Html {
    let runs = &p.lab.history;
    if runs.is_empty() {
        return html! {};
    }
    let clear = {
        let lab = p.lab.clone();
        Callback::from(move |_| lab.dispatch(LabAction::ClearHistory))
    };
    html! {
        <section class="panel lab-compare" data-testid="lab-compare">
            <h2>{ "Your runs side by side" }</h2>
            <p class="explain">{ "Each AUC is the mean over the run's draws with its 95 % interval. Runs on the same images with the same member split and number of shadow models train every draw on the same images, so they are compared draw by draw with the first such run: \"beyond noise\" means the paired difference's 95 % interval excludes zero." }</p>
            <div class="table-scroll">
                <table>
                    <thead><tr>
                        <th>{ "run" }</th><th>{ "recipe" }</th><th>{ "accuracy members / held out" }</th><th>{ "ε" }</th>
                        { for LabAttack::ALL.iter().map(|a| html! { <th>{ a.name() }</th> }) }
                    </tr></thead>
                    <tbody>{ for (0..runs.len()).map(|i| row(runs, i)) }</tbody>
                </table>
            </div>
            { chart(runs) }
            <button onclick={clear} data-testid="lab-compare-clear">{ "clear the table" }</button>
        </section>
    }
}
