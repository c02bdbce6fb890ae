//! The lab's state and the only way it changes: a reducer over [`Action`]s. Heavy work
//! (fetching, inference) happens in effects that dispatch actions when done.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use mia_core::bundle::BrowserAttack;
use yew::Reducible;

use mia_core::InputSpec;
use mia_core::recognise::MembersIndex;

use crate::analysis::{self, Attacker, Known, Origin};
use crate::engine::{Backend, LoadedModel, SharedBundle};
use crate::store::Key;
use crate::toggles::{Toggle, toggles};
use crate::view_url::{self, View};

/// An uploaded image, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadEntry {
    /// Stable id (removal and late results find it by id, not position).
    pub id: u64,
    /// A file of the student's, or a reference example.
    pub origin: Origin,
    /// The class the student says it shows (None: the attacks use the prediction).
    pub label: Option<usize>,
    /// File name.
    pub name: String,
    /// Pixels at model size, CHW.
    pub pixels: Rc<Vec<u8>>,
    /// Data URL preview.
    pub preview: String,
    /// Raw logits per model id (filled as models run).
    pub logits: HashMap<String, Rc<Vec<f32>>>,
}

/// Where loading stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Working, with what.
    Loading(String),
    /// Distributions shown.
    Ready,
    /// Nothing can be shown; why.
    Failed(String),
}

/// The bundle's index of the model's training images: fetched at the first upload of a file,
/// not on the first visit.
#[derive(Debug, Clone, PartialEq)]
pub enum MembersIndexState {
    /// The bundle ships none, or it could not be fetched: files stay unchecked.
    Absent,
    /// Shipped, not fetched yet.
    NotFetched,
    /// Being fetched.
    Fetching,
    /// Fetched and verified, with the model's input.
    Ready(Rc<MembersIndex>, InputSpec),
}

/// Where an inference ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Threads {
    /// On the graphics card.
    Gpu,
    /// On the CPU path, split between this many helper threads.
    Helpers(usize),
    /// On the CPU path, on the page's own thread, and why.
    Alone(String),
}

/// How the last reference-sample inference went.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// ms it took.
    pub ms: f64,
    /// Images it ran.
    pub images: usize,
    /// Where it ran.
    pub threads: Threads,
}

/// The whole UI state.
#[derive(Clone)]
pub struct State {
    /// Loading status.
    pub status: Status,
    /// A notice (e.g. WebGPU fell back to CPU).
    pub notice: Option<String>,
    /// The backend in use.
    pub backend: Backend,
    /// Bumped to re-run the backend effect.
    pub backend_epoch: u32,
    /// The bundle, once loaded.
    pub bundle: Option<SharedBundle>,
    /// Selected model id.
    pub model: String,
    /// Reference logits per model id, on the current backend.
    pub logits: HashMap<String, Rc<Vec<f32>>>,
    /// HAMP's sorted random-input posteriors per model id.
    pub random: HashMap<String, Rc<Vec<Vec<f32>>>>,
    /// Inference-defense toggles.
    pub toggles: Vec<Toggle>,
    /// Naive or adaptive attacker.
    pub attacker: Attacker,
    /// Thresholds the user dragged, per attack.
    pub thresholds: HashMap<&'static str, f32>,
    /// Uploads, newest last.
    pub uploads: Vec<UploadEntry>,
    /// The next upload's id.
    pub next_upload: u64,
    /// The index uploads are looked up in.
    pub members_index: MembersIndexState,
    /// Each model's files once fetched and verified, by id.
    pub models: HashMap<String, Rc<LoadedModel>>,
    /// Models whose files could not be used, with what the student should know.
    pub broken: HashMap<String, String>,
    /// Images of the reference sample run so far, and in all (while it runs).
    pub progress: Option<(usize, usize)>,
    /// The guided tour's step, when it is open.
    pub tour: Option<usize>,
    /// Messages about bad input; the page keeps working.
    pub messages: Vec<String>,
    /// ms from start to the first distributions.
    pub first_ms: Option<f64>,
    /// How the last reference-sample inference went.
    pub last_inference: Option<Timing>,
    /// How keeping the page's work in the browser stands, per kind of work.
    pub saving: BTreeMap<Key, Saving>,
    /// Bumped by "clear everything" (the lab starts again when it moves).
    pub cleared: u32,
}

