//! The CPU path's helper threads. WebAssembly in a page computes on one core; the reference
//! sample (1 200 images) is split instead between Web Workers (`web/worker.js`), one per core
//! up to [`MAX_THREADS`], each running this same module (its side is [`crate::helper`]).
//! They share no memory, so the page needs no cross-origin isolation: each helper holds its
//! own copy of the model, and chunks of images go out and logits come back as messages.
//! Chunks are the page's own CPU chunks, computed by the same function, so the logits are
//! the same bits as on one thread. Where helpers cannot start (no module workers, a host
//! without `worker.js`, one core), the page computes on its own thread and says so.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use js_sys::{Array, Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use mia_core::bundle::Manifest;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::engine::{self, Slice, js_err};

/// Most helper threads the page starts (each holds a copy of the module's memory).
pub const MAX_THREADS: usize = 4;

/// A model of the bundle for the helpers: its id in the manifest and its weights.
pub type Model<'a> = (&'a str, &'a [u8]);

/// Requests sent and not yet answered: their promises' resolve and reject functions.
type Pending = Rc<RefCell<HashMap<u32, (Function, Function)>>>;

/// The started helpers.
pub struct Pool {
    helpers: Vec<Worker>,
    /// The models sent to every helper (each answers messages in order, so a model sent
    /// before a chunk is there for it).
    sent: RefCell<HashSet<String>>,
    pending: Pending,
    next_id: Cell<u32>,
    broken: Rc<RefCell<Option<String>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    /// Marks each request's promise handled: a request that fails once the pool broke is
    /// waited for by nobody, and the browser would report its rejection as an uncaught error.
    handled: Closure<dyn FnMut(JsValue)>,
}

fn set(o: &Object, key: &str, value: &JsValue) -> Result<(), String> {
    Reflect::set(o, &key.into(), value).map(|_| ()).map_err(js_err)
}

/// How many helpers to start: `?threads=N` in the page's address (clamped to 1 to
/// [`MAX_THREADS`]), else one per core up to [`MAX_THREADS`]. One is none: an error saying
/// why the page computes on its own thread.
pub fn wanted_threads() -> Result<usize, String> {
    let window = web_sys::window().ok_or("no page to start helper threads from")?;
    let asked = window.location().search().ok().and_then(|s| {
        let params = web_sys::UrlSearchParams::new_with_str(&s).ok()?;
        params.get("threads")?.parse::<usize>().ok()
    });
    let cores = window.navigator().hardware_concurrency() as usize;
    match (asked.map(|n| n.clamp(1, MAX_THREADS)), cores.clamp(1, MAX_THREADS)) {
        (Some(1), _) => Err("the address asks for one thread (?threads=1)".into()),
        (Some(n), _) => Ok(n),
        (None, 1) => Err("this device reports one processor core".into()),
        (None, n) => Ok(n),
    }
}

