//! Keeping and sharing a lab: the lab file (`mia_core::lab::file`: the classes, every image
//! at the model's input size, its role, the recipe, the trained network's weights, the last
//! run's logits, the comparison table and a prepared lab's instructions) turned into the page's
//! state and back, and a CSV of every image's score under every attack. A file's run comes back
//! with its attacks recomputed from its logits; a network without a run is rebuilt and measured
//! on the images. The same text keeps the lab in the browser ([`crate::persist`]). Files are
//! made and read in the page; nothing is uploaded.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use yew::UseReducerHandle;

use mia_core::InputSpec;
use mia_core::lab::file::{self, FORMAT, FileImage, FileNet, FileResult, LabFile, VERSION, hex};

use crate::engine;
use crate::lab_run;
use crate::lab_state::{
    ImportedNet, LabAction, LabImage, LabLogits, LabResult, LabSettings, LabState, Run, SavedNet,
};
use crate::state::{Action, State};

/// The run to keep: the latest finished one (while another trains, the one before).
fn last_run(lab: &LabState) -> Option<&Rc<LabResult>> {
    match (&lab.run, &lab.previous) {
        (Run::Done(r), _) | (_, Some(r)) => Some(r),
        _ => None,
    }
}

/// The network to keep with the lab: the last run's target, else an imported one.
fn network(lab: &LabState) -> Option<FileNet> {
    let (shape, bytes) = match (last_run(lab), &lab.imported) {
        (Some(r), _) => (r.net.shape, r.net.bytes.to_vec()),
        (_, Some(net)) => (net.shape, net.bytes.to_vec()),
        _ => return None,
    };
    Some(FileNet { shape, weights: hex(&bytes) })
}

/// The last run's logits, with its images as positions in the lab's; `None` without a run
/// or when one of its images has been removed since.
fn file_result(lab: &LabState) -> Option<FileResult> {
    let r = last_run(lab)?;
    let position = |id: &u64| lab.images.iter().position(|im| im.id == *id);
    let images = r.ids.iter().map(position).collect::<Option<Vec<_>>>()?;
    let validation = r.validation.iter().map(position).collect::<Option<Vec<_>>>()?;
    let l = &r.logits;
    Some(FileResult {
        images,
        member: r.member.clone(),
        labels: l.labels.clone(),
        classes: l.classes,
        target: l.target.clone(),
        shadows: l.shadows.clone(),
        keep: l.keep.clone(),
        validation,
        epsilon: r.epsilon,
        kept_epoch: r.kept_epoch,
        ms: r.ms,
        recipe: r.recipe.clone(),
        smoothing: r.smoothing,
        pairing: r.pairing,
        stale: lab.stale,
    })
}

/// A stored run back as a result, its attacks and intervals recomputed from its logits
/// (`ids`: the lab's image ids by position).
fn rebuilt(r: FileResult, ids: &[u64], net: SavedNet) -> Result<LabResult, String> {
    let id = |i: &usize| ids.get(*i).copied().unwrap_or_default();
    let logits = LabLogits {
        labels: r.labels,
        classes: r.classes,
        target: r.target,
        shadows: r.shadows,
        keep: r.keep,
    };
    let n = r.images.len();
    let redo = |e: String| format!("its last run cannot be scored again ({e})");
    let (attacks, draws, accuracy) = lab_run::outcome(&logits, &r.member).map_err(redo)?;
    Ok(LabResult {
        ids: r.images.iter().map(id).collect(),
        trained: r.member.iter().filter(|m| **m).count(),
        member: r.member,
        attacks,
        draws,
        epsilon: r.epsilon,
        accuracy,
        ms: r.ms,
        shadows: logits.keep.len() / n.max(1),
        logits: Rc::new(logits),
        validation: r.validation.iter().map(id).collect(),
        kept_epoch: r.kept_epoch,
        net,
        recipe: r.recipe,
        smoothing: r.smoothing,
        pairing: r.pairing,
    })
}

