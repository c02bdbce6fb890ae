//! MIA Lab in the browser: the shipped bundle runs through the same burn models and the same
//! attack and defense code as the trainer, on WebGPU or the CPU, entirely client-side.
//! [`state`] holds the reducer, [`hooks`] the effects, [`engine`] the browser plumbing,
//! [`analysis`] the numbers, [`components`] the view. Build with `web/build.sh` (see the README).

mod analysis;
mod app;
mod components;
mod engine;
mod helper;
mod hooks;
mod lab_files;
mod lab_history;
mod lab_run;
mod lab_state;
mod persist;
mod photo;
mod pool;
mod state;
mod store;
mod toggles;
mod view_url;

#[cfg(target_arch = "wasm32")]
fn main() {
    run_static_constructors();
    if web_sys::window().is_none() {
        return; // a helper thread (web/worker.js): it only answers the page's messages
    }
    yew::Renderer::<app::App>::new().render();
    // index.html's loading indicator (bytes received while the module downloaded) is done.
    let document = web_sys::window().and_then(|w| w.document());
    if let Some(boot) = document.and_then(|d| d.get_element_by_id("boot")) {
        boot.remove();
    }
}

/// Runs the module's static constructors (cubecl registers types through `inventory`) once.
/// Without this explicit call, wasm-ld treats the module as a "command" and wraps *every*
/// export in a call to `__wasm_call_ctors`, so each event handler and timer re-ran all the
/// constructors: about 1 s per click in the lab (measured with Chromium's profiler). An
/// explicit call tells the linker the embedder-side wrapping is not wanted.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
fn run_static_constructors() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: the linker-synthesised constructor function takes no arguments and is called
    // once, first thing in `main`, before any other code of the module has run.
    unsafe { __wasm_call_ctors() }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // The same app compiles natively (for tests and lints); it only renders in a browser.
    let _render = yew::Renderer::<app::App>::new;
    eprintln!(
        "mia-web runs in the browser: `bash web/serve.sh` builds and serves it (see the README)"
    );
}
