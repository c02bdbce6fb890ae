"""web/index.html with trunk's three directives replaced by what trunk would emit for them,
the module's start replaced by one that shows the bytes received in index.html's #boot while
the wasm downloads (out of its size, when OUT.html's folder holds it) and says so if it fails.

    python3 web/index.py web/index.html OUT.html
"""
import os
import re
import sys

wasm = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), "mia-web_bg.wasm")
total = os.path.getsize(wasm) if os.path.isfile(wasm) else 0
BOOT = """<script type="module">
import init from "./mia-web.js";
const boot = document.getElementById("boot");
const say = (text, fraction) => {
  if (!boot) return;
  boot.querySelector(".boot-text").textContent = text;
  if (fraction !== undefined) boot.querySelector(".boot-fill").style.width = `${Math.min(100, 100 * fraction)}%`;
};
const TOTAL = __TOTAL__;
try {
  const response = await fetch("./mia-web_bg.wasm");
  if (!response.ok) throw new Error(`the page's code could not be fetched (HTTP ${response.status})`);
  const reader = response.body.getReader();
  let received = 0;
  const counted = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) { controller.close(); return; }
      received += value.length;
      const mb = (received / 1e6).toFixed(1);
      say(TOTAL ? `Loading MIA Lab: ${mb} of ${(TOTAL / 1e6).toFixed(1)} MB received` : `Loading MIA Lab: ${mb} MB received`, TOTAL ? received / TOTAL : undefined);
      controller.enqueue(value);
    },
  });
  await init({ module_or_path: new Response(counted, { headers: { "Content-Type": "application/wasm" } }) });
} catch (e) {
  say(`MIA Lab could not start: ${e.message}. Check the connection and reload the page.`);
  boot?.classList.add("boot-failed");
  throw e;
}
</script>""".replace("__TOTAL__", str(total))

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
