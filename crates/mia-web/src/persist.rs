//! Nothing lost: the lab (as its file's text: images, recipe, network, last run, comparison
//! table) and the explore view (uploads, defenses, model, thresholds) are kept in the browser
//! ([`crate::store`]) a moment after each change and restored at the next visit; a prepared lab
//! opens from `?lab=` (a lab file on the same site); leaving while something is not yet kept
//! (a run in progress, a save the browser refused) asks first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use mia_core::lab::file::{hex, unhex};

use crate::analysis::{Known, Origin};
use crate::engine::{self, SharedBundle};
use crate::hooks::reference_upload;
use crate::lab_files;
use crate::lab_state::{LabAction, LabState, Run};
use crate::state::{Action, Saving, State, UploadEntry};
use crate::store::{self, Key};
use crate::view_url::{self, View};

/// How long after the last change the page writes (typing a class name writes once).
const SETTLE_MS: i32 = 300;

/// The explore view as kept.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeptExplore {
    /// The view's query (model, defenses, attacker, thresholds).
    pub query: String,
    /// The uploads, oldest first.
    pub uploads: Vec<KeptUpload>,
}

/// One upload as kept.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptUpload {
    /// File name.
    pub name: String,
    /// The reference example it is, if it is one.
    pub reference: Option<usize>,
    /// The class the student said it shows.
    pub label: Option<usize>,
    /// Pixels at model size (CHW, hex); empty for a reference example.
    pub pixels: String,
}

/// The explore view's work as text.
pub fn explore_text(state: &State) -> String {
    let uploads = state
        .uploads
        .iter()
        .map(|u| {
            let reference = match u.origin {
                Origin::Reference { index, .. } => Some(index),
                Origin::File { .. } => None,
            };
            let pixels = if reference.is_some() { String::new() } else { hex(&u.pixels) };
            KeptUpload { name: u.name.clone(), reference, label: u.label, pixels }
        })
        .collect();
    let kept = KeptExplore { query: state.view_query(), uploads };
    serde_json::to_string(&kept).unwrap_or_default()
}

/// The kept explore view back: its view and its uploads (those that no longer fit the bundle
/// are left out). `preview` draws a thumbnail.
pub fn explore_read(
    text: &str,
    bundle: &SharedBundle,
    preview: impl Fn(&[u8]) -> String,
) -> (View, Vec<UploadEntry>) {
    let kept: KeptExplore = serde_json::from_str(text).unwrap_or_default();
    let classes = bundle.manifest.class_names.len();
    let numel = bundle.manifest.input.numel();
    let uploads = kept
        .uploads
        .into_iter()
        .filter_map(|k| {
            let mut entry = match k.reference {
                Some(i) => reference_upload(bundle, i)?,
                None => {
                    let pixels = unhex(&k.pixels).filter(|p| p.len() == numel)?;
                    UploadEntry {
                        id: 0,
                        origin: Origin::File { known: Known::Checking },
                        label: None,
                        name: k.name.chars().take(200).collect(),
                        preview: preview(&pixels),
                        pixels: Rc::new(pixels),
                        logits: HashMap::new(),
                    }
                }
            };
            entry.label = k.label.filter(|&l| l < classes);
            Some(entry)
        })
        .collect();
    (view_url::parse(&kept.query), uploads)
}

/// The page's query.
fn query() -> String {
    web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default()
}

/// The prepared lab the link names (`?lab=labs/x.json`), as a URL on this site; an error in
/// words for one elsewhere.
pub fn prepared_lab() -> Option<Result<String, String>> {
    let name = view_url::param(&query(), "lab").filter(|n| !n.is_empty())?;
    let location = web_sys::window()?.location();
    let (href, origin) = (location.href().ok()?, location.origin().ok()?);
    Some(match web_sys::Url::new_with_base(&name, &href) {
        Ok(url) if url.origin() == origin => Ok(url.href()),
        Ok(_) => Err(format!(
            "the link's prepared lab `{name}` is on another site: a prepared lab must be a file on this page's own site"
        )),
        Err(_) => Err(format!("the link's prepared lab `{name}` is not a file name")),
    })
}

