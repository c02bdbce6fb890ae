//! A class's camera: opens the student's camera on request (the browser asks first), shows
//! the picture, and each "snap" adds the frame, centre-cropped and resized to the model's
//! input, to the class. The camera closes with its button and when the component goes away.

use mia_core::InputSpec;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::engine;

/// Props.
#[derive(Properties, PartialEq)]
pub struct CameraProps {
    /// The model's input size.
    pub input: InputSpec,
    /// A snapped frame: (CHW pixels, preview).
    pub on_snap: Callback<(Vec<u8>, String)>,
    /// For test ids.
    pub class: usize,
}

/// See the module documentation.
#[function_component(Camera)]
pub fn camera(p: &CameraProps) -> Html {
    let stream = use_state(|| None::<web_sys::MediaStream>);
    let error = use_state(|| None::<String>);
    let video = use_node_ref();
    {
        // Show the stream in the video element; stop the camera when it closes or unmounts.
        let video = video.clone();
        use_effect_with((*stream).clone(), move |s| {
            if let (Some(s), Some(v)) = (s, video.cast::<web_sys::HtmlVideoElement>()) {
                v.set_src_object(Some(s));
                let _ = v.play();
            }
            let s = s.clone();
            move || {
                if let Some(s) = s {
                    engine::close_camera(&s);
                }
            }
        });
    }
    let open = {
        let (stream, error) = (stream.clone(), error.clone());
        Callback::from(move |_| {
            let (stream, error) = (stream.clone(), error.clone());
            spawn_local(async move {
                match engine::open_camera().await {
                    Ok(s) => {
                        error.set(None);
                        stream.set(Some(s));
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let close = {
        let stream = stream.clone();
        Callback::from(move |_| stream.set(None))
    };
    let snap = {
        let (video, error, on_snap, input) =
            (video.clone(), error.clone(), p.on_snap.clone(), p.input);
        Callback::from(move |_| {
            let Some(v) = video.cast::<web_sys::HtmlVideoElement>() else { return };
            match engine::snap(&v, input) {
                Ok(frame) => on_snap.emit(frame),
                Err(e) => error.set(Some(e)),
            }
        })
    };
    let k = p.class;
    html! {
        <span class="lab-camera">
            if stream.is_some() {
                <video ref={video} autoplay=true playsinline=true muted=true class="lab-video" />
                <button onclick={snap} data-testid={format!("lab-snap-{k}")}>{ "snap" }</button>
                <button onclick={close}>{ "close the camera" }</button>
            } else {
                <button onclick={open} data-testid={format!("lab-camera-{k}")} title="the picture stays in this browser">{ "use the camera" }</button>
            }
            if let Some(e) = &*error { <span class="messages" data-testid="lab-camera-error">{ format!(" {e}") }</span> }
        </span>
    }
}
