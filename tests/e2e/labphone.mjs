// Real-browser test of the lab on a phone and of the lab's tour: node labphone.mjs URL OUT_DIR
// - a prepared lab on a 390 × 844 phone: after a run the results are brought into view, their
//   heading is on screen, and nothing fixed covers them (screenshots of the lab after a run);
// - the lab's tour (`?view=lab&tour`): every step shows, those whose part of the page exists
//   outline it, and the last one closes the tour.
// Prints one JSON line; screenshots to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
const browser = await chromium.launch(launchOptions);
let current;
const fail = async (msg) => {
  console.error(`FAIL [lab on a phone]: ${msg}\nso far: ${JSON.stringify(results)}`);
  if (current) await current.screenshot({ path: path.join(outDir, 'labphone-failed.png'), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};

const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
current = phone;
await phone.goto(`${url}/?lab=labs/overfitting.json&backend=flex`);
await phone.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 120_000 })
  .catch(() => fail('the prepared lab did not open'));
await phone.screenshot({ path: path.join(outDir, 'labphone-before-run.png') });
await phone.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 });
await phone.tap('[data-testid="lab-train"]');
await phone.waitForSelector('[data-testid="lab-results"]', { timeout: 300_000 }).catch(() => fail('no results'));
await phone.waitForTimeout(500);
const view = await phone.evaluate(() => {
  const r = document.querySelector('[data-testid="lab-results"] h2').getBoundingClientRect();
  const x = r.left + Math.min(r.width, 120) / 2;
  const y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  const card = document.querySelector('[data-testid="lab-attack-lira-online"]').getBoundingClientRect();
  const covering = [...document.querySelectorAll('body *')].filter((e) => {
    const s = getComputedStyle(e);
    if (s.position !== 'fixed' || s.display === 'none' || s.visibility === 'hidden') return false;
    const b = e.getBoundingClientRect();
    return b.width > 0 && b.height > 0 && b.bottom > 0 && b.top < innerHeight;
  }).map((e) => e.className || e.tagName);
  return { top: r.top, inView: r.top >= -2 && r.bottom <= innerHeight, hitInside: !!hit?.closest('[data-testid="lab-results"]'),
    cardTop: card.top, covering, width: document.documentElement.scrollWidth };
});
results.phone = view;
await phone.screenshot({ path: path.join(outDir, 'labphone-after-run.png') });
await phone.screenshot({ path: path.join(outDir, 'labphone-after-run-full.png'), fullPage: true });
if (!view.inView || !view.hitInside) await fail(`the results are not in view after the run: ${JSON.stringify(view)}`);
if (view.covering.length) await fail(`fixed elements cover the results: ${view.covering.join(', ')}`);
if (view.width > 390 + 1) await fail(`the lab is wider than the phone: ${view.width} px`);

const desk = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
current = desk;
await desk.goto(`${url}/?view=lab&tour&backend=flex`);
await desk.waitForSelector('[data-testid="tour"]', { timeout: 120_000 }).catch(() => fail('?view=lab&tour opened no tour'));
// The tour opened before the lab had loaded: its first step finds the classes once they show.
await desk.waitForSelector('[data-testid="lab-class-0"].tour-target', { timeout: 120_000 })
  .catch(() => fail('the first step never outlined the first class'));
await desk.click('[data-testid="lab-sample"]');
// The page redraws the classes as they fill; the step keeps its outline on the first.
await desk.waitForSelector('[data-testid="lab-class-0"].tour-target', { timeout: 10_000 })
  .catch(() => fail('the first step lost its outline when the classes filled'));
const steps = [];
for (let i = 0; i < 20; i++) {
  const count = await desk.textContent('[data-testid="tour"] .tour-count');
  const title = await desk.textContent('[data-testid="tour"] h2');
  const outlined = await desk.$$eval('.tour-target', (e) => e.map((x) => x.dataset.testid || x.id));
  steps.push({ count, title, outlined });
  const next = await desk.textContent('[data-testid="tour-next"]');
  await desk.click('[data-testid="tour-next"]');
  if (next === 'done') break;
}
results.tour = steps;
if (steps.length < 5 || !/lab|class|roles/i.test(steps[0].title) || steps[0].outlined[0] !== 'lab-class-0') await fail(`the lab's tour is not the lab's: ${JSON.stringify(steps)}`);
if (steps.filter((s) => s.outlined.length === 1).length < 4 || steps.some((s) => s.outlined.length > 1)) await fail(`the lab's tour outlines too little or more than one part at a time: ${JSON.stringify(steps)}`);
if (await desk.$('[data-testid="tour"]')) await fail('the tour stayed open after "done"');
console.log(JSON.stringify(results));
await browser.close();
