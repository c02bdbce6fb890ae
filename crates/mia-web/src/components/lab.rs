//! Lab mode's page: the student's classes and images (file picker, drop, or CIFAR-10 images
//! shipped with the page), each image's role shown and flippable, the training recipe with its
//! defense (and ε for DP-SGD), a run with progress, ETA and Cancel, and then every attack on
//! the student's own members against their held-out images, with a verdict on each thumbnail.

use std::cell::Cell;
use std::rc::Rc;

use mia_core::lab::{AttackDraws, LabAttack};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use super::camera::Camera;
use super::glossary::Term;
use super::lab_card::LabCard;
use super::lab_compare::LabCompare;
use super::lab_settings::LabSettingsPanel;
use crate::engine::{self, Backend, SharedBundle};
use crate::hooks::Engine;
use crate::lab_files;
use crate::lab_run::{self, RunInputs};
use crate::lab_state::{ImportedNet, LabAction, LabDefense, LabImage, LabResult, LabState, Run};
use crate::persist;
use crate::state::{Saving, State, Status};
use crate::store::Key;
use crate::toggles::{Toggle, chain, toggles};

/// Props.
#[derive(Properties, PartialEq)]
pub struct LabProps {
    /// The explore view's state (bundle, model files, backend).
    pub main: UseReducerHandle<State>,
    /// The engine's caches.
    pub engine: Engine,
    /// Whether the lab is the view on screen.
    pub shown: bool,
}

/// The verdict attack on thumbnails: online LiRA, calling "member" when the likelihood ratio
/// favours IN (score > 0).
const VERDICT: LabAttack = LabAttack::LiraOnline;

/// CIFAR-10 classes the "try it" button fills, from the reference sample's non-members (the
/// shipped trunk never trained on them).
const SAMPLE: [(&str, usize); 3] = [("cat", 3), ("ship", 8), ("frog", 6)];
/// Images per class the "try it" button adds.
const SAMPLE_PER_CLASS: usize = 20;

/// Adds `files` to class `class`, decoded like uploads.
fn add_files(
    lab: &UseReducerHandle<LabState>,
    bundle: &SharedBundle,
    class: usize,
    files: Vec<web_sys::File>,
    main: &UseReducerHandle<State>,
) {
    let (lab, bundle, main) = (lab.clone(), bundle.clone(), main.clone());
    spawn_local(async move {
        let mut decoded = Vec::new();
        for f in files {
            match engine::decode_upload(&f, &bundle.manifest).await {
                Ok(u) => decoded.push((u.pixels, u.preview)),
                Err(e) => main.dispatch(crate::state::Action::Message(e)),
            }
        }
        lab.dispatch(LabAction::AddImages(class, decoded));
    });
}

/// Fills three classes with reference non-members of CIFAR-10 classes.
fn add_sample(lab: &UseReducerHandle<LabState>, bundle: &SharedBundle) {
    let r = &bundle.reference;
    for (k, (name, class)) in SAMPLE.iter().enumerate() {
        while lab.classes.len() <= k {
            lab.dispatch(LabAction::AddClass);
        }
        lab.dispatch(LabAction::Rename(k, (*name).to_string()));
        let images: Vec<(Vec<u8>, String)> = (0..r.len())
            .filter(|&i| !r.is_member[i] && usize::from(r.labels[i]) == *class)
            .take(SAMPLE_PER_CLASS)
            .map(|i| {
                let preview = engine::preview(r.image(i), r.input.channels, r.input.width as u32)
                    .unwrap_or_default();
                (r.image(i).to_vec(), preview)
            })
            .collect();
        lab.dispatch(LabAction::AddImages(k, images));
    }
}

/// Where a class's images come from: files (picked or dropped) and camera frames.
#[derive(Clone)]
struct Sources {
    files: Callback<(usize, Vec<web_sys::File>)>,
    snap: Callback<(usize, (Vec<u8>, String))>,
    input: mia_core::InputSpec,
}

