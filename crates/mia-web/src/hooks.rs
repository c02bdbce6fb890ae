//! The lab's effects as custom hooks: loading the bundle, running the reference sample through
//! the selected model, and running uploads that lack logits. Each dispatches [`Action`]s when
//! its work is done; a WebGPU failure falls back to the CPU in one place
//! ([`fall_back_to_cpu`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::prelude::Device;
use mia_core::Model;
use mia_core::posterior::softmax;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::analysis::{Attacker, Known, Origin};
use crate::engine::{self, Backend, LoadedModel, SharedBundle};
use crate::pool::{self, Pool};
use crate::state::{Action, MembersIndexState, State, Threads, UploadEntry};
use crate::view_url;

/// Where the bundle is served from, relative to the page.
const BUNDLE: &str = "pretrained";

/// Built models by (backend generation, model id).
type ModelCache = HashMap<(u32, String), Rc<Model>>;

/// Devices and built models, cached across renders (a model per backend generation and id).
#[derive(Clone, Default)]
pub struct Engine {
    devices: Rc<RefCell<HashMap<&'static str, Device>>>,
    /// Backends whose device is being initialised (WebGPU refuses a second registration).
    starting: Rc<RefCell<Vec<&'static str>>>,
    models: Rc<RefCell<ModelCache>>,
    helpers: Rc<RefCell<Helpers>>,
}

/// The CPU path's helper threads: not asked for yet, running, or off (and why).
#[derive(Default)]
enum Helpers {
    #[default]
    Unstarted,
    Running(Rc<Pool>),
    Off(String),
}

/// One model of the bundle to run images through, on a device of a backend generation.
pub(crate) struct Inference<'a> {
    pub bundle: &'a SharedBundle,
    pub id: &'a str,
    pub files: &'a LoadedModel,
    pub epoch: u32,
    pub device: &'a Device,
    pub backend: Backend,
}

impl Engine {
    /// The device of `backend`, initialised once: a caller that arrives while another is
    /// initialising it waits for that one.
    pub(crate) async fn device(&self, backend: Backend) -> Result<Device, String> {
        let name = backend.name();
        loop {
            if let Some(d) = self.devices.borrow().get(name) {
                return Ok(d.clone());
            }
            if !self.starting.borrow().contains(&name) {
                break;
            }
            engine::yield_now().await;
        }
        self.starting.borrow_mut().push(name);
        let d = engine::device(backend).await;
        self.starting.borrow_mut().retain(|&n| n != name);
        let d = d?;
        self.devices.borrow_mut().insert(name, d.clone());
        Ok(d)
    }

    /// Model `id` (its `files`) built on `device` for backend generation `epoch`, built once.
    pub(crate) async fn model(
        &self,
        bundle: &SharedBundle,
        (id, files): (&str, &LoadedModel),
        epoch: u32,
        device: &Device,
    ) -> Result<Rc<Model>, String> {
        let key = (epoch, id.to_string());
        if let Some(m) = self.models.borrow().get(&key) {
            return Ok(m.clone());
        }
        let m = Rc::new(engine::build(&bundle.manifest, id, &files.weights, device)?);
        self.models.borrow_mut().insert(key, m.clone());
        Ok(m)
    }

    /// The CPU path's helper threads, started on first use: the page starts them as it opens
    /// on the CPU path, so that they are ready when the bundle has arrived.
    pub(crate) fn helpers(&self) -> Result<Rc<Pool>, String> {
        let mut helpers = self.helpers.borrow_mut();
        if matches!(*helpers, Helpers::Unstarted) {
            *helpers = match pool::wanted_threads().and_then(Pool::start) {
                Ok(p) => Helpers::Running(Rc::new(p)),
                Err(why) => Helpers::Off(why),
            };
        }
        match &*helpers {
            Helpers::Running(p) => Ok(p.clone()),
            Helpers::Off(why) => Err(why.clone()),
            Helpers::Unstarted => Err("the helper threads did not start".into()),
        }
    }

