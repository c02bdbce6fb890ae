"""The shipped page (web/site/) and built sites: source hash, stamp, checks, size budget.

    python3 web/site.py                        hash of the sources the page is built from
    python3 web/site.py --files                 the page's files (what web/build.sh copies)
    python3 web/site.py --stamp DIR --profile P   write DIR/build-info.json
    python3 web/site.py --verify DIR            DIR's files are the ones build-info.json lists
    python3 web/site.py --fresh                 web/site/ was built from this checkout's sources
    python3 web/site.py --check-static DIR      DIR is fit for static hosting
    python3 web/site.py --budget DIR [--limit MB] [--limit-webgpu MB] [--json F]
                                                bytes over the wire of a first visit (the CPU
                                                page) and of a visit to the WebGPU page (once
                                                picked); fails past MB (3.5) or the WebGPU
                                                page's MB (5)

The page's sources: mia-core and mia-web (the only crates in its wasm), the workspace
manifests and lockfile, the cargo config (SIMD), web/index.html, styles.css and worker.js
(the CPU path's helper threads), and the scripts that build it. Tests, benches and examples
of those crates are not compiled into the page and are left out.
"""
import gzip
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = [
    "crates/mia-core/Cargo.toml",
    "crates/mia-core/src",
    "crates/mia-web/Cargo.toml",
    "crates/mia-web/src",
    # burn-flex with MIA Lab's kernels: the page's CPU path runs them too.
    "crates/vendor/burn-flex/Cargo.toml",
    "crates/vendor/burn-flex/src",
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "web/index.html",
    "web/styles.css",
    "web/build.sh",
    "web/index.py",
    "web/worker.js",
]
# The page: what every visit fetches, then the CPU build (mia-web-cpu: every first visit) and
# the WebGPU build (mia-web: once the visitor picks WebGPU), of which a visit fetches one.
SHARED_FILES = ["index.html", "styles.css", "worker.js"]
BUILD_FILES = {"cpu": ["mia-web-cpu.js", "mia-web-cpu_bg.wasm"], "webgpu": ["mia-web.js", "mia-web_bg.wasm"]}
PAGE_FILES = SHARED_FILES + [f for files in BUILD_FILES.values() for f in files]


def fail(msg, hint):
    print(f"error: {msg}", file=sys.stderr)
    print(f"hint: {hint}", file=sys.stderr)
    sys.exit(1)


