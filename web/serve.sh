#!/usr/bin/env bash
# Serves the lab with the shipped bundle on http://127.0.0.1:8080 (Python's static server).
# The page comes from web/site/ when it was built from these sources (seconds), else
# web/build.sh compiles it (cargo, and wasm-bindgen-cli installed from crates.io at its pinned
# version when missing). Pass `--build-only` to build into dist/ without
# serving. For live reload while editing the page, use trunk instead
# (`cargo install trunk --version 0.21.14 --locked`, then `trunk serve --config trunk.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
# Python's server sends no precompressed files: skip writing them.
bash web/build.sh --no-compress
[[ "${1:-}" == "--build-only" ]] && exit 0
PORT="${PORT:-8080}"
echo "serving the lab on http://127.0.0.1:$PORT/ (Ctrl-C stops)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