impl Pool {
    /// Starts `threads` helpers. They load the module in the background; a helper that
    /// cannot start fails its first request, and [`Pool::infer`] says why.
    pub fn start(threads: usize) -> Result<Pool, String> {
        if threads < 2 {
            return Err(format!("{threads} helper thread(s) would not help"));
        }
        let glue = engine::loader()
            .and_then(|b| Reflect::get(&b, &"glue".into()).ok())
            .and_then(|g| g.as_string())
            .ok_or("the page was not started by its loader (no miaBuild.glue)")?;
        let pending = Pending::default();
        let broken = Rc::new(RefCell::new(None));
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let (pending, broken) = (pending.clone(), broken.clone());
            move |event: MessageEvent| answer(&pending, &broken, &event.data())
        });
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new({
            let (pending, broken) = (pending.clone(), broken.clone());
            move |event: web_sys::Event| {
                let why = event
                    .dyn_ref::<web_sys::ErrorEvent>()
                    .map(|e| e.message())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "worker.js could not be loaded".into());
                fail_all(&pending, &broken, &format!("a helper thread failed: {why}"));
            }
        });
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let start = Object::new();
        set(&start, "kind", &"start".into())?;
        set(&start, "glue", &glue.into())?;
        set(&start, "module", &wasm_bindgen::module())?;
        let mut helpers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let worker = Worker::new_with_options("worker.js", &options).map_err(js_err)?;
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            worker.post_message(&start).map_err(js_err)?;
            helpers.push(worker);
        }
        Ok(Pool {
            helpers,
            sent: RefCell::default(),
            pending,
            next_id: Cell::new(0),
            broken,
            _on_message: on_message,
            _on_error: on_error,
            handled: Closure::new(|_: JsValue| ()),
        })
    }

    /// How many helpers there are.
    pub fn threads(&self) -> usize {
        self.helpers.len()
    }

    /// Sends `message` (with `transfer`) to `helper`; the promise settles with its answer.
    fn request(
        &self,
        helper: &Worker,
        message: &Object,
        transfer: &Array,
    ) -> Result<Promise, String> {
        if let Some(why) = self.broken.borrow().clone() {
            return Err(why);
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        set(message, "id", &id.into())?;
        let pending = self.pending.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            pending.borrow_mut().insert(id, (resolve, reject));
        });
        let _handled = promise.catch(&self.handled);
        helper.post_message_with_transfer(message, transfer).map_err(js_err)?;
        Ok(promise)
    }

    /// Gives every helper model `id` of `manifest` (its `weights`), unless it was sent already.
    pub async fn load(&self, manifest: &Manifest, (id, weights): Model<'_>) -> Result<(), String> {
        if !self.sent.borrow_mut().insert(id.to_string()) {
            return Ok(());
        }
        let json = serde_json::to_string(manifest).map_err(|e| e.to_string())?;
        let mut loads = Vec::with_capacity(self.helpers.len());
        for helper in &self.helpers {
            let bytes = Uint8Array::from(weights);
            let message = Object::new();
            set(&message, "kind", &"load".into())?;
            set(&message, "manifest", &json.as_str().into())?;
            set(&message, "model", &id.into())?;
            set(&message, "weights", &bytes)?;
            loads.push(self.request(helper, &message, &Array::of1(&bytes.buffer()))?);
        }
        for promise in loads {
            JsFuture::from(promise).await.map_err(js_err)?;
        }
        Ok(())
    }

    /// Logits of the `n` images in `pixels` (`u8` CHW, as `manifest` says) under model `id`
    /// (given to the helpers by [`Pool::load`]), sent out in chunks of `chunk` images, in turn
    /// to each helper; `progress` hears how many are done once per slice.
    pub async fn infer(
        &self,
        manifest: &Manifest,
        id: &str,
        (pixels, n): (&[u8], usize),
        chunk: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, String> {
        let per = manifest.input.numel();
        if per == 0 || chunk == 0 || pixels.len() != n * per {
            return Err(format!("{} pixel values for {n} images", pixels.len()));
        }
        let mut replies = Vec::new();
        for (i, part) in pixels.chunks(chunk * per).enumerate() {
            let bytes = Uint8Array::from(part);
            let message = Object::new();
            set(&message, "kind", &"infer".into())?;
            set(&message, "model", &id.into())?;
            set(&message, "pixels", &bytes)?;
            let helper = &self.helpers[i % self.helpers.len()];
            let promise = self.request(helper, &message, &Array::of1(&bytes.buffer()))?;
            replies.push((promise, part.len() / per));
        }
        let mut done = 0;
        let mut out = Vec::with_capacity(n * manifest.class_names.len());
        let mut slice = Slice::start();
        for (promise, count) in replies {
            // Waiting for a helper's answer lets the page render: no yield of its own needed.
            let logits = JsFuture::from(promise).await.map_err(js_err)?;
            out.extend(logits.dyn_into::<Float32Array>().map_err(js_err)?.to_vec());
            done += count;
            if slice.is_over() || done == n {
                progress(done);
                slice = Slice::start();
            }
        }
        Ok(out)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for helper in &self.helpers {
            helper.terminate();
        }
        fail_all(&self.pending, &self.broken, "the helper threads were stopped");
    }
}

/// Settles the request a helper's answer `data` (`{id, out}` or `{id, error}`) is for; an
/// answer for no request (id -1: the helper could not start) breaks the pool.
fn answer(pending: &Pending, broken: &RefCell<Option<String>>, data: &JsValue) {
    let id = Reflect::get(data, &"id".into()).ok().and_then(|v| v.as_f64());
    let error = Reflect::get(data, &"error".into()).ok().and_then(|e| e.as_string());
    let entry = id.and_then(|id| pending.borrow_mut().remove(&(id as u32)));
    match (entry, error) {
        (Some((resolve, _)), None) => {
            let out = Reflect::get(data, &"out".into()).unwrap_or(JsValue::UNDEFINED);
            let _ = resolve.call1(&JsValue::NULL, &out);
        }
        (Some((_, reject)), Some(why)) => {
            let _ = reject.call1(&JsValue::NULL, &why.into());
        }
        (None, why) => {
            let why = why.unwrap_or_else(|| "a helper thread answered no request".into());
            fail_all(pending, broken, &why);
        }
    }
}

/// Marks the pool broken (`why`) and rejects every request still waiting.
fn fail_all(pending: &Pending, broken: &RefCell<Option<String>>, why: &str) {
    broken.borrow_mut().get_or_insert_with(|| why.to_string());
    let waiting: Vec<_> = pending.borrow_mut().drain().collect();
    for (_, (_, reject)) in waiting {
        let _ = reject.call1(&JsValue::NULL, &why.into());
    }
}