/// How keeping one kind of work in the browser stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Saving {
    /// A change is waiting to be written.
    Pending,
    /// Everything is kept.
    Saved,
    /// The browser refused (storage full, private mode): why.
    Failed(String),
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: Status::Loading("fetching the bundle".into()),
            notice: None,
            backend: Backend::Flex,
            backend_epoch: 0,
            bundle: None,
            model: String::new(),
            logits: HashMap::new(),
            random: HashMap::new(),
            toggles: toggles(),
            attacker: Attacker::Naive,
            thresholds: HashMap::new(),
            uploads: Vec::new(),
            next_upload: 0,
            members_index: MembersIndexState::Absent,
            models: HashMap::new(),
            broken: HashMap::new(),
            progress: None,
            tour: None,
            messages: Vec::new(),
            first_ms: None,
            last_inference: None,
            saving: BTreeMap::new(),
            cleared: 0,
        }
    }
}

/// Everything that can happen.
pub enum Action {
    /// The bundle is verified; the view the page's URL asks for.
    Loaded(SharedBundle, View),
    /// Loading failed for good.
    Failed(String),
    /// The user picked a backend (or the app did at start).
    UseBackend(Backend),
    /// The backend is ready (possibly another than asked, with a notice).
    BackendReady(Backend, Option<String>),
    /// A model's reference logits are in.
    Logits {
        /// The backend epoch it was computed in (stale results are dropped).
        epoch: u32,
        /// Model id.
        model: String,
        /// Logits `[n × C]`.
        logits: Rc<Vec<f32>>,
        /// Sorted random-input posteriors.
        random: Rc<Vec<Vec<f32>>>,
        /// ms it took.
        ms: f64,
        /// Where it ran.
        threads: Threads,
        /// ms since page start.
        at: f64,
    },
    /// Another training defense (model).
    SelectModel(String),
    /// Switch a defense on or off.
    Toggle(usize),
    /// Set a defense parameter.
    SetParam(usize, usize, f32),
    /// Naive or adaptive attacker.
    SetAttacker(Attacker),
    /// Drag a threshold (None resets to the attacker's).
    SetThreshold(BrowserAttack, Option<f32>),
    /// An upload is decoded (its id is assigned here).
    Uploaded(UploadEntry),
    /// An upload's logits on a model: upload id, model id, logits.
    UploadLogits(u64, String, Rc<Vec<f32>>),
    /// Remove one upload by id.
    RemoveUpload(u64),
    /// Remove every upload.
    ClearUploads,
    /// The class the student says upload `id` shows (None: use the prediction).
    SetUploadLabel(u64, Option<usize>),
    /// The index of the model's training images is being fetched.
    MembersIndexFetching,
    /// The index arrived, with the model's input (the files waiting for it are looked up), or
    /// could not be had (they stay unchecked, and the student is told why).
    MembersIndexLoaded(Result<(Rc<MembersIndex>, InputSpec), String>),
    /// A model's files are fetched and verified.
    ModelLoaded(String, Rc<LoadedModel>),
    /// A model's shadow outputs are fetched and verified (the adaptive attacker's).
    ShadowsLoaded(String, mia_core::bundle::ShadowOutputs),
    /// A model's files cannot be used; the others still can.
    ModelBroken(String, String),
    /// Reference images run so far, of how many.
    Progress(usize, usize),
    /// Open the tour at a step, or close it (None).
    Tour(Option<usize>),
    /// Something the user gave could not be used.
    Message(String),
    /// Clear the messages.
    Dismiss,
    /// Keeping `Key`'s work in the browser moved on.
    Saving(Key, Saving),
    /// A view kept in the browser (applied when the page's link names none).
    ApplyView(View),
    /// Forget everything: uploads, defenses, thresholds (and the lab, which watches
    /// [`State::cleared`]).
    ClearEverything,
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        if let Action::Logits { epoch, .. } = &action
            && *epoch != self.backend_epoch
        {
            return self; // logits of a backend the page has since left
        }
        let mut s = (*self).clone();
        match action {
            a @ (Action::Uploaded(_)
            | Action::UploadLogits(..)
            | Action::RemoveUpload(_)
            | Action::ClearUploads
            | Action::SetUploadLabel(..)
            | Action::MembersIndexFetching
            | Action::MembersIndexLoaded(_)) => s.reduce_uploads(a),
            a @ (Action::Toggle(_)
            | Action::SetParam(..)
            | Action::SetAttacker(_)
            | Action::SetThreshold(..)) => s.reduce_controls(a),
            Action::Progress(done, total) => s.progress = Some((done, total)),
            Action::Tour(step) => s.tour = step,
            Action::Message(m) => s.messages.push(m),
            Action::Dismiss => s.messages.clear(),
            Action::Saving(key, how) => {
                s.saving.insert(key, how);
            }
            Action::ApplyView(view) => s.apply_view(view),
            Action::ClearEverything => {
                s.uploads.clear();
                s.toggles = toggles();
                s.attacker = Attacker::Naive;
                s.thresholds.clear();
                if let Some(first) = s.bundle.as_ref().and_then(|b| b.manifest.models.first()) {
                    s.model = first.id.clone();
                }
                s.cleared += 1;
            }
            a => s.reduce_engine(a),
        }
        Rc::new(s)
    }
}

