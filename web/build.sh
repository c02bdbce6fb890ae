#!/usr/bin/env bash
# Builds the browser lab into a folder ready for static hosting (any sub-path: every path in
# the page is relative): the compiled page (index.html, JS glue, wasm, styles), a bundle made
# by `mia export`, the prepared labs (web/labs/), and gzip/brotli copies of every file next to it.
#
#   bash web/build.sh [--bundle DIR] [--public-url URL] [--out DIR]
#                     [--from-source] [--dev] [--features F] [--update-site] [--no-compress]
#
# The compiled page is shipped in web/site/ (built with the `web` profile and wasm-bindgen
# without the name section; binaryen's wasm-opt was measured and left out: docs/benchmarks.md,
# "Page size") together with web/site/build-info.json, which records a hash of the
# sources it was built from (web/site.py). When that hash matches the checkout, the
# page is copied from web/site/ (seconds); otherwise, or with --from-source, it is compiled
# here: the `web` profile (fat LTO; ~30 min on 2 cores, cold), or the dev profile with --dev.
# The page comes in two builds, with and without the WebGPU engine (see web/index.py).
#   --bundle DIR       the bundle to serve (default: pretrained/); its build scripts stay out
#   --public-url URL   where the site will live (e.g. https://example.org/my-paper/): written
#                      as the page's canonical link; the page itself needs no base URL
#   --out DIR          the folder to write (default: dist/); replaced only when the build works
#   --features F       cargo features of mia-web (e.g. ndarray, the browser benchmark's)
#   --no-compress      skip the gzip/brotli copies (a local preview: ~40 s less)
#   --update-site      compile from source and write the page into web/site/ (contributors:
#                      after changing what web/site.py lists; the tests fail until then)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=web
out=dist
bundle=pretrained
public_url=""
features=""
from_source=0
update_site=0
compress=1
usage() { echo "hint: bash web/build.sh [--bundle DIR] [--public-url URL] [--out DIR] [--from-source] [--dev] [--features F] [--update-site] [--no-compress]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --dev) profile=dev; from_source=1 ;;
    --from-source) from_source=1 ;;
    --update-site) update_site=1; from_source=1 ;;
    --no-compress) compress=0 ;;
    --out) [[ $# -ge 2 ]] || usage; out="$2"; shift ;;
    --bundle) [[ $# -ge 2 ]] || usage; bundle="$2"; shift ;;
    --public-url) [[ $# -ge 2 ]] || usage; public_url="$2"; shift ;;
    --features) [[ $# -ge 2 ]] || usage; features="$2"; from_source=1; shift ;;
    *) echo "error: unknown option $1" >&2; usage ;;
  esac
  shift
done
if ((update_site)) && [[ "$profile" != web || -n "$features" ]]; then
  echo "error: web/site/ holds the web-profile page without extra features" >&2
  echo "hint: bash web/build.sh --update-site" >&2
  exit 2
fi
if [[ ! -f "$bundle/manifest.json" ]]; then
  echo "error: $bundle/ has no manifest.json" >&2
  echo "hint: pass --bundle with a folder written by \`mia export\`" >&2
  exit 2
fi

# Build next to the destination, then swap it in: a failed build leaves the old folder whole.
mkdir -p "$(dirname "${out%/}")"
tmp="$(mktemp -d "${out%/}.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

sources="$(python3 web/site.py)"
mapfile -t page_files < <(python3 web/site.py --files)
shipped="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sources"])' web/site/build-info.json 2>/dev/null || true)"
if ((!from_source)) && [[ "$sources" == "$shipped" ]]; then
  python3 web/site.py --verify web/site
  cp "${page_files[@]/#/web/site/}" "$tmp/"
  echo "using the shipped page (web/site/, built from these sources)"
else
  if ((!from_source)); then
    echo "web/site/ was built from other sources: compiling the page (--update-site ships it)"
  fi
  bash web/ensure-wasm-bindgen.sh
  target_dir="${CARGO_TARGET_DIR:-target}"
  folder=$([[ "$profile" == dev ]] && echo debug || echo "$profile")
  # Two builds: mia-web-cpu without the WebGPU engine (1.5 MB less brotli: every first visit
  # loads it) and mia-web with it (web/index.py's loader loads it once WebGPU is picked).
  for build in mia-web mia-web-cpu; do
    feature_args=()
    [[ "$build" == mia-web-cpu ]] && feature_args=(--no-default-features)
    [[ -n "$features" ]] && feature_args+=(--features "$features")
    cargo build -p mia-web --target wasm32-unknown-unknown --profile "$profile" --locked "${feature_args[@]}"
    wasm-bindgen --target web --no-typescript --out-dir "$tmp" --out-name "$build" \
      --remove-name-section --remove-producers-section \
      "$target_dir/wasm32-unknown-unknown/$folder/mia-web.wasm"
  done
  cp web/styles.css web/worker.js "$tmp/"
  # web/index.html with trunk's three directives replaced by what trunk would emit for them.
  python3 web/index.py web/index.html "$tmp/index.html"
  if ((update_site)); then
    python3 web/site.py --stamp "$tmp" --profile "$profile"
    rm -rf web/site.new && mkdir web/site.new
    for f in "${page_files[@]}" build-info.json; do cp "$tmp/$f" web/site.new/; done
    rm -rf web/site && mv web/site.new web/site
    rm "$tmp/build-info.json"
    echo "wrote the page into web/site/ (commit it with the sources it was built from)"
  fi
fi

if [[ -n "$public_url" ]]; then
  python3 - "$tmp/index.html" "$public_url" <<'EOF'
import html, sys
path, url = sys.argv[1], sys.argv[2]
if not url.startswith(("https://", "http://")):
    sys.exit(f"error: --public-url must start with https:// or http://, got {url!r}")
page = open(path, encoding="utf-8").read()
link = f'<link rel="canonical" href="{html.escape(url, quote=True)}" />'
open(path, "w", encoding="utf-8").write(page.replace("</head>", f"  {link}\n</head>", 1))
EOF
fi
mkdir "$tmp/pretrained"
find "$bundle" -maxdepth 1 -type f ! -name '*.sh' ! -name '.*' -exec cp {} "$tmp/pretrained/" \;
# The prepared labs (web/labs/make.sh), opened with ?lab=labs/NAME.json.
mkdir "$tmp/labs"
cp web/labs/*.json "$tmp/labs/"
# gzip and brotli copies next to each file, for hosts that serve precompressed files.
if ((compress)); then node web/precompress.mjs "$tmp"; fi
python3 web/site.py --check-static "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built the lab into $out/"
