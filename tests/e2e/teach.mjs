// Real-browser test of what a first-time student meets, against the built page:
//   node teach.mjs URL BROKEN_URL OUT_DIR
// URL serves the page; BROKEN_URL the same page with one model's weights corrupted.
// Checks: the default backend is not a software WebGPU adapter when the CPU is faster; every
// first visit fetches the CPU page (no WebGPU engine), one with a hardware adapter offers
// WebGPU, the menu's WebGPU loads the other page and later visits keep that pick (forgotten
// where WebGPU is gone); upload
// verdicts state their false-positive rate and say a student's file is not a training image; the rate
// a verdict states for reference images uploaded as files matches what those uploads show and,
// with the true label, the card's own; a defense toggle answers quickly with 0 and 50 uploads
// (long tasks measured); uploads can be removed; one corrupt model leaves the others working;
// the 390-px layout has no horizontal scroll and readable chart text; the tour opens from a link.
// Prints one JSON line of measurements; screenshots go to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import { readReference, writeReferencePngs } from './refpng.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, brokenUrl, outDir] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = (f) => path.join(here, 'fixtures', f);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
let browser;
const fail = async (msg, page) => {
  console.error(`FAIL [teach]: ${msg}`);
  console.error(`so far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, 'teach-failed.png'), fullPage: true }).catch(() => {});
  await browser?.close();
  process.exit(1);
};
const check = async (ok, msg, page) => { if (!ok) await fail(msg, page); };

const observeLongTasks = () => {
  window.__long = [];
  new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__long.push(e.duration)))
    .observe({ type: 'longtask', buffered: true });
};

browser = await chromium.launch(launchOptions);
const origin = new URL(url).origin;
const requests = [];

async function open(viewport, query = '') {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('request', (r) => requests.push(r.url()));
  await page.addInitScript(observeLongTasks);
  const t0 = Date.now();
  await page.goto(`${url}/${query}`);
  await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
    .catch(() => fail(`no distributions for ${query || 'the default page'}`, page));
  return { page, wallMs: Date.now() - t0 };
}

// How long a defense toggle takes to show its new numbers, and the longest task meanwhile.
async function toggleLatency(page, name) {
  const sel = '[data-testid="attack-confidence"] .readout';
  await page.evaluate(() => { window.__long = []; });
  const before = await page.textContent(sel);
  const t0 = await page.evaluate(() => performance.now());
  await page.click(`[data-testid="toggle-${name}"]`);
  await page.waitForFunction(([s, b]) => document.querySelector(s)?.textContent !== b, [sel, before], { timeout: 60_000, polling: 'raf' });
  const t1 = await page.evaluate(() => performance.now());
  const long = await page.evaluate(() => Math.max(0, ...window.__long));
  await page.click(`[data-testid="toggle-${name}"]`); // back off
  await page.waitForFunction(([s, b]) => document.querySelector(s)?.textContent === b, [sel, before], { timeout: 60_000 });
  return { updateMs: Math.round(t1 - t0), longestTaskMs: Math.round(long) };
}

// 1. The first visit, default backend.
const { page: desk, wallMs } = await open({ width: 1400, height: 1000 });
results.firstVisitWallMs = wallMs;
results.firstMs = await desk.textContent('[data-testid="first-ms"]');
results.backend = await desk.textContent('[data-testid="backend"]');
results.notice = await desk.textContent('[data-testid="notice"]').catch(() => null);
const adapter = await desk.evaluate(async () => {
  if (!navigator.gpu) return 'none';
  const a = await navigator.gpu.requestAdapter();
  return a ? (a.info?.isFallbackAdapter || /swiftshader/i.test(a.info?.architecture ?? '') ? 'software' : 'hardware') : 'none';
});
results.adapter = adapter;
if (adapter === 'software') {
  await check(!/WebGPU/.test(results.backend), `a software WebGPU adapter was chosen by default (${results.backend})`, desk);
  await check(/software/.test(results.notice ?? ''), 'no notice says why the CPU was chosen', desk);
}
await desk.screenshot({ path: path.join(outDir, 'desktop-first-visit.png') });
results.toggle0 = await toggleLatency(desk, 'temperature');
// A defense that pushes (almost) every score past the naive threshold is not called protection.
await desk.click('[data-testid="toggle-temperature"]');
await desk.waitForSelector('[data-testid="naive-warning"]', { timeout: 30_000 })
  .catch(() => fail('no warning when the naive threshold flags (almost) nothing after a defense', desk));
await desk.click('[data-testid="naive-warning"] button');
await desk.waitForFunction(() => !document.querySelector('[data-testid="naive-warning"]') && document.querySelector('[data-testid="attacker-adaptive"]').checked, null, { timeout: 30_000 })
  .catch(() => fail('the warning\'s button did not switch to the adaptive attacker', desk));
results.adaptiveAfterTemperature = await desk.textContent('[data-testid="attack-confidence"] .readout');
await desk.click('[data-testid="attacker-naive"]');
await desk.click('[data-testid="toggle-temperature"]');
await desk.waitForSelector('[data-testid="naive-warning"]', { state: 'detached', timeout: 30_000 });

// 2. A student's own file: a verdict with its false-positive rate, never "member".
await desk.setInputFiles('[data-testid="upload-input"]', fixture('pattern.png'));
await desk.waitForSelector('[data-testid="upload-summary"]', { timeout: 60_000 }).catch(() => fail('no verdict for an upload', desk));
const summary = await desk.textContent('[data-testid="upload-summary"]');
await check(/^not one of the model's training images/.test(summary), `the verdict of a student's file does not say it is not one of the model's training images: ${summary}`, desk);
await desk.click('[data-testid="upload-result"] summary');
const fprLines = await desk.$$eval('[data-testid="verdict-fpr"]', (els) => els.map((e) => e.textContent));
await check(fprLines.length >= 3 && fprLines.every((t) => /flags \d+\.\d % of the \d+ images the model never saw/.test(t)),
  `verdicts without their false-positive rate: ${JSON.stringify(fprLines)}`, desk);
results.fileVerdict = { summary, fpr: fprLines[0] };

// 3. Fifty reference non-members uploaded as PNG files.
const refFile = path.join(here, '..', '..', 'pretrained');
const nonMembers = readReference(refFile).member.flatMap((m, i) => (m ? [] : [i])).slice(0, 50);
const files = writeReferencePngs(refFile, nonMembers, path.join(outDir, 'reference-png'));
await desk.setInputFiles('[data-testid="upload-input"]', files.map((f) => f.file));
await desk.waitForFunction(() => document.querySelectorAll('[data-testid="upload-summary"]').length === 51, null, { timeout: 120_000 })
  .catch(() => fail('fifty uploads did not all get a verdict', desk));
const confidenceVerdicts = async () => desk.$$eval('[data-testid="upload-result"]', (rows) => rows.slice(1).map((r) => {
  const li = [...r.querySelectorAll('[data-testid="verdict"]')].find((l) => l.textContent.startsWith('confidence'));
  const m = li.textContent.match(/→ (flagged|not flagged)\..*flags (\d+\.\d) % of the/);
  return { flagged: m[1] === 'flagged', statedFpr: parseFloat(m[2]) };
}));
let v = await confidenceVerdicts();
const flaggedShare = (xs) => 100 * xs.filter((x) => x.flagged).length / xs.length;
results.predictedLabel = { uploads: v.length, flaggedPct: flaggedShare(v), statedFprPct: v[0].statedFpr };
// The same images with their true labels: the card's score, so the card's rate.
// (The pickers sit in folded details; set them as a student's change would.)
// Rows appear in the order the files finished decoding: match them by name.
const labelOf = Object.fromEntries(files.map((f) => [path.basename(f.file), f.label]));
await desk.$$eval('[data-testid="upload-result"]', (rows, labels) => rows.forEach((row) => {
  const name = row.querySelector('.upload-name').textContent;
  const el = row.querySelector('[data-testid="upload-label"]');
  if (!(name in labels)) return;
  el.value = String(labels[name]);
  el.dispatchEvent(new Event('change', { bubbles: true }));
}), labelOf);
await desk.waitForTimeout(500);
v = await confidenceVerdicts();
const cardFpr = parseFloat((await desk.textContent('[data-testid="attack-confidence"] .readout')).match(/FPR (\d+\.\d)%/)[1]);
results.trueLabel = { uploads: v.length, flaggedPct: flaggedShare(v), statedFprPct: v[0].statedFpr, cardFprPct: cardFpr };
await check(Math.abs(v[0].statedFpr - cardFpr) < 0.051, `with the true label the stated FPR ${v[0].statedFpr}% is not the card's ${cardFpr}%`, desk);
await check(Math.abs(flaggedShare(v) - cardFpr) < 20, `the uploads flagged ${flaggedShare(v)}% against a stated ${cardFpr}%`, desk);
await desk.screenshot({ path: path.join(outDir, 'desktop-after-uploads.png') });

// 4. A defense toggle with 51 uploads on the page.
results.toggle51 = await toggleLatency(desk, 'temperature');
for (const t of [results.toggle0, results.toggle51]) {
  await check(t.longestTaskMs < 200, `a defense toggle blocked the page for ${t.longestTaskMs} ms`, desk);
}
const panelHeight = await desk.$eval('#uploads', (e) => e.getBoundingClientRect().height);
results.uploadPanelPx = Math.round(panelHeight);
await check(panelHeight < 1500, `the uploads panel is ${panelHeight} px tall with 51 uploads`, desk);

// 5. Remove one, then all.
await desk.click('[data-testid="upload-remove"]');
await desk.waitForFunction(() => document.querySelectorAll('[data-testid="upload-result"]').length === 50);
await desk.click('[data-testid="uploads-clear"]');
await desk.waitForFunction(() => document.querySelectorAll('[data-testid="upload-result"]').length === 0)
  .catch(() => fail('"remove all" left uploads', desk));

// 6. A phone.
const { page: phone } = await open({ width: 390, height: 844 });
const layout = await phone.evaluate(() => {
  const texts = [...document.querySelectorAll('svg.chart text')].map((t) => t.getBoundingClientRect().height).filter((h) => h > 0);
  return {
    scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
    chartTextPx: Math.min(...texts), firstChartTop: document.querySelector('svg.chart').getBoundingClientRect().top + window.scrollY,
  };
});
results.phone = layout;
await check(layout.scrollWidth <= layout.width, `the 390-px page scrolls sideways (${layout.scrollWidth} px wide)`, phone);
await check(layout.chartTextPx >= 9, `chart text is ${layout.chartTextPx} px on a phone`, phone);
await check(layout.firstChartTop < 900, `the first chart starts ${layout.firstChartTop} px down`, phone);
await phone.screenshot({ path: path.join(outDir, 'phone-first-visit.png') });
await phone.click('[data-testid="controls-toggle"]');
await phone.setInputFiles('[data-testid="upload-input"]', fixture('pattern.png'));
await phone.waitForSelector('[data-testid="upload-summary"]', { timeout: 60_000 });
await phone.screenshot({ path: path.join(outDir, 'phone-after-upload.png') });
await phone.click('[data-testid="controls-toggle"]');
await phone.screenshot({ path: path.join(outDir, 'phone-charts-with-upload.png'), fullPage: true });
const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
await check(wide <= 390, `after an upload the phone page is ${wide} px wide`, phone);

// 7. The tour from a teacher's link.
const { page: tour } = await open({ width: 1200, height: 900 }, '?tour');
await tour.waitForSelector('[data-testid="tour"]', { timeout: 10_000 }).catch(() => fail('?tour did not open the tour', tour));
let steps = 0;
while (await tour.$('[data-testid="tour"]')) {
  if (steps === 2) await tour.screenshot({ path: path.join(outDir, 'tour-step-3.png') });
  await tour.click('[data-testid="tour-next"]');
  steps += 1;
  await check(steps <= 10, 'the tour does not end', tour);
}
results.tourSteps = steps;

// 8. One corrupt model: the others keep working and the student reads what to do.
const bctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const broken = await bctx.newPage();
await broken.goto(`${brokenUrl}/`);
await broken.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 }).catch(() => fail('the default model did not load beside a corrupt one', broken));
await broken.selectOption('[data-testid="model-select"]', 'relaxloss');
await broken.waitForSelector('[data-testid="model-error"]', { timeout: 60_000 }).catch(() => fail('no message for the corrupt model', broken));
results.brokenMessage = await broken.textContent('[data-testid="model-error"]');
await check(/damaged/.test(results.brokenMessage) && !/sha|SHA-256/.test(results.brokenMessage), `the corrupt-model message is not for a student: ${results.brokenMessage}`, broken);
await broken.screenshot({ path: path.join(outDir, 'corrupt-model.png') });
await broken.selectOption('[data-testid="model-select"]', 'label-smoothing');
await broken.waitForSelector('[data-testid="auc-loss"]', { timeout: 120_000 }).catch(() => fail('another model did not load after the corrupt one', broken));

