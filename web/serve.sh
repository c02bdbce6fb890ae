#!/usr/bin/env bash
# Builds the lab with the shipped bundle (web/build.sh: cargo and wasm-bindgen-cli, installed
# from crates.io at the lockfile's version when missing) and serves it on
# http://127.0.0.1:8080 with Python's static server. Pass `--build-only` to build into dist/
# without serving. For live reload while editing the page, use trunk instead
# (`cargo install trunk --version 0.21.14 --locked`, then `trunk serve --config trunk.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash web/build.sh
[[ "${1:-}" == "--build-only" ]] && exit 0
PORT="${PORT:-8080}"
echo "serving the lab on http://127.0.0.1:$PORT/ (Ctrl-C stops)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
