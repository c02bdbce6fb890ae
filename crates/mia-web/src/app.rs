//! The lab page: wires the state reducer to the effects ([`crate::hooks`]) and to the
//! components, and derives the attack views and upload verdicts from the state.

use std::rc::Rc;

use mia_core::inference::Chain;
use yew::prelude::*;

use crate::analysis::{self, AttackView, Attacker, ModelData};
use crate::components::about::About;
use crate::components::attack_card::AttackCard;
use crate::components::charts::Mark;
use crate::components::defense_panel::DefensePanel;
use crate::components::glossary::Glossary;
use crate::components::header::Header;
use crate::components::lab::Lab;
use crate::components::messages::Messages;
use crate::components::model_select::ModelSelect;
use crate::components::tour::Tour;
use crate::components::uploads::{Thumb, UploadView, Uploads};
use crate::engine::{self, Backend, LoadedModel, SharedBundle};
use crate::hooks::{
    self, use_bundle, use_engine, use_model_files, use_reference_logits, use_upload_logits,
};
use crate::persist;
use crate::state::{Action, Saving, State, Status};
use crate::store::Key;
use crate::toggles::chain;
use crate::view_url;

/// Seed of the defenses' randomness in the lab.
const SEED: u64 = 7;

/// The attack views (released, and undefended ghosts when a defense is on).
#[derive(PartialEq)]
struct Views {
    current: Result<Vec<AttackView>, String>,
    ghost: Option<Vec<AttackView>>,
}

fn views(
    bundle: &SharedBundle,
    (id, files): (&str, &LoadedModel),
    logits: &[f32],
    random: &[Vec<f32>],
    chain: &Chain,
    attacker: Attacker,
) -> Views {
    let r = &bundle.reference;
    let c = bundle.manifest.class_names.len();
    let labels: Vec<usize> = r.labels.iter().map(|&l| usize::from(l)).collect();
    let files = Some(files);
    let thresholds: Vec<(String, f32)> = bundle
        .manifest
        .model(id)
        .map(|m| m.attacks.iter().filter_map(|a| Some((a.name.clone(), a.threshold?))).collect())
        .unwrap_or_default();
    let data = ModelData {
        classes: c,
        labels: &labels,
        is_member: &r.is_member,
        lira: files.and_then(|f| f.lira.as_ref()),
        shadows: files.and_then(|f| f.shadows.as_ref()),
        thresholds: &thresholds,
        references: random,
    };
    let current = (|| {
        let ctx = analysis::context(chain, logits, c, &r.is_member, random, SEED)
            .map_err(|e| e.to_string())?;
        let released =
            analysis::release(chain, logits, c, &ctx, SEED).map_err(|e| e.to_string())?;
        analysis::attacks(&data, chain, &released, attacker, SEED).map_err(|e| e.to_string())
    })();
    let ghost = if chain.steps.is_empty() {
        None
    } else {
        analysis::attacks(&data, &Chain::default(), logits, Attacker::Naive, SEED).ok()
    };
    Views { current, ghost }
}

/// The attack views of the current model and defense chain, recomputed when they change.
#[hook]
fn use_views(state: &State, spec_chain: &Result<Chain, String>) -> Rc<Option<Views>> {
    let deps = (
        state.model.clone(),
        spec_chain.clone(),
        state.attacker == Attacker::Adaptive,
        state.logits.get(&state.model).cloned(),
        state.random.get(&state.model).cloned(),
        state.models.get(&state.model).cloned(),
        state.awaiting_shadows(),
    );
    let bundle = state.bundle.clone();
    use_memo(deps, move |(id, ch, adaptive, logits, random, files, waiting)| {
        let (Some(b), Ok(ch), Some(l), Some(r), Some(f), false) =
            (bundle, ch, logits, random, files, *waiting)
        else {
            return None;
        };
        let attacker = if *adaptive { Attacker::Adaptive } else { Attacker::Naive };
        Some(views(&b, (id, f), l, r, ch, attacker))
    })
}

/// Four member and four non-member thumbnails of the reference sample, made once.
#[hook]
fn use_thumbs(bundle: Option<SharedBundle>) -> Rc<Vec<Thumb>> {
    use_memo(bundle.is_some(), move |_| {
        let Some(b) = bundle else { return Vec::new() };
        let r = &b.reference;
        let pick = |want: bool| (0..r.len()).filter(move |&i| r.is_member[i] == want).take(4);
        pick(true)
            .chain(pick(false))
            .filter_map(|i| {
                let url =
                    engine::preview(r.image(i), r.input.channels, r.input.width as u32).ok()?;
                Some(Thumb { index: i, url, member: r.is_member[i] })
            })
            .collect::<Vec<_>>()
    })
}

