#!/usr/bin/env bash
# Runs every check and test of MIA Lab: formatting, clippy (native and wasm32, -D warnings,
# while the tests compile), the whole test suite, the shared fixture in wasm32 under Node, and
# the real-browser test of the lab.
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

# Each step's wall time, printed at the end (also when a step fails).
declare -a TIMES=()
STEP=""
STEP_START=$SECONDS
step() {
  if [[ -n "$STEP" ]]; then TIMES+=("$(printf '%6d s  %s' $((SECONDS - STEP_START)) "$STEP")"); fi
  STEP="$1"
  STEP_START=$SECONDS
  [[ -n "$STEP" ]] && echo "== $STEP"
  return 0
}
summary() {
  step ""
  echo "== step times"
  printf '%s\n' "${TIMES[@]}"
  printf '%6d s  total\n' "$SECONDS"
}
trap summary EXIT

step "rustfmt"
cargo fmt --all --check

# The shipped page (web/site/) must be the build of these sources: a change to the page's
# sources without `bash web/build.sh --update-site` fails here, before anything compiles.
step "shipped page matches its sources"
python3 web/site.py --fresh

# Clippy (-D warnings) lints while the tests compile: cargo's RUSTC_WORKSPACE_WRAPPER puts
# clippy-driver in front of rustc for the workspace's own crates, exactly as `cargo clippy`
# does, so every dependency compiles once (for the tests) instead of once more, checked only,
# for clippy. Every target `cargo clippy --all-targets` lints is built here (libraries, bins,
# unit and integration tests), natively and, below, the wasm32 library, test and page.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
step "clippy + tests (native)"
cargo test --workspace --all-targets --locked

# The inference-defense fixture must give the same outputs in wasm32 as natively: run it under
# Node with wasm-bindgen's test runner (installed from crates.io at the lockfile's version).
step "install wasm-bindgen-cli (when missing)"
bash web/ensure-wasm-bindgen.sh
# With -p mia-web, burn and the other dependencies compile with the page's features, so the
# browser test's page build (web/build.sh --dev) reuses them instead of compiling them again.
step "clippy + tests (wasm32 under Node: mia-core inference fixture)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p mia-core -p mia-web --target wasm32-unknown-unknown --locked --test inference_fixture

# The browser lab in headless Chromium on the CPU and WebGPU paths: the site assembled by
# web/build.sh from the shipped page, its size budget, the sub-path deep link.
step "real-browser test (tests/e2e)"
bash tests/e2e/run.sh