def source_files():
    """The page's source files, relative to the root, sorted (git's view when in a checkout:
    tracked and untracked-but-not-ignored files; else a walk)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", *SOURCES],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode()
        files = [f for f in out.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for s in SOURCES:
            p = os.path.join(ROOT, s)
            if os.path.isfile(p):
                files.append(s)
            for d, _, names in os.walk(p):
                files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names]
    return sorted(set(f.replace(os.sep, "/") for f in files))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sources_hash():
    h = hashlib.sha256()
    for f in source_files():
        h.update(f"{f}\0{sha256(os.path.join(ROOT, f))}\n".encode())
    return h.hexdigest()


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, check=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp(folder, profile):
    info = {
        "sources": sources_hash(),
        "profile": profile,
        "rustc": tool_version(["rustc", "--version"]),
        "wasm_bindgen": tool_version(["wasm-bindgen", "--version"]),
        "files": {
            f: {"bytes": os.path.getsize(os.path.join(folder, f)),
                "sha256": sha256(os.path.join(folder, f))}
            for f in PAGE_FILES
        },
    }
    with open(os.path.join(folder, "build-info.json"), "w", encoding="utf-8") as out:
        json.dump(info, out, indent=2)
        out.write("\n")


def read_info(folder):
    try:
        with open(os.path.join(folder, "build-info.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{folder}/build-info.json cannot be read ({e})", "bash web/build.sh --update-site")


def verify(folder):
    info = read_info(folder)
    for f, want in info["files"].items():
        p = os.path.join(folder, f)
        if not os.path.isfile(p) or sha256(p) != want["sha256"]:
            fail(f"{folder}/{f} is not the file build-info.json lists",
                 "bash web/build.sh --update-site")


def fresh():
    info = read_info(os.path.join(ROOT, "web", "site"))
    if info["sources"] != sources_hash():
        fail("web/site/ (the shipped page) was built from other sources than this checkout's",
             "bash web/build.sh --update-site, then commit web/site/ (web/site.py lists the sources)")
    verify(os.path.join(ROOT, "web", "site"))
    print("web/site/ matches the sources")


def check_static(folder):
    for d, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(d, n)
            if n.endswith((".sh", ".py")):
                fail(f"{p}: a build script in a site for static hosting", "report this as a bug")
            if n.endswith((".html", ".js")):
                text = open(p, encoding="utf-8", errors="replace").read()
                if "__trunk_address__" in text or "ws://" in text:
                    fail(f"{p} holds a live-reload script (trunk serve's)",
                         "build with bash web/build.sh, not trunk serve")


def wire(path):
    """(raw, gzip, brotli) bytes of a file as a host may send it: the precompressed copies
    when they exist (gzip computed when not)."""
    raw = os.path.getsize(path)
    gz = os.path.getsize(path + ".gz") if os.path.exists(path + ".gz") else None
    if gz is None:
        with open(path, "rb") as f:
            gz = min(raw, len(gzip.compress(f.read(), 9)))
    br = os.path.getsize(path + ".br") if os.path.exists(path + ".br") else gz
    return raw, gz, min(br, gz)


def budget(folder, limits, json_out):
    """Bytes of a visit to each of the page's builds: `cpu` (the CPU page, what every first visit
    fetches) and `webgpu` (the WebGPU page, once the visitor picked WebGPU); fails past
    `limits[path]` MB brotli."""
    with open(os.path.join(folder, "pretrained", "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    first = manifest["models"][0]
    bundle = ["pretrained/manifest.json", "pretrained/" + manifest["reference"]["file"]["path"]]
    bundle += ["pretrained/" + first[k]["path"] for k in ("weights", "lira") if first.get(k)]
    report, over = {}, []
    for path, build in BUILD_FILES.items():
        rows = [(f, *wire(os.path.join(folder, f))) for f in SHARED_FILES + build + bundle]
        total = [sum(r[i] for r in rows) for i in (1, 2, 3)]
        what = "first visit, the CPU page" if path == "cpu" else "after picking WebGPU, the WebGPU page"
        print(f"{what} ({first['id']}): {'file':<20}{'raw':>12}{'gzip':>12}{'brotli':>12}")
        for f, raw, gz, br in rows + [("total", *total)]:
            print(f"  {f:<48}{raw:>12,}{gz:>12,}{br:>12,}")
        report[path] = {"files": {r[0]: r[1:] for r in rows}, "total": total, "limit_mb": limits[path]}
        # Over the wire: brotli where the host sends it, which every browser accepts over HTTPS.
        if total[2] > limits[path] * 1e6:
            over.append(f"a visit to the {path} page sends {total[2] / 1e6:.2f} MB (brotli), over its {limits[path]} MB budget")
        else:
            print(f"within the {limits[path]} MB budget: {total[2] / 1e6:.2f} MB brotli, {total[1] / 1e6:.2f} MB gzip")
    # The page opens on the naive attacker: the adaptive attacker's shadow outputs are fetched
    # when it is chosen (tests/e2e/lab.mjs fails if the first visit fetches anything not above).
    # Likewise the index of the training images, fetched at the first upload of a file
    # (tests/e2e/recognise.mjs checks that the first visit does not fetch it).
    on_demand = [first.get("shadow_outputs"), manifest.get("members_index", {}).get("file")]
    for ref in filter(None, on_demand):
        f = "pretrained/" + ref["path"]
        print(f"  on demand: {f:<37}" + "".join(f"{v:>12,}" for v in wire(os.path.join(folder, f))))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as out:
            json.dump(report, out)
    if over:
        fail("; ".join(over), "shrink the page or the default model's files (docs/benchmarks.md, page size)")


def main(argv):
    if not argv:
        print(sources_hash())
    elif argv[0] == "--files" and len(argv) == 1:
        print("\n".join(PAGE_FILES))
    elif argv[0] == "--stamp" and len(argv) == 4 and argv[2] == "--profile":
        stamp(argv[1], argv[3])
    elif argv[0] == "--verify" and len(argv) == 2:
        verify(argv[1])
    elif argv[0] == "--fresh" and len(argv) == 1:
        fresh()
    elif argv[0] == "--check-static" and len(argv) == 2:
        check_static(argv[1])
    elif argv[0] == "--budget" and len(argv) >= 2:
        opts = dict(zip(argv[2::2], argv[3::2]))
        if set(opts) - {"--limit", "--limit-webgpu", "--json"} or len(argv[2:]) % 2:
            fail(f"unknown options {argv[2:]}",
                 "python3 web/site.py --budget DIR [--limit MB] [--limit-webgpu MB] [--json F]")
        limits = {"cpu": float(opts.get("--limit", 3.5)), "webgpu": float(opts.get("--limit-webgpu", 5))}
        budget(argv[1], limits, opts.get("--json"))
    else:
        fail(f"unknown arguments {argv}", "see the top of web/site.py")


if __name__ == "__main__":
    main(sys.argv[1:])
