// Developer tool: where the page spends its main-thread time. Samples it with Chromium's
// profiler (CDP) during one action and prints the functions with the most self time (wasm
// names come from a build that keeps the name section: the dev build, or wasm-bindgen run
// without --remove-name-section on the `web` profile's output).
//   node tests/e2e/profile.mjs URL [ACTION]    ACTION:
//     TOGGLE (default temperature)  3 s after clicking that defense's toggle
//     inference                     the reference sample through the bundle's second model
//     lab                           a head-only lab run on 2 × 50 reference non-members
// The toggle profile found the constructor re-run on every wasm export
// (crates/mia-web/src/main.rs); the inference profile, the CPU path's overheads
// (docs/benchmarks.md, "The CPU path against TensorFlow.js").
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import { readReference, writeReferencePngs } from './refpng.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, action = 'temperature'] = process.argv.slice(2);
const browser = await chromium.launch(launchOptions);
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const textChanges = (sel, before) => page.waitForFunction(
  ([s, b]) => { const e = document.querySelector(s); return e && e.textContent !== b; },
  [sel, before], { timeout: 300_000 },
);

// What to do before sampling starts, and the action itself.
let prepare = async () => {};
let act = async () => {
  await page.click(`[data-testid="toggle-${action}"]`);
  await page.waitForTimeout(3000);
};
if (action === 'inference') {
  act = async () => {
    const before = await page.textContent('[data-testid="inference-ms"]');
    const options = await page.$$eval('[data-testid="model-select"] option', (o) => o.map((x) => x.value));
    await page.selectOption('[data-testid="model-select"]', options[1]);
    await textChanges('[data-testid="inference-ms"]', before);
    console.log(await page.textContent('[data-testid="inference-ms"]'));
  };
} else if (action === 'lab') {
  prepare = async () => {
    const r = readReference('pretrained');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mia-lab-profile-'));
    const pick = (cls) => r.labels.flatMap((l, i) => (l === cls && !r.member[i] ? [i] : [])).slice(0, 50);
    await page.goto(`${url}/?view=lab&backend=flex`);
    await page.waitForSelector('[data-testid="lab-files-0"]', { timeout: 120_000 });
    for (const [k, cls] of [[0, 1], [1, 8]]) {
      await page.setInputFiles(`[data-testid="lab-files-${k}"]`, writeReferencePngs('pretrained', pick(cls), dir).map((f) => f.file));
    }
    await page.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 });
  };
  act = async () => {
    const t0 = Date.now();
    await page.click('[data-testid="lab-train"]');
    await page.waitForSelector('[data-testid="lab-results"]', { timeout: 300_000 });
    console.log(`lab run: ${Date.now() - t0} ms`);
  };
}

if (action === 'lab') {
  await prepare();
} else {
  await page.goto(`${url}/?backend=flex`);
  await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 });
}
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
await act();
const { profile } = await cdp.send('Profiler.stop');
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
profile.samples.forEach((id, i) => {
  const f = nodes.get(id).callFrame;
  const key = f.functionName || f.url || '(anonymous)';
  self.set(key, (self.get(key) || 0) + (profile.timeDeltas[i] || 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${(100 * us / total).toFixed(1).padStart(5)} %  ${name.slice(0, 150)}`);
}
await browser.close();
