//! MIA Lab in the browser: the shipped bundle runs through the same burn models and the same
//! attack and defense code as the trainer, on WebGPU or the CPU, entirely client-side.
//! [`state`] holds the reducer, [`hooks`] the effects, [`engine`] the browser plumbing,
//! [`analysis`] the numbers, [`components`] the view. Build with `web/build.sh` (see the README).

mod analysis;
mod app;
mod components;
mod engine;
mod hooks;
mod state;

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // The same app compiles natively (for tests and lints); it only renders in a browser.
    let _render = yew::Renderer::<app::App>::new;
    eprintln!(
        "mia-web runs in the browser: `bash web/serve.sh` builds and serves it (see the README)"
    );
}