    /// Logits of the `n` images `input` under `run`'s model, in the backend's chunks: on the
    /// CPU path split between the helper threads where they run (a failure stops them and
    /// the page computes on its own thread), else on the page's thread, which builds the
    /// model only then. Also where they ran and the ms computing them took, once the model
    /// was built.
    pub(crate) async fn infer(
        &self,
        run: &Inference<'_>,
        input: (&[u8], usize),
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<f32>, Threads, f64), String> {
        let manifest = &run.bundle.manifest;
        let chunk = if run.backend == Backend::WebGpu { 250 } else { 50 };
        let alone = match run.backend {
            Backend::WebGpu => None,
            Backend::Flex => Some(self.infer_on_helpers(run, input, chunk, progress).await),
            #[cfg(feature = "ndarray")]
            Backend::NdArray => Some(Err("ndarray runs on the page's thread".to_string())),
        };
        let why = match alone {
            None => Threads::Gpu,
            Some(Ok(logits)) => return Ok(logits),
            Some(Err(why)) => Threads::Alone(why),
        };
        let model = self.model(run.bundle, (run.id, run.files), run.epoch, run.device).await?;
        let t0 = engine::now_ms();
        let logits = engine::infer(&model, run.device, manifest, input, chunk, progress).await?;
        Ok((logits, why, engine::now_ms() - t0))
    }

    /// [`Engine::infer`] on the helper threads; an error says why they cannot.
    async fn infer_on_helpers(
        &self,
        run: &Inference<'_>,
        input: (&[u8], usize),
        chunk: usize,
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<f32>, Threads, f64), String> {
        let pool = self.helpers()?;
        let manifest = &run.bundle.manifest;
        let computed = async {
            pool.load(manifest, (run.id, run.files.weights.as_slice())).await?;
            let t0 = engine::now_ms();
            let logits = pool.infer(manifest, run.id, input, chunk, progress).await?;
            Ok::<_, String>((logits, engine::now_ms() - t0))
        };
        match computed.await {
            Ok((logits, ms)) => Ok((logits, Threads::Helpers(pool.threads()), ms)),
            Err(why) => {
                *self.helpers.borrow_mut() = Helpers::Off(why.clone());
                Err(why)
            }
        }
    }
}

impl PartialEq for Engine {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.devices, &other.devices) && Rc::ptr_eq(&self.models, &other.models)
    }
}

/// The engine caches of this page.
#[hook]
pub fn use_engine() -> Engine {
    (*use_mut_ref(Engine::default)).borrow().clone()
}

/// The backend asked for in the URL (`?backend=flex|ndarray|webgpu`); else WebGPU in the WebGPU
/// build (the visitor picked it: the loader starts every other visit on the CPU build); else
/// the CPU, with a notice that offers WebGPU where a hardware adapter has it or says why not.
fn initial_backend() -> (Backend, Option<String>) {
    let param = web_sys::window().and_then(|w| w.location().search().ok()).and_then(|q| {
        q.split(['?', '&']).find_map(|kv| kv.strip_prefix("backend=").map(str::to_string))
    });
    if let Some(b) = param.as_deref().and_then(Backend::parse) {
        return (b, None);
    }
    if !engine::webgpu_exposed() {
        // A kept pick of WebGPU where the browser no longer has it: later visits load the CPU
        // page again.
        engine::remember_build(Backend::Flex);
        return (Backend::Flex, None);
    }
    if engine::HAS_WEBGPU {
        return (Backend::WebGpu, None);
    }
    let notice = match engine::webgpu_verdict() {
        Ok(None) => "Running on the CPU. This browser also offers WebGPU on a graphics card: pick WebGPU in the backend menu to try it. The page reloads with its WebGPU engine (a larger download, about 1.5 MB), keeps your work, and starts with WebGPU on later visits.".to_string(),
        Ok(Some(name)) => format!(
            "This browser's WebGPU runs on {name}, a software emulation of a graphics card that is several times slower than the CPU path here, so the page runs on the CPU."
        ),
        Err(e) => format!("WebGPU is not usable here ({e}); running on the CPU."),
    };
    (Backend::Flex, Some(notice))
}

