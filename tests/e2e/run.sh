#!/usr/bin/env bash
# Builds the site with the shipped page (web/build.sh: web/site/, checked to match the sources
# by tests/run-all.sh) and checks its first visit fits the size budget (web/site.py --budget,
# 3.5 MB over the wire for the CPU page, 5 MB for the WebGPU page), serves it on 127.0.0.1 and runs the real-browser tests: serve.mjs (web/serve.py
# serving a room: bytes over the wire, headers, the loading indicator), deeplink.mjs
# (the site built for a sub-path with --public-url, opened from a deep link), imported.mjs (a
# PyTorch model imported into a companion site, its AUCs equal to the native), teach.mjs (what a new
# student meets: default backend, honest upload verdicts, toggle latency, phone layout, tour,
# a corrupt model beside working ones), limits.mjs (a 54-megapixel JPEG, a HEIC photo, out-of-range
# lab settings, an 11th class), hostile.mjs (crafted and damaged lab files leave the page alive),
# persist.mjs (switching views and reloading keep everything; export carries the run; the leave
# prompt; clear everything; a full storage reported), prepared.mjs (each shipped prepared lab
# opens from its link and its worksheet's conclusion holds over 5 member splits), labphone.mjs
# (a phone sees the results right after a run, nothing covering them; the lab's tour),
# recognise.mjs (the shipped model's training images
# recognised among uploads, and nothing else), labmode.mjs (training on a student's images in the
# page, on both paths), labextras.mjs (camera, early stopping, export/import of the trained
# network, fine-tuning), labtrust.mjs (intervals across member splits, the comparison table,
# ε with its δ), threads.mjs (the CPU path's helper threads: one per core, the same AUCs as
# on one thread, the page's own thread when they cannot start) and lab.mjs on the CPU path
# and on the WebGPU path
# (SwiftShader's software adapter in headless Chromium), then checks both show the same AUCs.
# Screenshots and results go to tests/e2e/out/.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=tests/e2e/out
mkdir -p "$OUT"

