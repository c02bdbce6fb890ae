//! The browser side of inference: fetching and verifying the bundle, choosing the backend
//! (WebGPU when an adapter is there, warmed up once; CPU otherwise, with the reason shown),
//! running models in chunks that yield to the page between them, reading tensors back only
//! asynchronously, and turning uploaded files into model inputs through the browser's own
//! image decoder. Weights are fetched at runtime from `pretrained/`, never embedded.

use std::rc::Rc;

use burn::prelude::*;
use js_sys::{Promise, Reflect, Uint8Array};
use mia_core::bundle::{FileRef, LiraStats, Manifest, ReferenceSample, ShadowOutputs};
use mia_core::inference::RANDOM_INPUTS;
use mia_core::preprocess::batch_tensor;
use mia_core::recognise::MembersIndex;
use mia_core::{InputSpec, Model};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::photo::{self, Sniffed};

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: f64 = 40e6;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// WebGPU through burn's wgpu backend.
    WebGpu,
    /// burn's flex CPU backend (the CPU default).
    Flex,
    /// burn's ndarray CPU backend (the `ndarray` feature: the browser benchmark's).
    #[cfg(feature = "ndarray")]
    NdArray,
}

impl Backend {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebGpu => "WebGPU",
            Self::Flex => "CPU (flex)",
            #[cfg(feature = "ndarray")]
            Self::NdArray => "CPU (ndarray)",
        }
    }

    /// Parses the `?backend=` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webgpu" => Some(Self::WebGpu),
            "flex" | "cpu" => Some(Self::Flex),
            #[cfg(feature = "ndarray")]
            "ndarray" => Some(Self::NdArray),
            _ => None,
        }
    }
}

/// One shipped model's files, fetched and verified.
#[derive(Debug, PartialEq)]
pub struct LoadedModel {
    /// The raw weights (kept to rebuild the model on another backend).
    pub weights: Vec<u8>,
    /// Shipped LiRA statistics.
    pub lira: Option<LiraStats>,
    /// Shipped shadow outputs, once fetched: only the adaptive attacker needs them, so they
    /// are fetched when it is first chosen ([`load_shadows`]), not on the first visit.
    pub shadows: Option<ShadowOutputs>,
}

/// The verified manifest and reference sample; each model's files load on their own
/// ([`load_model`]), so one broken model leaves the others usable.
pub struct Bundle {
    /// Where it is served from, relative to the page.
    pub base: String,
    /// The manifest.
    pub manifest: Manifest,
    /// The reference sample.
    pub reference: ReferenceSample,
}

/// What a JavaScript error or rejection says.
pub fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| format!("{e:?}"))
}

fn window() -> Result<web_sys::Window, String> {
    web_sys::window().ok_or_else(|| "no window".to_string())
}

/// Milliseconds since page load.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Marks a moment on the page's performance timeline (`performance.mark`), where the browser's
/// tools and the real-browser tests read it.
pub fn mark(name: &str) {
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        // A timeline that refuses the mark loses only the mark.
        let _ = p.mark(name);
    }
}

/// Longest stretch of work between two yields to the page, ms.
pub const SLICE_MS: f64 = 30.0;

/// The current stretch of work between two yields to the page ([`SLICE_MS`] long): inference
/// and the lab's runs both pace themselves with it.
pub struct Slice {
    start: f64,
}

impl Slice {
    /// A slice starting now.
    pub fn start() -> Self {
        Self { start: now_ms() }
    }

    /// Whether this slice is used up.
    pub fn is_over(&self) -> bool {
        now_ms() - self.start > SLICE_MS
    }

    /// Yields to the page and starts the next slice.
    pub async fn next(&mut self) {
        yield_now().await;
        self.start = now_ms();
    }
}