/// Opens the prepared lab at `url`; false when it could not be (a message says why).
async fn open_prepared(
    lab: &UseReducerHandle<LabState>,
    main: &UseReducerHandle<State>,
    url: &str,
) -> bool {
    let Some(input) = main.bundle.as_ref().map(|b| b.manifest.input) else { return false };
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let hint = "Check the link's lab= part, and that the file is in the site's labs/ folder.";
    let text = match engine::fetch_file(url, &format!("the prepared lab {name}"), hint).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            main.dispatch(Action::Message(e));
            return false;
        }
    };
    match lab_files::parse(&text, input) {
        Ok(state) => {
            lab.dispatch(LabAction::Replace(Box::new(lab_files::with_previews(state, input))));
            let _ = store::put(Key::LabSource, url).await;
            true
        }
        Err(e) => {
            main.dispatch(Action::Message(format!("the prepared lab {name}: {e}")));
            false
        }
    }
}

/// Restores the lab kept in the browser, or opens the prepared lab the link names (once; the
/// student's work on it is what comes back at the next visit).
async fn restore_lab(lab: &UseReducerHandle<LabState>, main: &UseReducerHandle<State>) {
    let Some(input) = main.bundle.as_ref().map(|b| b.manifest.input) else { return };
    let source = store::get(Key::LabSource).await.ok().flatten();
    match prepared_lab() {
        Some(Err(e)) => main.dispatch(Action::Message(e)),
        Some(Ok(url))
            if source.as_deref() != Some(url.as_str()) && open_prepared(lab, main, &url).await =>
        {
            return;
        }
        _ => {}
    }
    match store::get(Key::Lab).await {
        Ok(Some(text)) => match lab_files::parse(&text, input) {
            Ok(state) => {
                lab.dispatch(LabAction::Replace(Box::new(lab_files::with_previews(state, input))))
            }
            Err(e) => main.dispatch(Action::Message(format!(
                "The lab kept in this browser could not be read back ({e}); the lab starts empty."
            ))),
        },
        Ok(None) => {}
        Err(e) => main.dispatch(Action::Saving(Key::Lab, Saving::Failed(e))),
    }
}

/// Writes `text()` under `key` once no change has followed for [`SETTLE_MS`]; `generation`
/// tells a later change apart.
fn save_soon(
    main: &UseReducerHandle<State>,
    key: Key,
    generation: &Rc<RefCell<u64>>,
    text: impl FnOnce() -> String + 'static,
) {
    *generation.borrow_mut() += 1;
    let mine = *generation.borrow();
    let (main, generation) = (main.clone(), generation.clone());
    main.dispatch(Action::Saving(key, Saving::Pending));
    spawn_local(async move {
        engine::sleep(SETTLE_MS).await;
        if *generation.borrow() != mine {
            return;
        }
        let how = match store::put(key, &text()).await {
            Ok(()) => Saving::Saved,
            Err(e) => Saving::Failed(e),
        };
        main.dispatch(Action::Saving(key, how));
    });
}

/// Keeps the lab in the browser: restored (or a prepared lab opened) once the bundle is in,
/// written after each change worth keeping (not while a run trains), emptied by "clear
/// everything".
#[hook]
pub fn use_lab_store(lab: &UseReducerHandle<LabState>, main: &UseReducerHandle<State>) {
    let restored = use_state(|| false);
    let generation = use_mut_ref(|| 0u64);
    {
        let (lab, main, restored) = (lab.clone(), main.clone(), restored.clone());
        use_effect_with(main.bundle.is_some(), move |&ready| {
            if ready {
                spawn_local(async move {
                    restore_lab(&lab, &main).await;
                    restored.set(true);
                });
            }
        });
    }
    {
        let lab = lab.clone();
        use_effect_with(main.cleared, move |&cleared| {
            if cleared > 0 {
                lab.dispatch(LabAction::Reset);
            }
        });
    }
    let running = matches!(lab.run, Run::Running(..));
    let (lab, main) = (lab.clone(), main.clone());
    use_effect_with((lab.revision, running, *restored), move |&(_, running, restored)| {
        let Some(input) = main.bundle.as_ref().map(|b| b.manifest.input) else { return };
        if restored && !running {
            save_soon(&main, Key::Lab, &generation, move || lab_files::export(&lab, input));
        }
    });
}

