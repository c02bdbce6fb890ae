#!/usr/bin/env bash
# Runs every check and test of MIA Lab: formatting, clippy (native and wasm32, -D warnings),
# the wasm32 build of mia-core, and the whole test suite. Integration tests that need the real
# datasets read them from $MIA_SHARED_DATA (they skip, saying so, when it is unset).
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
echo "== clippy (wasm32: mia-core)"
cargo clippy -p mia-core --target wasm32-unknown-unknown --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
