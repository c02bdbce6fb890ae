//! Inference-defense toggles with their parameters, and the naive/adaptive attacker switch.

use yew::prelude::*;

use super::glossary::Term;
use crate::analysis::Attacker;
use crate::toggles::Toggle;

/// Props.
#[derive(Properties, PartialEq)]
pub struct DefensePanelProps {
    /// The toggles.
    pub toggles: Vec<Toggle>,
    /// Current attacker.
    pub attacker: Attacker,
    /// Whether the model ships shadow outputs (the adaptive attacker needs them).
    pub adaptive_available: bool,
    /// A toggle flipped.
    pub on_toggle: Callback<usize>,
    /// A parameter changed: toggle, parameter, value.
    pub on_param: Callback<(usize, usize, f32)>,
    /// Attacker switched.
    pub on_attacker: Callback<Attacker>,
}

/// The panel.
#[function_component(DefensePanel)]
pub fn defense_panel(p: &DefensePanelProps) -> Html {
    let attacker = |a: Attacker, label: Html, id: &'static str| {
        let cb = p.on_attacker.clone();
        let disabled = a == Attacker::Adaptive && !p.adaptive_available;
        html! {
            <label class="radio">
                <input type="radio" name="attacker" checked={p.attacker == a} {disabled} data-testid={id}
                    onchange={Callback::from(move |_| cb.emit(a))} />
                { label }
            </label>
        }
    };
    html! {
        <section class="panel defenses" id="defenses">
            <h2><Term name="inference-time defense" text="Inference-time defenses" /></h2>
            <p class="explain">{ "Each changes what the model releases, not how it was trained. Toggle them and watch the distributions move; the dashed outlines stay where they were." }</p>
            { for p.toggles.iter().enumerate().map(|(i, t)| {
                let on_toggle = p.on_toggle.clone();
                html! {
                    <div class="toggle">
                        <label>
                            <input type="checkbox" checked={t.enabled} data-testid={format!("toggle-{}", t.name)}
                                onchange={Callback::from(move |_| on_toggle.emit(i))} />
                            { t.title }
                        </label>
                        { for t.params.iter().enumerate().map(|(j, (k, v, lo, hi, step))| {
                            let on_param = p.on_param.clone();
                            html! {
                                <label class="param">{ format!(" {k} ") }
                                    <input type="number" value={v.to_string()} min={lo.to_string()} max={hi.to_string()} step={step.to_string()}
                                        onchange={Callback::from(move |e: Event| {
                                            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
                                            if let Ok(v) = input.value().parse::<f32>() { on_param.emit((i, j, v)); }
                                        })} />
                                </label>
                            }
                        }) }
                    </div>
                }
            }) }
            <div id="attacker">
                <h3>{ "Attacker" }</h3>
                { attacker(Attacker::Naive, html! { <><Term name="naive attacker" text="naive" />{ " (calibrated on undefended shadow models)" }</> }, "attacker-naive") }
                { attacker(Attacker::Adaptive, html! { <><Term name="adaptive attacker" text="adaptive" />{ " (its shadow models go through the same defense)" }</> }, "attacker-adaptive") }
            </div>
            if !p.adaptive_available {
                <p class="muted">{ "This model ships no shadow outputs: only the naive attacker." }</p>
            }
        </section>
    }
}