// 9. The page's two builds: every first visit loads the CPU page (no WebGPU engine fetched).
// Where the browser has a hardware adapter (faked here: this machine's WebGPU is software)
// the page offers WebGPU; picking it reloads as the WebGPU page with the work kept, and later
// visits start there until the CPU is picked again.
const built = (p) => p.evaluate(() => performance.getEntriesByType('resource')
  .map((e) => e.name.split('/').pop()).filter((n) => n.endsWith('_bg.wasm')));
const CPU_ONLY = '["mia-web-cpu_bg.wasm"]';
results.firstBuild = await built(desk);
await check(JSON.stringify(results.firstBuild) === CPU_ONLY, `the first visit fetched ${results.firstBuild}`, desk);
const gpuCtx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
await gpuCtx.addInitScript(() => {
  if (!navigator.gpu) return;
  const ask = navigator.gpu.requestAdapter.bind(navigator.gpu);
  navigator.gpu.requestAdapter = async (options) => {
    const a = await ask(options);
    if (a) {
      const info = { vendor: 'test', architecture: 'test-gpu', device: '', description: 'a hardware adapter (teach.mjs)', isFallbackAdapter: false };
      Object.defineProperty(a, 'info', { value: info });
      Object.defineProperty(a, 'isFallbackAdapter', { value: false });
    }
    return a;
  };
});
const gpu = await gpuCtx.newPage();
gpu.on('request', (r) => requests.push(r.url()));
const visit = async (what, query = '') => {
  await gpu.goto(`${url}/${query}`);
  await gpu.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 }).catch(() => fail(`no distributions: ${what}`, gpu));
  return { build: await built(gpu), backend: await gpu.textContent('[data-testid="backend"]') };
};
results.gpuFirst = await visit('a first visit with a hardware adapter');
results.gpuOffer = await gpu.textContent('[data-testid="notice"]').catch(() => '');
await check(JSON.stringify(results.gpuFirst.build) === CPU_ONLY && !/WebGPU/.test(results.gpuFirst.backend),
  `a first visit with a hardware adapter: ${JSON.stringify(results.gpuFirst)}`, gpu);
