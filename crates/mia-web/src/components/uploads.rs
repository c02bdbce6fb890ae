//! Uploads: a file picker and a drop zone for any images the browser decodes, reference
//! thumbnails (members and non-members) to add, and for each image its top predictions, the
//! label the attacks used (the student may pick the true one) and each attack's verdict with
//! the false-positive rate of that very procedure. Each file is looked up among the model's
//! training images (a copy of one is recognised, and a flag on it is a catch); any other file
//! is not one of them, so a flag on it is a false positive. Uploads can be removed.

use yew::prelude::*;

use crate::analysis::{Known, LabelUsed, Origin, Verdict};
use crate::components::glossary::Term;

/// What the lab says about one upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadView {
    /// Upload id.
    pub id: u64,
    /// File name (or the reference example it came from).
    pub name: String,
    /// Preview data URL.
    pub preview: String,
    /// A file or a reference example.
    pub origin: Origin,
    /// The class the student picked, if any.
    pub chosen: Option<usize>,
    /// Top predictions: class, probability (released).
    pub top: Vec<(String, f32)>,
    /// The label the attacks scored, and its class name.
    pub label: Option<(LabelUsed, String)>,
    /// Per attack: its score against its threshold.
    pub verdicts: Vec<Verdict>,
}

/// A reference example offered as a thumbnail.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    /// Index in the reference sample.
    pub index: usize,
    /// Data URL.
    pub url: String,
    /// Member of the target?
    pub member: bool,
}

/// Props.
#[derive(Properties, PartialEq)]
pub struct UploadsProps {
    /// Results, oldest first.
    pub uploads: Vec<UploadView>,
    /// Thumbnails.
    pub thumbs: Vec<Thumb>,
    /// The model's class names (for the label picker).
    pub classes: Vec<String>,
    /// Training images the bundle's index holds (None: it ships none).
    pub index_members: Option<usize>,
    /// Files chosen or dropped.
    pub on_files: Callback<Vec<web_sys::File>>,
    /// A reference thumbnail dropped or clicked.
    pub on_reference: Callback<usize>,
    /// Remove one upload.
    pub on_remove: Callback<u64>,
    /// Remove all.
    pub on_clear: Callback<()>,
    /// The student's label for an upload (None: the prediction).
    pub on_label: Callback<(u64, Option<usize>)>,
}

fn files(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// What is known of an image's membership, for one verdict: whether its flag (or its
/// absence) is right.
fn truth(origin: Origin, flagged: bool) -> &'static str {
    match (origin, flagged) {
        (Origin::File { known: Known::Member { .. } }, true) => {
            " Right (caught): it is one of the model's training images."
        }
        (Origin::File { known: Known::Member { .. } }, false) => {
            " Missed: it is one of the model's training images."
        }
        (Origin::File { known: Known::NotMember }, true) => {
            " Wrong (a false positive): it is not one of the model's training images."
        }
        (Origin::File { known: Known::Unchecked | Known::Checking }, true) => {
            " Whether the model trained on it is not known here."
        }
        (Origin::Reference { member: true, .. }, true) => " Right: it was in the training set.",
        (Origin::Reference { member: false, .. }, true) => {
            " Wrong (a false positive): it was not in the training set."
        }
        (Origin::Reference { member: true, .. }, false) => " Missed: it was in the training set.",
        (_, false) => "",
    }
}

/// One attack's verdict in words: what it did, how often it is wrong that way, and what is
/// known about this image.
fn verdict_line(v: &Verdict, origin: Origin) -> Html {
    let (sign, did) = if v.flagged { ("≥", "flagged") } else { ("<", "not flagged") };
    let rates = format!(
        "At this threshold the attack flags {} of the {} images the model never saw (its false-positive rate) and {} of its members.",
        pct(v.fpr),
        v.non_members,
        pct(v.tpr)
    );
    let pooled = if v.pooled {
        " (LiRA here uses shadow statistics averaged over the reference images: your image has no shadow models of its own.)"
    } else {
        ""
    };
    html! {
        <li data-testid="verdict">
            <b>{ v.attack.name() }</b>{ format!(": score {:.2} {sign} threshold {:.2} → {did}. ", v.score, v.threshold) }
            <span data-testid="verdict-fpr">{ rates }</span>{ truth(origin, v.flagged) }{ pooled }
        </li>
    }
}

