// Lab-mode benchmark: in headless Chromium, a lab of 2 classes × 50 CIFAR-10
// images (the reference sample's non-members of `automobile` and `ship`, so the shipped trunk
// never trained on them) is trained and attacked with the default recipe (linear head, 60
// epochs, 32 shadow heads) under each defense, then with early stopping (patience 5) and
// with the whole network fine-tuned (the page's fine-tuning defaults: 10 epochs, learning
// rate 0.01; 32 shadows as the other rows), on the CPU path and the WebGPU path.
//   node tests/e2e/labbench.mjs URL OUT.json [BACKENDS]   (from the repository root; URL serves
//   a build of the page; BACKENDS defaults to flex,webgpu)
// Prints a table of wall time (features + 33 heads + every attack) and the AUCs. The first run
// starts after the page's warm-up of its trainer on the CPU path, as a student's does.
// LAB_FINE_TUNE_SHADOWS (default 32) sets the fine-tuned row's shadows; LAB_ROWS (e.g.
// "erm,erm + fine-tune") keeps only the rows named.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import { readReference, writeReferencePngs } from './refpng.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, out, backends = 'flex,webgpu'] = process.argv.slice(2);
const ref = 'pretrained';
const r = readReference(ref);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mia-lab-bench-'));
const pick = (cls) => r.labels.flatMap((l, i) => (l === cls && !r.member[i] ? [i] : [])).slice(0, 50);
const files = [1, 8].map((cls) => writeReferencePngs(ref, pick(cls), dir).map((f) => f.file));
const runs = [
  ['erm', null], ['label-smoothing', '0.1'], ['relaxloss', '0.5'], ['dp-sgd', '1'], ['dp-sgd', '4'],
  ['erm', null, 'early'], ['erm', null, 'fine-tune'],
];
const only = process.env.LAB_ROWS?.split(',');
const label = ([defense, , option]) => (option ? `${defense} + ${option}` : defense);
const fineTuneShadows = process.env.LAB_FINE_TUNE_SHADOWS || '32';
const rows = [];
const browser = await chromium.launch(launchOptions);
for (const backend of backends.split(',')) {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  await page.goto(`${url}/?view=lab&backend=${backend}`);
  await page.waitForSelector('[data-testid="lab-files-0"]', { timeout: 120_000 });
  // One class at a time, so that the images (and so the member split) come in the same order
  // on every run.
  await page.setInputFiles('[data-testid="lab-files-0"]', files[0]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 50);
  await page.setInputFiles('[data-testid="lab-files-1"]', files[1]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 100);
  // A student picks photos for seconds: the first run comes after the page's warm-up of its
  // trainer (CPU path) as it does for them. A page without one goes on after 20 s.
  if (backend === 'flex') await page.waitForFunction(() => performance.getEntriesByName('mia-lab-warm-up-done').length > 0, null, { timeout: 20_000 }).catch(() => {});
  for (const [defense, strength, option] of runs.filter((r) => !only || only.includes(label(r)))) {
    await page.setChecked('[data-testid="lab-early"]', option === 'early');
    await page.setChecked('[data-testid="lab-fine-tune"]', option === 'fine-tune');
    if (option === 'fine-tune') {
      await page.fill('[data-testid="lab-shadows"]', fineTuneShadows);
      await page.dispatchEvent('[data-testid="lab-shadows"]', 'change');
    }
    await page.selectOption('[data-testid="lab-defense"]', defense);
    if (strength) {
      await page.fill('[data-testid="lab-strength"]', strength);
      await page.dispatchEvent('[data-testid="lab-strength"]', 'change');
    }
    const epsilon = await page.textContent('[data-testid="lab-epsilon"]').catch(() => null);
    await page.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 });
    const t0 = Date.now();
    await page.click('[data-testid="lab-train"]');
    await page.waitForSelector('[data-testid="lab-progress"]', { state: 'detached', timeout: 900_000 });
    await page.waitForSelector('[data-testid="lab-results"]', { timeout: 900_000 });
    const wallMs = Date.now() - t0;
    const summary = await page.textContent('[data-testid="lab-summary"]');
    const spent = await page.textContent('[data-testid="lab-spent"]').catch(() => '');
    const aucs = Object.fromEntries(await page.$$eval('[data-testid^="lab-auc-"]', (els) =>
      els.map((e) => [e.dataset.testid.replace('lab-auc-', ''), parseFloat(e.textContent)])));
    // Each attack's mean over the run's draws with its 95 % interval.
    const means = Object.fromEntries(await page.$$eval('[data-testid^="lab-interval-"]', (els) =>
      els.map((e) => [e.dataset.testid.replace('lab-interval-', ''), [+e.dataset.mean, +e.dataset.lo, +e.dataset.hi]])));
    const row = { backend, defense: option ? `${defense} + ${option}` : defense, strength, wallMs, summary, spent, epsilon, aucs, means };
    rows.push(row);
    console.error(JSON.stringify(row));
  }
  await page.screenshot({ path: out.replace(/\.json$/, `-${backend}.png`), fullPage: true });
  await page.close();
}
await browser.close();
fs.writeFileSync(out, JSON.stringify(rows, null, 1));
// AUCs: the mean over the run's draws (the student's own draw in brackets).
console.log('| path | defense | wall s | member / held-out acc. | ε | loss | LiRA on | LiRA off | RMIA |');
console.log('|---|---|---|---|---|---|---|---|---|');
const auc = (x, a) => `${x.means[a] ? x.means[a][0].toFixed(3) : '–'} (${x.aucs[a]})`;
for (const x of rows) {
  const acc = x.summary.match(/right on (\d+)% of its members and (\d+)%/);
  const eps = x.spent.match(/ε = (\d+\.\d+)/);
  console.log(`| ${x.backend} | ${x.defense}${x.strength ? ` ${x.strength}` : ''} | ${(x.wallMs / 1000).toFixed(1)} | ${acc[1]} % / ${acc[2]} % | ${eps ? eps[1] : '–'} | ${auc(x, 'loss')} | ${auc(x, 'lira-online')} | ${auc(x, 'lira-offline')} | ${auc(x, 'rmia-online')} |`);
}