await check(/pick WebGPU/.test(results.gpuOffer), `no offer of WebGPU: ${results.gpuOffer}`, gpu);
await gpu.selectOption('[data-testid="model-select"]', 'label-smoothing');
await gpu.waitForSelector('[data-testid="auc-loss"]', { timeout: 120_000 });
await gpu.waitForTimeout(800); // the view is kept 0.3 s after a change
await Promise.all([
  gpu.waitForURL(/backend=webgpu/, { timeout: 30_000 }),
  gpu.selectOption('[data-testid="backend-select"]', 'webgpu'),
]).catch(() => fail('picking WebGPU in the CPU page did not load the WebGPU page', gpu));
await gpu.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail('the WebGPU page showed no distributions', gpu));
results.switchedBackend = await gpu.textContent('[data-testid="backend"]');
results.switchedBuild = await built(gpu);
results.switchedModel = await gpu.inputValue('[data-testid="model-select"]');
await check(/WebGPU/.test(results.switchedBackend) && results.switchedBuild.includes('mia-web_bg.wasm'),
  `after picking WebGPU: ${results.switchedBackend}, ${results.switchedBuild}`, gpu);
await check(results.switchedModel === 'label-smoothing', `the model was not kept across the switch: ${results.switchedModel}`, gpu);
results.gpuLater = await visit('a later visit after picking WebGPU');
await check(JSON.stringify(results.gpuLater.build) === '["mia-web_bg.wasm"]' && /WebGPU/.test(results.gpuLater.backend),
  `a later visit after picking WebGPU: ${JSON.stringify(results.gpuLater)}`, gpu);