/// What the page knows of a file, in words (the summary's first part).
fn known_words(known: Known, classes: &[String]) -> String {
    match known {
        Known::Member { label, mirrored, .. } => {
            let class = classes.get(label).map(String::as_str).unwrap_or("?");
            let how = if mirrored { ", mirrored" } else { "" };
            format!("one of the model's training images ({class}{how})")
        }
        Known::NotMember => "not one of the model's training images".into(),
        Known::Checking => "checking whether it is one of the model's training images…".into(),
        Known::Unchecked => "whether the model trained on it cannot be checked here".into(),
    }
}

/// The one-line summary of an upload's verdicts.
fn summary(u: &UploadView, classes: &[String]) -> String {
    let k = u.verdicts.iter().filter(|v| v.flagged).count();
    let m = u.verdicts.len();
    match u.origin {
        Origin::File { known } => {
            let what = known_words(known, classes);
            match known {
                Known::Member { .. } => format!("{what}: caught by {k} of {m} attacks"),
                Known::NotMember if k == 0 => {
                    format!("{what}: flagged by none of {m} attacks (correct)")
                }
                Known::NotMember => {
                    format!("{what}: flagged by {k} of {m} attacks (false positives)")
                }
                _ => format!("{what}; flagged by {k} of {m} attacks"),
            }
        }
        Origin::Reference { index, member, .. } => {
            let right = if member { k } else { m - k };
            format!("reference #{index}: {k} of {m} attacks flag it; {right} of {m} are right")
        }
    }
}

/// `20 000`: digits grouped by three with a thin space.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// How a file was recognised (or not), for the details.
fn recognition_line(u: &UploadView, index_members: Option<usize>) -> Html {
    let Origin::File { known } = u.origin else { return html! {} };
    let all = index_members.map_or_else(String::new, |n| format!("{} ", thousands(n)));
    let text = match known {
        Known::Member { position, distance, mirrored, .. } => format!(
            "Recognised as training image no. {} of the model's {all}training images{}: {distance} of the {} bits of their image hashes differ (copies re-encoded as JPEG and resized differed by at most 8 in tests; up to {} counts as the same photo).",
            position + 1,
            if mirrored { ", mirrored" } else { "" },
            mia_core::recognise::HASH_BITS,
            mia_core::recognise::MATCH_DISTANCE
        ),
        Known::NotMember => format!(
            "Not among the model's {all}training images: no image hash within {} bits of this image's (or its mirror image's).",
            mia_core::recognise::MATCH_DISTANCE
        ),
        Known::Checking => "Looking it up among the model's training images…".into(),
        Known::Unchecked => "This bundle ships no list of its model's training images, so the page cannot say whether the model saw this image.".into(),
    };
    html! { <p class="muted" data-testid="upload-recognition">{ text }</p> }
}

/// Which label the attacks used, why, and a picker for the true class.
fn label_line(
    u: &UploadView,
    classes: &[String],
    on_label: &Callback<(u64, Option<usize>)>,
) -> Html {
    let Some((label, name)) = &u.label else { return html! {} };
    let why = match label {
        LabelUsed::Predicted(_) => format!(
            "Scored as “{name}”, the model's prediction: the attacks need the image's true class and you gave none. Know it? "
        ),
        LabelUsed::Chosen(_) => format!("Scored as “{name}”, the class you picked. "),
        LabelUsed::True(_) if matches!(u.origin, Origin::Reference { .. }) => {
            return html! { <p class="muted">{ format!("Scored as “{name}”, its true label (a reference image).") }</p> };
        }
        LabelUsed::True(_) => {
            format!("Scored as “{name}”, the label it was trained with. Another class? ")
        }
    };
    let (id, cb) = (u.id, on_label.clone());
    let on_change = Callback::from(move |e: Event| {
        let select: web_sys::HtmlSelectElement = e.target_unchecked_into();
        cb.emit((id, select.value().parse::<usize>().ok()));
    });
    html! {
        <p class="muted">{ why }
            <select onchange={on_change} data-testid="upload-label" aria-label="the image's true class">
                <option value="" selected={u.chosen.is_none()}>{ "use the prediction" }</option>
                { for classes.iter().enumerate().map(|(k, c)| html! {
                    <option value={k.to_string()} selected={u.chosen == Some(k)}>{ c.clone() }</option>
                }) }
            </select>
        </p>
    }
}

