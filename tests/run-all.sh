#!/usr/bin/env bash
# Runs every check and test of MIA Lab: formatting, clippy (native and wasm32, -D warnings),
# the wasm32 build of mia-core, the whole test suite, and the real-browser test of the lab.
# Integration tests that need the real datasets read them from $MIA_SHARED_DATA (they skip,
# saying so, when it is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
# The Vulkan loader (probed by burn's wgpu backend) complains without it.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

if [[ -z "${MIA_SHARED_DATA:-}" && -d ../shared/data ]]; then
  MIA_SHARED_DATA="$(cd ../shared/data && pwd)"
  export MIA_SHARED_DATA
fi

echo "== rustfmt"
cargo fmt --all --check
echo "== clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== clippy (wasm32: mia-core, mia-web)"
cargo clippy -p mia-core -p mia-web --target wasm32-unknown-unknown --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked

# The inference-defense fixture must give the same outputs in wasm32 as natively: run it under
# Node with wasm-bindgen's test runner (installed from crates.io at the lockfile's version).
WBG_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q "$WBG_VERSION"; then
  echo "== cargo install wasm-bindgen-cli $WBG_VERSION"
  cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi
echo "== tests (wasm32 under Node: mia-core inference fixture)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p mia-core --target wasm32-unknown-unknown --locked --test inference_fixture

# The browser lab in headless Chromium on the CPU and WebGPU paths (builds it with trunk,
# installing the wasm target, trunk and wasm-bindgen-cli at pinned versions when missing).
echo "== real-browser test (tests/e2e)"
bash tests/e2e/run.sh
