//! The lab page: wires the state reducer to the engine (loading, backend, inference) and to
//! the components, and derives the attack views from the state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::prelude::Device;
use mia_core::Model;
use mia_core::inference::Chain;
use mia_core::posterior::{argmax, softmax};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::analysis::{self, AttackView, Attacker, ModelData};
use crate::components::attack_card::AttackCard;
use crate::components::defense_panel::DefensePanel;
use crate::components::header::Header;
use crate::components::messages::Messages;
use crate::components::model_select::ModelSelect;
use crate::components::uploads::{Thumb, UploadView, Uploads};
use crate::engine::{self, Backend, SharedBundle};
use crate::state::{Action, State, Status, UploadEntry, chain};

/// Seed of the defenses' randomness in the lab.
const SEED: u64 = 7;
/// Where the bundle is served from, relative to the page.
const BUNDLE: &str = "pretrained";

type Devices = Rc<RefCell<HashMap<&'static str, Device>>>;
type Models = Rc<RefCell<HashMap<(u32, String), Rc<Model>>>>;

fn initial_backend() -> Backend {
    let param = web_sys::window().and_then(|w| w.location().search().ok()).and_then(|q| {
        q.split(['?', '&']).find_map(|kv| kv.strip_prefix("backend=").map(str::to_string))
    });
    match param.as_deref().and_then(Backend::parse) {
        Some(b) => b,
        None if engine::webgpu_exposed() => Backend::WebGpu,
        None => Backend::Flex,
    }
}

async fn device_for(devices: &Devices, backend: Backend) -> Result<Device, String> {
    if let Some(d) = devices.borrow().get(backend.name()) {
        return Ok(d.clone());
    }
    let d = engine::device(backend).await?;
    devices.borrow_mut().insert(backend.name(), d.clone());
    Ok(d)
}

async fn model_for(
    models: &Models,
    bundle: &SharedBundle,
    id: &str,
    epoch: u32,
    device: &Device,
) -> Result<Rc<Model>, String> {
    let key = (epoch, id.to_string());
    if let Some(m) = models.borrow().get(&key) {
        return Ok(m.clone());
    }
    let weights = &bundle.models.get(id).ok_or_else(|| format!("no weights for {id}"))?.weights;
    let m = Rc::new(engine::build(&bundle.manifest, id, weights, device)?);
    models.borrow_mut().insert(key, m.clone());
    Ok(m)
}

/// Runs the reference sample (and HAMP's noise images) through model `id`.
#[allow(clippy::too_many_arguments)]
async fn run_model(
    state: UseReducerHandle<State>,
    devices: Devices,
    models: Models,
    bundle: SharedBundle,
    backend: Backend,
    epoch: u32,
    id: String,
    started: f64,
) {
    let device = match device_for(&devices, backend).await {
        Ok(d) => d,
        Err(e) if backend == Backend::WebGpu => {
            state.dispatch(Action::BackendReady(
                Backend::Flex,
                Some(format!("WebGPU is not available ({e}); running on the CPU instead.")),
            ));
            state.dispatch(Action::UseBackend(Backend::Flex));
            return;
        }
        Err(e) => return state.dispatch(Action::Failed(e)),
    };
    let result = async {
        let model = model_for(&models, &bundle, &id, epoch, &device).await?;
        let r = &bundle.reference;
        let chunk = if backend == Backend::WebGpu { 250 } else { 50 };
        let t0 = engine::now_ms();
        let logits =
            engine::infer(&model, &device, &bundle.manifest, &r.pixels, r.len(), chunk).await?;
        let ms = engine::now_ms() - t0;
        let noise = engine::noise_images(&bundle.manifest);
        let n = noise.len() / bundle.manifest.input.numel();
        let z = engine::infer(&model, &device, &bundle.manifest, &noise, n, chunk).await?;
        let c = bundle.manifest.class_names.len();
        let random: Vec<Vec<f32>> = z
            .chunks(c)
            .map(|z| {
                let mut p = softmax(z);
                p.sort_by(|a, b| b.total_cmp(a));
                p
            })
            .collect();
        Ok::<_, String>((logits, random, ms))
    }
    .await;
    match result {
        Ok((logits, random, ms)) => state.dispatch(Action::Logits {
            epoch,
            model: id,
            logits: Rc::new(logits),
            random: Rc::new(random),
            ms,
            at: engine::now_ms() - started,
        }),
        Err(e) if backend == Backend::WebGpu => {
            state.dispatch(Action::BackendReady(
                Backend::Flex,
                Some(format!("WebGPU failed ({e}); running on the CPU instead.")),
            ));
            state.dispatch(Action::UseBackend(Backend::Flex));
        }
        Err(e) => state.dispatch(Action::Failed(e)),
    }
}

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

