// Real-browser test that lab numbers can be trusted: node labtrust.mjs URL OUT_DIR BACKEND
// - the same 60 CIFAR-10 photos (the page's sample: three classes of 20) under three member
//   splits (re-draw): every attack's interval (each model of the run in turn as the target)
//   overlaps the other splits', and each split's mean lies inside the others' rerun ranges
//   (where another run on the same images lands: √2 times the interval of the mean, which a
//   calibrated interval of the mean holds another run's mean only ~83 % of the time; how often
//   it does here is printed);
// - the comparison table keeps every run: ERM, DP-SGD and label smoothing on the same split
//   are paired with the first run on it, DP-SGD's row states ε with its δ;
// - DP-SGD's ε comes with its δ and what it means, and a δ of at least 1/N is flagged;
// - label smoothing is marked as a defense that can backfire and shows its fingerprint.
// Prints one JSON line; screenshots to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir, backend] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const results = { backend };
const browser = await chromium.launch(launchOptions);
const fail = async (msg, page) => {
  console.error(`FAIL [lab trust, ${backend}]: ${msg}\nso far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, `labtrust-failed-${backend}.png`), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};
const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
await page.goto(`${url}/?view=lab&backend=${backend}`);
await page.waitForSelector('[data-testid="lab-sample"]', { timeout: 120_000 }).catch(() => fail('no lab view', page));
const set = async (id, value) => {
  await page.fill(`[data-testid="${id}"]`, String(value));
  await page.dispatchEvent(`[data-testid="${id}"]`, 'change');
};

async function train(label) {
  await page.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 })
    .catch(() => fail('the train button stayed disabled', page));
  const before = await page.$$eval('[data-testid^="lab-compare-row-"]', (e) => e.length);
  await page.click('[data-testid="lab-train"]');
  await page.waitForFunction((b) => document.querySelector('[data-testid="lab-error"]') ||
    document.querySelectorAll('[data-testid^="lab-compare-row-"]').length > b, before, { timeout: 540_000, polling: 100 });
  if (await page.$('[data-testid="lab-error"]')) await fail(`${label}: ${await page.textContent('[data-testid="lab-error"]')}`, page);
  const intervals = Object.fromEntries(await page.$$eval('[data-testid^="lab-interval-"]', (els) =>
    els.map((e) => [e.dataset.testid.replace('lab-interval-', ''),
      { mean: +e.dataset.mean, lo: +e.dataset.lo, hi: +e.dataset.hi, rerunLo: +e.dataset.rerunLo, rerunHi: +e.dataset.rerunHi }])));
  return { intervals, summary: await page.textContent('[data-testid="lab-summary"]') };
}

await page.click('[data-testid="lab-sample"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 60_000 })
  .catch(() => fail('the sample did not fill three classes of 20', page));
await set('lab-shadows', 16);

// Three member splits of the same photos.
const splits = [];
for (let k = 0; k < 3; k++) {
  if (k > 0) await page.click('[data-testid="lab-redraw"]');
  splits.push((await train(`ERM, split ${k + 1}`)).intervals);
}
results.splits = splits;
const attacks = Object.keys(splits[0]);
if (attacks.length !== 6) await fail(`${attacks.length} attacks show an interval, expected 6`, page);
let inside = 0;
for (const a of attacks) {
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      if (i === j) continue;
      const [x, y] = [splits[i][a], splits[j][a]];
      if (!(x.lo <= y.hi && y.lo <= x.hi)) await fail(`${a}: split ${i + 1}'s interval ${JSON.stringify(x)} misses split ${j + 1}'s ${JSON.stringify(y)}`, page);
      if (y.lo <= x.mean && x.mean <= y.hi) inside += 1;
      if (!(y.rerunLo <= x.mean && x.mean <= y.rerunHi)) await fail(`${a}: split ${i + 1}'s mean ${x.mean} lies outside split ${j + 1}'s rerun range ${y.rerunLo}–${y.rerunHi}`, page);
    }
  }
}
results.meansInsideOthersIntervals = `${inside} of ${attacks.length * 6}`;

// DP-SGD on the third split: ε with δ and its meaning before and after the run; δ ≥ 1/N flagged.
await page.selectOption('[data-testid="lab-defense"]', 'dp-sgd');
await set('lab-strength', 4);
await page.waitForSelector('[data-testid="lab-epsilon"]', { timeout: 10_000 }).catch(() => fail('no ε preview for DP-SGD', page));
const preview = await page.textContent('[data-testid="lab-epsilon"]');
if (!/at δ = 1e-5/.test(preview) || !/guarantee/.test(preview)) await fail(`the ε preview lacks δ or its meaning: ${preview}`, page);
await set('lab-delta', 0.1);
await page.waitForSelector('[data-testid="lab-delta-warning"]', { timeout: 10_000 }).catch(() => fail('δ = 0.1 ≥ 1/N is not flagged', page));
await set('lab-delta', 1e-5);
const planned = +(await page.$eval('[data-testid="lab-epsilon"]', (e) => e.dataset.epsilon));
await train('DP-SGD σ 4');
const spent = await page.textContent('[data-testid="lab-spent"]').catch(() => '');
const shown = parseFloat((spent.match(/ε = ([\d.]+)/) || [])[1]);
if (!(Math.abs(shown - planned) < 0.01)) await fail(`the run spent ε ${shown}, the preview said ${planned}: ${spent}`, page);
results.dp = { planned, spent };
await page.screenshot({ path: path.join(outDir, `labtrust-dp-${backend}.png`), fullPage: true });

// Label smoothing on the same split: marked as a defense that can help the attacker, and its
// fingerprint measured on the student's model after the run.
await page.selectOption('[data-testid="lab-defense"]', 'label-smoothing');
await page.waitForSelector('[data-testid="lab-backfires"]', { timeout: 10_000 }).catch(() => fail('label smoothing is not marked as a defense that can backfire', page));
await train('label smoothing');
const note = await page.textContent('[data-testid="lab-smoothing-note"]').catch(() => '');
if (!/fingerprint: \d+% of your members/.test(note)) await fail(`no fingerprint after a label-smoothing run: ${note}`, page);
results.smoothingNote = note.slice(0, 140);

// The comparison table: five runs; runs 4 and 5 paired with run 3 (the same split).
const rows = await page.$$eval('[data-testid^="lab-compare-row-"]', (els) => els.map((e) => e.textContent));
results.rows = rows;
if (rows.length !== 5) await fail(`${rows.length} rows in the comparison table, expected 5`, page);
if (!/dp-sgd|DP-SGD/.test(rows[3]) || !/at δ 1e-5/.test(rows[3])) await fail(`the DP-SGD row lacks ε with δ: ${rows[3]}`, page);
if (!/vs #3/.test(rows[3]) || !/vs #3/.test(rows[4])) await fail(`runs 4 and 5 are not paired with run 3: ${rows[3]} | ${rows[4]}`, page);
if (!/baseline/.test(rows[0]) || !/baseline/.test(rows[2])) await fail('each split\'s first run is its own baseline', page);
if (!(await page.$('[data-testid="lab-compare-chart"] circle'))) await fail('no privacy–utility chart', page);
await page.screenshot({ path: path.join(outDir, `labtrust-table-${backend}.png`), fullPage: true });
await browser.close();
console.log(JSON.stringify(results));
