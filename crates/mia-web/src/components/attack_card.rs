//! One attack: histograms with the undefended ghost, a draggable threshold with live
//! TPR/FPR/advantage, AUC against the natively measured one, ROC on linear and log-log axes,
//! and a sentence saying what the attack looks at.

use yew::prelude::*;

use super::charts::{Histogram, RocChart, range};
use crate::analysis::AttackView;

/// Props.
#[derive(Properties, PartialEq)]
pub struct AttackCardProps {
    /// The attack on the released outputs.
    pub view: AttackView,
    /// The same attack before the inference defense.
    pub ghost: Option<AttackView>,
    /// Membership of the reference sample.
    pub member: Vec<bool>,
    /// AUC measured natively on the reference sample (manifest).
    pub native_auc: Option<f64>,
    /// The threshold in use (dragged or the attacker's).
    pub threshold: f32,
    /// Upload markers.
    pub marks: Vec<(String, f32)>,
    /// Threshold dragged (None = reset).
    pub on_threshold: Callback<Option<f32>>,
}

/// The card.
#[function_component(AttackCard)]
pub fn attack_card(p: &AttackCardProps) -> Html {
    let v = &p.view;
    let ghost_scores = p.ghost.as_ref().map(|g| g.scores.clone());
    let r = range(&[&v.scores, ghost_scores.as_deref().unwrap_or(&[])]);
    let (tpr, fpr) = v.rates(&p.member, p.threshold);
    let name = v.id.name();
    let on_input = {
        let cb = p.on_threshold.clone();
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            if let Ok(t) = input.value().parse::<f32>() {
                cb.emit(Some(t));
            }
        })
    };
    let reset = {
        let cb = p.on_threshold.clone();
        Callback::from(move |_| cb.emit(None))
    };
    let step = (r.1 - r.0) / 500.0;
    html! {
        <section class="card" data-testid={format!("attack-{name}")}>
            <h3>{ name }</h3>
            <p class="explain">{ crate::analysis::explain(v.id) }</p>
            <Histogram scores={v.scores.clone()} ghost={ghost_scores} member={p.member.clone()} threshold={p.threshold} range={r} marks={p.marks.clone()} />
            <div class="threshold">
                <label>{ "threshold " }
                    <input type="range" min={r.0.to_string()} max={r.1.to_string()} step={step.to_string()}
                        value={p.threshold.clamp(r.0, r.1).to_string()} oninput={on_input} data-testid={format!("threshold-{name}")} />
                </label>
                <button onclick={reset}>{ "attacker's" }</button>
            </div>
            <p class="readout">
                <span>{ "AUC " }<b data-testid={format!("auc-{name}")}>{ format!("{:.3}", v.auc) }</b></span>
                { p.native_auc.map(|a| html! { <span class="muted">{ format!(" (native {a:.3})") }</span> }).unwrap_or_default() }
                { p.ghost.as_ref().map(|g| html! { <span class="muted">{ format!(" · undefended {:.3}", g.auc) }</span> }).unwrap_or_default() }
                <br />
                { format!("at threshold {:.3}: TPR {:.1}% · FPR {:.1}% · advantage {:.3}", p.threshold, 100.0 * tpr, 100.0 * fpr, tpr - fpr) }
            </p>
            <div class="rocs">
                <RocChart roc={v.roc.clone()} ghost={p.ghost.as_ref().map(|g| g.roc.clone())} log={false} />
                <RocChart roc={v.roc.clone()} ghost={p.ghost.as_ref().map(|g| g.roc.clone())} log={true} />
            </div>
            <p class="explain">{ "Blue: members (trained on), orange: non-members. Dashed outlines: before the inference defense. The further apart the colours, the more the model leaks; the ROC's log-log view shows what an attacker finds when it may almost never be wrong." }</p>
        </section>
    }
}
