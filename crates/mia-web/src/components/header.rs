//! The top bar: what this is, the backend in use (switchable), loading status, notices and
//! timings.

use yew::prelude::*;

use crate::engine::Backend;
use crate::state::{Status, Threads, Timing};

/// Props.
#[derive(Properties, PartialEq)]
pub struct HeaderProps {
    /// Status.
    pub status: Status,
    /// Backend.
    pub backend: Backend,
    /// Whether WebGPU can be offered.
    pub webgpu: bool,
    /// Notice (fallback).
    pub notice: Option<String>,
    /// ms to first distributions.
    pub first_ms: Option<f64>,
    /// How the last inference went.
    pub last: Option<Timing>,
    /// Reference images run so far, of how many (while it runs).
    pub progress: Option<(usize, usize)>,
    /// Backend picked.
    pub on_backend: Callback<Backend>,
    /// Start the guided tour.
    pub on_tour: Callback<()>,
}

/// The header.
#[function_component(Header)]
pub fn header(p: &HeaderProps) -> Html {
    let on_change = {
        let cb = p.on_backend.clone();
        Callback::from(move |e: Event| {
            let select: web_sys::HtmlSelectElement = e.target_unchecked_into();
            if let Some(b) = Backend::parse(&select.value()) {
                cb.emit(b);
            }
        })
    };
    let option = |b: Backend, value: &'static str, enabled: bool| {
        html! {
            <option {value} selected={p.backend == b} disabled={!enabled}>{ b.name() }</option>
        }
    };
    let tour = {
        let cb = p.on_tour.clone();
        Callback::from(move |_| cb.emit(()))
    };
    html! {
        <header>
            <h1>{ "MIA Lab" }</h1>
            <p class="tagline">{ "How much does a model give away about the images it was trained on? Everything below runs in your browser; no image leaves this device." }</p>
            <div class="bar">
                <label title="where the models run: your graphics card through WebGPU, or the processor">{ "backend " }
                    <select onchange={on_change} data-testid="backend-select">
                        { option(Backend::WebGpu, "webgpu", p.webgpu) }
                        { option(Backend::Flex, "flex", true) }
                        { ndarray_option(&option) }
                    </select>
                </label>
                <span data-testid="backend">{ p.backend.name() }</span>
                <span data-testid="status" class="status">{ match &p.status {
                    Status::Loading(what) => format!("loading: {what}…"),
                    Status::Ready => "ready".to_string(),
                    Status::Failed(e) => format!("error: {e}"),
                } }</span>
                if let (Status::Loading(_), Some((done, total))) = (&p.status, p.progress) {
                    <progress max={total.to_string()} value={done.to_string()} data-testid="progress" aria-label="reference images run" />
                    <span class="muted">{ format!("{done} of {total} images") }</span>
                }
                <button onclick={tour} data-testid="tour-start">{ "take the tour" }</button>
                { p.first_ms.map(|ms| html! { <span data-testid="first-ms">{ format!("first distributions after {:.0} ms", ms) }</span> }).unwrap_or_default() }
                { p.last.as_ref().map(timing).unwrap_or_default() }
            </div>
            { p.notice.as_ref().map(|n| html! { <p class="notice" data-testid="notice">{ n.clone() }</p> }).unwrap_or_default() }
        </header>
    }
}

/// The ndarray choice, in pages built with the `ndarray` feature (the browser benchmark's).
#[cfg(feature = "ndarray")]
fn ndarray_option(option: &dyn Fn(Backend, &'static str, bool) -> Html) -> Html {
    option(Backend::NdArray, "ndarray", true)
}

/// Nothing: the page is built without ndarray.
#[cfg(not(feature = "ndarray"))]
fn ndarray_option(_: &dyn Fn(Backend, &'static str, bool) -> Html) -> Html {
    Html::default()
}

/// The last inference's time, per image, and where it ran (the tooltip says why).
fn timing(t: &Timing) -> Html {
    let per = t.ms / t.images.max(1) as f64;
    let (threads, why) = match &t.threads {
        Threads::Gpu => (String::new(), "on the graphics card".to_string()),
        Threads::Helpers(n) => (
            format!(" on {n} threads"),
            format!("the processor's work split between {n} helper threads (Web Workers)"),
        ),
        Threads::Alone(why) => {
            (" on one thread".to_string(), format!("on the page's own thread: {why}"))
        }
    };
    html! {
        <span data-testid="inference-ms" title={why}>{ format!("{} images in {:.0} ms ({per:.2} ms/image{threads})", t.images, t.ms) }</span>
    }
}