/// The page.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(State::default);
    let devices: Devices =
        (*use_mut_ref(|| Rc::new(RefCell::new(HashMap::new())))).borrow().clone();
    let models: Models = (*use_mut_ref(|| Rc::new(RefCell::new(HashMap::new())))).borrow().clone();
    let started = *use_memo((), |_| engine::now_ms());

    {
        let state = state.clone();
        use_effect_with((), move |_| {
            state.dispatch(Action::UseBackend(initial_backend()));
            spawn_local(async move {
                match engine::load_bundle(BUNDLE).await {
                    Ok(b) => state.dispatch(Action::Loaded(Rc::new(b))),
                    Err(e) => {
                        state.dispatch(Action::Failed(format!("cannot load the bundle: {e}")))
                    }
                }
            });
        });
    }
    {
        let have = state.logits.contains_key(&state.model);
        let deps = (state.backend_epoch, state.model.clone(), state.bundle.is_some(), have);
        let (state, devices, models) = (state.clone(), devices.clone(), models.clone());
        use_effect_with(deps, move |(epoch, id, loaded, have)| {
            if let (true, false, Some(bundle)) = (*loaded, *have, state.bundle.clone()) {
                let backend = state.backend;
                spawn_local(run_model(
                    state.clone(),
                    devices,
                    models,
                    bundle,
                    backend,
                    *epoch,
                    id.clone(),
                    started,
                ));
            }
        });
    }
    {
        // Uploads missing logits on the current model.
        let missing: Vec<usize> = state
            .uploads
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.logits.contains_key(&state.model))
            .map(|(i, _)| i)
            .collect();
        let deps = (
            missing.clone(),
            state.model.clone(),
            state.backend_epoch,
            state.logits.contains_key(&state.model),
        );
        let (state, devices, models) = (state.clone(), devices.clone(), models.clone());
        use_effect_with(deps, move |(missing, id, epoch, ready)| {
            if let (true, Some(bundle)) = (*ready, state.bundle.clone()) {
                for &i in missing {
                    let (state, devices, models, bundle, id, epoch) = (
                        state.clone(),
                        devices.clone(),
                        models.clone(),
                        bundle.clone(),
                        id.clone(),
                        *epoch,
                    );
                    let pixels = state.uploads[i].pixels.clone();
                    let backend = state.backend;
                    spawn_local(async move {
                        let result = async {
                            let device = device_for(&devices, backend).await?;
                            let model = model_for(&models, &bundle, &id, epoch, &device).await?;
                            engine::infer(&model, &device, &bundle.manifest, &pixels, 1, 1).await
                        }
                        .await;
                        match result {
                            Ok(l) => state.dispatch(Action::UploadLogits(i, id, Rc::new(l))),
                            Err(e) => state.dispatch(Action::Message(format!(
                                "could not run the upload: {e}"
                            ))),
                        }
                    });
                }
            }
        });
    }

    let bundle = state.bundle.clone();
    let spec_chain = chain(&state.toggles);
    let logits = state.logits.get(&state.model).cloned();
    let random = state.random.get(&state.model).cloned();
    let computed = {
        let bundle = bundle.clone();
        let deps = (
            state.model.clone(),
            spec_chain.clone(),
            state.attacker == Attacker::Adaptive,
            logits.clone(),
            random.clone(),
        );
        use_memo(deps, move |(id, ch, adaptive, logits, random)| {
            let (Some(b), Ok(ch), Some(l), Some(r)) = (bundle, ch, logits, random) else {
                return None;
            };
            let attacker = if *adaptive { Attacker::Adaptive } else { Attacker::Naive };
            Some(views(&b, id, l, r, ch, attacker))
        })
    };
    let thumbs = {
        let bundle = bundle.clone();
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
    };

    // Callbacks.
    let on_backend = {
        let state = state.clone();
        Callback::from(move |b: Backend| state.dispatch(Action::UseBackend(b)))
    };
    let on_select = {
        let state = state.clone();
        Callback::from(move |id: String| state.dispatch(Action::SelectModel(id)))
    };
    let on_toggle = {
        let state = state.clone();
        Callback::from(move |i: usize| state.dispatch(Action::Toggle(i)))
    };
    let on_param = {
        let state = state.clone();
        Callback::from(move |(i, j, v): (usize, usize, f32)| {
            state.dispatch(Action::SetParam(i, j, v))
        })
    };
    let on_attacker = {
        let state = state.clone();
        Callback::from(move |a: Attacker| state.dispatch(Action::SetAttacker(a)))
    };
    let on_dismiss = {
        let state = state.clone();
        Callback::from(move |()| state.dispatch(Action::Dismiss))
    };
    let on_files = {
        let state = state.clone();
        Callback::from(move |files: Vec<web_sys::File>| {
            let Some(bundle) = state.bundle.clone() else {
                state.dispatch(Action::Message(
                    "the model is still loading; try again in a moment".into(),
                ));
                return;
            };
            for f in files {
                let (state, bundle) = (state.clone(), bundle.clone());
                spawn_local(async move {
                    match engine::decode_upload(&f, &bundle.manifest).await {
                        Ok(u) => state.dispatch(Action::Uploaded(UploadEntry {
                            name: u.name,
                            pixels: Rc::new(u.pixels),
                            preview: u.preview,
                            logits: HashMap::new(),
                        })),
                        Err(e) => state.dispatch(Action::Message(e)),
                    }
                });
            }
        })
    };
    let on_reference = {
        let state = state.clone();
        Callback::from(move |i: usize| {
            let Some(b) = state.bundle.clone() else { return };
            let r = &b.reference;
            if i >= r.len() {
                return;
            }
            let preview = engine::preview(r.image(i), r.input.channels, r.input.width as u32)
                .unwrap_or_default();
            let kind = if r.is_member[i] { "member" } else { "non-member" };
            state.dispatch(Action::Uploaded(UploadEntry {
                name: format!("reference #{i} ({kind})"),
                pixels: Rc::new(r.image(i).to_vec()),
                preview,
                logits: HashMap::new(),
            }));
        })
    };

    let Some(bundle) = bundle else {
        return html! {
            <>
                <Header status={state.status.clone()} backend={state.backend} webgpu={engine::webgpu_exposed()} notice={state.notice.clone()} first_ms={None::<f64>} last={None::<(f64, usize)>} on_backend={on_backend} />
                <Messages messages={state.messages.clone()} on_dismiss={on_dismiss} />
            </>
        };
    };
    let manifest = &bundle.manifest;
    let entry = manifest.model(&state.model);
    let adaptive_available = bundle.models.get(&state.model).is_some_and(|m| m.shadows.is_some());
    let chain_now = spec_chain.clone().unwrap_or_default();
    let effective =
        |v: &AttackView| state.thresholds.get(v.id.name()).copied().unwrap_or(v.threshold);

    // Upload verdicts.
    let current = computed.as_ref().as_ref().and_then(|v| v.current.as_ref().ok());
    let lira = bundle.models.get(&state.model).and_then(|m| m.lira.as_ref());
    let c = manifest.class_names.len();
    let upload_ctx = match (&logits, &random) {
        (Some(l), Some(r)) => {
            analysis::context(&chain_now, l, c, &bundle.reference.is_member, r, SEED)
        }
        _ => Default::default(),
    };
    let upload_views: Vec<UploadView> = state
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
            let Ok(released) =
                analysis::release(&chain_now, z, c, &upload_ctx, SEED ^ (1 << 40) ^ i as u64)
            else {
                return view;
            };
            let p = softmax(&released);
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            view.top = order
                .iter()
                .take(3)
                .map(|&k| (manifest.class_names.get(k).cloned().unwrap_or_default(), p[k]))
                .collect();
            let label = argmax(&released);
            for (id, score) in analysis::upload_scores(&released, label, lira) {
                if let Some(v) = current.and_then(|c| c.iter().find(|v| v.id == id)) {
                    let t = effective(v);
                    view.verdicts.push((id.name().to_string(), score, t, score >= t));
                }
            }
            view
        })
        .collect();

    let cards = match computed.as_ref() {
        None => html! { <p class="muted">{ "running the reference sample…" }</p> },
        Some(Views { current: Err(e), .. }) => {
            html! { <p class="messages" data-testid="error">{ format!("cannot compute the attacks: {e}") }</p> }
        }
        Some(Views { current: Ok(current), ghost }) => html! {
            { for current.iter().map(|v| {
                let ghost = ghost.as_ref().and_then(|g| g.iter().find(|x| x.id == v.id).cloned());
                let native = entry.and_then(|e| e.attacks.iter().find(|a| a.name == v.id.name())).and_then(|a| a.reference_auc);
                let id = v.id;
                let state = state.clone();
                let marks: Vec<(String, f32)> = upload_views
                    .iter()
                    .filter_map(|u| u.verdicts.iter().find(|x| x.0 == id.name()).map(|x| (u.name.clone(), x.1)))
                    .collect();
                html! {
                    <AttackCard view={v.clone()} ghost={ghost} member={bundle.reference.is_member.clone()} native_auc={native}
                        threshold={effective(v)} marks={marks}
                        on_threshold={Callback::from(move |t| state.dispatch(Action::SetThreshold(id, t)))} />
                }
            }) }
        },
    };
    html! {
        <>
            <Header status={state.status.clone()} backend={state.backend} webgpu={engine::webgpu_exposed()} notice={state.notice.clone()} first_ms={state.first_ms} last={state.last_inference} on_backend={on_backend} />
            <Messages messages={state.messages.clone()} on_dismiss={on_dismiss} />
            if let Err(e) = &spec_chain {
                <p class="messages">{ e.clone() }</p>
            }
            <main>
                <div class="side">
                    <ModelSelect models={manifest.models.clone()} selected={state.model.clone()} on_select={on_select} />
                    <DefensePanel toggles={state.toggles.clone()} attacker={state.attacker} {adaptive_available} {on_toggle} {on_param} {on_attacker} />
                    <Uploads uploads={upload_views.clone()} thumbs={(*thumbs).clone()} {on_files} {on_reference} />
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
