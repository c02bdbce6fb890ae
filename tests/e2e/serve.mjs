// Real-browser test of serving a room with web/serve.py:
//   node serve.mjs SITE_DIR PORT OUT_DIR
// Starts `python3 web/serve.py --dir SITE_DIR --port PORT` itself (SITE_DIR built with its
// brotli/gzip copies) and checks, in headless Chromium:
// - the first visit (page load to the first distributions, CPU page) costs at most 3.5 MB over the wire,
//   counted from the network events (what was transferred, not what was decoded);
// - the wasm comes as application/wasm, brotli-encoded; every response is `no-cache` with an
//   ETag, and a reload revalidates: it transfers a small fraction of the first visit;
// - index.html's loading indicator shows the bytes received before the module starts (the
//   connection is throttled to 4 Mbit/s so the download takes a few seconds), and is gone once
//   the page runs; no request fails and the console shows no error (the favicon is inline);
// - a second server on the same port stops with `error:` and `hint:`, no traceback;
// - `--lan` prints the address students open.
// Prints one JSON line of measurements.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const [site, port, outDir] = process.argv.slice(2);
const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const url = `http://127.0.0.1:${port}`;
fs.mkdirSync(outDir, { recursive: true });
const results = {};
let browser;
let server;
const fail = async (msg, page) => {
  console.error(`FAIL [serve]: ${msg}`);
  console.error(`so far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, 'serve-failed.png'), fullPage: true }).catch(() => {});
  await browser?.close();
  server?.kill();
  process.exit(1);
};
const check = async (ok, msg, page) => { if (!ok) await fail(msg, page); };

server = spawn('python3', [path.join(root, 'web/serve.py'), '--dir', site, '--port', port], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
server.stderr.on('data', (d) => { serverLog += d; });
await new Promise((resolve) => server.stdout.once('data', resolve));

// A taken port: a clear message, not a traceback.
const again = spawnSync('python3', [path.join(root, 'web/serve.py'), '--dir', site, '--port', port], { encoding: 'utf8', timeout: 10_000 });
results.taken_port = again.stderr.trim().split('\n');
await check(again.status === 1 && /^error: port \d+ is taken/m.test(again.stderr) && /^hint: /m.test(again.stderr)
  && !again.stderr.includes('Traceback'), `a taken port gave: ${again.stderr}`);

// --lan: listens on every interface and prints what students open (or says it found no
// network address, as on a machine without one).
const lan = spawn('python3', [path.join(root, 'web/serve.py'), '--dir', site, '--port', String(Number(port) + 10), '--lan'], { stdio: ['ignore', 'pipe', 'pipe'] });
const lanOut = await new Promise((resolve) => {
  let out = '';
  lan.stdout.on('data', (d) => { out += d; if (/students open http:\/\/|no network address/.test(out)) resolve(out); });
  setTimeout(() => resolve(out), 5_000);
});
lan.kill();
results.lan = lanOut.trim().split('\n');
await check(/^ {2}(students open http:\/\/[\d.]+:\d+\/|\(no network address found)/m.test(lanOut), `--lan printed: ${lanOut}`);

browser = await chromium.launch(launchOptions);
const page = await browser.newPage();
const cdp = await page.context().newCDPSession(page);
await cdp.send('Network.enable');
// 4 Mbit/s down, 20 ms: the CPU page's 0.7 MB brotli module takes over a second, long enough to watch.
await cdp.send('Network.emulateNetworkConditions', {
  offline: false, latency: 20, downloadThroughput: 500_000, uploadThroughput: 500_000,
});
const transfers = new Map();
const responses = new Map();
cdp.on('Network.responseReceived', (e) => responses.set(e.requestId, e.response));
cdp.on('Network.loadingFinished', (e) => transfers.set(e.requestId, e.encodedDataLength));
const failed = [];
cdp.on('Network.loadingFailed', (e) => failed.push(e.errorText));
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

// Watch #boot from the first paint: record every text it shows.
await page.addInitScript(() => {
  window.__bootTexts = [];
  const seen = () => {
    const t = document.querySelector('#boot .boot-text')?.textContent;
    if (t && window.__bootTexts.at(-1) !== t) window.__bootTexts.push(t);
  };
  new MutationObserver(seen).observe(document, { subtree: true, childList: true, characterData: true });
});
const started = Date.now();
await page.goto(`${url}/?backend=flex`);
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail('no distributions', page));
results.first_distributions_s = (Date.now() - started) / 1000;
const bootTexts = await page.evaluate(() => window.__bootTexts);
results.boot_texts = [bootTexts[0], bootTexts.at(-1), bootTexts.length];
await check(bootTexts.some((t) => /^Loading MIA Lab: \d+\.\d of \d+\.\d MB received$/.test(t)),
  `the loading indicator never showed bytes received: ${JSON.stringify(bootTexts)}`, page);
await check(bootTexts.length >= 3, `the loading indicator moved ${bootTexts.length} times`, page);
await check(await page.locator('#boot').count() === 0, 'the loading indicator stays after the page started', page);

const sum = () => [...transfers.values()].reduce((a, b) => a + b, 0);
results.first_visit_bytes = sum();
results.first_visit_requests = transfers.size;
// What the server sent (not data: or blob: URLs the page makes itself).
const all = [...responses.values()].filter((r) => r.url.startsWith(url));
const wasm = all.find((r) => r.url.endsWith('_bg.wasm'));
results.wasm = { type: wasm?.headers['Content-Type'], encoding: wasm?.headers['Content-Encoding'] };
await check(wasm?.headers['Content-Type'] === 'application/wasm', `wasm served as ${results.wasm.type}`, page);
await check(wasm?.headers['Content-Encoding'] === 'br', `wasm encoded as ${results.wasm.encoding}`, page);
const uncached = all.filter((r) => r.headers['Cache-Control'] !== 'no-cache' || !r.headers.ETag);
await check(uncached.length === 0, `responses without no-cache and an ETag: ${uncached.map((r) => r.url)}`, page);
// ?backend=flex loads the CPU page: its budget is 3.5 MB (web/site.py --budget).
await check(results.first_visit_bytes <= 3_500_000,
  `the first visit transferred ${results.first_visit_bytes} bytes, over 3.5 MB`, page);
await check(failed.length === 0 && all.every((r) => r.status < 400),
  `failed requests: ${JSON.stringify(failed)} ${all.filter((r) => r.status >= 400).map((r) => `${r.status} ${r.url}`)}`, page);
await check(errors.length === 0, `console errors: ${JSON.stringify(errors)}`, page);

// A reload revalidates every file (304s) instead of downloading it again.
transfers.clear();
await page.reload();
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail('no distributions after a reload', page));
results.reload_bytes = sum();
await check(results.reload_bytes < 0.05 * results.first_visit_bytes,
  `a reload transferred ${results.reload_bytes} bytes`, page);
await page.screenshot({ path: path.join(outDir, 'served.png') });

await browser.close();
server.kill();
results.server_log_lines = serverLog.split('\n').filter(Boolean).length;
console.log(JSON.stringify(results));