fn class_panel(
    lab: &UseReducerHandle<LabState>,
    k: usize,
    sources: Sources,
    verdicts: &Option<Rc<LabResult>>,
) -> Html {
    let on_files = sources.files.clone();
    let on_snap = sources.snap.reform(move |frame| (k, frame));
    let name = lab.classes[k].clone();
    let images: Vec<&LabImage> = lab.images.iter().filter(|im| im.class == k).collect();
    let rename = {
        let lab = lab.clone();
        Callback::from(move |e: InputEvent| {
            let i: web_sys::HtmlInputElement = e.target_unchecked_into();
            lab.dispatch(LabAction::Rename(k, i.value()));
        })
    };
    let remove = {
        let lab = lab.clone();
        Callback::from(move |_| lab.dispatch(LabAction::RemoveClass(k)))
    };
    let pick = {
        let cb = on_files.clone();
        Callback::from(move |e: Event| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            let list = input.files();
            let files = list
                .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect())
                .unwrap_or_default();
            cb.emit((k, files));
            input.set_value("");
        })
    };
    let drop = {
        let cb = on_files.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let files = e
                .data_transfer()
                .and_then(|d| d.files())
                .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect())
                .unwrap_or_default();
            cb.emit((k, files));
        })
    };
    let over = Callback::from(|e: DragEvent| e.prevent_default());
    let members = images.iter().filter(|im| im.member).count();
    html! {
        <div class="lab-class" key={k} data-testid={format!("lab-class-{k}")} ondrop={drop} ondragover={over}>
            <div class="lab-class-head">
                <input type="text" value={name} oninput={rename} aria-label="class name" data-testid={format!("lab-class-name-{k}")} />
                <span class="muted">{ format!("{} images: {members} members, {} held out", images.len(), images.len() - members) }</span>
                if lab.classes.len() > 2 { <button onclick={remove} title="remove this class and its images">{ "×" }</button> }
            </div>
            <input type="file" accept="image/*" multiple=true onchange={pick} data-testid={format!("lab-files-{k}")} />
            <span class="muted">{ " or drop images here, or " }</span>
            <Camera input={sources.input} {on_snap} class={k} />
            <div class="lab-thumbs">
                { for images.iter().map(|im| thumb(lab, im, verdicts)) }
            </div>
        </div>
    }
}

fn thumb(lab: &UseReducerHandle<LabState>, im: &LabImage, result: &Option<Rc<LabResult>>) -> Html {
    let id = im.id;
    let flip = {
        let lab = lab.clone();
        Callback::from(move |_| lab.dispatch(LabAction::Flip(id)))
    };
    let verdict = result.as_ref().and_then(|r| {
        let j = r.ids.iter().position(|&x| x == id)?;
        let (_, scores, _) = r.attacks.iter().find(|a| a.0 == VERDICT)?;
        Some((scores[j] > 0.0, r.member[j]))
    });
    let validated = result.as_ref().is_some_and(|r| r.validation.contains(&id));
    let role = match (im.member, validated) {
        (true, true) => "member set aside for early stopping (not trained on: counted as held out)",
        (true, false) => "member",
        (false, _) => "held out",
    };
    // Three marks told apart by shape, not colour alone (the legend names them).
    let (mark, kind, title) = match verdict {
        Some((true, true)) => ("✔", "caught", "LiRA flags it as a member: right (caught)"),
        Some((true, false)) => ("✘", "wrong", "LiRA flags it as a member: wrong (it was held out)"),
        Some((false, true)) => ("?", "missed", "LiRA misses it: it was a member"),
        Some((false, false)) => ("", "", "LiRA does not flag it: right"),
        None => ("", "", ""),
    };
    html! {
        <button class={classes!("lab-thumb", if im.member { "member" } else { "nonmember" })} onclick={flip}
            title={format!("{role} (click to flip). {title}")} data-testid="lab-thumb" data-member={im.member.to_string()}>
            <img src={im.preview.clone()} alt={role} />
            if !mark.is_empty() { <span class={classes!("lab-verdict", kind)} data-testid="lab-verdict" data-verdict={kind}>{ mark }</span> }
            if validated { <span class="lab-validation" data-testid="lab-validation">{ "V" }</span> }
        </button>
    }
}

