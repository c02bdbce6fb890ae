// Browser inference benchmark: ms per image for the reference sample in the MIA Lab page
// (burn on flex, ndarray and WebGPU) and in TensorFlow.js (wasm, WebGPU, cpu) with the same
// weights, in one headless Chromium. Usage: node bench.mjs URL OUT.json
// The lab's number is its second inference (switching to the bundle's second model), so
// shader compilation and wasm start-up are excluded on both sides; TF.js runs one warm-up
// chunk first for the same reason. BENCH_ENGINES (e.g. "flex,tfjs-wasm") picks the engines and
// BENCH_REPEAT (default 1) measures each that many times, alternating, reporting every run.
// Engines: flex (the CPU page as shipped: helper threads), flex-1 (its own thread only),
// ndarray, webgpu; tfjs-wasm, tfjs-wasm-isolated (served with COOP/COEP), tfjs-webgpu, tfjs-cpu.
import { chromium } from 'playwright-core';
import { launchOptions } from '../../tests/e2e/chromium.mjs';
import fs from 'node:fs';

const [url, outFile] = process.argv.slice(2);
const browser = await chromium.launch(launchOptions);
const parse = (text) => {
  const m = /(\d+) images in ([\d.]+) ms/.exec(text || '');
  return m ? { images: Number(m[1]), ms: Number(m[2]) } : null;
};

const engines = (process.env.BENCH_ENGINES || 'flex,ndarray,webgpu,tfjs-wasm,tfjs-webgpu,tfjs-cpu').split(',');
const repeat = Number(process.env.BENCH_REPEAT || 1);
const rows = [];
for (let round = 0; round < repeat; round++) {
  for (const engine of ['flex', 'flex-1', 'ndarray', 'webgpu'].filter((b) => engines.includes(b))) {
    const page = await browser.newPage();
    // flex: the CPU page as shipped (its helper threads, one per core up to 4); flex-1: the
    // same page on its own thread only.
    const backend = engine === 'flex-1' ? 'flex' : engine;
    const label = engine === 'flex-1' ? 'flex, one thread' : backend;
    try {
      await page.goto(`${url}/?backend=${backend}${engine === 'flex-1' ? '&threads=1' : ''}`);
      await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 300_000 });
      const shown = await page.textContent('[data-testid="backend"]');
      const first = parse(await page.textContent('[data-testid="inference-ms"]'));
      const firstText = await page.textContent('[data-testid="inference-ms"]');
      const options = await page.$$eval('[data-testid="model-select"] option', (o) => o.map((x) => x.value));
      await page.selectOption('[data-testid="model-select"]', options[1]);
      await page.waitForFunction(
        (t) => { const e = document.querySelector('[data-testid="inference-ms"]'); return e && e.textContent !== t; },
        firstText, { timeout: 300_000 },
      );
      const steady = parse(await page.textContent('[data-testid="inference-ms"]'));
      const ok = backend !== 'webgpu' || /WebGPU/.test(shown);
      const threads = (/ on (\d+|one) threads?\)/.exec(await page.textContent('[data-testid="inference-ms"]')) || [])[1];
      rows.push({
        engine: `MIA Lab (burn ${label})`, shown, images: steady.images,
        msPerImage: ok ? steady.ms / steady.images : null, firstMsPerImage: first.ms / first.images,
        note: [ok ? '' : `asked for WebGPU, ran on ${shown}`, threads ? `${threads === 'one' ? 1 : threads} thread(s)` : ''].filter(Boolean).join('; '),
      });
    } catch (e) {
      rows.push({ engine: `MIA Lab (burn ${label})`, msPerImage: null, note: String(e).split('\n')[0] });
    }
    await page.close();
  }
  // tfjs-wasm-isolated: the wasm backend served cross-origin isolated (COOP/COEP, from
  // BENCH_ISOLATED_URL), where it may use its threaded build.
  for (const engine of ['wasm', 'wasm-isolated', 'webgpu', 'cpu'].filter((b) => engines.includes(`tfjs-${b}`))) {
    const page = await browser.newPage();
    const isolated = engine === 'wasm-isolated';
    const backend = isolated ? 'wasm' : engine;
    if (isolated && !process.env.BENCH_ISOLATED_URL) throw new Error('tfjs-wasm-isolated needs BENCH_ISOLATED_URL');
    await page.goto(`${isolated ? process.env.BENCH_ISOLATED_URL : url}/bench/page.html?backend=${backend}`);
    await page.waitForSelector('#result[data-done="1"]', { timeout: 300_000 });
    const r = JSON.parse(await page.textContent('#result'));
    const threads = r.threads ? `${r.threads} thread(s)${r.isolated ? ', cross-origin isolated' : ''}` : '';
    rows.push({
      engine: `TensorFlow.js 4.22 (${engine})`, images: r.images, msPerImage: r.msPerImage ?? null,
      warmUpMs: r.warmMs, maxAbsDiff: r.maxAbsDiff, note: [r.error, threads].filter(Boolean).join('; '),
    });
    await page.close();
  }
}
await browser.close();

const best = (prefix) => Math.min(...rows.filter((r) => r.engine.startsWith(prefix) && r.msPerImage).map((r) => r.msPerImage));
const tfBest = best('TensorFlow.js');
console.log('| engine | ms/image | vs fastest TF.js | note |\n|---|---|---|---|');
for (const r of rows) {
  const ratio = r.msPerImage && Number.isFinite(tfBest) ? `${(tfBest / r.msPerImage).toFixed(2)}×` : '';
  const diff = r.maxAbsDiff !== undefined ? `max |Δlogit| vs burn ${r.maxAbsDiff.toExponential(1)}` : '';
  console.log(`| ${r.engine} | ${r.msPerImage ? r.msPerImage.toFixed(3) : '—'} | ${ratio} | ${[diff, r.note].filter(Boolean).join('; ')} |`);
}
fs.writeFileSync(outFile, JSON.stringify(rows, null, 2));