/// Lets the page render and handle input before the next chunk of work: a message the page
/// posts to itself starts a new task at once, where `setTimeout(0)` waits at least 4 ms once
/// timers nest (Chromium, from the fifth): a quarter of the CPU path's inference was that wait.
pub async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| {
        if !YIELDER.with(|y| y.post(resolve.clone()))
            && let Ok(w) = window()
        {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The yields waiting for their message, oldest first.
type Waiting = Rc<std::cell::RefCell<std::collections::VecDeque<js_sys::Function>>>;

/// One message channel for [`yield_now`]: each message resolves the oldest waiting yield.
struct Yielder {
    channel: Option<web_sys::MessageChannel>,
    waiting: Waiting,
    _on_message: Option<wasm_bindgen::closure::Closure<dyn FnMut()>>,
}

impl Yielder {
    fn new() -> Self {
        let waiting = Waiting::default();
        let Ok(channel) = web_sys::MessageChannel::new() else {
            return Self { channel: None, waiting, _on_message: None };
        };
        let queue = waiting.clone();
        let on_message = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            let next = queue.borrow_mut().pop_front();
            if let Some(resolve) = next {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        channel.port1().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Self { channel: Some(channel), waiting, _on_message: Some(on_message) }
    }

    /// Queues `resolve` for the next message; `false` when no channel could be made.
    fn post(&self, resolve: js_sys::Function) -> bool {
        let Some(channel) = &self.channel else { return false };
        self.waiting.borrow_mut().push_back(resolve);
        if channel.port2().post_message(&JsValue::NULL).is_ok() {
            return true;
        }
        self.waiting.borrow_mut().pop_back();
        false
    }
}

thread_local! {
    static YIELDER: Yielder = Yielder::new();
}

/// Waits `ms` milliseconds (a timer: the page stays responsive).
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Ok(w) = window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// What a host should check when a bundle's file is missing.
const BUNDLE_HINT: &str =
    "If you host this page, check that the whole pretrained/ folder was copied next to it.";

/// Why a file could not be fetched, worded for the student, with what to check.
fn http_problem(what: &str, status: u16, hint: &str) -> String {
    let meaning = match status {
        404 => "not found",
        403 => "access denied",
        500..=599 => "a server error",
        _ => "an error",
    };
    format!("could not download {what}: the server answered {status} ({meaning}). {hint}")
}

/// GETs a bundle's file at `url` as bytes; `what` names the file for the student in any error.
pub async fn fetch_bytes(url: &str, what: &str) -> Result<Vec<u8>, String> {
    fetch_file(url, what, BUNDLE_HINT).await
}

/// GETs `url` as bytes; `what` names the file for the student in any error, `hint` says what
/// to check when the server does not have it.
pub async fn fetch_file(url: &str, what: &str, hint: &str) -> Result<Vec<u8>, String> {
    let offline = |e: JsValue| {
        format!(
            "could not download {what}: the connection failed ({}). Check the connection and reload the page.",
            js_err(e)
        )
    };
    let resp = JsFuture::from(window()?.fetch_with_str(url)).await.map_err(offline)?;
    let resp: web_sys::Response = resp.dyn_into().map_err(js_err)?;
    if !resp.ok() {
        return Err(http_problem(what, resp.status(), hint));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(offline)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

async fn fetch_checked(base: &str, f: &FileRef, what: &str) -> Result<Vec<u8>, String> {
    let bytes = fetch_bytes(&format!("{base}/{}", f.path), what).await?;
    f.verify(&bytes).map_err(|_| {
        format!(
            "{what} is damaged: its contents do not match the checksum in manifest.json (a partial or altered copy). Copy {} again from the project's pretrained/ folder.",
            f.path
        )
    })?;
    Ok(bytes)
}

/// Fetches `base/manifest.json` and the reference sample, checking version, sizes and hashes.
pub async fn load_bundle(base: &str) -> Result<Bundle, String> {
    let text =
        fetch_bytes(&format!("{base}/manifest.json"), "the list of models (manifest.json)").await?;
    let text = String::from_utf8(text).map_err(|_| "manifest.json is not text".to_string())?;
    let manifest = Manifest::parse(&text)
        .map_err(|e| format!("manifest.json cannot be read by this version of the page ({e})"))?;
    let what = format!("the reference images ({})", manifest.reference.file.path);
    let reference = ReferenceSample::decode(
        &fetch_checked(base, &manifest.reference.file, &what).await?,
        manifest.input,
    )
    .map_err(|e| format!("{what} cannot be read ({e})"))?;
    Ok(Bundle { base: base.to_string(), manifest, reference })
}

/// Fetches and verifies model `id`'s weights, LiRA statistics and shadow outputs.
pub async fn load_model(bundle: &Bundle, id: &str) -> Result<LoadedModel, String> {
    let m = bundle.manifest.model(id).ok_or_else(|| format!("no model {id} in manifest.json"))?;
    let (base, n) = (&bundle.base, bundle.reference.len());
    let label = &m.label;
    let weights = fetch_checked(base, &m.weights, &format!("the {label} model's weights")).await?;
    let lira = match &m.lira {
        Some(f) => {
            let what = format!("the {label} model's LiRA statistics");
            let bytes = fetch_checked(base, f, &what).await?;
            Some(LiraStats::decode(&bytes, n).map_err(|e| format!("{what} cannot be read ({e})"))?)
        }
        None => None,
    };
    Ok(LoadedModel { weights, lira, shadows: None })
}

/// Fetches and verifies model `id`'s shadow outputs (the adaptive attacker's); `Ok(None)` when
/// the bundle ships none for it.
pub async fn load_shadows(bundle: &Bundle, id: &str) -> Result<Option<ShadowOutputs>, String> {
    let m = bundle.manifest.model(id).ok_or_else(|| format!("no model {id} in manifest.json"))?;
    let (base, n, c) = (&bundle.base, bundle.reference.len(), bundle.manifest.class_names.len());
    let Some(f) = &m.shadow_outputs else { return Ok(None) };
    let what = format!("the {} model's shadow outputs", m.label);
    let bytes = fetch_checked(base, f, &what).await?;
    let decoded = ShadowOutputs::decode(&bytes, n, c);
    Ok(Some(decoded.map_err(|e| format!("{what} cannot be read ({e})"))?))
}

/// Fetches and verifies the index of the model's training images; `Ok(None)` when the bundle
/// ships none.
pub async fn load_members_index(bundle: &Bundle) -> Result<Option<MembersIndex>, String> {
    let Some(entry) = &bundle.manifest.members_index else { return Ok(None) };
    let what = format!("the list of the model's training images ({})", entry.file.path);
    let bytes = fetch_checked(&bundle.base, &entry.file, &what).await?;
    let index = MembersIndex::decode(&bytes).map_err(|e| format!("{what} cannot be read ({e})"))?;
    Ok(Some(index))
}

/// Whether this build of the page has the WebGPU engine (the `webgpu` feature); the CPU build
/// switches to the other build to use WebGPU ([`load_webgpu_build`]).
pub const HAS_WEBGPU: bool = cfg!(feature = "webgpu");

/// What WebGPU the browser offers, as the page's loader (web/index.py) found it while the wasm
/// downloaded: `Ok(None)` for a hardware adapter, `Ok(Some(name))` for a software emulation
/// (SwiftShader, llvmpipe: usually slower than the CPU path), `Err(reason)` for none. A page
/// started without that loader (trunk's) has no verdict: a hardware adapter is assumed, and a
/// WebGPU that fails falls back to the CPU with the reason shown.
pub fn webgpu_verdict() -> Result<Option<String>, String> {
    let verdict = Reflect::get(&js_sys::global(), &JsValue::from_str("miaWebGpu"))
        .ok()
        .filter(JsValue::is_object);
    let Some(v) = verdict else { return Ok(None) };
    let field = |k: &str| Reflect::get(&v, &JsValue::from_str(k)).ok().and_then(|x| x.as_string());
    match field("adapter").as_deref() {
        Some("software") => Ok(Some(field("name").unwrap_or_else(|| "a software renderer".into()))),
        Some("none") => Err(field("reason").unwrap_or_else(|| "no WebGPU adapter".into())),
        _ => Ok(None),
    }
}

/// What the page's loader (web/index.py) leaves for the page: `globalThis.miaBuild`, with the
/// glue's address (`glue`) and the kept pick (`remember`). None in a page started otherwise.
pub fn loader() -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("miaBuild")).ok().filter(|b| b.is_object())
}

/// Tells the page's loader (web/index.py's `miaBuild`) which build later visits start with:
/// the WebGPU build after the visitor picked WebGPU, the CPU build after they picked the CPU.
/// Without the loader (trunk's page) or with storage refused, nothing is kept.
pub fn remember_build(backend: Backend) {
    let kind = if backend == Backend::WebGpu { "webgpu" } else { "cpu" };
    let Some(build) = loader() else { return };
    let remember = Reflect::get(&build, &JsValue::from_str("remember")).ok();
    if let Some(f) = remember.and_then(|f| f.dyn_into::<js_sys::Function>().ok()) {
        // A loader that throws leaves this visit as it is.
        let _ = f.call1(&build, &JsValue::from_str(kind));
    }
}

/// Reloads the page as its WebGPU build (`?backend=webgpu`, the other query keys kept), which
/// later visits start with: the lab and the explore view are kept in the browser and come back
/// after the reload.
pub fn load_webgpu_build() -> Result<(), String> {
    remember_build(Backend::WebGpu);
    let location = window()?.location();
    let url = web_sys::Url::new(&location.href().map_err(js_err)?).map_err(js_err)?;
    url.search_params().set("backend", "webgpu");
    location.assign(&url.href()).map_err(js_err)
}

/// Whether the page can ask for WebGPU at all (`navigator.gpu` exists: secure context, a
/// browser that has it).
pub fn webgpu_exposed() -> bool {
    window()
        .ok()
        .and_then(|w| Reflect::get(&w.navigator(), &JsValue::from_str("gpu")).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// A ready device for `backend`: WebGPU is initialised asynchronously and warmed up with one
/// small computation read back asynchronously; any failure is an error the caller shows.
pub async fn device(backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::Flex => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        Backend::NdArray => Ok(Device::ndarray()),
        #[cfg(not(feature = "webgpu"))]
        Backend::WebGpu => {
            Err("this is the CPU build of the page, without its WebGPU engine".into())
        }
        #[cfg(feature = "webgpu")]
        Backend::WebGpu => {
            if !webgpu_exposed() {
                return Err("this browser exposes no WebGPU (navigator.gpu is missing)".into());
            }
            let device =
                Device::wgpu_options().init_async().await.map_err(|e| format!("WebGPU: {e}"))?;
            let x = Tensor::<2>::ones([4, 4], &device);
            let y = x.clone().matmul(x).sum();
            let data = y.into_data_async().await.map_err(|e| format!("WebGPU warm-up: {e:?}"))?;
            let v: Vec<f32> = data.try_to_vec().map_err(|e| format!("WebGPU warm-up: {e:?}"))?;
            if v.first().copied() != Some(64.0) {
                return Err(format!("WebGPU warm-up gave {v:?}, expected [64]"));
            }
            Ok(device)
        }
    }
}

/// Logits of `model` on `n` images (`u8` CHW pixels), in chunks of `chunk` that yield to the
/// page between them (`progress` hears how many are done after each); tensors are read back
/// asynchronously only.
pub async fn infer(
    model: &Model,
    device: &Device,
    manifest: &Manifest,
    input: (&[u8], usize),
    chunk: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<f32>, String> {
    let forward = |m: &Model, x| Ok(m.forward(x));
    infer_with(model, device, manifest, input, chunk, progress, &forward).await
}

/// `[n × d]` features of `n` images: the activations the model's last layer reads (lab mode
/// trains its heads on them), computed like [`infer`].
pub async fn features(
    model: &Model,
    device: &Device,
    manifest: &Manifest,
    input: (&[u8], usize),
    progress: &dyn Fn(usize),
) -> Result<Vec<f32>, String> {
    let features = |m: &Model, x| {
        m.features(x).ok_or_else(|| "this model's architecture exposes no features".to_string())
    };
    infer_with(model, device, manifest, input, 50, progress, &features).await
}

/// Outputs `f(model, batch)` of `n` images in chunks of `chunk`, yielding between chunks.
async fn infer_with(
    model: &Model,
    device: &Device,
    manifest: &Manifest,
    (pixels, n): (&[u8], usize),
    chunk: usize,
    progress: &dyn Fn(usize),
    f: &dyn Fn(&Model, Tensor<4>) -> Result<Tensor<2>, String>,
) -> Result<Vec<f32>, String> {
    let input = manifest.input;
    let per = input.numel();
    if pixels.len() != n * per {
        return Err(format!("{} pixel values for {n} images of {input}", pixels.len()));
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut slice = Slice::start();
    while start < n {
        let end = (start + chunk).min(n);
        let part = &pixels[start * per..end * per];
        out.extend(forward_chunk(model, device, manifest, part, f).await?);
        start = end;
        // The page renders at each yield: one every slice, not every chunk (a re-render per
        // 50-image chunk cost a quarter of the CPU path's time).
        if slice.is_over() || start == n {
            progress(end);
            slice.next().await;
        }
    }
    Ok(out)
}

/// Outputs `f(model, batch)` of the images in `pixels` (`u8` CHW), normalised as the manifest
/// says, as one batch read back asynchronously. The page's helper threads run it too.
pub async fn forward_chunk(
    model: &Model,
    device: &Device,
    manifest: &Manifest,
    pixels: &[u8],
    f: &dyn Fn(&Model, Tensor<4>) -> Result<Tensor<2>, String>,
) -> Result<Vec<f32>, String> {
    let input = manifest.input;
    let per = input.numel();
    if per == 0 || !pixels.len().is_multiple_of(per) {
        return Err(format!(
            "{} pixel values are no whole number of images of {input}",
            pixels.len()
        ));
    }
    let n = pixels.len() / per;
    let mut values = Vec::with_capacity(pixels.len());
    for image in pixels.chunks_exact(per) {
        manifest.normalization.push_u8(image, input, &mut values);
    }
    let x = batch_tensor(values, n, input, device).map_err(|e| e.to_string())?;
    let data = f(model, x)?.into_data_async().await.map_err(|e| format!("readback: {e:?}"))?;
    data.try_to_vec::<f32>().map_err(|e| format!("readback: {e:?}"))
}

/// Builds `model` from its weights on `device`.
pub fn build(
    manifest: &Manifest,
    id: &str,
    weights: &[u8],
    device: &Device,
) -> Result<Model, String> {
    let entry = manifest.model(id).ok_or_else(|| format!("no model {id}"))?;
    entry.config.load_bytes(weights.to_vec(), device).map_err(|e| e.to_string())
}

/// Deterministic uniform-noise images for HAMP's random-input outputs.
pub fn noise_images(manifest: &Manifest) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..RANDOM_INPUTS * manifest.input.numel())
        .map(|_| {
            state = mia_core::rng::mix(state, 1);
            (state >> 56) as u8
        })
        .collect()
}

/// A decoded upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// File name.
    pub name: String,
    /// Pixels at the model's input size, CHW.
    pub pixels: Vec<u8>,
    /// A data URL of the resized image for display.
    pub preview: String,
}

fn canvas(
    size: u32,
) -> Result<(web_sys::HtmlCanvasElement, web_sys::CanvasRenderingContext2d), String> {
    let doc = window()?.document().ok_or("no document")?;
    let canvas: web_sys::HtmlCanvasElement = doc
        .create_element("canvas")
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| "no canvas".to_string())?;
    canvas.set_width(size);
    canvas.set_height(size);
    let ctx = canvas
        .get_context("2d")
        .map_err(js_err)?
        .ok_or("no 2d context")?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .map_err(|_| "no 2d context".to_string())?;
    Ok((canvas, ctx))
}

/// RGBA of a square canvas → CHW `u8` for `channels` (grayscale by luminance).
fn to_chw(rgba: &[u8], channels: usize) -> Vec<u8> {
    let px = rgba.len() / 4;
    let mut out = vec![0u8; px * channels];
    for i in 0..px {
        let (r, g, b) = (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]);
        if channels == 1 {
            out[i] =
                (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)).round() as u8;
        } else {
            out[i] = r;
            out[px + i] = g;
            out[2 * px + i] = b;
        }
    }
    out
}