/// The inference-time defenses offered on the lab's results (HAMP needs the head's outputs on
/// random inputs, which the lab does not compute).
fn lab_toggles() -> Vec<Toggle> {
    toggles().into_iter().filter(|t| t.name != "hamp").collect()
}

/// Checkboxes for the inference-time defenses, at their default parameters.
fn defense_toggles(toggles: &UseStateHandle<Vec<Toggle>>) -> Html {
    html! {
        <div class="lab-defenses" data-testid="lab-inference-defenses">
            <b>{ "Inference-time defenses on your model's outputs: " }</b>
            { for toggles.iter().enumerate().map(|(i, t)| {
                let ts = toggles.clone();
                let flip = Callback::from(move |_| { let mut next = (*ts).clone(); next[i].enabled = !next[i].enabled; ts.set(next); });
                html! { <label class="toggle"><input type="checkbox" checked={t.enabled} onchange={flip} data-testid={format!("lab-toggle-{}", t.name)} />{ format!(" {} ", t.title) }</label> }
            }) }
            <p class="muted">{ "The shadow models' outputs go through the same defenses (the adaptive attacker); dashed outlines show the scores without them." }</p>
        </div>
    }
}

/// Scores and every attack's draws after the chosen inference-time defenses (None when none
/// is on).
type Defended = Option<(Vec<(LabAttack, Vec<f32>, f64)>, Vec<AttackDraws>)>;

/// Each attack's scores after the chosen inference-time defenses; an error when a defense
/// cannot run.
fn defended(r: &LabResult, toggles: &[Toggle]) -> Result<Defended, String> {
    let chain = chain(toggles)?;
    if chain.steps.is_empty() {
        return Ok(None);
    }
    let logits = lab_run::released(&r.logits, &r.member, &chain)?;
    let scores = lab_run::score(&logits, &r.member)?;
    Ok(Some((scores, lab_run::draws(&logits, &r.member)?)))
}

fn results(
    lab: &UseReducerHandle<LabState>,
    r: &Rc<LabResult>,
    thresholds: &UseStateHandle<Vec<Option<f32>>>,
    toggles: &UseStateHandle<Vec<Toggle>>,
) -> Html {
    let kept = if r.validation.is_empty() {
        String::new()
    } else {
        format!(
            " Early stopping kept epoch {} of {}; {} members were only validated on.",
            r.kept_epoch.0,
            r.kept_epoch.1,
            r.validation.len()
        )
    };
    let csv = {
        let (r, lab) = (r.clone(), lab.clone());
        Callback::from(move |_| {
            lab_files::download("mia-lab-scores.csv", "text/csv", &lab_files::scores_csv(&lab, &r))
        })
    };
    let json = {
        let (r, lab) = (r.clone(), lab.clone());
        Callback::from(move |_| {
            let text = lab_files::scores_json(&lab, &r);
            lab_files::download("mia-lab-scores.json", "application/json", &text)
        })
    };
    html! {
        <section class="lab-results" data-testid="lab-results">
            <h2>{ "Attacks on your images" }</h2>
            if lab.stale { <p class="warning">{ "You changed images or roles since this run: train again to update." }</p> }
            <p data-testid="lab-summary" data-ms={format!("{:.0}", r.ms)}>{ format!("Your model is right on {:.0}% of its members and {:.0}% of the held-out images; {} shadow models; {:.1} s.", 100.0 * r.accuracy.0, 100.0 * r.accuracy.1, r.shadows, r.ms / 1000.0) }{ kept }
                <button onclick={csv} data-testid="lab-csv">{ "download scores (CSV)" }</button>
                <button onclick={json} data-testid="lab-json">{ "(JSON)" }</button></p>
            { spent(r) }
            { fingerprint(r) }
            <p class="explain">{ format!("Each attack's mean and 95 % interval come from {} draws: your model, then each shadow model in turn, is the target and the others its reference models (the LiRA paper's protocol). The interval is where the mean lies; another run on the same images (another split, other seeds) has noise of its own and lands in the wider rerun range. Histograms and ROC curves show your own model's draw. ", r.shadows + 1) }{ "Blue: your members, orange: your held-out images. Thumbnails above carry LiRA's verdict without inference-time defenses: ✔ a member caught, ? a member missed, ✘ a held-out image wrongly flagged." }</p>
            { defense_toggles(toggles) }
            { match defended(r, toggles) {
                Err(e) => html! { <p class="messages" data-testid="lab-defense-error">{ format!("These defenses cannot run here: {e}.") }</p> },
                Ok(now) => lab_cards(r, now, thresholds),
            } }
        </section>
    }
}