/// Keeps the explore view's uploads and view in the browser: restored once the bundle is in
/// (the view only when the link names none), written after each change.
#[hook]
pub fn use_explore_store(state: &UseReducerHandle<State>) {
    let restored = use_state(|| false);
    let generation = use_mut_ref(|| 0u64);
    {
        let (state, restored) = (state.clone(), restored.clone());
        use_effect_with(state.bundle.is_some(), move |&ready| {
            let Some(bundle) = state.bundle.clone().filter(|_| ready) else { return };
            spawn_local(async move {
                if let Ok(Some(text)) = store::get(Key::Explore).await {
                    let input = bundle.manifest.input;
                    let draw = |p: &[u8]| {
                        engine::preview(p, input.channels, input.width as u32).unwrap_or_default()
                    };
                    let (view, uploads) = explore_read(&text, &bundle, draw);
                    if !view_url::names_a_view(&query()) {
                        state.dispatch(Action::ApplyView(view));
                    }
                    uploads.into_iter().for_each(|u| state.dispatch(Action::Uploaded(u)));
                }
                restored.set(true);
            });
        });
    }
    let uploads: Vec<(u64, Option<usize>)> =
        state.uploads.iter().map(|u| (u.id, u.label)).collect();
    let deps = (uploads, state.view_query(), *restored, state.cleared);
    let state = state.clone();
    use_effect_with(deps, move |(_, _, restored, _)| {
        if *restored {
            let s = state.clone();
            save_soon(&state, Key::Explore, &generation, move || explore_text(&s));
        }
    });
}

/// Forgets everything kept in the browser and empties both views, after the student confirms.
pub fn clear_everything(state: &UseReducerHandle<State>) {
    let Some(w) = web_sys::window() else { return };
    let sure = w
        .confirm_with_message(
            "Clear everything? Your lab (images, runs, comparison table) and your uploads are removed from this browser. Export the lab first to keep a copy.",
        )
        .unwrap_or(false);
    if !sure {
        return;
    }
    let state = state.clone();
    spawn_local(async move {
        if let Err(e) = store::clear().await {
            state.dispatch(Action::Message(format!("Could not clear the browser's copy: {e}")));
        }
        state.dispatch(Action::ClearEverything);
    });
}

/// Asks before the page is left while `unsaved` (the browser shows its own wording).
#[hook]
pub fn use_leave_prompt(unsaved: bool) {
    let flag = use_mut_ref(|| false);
    *flag.borrow_mut() = unsaved;
    crate::hooks::use_window_event("beforeunload", move |e| {
        if let (true, Some(e)) = (*flag.borrow(), e.dyn_ref::<web_sys::BeforeUnloadEvent>()) {
            e.prevent_default();
            e.set_return_value("Work in this lab is not kept yet.");
        }
    });
}

/// What the page says about keeping the work: kept, being kept, or refused (with why and
/// what to do).
pub fn saved_note(state: &State) -> Html {
    let failed = state.saving.values().find_map(|s| match s {
        Saving::Failed(e) => Some(e.clone()),
        _ => None,
    });
    let pending = state.saving.values().any(|s| *s == Saving::Pending);
    match (failed, pending, state.saving.is_empty()) {
        (Some(e), ..) => html! {
            <span class="saved failed" data-testid="saved" data-state="failed">
                { format!("Not kept in this browser: {e}. Export the lab to keep a copy, or clear what this page kept.") }
            </span>
        },
        (None, true, _) => {
            html! { <span class="saved" data-testid="saved" data-state="saving">{ "keeping your work…" }</span> }
        }
        (None, false, false) => {
            html! { <span class="saved" data-testid="saved" data-state="saved" title="the lab and your uploads come back when you reload or return">{ "✓ kept in this browser" }</span> }
        }
        _ => html! {},
    }
}