/// A data URL showing CHW pixels (for thumbnails and previews).
pub fn preview(pixels: &[u8], channels: usize, size: u32) -> Result<String, String> {
    let px = (size * size) as usize;
    let mut rgba = vec![255u8; px * 4];
    for i in 0..px {
        for c in 0..3 {
            rgba[4 * i + c] = pixels[if channels == 1 { i } else { c * px + i }];
        }
    }
    let (canvas, ctx) = canvas(size)?;
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        wasm_bindgen::Clamped(&rgba),
        size,
        size,
    )
    .map_err(js_err)?;
    ctx.put_image_data(&data, 0.0, 0.0).map_err(js_err)?;
    canvas.to_data_url().map_err(js_err)
}

/// Decodes any image the browser can, centre-crops it square and resizes it to the model's
/// input. A PNG or JPEG over [`photo::MAX_DECODE_PIXELS`] (a phone's 50–200-megapixel photo) is
/// decoded straight to a smaller size of the same shape; a HEIC photo gets conversion advice.
/// Empty, oversized (in bytes), non-image and corrupt files are errors.
pub async fn decode_upload(file: &web_sys::File, manifest: &Manifest) -> Result<Upload, String> {
    let name = file.name();
    if file.size() == 0.0 {
        return Err(format!("{name}: the file is empty"));
    }
    if file.size() > MAX_UPLOAD_BYTES {
        return Err(format!(
            "{name}: {:.0} MB is too large (limit {:.0} MB); save a smaller copy (a JPEG of a few \
             megapixels is plenty: the model sees {}×{} pixels)",
            file.size() / 1e6,
            MAX_UPLOAD_BYTES / 1e6,
            manifest.input.width,
            manifest.input.height
        ));
    }
    let head = read_head(file).await?;
    let window = window()?;
    let promise = match photo::sniff(&head, &name, &file.type_()) {
        Sniffed::Heic => return Err(photo::heic_advice(&name)),
        Sniffed::Size(w, h) if photo::decode_size(w, h) != (w, h) => {
            let (dw, dh) = photo::decode_size(w, h);
            let options = web_sys::ImageBitmapOptions::new();
            options.set_resize_width(dw);
            options.set_resize_height(dh);
            options.set_resize_quality(web_sys::ResizeQuality::High);
            window.create_image_bitmap_with_blob_and_image_bitmap_options(file, &options)
        }
        _ => window.create_image_bitmap_with_blob(file),
    }
    .map_err(js_err)?;
    let bitmap: web_sys::ImageBitmap = JsFuture::from(promise)
        .await
        .map_err(|_| {
            format!(
                "{name}: not an image this browser can decode (or the file is corrupt); JPEG and \
                 PNG always work"
            )
        })?
        .dyn_into()
        .map_err(js_err)?;
    let (w, h) = (bitmap.width(), bitmap.height());
    if w == 0 || h == 0 {
        return Err(format!("{name}: the image has no pixels"));
    }
    let drawn = square(manifest.input, (w, h), |ctx, (sx, sy, side), size| {
        ctx.draw_image_with_image_bitmap_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            &bitmap, sx, sy, side, side, 0.0, 0.0, size, size,
        )
    });
    bitmap.close();
    let (pixels, preview) = drawn?;
    Ok(Upload { name, pixels, preview })
}