/// A callback that dispatches `action(value)`.
fn dispatch<T: 'static>(
    state: &UseReducerHandle<State>,
    action: impl Fn(T) -> Action + 'static,
) -> Callback<T> {
    let state = state.clone();
    Callback::from(move |v: T| state.dispatch(action(v)))
}

/// The threshold the attacker uses for `v`: the one the student dragged, else the calibrated one.
fn effective_threshold(state: &State, v: &AttackView) -> f32 {
    state.thresholds.get(v.id.name()).copied().unwrap_or(v.threshold)
}

/// Every upload's predictions and verdicts on the current model, released through `chain_now`.
fn upload_views(
    state: &State,
    bundle: &SharedBundle,
    chain_now: &Chain,
    current: Option<&[AttackView]>,
) -> Vec<UploadView> {
    let manifest = &bundle.manifest;
    let c = manifest.class_names.len();
    let is_member = &bundle.reference.is_member;
    let ctx = match (state.logits.get(&state.model), state.random.get(&state.model)) {
        (Some(l), Some(r)) => {
            analysis::context(chain_now, l, c, is_member, r, SEED).unwrap_or_default()
        }
        _ => Default::default(),
    };
    let class = |k: usize| manifest.class_names.get(k).cloned().unwrap_or_default();
    state
        .uploads
        .iter()
        .map(|u| {
            let mut view = UploadView {
                id: u.id,
                name: u.name.clone(),
                preview: u.preview.clone(),
                origin: u.origin,
                chosen: u.label,
                top: Vec::new(),
                label: None,
                verdicts: Vec::new(),
            };
            let (Some(z), Some(current)) = (u.logits.get(&state.model), current) else {
                return view;
            };
            let threshold = |v: &AttackView| effective_threshold(state, v);
            let at = (SEED, u.id as usize);
            let a = analysis::upload_analysis(
                chain_now, z, &ctx, at, u.origin, u.label, current, is_member, threshold,
            );
            if let Ok(a) = a {
                view.top = a.top.into_iter().map(|(k, p)| (class(k), p)).collect();
                view.label = Some((a.label, class(a.label.class())));
                view.verdicts = a.verdicts;
            }
            view
        })
        .collect()
}

/// One card per attack, with its undefended ghost and the uploads' numbered marks.
fn attack_cards(
    state: &UseReducerHandle<State>,
    bundle: &SharedBundle,
    computed: Option<&Views>,
    uploads: &[UploadView],
) -> Html {
    let entry = bundle.manifest.model(&state.model);
    if let Some(why) = state.broken.get(&state.model) {
        return html! {
            <p class="messages" data-testid="model-error">
                { format!("This model cannot be shown: {why} The other models in the menu still work.") }
            </p>
        };
    }
    let adaptive_available = state.adaptive_available();
    match computed {
        None if state.awaiting_shadows() => {
            html! { <p class="muted">{ "fetching the shadow models' outputs for the adaptive attacker…" }</p> }
        }
        None => html! { <p class="muted">{ "running the reference sample…" }</p> },
        Some(Views { current: Err(e), .. }) => {
            html! { <p class="messages" data-testid="error">{ format!("The attacks cannot be computed with these settings: {e}. Change a defense parameter or switch the defense off.") }</p> }
        }
        Some(Views { current: Ok(current), ghost }) => html! {
            { for current.iter().map(|v| {
                let ghost = ghost.as_ref().and_then(|g| g.iter().find(|x| x.id == v.id).cloned());
                let native = entry.and_then(|e| e.attacks.iter().find(|a| a.name == v.id.name())).and_then(|a| a.reference_auc);
                let id = v.id;
                let marks: Vec<Mark> = uploads
                    .iter()
                    .enumerate()
                    .filter_map(|(n, u)| {
                        let x = u.verdicts.iter().find(|x| x.attack == id)?;
                        Some(Mark { number: n + 1, name: u.name.clone(), score: x.score })
                    })
                    .collect();
                html! {
                    <AttackCard view={v.clone()} ghost={ghost} member={bundle.reference.is_member.clone()} native_auc={native}
                        threshold={effective_threshold(state, v)} marks={marks} attacker={state.attacker} {adaptive_available}
                        on_threshold={dispatch(state, move |t| Action::SetThreshold(id, t))}
                        on_adaptive={dispatch(state, |()| Action::SetAttacker(Attacker::Adaptive))} />
                }
            }) }
        },
    }
}

