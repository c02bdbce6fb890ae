//! The lab's training recipe: the defense and its parameters (ε of DP-SGD shown live), the
//! head, epochs, learning rate, batch size, early stopping, fine-tuning the whole network,
//! and the number of shadow models.

use mia_core::lab::file::{MAX_SHADOWS, MIN_SHADOWS};
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

/// What numbers a field takes besides its range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Any number.
    Real,
    /// Whole numbers.
    Whole,
    /// Even numbers (shadow models train in complementary pairs).
    Even,
}

/// `typed` brought into `[min, max]` (and to a whole or even number for such fields), with
/// what to tell the student when that changed it.
fn bound(label: &str, typed: f64, (min, max): (f64, f64), kind: Kind) -> (f64, Option<String>) {
    let rounded = match kind {
        Kind::Real => typed,
        Kind::Whole => typed.round(),
        Kind::Even => (typed / 2.0).round() * 2.0,
    };
    let used = rounded.clamp(min, max);
    let label = label.trim();
    let why = if used == typed {
        return (used, None);
    } else if !(min..=max).contains(&typed) {
        format!("{label}: {typed} is outside {min}–{max}, so {used} is used.")
    } else if kind == Kind::Even {
        format!("{label}: {typed} is odd (shadow models train in pairs), so {used} is used.")
    } else {
        format!("{label}: {typed} is not a whole number, so {used} is used.")
    };
    (used, Some(why))
}

/// A labelled number field.
struct Field {
    label: &'static str,
    value: String,
    range: (f64, f64),
    step: &'static str,
    kind: Kind,
    id: &'static str,
}

/// The field, whose number goes into the recipe through `apply` once in range; a number it
/// had to change is said ([`LabAction::Notice`]), not changed silently.
fn field(lab: &UseReducerHandle<LabState>, f: Field, apply: fn(&mut LabSettings, f64)) -> Html {
    let (label, range, kind) = (f.label, f.range, f.kind);
    let lab = lab.clone();
    let onchange = Callback::from(move |e: Event| {
        let Some(typed) = number(&e) else { return };
        let (used, why) = bound(label, typed, range, kind);
        let mut next = lab.settings.clone();
        apply(&mut next, used);
        lab.dispatch(LabAction::Settings(next));
        if let Some(why) = why {
            lab.dispatch(LabAction::Notice(why));
        }
    });
    let (min, max) = (f.range.0.to_string(), f.range.1.to_string());
    html! {
        <label class="param">{ f.label }{ " " }<input type="number" value={f.value} {min} {max} step={f.step} {onchange} data-testid={f.id} /></label>
    }
}

/// An f32 as the decimal it was written as (0.01, not 0.009999999776).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The loss defense's strength, in its own range (label smoothing's ε, RelaxLoss's α, …).
fn strength_field(lab: &UseReducerHandle<LabState>, range: (f64, f64), step: f32) -> Html {
    let step: &'static str = match step {
        x if x >= 0.1 => "0.1",
        x if x >= 0.05 => "0.05",
        _ => "0.01",
    };
    let f = Field {
        label: " strength",
        value: lab.settings.strength.to_string(),
        range,
        step,
        kind: Kind::Real,
        id: "lab-strength",
    };
    field(lab, f, |s, v| s.strength = v as f32)
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
                { strength_field(lab, (decimal(lo), decimal(hi)), step) }
            }
            if let Some(why) = s.defense.backfires() { <p class="caution" data-testid="lab-backfires">{ why }</p> }
            if s.defense == LabDefense::DpSgd {
                { field(lab, Field { label: " clip norm C", value: s.clip.to_string(), range: (0.01, 100.0), step: "0.1", kind: Kind::Real, id: "lab-clip" }, |s, v| s.clip = v as f32) }
                { field(lab, Field { label: " δ", value: format!("{:e}", s.delta), range: (1e-9, 0.1), step: "any", kind: Kind::Real, id: "lab-delta" }, |s, v| s.delta = v) }
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
                { field(lab, Field { label: " patience (epochs)", value: p.to_string(), range: (1.0, 100.0), step: "1", kind: Kind::Whole, id: "lab-patience" }, |s, v| s.early_stopping = Some(v as usize)) }
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
                { field(lab, Field { label: "epochs", value: s.epochs.to_string(), range: (1.0, 500.0), step: "1", kind: Kind::Whole, id: "lab-epochs" }, |s, v| s.epochs = v as usize) }
                { field(lab, Field { label: "learning rate", value: s.lr.to_string(), range: (0.001, 2.0), step: "0.01", kind: Kind::Real, id: "lab-lr" }, |s, v| s.lr = v) }
                { field(lab, Field { label: "batch size", value: s.batch_size.to_string(), range: (1.0, 256.0), step: "1", kind: Kind::Whole, id: "lab-batch" }, |s, v| s.batch_size = v as usize) }
                { field(lab, Field { label: "hidden units (0 = linear)", value: s.hidden.to_string(), range: (0.0, 512.0), step: "16", kind: Kind::Whole, id: "lab-hidden" }, |s, v| s.hidden = v as usize) }
                { field(lab, Field { label: "dropout", value: s.dropout.to_string(), range: (0.0, 0.9), step: "0.05", kind: Kind::Real, id: "lab-dropout" }, |s, v| s.dropout = v) }
                { field(lab, Field { label: "weight decay", value: s.weight_decay.to_string(), range: (0.0, 0.1), step: "0.0005", kind: Kind::Real, id: "lab-wd" }, |s, v| s.weight_decay = v as f32) }
                { field(lab, Field { label: "shadow models", value: s.shadows.to_string(), range: (MIN_SHADOWS as f64, MAX_SHADOWS as f64), step: "2", kind: Kind::Even, id: "lab-shadows" }, |s, v| s.shadows = v as usize) }
            </div>
            { options(lab) }
            if let Some(why) = refused { <p class="messages" data-testid="lab-refused">{ why }</p> }
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_in_range_is_used_as_typed_and_said_nothing_of() {
        assert_eq!(bound("epochs", 30.0, (1.0, 500.0), Kind::Whole), (30.0, None));
        assert_eq!(bound("dropout", 0.25, (0.0, 0.9), Kind::Real), (0.25, None));
    }

    #[test]
    fn a_number_out_of_range_is_clamped_and_said() {
        let (used, why) = bound("epochs", 0.0, (1.0, 500.0), Kind::Whole);
        assert_eq!(used, 1.0);
        assert_eq!(why.as_deref(), Some("epochs: 0 is outside 1–500, so 1 is used."));
        let (used, why) = bound("shadow models", 1000.0, (6.0, 64.0), Kind::Even);
        assert_eq!(used, 64.0);
        assert!(why.is_some_and(|w| w.contains("outside 6–64")));
    }

    #[test]
    fn an_odd_shadow_count_or_a_fraction_of_an_epoch_is_rounded_and_said() {
        let (used, why) = bound("shadow models", 7.0, (6.0, 64.0), Kind::Even);
        assert_eq!(used, 8.0);
        assert!(why.is_some_and(|w| w.contains("odd")));
        let (used, why) = bound(" patience (epochs)", 2.5, (1.0, 100.0), Kind::Whole);
        assert_eq!(used, 3.0);
        assert!(why.is_some_and(|w| w.starts_with("patience (epochs): 2.5 is not a whole number")));
    }
}
