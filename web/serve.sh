#!/usr/bin/env bash
# Sets up whatever the web build lacks (the wasm32 target, trunk and wasm-bindgen-cli at pinned
# versions, all from crates.io) and serves the lab with the shipped bundle on
# http://127.0.0.1:8080. Pass `--build-only` to build into dist/ without serving.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
trunk --version 2>/dev/null | grep -q ' 0\.21\.14' || cargo install trunk --version 0.21.14 --locked
WBG_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
wasm-bindgen --version 2>/dev/null | grep -q "$WBG_VERSION" || cargo install wasm-bindgen-cli --version "$WBG_VERSION"
if [[ "${1:-}" == "--build-only" ]]; then
  exec trunk build --config trunk.toml --release
fi
exec trunk serve --config trunk.toml --release