/// One card per attack; `now` holds the scores after inference-time defenses, if any, and the
/// undefended scores become ghosts.
fn lab_cards(r: &LabResult, now: Defended, thresholds: &UseStateHandle<Vec<Option<f32>>>) -> Html {
    let ghosts: Vec<Option<Vec<f32>>> =
        r.attacks.iter().map(|a| now.as_ref().map(|_| a.1.clone())).collect();
    let (shown, draws) = now.unwrap_or_else(|| (r.attacks.clone(), r.draws.clone()));
    let n = shown.len();
    html! {
        <div class="attacks lab-cards">
            { for shown.iter().zip(ghosts).enumerate().map(|(k, ((a, scores, auc), ghost))| {
                let t = thresholds.get(k).copied().flatten().unwrap_or(if a.name().starts_with("lira") { 0.0 } else { median(scores) });
                let on = { let th = thresholds.clone(); Callback::from(move |v: f32| { let mut next = (*th).clone(); next.resize(n, None); next[k] = Some(v); th.set(next); }) };
                let draws = draws.iter().find(|d| d.attack == *a).cloned();
                html! { <LabCard attack={*a} name={a.name()} scores={scores.clone()} {ghost} member={r.member.clone()} auc={*auc} {draws} threshold={t} on_threshold={on} /> }
            }) }
        </div>
    }
}

/// Label smoothing's fingerprint, measured on this run: the share of members and of held-out
/// images whose confidence sits at the smoothed target.
fn fingerprint(r: &LabResult) -> Html {
    let Some(eps) = r.smoothing else { return html! {} };
    let l = &r.logits;
    let share = |want| {
        mia_core::lab::at_smoothing_target(
            &l.target,
            &l.labels,
            l.classes,
            eps,
            (&r.member, want),
            0.01,
        )
    };
    let target = 1.0 - eps + eps / l.classes as f32;
    html! {
        <p class="caution" data-testid="lab-smoothing-note">
            { format!("Label smoothing's fingerprint: {:.0}% of your members and {:.0}% of your held-out images have a confidence within 0.01 of the smoothed target {target:.3}. ", 100.0 * share(true), 100.0 * share(false)) }
            { LabDefense::LabelSmoothing.backfires().unwrap_or_default() }
        </p>
    }
}

/// What DP-SGD spent, with its δ, what that ε means, and a warning when δ ≥ 1/N.
fn spent(r: &LabResult) -> Html {
    let Some((e, delta)) = r.epsilon else { return html! {} };
    let warning = mia_core::privacy::delta_warning(delta, r.trained);
    html! {
        <p data-testid="lab-spent">
            { format!("DP-SGD spent ε = {e:.2} at δ = {delta:.0e}, counting every step taken (early stopping's extra epochs too): ") }
            { mia_core::privacy::epsilon_meaning(e, delta) }{ "." }
            if let Some(w) = warning { <br /><span class="caution" data-testid="lab-delta-warning">{ w }</span> }
        </p>
    }
}