/// Whether the page's link asks for the lab (`?view=lab`, or a prepared lab with `?lab=`).
fn lab_requested() -> bool {
    let q = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    view_url::param(&q, "view").as_deref() == Some("lab") || view_url::param(&q, "lab").is_some()
}

/// Shows the lab or the explore view without reloading (both keep their state): the URL
/// changes as a link would (`?view=lab`, or the explore view's own query), so the back button
/// and shared links still work.
fn switch_view(lab_view: &UseStateHandle<bool>, to_lab: bool) {
    let Some(w) = web_sys::window() else { return };
    let current = w.location().search().unwrap_or_default();
    // The explore view's keys stay out of the lab's URL (the view itself is kept in memory and
    // in the browser): a reload of the lab must not bring back defenses cleared since.
    let mut drop = vec!["view", "lab"];
    if to_lab {
        drop.extend(view_url::KEYS);
    }
    let others = view_url::without(&current, &drop);
    let next = if to_lab {
        let rest = others.trim_start_matches('?');
        if rest.is_empty() { "?view=lab".to_string() } else { format!("?view=lab&{rest}") }
    } else {
        others
    };
    if let Ok(h) = w.history() {
        let _ = h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&next));
    }
    lab_view.set(to_lab);
}

/// Follows the back and forward buttons between the two views.
#[hook]
fn use_history(lab_view: &UseStateHandle<bool>) {
    let lab_view = lab_view.clone();
    hooks::use_window_event("popstate", move |_| lab_view.set(lab_requested()));
}

/// The two views, as links (each a URL a teacher can share) that switch in the page, how
/// keeping the work stands, and "clear everything".
fn nav(lab_view: &UseStateHandle<bool>, state: &UseReducerHandle<State>) -> Html {
    let lab = **lab_view;
    let go = |to_lab: bool| {
        let lab_view = lab_view.clone();
        Callback::from(move |e: MouseEvent| {
            // A click with a modifier opens the link in a new tab, as links do.
            if !(e.ctrl_key() || e.meta_key() || e.shift_key()) {
                e.prevent_default();
                switch_view(&lab_view, to_lab);
            }
        })
    };
    let clear = {
        let state = state.clone();
        Callback::from(move |_| persist::clear_everything(&state))
    };
    html! {
        <nav class="views">
            <a href="?" class={classes!((!lab).then_some("current"))} onclick={go(false)} data-testid="nav-explore">{ "Explore the shipped models" }</a>
            <a href="?view=lab" class={classes!(lab.then_some("current"))} onclick={go(true)} data-testid="nav-lab">{ "Lab: train on your own images" }</a>
            { persist::saved_note(state) }
            <button class="link" onclick={clear} data-testid="clear-everything" title="remove the lab and the uploads this page keeps in your browser">{ "clear everything" }</button>
        </nav>
    }
}

/// Whether the page was opened with `?tour` (a teacher's link to the guided first visit).
fn tour_requested() -> bool {
    web_sys::window().and_then(|w| w.location().search().ok()).is_some_and(|q| {
        q.trim_start_matches('?').split('&').any(|kv| kv == "tour" || kv.starts_with("tour="))
    })
}

/// The side panel: model, defenses and attacker, uploads.
fn side(
    state: &UseReducerHandle<State>,
    bundle: &SharedBundle,
    uploads: Vec<UploadView>,
    thumbs: &[Thumb],
) -> Html {
    let manifest = &bundle.manifest;
    let adaptive_available = state.adaptive_available();
    let on_files = {
        let state = state.clone();
        Callback::from(move |files| hooks::upload_files(&state, files))
    };
    let on_reference = {
        let state = state.clone();
        Callback::from(move |i| hooks::upload_reference(&state, i))
    };
    html! {
        <>
            <ModelSelect models={manifest.models.clone()} selected={state.model.clone()} broken={state.broken.clone()} on_select={dispatch(state, Action::SelectModel)} />
            <DefensePanel toggles={state.toggles.clone()} attacker={state.attacker} {adaptive_available}
                on_toggle={dispatch(state, Action::Toggle)}
                on_param={dispatch(state, |(i, j, v)| Action::SetParam(i, j, v))}
                on_attacker={dispatch(state, Action::SetAttacker)} />
            <Uploads uploads={uploads} thumbs={thumbs.to_vec()} classes={manifest.class_names.clone()} {on_files} {on_reference}
                index_members={manifest.members_index.as_ref().map(|i| i.members)}
                on_remove={dispatch(state, Action::RemoveUpload)}
                on_clear={dispatch(state, |()| Action::ClearUploads)}
                on_label={dispatch(state, |(id, l)| Action::SetUploadLabel(id, l))} />
            <About bundle={bundle.clone()} model={state.model.clone()} query={state.view_query()} />
            <Glossary />
        </>
    }
}

