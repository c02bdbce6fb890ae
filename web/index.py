"""web/index.html with trunk's three directives replaced by what trunk would emit for them,
the module's start replaced by a loader: it picks the page's build (mia-web-cpu, the CPU
page, unless the visitor picked WebGPU: ?backend=webgpu, or that pick remembered in this
browser; then mia-web, with the WebGPU engine), reads meanwhile what WebGPU the browser
offers (the page offers WebGPU where a hardware adapter has it), shows the bytes received in
index.html's #boot while the wasm downloads (out of its size, when OUT.html's folder holds
it) and says so if it fails.

    python3 web/index.py web/index.html OUT.html
"""
import json
import os
import re
import sys


def size(name):
    wasm = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), f"{name}_bg.wasm")
    return os.path.getsize(wasm) if os.path.isfile(wasm) else 0


builds = {kind: {"name": name, "total": size(name)} for kind, name in (("gpu", "mia-web"), ("cpu", "mia-web-cpu"))}
BOOT = """<script type="module">
const boot = document.getElementById("boot");
const say = (text, fraction) => {
  if (!boot) return;
  boot.querySelector(".boot-text").textContent = text;
  if (fraction !== undefined) boot.querySelector(".boot-fill").style.width = `${Math.min(100, 100 * fraction)}%`;
};
// What WebGPU this browser offers, read once here (the page reads this verdict too): a
// hardware adapter, a software emulation (slower than the CPU path), or none.
const SOFTWARE = [["swiftshader", "SwiftShader"], ["llvmpipe", "llvmpipe"], ["lavapipe", "lavapipe"],
  ["basic render", "Microsoft's Basic Render Driver"], ["software", "a software renderer"]];
async function webgpu() {
  if (!navigator.gpu) return { adapter: "none", reason: "this browser exposes no WebGPU" };
  try {
    const a = await navigator.gpu.requestAdapter();
    if (!a) return { adapter: "none", reason: "the browser offers no WebGPU adapter" };
    const info = a.info || {};
    const arch = `${info.architecture || ""} ${info.description || ""}`.toLowerCase();
    const hit = SOFTWARE.find(([key]) => arch.includes(key));
    if (hit) return { adapter: "software", name: hit[1] };
    if (info.isFallbackAdapter || a.isFallbackAdapter) return { adapter: "software", name: "a fallback adapter" };
    return { adapter: "hardware" };
  } catch (e) {
    return { adapter: "none", reason: String(e && e.message || e) };
  }
}
// Two builds of the page: the CPU page (every first visit: 1.5 MB less to fetch, and its CPU
// path is as fast as TensorFlow.js's) and the page with the WebGPU engine, loaded when the
// visitor picks WebGPU (?backend=webgpu), a pick this browser remembers until the visitor
// picks the CPU again (the page calls miaBuild.remember).
const BUILDS = __BUILDS__;
const KEPT = "mia-lab-build";
globalThis.miaBuild = {
  remember(kind) {
    try {
      if (kind === "webgpu") localStorage.setItem(KEPT, kind); else localStorage.removeItem(KEPT);
    } catch { /* storage refused (a sandboxed frame): the pick lasts this visit */ }
  },
};
const kept = (() => { try { return localStorage.getItem(KEPT); } catch { return null; } })();
const asked = new URLSearchParams(location.search).get("backend");
const build = asked === "webgpu" || (asked === null && kept === "webgpu") ? BUILDS.gpu : BUILDS.cpu;
// The CPU path's helper threads (web/worker.js) load this same module through its glue.
globalThis.miaBuild.glue = new URL(`./${build.name}.js`, location.href).href;
// The adapter is asked for while the wasm downloads; the page reads the verdict at start.
const verdict = webgpu();
try {
  const { default: init } = await import(`./${build.name}.js`);
  const response = await fetch(`./${build.name}_bg.wasm`);
  if (!response.ok) throw new Error(`the page's code could not be fetched (HTTP ${response.status})`);
  const reader = response.body.getReader();
  let received = 0;
  const counted = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) { controller.close(); return; }
      received += value.length;
      const mb = (received / 1e6).toFixed(1);
      say(build.total ? `Loading MIA Lab: ${mb} of ${(build.total / 1e6).toFixed(1)} MB received` : `Loading MIA Lab: ${mb} MB received`, build.total ? received / build.total : undefined);
      controller.enqueue(value);
    },
  });
  globalThis.miaWebGpu = await verdict;
  await init({ module_or_path: new Response(counted, { headers: { "Content-Type": "application/wasm" } }) });
} catch (e) {
  say(`MIA Lab could not start: ${e.message}. Check the connection and reload the page.`);
  boot?.classList.add("boot-failed");
  throw e;
}
</script>""".replace("__BUILDS__", json.dumps(builds))

html = open(sys.argv[1], encoding="utf-8").read()
rules = {
    "css": '<link rel="stylesheet" href="styles.css" />',
    "rust": BOOT,
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