fn median(v: &[f32]) -> f32 {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f32::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// What the last change could not do as asked, where the student is looking (a bar at the
/// bottom of the window) until the next change or a click on "OK".
fn notice(lab: &UseReducerHandle<LabState>) -> Html {
    let Some(text) = lab.notice.clone() else { return html! {} };
    let dismiss = {
        let lab = lab.clone();
        Callback::from(move |_: MouseEvent| lab.dispatch(LabAction::DismissNotice))
    };
    html! {
        <div class="lab-notice" role="status" data-testid="lab-notice">
            <span>{ text }</span>{ " " }<button onclick={dismiss} data-testid="lab-notice-ok">{ "OK" }</button>
        </div>
    }
}

/// The lab's buttons: the CIFAR-10 sample, classes, roles, images, export and import.
fn toolbar(
    lab: &UseReducerHandle<LabState>,
    main: &UseReducerHandle<State>,
    sample: Callback<MouseEvent>,
) -> Html {
    let send = |action: fn() -> LabAction| {
        let lab = lab.clone();
        Callback::from(move |_: MouseEvent| lab.dispatch(action()))
    };
    let input = main.bundle.as_ref().map(|b| b.manifest.input);
    let export = {
        let lab = lab.clone();
        Callback::from(move |_| {
            let Some(input) = input else { return };
            lab_files::download("mia-lab.json", "application/json", &lab_files::export(&lab, input))
        })
    };
    let import = {
        let (lab, main) = (lab.clone(), main.clone());
        Callback::from(move |e: Event| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            if let Some(f) = input.files().and_then(|l| l.get(0)) {
                lab_files::import(lab.clone(), main.clone(), f);
            }
            input.set_value("");
        })
    };
    html! {
        <div class="lab-tools">
            <button onclick={sample} data-testid="lab-sample">{ "try it with CIFAR-10 images" }</button>
            <button onclick={send(|| LabAction::AddClass)} data-testid="lab-add-class">{ "add a class" }</button>
            <button onclick={send(|| LabAction::Redraw)} data-testid="lab-redraw">{ "re-draw members" }</button>
            <button onclick={send(|| LabAction::ClearImages)}>{ "remove all images" }</button>
            <button onclick={export} data-testid="lab-export">{ "export the lab" }</button>
            <label class="import">{ "import a lab " }<input type="file" accept=".json,application/json" onchange={import} data-testid="lab-import" /></label>
        </div>
    }
}

/// Where the run stands: progress with the time left, why it stopped, or what is missing.
fn run_status(run: &Run, not_ready: Option<String>) -> Html {
    match run {
        Run::Running(what, done, total, ms) => {
            let eta = if *done > 0 {
                format!(
                    " · about {:.0} s left",
                    ms / *done as f64 * (*total - *done) as f64 / 1000.0
                )
            } else {
                String::new()
            };
            html! { <span><progress max={total.to_string()} value={done.to_string()} data-testid="lab-progress" />{ format!(" {what} ({done}/{total}){eta}") }</span> }
        }
        Run::Failed(e) => {
            html! { <span class="messages" data-testid="lab-error">{ format!("The run stopped: {e}.") }</span> }
        }
        _ => not_ready.map(|m| html! { <span class="muted">{ m }</span> }).unwrap_or_default(),
    }
}

/// What a run (or the check of an imported network) needs, once the shipped model's files
/// have loaded.
fn run_inputs(
    main: &UseReducerHandle<State>,
    engine: &Engine,
    cancel: Rc<Cell<bool>>,
) -> Option<RunInputs> {
    let bundle = main.bundle.clone()?;
    let id = bundle.manifest.models.first()?.id.clone();
    let files = main.models.get(&id)?.clone();
    Some(RunInputs {
        bundle,
        model: (id, files),
        backend: (main.backend, main.backend_epoch),
        engine: engine.clone(),
        cancel,
    })
}

/// Rebuilds a network read from a lab file and measures it on the lab's images, again after
/// the images or roles change.
#[hook]
fn use_imported_check(
    lab: &UseReducerHandle<LabState>,
    main: &UseReducerHandle<State>,
    engine: &Engine,
) {
    let ready = run_inputs(main, engine, Rc::default()).is_some();
    let pending = ready && lab.imported.as_ref().is_some_and(|n| n.check.is_none());
    let (lab, main, engine) = (lab.clone(), main.clone(), engine.clone());
    use_effect_with(pending, move |&pending| {
        if let Some(inputs) = run_inputs(&main, &engine, Rc::default()).filter(|_| pending) {
            let snap = Rc::new((*lab).clone());
            spawn_local(async move {
                let check = lab_run::check_imported(&snap, &inputs).await;
                lab.dispatch(LabAction::Checked(check));
            });
        }
    });
}