impl State {
    /// The bundle, the backend, the models and their outputs on the reference sample.
    fn reduce_engine(&mut self, action: Action) {
        let s = self;
        match action {
            Action::Loaded(bundle, view) => {
                s.model = bundle.manifest.models[0].id.clone();
                s.members_index = match bundle.manifest.members_index {
                    Some(_) => MembersIndexState::NotFetched,
                    None => MembersIndexState::Absent,
                };
                s.bundle = Some(bundle);
                s.status = Status::Loading("running the reference sample".into());
                s.apply_view(view);
            }
            Action::Failed(e) => s.status = Status::Failed(e),
            Action::UseBackend(b) => {
                s.backend = b;
                s.backend_epoch += 1;
                s.logits.clear();
                s.uploads.iter_mut().for_each(|u| u.logits.clear());
                if s.bundle.is_some() {
                    s.status =
                        Status::Loading(format!("running the reference sample on {}", b.name()));
                }
            }
            Action::BackendReady(b, notice) => {
                s.backend = b;
                s.notice = notice;
            }
            Action::Logits { model, logits, random, ms, threads, at, .. } => {
                let images = s.bundle.as_ref().map_or(0, |b| b.reference.len());
                s.logits.insert(model.clone(), logits);
                s.random.insert(model, random);
                s.last_inference = Some(Timing { ms, images, threads });
                s.first_ms.get_or_insert(at);
                s.progress = None;
                s.status = Status::Ready;
            }
            Action::SelectModel(id)
                if s.bundle.as_ref().is_some_and(|b| b.manifest.model(&id).is_some()) =>
            {
                if !s.logits.contains_key(&id) {
                    s.status =
                        Status::Loading(format!("running the reference sample through {id}"));
                }
                s.model = id;
                s.thresholds.clear();
            }
            Action::ModelLoaded(id, files) => {
                s.broken.remove(&id);
                s.models.insert(id, files);
            }
            Action::ShadowsLoaded(id, shadows) => {
                if let Some(m) = s.models.get(&id) {
                    let with = LoadedModel {
                        weights: m.weights.clone(),
                        lira: m.lira.clone(),
                        shadows: Some(shadows),
                    };
                    s.models.insert(id, Rc::new(with));
                }
            }
            Action::ModelBroken(id, why) => {
                if s.model == id && !s.logits.contains_key(&id) {
                    s.status = Status::Ready;
                }
                s.broken.insert(id, why);
            }
            _ => {}
        }
    }

    /// What a link asks for (after the bundle is in, so the model id can be checked); what
    /// cannot be applied becomes a message.
    fn apply_view(&mut self, view: View) {
        let s = self;
        if let Some(id) = view.model {
            if s.bundle.as_ref().is_some_and(|b| b.manifest.model(&id).is_some()) {
                s.model = id;
            } else {
                s.messages.push(format!("the link's model `{id}` is not in this bundle"));
            }
        }
        if let Some(on) = view.defenses {
            let errors = view_url::apply_defenses(&mut s.toggles, &on);
            s.messages.extend(errors);
        }
        if let Some(a) = view.attacker {
            s.attacker = a;
        }
        s.thresholds = view.thresholds.into_iter().map(|(a, t)| (a.name(), t)).collect();
        s.messages.extend(view.errors);
    }

    /// Whether the selected model ships shadow outputs (the adaptive attacker can be chosen).
    pub fn adaptive_available(&self) -> bool {
        let entry = self.bundle.as_ref().and_then(|b| b.manifest.model(&self.model));
        entry.is_some_and(|m| m.shadow_outputs.is_some())
    }

    /// Whether the adaptive attacker is chosen and the selected model's shadow outputs are
    /// still being fetched (the views wait for them rather than show the naive attacker).
    pub fn awaiting_shadows(&self) -> bool {
        self.attacker == Attacker::Adaptive
            && self.adaptive_available()
            && self.models.get(&self.model).is_some_and(|m| m.shadows.is_none())
    }

