//! The guided first visit: a few short steps (what a membership attack is, the colours, a
//! defense, the adaptive attacker, an upload, the words), each scrolling to and outlining the
//! part of the page it talks about; in the lab, its own steps (classes and roles, the recipe,
//! a run, the cards and their intervals, the verdicts, the comparison, keeping the work).
//! Opened by the header's button or by `?tour` in the URL (`?view=lab&tour` for the lab's),
//! so a teacher can link to it as the start of a lab session.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

/// Each step: the element it points at (a CSS selector), its title and its text.
pub const STEPS: &[(&str, &str, &str)] = &[
    (
        "header",
        "What is a membership attack?",
        "A model is trained on some images (its members) and never sees others. A membership inference attack looks only at the model's answers and guesses which images were in the training set. If it guesses well, the model leaks its training data: a privacy problem when that data is medical records or your photos.",
    ),
    (
        "[data-testid=attack-confidence]",
        "Read a chart",
        "Every reference image gets a score. Blue bars are members, orange bars non-members; the red line is the attacker's threshold: images to its right are called members. The further apart blue and orange sit, the more the model leaks. AUC sums that up: 0.5 is guessing, 1 is perfect.",
    ),
    (
        "#defenses",
        "Try a defense",
        "Inference-time defenses change only what the model releases. Switch one on (Temperature, say) and watch the bars move; the dashed outlines stay where they were without the defense.",
    ),
    (
        "#attacker",
        "Try the adaptive attacker",
        "The naive attacker does not know about the defense, so its threshold can end up where (almost) no image reaches it: it then flags (almost) nothing, which looks like safety but is not. The adaptive attacker recalibrates on shadow models behind the same defense. Switch to it and see what the defense really hides.",
    ),
    (
        "#uploads",
        "Bring an image",
        "Drop a photo of your own. The model never trained on it, so every attack that flags it is wrong, and the page tells you how often that happens to unseen images at that threshold. Add a blue thumbnail to see a real member.",
    ),
    (
        "#glossary",
        "The words",
        "Hover over an underlined word anywhere on the page for its meaning, or open the glossary here. That is the tour: explore freely.",
    ),
];

/// The lab's steps, in the same form.
pub const LAB_STEPS: &[(&str, &str, &str)] = &[
    (
        "[data-testid=lab-class-0]",
        "Your classes and their roles",
        "Each class holds images: half become members (solid blue frame: the model trains on them), half stay held out (dashed orange). Click a thumbnail to flip its role, or \"re-draw members\" for a new random split. No images yet? \"try it with CIFAR-10 images\" fills three classes.",
    ),
    (
        "#lab-settings",
        "The recipe",
        "How your model trains: a head on the shipped model's features (or fine-tuning the whole network), epochs, learning rate, and a training-time defense. The shadow models follow the same recipe: that is what makes the attacker adaptive.",
    ),
    (
        "[data-testid=lab-train]",
        "Train and attack",
        "The page trains your model and the shadow models here, in this browser, then runs six attacks on your own members and held-out images. Nothing is uploaded.",
    ),
    (
        "[data-testid=lab-results]",
        "Read the results",
        "Each card shows one attack: blue your members, orange your held-out images, and its AUC with a 95 % interval over every draw (your model, then each shadow model as the target). An interval that contains 0.5 means this run cannot tell the attack from guessing. The thumbnails carry LiRA's verdicts: ✔ caught, ? missed, ✘ wrongly flagged.",
    ),
    (
        "[data-testid=lab-compare]",
        "Compare runs",
        "Change one thing (a defense, more epochs) and train again: every run lands in this table, and runs on the same images are compared pair by pair, so you can tell a real change from noise.",
    ),
    (
        "[data-testid=saved]",
        "Your work is kept",
        "The lab, its runs and the table stay in this browser: a reload or switching views keeps them. Export the lab to hand it in or move it to another computer; \"clear everything\" starts afresh.",
    ),
];

/// Props.
#[derive(Properties, PartialEq)]
pub struct TourProps {
    /// The open step, or None.
    pub step: Option<usize>,
    /// The lab's tour instead of the explore view's.
    #[prop_or_default]
    pub lab: bool,
    /// Go to a step (None closes the tour).
    pub on_step: Callback<Option<usize>>,
}

/// Removes every outline the tour drew.
fn clear_outlines(doc: &web_sys::Document) {
    if let Ok(old) = doc.query_selector_all(".tour-target") {
        for i in 0..old.length() {
            if let Some(e) = old.item(i).and_then(|n| n.dyn_into::<web_sys::Element>().ok()) {
                let _ = e.class_list().remove_1("tour-target");
            }
        }
    }
}

/// Outlines the element `selector` names, scrolling to it when `scroll`; whether it is there.
fn outline(doc: &web_sys::Document, selector: &str, scroll: bool) -> bool {
    let Some(el) = doc.query_selector(selector).ok().flatten() else { return false };
    if el.class_list().contains("tour-target") {
        return true;
    }
    let _ = el.class_list().add_1("tour-target");
    if scroll {
        let opts = web_sys::ScrollIntoViewOptions::new();
        opts.set_behavior(web_sys::ScrollBehavior::Smooth);
        opts.set_block(web_sys::ScrollLogicalPosition::Center);
        el.scroll_into_view_with_scroll_into_view_options(&opts);
    }
    true
}

/// Outlines and scrolls to the part of the page a step talks about. While the step stays open
/// the outline is kept: drawn once the part appears (a tour opened from a link starts before
/// the page has loaded) and again when the page redraws it, until `token` moves.
fn point_at(selector: Option<&'static str>, token: Rc<Cell<u64>>) {
    let mine = token.get();
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    clear_outlines(&doc);
    let Some(selector) = selector else { return };
    let mut scrolled = outline(&doc, selector, true);
    spawn_local(async move {
        // Half a second apart, for as long as a student could plausibly read one step.
        for _ in 0..1200 {
            crate::engine::sleep(500).await;
            if token.get() != mine {
                return;
            }
            scrolled = outline(&doc, selector, !scrolled) || scrolled;
        }
    });
}

/// The tour's card.
#[function_component(Tour)]
pub fn tour(p: &TourProps) -> Html {
    let steps = if p.lab { LAB_STEPS } else { STEPS };
    let token = use_memo((), |_| Cell::new(0u64));
    use_effect_with((p.step, p.lab), move |(step, _)| {
        let stop = token.clone();
        point_at(step.and_then(|s| steps.get(s)).map(|s| s.0), token);
        // The next step, or the card leaving the page (it moves when the page has loaded),
        // ends this step's outlining.
        move || stop.set(stop.get() + 1)
    });
    let Some(step) = p.step.filter(|&s| s < steps.len()) else { return html! {} };
    let (_, title, text) = steps[step];
    let go = |to: Option<usize>| {
        let cb = p.on_step.clone();
        Callback::from(move |_| cb.emit(to))
    };
    let last = step + 1 == steps.len();
    html! {
        <aside class="tour" role="dialog" aria-label="guided tour" data-testid="tour">
            <p class="tour-count">{ format!("{} of {}", step + 1, steps.len()) }</p>
            <h2>{ title }</h2>
            <p>{ text }</p>
            <div class="tour-buttons">
                if step > 0 { <button onclick={go(Some(step - 1))}>{ "back" }</button> }
                if last {
                    <button onclick={go(None)} data-testid="tour-next">{ "done" }</button>
                } else {
                    <button onclick={go(Some(step + 1))} data-testid="tour-next">{ "next" }</button>
                    <button onclick={go(None)} class="link">{ "close" }</button>
                }
            </div>
        </aside>
    }
}
