#!/usr/bin/env bash
# Time to first distributions of two built sites, in the same run, alternating (docs/benchmarks.md,
# "Time to first distributions"): three CPU-path and two WebGPU-path loads of each in headless
# Chromium (tests/e2e/lab.mjs, which also checks the first visit fetched only budgeted files).
#   bash bench/first_visit.sh BEFORE_SITE AFTER_SITE
# e.g. bash web/build.sh --dev --out /tmp/dev --no-compress; bash web/build.sh --out /tmp/web
#      bash bench/first_visit.sh /tmp/dev /tmp/web
set -euo pipefail
[[ $# -eq 2 ]] || { echo "hint: bash bench/first_visit.sh BEFORE_SITE AFTER_SITE" >&2; exit 2; }
cd "$(dirname "$0")/.."
sites=("$1" "$2")
out="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
for k in 0 1; do
  mkdir -p "$out/$k"
  python3 web/site.py --budget "${sites[$k]}" --limit 1000 --limit-webgpu 1000 --json "$out/$k/size.json" | tail -n 1
  python3 -m http.server $((8791 + k)) --bind 127.0.0.1 --directory "${sites[$k]}" >/dev/null 2>&1 &
  pids+=($!)
done
sleep 1
for i in 1 2 3; do
  for k in 0 1; do
    for be in flex webgpu; do
      [[ $be == webgpu && $i == 3 ]] && continue
      node tests/e2e/lab.mjs "http://127.0.0.1:$((8791 + k))" "$out/$k" "$be" | python3 -c \
        "import json,sys; d=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], d['wallMs'], 'ms;', d['firstMs'], ';', d['inferenceMs'])" \
        "${sites[$k]}" "$be"
    done
  done
done
