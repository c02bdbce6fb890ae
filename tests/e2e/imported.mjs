// A paper's PyTorch model on its companion site: the site built from a bundle that
// `mia import` + `mia export --model` made from PyTorch's own weights and outputs
// (tests/fixtures/pytorch/paper, written by bench/pytorch_paper.py --fixtures). The page
// recomputes every attack's AUC from the imported weights in the browser; each must equal the
// AUC measured natively from PyTorch's logits (the manifest's reference_auc) to the three
// decimals shown. The about panel must say where the model came from. Usage:
//   node imported.mjs URL OUT_DIR
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const fail = (msg) => {
  console.error(`FAIL [imported]: ${msg}`);
  process.exit(1);
};

const browser = await chromium.launch(launchOptions);
const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
await page.goto(`${url}/?backend=flex`);
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 }).catch(async () => {
  await page.screenshot({ path: path.join(outDir, 'failed.png'), fullPage: true });
  const status = await page.textContent('[data-testid="status"]').catch(() => '?');
  fail(`no distributions within 240 s (status: ${status}; errors: ${errors.join(' | ')})`);
});

const manifest = await (await fetch(`${url}/pretrained/manifest.json`)).json();
const model = manifest.models[0];
const aucs = {};
for (const a of model.attacks.filter((a) => typeof a.reference_auc === 'number')) {
  const el = await page.$(`[data-testid="auc-${a.name}"]`);
  if (!el) fail(`no AUC shown for ${a.name}`);
  const shown = parseFloat(await el.textContent());
  aucs[a.name] = { page: shown, native: a.reference_auc };
  // Shown to three decimals: equal means within half the last digit (f32 weights).
  if (Math.abs(shown - a.reference_auc) > 0.0005 + 1e-9) {
    fail(`${a.name}: AUC ${shown} in the page, ${a.reference_auc} natively from PyTorch's logits`);
  }
}
if (Object.keys(aucs).length !== 4) fail(`expected the page's four attacks, got ${Object.keys(aucs)}`);

await page.click('[data-testid="about"] summary');
const about = await page.textContent('[data-testid="about"]');
if (!about.includes('imported from target.safetensors')) fail(`the about panel does not say where the model came from: ${about}`);
if (!about.includes('PyTorch')) fail(`the about panel lacks the provenance: ${about}`);
await page.screenshot({ path: path.join(outDir, 'imported.png'), fullPage: true });
if (errors.length) fail(`page errors: ${errors.join(' | ')}`);
await browser.close();
console.log(JSON.stringify({ model: model.id, label: model.label, aucs }));