/// The lab as a JSON file's text.
pub fn export(lab: &LabState, input: InputSpec) -> String {
    let file = LabFile {
        format: FORMAT.into(),
        version: VERSION,
        input: [input.channels, input.height, input.width],
        classes: lab.classes.clone(),
        split_seed: lab.split_seed,
        settings: lab.settings.to_file(),
        images: lab
            .images
            .iter()
            .map(|im| FileImage { class: im.class, member: im.member, pixels: hex(&im.pixels) })
            .collect(),
        network: network(lab),
        result: file_result(lab),
        history: lab.history.clone(),
        instructions: lab.instructions.clone(),
    };
    serde_json::to_string(&file).unwrap_or_default()
}

/// A lab from a file's text, checked against the model's input size (thumbnails are drawn
/// by the caller, in the browser).
pub fn parse(text: &str, input: InputSpec) -> Result<LabState, String> {
    let f = file::read(text, input)?;
    let images: Vec<LabImage> = f
        .images
        .into_iter()
        .enumerate()
        .map(|(id, (class, member, pixels))| LabImage {
            id: id as u64,
            class,
            pixels: Rc::new(pixels),
            preview: String::new(),
            member,
        })
        .collect();
    let settings = LabSettings::from_file(f.settings)?;
    let ids: Vec<u64> = images.iter().map(|im| im.id).collect();
    let (run, stale, imported) = match (f.network, f.result) {
        (Some((shape, bytes)), Some(r)) => {
            let stale = r.stale;
            let net = SavedNet { shape, bytes: Rc::new(bytes) };
            (Run::Done(Rc::new(rebuilt(r, &ids, net)?)), stale, None)
        }
        (Some((shape, bytes)), None) => {
            (Run::Idle, false, Some(ImportedNet { shape, bytes: Rc::new(bytes), check: None }))
        }
        (None, _) => (Run::Idle, false, None),
    };
    Ok(LabState {
        classes: f.classes,
        next_id: images.len() as u64,
        images,
        split_seed: f.split_seed,
        settings,
        run,
        stale,
        imported,
        history: f.history,
        previous: None,
        notice: None,
        instructions: f.instructions,
        revision: 0,
    })
}

/// `lab` with every image's thumbnail drawn.
pub fn with_previews(mut lab: LabState, input: InputSpec) -> LabState {
    for im in &mut lab.images {
        im.preview =
            engine::preview(&im.pixels, input.channels, input.width as u32).unwrap_or_default();
    }
    lab
}

/// Reads a lab file the student picked; a bad file gives a message and changes nothing.
pub fn import(lab: UseReducerHandle<LabState>, main: UseReducerHandle<State>, file: web_sys::File) {
    spawn_local(async move {
        let Some(bundle) = main.bundle.clone() else { return };
        let text = match JsFuture::from(file.text()).await {
            Ok(t) => t.as_string().unwrap_or_default(),
            Err(_) => {
                return main
                    .dispatch(Action::Message(format!("{}: could not be read", file.name())));
            }
        };
        let input = bundle.manifest.input;
        match parse(&text, input) {
            Ok(state) => lab.dispatch(LabAction::Replace(Box::new(with_previews(state, input)))),
            Err(e) => main.dispatch(Action::Message(format!("{}: {e}", file.name()))),
        }
    });
}

/// Every image's class, role and score under every attack, as CSV.
pub fn scores_csv(lab: &LabState, r: &LabResult) -> String {
    let mut out = String::from("image,class,member");
    for (a, ..) in &r.attacks {
        out.push(',');
        out.push_str(a.name());
    }
    out.push('\n');
    for (j, id) in r.ids.iter().enumerate() {
        let class = lab
            .images
            .iter()
            .find(|im| im.id == *id)
            .and_then(|im| lab.classes.get(im.class))
            .cloned()
            .unwrap_or_default();
        out.push_str(&format!("{id},\"{}\",{}", class.replace('"', "'"), r.member[j]));
        for (_, scores, _) in &r.attacks {
            out.push_str(&format!(",{}", scores[j]));
        }
        out.push('\n');
    }
    out
}