/// Picks the first backend and loads the bundle, once.
#[hook]
pub fn use_bundle(state: UseReducerHandle<State>) {
    use_effect_with((), move |_| {
        let s = state.clone();
        spawn_local(async move {
            let (backend, notice) = initial_backend();
            s.dispatch(Action::UseBackend(backend));
            if notice.is_some() {
                s.dispatch(Action::BackendReady(backend, notice));
            }
        });
        spawn_local(async move {
            match engine::load_bundle(BUNDLE).await {
                Ok(b) => {
                    let query = web_sys::window()
                        .and_then(|w| w.location().search().ok())
                        .unwrap_or_default();
                    state.dispatch(Action::Loaded(Rc::new(b), view_url::parse(&query)));
                }
                Err(e) => state.dispatch(Action::Failed(format!("cannot load the bundle: {e}"))),
            }
        });
    });
}

/// Calls `f` with each `event` the window receives while the component is mounted (the
/// first render's `f`; keep what changes in a ref).
#[hook]
pub fn use_window_event<F>(event: &'static str, f: F)
where
    F: FnMut(web_sys::Event) + 'static,
{
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let f = std::cell::RefCell::new(Some(f));
    use_effect_with((), move |_| {
        let mut f = f.borrow_mut().take();
        let listener = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            if let Some(f) = f.as_mut() {
                f(e);
            }
        });
        let window = web_sys::window();
        if let Some(w) = &window {
            let _ = w.add_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
        }
        move || {
            if let Some(w) = window {
                let _ =
                    w.remove_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
            }
        }
    });
}

/// Keeps the page's URL on the current view (`history.replaceState` with a relative URL, so
/// it works under any sub-path), once the bundle is in: a deep link is applied with the bundle
/// ([`Action::Loaded`]) before it could be overwritten. The lab view keeps its own URL.
#[hook]
pub fn use_view_url(state: &State, lab_view: bool) {
    let query = (state.bundle.is_some() && !lab_view).then(|| state.view_query());
    use_effect_with(query, |query| {
        if let Some(q) = query
            && let Some(w) = web_sys::window()
        {
            let current = w.location().search().unwrap_or_default();
            let next = view_url::merge(&current, q);
            if next != current
                && let Ok(h) = w.history()
            {
                // A history that refuses (a sandboxed frame) leaves the URL as it was.
                let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&next));
            }
        }
    });
}

/// After a WebGPU failure (`what`: "is not available", "failed"), continues on the CPU, says
/// why, and forgets a kept pick of WebGPU (the next visit loads the CPU page).
fn fall_back_to_cpu(state: &UseReducerHandle<State>, what: &str, e: &str) {
    engine::remember_build(Backend::Flex);
    state.dispatch(Action::BackendReady(
        Backend::Flex,
        Some(format!("WebGPU {what} ({e}); running on the CPU instead.")),
    ));
    state.dispatch(Action::UseBackend(Backend::Flex));
}

/// Fetches the selected model's files when it has none yet and is not known to be broken;
/// a failure marks only that model broken.
#[hook]
pub fn use_model_files(state: UseReducerHandle<State>) {
    let id = state.model.clone();
    let wanted = state.bundle.is_some()
        && !state.models.contains_key(&id)
        && !state.broken.contains_key(&id);
    use_effect_with((id, wanted), move |(id, wanted)| {
        let (true, Some(bundle)) = (*wanted, state.bundle.clone()) else { return };
        let id = id.clone();
        spawn_local(async move {
            match engine::load_model(&bundle, &id).await {
                Ok(files) => state.dispatch(Action::ModelLoaded(id, Rc::new(files))),
                Err(e) => state.dispatch(Action::ModelBroken(id, e)),
            }
        });
    });
}

