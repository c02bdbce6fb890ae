// Real-browser test that the shipped prepared labs teach what their worksheets say:
// node prepared.mjs URL OUT_DIR [SEEDS]
// Each lab (web/labs/*.json, worksheets in docs/teaching/) opens from its link
// (?lab=labs/NAME.json) in a fresh browser with its instructions beside it, and is run as the
// worksheet says: the recipe as shipped, then the worksheet's change, on the same images. That
// is repeated over SEEDS member splits (the lab's own split, then "re-draw members" once more
// each time; default 5), and the worksheet's conclusion is checked on every one: a worksheet
// whose lesson held once by luck fails here. Prints one JSON line with every run's numbers.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir, seedsArg] = process.argv.slice(2);
const SEEDS = Number(seedsArg || 5);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
const browser = await chromium.launch(launchOptions);
let current;
const fail = async (msg) => {
  console.error(`FAIL [prepared labs]: ${msg}\nso far: ${JSON.stringify(results)}`);
  if (current) await current.screenshot({ path: path.join(outDir, 'prepared-failed.png'), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};

const set = async (page, id, value) => {
  await page.fill(`[data-testid="${id}"]`, String(value));
  await page.dispatchEvent(`[data-testid="${id}"]`, 'change');
};

/// Trains once and reads every attack's mean AUC over the draws, the accuracies and ε.
async function run(page, label) {
  await page.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 })
    .catch(() => fail(`${label}: the train button stayed disabled`));
  const before = await page.$$eval('[data-testid^="lab-compare-row-"]', (e) => e.length);
  await page.click('[data-testid="lab-train"]');
  await page.waitForFunction((b) => document.querySelector('[data-testid="lab-error"]') ||
    document.querySelectorAll('[data-testid^="lab-compare-row-"]').length > b, before, { timeout: 300_000, polling: 100 });
  if (await page.$('[data-testid="lab-error"]')) await fail(`${label}: ${await page.textContent('[data-testid="lab-error"]')}`);
  const auc = Object.fromEntries(await page.$$eval('[data-testid^="lab-interval-"]', (els) =>
    els.map((e) => [e.dataset.testid.replace('lab-interval-', ''), +e.dataset.mean])));
  const summary = await page.textContent('[data-testid="lab-summary"]');
  const m = summary.match(/right on (\d+)% of its members and (\d+)% of the held-out/);
  if (!m) await fail(`${label}: no accuracies in "${summary}"`);
  const ms = +(await page.getAttribute('[data-testid="lab-summary"]', 'data-ms'));
  const spent = (await page.$eval('[data-testid="lab-spent"]', (e) => e.textContent).catch(() => '')).match(/spent ε = ([\d.]+)/);
  return { auc, members: +m[1], held_out: +m[2], ms, epsilon: spent ? +spent[1] : null };
}

// Each lab: the worksheet's change, and its conclusion as a check on the two runs.
const LABS = {
  overfitting: {
    change: async (page) => { await set(page, 'lab-hidden', 256); await set(page, 'lab-epochs', 200); },
    holds: (a, b) => b.members >= a.members && b.auc['lira-online'] > a.auc['lira-online'] + 0.05,
    says: 'the 256-unit head trained 200 epochs is right on at least as many members and online LiRA\'s mean AUC is more than 0.05 higher against it',
  },
  'dp-sgd': {
    change: async (page) => {
      await page.selectOption('[data-testid="lab-defense"]', 'dp-sgd');
      await set(page, 'lab-strength', 6);
    },
    holds: (a, b) => a.auc['lira-online'] - b.auc['lira-online'] > 0.2 &&
      Object.values(b.auc).every((x) => x < 0.65) && b.members <= a.members - 20 &&
      b.members - b.held_out < a.members - a.held_out && b.held_out <= a.held_out + 4,
    says: 'under DP-SGD (σ = 6) online LiRA falls by more than 0.2, every attack stays below 0.65, the model is right on at least 20 points fewer of its members, the gap between members and held-out images narrows, and held-out accuracy does not improve by more than one image',
  },
  backfire: {
    change: async (page) => {
      await page.selectOption('[data-testid="lab-defense"]', 'label-smoothing');
      await set(page, 'lab-strength', 0.1);
    },
    holds: (a, b) => b.auc['lira-online'] > a.auc['lira-online'] + 0.05 && b.auc.loss < a.auc.loss + 0.02,
    says: 'label smoothing raises online LiRA\'s mean AUC by more than 0.05 over plain training while the loss attack does not rise',
  },
};

// A link to a lab that is not there, or on another site: a message, and the lab still works.
for (const [lab, says] of [['labs/nope.json', /nope\.json.*404.*labs\/ folder/], ['https://example.org/x.json', /another site/]]) {
  const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
  const page = await context.newPage();
  current = page;
  await page.goto(`${url}/?lab=${encodeURIComponent(lab)}&backend=flex`);
  await page.waitForSelector('.messages', { timeout: 120_000 }).catch(() => fail(`?lab=${lab}: no message`));
  const text = await page.textContent('.messages');
  if (!says.test(text)) await fail(`?lab=${lab}: the message does not say why: ${text}`);
  await page.click('[data-testid="lab-sample"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 60_000 })
    .catch(() => fail(`?lab=${lab}: the lab stopped working`));
  results[lab] = text.trim().slice(0, 200);
  await context.close();
}

for (const [name, lab] of Object.entries(LABS)) {
  results[name] = [];
  for (let seed = 0; seed < SEEDS; seed++) {
    const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
    const page = await context.newPage();
    current = page;
    await page.goto(`${url}/?lab=labs/${name}.json&backend=flex`);
    await page.waitForSelector('[data-testid="lab-instructions"]', { timeout: 120_000 })
      .catch(() => fail(`${name}: the prepared lab did not open from its link`));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 60_000 })
      .catch(() => fail(`${name}: the prepared lab's 60 images did not show`));
    if (seed === 0) {
      const questions = await page.$$eval('[data-testid="lab-questions"] li', (e) => e.length);
      if (questions < 2) await fail(`${name}: the instructions ask ${questions} questions`);
      await page.screenshot({ path: path.join(outDir, `prepared-${name}.png`) });
    }
    for (let k = 0; k < seed; k++) await page.click('[data-testid="lab-redraw"]');
    const a = await run(page, `${name} seed ${seed}, as shipped`);
    await lab.change(page);
    const b = await run(page, `${name} seed ${seed}, changed`);
    results[name].push({ seed, shipped: a, changed: b });
    if (!lab.holds(a, b)) await fail(`${name}, split ${seed}: the worksheet says ${lab.says}; measured ${JSON.stringify({ a, b })}`);
    await context.close();
  }
}
console.log(JSON.stringify(results));
await browser.close();
