//! "Cite / about this model": what the selected model is and how it was measured, from the
//! bundle's manifest (recipe, accuracy, shadows, the natively measured attacks, provenance and
//! the citation an author gave `mia export`), and a link that reproduces the current view.

use mia_core::bundle::ModelEntry;
use yew::prelude::*;

use crate::engine::SharedBundle;

/// Props.
#[derive(Properties)]
pub struct AboutProps {
    /// The bundle (its manifest is read; shared, not copied, on each render).
    pub bundle: SharedBundle,
    /// The selected model's id.
    pub model: String,
    /// The query that reproduces the view (`?…`).
    pub query: String,
}

impl PartialEq for AboutProps {
    fn eq(&self, other: &Self) -> bool {
        std::rc::Rc::ptr_eq(&self.bundle, &other.bundle)
            && self.model == other.model
            && self.query == other.query
    }
}

/// The training recipe in words: architecture, loss (with its parameters), dropout; for a
/// model trained elsewhere (`mia import`), the file it came from.
fn recipe(m: &ModelEntry) -> String {
    let d = &m.training_defense;
    if let Some(source) = d.get("imported").and_then(|s| s.as_str()) {
        return format!(
            "{}, {} classes, imported from {source} (trained elsewhere; the attacks below were measured on its own outputs)",
            m.config.arch, m.config.num_classes
        );
    }
    let loss = d.get("loss").map_or_else(String::new, |l| {
        let name = l.get("name").and_then(|n| n.as_str()).unwrap_or("erm");
        let params: Vec<String> = l
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "name")
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        if params.is_empty() { name.to_string() } else { format!("{name} ({})", params.join(", ")) }
    });
    let dropout = d.get("dropout").and_then(|x| x.as_f64()).unwrap_or(0.0);
    let mut s = format!("{}, {} classes, trained with {loss}", m.config.arch, m.config.num_classes);
    if dropout > 0.0 {
        s.push_str(&format!(", dropout {dropout}"));
    }
    s
}

/// The natively measured attacks of `m`.
fn attacks_table(m: &ModelEntry) -> Html {
    html! {
        <table class="about-attacks">
            <tr><th>{ "attack" }</th><th>{ "AUC (all candidates)" }</th><th>{ "AUC (this page's sample)" }</th><th>{ "TPR at 0.1 % FPR" }</th></tr>
            { for m.attacks.iter().map(|a| html! {
                <tr>
                    <td>{ a.name.clone() }</td>
                    <td>{ format!("{:.3}", a.auc) }</td>
                    <td>{ a.reference_auc.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()) }</td>
                    <td>{ format!("{:.2} %", 100.0 * a.tpr_at_0_1pct_fpr) }</td>
                </tr>
            }) }
        </table>
    }
}

/// The panel (folded by default).
#[function_component(About)]
pub fn about(p: &AboutProps) -> Html {
    let manifest = &p.bundle.manifest;
    let Some(m) = manifest.model(&p.model) else { return Html::default() };
    let link = web_sys::window()
        .and_then(|w| {
            let l = w.location();
            Some(format!("{}{}{}", l.origin().ok()?, l.pathname().ok()?, p.query))
        })
        .unwrap_or_else(|| p.query.clone());
    let r = &manifest.reference;
    html! {
        <section class="panel about" data-testid="about">
            <details>
                <summary><h2>{ "Cite / about this model" }</h2></summary>
                <p>{ format!("{}: {}.", m.label, recipe(m)) }</p>
                <p>{ format!("Right on {:.1} % of its training images and {:.1} % of unseen test images ({}). Attack thresholds and LiRA statistics come from {} shadow models trained the same way.", 100.0 * m.train_acc, 100.0 * m.test_acc, manifest.dataset, m.shadows) }</p>
                { attacks_table(m) }
                <p class="muted">{ format!("Measured natively by `mia attack` when the bundle was exported. This page's sample holds {} members and {} non-members, so the smallest false-positive rate it resolves is {:.2} %.", r.members, r.non_members, 100.0 / r.non_members.max(1) as f64) }</p>
                if !manifest.provenance.is_empty() {
                    <p><strong>{ "How it was made: " }</strong>{ manifest.provenance.clone() }</p>
                }
                if let Some(c) = &manifest.citation {
                    <p data-testid="citation"><strong>{ "Cite: " }</strong>{ c.clone() }</p>
                }
                <p>{ "A link to exactly this view (model, defenses, attacker, thresholds): " }
                    <a href={p.query.clone()} data-testid="view-link">{ link }</a></p>
            </details>
        </section>
    }
}
