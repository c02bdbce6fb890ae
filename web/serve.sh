#!/usr/bin/env bash
# Serves the lab with the shipped bundle on http://127.0.0.1:8080 (web/serve.py).
#   bash web/serve.sh              this machine only; starts in about a second
#   bash web/serve.sh --lan        a classroom: reachable from the network (prints the address
#                                  to share) with brotli copies of every file (~40 s to write
#                                  once), so a student's first visit is ~4.9 MB, not 20 MB
#   bash web/serve.sh --build-only build into dist/ without serving
# PORT=N picks the port (default 8080). The page comes from web/site/ when it was built from
# these sources (seconds), else web/build.sh compiles it (cargo, and wasm-bindgen-cli installed
# from crates.io at its pinned version when missing). For live reload while editing the page,
# use trunk instead (`cargo install trunk --version 0.21.14 --locked`, then
# `trunk serve --config trunk.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
lan=0
build_only=0
for arg in "$@"; do
  case "$arg" in
    --lan) lan=1 ;;
    --build-only) build_only=1 ;;
    *)
      echo "error: unknown option $arg" >&2
      echo "hint: bash web/serve.sh [--lan] [--build-only]" >&2
      exit 2
      ;;
  esac
done
if ((lan)); then
  bash web/build.sh
else
  # Without precompressed copies web/serve.py gzips each file once, on its first request.
  bash web/build.sh --no-compress
fi
((build_only)) && exit 0
args=(--dir dist --port "${PORT:-8080}")
((lan)) && args+=(--lan)
exec python3 web/serve.py "${args[@]}"