await gpu.selectOption('[data-testid="backend-select"]', 'flex');
await gpu.waitForSelector('[data-testid="auc-loss"]', { timeout: 120_000 });
results.gpuBack = await visit('a visit after picking the CPU again');
await check(JSON.stringify(results.gpuBack.build) === CPU_ONLY, `a visit after picking the CPU again: ${JSON.stringify(results.gpuBack)}`, gpu);
await gpuCtx.close();
// A kept pick of WebGPU in a browser where WebGPU is gone (no navigator.gpu) or fails (no
// adapter for the page's engine): that visit runs on the CPU, and the next one loads the CPU
// page again.
async function keptPickWithout(how) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await ctx.addInitScript((mode) => {
    if (mode === 'gone') {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    } else if (navigator.gpu) {
      navigator.gpu.requestAdapter = async () => null;
    }
    if (!sessionStorage.getItem('teach-seeded')) {
      sessionStorage.setItem('teach-seeded', '1');
      localStorage.setItem('mia-lab-build', 'webgpu');
    }
  }, how);
  const p = await ctx.newPage();
  p.on('request', (r) => requests.push(r.url()));
  const visitOnce = async (what) => {
    await p.goto(`${url}/`);
    await p.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 }).catch(() => fail(`no distributions: ${what}`, p));
    return { build: await built(p), backend: await p.textContent('[data-testid="backend"]') };
  };
  const kept = await visitOnce(`a kept WebGPU pick, WebGPU ${how}`);
  await check(JSON.stringify(kept.build) === '["mia-web_bg.wasm"]' && !/WebGPU/.test(kept.backend),
    `a kept WebGPU pick, WebGPU ${how}: ${JSON.stringify(kept)}`, p);
  const next = await visitOnce(`the visit after a kept pick, WebGPU ${how}`);
  await check(JSON.stringify(next.build) === CPU_ONLY, `the visit after a kept pick, WebGPU ${how}: ${JSON.stringify(next)}`, p);
  await ctx.close();
  return { kept, next };
}
results.keptPickGone = await keptPickWithout('gone');
results.keptPickFailing = await keptPickWithout('failing');

const foreign = requests.filter((r) => !r.startsWith(origin) && !r.startsWith(new URL(brokenUrl).origin) && !r.startsWith('data:') && !r.startsWith('blob:'));
await check(foreign.length === 0, `requests left the page's origin: ${foreign.join(', ')}`);
await browser.close();
console.log(JSON.stringify(results));