/// Fetches the selected model's shadow outputs when the adaptive attacker is chosen and they
/// are not in yet; if they cannot be used, says so and goes back to the naive attacker.
#[hook]
pub fn use_shadow_files(state: UseReducerHandle<State>) {
    let id = state.model.clone();
    let wanted = state.awaiting_shadows();
    use_effect_with((id, wanted), move |(id, wanted)| {
        let (true, Some(bundle)) = (*wanted, state.bundle.clone()) else { return };
        let id = id.clone();
        spawn_local(async move {
            match engine::load_shadows(&bundle, &id).await {
                Ok(Some(shadows)) => state.dispatch(Action::ShadowsLoaded(id, shadows)),
                Ok(None) => state.dispatch(Action::SetAttacker(Attacker::Naive)),
                Err(e) => {
                    state.dispatch(Action::Message(format!(
                        "The adaptive attacker is not available ({e}); showing the naive attacker."
                    )));
                    state.dispatch(Action::SetAttacker(Attacker::Naive));
                }
            }
        });
    });
}

/// Fetches the index of the model's training images once a file of the student's waits for
/// it (the first upload, not the first visit).
#[hook]
pub fn use_members_index(state: UseReducerHandle<State>) {
    let waiting = state.members_index == MembersIndexState::NotFetched
        && state
            .uploads
            .iter()
            .any(|u| matches!(u.origin, Origin::File { known: Known::Checking }));
    use_effect_with(waiting, move |waiting| {
        let (true, Some(bundle)) = (*waiting, state.bundle.clone()) else { return };
        state.dispatch(Action::MembersIndexFetching);
        spawn_local(async move {
            let result = match engine::load_members_index(&bundle).await {
                Ok(Some(index)) => Ok((Rc::new(index), bundle.manifest.input)),
                Ok(None) => Err("the bundle lists none".to_string()),
                Err(e) => Err(e),
            };
            state.dispatch(Action::MembersIndexLoaded(result));
        });
    });
}

/// Runs the reference sample through the selected model whenever it has no logits on the
/// current backend; `started` is the page's start (for the time to first distributions).
#[hook]
pub fn use_reference_logits(state: UseReducerHandle<State>, engine: Engine, started: f64) {
    {
        // The CPU path's helper threads start with the page (their module loads while the
        // bundle downloads); one that cannot start leaves the page on its own thread.
        let engine = engine.clone();
        use_effect_with(state.backend, move |backend| {
            if *backend == Backend::Flex {
                let _started = engine.helpers();
            }
        });
    }
    let have = state.logits.contains_key(&state.model);
    let files = state.models.get(&state.model).cloned();
    let deps = (state.backend_epoch, state.model.clone(), state.bundle.is_some(), have, files);
    use_effect_with(deps, move |(epoch, id, loaded, have, files)| {
        if let (true, false, Some(bundle), Some(files)) =
            (*loaded, *have, state.bundle.clone(), files.clone())
        {
            let job = (bundle, files, *epoch, id.clone());
            spawn_local(run_model(state.clone(), engine, job, started));
        }
    });
}

/// Runs the reference sample (and HAMP's noise images) through model `id`.
async fn run_model(
    state: UseReducerHandle<State>,
    engine: Engine,
    (bundle, files, epoch, id): (SharedBundle, Rc<LoadedModel>, u32, String),
    started: f64,
) {
    let backend = state.backend;
    let device = match engine.device(backend).await {
        Ok(d) => d,
        Err(e) if backend == Backend::WebGpu => {
            return fall_back_to_cpu(&state, "is not available", &e);
        }
        Err(e) => return state.dispatch(Action::Failed(e)),
    };
    let result = async {
        let run =
            Inference { bundle: &bundle, id: &id, files: &files, epoch, device: &device, backend };
        let r = &bundle.reference;
        let n = r.len();
        let progress = |done| state.dispatch(Action::Progress(done, n));
        let (logits, threads, ms) = engine.infer(&run, (r.pixels.as_slice(), n), &progress).await?;
        let noise = engine::noise_images(&bundle.manifest);
        let k = noise.len() / bundle.manifest.input.numel();
        let (z, ..) = engine.infer(&run, (&noise, k), &|_| ()).await?;
        let c = bundle.manifest.class_names.len();
        let random: Vec<Vec<f32>> = z
            .chunks(c)
            .map(|z| {
                let mut p = softmax(z);
                p.sort_by(|a, b| b.total_cmp(a));
                p
            })
            .collect();
        Ok::<_, String>((logits, random, ms, threads))
    }
    .await;
    match result {
        Ok((logits, random, ms, threads)) => state.dispatch(Action::Logits {
            epoch,
            model: id,
            logits: Rc::new(logits),
            random: Rc::new(random),
            ms,
            threads,
            at: engine::now_ms() - started,
        }),
        Err(e) if backend == Backend::WebGpu => fall_back_to_cpu(&state, "failed", &e),
        Err(e) => state.dispatch(Action::Failed(e)),
    }
}