    /// The query that reproduces this view (see [`view_url`]).
    pub fn view_query(&self) -> String {
        let th: Vec<_> = self
            .thresholds
            .iter()
            .filter_map(|(name, t)| Some((BrowserAttack::parse(name)?, *t)))
            .collect();
        view_url::format(&self.model, &self.toggles, self.attacker, &th)
    }

    /// Defense toggles and parameters, the attacker, thresholds.
    fn reduce_controls(&mut self, action: Action) {
        let s = self;
        match action {
            Action::Toggle(i) => {
                if let Some(t) = s.toggles.get_mut(i) {
                    t.enabled = !t.enabled;
                    s.thresholds.clear();
                }
            }
            Action::SetParam(i, j, v) => {
                if let Some(p) = s.toggles.get_mut(i).and_then(|t| t.params.get_mut(j))
                    && v.is_finite()
                {
                    p.1 = v.clamp(p.2, p.3);
                }
            }
            Action::SetAttacker(a) => {
                s.attacker = a;
                s.thresholds.clear();
            }
            Action::SetThreshold(id, Some(t)) => {
                s.thresholds.insert(id.name(), t);
            }
            Action::SetThreshold(id, None) => {
                s.thresholds.remove(id.name());
            }
            _ => {}
        }
    }

    /// Looks up the files waiting for the index, or marks them unchecked when it failed.
    fn index_arrived(&mut self, result: Result<(Rc<MembersIndex>, InputSpec), String>) {
        let ready = result
            .map_err(|e| {
                self.messages.push(format!(
                    "The list of the model's training images could not be fetched ({e}): the page cannot tell whether your images are among them."
                ));
            })
            .ok();
        for u in &mut self.uploads {
            if let Origin::File { known: known @ Known::Checking } = &mut u.origin {
                *known = match &ready {
                    Some((index, input)) => analysis::recognise(index, &u.pixels, *input),
                    None => Known::Unchecked,
                };
            }
        }
        self.members_index = match ready {
            Some((index, input)) => MembersIndexState::Ready(index, input),
            None => MembersIndexState::Absent,
        };
    }

