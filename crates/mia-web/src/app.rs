//! The lab page: wires the state reducer to the effects ([`crate::hooks`]) and to the
//! components, and derives the attack views and upload verdicts from the state.

use std::rc::Rc;

use mia_core::inference::Chain;
use yew::prelude::*;

use crate::analysis::{self, AttackView, Attacker, ModelData};
use crate::components::attack_card::AttackCard;
use crate::components::defense_panel::DefensePanel;
use crate::components::header::Header;
use crate::components::messages::Messages;
use crate::components::model_select::ModelSelect;
use crate::components::uploads::{Thumb, UploadView, Uploads};
use crate::engine::{self, SharedBundle};
use crate::hooks::{self, use_bundle, use_engine, use_reference_logits, use_upload_logits};
use crate::state::{Action, State, Status, chain};

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
    id: &str,
    logits: &[f32],
    random: &[Vec<f32>],
    chain: &Chain,
    attacker: Attacker,
) -> Views {
    let r = &bundle.reference;
    let c = bundle.manifest.class_names.len();
    let labels: Vec<usize> = r.labels.iter().map(|&l| usize::from(l)).collect();
    let files = bundle.models.get(id);
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
        let ctx = analysis::context(chain, logits, c, &r.is_member, random, SEED);
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
    );
    let bundle = state.bundle.clone();
    use_memo(deps, move |(id, ch, adaptive, logits, random)| {
        let (Some(b), Ok(ch), Some(l), Some(r)) = (bundle, ch, logits, random) else {
            return None;
        };
        let attacker = if *adaptive { Attacker::Adaptive } else { Attacker::Naive };
        Some(views(&b, id, l, r, ch, attacker))
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
    let lira = bundle.models.get(&state.model).and_then(|m| m.lira.as_ref());
    let c = manifest.class_names.len();
    let ctx = match (state.logits.get(&state.model), state.random.get(&state.model)) {
        (Some(l), Some(r)) => {
            analysis::context(chain_now, l, c, &bundle.reference.is_member, r, SEED)
        }
        _ => Default::default(),
    };
    let threshold = |a| {
        let v = current?.iter().find(|v| v.id == a)?;
        Some(effective_threshold(state, v))
    };
    state
        .uploads
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut view = UploadView {
                name: u.name.clone(),
                preview: u.preview.clone(),
                top: Vec::new(),
                verdicts: Vec::new(),
            };
            let Some(z) = u.logits.get(&state.model) else { return view };
            if let Ok(a) = analysis::upload_analysis(chain_now, z, &ctx, SEED, i, lira, threshold) {
                let class = |k: usize| manifest.class_names.get(k).cloned().unwrap_or_default();
                view.top = a.top.into_iter().map(|(k, p)| (class(k), p)).collect();
                view.verdicts = a.verdicts;
            }
            view
        })
        .collect()
}

/// One card per attack, with its undefended ghost and the uploads' marks.
fn attack_cards(
    state: &UseReducerHandle<State>,
    bundle: &SharedBundle,
    computed: Option<&Views>,
    uploads: &[UploadView],
) -> Html {
    let entry = bundle.manifest.model(&state.model);
    match computed {
        None => html! { <p class="muted">{ "running the reference sample…" }</p> },
        Some(Views { current: Err(e), .. }) => {
            html! { <p class="messages" data-testid="error">{ format!("cannot compute the attacks: {e}") }</p> }
        }
        Some(Views { current: Ok(current), ghost }) => html! {
            { for current.iter().map(|v| {
                let ghost = ghost.as_ref().and_then(|g| g.iter().find(|x| x.id == v.id).cloned());
                let native = entry.and_then(|e| e.attacks.iter().find(|a| a.name == v.id.name())).and_then(|a| a.reference_auc);
                let id = v.id;
                let marks: Vec<(String, f32)> = uploads
                    .iter()
                    .filter_map(|u| u.verdicts.iter().find(|x| x.attack == id).map(|x| (u.name.clone(), x.score)))
                    .collect();
                html! {
                    <AttackCard view={v.clone()} ghost={ghost} member={bundle.reference.is_member.clone()} native_auc={native}
                        threshold={effective_threshold(state, v)} marks={marks}
                        on_threshold={dispatch(state, move |t| Action::SetThreshold(id, t))} />
                }
            }) }
        },
    }
}

/// The page.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(State::default);
    let engine = use_engine();
    let started = *use_memo((), |_| engine::now_ms());
    use_bundle(state.clone());
    use_reference_logits(state.clone(), engine.clone(), started);
    use_upload_logits(state.clone(), engine);
    let spec_chain = chain(&state.toggles);
    let computed = use_views(&state, &spec_chain);
    let thumbs = use_thumbs(state.bundle.clone());

    let on_backend = dispatch(&state, Action::UseBackend);
    let on_dismiss = dispatch(&state, |()| Action::Dismiss);
    let header = html! {
        <>
            <Header status={state.status.clone()} backend={state.backend} webgpu={engine::webgpu_exposed()} notice={state.notice.clone()} first_ms={state.first_ms} last={state.last_inference} on_backend={on_backend} />
            <Messages messages={state.messages.clone()} on_dismiss={on_dismiss} />
        </>
    };
    let Some(bundle) = state.bundle.clone() else { return header };
    let manifest = &bundle.manifest;
    let adaptive_available = bundle.models.get(&state.model).is_some_and(|m| m.shadows.is_some());
    let current = computed.as_ref().as_ref().and_then(|v| v.current.as_deref().ok());
    let chain_now = spec_chain.clone().unwrap_or_default();
    let uploads = upload_views(&state, &bundle, &chain_now, current);
    let cards = attack_cards(&state, &bundle, computed.as_ref().as_ref(), &uploads);
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
            { header }
            if let Err(e) = &spec_chain {
                <p class="messages">{ e.clone() }</p>
            }
            <main>
                <div class="side">
                    <ModelSelect models={manifest.models.clone()} selected={state.model.clone()} on_select={dispatch(&state, Action::SelectModel)} />
                    <DefensePanel toggles={state.toggles.clone()} attacker={state.attacker} {adaptive_available}
                        on_toggle={dispatch(&state, Action::Toggle)}
                        on_param={dispatch(&state, |(i, j, v)| Action::SetParam(i, j, v))}
                        on_attacker={dispatch(&state, Action::SetAttacker)} />
                    <Uploads uploads={uploads} thumbs={(*thumbs).clone()} {on_files} {on_reference} />
                </div>
                <div class="attacks">
                    <p class="explain">{ format!("{} reference images: {} members of the training set and {} non-members. Each attack scores every image; a good attack puts members (blue) to the right of non-members (orange).", bundle.reference.len(), manifest.reference.members, manifest.reference.non_members) }</p>
                    { cards }
                </div>
            </main>
            if matches!(state.status, Status::Failed(_)) {
                <p class="muted">{ "Reload the page to try again." }</p>
            }
        </>
    }
}