/// Runs every upload without logits on the current model, once the reference sample ran.
#[hook]
pub fn use_upload_logits(state: UseReducerHandle<State>, engine: Engine) {
    let missing: Vec<(u64, Rc<Vec<u8>>)> = state
        .uploads
        .iter()
        .filter(|u| !u.logits.contains_key(&state.model))
        .map(|u| (u.id, u.pixels.clone()))
        .collect();
    let ready = state.logits.contains_key(&state.model);
    let files = state.models.get(&state.model).cloned();
    let deps = (missing, state.model.clone(), state.backend_epoch, ready, files);
    use_effect_with(deps, move |(missing, id, epoch, ready, files)| {
        let (true, Some(bundle), Some(files)) = (*ready, state.bundle.clone(), files.clone())
        else {
            return;
        };
        for (upload, pixels) in missing.clone() {
            let (state, engine, bundle, files, id, epoch) =
                (state.clone(), engine.clone(), bundle.clone(), files.clone(), id.clone(), *epoch);
            spawn_local(async move {
                let result = async {
                    let device = engine.device(state.backend).await?;
                    let model = engine.model(&bundle, (&id, &files), epoch, &device).await?;
                    engine::infer(&model, &device, &bundle.manifest, (&pixels, 1), 1, &|_| ()).await
                }
                .await;
                match result {
                    Ok(l) => state.dispatch(Action::UploadLogits(upload, id, Rc::new(l))),
                    Err(e) => {
                        state.dispatch(Action::Message(format!("could not run the upload: {e}")))
                    }
                }
            });
        }
    });
}

/// Decodes the files a student dropped or picked and adds each as an upload.
pub fn upload_files(state: &UseReducerHandle<State>, files: Vec<web_sys::File>) {
    let Some(bundle) = state.bundle.clone() else {
        state.dispatch(Action::Message("the model is still loading; try again in a moment".into()));
        return;
    };
    for f in files {
        let (state, bundle) = (state.clone(), bundle.clone());
        spawn_local(async move {
            match engine::decode_upload(&f, &bundle.manifest).await {
                Ok(u) => state.dispatch(Action::Uploaded(UploadEntry {
                    id: 0,
                    origin: Origin::File { known: Known::Checking },
                    label: None,
                    name: u.name,
                    pixels: Rc::new(u.pixels),
                    preview: u.preview,
                    logits: HashMap::new(),
                })),
                Err(e) => state.dispatch(Action::Message(e)),
            }
        });
    }
}

/// Adds reference example `i` as an upload (its membership is known).
pub fn upload_reference(state: &UseReducerHandle<State>, i: usize) {
    let Some(b) = state.bundle.clone() else { return };
    if let Some(entry) = reference_upload(&b, i) {
        state.dispatch(Action::Uploaded(entry));
    }
}

/// Reference example `i` as an upload; `None` past the sample's end.
pub fn reference_upload(b: &SharedBundle, i: usize) -> Option<UploadEntry> {
    let r = &b.reference;
    if i >= r.len() {
        return None;
    }
    let preview =
        engine::preview(r.image(i), r.input.channels, r.input.width as u32).unwrap_or_default();
    let kind = if r.is_member[i] { "member" } else { "non-member" };
    Some(UploadEntry {
        id: 0,
        origin: Origin::Reference {
            index: i,
            label: usize::from(r.labels[i]),
            member: r.is_member[i],
        },
        label: None,
        name: format!("reference #{i} ({kind})"),
        pixels: Rc::new(r.image(i).to_vec()),
        preview,
        logits: HashMap::new(),
    })
}
