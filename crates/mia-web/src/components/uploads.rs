//! Uploads: a file picker and a drop zone for any images the browser decodes, reference
//! thumbnails (members and non-members) to drag in, and for each image its top predictions,
//! its membership score per attack and the attacker's verdict.

use yew::prelude::*;

use crate::analysis::Verdict;

/// What the lab says about one upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadView {
    /// File name (or the reference example it came from).
    pub name: String,
    /// Preview data URL.
    pub preview: String,
    /// Top predictions: class, probability (released).
    pub top: Vec<(String, f32)>,
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
    /// Files chosen or dropped.
    pub on_files: Callback<Vec<web_sys::File>>,
    /// A reference thumbnail dropped or clicked.
    pub on_reference: Callback<usize>,
}

fn files(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
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
    html! {
        <section class="panel uploads">
            <h2>{ "Your images" }</h2>
            <p class="explain">{ "Pick or drop images (any format your browser opens; they are cropped to a square and resized). They never leave this device. Or drag one of these training (member) and unseen (non-member) examples in:" }</p>
            <div class="thumbs">
                { for p.thumbs.iter().map(|t| {
                    let i = t.index;
                    let click = p.on_reference.clone();
                    html! {
                        <img src={t.url.clone()} class={if t.member { "thumb member" } else { "thumb nonmember" }}
                            title={if t.member { "member (in the training set)" } else { "non-member" }}
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
            { for p.uploads.iter().map(|u| html! {
                <div class="upload" data-testid="upload-result">
                    <img src={u.preview.clone()} class="preview" />
                    <div>
                        <b>{ u.name.clone() }</b>
                        if u.top.is_empty() {
                            <p class="muted">{ "running…" }</p>
                        } else {
                            <p data-testid="prediction">{ u.top.iter().map(|(c, p)| format!("{c} {:.1}%", 100.0 * p)).collect::<Vec<_>>().join(" · ") }</p>
                            <ul>
                                { for u.verdicts.iter().map(|v| html! {
                                    <li>{ format!("{}: score {:.3} vs threshold {:.3} → ", v.attack.name(), v.score, v.threshold) }<b>{ if v.member { "member" } else { "non-member" } }</b></li>
                                }) }
                            </ul>
                        }
                    </div>
                </div>
            }) }
        </section>
    }
}
