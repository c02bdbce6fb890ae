//! The lab's training recipe: the defense and its parameters (ε of DP-SGD shown live), the
//! head, epochs, learning rate, batch size, early stopping, fine-tuning the whole network,
//! and the number of shadow models.

use yew::prelude::*;

use crate::lab_state::{LabAction, LabDefense, LabSettings, LabState};

/// Props.
#[derive(Properties, PartialEq)]
pub struct LabSettingsProps {
    /// The lab.
    pub lab: UseReducerHandle<LabState>,
}

fn number(e: &Event) -> Option<f64> {
    let input: web_sys::HtmlInputElement = e.target_unchecked_into();
    input.value().parse().ok().filter(|v: &f64| v.is_finite())
}

fn checked(e: &Event) -> bool {
    let input: web_sys::HtmlInputElement = e.target_unchecked_into();
    input.checked()
}

/// A callback that applies `f` to the recipe with the number typed.
fn setter(lab: &UseReducerHandle<LabState>, f: fn(&mut LabSettings, f64)) -> Callback<Event> {
    let lab = lab.clone();
    Callback::from(move |e: Event| {
        if let Some(v) = number(&e) {
            let mut next = lab.settings.clone();
            f(&mut next, v);
            lab.dispatch(LabAction::Settings(next));
        }
    })
}