/// What the network saved in an imported lab file does on the lab's images.
fn imported(net: &ImportedNet) -> Html {
    let what = match (net.shape.fine_tuned, net.shape.hidden) {
        (true, _) => "a fine-tuned network".to_string(),
        (false, 0) => "a linear head".to_string(),
        (false, h) => format!("a head with {h} hidden units"),
    };
    let text = match &net.check {
        None => format!("Checking the network saved in the file ({what})…"),
        Some(Ok((m, h))) => format!(
            "The network saved in the file ({what}) is right on {:.0}% of the images marked member and {:.0}% of the held-out ones. Train again to run the attacks.",
            100.0 * m,
            100.0 * h
        ),
        Some(Err(e)) => format!("The network saved in the file could not be used: {e}."),
    };
    html! { <p data-testid="lab-imported">{ text }</p> }
}

/// A prepared lab's instructions and questions, beside the lab.
fn instructions(lab: &LabState) -> Html {
    let Some(i) = &lab.instructions else { return html! {} };
    html! {
        <aside class="panel lab-instructions" data-testid="lab-instructions">
            <h2>{ i.title.clone() }</h2>
            { for i.text.split("\n\n").map(|p| html! { <p>{ p.to_string() }</p> }) }
            if !i.questions.is_empty() {
                <h3>{ "Questions" }</h3>
                <ol data-testid="lab-questions">{ for i.questions.iter().map(|q| html! { <li>{ q.clone() }</li> }) }</ol>
            }
        </aside>
    }
}

/// Warms the trainer up ([`lab_run::warm_up`]) once per page, when the lab is first shown on
/// the CPU path after the explore view's first distributions; setting `stop` ends it (a run
/// started).
#[hook]
fn use_warm_up(shown: bool, main: &UseReducerHandle<State>, stop: Rc<Cell<bool>>) {
    let done = use_mut_ref(|| false);
    let ready = shown && main.backend == Backend::Flex && main.status == Status::Ready;
    use_effect_with(ready, move |&ready| {
        if ready && !*done.borrow() {
            *done.borrow_mut() = true;
            // Its outcome is only marked (tests/e2e/labmode.mjs reads the marks): stopped or
            // not, the student's run does not need it.
            spawn_local(async move {
                engine::mark("mia-lab-warm-up-start");
                let end = match lab_run::warm_up(stop).await {
                    Ok(()) => "mia-lab-warm-up-done",
                    Err(_) => "mia-lab-warm-up-stopped",
                };
                engine::mark(end);
            });
        }
    });
}

/// When a run finishes, brings its results into view (on a phone they sit far below the
/// button).
#[hook]
fn use_show_results(running: bool) {
    let was_running = use_mut_ref(|| false);
    use_effect_with(running, move |&running| {
        if *was_running.borrow() && !running {
            let doc = web_sys::window().and_then(|w| w.document());
            if let Some(el) =
                doc.and_then(|d| d.query_selector("[data-testid=lab-results]").ok().flatten())
            {
                let opts = web_sys::ScrollIntoViewOptions::new();
                opts.set_block(web_sys::ScrollLogicalPosition::Start);
                el.scroll_into_view_with_scroll_into_view_options(&opts);
            }
        }
        *was_running.borrow_mut() = running;
    });
}