/// The page.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(State::default);
    let engine = use_engine();
    let started = *use_memo((), |_| engine::now_ms());
    use_bundle(state.clone());
    use_model_files(state.clone());
    hooks::use_shadow_files(state.clone());
    hooks::use_members_index(state.clone());
    let lab_view = use_state(lab_requested);
    use_history(&lab_view);
    use_reference_logits(state.clone(), engine.clone(), started);
    use_upload_logits(state.clone(), engine.clone());
    hooks::use_view_url(&state, *lab_view);
    persist::use_explore_store(&state);
    persist::use_leave_prompt(state.saving.get(&Key::Explore).is_some_and(|s| *s != Saving::Saved));
    {
        let state = state.clone();
        use_effect_with((), move |_| {
            if tour_requested() {
                state.dispatch(Action::Tour(Some(0)));
            }
        });
    }
    let controls_open = use_state(|| false);
    let spec_chain = chain(&state.toggles);
    let computed = use_views(&state, &spec_chain);
    let thumbs = use_thumbs(state.bundle.clone());

    let on_backend = {
        let state = state.clone();
        Callback::from(move |b: Backend| {
            // The CPU build has no WebGPU engine: the page reloads as the build that has it.
            if b == Backend::WebGpu && !engine::HAS_WEBGPU {
                if let Err(e) = engine::load_webgpu_build() {
                    state.dispatch(Action::BackendReady(state.backend, Some(e)));
                }
                return;
            }
            engine::remember_build(b);
            state.dispatch(Action::UseBackend(b));
        })
    };
    let on_dismiss = dispatch(&state, |()| Action::Dismiss);
    let on_tour = dispatch(&state, |()| Action::Tour(Some(0)));
    let header = html! {
        <>
            <Header status={state.status.clone()} backend={state.backend} webgpu={engine::webgpu_exposed()} notice={state.notice.clone()} first_ms={state.first_ms} last={state.last_inference.clone()} progress={state.progress} {on_backend} {on_tour} />
            <Messages messages={state.messages.clone()} on_dismiss={on_dismiss} />
            <Tour step={state.tour} lab={*lab_view} on_step={dispatch(&state, Action::Tour)} />
            { nav(&lab_view, &state) }
        </>
    };
    let Some(bundle) = state.bundle.clone() else { return header };
    let lab = html! {
        <div hidden={!*lab_view} data-testid="lab-view"><Lab main={state.clone()} engine={engine.clone()} shown={*lab_view} /></div>
    };
    let manifest = &bundle.manifest;
    let current = computed.as_ref().as_ref().and_then(|v| v.current.as_deref().ok());
    let chain_now = spec_chain.clone().unwrap_or_default();
    let uploads = upload_views(&state, &bundle, &chain_now, current);
    let cards = attack_cards(&state, &bundle, computed.as_ref().as_ref(), &uploads);
    let toggle_controls = {
        let open = controls_open.clone();
        Callback::from(move |_| open.set(!*open))
    };
    // The tour's middle steps point into the side panel: unfold it on small screens.
    let side_open = *controls_open || matches!(state.tour, Some(2..=5));
    // Both views stay mounted (switching keeps each one's state); one is hidden.
    html! {
        <>
            { header }
            <div hidden={*lab_view} data-testid="explore-view">
            if let Err(e) = &spec_chain {
                <p class="messages">{ e.clone() }</p>
            }
            <main>
                <div class="attacks">
                    <p class="explain">{ format!("{} reference images: {} members of the training set and {} non-members. Each attack scores every image; a good attack puts members (blue) to the right of non-members (orange).", bundle.reference.len(), manifest.reference.members, manifest.reference.non_members) }</p>
                    { cards }
                </div>
                <div class={classes!("side", side_open.then_some("open"))} data-testid="side">
                    { side(&state, &bundle, uploads, &thumbs) }
                </div>
            </main>
            <button class="controls-toggle" onclick={toggle_controls} data-testid="controls-toggle" aria-expanded={side_open.to_string()}>
                { if side_open { "show the charts" } else { "defenses, models & uploads" } }
            </button>
            if matches!(state.status, Status::Failed(_)) {
                <p class="muted">{ "Reload the page to try again." }</p>
            }
            </div>
            { lab }
        </>
    }
}