/// A labelled number field.
struct Field {
    label: &'static str,
    value: String,
    range: (&'static str, &'static str, &'static str),
    id: &'static str,
}

fn field(f: Field, cb: Callback<Event>) -> Html {
    let (min, max, step) = f.range;
    html! {
        <label class="param">{ f.label }{ " " }<input type="number" value={f.value} {min} {max} {step} onchange={cb} data-testid={f.id} /></label>
    }
}

/// ε at δ of the recipe's DP-SGD for the members the lab holds, as the run will spend it
/// ([`mia_core::lab::HeadConfig::planned_epsilon`]: Poisson sampling at the batch size, on the
/// members less early stopping's set-aside share), with what it means and a warning when δ is
/// not below 1/N.
fn epsilon(s: &LabSettings, members: usize) -> Html {
    if s.defense != LabDefense::DpSgd {
        return html! {};
    }
    let head = s.head(0);
    let Ok(Some(e)) = head.planned_epsilon(members) else { return html! {} };
    let trained = head.trained_on(members);
    let bound = if s.early_stopping.is_some() { "at most " } else { "" };
    html! {
        <p data-testid="lab-epsilon" data-epsilon={format!("{e:.6}")}>
            { format!("DP-SGD with σ = {}, C = {} over {} epochs on {trained} images: ε = {bound}{e:.2} at δ = {:.0e} (RDP accountant, Poisson sampling, every step counted). ", s.strength, s.clip, s.epochs, s.delta) }
            { mia_core::privacy::epsilon_meaning(e, s.delta) }{ "." }
            if let Some(w) = mia_core::privacy::delta_warning(s.delta, trained) { <br /><span class="caution" data-testid="lab-delta-warning">{ w }</span> }
        </p>
    }
}

fn defense_select(lab: &UseReducerHandle<LabState>) -> Html {
    let s = &lab.settings;
    let on_defense = {
        let lab = lab.clone();
        Callback::from(move |e: Event| {
            let sel: web_sys::HtmlSelectElement = e.target_unchecked_into();
            if let Some(d) = LabDefense::parse(&sel.value()) {
                let strength = d.strength().map_or(0.0, |x| x.0);
                let next = LabSettings { defense: d, strength, ..lab.settings.clone() };
                lab.dispatch(LabAction::Settings(next));
            }
        })
    };
    html! {
        <>
            <label>{ "defense " }
                <select onchange={on_defense} data-testid="lab-defense">
                    { for LabDefense::ALL.iter().map(|d| html! { <option value={d.value()} selected={*d == s.defense}>{ d.title() }</option> }) }
                </select>
            </label>
            if let Some((_, lo, hi, step)) = s.defense.strength() {
                <label class="param">{ " strength " }<input type="number" value={s.strength.to_string()} min={lo.to_string()} max={hi.to_string()} step={step.to_string()} onchange={setter(lab, |s, v| s.strength = v as f32)} data-testid="lab-strength" /></label>
            }
            if let Some(why) = s.defense.backfires() { <p class="caution" data-testid="lab-backfires">{ why }</p> }
            if s.defense == LabDefense::DpSgd {
                { field(Field { label: " clip norm C", value: s.clip.to_string(), range: ("0.01", "100", "0.1"), id: "lab-clip" }, setter(lab, |s, v| s.clip = v.clamp(0.01, 100.0) as f32)) }
                { field(Field { label: " δ", value: format!("{:e}", s.delta), range: ("1e-9", "0.1", "any"), id: "lab-delta" }, setter(lab, |s, v| s.delta = v.clamp(1e-9, 0.1))) }
            }
        </>
    }
}

/// Early stopping and fine-tuning, each a checkbox with what it does.
fn options(lab: &UseReducerHandle<LabState>) -> Html {
    let s = &lab.settings;
    let early = {
        let lab = lab.clone();
        Callback::from(move |e: Event| {
            let patience = checked(&e).then_some(5);
            lab.dispatch(LabAction::Settings(LabSettings {
                early_stopping: patience,
                ..lab.settings.clone()
            }));
        })
    };
    let tune = {
        let lab = lab.clone();
        Callback::from(move |e: Event| {
            lab.dispatch(LabAction::Settings(lab.settings.with_fine_tune(checked(&e))))
        })
    };
    html! {
        <div class="lab-options">
            <label class="toggle"><input type="checkbox" checked={s.early_stopping.is_some()} onchange={early} data-testid="lab-early" />{ " early stopping" }</label>
            if let Some(p) = s.early_stopping {
                { field(Field { label: " patience (epochs)", value: p.to_string(), range: ("1", "100", "1"), id: "lab-patience" }, setter(lab, |s, v| s.early_stopping = Some(v.clamp(1.0, 100.0) as usize))) }
                <p class="muted">{ "Each model sets a fifth of its training images aside, watches its loss on them after every epoch, stops after that many epochs without improving and keeps its best epoch. Your model's set-aside members are not trained on, so the attacks count them as held out (marked V)." }</p>
            }
            <label class="toggle"><input type="checkbox" checked={s.fine_tune} onchange={tune} data-testid="lab-fine-tune" />{ " fine-tune the whole network" }</label>
            if s.fine_tune {
                <p class="muted" data-testid="lab-fine-tune-note">{ "The convolutional layers of the shipped model train too, for every model: each costs about 70 times a head (measured with 60 images, 10 epochs and 8 shadow models: 7 s instead of 0.1 s), so the defaults drop to 10 epochs, learning rate 0.01 and 16 shadow models. A fine-tuned network usually memorises more: watch the attacks. DP-SGD needs a head on frozen features." }</p>
            }
        </div>
    }
}

/// The recipe panel.
#[function_component(LabSettingsPanel)]
pub fn lab_settings_panel(p: &LabSettingsProps) -> Html {
    let lab = &p.lab;
    let s = &lab.settings;
    let members = lab.images.iter().filter(|im| im.member).count();
    let refused = s.refused();
    html! {
        <section class="panel" id="lab-settings">
            <h2>{ "Training recipe" }</h2>
            <p class="explain">{ if s.fine_tune {
                "The shipped CIFAR-10 model is fine-tuned, all its layers and a new head, on your members; the shadow models follow the same recipe on random halves of all your images."
            } else {
                "A new head is trained on the shipped CIFAR-10 model's features of your members; the shadow models follow the same recipe on random halves of all your images."
            } }</p>
            { defense_select(lab) }
            { epsilon(s, members) }
            <div class="lab-fields">
                { field(Field { label: "epochs", value: s.epochs.to_string(), range: ("1", "500", "1"), id: "lab-epochs" }, setter(lab, |s, v| s.epochs = v.clamp(1.0, 500.0) as usize)) }
                { field(Field { label: "learning rate", value: s.lr.to_string(), range: ("0.001", "2", "0.01"), id: "lab-lr" }, setter(lab, |s, v| s.lr = v.clamp(0.001, 2.0))) }
                { field(Field { label: "batch size", value: s.batch_size.to_string(), range: ("1", "256", "1"), id: "lab-batch" }, setter(lab, |s, v| s.batch_size = v.clamp(1.0, 256.0) as usize)) }
                { field(Field { label: "hidden units (0 = linear)", value: s.hidden.to_string(), range: ("0", "512", "16"), id: "lab-hidden" }, setter(lab, |s, v| s.hidden = v.clamp(0.0, 512.0) as usize)) }
                { field(Field { label: "dropout", value: s.dropout.to_string(), range: ("0", "0.9", "0.05"), id: "lab-dropout" }, setter(lab, |s, v| s.dropout = v.clamp(0.0, 0.9))) }
                { field(Field { label: "weight decay", value: s.weight_decay.to_string(), range: ("0", "0.1", "0.0005"), id: "lab-wd" }, setter(lab, |s, v| s.weight_decay = v.clamp(0.0, 0.1) as f32)) }
                { field(Field { label: "shadow models", value: s.shadows.to_string(), range: ("6", "64", "2"), id: "lab-shadows" }, setter(lab, |s, v| s.shadows = (v.clamp(6.0, 64.0) as usize) & !1)) }
            </div>
            { options(lab) }
            if let Some(why) = refused { <p class="messages" data-testid="lab-refused">{ why }</p> }
        </section>
    }
}
