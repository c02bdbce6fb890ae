//! The helper-thread side of the CPU path. `web/worker.js` (a Web Worker) instantiates this
//! same module, then calls these two exports: [`helper_load`] with one model's weights and
//! its bundle's manifest, [`helper_infer`] with one chunk of images. The
//! page's side, which splits the reference sample between its helpers, is [`crate::pool`].
//! The chunks are computed by [`engine::forward_chunk`], the function the page itself runs
//! when it has no helpers, so a chunk's logits are the same bits either way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::prelude::*;
use mia_core::Model;
use mia_core::bundle::Manifest;
use wasm_bindgen::prelude::*;

use crate::engine;

/// A model this helper was given, with the manifest of its bundle.
struct Loaded {
    manifest: Rc<Manifest>,
    model: Rc<Model>,
}

thread_local! {
    static MODELS: RefCell<HashMap<String, Loaded>> = RefCell::new(HashMap::new());
}

fn failed(what: &str, e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("helper thread, {what}: {e}"))
}

/// Builds model `id` of `manifest` (the bundle's JSON) from its weights and keeps it.
#[wasm_bindgen(js_name = helperLoad)]
pub fn helper_load(id: String, manifest: &str, weights: Vec<u8>) -> Result<(), JsError> {
    let manifest = Manifest::parse(manifest).map_err(|e| failed("manifest", e))?;
    let model = engine::build(&manifest, &id, &weights, &Device::flex())
        .map_err(|e| failed(&format!("model {id}"), e))?;
    let loaded = Loaded { manifest: Rc::new(manifest), model: Rc::new(model) };
    MODELS.with(|m| m.borrow_mut().insert(id, loaded));
    Ok(())
}

/// Logits `[n × C]` of the `n` images in `pixels` (`u8` CHW) under model `id`.
#[wasm_bindgen(js_name = helperInfer)]
pub async fn helper_infer(id: String, pixels: Vec<u8>) -> Result<Vec<f32>, JsError> {
    let (manifest, model) = MODELS.with(|m| match m.borrow().get(&id) {
        Some(l) => Ok((l.manifest.clone(), l.model.clone())),
        None => Err(failed("inference", format!("model {id} is not loaded"))),
    })?;
    let forward = |m: &Model, x| Ok(m.forward(x));
    engine::forward_chunk(&model, &Device::flex(), &manifest, &pixels, &forward)
        .await
        .map_err(|e| failed("inference", e))
}
