// Real-browser end-to-end test of the lab: headless Chromium (Debian's) driven by
// playwright-core against the built app served on 127.0.0.1. Usage:
//   node lab.mjs URL OUT_DIR BACKEND   (BACKEND: flex | webgpu)
// Prints one JSON line with what it measured; exits non-zero on any failed check.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir, backend] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = (f) => path.join(here, 'fixtures', f);
fs.mkdirSync(outDir, { recursive: true });

const fail = (msg) => {
  console.error(`FAIL [${backend}]: ${msg}`);
  process.exit(1);
};

const browser = await chromium.launch(launchOptions);
const origin = new URL(url).origin;
const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
const requests = [];
page.on('request', (r) => requests.push(r.url()));
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));

const t0 = Date.now();
await page.goto(`${url}/?backend=${backend}`);
// Wait for the distributions.
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 }).catch(async () => {
  await page.screenshot({ path: path.join(outDir, `failed-${backend}.png`), fullPage: true });
  const status = await page.textContent('[data-testid="status"]').catch(() => '?');
  fail(`no distributions within 240 s (status: ${status}; console: ${consoleErrors.join(' | ')})`);
});
const wallMs = Date.now() - t0;
// What the first visit fetched is what the size budget counted (web/site.py --budget wrote
// size.json): a file fetched before the first distributions but left out of the budget would
// make the budget a lie.
// The page comes in two builds: ?backend=webgpu loads the WebGPU page, flex the CPU page.
const sizes = JSON.parse(fs.readFileSync(path.join(outDir, 'size.json'), 'utf8'));
const budgeted = new Set(Object.keys(sizes[backend === 'webgpu' ? 'webgpu' : 'cpu'].files));
const unbudgeted = requests
  .filter((r) => r.startsWith(origin))
  .map((r) => new URL(r).pathname.replace(/^\//, ''))
  .filter((p) => p !== '' && p !== 'favicon.ico' && !budgeted.has(p));
if (unbudgeted.length) fail(`the first visit fetched files the size budget leaves out: ${unbudgeted.join(', ')}`);
const shownBackend = await page.textContent('[data-testid="backend"]');
const firstMs = await page.textContent('[data-testid="first-ms"]').catch(() => '');
const inferenceMs = await page.textContent('[data-testid="inference-ms"]').catch(() => '');

// The AUCs shown for the default (ERM) model against the manifest's natively measured ones.
const manifest = await (await fetch(`${url}/pretrained/manifest.json`)).json();
const erm = manifest.models[0];
const aucs = {};
for (const a of erm.attacks.filter((a) => a.reference_auc !== null && a.reference_auc !== undefined)) {
  const el = await page.$(`[data-testid="auc-${a.name}"]`);
  if (!el) fail(`no AUC shown for ${a.name}`);
  const shown = parseFloat(await el.textContent());
  aucs[a.name] = shown;
  if (Math.abs(shown - a.reference_auc) > 0.01) {
    fail(`${a.name}: AUC ${shown} shown, manifest ${a.reference_auc}`);
  }
}

// Toggle a defense: the confidence readout must change (naive threshold no longer reached).
const readout = async () => page.textContent('[data-testid="attack-confidence"] .readout');
const before = await readout();
await page.click('[data-testid="toggle-temperature"]');
await page.waitForFunction(
  (b) => document.querySelector('[data-testid="attack-confidence"] .readout')?.textContent !== b,
  before, { timeout: 60_000 },
).catch(() => fail('toggling temperature did not change the confidence readout'));
const after = await readout();

// Upload a PNG: a prediction appears.
await page.setInputFiles('[data-testid="upload-input"]', fixture('pattern.png'));
await page.waitForSelector('[data-testid="prediction"]', { timeout: 60_000 })
  .catch(() => fail('no prediction for the uploaded PNG'));
const prediction = await page.textContent('[data-testid="prediction"]');

// A corrupt file and a text file: an error message, and the page still responds.
await page.setInputFiles('[data-testid="upload-input"]', [fixture('corrupt.png'), fixture('not-an-image.txt')]);
await page.waitForSelector('[data-testid="error"]', { timeout: 30_000 })
  .catch(() => fail('no error message for a corrupt upload'));
const error = await page.textContent('[data-testid="error"]');
const beforeToggle = await readout();
await page.click('[data-testid="toggle-temperature"]');
await page.waitForFunction(
  (b) => document.querySelector('[data-testid="attack-confidence"] .readout')?.textContent !== b,
  beforeToggle, { timeout: 60_000 },
).catch(() => fail('the page stopped responding after a bad upload'));
await page.click('[data-testid="toggle-dynanoise"]');
await page.waitForTimeout(1500);

const shot = path.join(outDir, `lab-${backend}.png`);
await page.screenshot({ path: shot, fullPage: true });

const foreign = requests.filter((r) => !r.startsWith(origin) && !r.startsWith('data:') && !r.startsWith('blob:'));
if (foreign.length) fail(`requests left the page's origin: ${foreign.join(', ')}`);
if (backend === 'webgpu' && !/WebGPU/.test(shownBackend)) {
  fail(`asked for WebGPU, page runs on ${shownBackend}`);
}
await browser.close();
console.log(JSON.stringify({
  backend, shownBackend, wallMs, firstMs, inferenceMs, aucs, before, after, prediction, error,
  requests: requests.length, screenshot: shot,
}));