/// The lab page.
#[function_component(Lab)]
pub fn lab(p: &LabProps) -> Html {
    let lab = use_reducer(LabState::default);
    let cancel = use_mut_ref(|| Rc::new(Cell::new(false)));
    let warm_stop = (*use_mut_ref(|| Rc::new(Cell::new(false)))).borrow().clone();
    let thresholds = use_state(Vec::new);
    let toggles = use_state(lab_toggles);
    let main = &p.main;
    use_imported_check(&lab, main, &p.engine);
    persist::use_lab_store(&lab, main);
    let running = matches!(lab.run, Run::Running(..));
    let unsaved = matches!(main.saving.get(&Key::Lab), Some(Saving::Pending | Saving::Failed(_)));
    persist::use_leave_prompt(running || unsaved);
    use_show_results(running);
    use_warm_up(p.shown, main, warm_stop.clone());
    let Some(bundle) = main.bundle.clone() else {
        return html! { <p class="muted">{ "loading…" }</p> };
    };
    let model_id = bundle.manifest.models.first().map(|m| m.id.clone()).unwrap_or_default();
    let files = main.models.get(&model_id).cloned();
    let sources = Sources {
        files: {
            let (lab, bundle, main) = (lab.clone(), bundle.clone(), main.clone());
            Callback::from(move |(k, f)| add_files(&lab, &bundle, k, f, &main))
        },
        snap: {
            let lab = lab.clone();
            Callback::from(move |(k, frame)| lab.dispatch(LabAction::AddImages(k, vec![frame])))
        },
        input: bundle.manifest.input,
    };
    let sample = {
        let (lab, bundle) = (lab.clone(), bundle.clone());
        Callback::from(move |_| add_sample(&lab, &bundle))
    };
    let train = {
        let (lab, main, engine, cancel, thresholds) =
            (lab.clone(), main.clone(), p.engine.clone(), cancel.clone(), thresholds.clone());
        Callback::from(move |_| {
            warm_stop.set(true);
            let flag = Rc::new(Cell::new(false));
            let Some(inputs) = run_inputs(&main, &engine, flag.clone()) else { return };
            *cancel.borrow_mut() = flag;
            thresholds.set(Vec::new());
            spawn_local(lab_run::run(lab.clone(), Rc::new((*lab).clone()), inputs));
        })
    };
    let stop = {
        let cancel = cancel.clone();
        Callback::from(move |_| cancel.borrow().set(true))
    };
    let result = match &lab.run {
        Run::Done(r) => Some(r.clone()),
        _ => None,
    };
    let not_ready = lab
        .not_ready()
        .or_else(|| files.is_none().then(|| "The shipped model is still loading.".to_string()))
        .or_else(|| lab.settings.refused());
    html! {
        <div class={classes!("lab", lab.instructions.is_some().then_some("prepared"))} data-testid="lab">
            { instructions(&lab) }
            <section class="panel">
                <h2>{ "Lab: attack a model trained on your own images" }</h2>
                <p class="explain">{ "Make 2–10 classes and give each some images. Half of each class become " }<Term name="member" text="members" />{ " (the model trains on them), half stay held out; click a thumbnail to flip its role. Then train: the page trains your model and " }<Term name="shadow model" text="shadow models" />{ " right here and runs every attack on your images. Your images never leave this browser." }</p>
                { toolbar(&lab, main, sample) }
                <p class="muted"><span class="swatch member"></span>{ " member (trained on) " }<span class="swatch nonmember"></span>{ " held out" }
                    if result.is_some() { <span data-testid="lab-verdict-legend">{ " · after a run, LiRA's verdicts: " }<span class="lab-verdict-key caught">{ "✔" }</span>{ " member caught " }<span class="lab-verdict-key missed">{ "?" }</span>{ " member missed " }<span class="lab-verdict-key wrong">{ "✘" }</span>{ " held-out image wrongly flagged" }</span> }
                </p>
                { for (0..lab.classes.len()).map(|k| class_panel(&lab, k, sources.clone(), &result)) }
            </section>
            <LabSettingsPanel lab={lab.clone()} />
            <section class="panel lab-run">
                <button class="primary" onclick={train} disabled={running || not_ready.is_some()} data-testid="lab-train">{ "train and attack" }</button>
                if running { <button onclick={stop} data-testid="lab-cancel">{ "cancel" }</button> }
                { run_status(&lab.run, not_ready) }
                if let Some(net) = &lab.imported { { imported(net) } }
            </section>
            { result.map(|r| results(&lab, &r, &thresholds, &toggles)).unwrap_or_default() }
            <LabCompare lab={lab.clone()} />
            { notice(&lab) }
        </div>
    }
}
