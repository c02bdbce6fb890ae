#!/usr/bin/env bash
# Installs the wasm32 target and wasm-bindgen-cli (wasm-bindgen, wasm-bindgen-test-runner) at
# the lockfile's wasm-bindgen version, from crates.io, when they are missing. Used by
# web/build.sh and tests/run-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
WBG_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WBG_VERSION" \
  || ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q "$WBG_VERSION"; then
  echo "== cargo install wasm-bindgen-cli $WBG_VERSION"
  # No TLS: the tools only talk to localhost (the test runner's webdriver), and rustls/ring
  # are the slowest part of the build.
  # (Without the clippy wrapper tests/run-all.sh sets for our own crates: this is not ours.)
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
    cargo install wasm-bindgen-cli --version "$WBG_VERSION" --no-default-features
fi
