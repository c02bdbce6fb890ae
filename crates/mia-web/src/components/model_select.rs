//! The training-defense selector: one shipped model per defense, with its measured numbers.

use mia_core::bundle::ModelEntry;
use yew::prelude::*;

/// Props.
#[derive(Properties, PartialEq)]
pub struct ModelSelectProps {
    /// The models.
    pub models: Vec<ModelEntry>,
    /// Selected id.
    pub selected: String,
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
            <h2>{ "Training-time defense" }</h2>
            <select onchange={on_change} data-testid="model-select">
                { for p.models.iter().map(|m| html! {
                    <option value={m.id.clone()} selected={m.id == p.selected}>{ format!("{} ({})", m.label, m.id) }</option>
                }) }
            </select>
            { current.map(|m| {
                let best = m.attacks.iter().max_by(|a, b| a.tpr_at_0_1pct_fpr.total_cmp(&b.tpr_at_0_1pct_fpr));
                html! {
                    <p class="explain">
                        { format!("train accuracy {:.3}, test accuracy {:.3}, {} shadow models. ", m.train_acc, m.test_acc, m.shadows) }
                        { best.map(|b| format!("Strongest attack measured natively: {} (AUC {:.3}, TPR {:.2}% at 0.1% FPR).", b.name, b.auc, 100.0 * b.tpr_at_0_1pct_fpr)).unwrap_or_default() }
                    </p>
                }
            }).unwrap_or_default() }
        </section>
    }
}
