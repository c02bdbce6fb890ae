"""web/index.html with trunk's three directives replaced by what trunk would emit for them.

    python3 web/index.py web/index.html OUT.html
"""
import re
import sys

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
