#!/usr/bin/env bash
# Browser inference benchmark (see bench.mjs): builds the lab, writes the TF.js fixture from
# the shipped bundle with `mia bench --browser-fixture`, serves both on 127.0.0.1 and drives
# headless Chromium. Prints a table; results go to bench/browser/out/browser.json.
#   bash bench/browser/run.sh                 the shipped page (web/site/) against TF.js
#   NDARRAY=1 bash bench/browser/run.sh       also burn's ndarray backend (compiles the page)
#   MIA=path/to/mia                           a built `mia` for the fixture (else cargo run --release)
#   BENCH_ENGINES=flex,tfjs-wasm BENCH_REPEAT=5   the engines and alternations (bench.mjs;
#                                                 tfjs-wasm-isolated is served with COOP/COEP)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/browser/out
SITE="$OUT/site"
rm -rf "$SITE" && mkdir -p "$SITE"
if [[ "${NDARRAY:-0}" == 1 ]]; then
  bash web/build.sh --features ndarray
else
  bash web/build.sh --no-compress
  export BENCH_ENGINES="${BENCH_ENGINES:-flex,flex-1,webgpu,tfjs-wasm,tfjs-wasm-isolated,tfjs-webgpu,tfjs-cpu}"
fi
if [[ -n "${MIA:-}" ]]; then
  "$MIA" bench --browser-fixture "$SITE/bench/fixture" --bundle pretrained
else
  cargo run --release -q -p mia-cli -- bench --browser-fixture "$SITE/bench/fixture" --bundle pretrained
fi
(cd bench/browser && { [[ -d node_modules/@tensorflow/tfjs ]] || npm install --no-audit --no-fund --silent; })
cp -r dist/. "$SITE/"
mkdir -p "$SITE/bench/tfjs"
cp bench/browser/page.html bench/browser/page.mjs "$SITE/bench/"
NM=bench/browser/node_modules/@tensorflow
cp "$NM/tfjs/dist/tf.min.js" "$NM/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js" \
   "$NM/tfjs-backend-wasm/dist/tf-backend-wasm.min.js" "$NM"/tfjs-backend-wasm/dist/*.wasm "$SITE/bench/tfjs/"
PORT="${BENCH_PORT:-8766}"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >"$OUT/server.log" 2>&1 &
SERVER=$!
# The same folder served cross-origin isolated (COOP/COEP), where TF.js's wasm backend may run
# its threaded build (engine tfjs-wasm-isolated).
ISOLATED_PORT=$((PORT + 1))
python3 - "$ISOLATED_PORT" "$SITE" >"$OUT/server-isolated.log" 2>&1 <<'EOF' &
import functools, http.server, sys
class Isolated(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()
handler = functools.partial(Isolated, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
EOF
ISOLATED=$!
trap 'kill $SERVER $ISOLATED 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null && curl -sf "http://127.0.0.1:$ISOLATED_PORT/" >/dev/null && break
  sleep 0.1
done
export BENCH_ISOLATED_URL="http://127.0.0.1:$ISOLATED_PORT"
node bench/browser/bench.mjs "http://127.0.0.1:$PORT" "$OUT/browser.json"