    /// The student's uploads.
    fn reduce_uploads(&mut self, action: Action) {
        let s = self;
        match action {
            Action::Uploaded(mut u) => {
                u.id = s.next_upload;
                s.next_upload += 1;
                if let Origin::File { known } = &mut u.origin {
                    *known = match &s.members_index {
                        MembersIndexState::Absent => Known::Unchecked,
                        MembersIndexState::Ready(index, input) => {
                            analysis::recognise(index, &u.pixels, *input)
                        }
                        _ => Known::Checking,
                    };
                }
                s.uploads.push(u);
            }
            Action::MembersIndexFetching => s.members_index = MembersIndexState::Fetching,
            Action::MembersIndexLoaded(result) => s.index_arrived(result),
            Action::UploadLogits(id, model, logits) => {
                if let Some(u) = s.uploads.iter_mut().find(|u| u.id == id) {
                    u.logits.insert(model, logits);
                }
            }
            Action::RemoveUpload(id) => s.uploads.retain(|u| u.id != id),
            Action::ClearUploads => s.uploads.clear(),
            Action::SetUploadLabel(id, label) => {
                if let Some(u) = s.uploads.iter_mut().find(|u| u.id == id) {
                    u.label = label;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_of_a_backend_the_page_left_are_dropped() {
        let logits = |epoch| Action::Logits {
            epoch,
            model: "erm".into(),
            logits: Rc::new(vec![0.0; 2]),
            random: Rc::new(Vec::new()),
            ms: 1.0,
            threads: Threads::Helpers(2),
            at: 1.0,
        };
        let s = Rc::new(State::default()).reduce(Action::UseBackend(crate::engine::Backend::Flex));
        let stale = s.backend_epoch - 1;
        let s = s.reduce(logits(stale));
        assert!(s.logits.is_empty(), "a stale result changes nothing");
        let s = s.clone().reduce(logits(s.backend_epoch));
        assert!(s.logits.contains_key("erm") && s.status == Status::Ready);
        let s = s.reduce(Action::Toggle(0)).reduce(Action::Message("hi".into()));
        assert!(
            s.toggles[0].enabled && s.messages.len() == 1,
            "each group of actions reaches its reducer"
        );
    }

    #[test]
    fn clear_everything_forgets_uploads_defenses_and_thresholds_and_tells_the_lab() {
        let upload = UploadEntry {
            id: 0,
            origin: Origin::File { known: Known::Unchecked },
            label: Some(1),
            name: "cat.png".into(),
            pixels: Rc::new(vec![0; 12]),
            preview: String::new(),
            logits: HashMap::new(),
        };
        let mut s = Rc::new(State::default());
        s = s.reduce(Action::Uploaded(upload)).reduce(Action::Toggle(0));
        s = s.reduce(Action::SetAttacker(Attacker::Adaptive));
        s = s.reduce(Action::SetThreshold(BrowserAttack::ALL[0], Some(0.5)));
        assert!(!s.uploads.is_empty() && s.toggles[0].enabled && !s.thresholds.is_empty());
        s = s.reduce(Action::ClearEverything);
        assert!(s.uploads.is_empty() && s.thresholds.is_empty());
        assert_eq!(s.toggles, toggles(), "every defense back at its default");
        assert_eq!((s.attacker, s.cleared), (Attacker::Naive, 1), "the lab watches `cleared`");
    }

    #[test]
    fn toggles_build_valid_chains_and_params_stay_in_range() {
        let mut s = Rc::new(State::default());
        assert!(crate::toggles::chain(&s.toggles).unwrap().steps.is_empty());
        for i in 0..s.toggles.len() {
            s = s.reduce(Action::Toggle(i));
        }
        let c = crate::toggles::chain(&s.toggles).unwrap();
        assert_eq!(c.steps.len(), toggles().len(), "every default parameter set parses");
        s = s.reduce(Action::SetParam(5, 0, 1e9));
        assert_eq!(s.toggles[5].params[0].1, 50.0);
        s = s.reduce(Action::SetParam(5, 0, f32::NAN));
        assert_eq!(s.toggles[5].params[0].1, 50.0);
        s = s.reduce(Action::Message("bad".into()));
        assert_eq!(s.messages.len(), 1);
        s = s.reduce(Action::Dismiss);
        assert!(s.messages.is_empty());
    }

    fn file(pixels: Vec<u8>) -> Action {
        Action::Uploaded(UploadEntry {
            id: 0,
            origin: Origin::File { known: Known::Checking },
            label: None,
            name: "f.png".into(),
            pixels: Rc::new(pixels),
            preview: String::new(),
            logits: HashMap::new(),
        })
    }

    fn known(s: &State) -> Vec<Known> {
        s.uploads
            .iter()
            .filter_map(|u| match u.origin {
                Origin::File { known } => Some(known),
                Origin::Reference { .. } => None,
            })
            .collect()
    }

    #[test]
    fn files_wait_for_the_index_and_are_then_looked_up() {
        let input = InputSpec::new(1, 16, 16);
        let image = |seed: u64| -> Vec<u8> {
            (0..256).map(|k| mia_core::rng::mix(seed, k) as u8).collect()
        };
        let member: Vec<u8> = image(1);
        let index = MembersIndex::build(&member, &[4], input).unwrap();
        let mut s =
            Rc::new(State { members_index: MembersIndexState::NotFetched, ..State::default() });
        s = s.reduce(file(member.clone())).reduce(file(image(2)));
        assert_eq!(known(&s), [Known::Checking, Known::Checking]);
        s = s.reduce(Action::MembersIndexFetching);
        assert_eq!(s.members_index, MembersIndexState::Fetching);
        s = s.reduce(Action::MembersIndexLoaded(Ok((Rc::new(index), input))));
        let k = known(&s);
        assert!(matches!(k[0], Known::Member { label: 4, position: 0, distance: 0, .. }), "{k:?}");
        assert_eq!(k[1], Known::NotMember);
        s = s.reduce(file(member));
        assert!(
            matches!(known(&s)[2], Known::Member { .. }),
            "once in, a new file is looked up at once"
        );
    }

    #[test]
    fn without_an_index_files_are_unchecked_and_a_failed_fetch_is_said() {
        let s = Rc::new(State::default()).reduce(file(vec![0; 256]));
        assert_eq!(known(&s), [Known::Unchecked], "a bundle without an index");
        let s = Rc::new(State { members_index: MembersIndexState::NotFetched, ..State::default() })
            .reduce(file(vec![0; 256]))
            .reduce(Action::MembersIndexLoaded(Err("offline".into())));
        assert_eq!(known(&s), [Known::Unchecked]);
        assert_eq!(s.members_index, MembersIndexState::Absent);
        assert!(s.messages.iter().any(|m| m.contains("offline")), "{:?}", s.messages);
    }
}