/// Every image's class, role and score under every attack, with each attack's AUC, as JSON.
pub fn scores_json(lab: &LabState, r: &LabResult) -> String {
    let images: Vec<serde_json::Value> = r
        .ids
        .iter()
        .enumerate()
        .map(|(j, id)| {
            let class = lab.images.iter().find(|im| im.id == *id).map(|im| im.class);
            let scores: serde_json::Map<String, serde_json::Value> =
                r.attacks.iter().map(|(a, s, _)| (a.name().to_string(), s[j].into())).collect();
            serde_json::json!({
                "image": id,
                "class": class.and_then(|c| lab.classes.get(c)),
                "member": r.member[j],
                "set_aside_for_early_stopping": r.validation.contains(id),
                "scores": scores,
            })
        })
        .collect();
    let aucs: serde_json::Map<String, serde_json::Value> =
        r.attacks.iter().map(|(a, _, auc)| (a.name().to_string(), (*auc).into())).collect();
    let draws: serde_json::Map<String, serde_json::Value> = r
        .draws
        .iter()
        .map(|d| {
            let v = serde_json::json!({
                "auc": d.auc, "tpr": d.tpr, "fpr": d.fpr, "aucs": d.aucs, "tprs": d.tprs,
            });
            (d.attack.name().to_string(), v)
        })
        .collect();
    let doc = serde_json::json!({
        "shadow_models": r.shadows,
        "epsilon": r.epsilon.map(|e| e.0),
        "delta": r.epsilon.map(|e| e.1),
        "trained_on": r.trained,
        "over_draws": draws,
        "accuracy": { "members": r.accuracy.0, "held_out": r.accuracy.1 },
        "auc": aucs,
        "images": images,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Offers `text` as a download named `name`.
pub fn download(name: &str, mime: &str, text: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    if let Some(a) =
        doc.create_element("a").ok().and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_lab_imports_back_as_it_was_and_a_bad_file_is_refused() {
        let input = InputSpec::new(1, 2, 2);
        let mut lab = Rc::new(LabState::default());
        lab = yew::Reducible::reduce(
            lab,
            LabAction::AddImages(0, vec![(vec![1, 2, 3, 4], String::new())]),
        );
        lab = yew::Reducible::reduce(
            lab,
            LabAction::AddImages(1, vec![(vec![5, 6, 7, 8], String::new())]),
        );
        lab = yew::Reducible::reduce(lab, LabAction::Rename(1, "ships".into()));
        let text = export(&lab, input);
        let back = parse(&text, input).unwrap();
        assert_eq!(back.classes, lab.classes);
        assert_eq!(back.settings, lab.settings);
        let strip = |s: &LabState| -> Vec<(usize, bool, Vec<u8>)> {
            s.images.iter().map(|im| (im.class, im.member, im.pixels.to_vec())).collect()
        };
        assert_eq!(strip(&back), strip(&lab));
        assert!(parse(&text, InputSpec::new(3, 2, 2)).is_err(), "another input size");
        assert!(parse("{}", input).is_err());
        assert!(parse(&text.replace("01020304", "0102"), input).is_err(), "damaged pixels");
        assert!(back.imported.is_none(), "no network before a run");
    }

    #[test]
    fn the_network_travels_in_the_file_and_version_1_files_still_import() {
        use mia_core::lab::{Head, HeadConfig, LabNet};
        let input = InputSpec::new(1, 2, 2);
        let device = burn::prelude::Device::flex();
        let cfg = HeadConfig { hidden: 3, ..HeadConfig::default() };
        let net = LabNet::head(Head::new(4, 2, &cfg, &device));
        let bytes = net.to_bytes().unwrap();
        let mut lab = LabState::default();
        lab.settings.early_stopping = Some(4);
        lab.settings.batch_size = 8;
        lab.imported =
            Some(ImportedNet { shape: net.shape(), bytes: Rc::new(bytes.clone()), check: None });
        let text = export(&lab, input);
        let back = parse(&text, input).unwrap();
        assert_eq!(back.settings, lab.settings);
        let imported = back.imported.unwrap();
        assert_eq!((imported.shape, imported.bytes.to_vec()), (net.shape(), bytes.clone()));
        let damaged = text.replace(&hex(&bytes[..8]), "zz");
        assert!(parse(&damaged, input).is_err(), "damaged weights");
        // A version-1 file: no network, none of the newer recipe fields.
        let v1 = r#"{"format":"mia-lab","version":1,"input":[1,2,2],"classes":["a","b"],
            "split_seed":3,"settings":{"defense":"erm","strength":0.0,"hidden":0,"epochs":60,
            "lr":0.1,"weight_decay":0.0,"dropout":0.0,"shadows":32,"delta":1e-5},"images":[]}"#;
        let old = parse(v1, input).unwrap();
        assert_eq!(old.settings, LabSettings::default());
        assert!(old.imported.is_none());
    }

    #[test]
    fn a_finished_run_and_the_table_travel_in_the_file_and_come_back_scored_again() {
        use mia_core::lab::file::FileInstructions;
        use mia_core::lab::{Head, HeadConfig, LabNet};
        let input = InputSpec::new(1, 2, 2);
        let (logits, member) = lab_run::test_world();
        let mut lab = LabState::default();
        for (i, &class) in logits.labels.iter().enumerate() {
            lab.images.push(LabImage {
                id: i as u64,
                class,
                pixels: Rc::new(vec![i as u8; 4]),
                preview: String::new(),
                member: member[i],
            });
        }
        let device = burn::prelude::Device::flex();
        let net = LabNet::head(Head::new(4, 2, &HeadConfig::default(), &device));
        let r = LabResult {
            ids: (0..8).collect(),
            attacks: lab_run::score(&logits, &member).unwrap(),
            draws: lab_run::draws(&logits, &member).unwrap(),
            epsilon: Some((2.5, 1e-5)),
            trained: 4,
            accuracy: lab_run::accuracy(&logits.target, &logits.labels, 2, &member),
            ms: 1234.5,
            shadows: 6,
            logits: Rc::new(logits),
            member,
            validation: vec![4],
            kept_epoch: (30, 60),
            net: SavedNet { shape: net.shape(), bytes: Rc::new(net.to_bytes().unwrap()) },
            recipe: "ERM, linear head".into(),
            smoothing: None,
            pairing: 3,
        };
        lab.history = vec![crate::lab_state::record(1, &r), crate::lab_state::record(2, &r)];
        lab.run = Run::Done(Rc::new(r.clone()));
        lab.stale = true;
        lab.instructions = Some(FileInstructions {
            title: "Overfitting".into(),
            text: "Train twice.".into(),
            questions: vec!["Which run leaks more?".into()],
        });
        let back = parse(&export(&lab, input), input).unwrap();
        let Run::Done(again) = &back.run else { panic!("no run came back: {:?}", back.run) };
        assert_eq!(**again, r, "the run comes back with the same scores and intervals");
        assert!(back.stale && back.imported.is_none());
        assert_eq!(
            (back.history, back.instructions),
            (lab.history.clone(), lab.instructions.clone())
        );
        // While another run trains, the finished one is what is kept.
        let mut training = lab.clone();
        training.previous = Some(Rc::new(r.clone()));
        training.run = Run::Running("training".into(), 1, 7, 10.0);
        let back = parse(&export(&training, input), input).unwrap();
        assert!(matches!(&back.run, Run::Done(again) if **again == r));
        // A run one of whose images was removed since keeps only its network.
        lab.images.remove(0);
        let back = parse(&export(&lab, input), input).unwrap();
        assert!(matches!(back.run, Run::Idle) && back.imported.is_some());
    }
}