/// The first [`photo::HEADER_BYTES`] of a file (all of a smaller one).
async fn read_head(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let end = file.size().min(photo::HEADER_BYTES as f64);
    let head = file.slice_with_f64_and_f64(0.0, end).map_err(js_err)?;
    let buffer = JsFuture::from(head.array_buffer())
        .await
        .map_err(|_| format!("{}: the file cannot be read", file.name()))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Draws a `w × h` picture centre-cropped square and resized to the model's input (`draw`
/// gets the crop `(x, y, side)` and the target size) and reads back its CHW pixels and a
/// preview.
fn square(
    input: InputSpec,
    (w, h): (u32, u32),
    draw: impl FnOnce(&web_sys::CanvasRenderingContext2d, (f64, f64, f64), f64) -> Result<(), JsValue>,
) -> Result<(Vec<u8>, String), String> {
    let size = input.width as u32;
    let (canvas_el, ctx) = canvas(size)?;
    let side = w.min(h);
    let (sx, sy) = ((w - side) / 2, (h - side) / 2);
    draw(&ctx, (f64::from(sx), f64::from(sy), f64::from(side)), f64::from(size)).map_err(js_err)?;
    let data = ctx.get_image_data(0.0, 0.0, f64::from(size), f64::from(size)).map_err(js_err)?;
    let pixels = to_chw(&data.data(), input.channels);
    Ok((pixels, canvas_el.to_data_url().map_err(js_err)?))
}

/// Opens the camera (the browser asks the student first). Errors say why in plain words.
pub async fn open_camera() -> Result<web_sys::MediaStream, String> {
    let devices = window()?.navigator().media_devices().map_err(|_| {
        "this browser offers no camera to this page (cameras need https or localhost)".to_string()
    })?;
    let constraints = web_sys::MediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    let promise = devices.get_user_media_with_constraints(&constraints).map_err(js_err)?;
    let stream = JsFuture::from(promise).await.map_err(|e| {
        let name = Reflect::get(&e, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" => "the camera was not allowed (check the browser's permission)",
            "NotFoundError" | "OverconstrainedError" => "no camera was found",
            "NotReadableError" => "the camera is busy in another program",
            _ => "the camera could not be opened",
        }
        .to_string()
    })?;
    stream.dyn_into().map_err(js_err)
}

/// Stops every track of a camera stream (the browser's camera light goes off).
pub fn close_camera(stream: &web_sys::MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(t) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            t.stop();
        }
    }
}

/// The camera's current frame, centre-cropped and resized like an upload.
pub fn snap(
    video: &web_sys::HtmlVideoElement,
    input: InputSpec,
) -> Result<(Vec<u8>, String), String> {
    let (w, h) = (video.video_width(), video.video_height());
    if w == 0 || h == 0 {
        return Err("the camera has not shown a picture yet".into());
    }
    square(input, (w, h), |ctx, (sx, sy, side), size| {
        ctx.draw_image_with_html_video_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            video, sx, sy, side, side, 0.0, 0.0, size, size,
        )
    })
}

/// Shared handle to the bundle.
pub type SharedBundle = Rc<Bundle>;