/// One upload, compact: number, preview, prediction, summary; details fold out.
fn upload_row(n: usize, u: &UploadView, p: &UploadsProps) -> Html {
    let remove = {
        let (cb, id) = (p.on_remove.clone(), u.id);
        Callback::from(move |_| cb.emit(id))
    };
    html! {
        <div class="upload" data-testid="upload-result" key={u.id.to_string()}>
            <span class="mark-number">{ n }</span>
            <img src={u.preview.clone()} class="preview" alt={u.name.clone()} />
            <div class="upload-body">
                <div class="upload-head">
                    <b class="upload-name" title={u.name.clone()}>{ u.name.clone() }</b>
                    <button class="remove" onclick={remove} title="remove this image" aria-label={format!("remove {}", u.name)} data-testid="upload-remove">{ "×" }</button>
                </div>
                if u.top.is_empty() {
                    <p class="muted">{ "running…" }</p>
                } else {
                    <p data-testid="prediction">{ u.top.iter().map(|(c, p)| format!("{c} {:.1}%", 100.0 * p)).collect::<Vec<_>>().join(" · ") }</p>
                    <p data-testid="upload-summary">{ summary(u, &p.classes) }</p>
                    <details>
                        <summary>{ "why: score, threshold and " }<Term name="FPR" /></summary>
                        { recognition_line(u, p.index_members) }
                        { label_line(u, &p.classes, &p.on_label) }
                        <ul>{ for u.verdicts.iter().map(|v| verdict_line(v, u.origin)) }</ul>
                    </details>
                }
            </div>
        </div>
    }
}