SITE="$OUT/site"
bash web/build.sh --out "$SITE"
python3 web/site.py --budget "$SITE" --limit 3.5 --limit-webgpu 5 --json "$OUT/size.json"
(cd tests/e2e && { [[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund --silent; })

PORT="${E2E_PORT:-8765}"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done

# Serving a room: web/serve.py with the site's brotli copies (first visit ≤ 3.5 MB over the wire,
# MIME types, revalidating reloads, the loading indicator, a taken port).
node tests/e2e/serve.mjs "$SITE" "$((PORT + 3))" "$OUT/serve" | tee "$OUT/serve.json"

# The same page with one model's weights corrupted (one byte flipped), for the test that a
# broken model leaves the others working.
BROKEN="$OUT/site-broken"
rm -rf "$BROKEN" && cp -r "$SITE" "$BROKEN"
python3 -c '
import json, os, sys
d = sys.argv[1]
m = next(m for m in json.load(open(d + "/manifest.json"))["models"] if m["id"] == "relaxloss")
p = d + "/" + m["weights"]["path"]
b = bytearray(open(p, "rb").read()); b[5000] ^= 0xFF; open(p, "wb").write(b)
for ext in (".gz", ".br"):  # a host serving the precompressed copy would hide the flip
    if os.path.exists(p + ext): os.remove(p + ext)
' "$BROKEN/pretrained"
BROKEN_PORT=$((PORT + 1))
python3 -m http.server "$BROKEN_PORT" --bind 127.0.0.1 --directory "$BROKEN" >"$OUT/server-broken.log" 2>&1 &
BROKEN_SERVER=$!
trap 'kill $SERVER $BROKEN_SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null && curl -sf "http://127.0.0.1:$BROKEN_PORT/" >/dev/null && break
  sleep 0.1
done

# A paper's companion site: a bundle with a citation, built for a public URL, served under a
# sub-path (the server's root is the folder above the site).
HOST="$OUT/host"
rm -rf "$HOST" "$OUT/cited" && mkdir -p "$HOST" && cp -r pretrained "$OUT/cited"
python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
m["citation"] = "MIA Lab test bundle (2026)."
json.dump(m, open(sys.argv[1], "w"), indent=2)
' "$OUT/cited/manifest.json"
HOST_PORT=$((PORT + 2))
PUBLIC="http://example.org/my-paper/"
bash web/build.sh --bundle "$OUT/cited" --public-url "$PUBLIC" --out "$HOST/my-paper"
python3 -m http.server "$HOST_PORT" --bind 127.0.0.1 --directory "$HOST" >"$OUT/server-host.log" 2>&1 &
HOST_SERVER=$!
trap 'kill $SERVER $BROKEN_SERVER $HOST_SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HOST_PORT/my-paper/" >/dev/null && break; sleep 0.1; done
node tests/e2e/deeplink.mjs "http://127.0.0.1:$HOST_PORT/my-paper" "$PUBLIC" "$OUT/deeplink" | tee "$OUT/deeplink.json"

# A paper's PyTorch model on its companion site: `mia import` and `mia export --model` on the
# fixtures bench/pytorch_paper.py wrote with real PyTorch (the images, the first 400 of
# CIFAR-10's data_batch_5, come from the shared data); the page's AUCs must equal the native.
if [[ -n "${MIA_SHARED_DATA:-}" ]]; then
  cargo build --workspace --locked --bin mia -q
  MIA="${CARGO_TARGET_DIR:-target}/debug/mia"
  PAPER=tests/fixtures/pytorch/paper
  python3 -c '
import sys
raw = open(sys.argv[1] + "/cifar-10/cifar-10-batches-bin/data_batch_5.bin", "rb").read()
rows = [raw[i * 3073 + 1:(i + 1) * 3073] for i in range(400)]
hwc = bytes(r[c * 1024 + p] for r in rows for p in range(1024) for c in range(3))
head = "{\x27descr\x27: \x27|u1\x27, \x27fortran_order\x27: False, \x27shape\x27: (400, 32, 32, 3), }"
head += " " * (127 - 10 - len(head)) + "\n"
open(sys.argv[2], "wb").write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode() + hwc)
' "$MIA_SHARED_DATA" "$OUT/paper-images.npy"
  rm -rf "$OUT/paper-cnn" "$OUT/paper-bundle"
  "$MIA" import "$PAPER/target.safetensors" --arch small-cnn --preprocess "$PAPER/preprocess.toml" \
    --check-images "$OUT/paper-images.npy" --check-logits "$PAPER/logits.npy" --out "$OUT/paper-cnn"
  "$MIA" export --model "$OUT/paper-cnn" --logits "$PAPER/logits.npy" --labels "$PAPER/labels.npy" \
    --membership "$PAPER/member.npy" --shadow-logits "$PAPER/shadows.npy" --shadow-keep "$PAPER/keep.npy" \
    --images "$OUT/paper-images.npy" --reference 200 --weights f32 \
    --provenance "Trained in PyTorch by bench/pytorch_paper.py --fixtures, imported with mia import." \
    --out "$OUT/paper-bundle" >"$OUT/paper-export.log"
  bash web/build.sh --bundle "$OUT/paper-bundle" --out "$OUT/paper-site" --no-compress
  PAPER_PORT=$((PORT + 4))
  python3 -m http.server "$PAPER_PORT" --bind 127.0.0.1 --directory "$OUT/paper-site" >"$OUT/server-paper.log" 2>&1 &
  PAPER_SERVER=$!
  trap 'kill $SERVER $BROKEN_SERVER $HOST_SERVER $PAPER_SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PAPER_PORT/" >/dev/null && break; sleep 0.1; done
  node tests/e2e/imported.mjs "http://127.0.0.1:$PAPER_PORT" "$OUT/imported" | tee "$OUT/imported.json"
  kill "$PAPER_SERVER" 2>/dev/null || true
else
  echo "skipped: imported.mjs needs MIA_SHARED_DATA (the paper's images come from ../shared/data)"
fi

node tests/e2e/teach.mjs "http://127.0.0.1:$PORT" "http://127.0.0.1:$BROKEN_PORT" "$OUT/teach" | tee "$OUT/teach.json"
# The shipped model's training images recognised among uploads (PNG and 1024 × 1024 JPEG).
node tests/e2e/recognise.mjs "http://127.0.0.1:$PORT" "$OUT/recognise" | tee "$OUT/recognise.json"
# At the page's limits: a 54-megapixel JPEG decoded smaller, a HEIC photo with conversion
# advice, out-of-range lab settings and an 11th class said in a notice.
node tests/e2e/limits.mjs "http://127.0.0.1:$PORT" "$OUT/limits" | tee "$OUT/limits.json"
# Hostile lab files (a crafted network, damaged weights, a cut-short file, garbage): a message
# each, no panic, and the lab keeps working.
node tests/e2e/hostile.mjs "http://127.0.0.1:$PORT" "$OUT/hostile" | tee "$OUT/hostile.json"
node tests/e2e/persist.mjs "http://127.0.0.1:$PORT" "$OUT/persist" | tee "$OUT/persist.json"
node tests/e2e/prepared.mjs "http://127.0.0.1:$PORT" "$OUT/prepared" 5 | tee "$OUT/prepared.json"
node tests/e2e/labphone.mjs "http://127.0.0.1:$PORT" "$OUT/labphone" | tee "$OUT/labphone.json"
node tests/e2e/labmode.mjs "http://127.0.0.1:$PORT" "$OUT/labmode" flex | tee "$OUT/labmode-flex.json"
node tests/e2e/labmode.mjs "http://127.0.0.1:$PORT" "$OUT/labmode" webgpu | tee "$OUT/labmode-webgpu.json"
# Camera, early stopping, the network in the lab file, fine-tuning: the CPU path only (on
# SwiftShader the fine-tuned run alone takes minutes; run it by hand with `webgpu`).
node tests/e2e/labextras.mjs "http://127.0.0.1:$PORT" "$OUT/labextras" flex | tee "$OUT/labextras-flex.json"
# Intervals that agree across member splits, the comparison table, ε with its δ: CPU path.
node tests/e2e/labtrust.mjs "http://127.0.0.1:$PORT" "$OUT/labtrust" flex | tee "$OUT/labtrust-flex.json"
node tests/e2e/lab.mjs "http://127.0.0.1:$PORT" "$OUT" flex | tee "$OUT/flex.json"
# The CPU path's helper threads: one per core, started before the weights arrive, the same
# AUCs (two models, HAMP on) as on one thread, and the page's own thread where worker.js
# cannot be fetched or the device reports one core.
node tests/e2e/threads.mjs "http://127.0.0.1:$PORT" "$OUT/threads" | tee "$OUT/threads.json"
node tests/e2e/lab.mjs "http://127.0.0.1:$PORT" "$OUT" webgpu | tee "$OUT/webgpu.json"
node -e '
const fs = require("fs");
const [a, b] = ["flex", "webgpu"].map((k) => JSON.parse(fs.readFileSync(`tests/e2e/out/${k}.json`, "utf8")));
for (const [name, auc] of Object.entries(a.aucs)) {
  if (Math.abs(auc - b.aucs[name]) > 0.002) { console.error(`FAIL: ${name} AUC ${auc} on CPU, ${b.aucs[name]} on WebGPU`); process.exit(1); }
}
console.log("e2e: CPU and WebGPU paths agree:", JSON.stringify(a.aucs));
'
