//! The training-defense selector: one shipped model per defense, with its measured numbers.

use std::collections::HashMap;

use mia_core::bundle::ModelEntry;
use yew::prelude::*;

use super::glossary::Term;

/// Props.
#[derive(Properties, PartialEq)]
pub struct ModelSelectProps {
    /// The models.
    pub models: Vec<ModelEntry>,
    /// Selected id.
    pub selected: String,
    /// Models whose files could not be used, with why.
    pub broken: HashMap<String, String>,
    /// Picked.
    pub on_select: Callback<String>,
}

/// The selector and the selected model's facts.
#[function_component(ModelSelect)]
pub fn model_select(p: &ModelSelectProps) -> Html {
    let on_change = {
        let cb = p.on_select.clone();
        Callback::from(move |e: Event| {
            let select: web_sys::HtmlSelectElement = e.target_unchecked_into();
            cb.emit(select.value());
        })
    };
    let current = p.models.iter().find(|m| m.id == p.selected);
    html! {
        <section class="panel">
            <h2><Term name="training-time defense" text="Training-time defense" /></h2>
            <select onchange={on_change} data-testid="model-select">
                { for p.models.iter().map(|m| html! {
                    <option value={m.id.clone()} selected={m.id == p.selected}>{ if p.broken.contains_key(&m.id) { format!("{} (unavailable)", m.label) } else { m.label.clone() } }</option>
                }) }
            </select>
            { current.map(|m| {
                let best = m.attacks.iter().max_by(|a, b| a.tpr_at_0_1pct_fpr.total_cmp(&b.tpr_at_0_1pct_fpr));
                html! {
                    <p class="explain">
                        { format!("Right on {:.1} % of its training images and {:.1} % of unseen test images; attacks calibrated on {} ", 100.0 * m.train_acc, 100.0 * m.test_acc, m.shadows) }<Term name="shadow model" text="shadow models" />{ ". " }
                        { best.map(|b| format!("Strongest attack measured natively: {} (AUC {:.3}, TPR {:.2}% at 0.1% FPR).", b.name, b.auc, 100.0 * b.tpr_at_0_1pct_fpr)).unwrap_or_default() }
                    </p>
                }
            }).unwrap_or_default() }
        </section>
    }
}
