//! The page's memory between visits: one IndexedDB database (`mia-lab`) with one object store
//! of text values by key ([`Key`]). Every call is async and answers an error in words (no
//! IndexedDB in this browser, storage full, private mode) instead of failing silently; the
//! page keeps working without it.

use js_sys::Promise;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbRequest, IdbTransaction, IdbTransactionMode};

const DB: &str = "mia-lab";
const STORE: &str = "state";

/// What the page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The lab, as its file (images, recipe, network, last run, comparison table).
    Lab,
    /// The prepared lab (`?lab=`) the kept lab was opened from.
    LabSource,
    /// The explore view: its uploads and its view query.
    Explore,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Self::Lab => "lab",
            Self::LabSource => "lab-source",
            Self::Explore => "explore",
        }
    }
}

/// A DOM error's name and message (a `QuotaExceededError` says the storage is full).
fn dom_error(e: Option<web_sys::DomException>) -> String {
    let detail = |e: &web_sys::DomException| match e.message() {
        m if m.is_empty() => String::new(),
        m => format!(" ({m})"),
    };
    match e {
        Some(e) if e.name() == "QuotaExceededError" => {
            format!("the browser's storage for this page is full{}", detail(&e))
        }
        Some(e) => format!("{}{}", e.name(), detail(&e)),
        None => "the browser refused without saying why".into(),
    }
}

/// A JS error as words.
fn words(e: JsValue) -> String {
    e.as_string()
        .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| "an unknown error".into())
}

/// Waits for a request's result.
async fn request(req: &IdbRequest) -> Result<JsValue, String> {
    let promise = Promise::new(&mut |resolve, reject| {
        let r = req.clone();
        let ok = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call1(&JsValue::NULL, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let r = req.clone();
        let failed = Closure::once_into_js(move |_: web_sys::Event| {
            let why = dom_error(r.error().ok().flatten());
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str(&why));
        });
        req.set_onsuccess(Some(ok.unchecked_ref()));
        req.set_onerror(Some(failed.unchecked_ref()));
    });
    JsFuture::from(promise).await.map_err(words)
}

/// Waits until a transaction has committed (a full disk shows here, as an abort).
async fn committed(tx: &IdbTransaction) -> Result<(), String> {
    let promise = Promise::new(&mut |resolve, reject| {
        let ok = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let t = tx.clone();
        let failed = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str(&dom_error(t.error())));
        });
        tx.set_oncomplete(Some(ok.unchecked_ref()));
        tx.set_onabort(Some(failed.unchecked_ref()));
    });
    JsFuture::from(promise).await.map(|_| ()).map_err(words)
}

/// Opens the database, creating its store on the first visit.
async fn open() -> Result<IdbDatabase, String> {
    let factory = web_sys::window()
        .and_then(|w| w.indexed_db().ok().flatten())
        .ok_or("this browser keeps no data for the page (IndexedDB is off, or private mode)")?;
    let req = factory.open_with_u32(DB, 1).map_err(words)?;
    let r = req.clone();
    let upgrade = Closure::once_into_js(move |_: web_sys::Event| {
        if let Ok(db) = r.result().and_then(|d| d.dyn_into::<IdbDatabase>()) {
            let _ = db.create_object_store(STORE);
        }
    });
    req.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
    request(&req).await?.dyn_into::<IdbDatabase>().map_err(words)
}

/// The text kept under `key`, if any.
pub async fn get(key: Key) -> Result<Option<String>, String> {
    let db = open().await?;
    let tx = db.transaction_with_str(STORE).map_err(words)?;
    let req = tx.object_store(STORE).and_then(|s| s.get(&key.name().into())).map_err(words)?;
    let value = request(&req).await?;
    db.close();
    Ok(value.as_string())
}

/// Keeps `value` under `key` (replacing what was there).
pub async fn put(key: Key, value: &str) -> Result<(), String> {
    let db = open().await?;
    let tx =
        db.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite).map_err(words)?;
    tx.object_store(STORE)
        .and_then(|s| s.put_with_key(&value.into(), &key.name().into()))
        .map_err(words)?;
    let done = committed(&tx).await;
    db.close();
    done
}

/// Forgets everything the page kept.
pub async fn clear() -> Result<(), String> {
    let db = open().await?;
    let tx =
        db.transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite).map_err(words)?;
    tx.object_store(STORE).and_then(|s| s.clear()).map_err(words)?;
    let done = committed(&tx).await;
    db.close();
    done
}
