"""Serves a built lab (web/build.sh's folder) to one browser or to a classroom.

    python3 web/serve.py [--dir DIST] [--port N] [--lan]

- Sends a file's brotli or gzip copy (FILE.br, FILE.gz, written by web/build.sh) to a browser
  that accepts it, else gzips compressible files itself (once, kept in memory), so a first
  visit costs what `python3 web/site.py --budget` states, not the raw 20 MB.
- Correct MIME types (`application/wasm` lets the browser compile while downloading), `Vary:
  Accept-Encoding`, and `Cache-Control: no-cache` with `Last-Modified`/`ETag`: a reload
  revalidates (a 304, no body) instead of downloading again, and a rebuilt page is never stale.
- Listens on 127.0.0.1; `--lan` listens on every interface and prints the addresses to share.
- A taken port is an `error:` with a `hint:`, not a traceback.
"""
import argparse
import email.utils
import errno
import gzip
import http.server
import io
import os
import socket
import sys
import threading

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}
# Already compressed: gzip would only cost time.
INCOMPRESSIBLE = {".png", ".jpg", ".gz", ".br", ".zip"}


def fail(msg, hint):
    print(f"error: {msg}", file=sys.stderr)
    print(f"hint: {hint}", file=sys.stderr)
    sys.exit(1)


def accepted(header):
    """The codings an Accept-Encoding header accepts (q = 0 refuses one)."""
    out = set()
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if name.strip():
            out.add(name.strip().lower())
    return out


class Handler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.1: keep-alive for the page's dozen requests, and browsers use ETags as validators
    # only on 1.1 responses (every response here carries its Content-Length).
    protocol_version = "HTTP/1.1"
    gzipped = {}  # path -> (mtime, size, bytes): on-the-fly gzip, computed once per file
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # one short line per request, on stderr
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def guess_type(self, path):
        return TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            if not self.path.split("?", 1)[0].endswith("/"):
                return super().send_head()  # the redirect to the folder's slash
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            self.send_error(404, "File not found")
            return None
        st = os.stat(path)
        etag = '"%x-%x"' % (st.st_mtime_ns, st.st_size)
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            return None
        body, coding = self.body(path, st)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        if coding:
            self.send_header("Content-Encoding", coding)
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.end_headers()
        return io.BytesIO(body)

    def body(self, path, st):
        """The bytes to send and their coding: the precompressed copy the browser accepts, else
        gzip made here for compressible files, else the file."""
        ok = accepted(self.headers.get("Accept-Encoding"))
        for coding, ext in (("br", ".br"), ("gzip", ".gz")):
            copy = path + ext
            if coding in ok and os.path.isfile(copy) and os.stat(copy).st_mtime >= st.st_mtime:
                with open(copy, "rb") as f:
                    return f.read(), coding
        with open(path, "rb") as f:
            raw = f.read()
        if "gzip" in ok and st.st_size > 1024 and os.path.splitext(path)[1] not in INCOMPRESSIBLE:
            key = (st.st_mtime_ns, st.st_size)
            with self.lock:
                cached = self.gzipped.get(path)
            if cached and cached[0] == key:
                return cached[1], "gzip"
            packed = gzip.compress(raw, compresslevel=6, mtime=0)
            if len(packed) <= 0.95 * len(raw):
                with self.lock:
                    self.gzipped[path] = (key, packed)
                return packed, "gzip"
        return raw, None


def lan_addresses():
    """This machine's IPv4 addresses others on the network may reach (no loopback)."""
    found = set()
    try:  # the address a route to the outside would leave from (no packet is sent)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.1", 9))
        found.add(s.getsockname()[0])
        s.close()
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(info[4][0])
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127."))


def main():
    p = argparse.ArgumentParser(description="Serve a built MIA Lab site.")
    p.add_argument("--dir", default="dist", help="the built site (default: dist)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--lan", action="store_true", help="reachable from other machines")
    a = p.parse_args()
    if not os.path.isfile(os.path.join(a.dir, "index.html")):
        fail(f"{a.dir}/ holds no built lab (no index.html)", "bash web/build.sh builds it")
    if not 0 < a.port < 65536:
        fail(f"port {a.port} is not a port number", "pick one from 1024 to 65535")
    host = "0.0.0.0" if a.lan else "127.0.0.1"
    handler = lambda *args, **kw: Handler(*args, directory=a.dir, **kw)  # noqa: E731
    try:
        server = http.server.ThreadingHTTPServer((host, a.port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            fail(f"port {a.port} is taken (another server is running there?)",
                 f"stop that one, or pick another port: PORT={a.port + 1} bash web/serve.sh")
        if e.errno == errno.EACCES:
            fail(f"not allowed to listen on port {a.port}", "pick a port from 1024 up: PORT=8080")
        fail(f"cannot listen on {host}:{a.port}: {e.strerror}", "pick another port with PORT=")
    print(f"serving the lab on http://127.0.0.1:{a.port}/ (Ctrl-C stops)", flush=True)
    if a.lan:
        addresses = lan_addresses()
        for addr in addresses:
            print(f"  students open http://{addr}:{a.port}/", flush=True)
        if not addresses:
            print("  (no network address found: is this machine on the room's network?)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
