#!/usr/bin/env bash
# Builds the browser lab into a folder ready for static hosting, with cargo and wasm-bindgen
# only (no trunk): the wasm32 build of mia-web, its JS glue, styles.css, and the shipped
# bundle (pretrained/ without its build script). Paths are relative, so the folder can be
# served under any sub-path. For live reload, `trunk serve --config trunk.toml` builds the same
# page from the same web/index.html.
#
#   bash web/build.sh [--dev] [--out DIR]
#
# --dev builds with the dev profile (dependencies at opt-level 3, our crates at 1): the
# profile the wasm32 tests already compiled, so CI builds the page without a second
# dependency build. The default is the release profile. DIR defaults to dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
out=dist
while (($#)); do
  case "$1" in
    --dev) profile=dev ;;
    --out) out="$2"; shift ;;
    *) echo "error: unknown option $1" >&2; echo "hint: bash web/build.sh [--dev] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

bash web/ensure-wasm-bindgen.sh

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build -p mia-web --target wasm32-unknown-unknown --profile "$profile" --locked
folder=$([[ "$profile" == dev ]] && echo debug || echo release)

# Build next to the destination, then swap it in: a failed build leaves the old folder whole.
tmp="$(mktemp -d "${out%/}.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$tmp" --out-name mia-web \
  "$target_dir/wasm32-unknown-unknown/$folder/mia-web.wasm"
cp web/styles.css "$tmp/"
mkdir "$tmp/pretrained"
find pretrained -maxdepth 1 -type f ! -name '*.sh' -exec cp {} "$tmp/pretrained/" \;

# web/index.html with trunk's three directives replaced by what trunk would emit for them.
python3 - web/index.html "$tmp/index.html" <<'EOF'
import re, sys
html = open(sys.argv[1], encoding="utf-8").read()
rules = {
    "css": '<link rel="stylesheet" href="styles.css" />',
    "rust": '<script type="module">import init from "./mia-web.js"; '
            'await init({ module_or_path: "./mia-web_bg.wasm" });</script>',
    "copy-dir": "",
}
def replace(m):
    kind = re.search(r'rel="([^"]+)"', m.group(0)).group(1)
    if kind not in rules:
        sys.exit(f"error: web/index.html has a trunk directive this script does not know: {kind}")
    return rules[kind]
html, n = re.subn(r"<link data-trunk [^>]*>", replace, html)
if n != 3:
    sys.exit(f"error: expected 3 trunk directives in web/index.html, found {n}")
open(sys.argv[2], "w", encoding="utf-8").write(html)
EOF
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built the lab into $out/ ($profile profile)"