/// The uploads panel.
#[function_component(Uploads)]
pub fn uploads(p: &UploadsProps) -> Html {
    let dragging = use_state(|| false);
    let on_change = {
        let cb = p.on_files.clone();
        Callback::from(move |e: Event| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            cb.emit(files(input.files()));
            input.set_value("");
        })
    };
    let on_drop = {
        let (files_cb, ref_cb, dragging) =
            (p.on_files.clone(), p.on_reference.clone(), dragging.clone());
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            let Some(dt) = e.data_transfer() else { return };
            if let Some(i) = dt
                .get_data("text/plain")
                .ok()
                .and_then(|t| t.strip_prefix("ref:").and_then(|i| i.parse().ok()))
            {
                ref_cb.emit(i);
                return;
            }
            files_cb.emit(files(dt.files()));
        })
    };
    let on_over = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(true);
        })
    };
    let on_leave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let clear = {
        let cb = p.on_clear.clone();
        Callback::from(move |_| cb.emit(()))
    };
    html! {
        <section class="panel uploads" id="uploads">
            <h2>{ "Your images" }</h2>
            <p class="explain">{ "Pick or drop images (any format your browser opens; they are cropped to a square and resized). They never leave this device. With your first image the page fetches a list of the model's training images (their image hashes) and looks each image up in it: a copy of a training image, even re-encoded, resized or mirrored, is recognised, and an attack that flags it has caught a member. Any other image is not one of them, so an attack that flags it is wrong: a way to see false positives. Or add one of these training (" }<Term name="member" />{ ", blue) and unseen (orange) examples by clicking or dragging it:" }</p>
            <div class="thumbs">
                { for p.thumbs.iter().map(|t| {
                    let i = t.index;
                    let click = p.on_reference.clone();
                    html! {
                        <img src={t.url.clone()} class={if t.member { "thumb member" } else { "thumb nonmember" }}
                            title={if t.member { "member (in the training set)" } else { "non-member" }}
                            alt={if t.member { "a member image" } else { "a non-member image" }}
                            draggable="true" data-testid={format!("thumb-{i}")}
                            ondragstart={Callback::from(move |e: DragEvent| {
                                if let Some(dt) = e.data_transfer() { let _ = dt.set_data("text/plain", &format!("ref:{i}")); }
                            })}
                            onclick={Callback::from(move |_| click.emit(i))} />
                    }
                }) }
            </div>
            <div class={if *dragging { "drop active" } else { "drop" }} ondrop={on_drop} ondragover={on_over} ondragleave={on_leave}>
                <input type="file" accept="image/*" multiple=true onchange={on_change} data-testid="upload-input" />
                <span>{ " or drop images here" }</span>
            </div>
            if !p.uploads.is_empty() {
                <div class="upload-tools">
                    <span class="muted">{ format!("{} image{}; numbers match the marks ▲ on the charts", p.uploads.len(), if p.uploads.len() == 1 { "" } else { "s" }) }</span>
                    <button onclick={clear} data-testid="uploads-clear">{ "remove all" }</button>
                </div>
            }
            <div class="upload-list">
                { for p.uploads.iter().enumerate().map(|(n, u)| upload_row(n + 1, u, p)) }
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use mia_core::bundle::BrowserAttack;

    use super::*;

    fn view(known: Known, flags: [bool; 3]) -> UploadView {
        let verdict = |flagged| Verdict {
            attack: BrowserAttack::Loss,
            score: 0.0,
            threshold: 0.0,
            flagged,
            fpr: 0.1,
            tpr: 0.2,
            non_members: 1000,
            pooled: false,
        };
        UploadView {
            id: 0,
            name: "cat.jpg".into(),
            preview: String::new(),
            origin: Origin::File { known },
            chosen: None,
            top: Vec::new(),
            label: None,
            verdicts: flags.into_iter().map(verdict).collect(),
        }
    }

    fn classes() -> Vec<String> {
        ["airplane", "cat"].map(String::from).to_vec()
    }

    #[test]
    fn a_recognised_training_image_counts_its_flags_as_catches() {
        let known = Known::Member { label: 1, position: 7, distance: 2, mirrored: false };
        let s = summary(&view(known, [true, true, false]), &classes());
        assert_eq!(s, "one of the model's training images (cat): caught by 2 of 3 attacks");
        let origin = Origin::File { known };
        assert!(truth(origin, true).contains("Right (caught)"));
        assert!(truth(origin, false).contains("Missed"));
    }

    #[test]
    fn another_image_is_not_a_training_image_and_its_flags_are_false_positives() {
        let s = summary(&view(Known::NotMember, [true, false, false]), &classes());
        assert_eq!(
            s,
            "not one of the model's training images: flagged by 1 of 3 attacks (false positives)"
        );
        let none = summary(&view(Known::NotMember, [false; 3]), &classes());
        assert!(none.ends_with("flagged by none of 3 attacks (correct)"), "{none}");
        assert!(truth(Origin::File { known: Known::NotMember }, true).contains("false positive"));
    }

    #[test]
    fn without_an_index_the_page_claims_nothing() {
        let s = summary(&view(Known::Unchecked, [true, false, false]), &classes());
        assert!(s.contains("cannot be checked") && !s.contains("false positive"), "{s}");
        assert!(!truth(Origin::File { known: Known::Unchecked }, true).contains("Wrong"));
        let mirrored = Known::Member { label: 0, position: 0, distance: 9, mirrored: true };
        assert!(summary(&view(mirrored, [false; 3]), &classes()).contains("(airplane, mirrored)"));
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(20_000), "20\u{2009}000");
        assert_eq!(thousands(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(thousands(999), "999");
    }
}
