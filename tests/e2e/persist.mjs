// Real-browser test that nothing is lost: node persist.mjs URL OUT_DIR
// - Explore ↔ Lab switch inside the page (no reload: a marker on `window` survives; the URL
//   changes; the back button returns), each view keeping its state;
// - a reload restores the lab (images, roles, the run's results with the same numbers, the
//   comparison table) and the explore view (an upload, a reference example, a defense);
// - an exported lab carries the results and the table into a fresh browser;
// - leaving during a run asks first; leaving with everything kept does not;
// - "clear everything" empties both views, also after a reload;
// - a browser whose storage is full says so (and how to keep the work), and the lab still runs.
// Prints one JSON line; screenshots to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [url, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const fixture = (n) => path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', n);
const results = {};
const browser = await chromium.launch(launchOptions);
let current;
const fail = async (msg) => {
  console.error(`FAIL [persist]: ${msg}\nso far: ${JSON.stringify(results)}`);
  if (current) await current.screenshot({ path: path.join(outDir, 'persist-failed.png'), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};
const check = (ok, msg) => (ok ? Promise.resolve() : fail(msg));

const context = await browser.newContext({ viewport: { width: 1300, height: 1000 }, acceptDownloads: true });
const page = await context.newPage();
current = page;
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
// A change is written 0.3 s after it: wait past that, then for "kept".
const kept = async () => {
  await page.waitForTimeout(800);
  await page.waitForSelector('[data-testid="saved"][data-state="saved"]', { timeout: 30_000 })
    .catch(() => fail('the work was not reported kept in the browser'));
};
const train = async (p = page) => {
  await p.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 })
    .catch(() => fail('the train button stayed disabled'));
  const before = await p.$$eval('[data-testid^="lab-compare-row-"]', (e) => e.length);
  await p.click('[data-testid="lab-train"]');
  await p.waitForFunction((b) => document.querySelectorAll('[data-testid^="lab-compare-row-"]').length > b, before, { timeout: 300_000 })
    .catch(() => fail('the run did not finish'));
};
const lira = (p = page) => p.$eval('[data-testid="lab-interval-lira-online"]', (e) => e.dataset.mean).catch(() => null);
const labState = async (p = page) => ({
  thumbs: await p.$$eval('[data-testid="lab-view"] [data-testid="lab-thumb"]', (e) => e.map((x) => x.dataset.member).join('')),
  names: await p.$$eval('[data-testid^="lab-class-name-"]', (e) => e.map((x) => x.value)),
  lira: await lira(p),
  summary: await p.$eval('[data-testid="lab-summary"]', (e) => e.textContent).catch(() => null),
  rows: await p.$$eval('[data-testid^="lab-compare-row-"]', (e) => e.length),
});

// A lab with one run.
await page.goto(`${url}/?view=lab&backend=flex`);
await page.waitForSelector('[data-testid="lab-sample"]', { timeout: 120_000 }).catch(() => fail('no lab view'));
await page.click('[data-testid="lab-sample"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 60_000 })
  .catch(() => fail('the sample did not fill three classes of 20'));
await page.fill('[data-testid="lab-shadows"]', '8');
await page.dispatchEvent('[data-testid="lab-shadows"]', 'change');
await page.fill('[data-testid="lab-class-name-0"]', 'kittens');
await page.dispatchEvent('[data-testid="lab-class-name-0"]', 'input');
await train();
await kept();
const before = await labState();
await check(before.lira && before.rows === 1 && before.names[0] === 'kittens', `after the run: ${JSON.stringify(before)}`);

// Switch to Explore and back inside the page.
await page.evaluate(() => { window.__stayed = true; });
let t0 = Date.now();
await page.click('[data-testid="nav-explore"]');
await page.waitForSelector('[data-testid="explore-view"]:not([hidden])', { timeout: 10_000 }).catch(() => fail('explore did not show'));
results.switch_ms = Date.now() - t0;
await check(!page.url().includes('view=lab'), `the URL still says lab: ${page.url()}`);
await check(await page.$eval('[data-testid="lab-view"]', (e) => e.hidden), 'the lab stayed visible in explore');
await page.waitForSelector('[data-testid="thumb-0"], [data-testid^="thumb-"]', { timeout: 60_000 });
await page.click('[data-testid^="thumb-"]');
await page.setInputFiles('[data-testid="upload-input"]', fixture('pattern.png'));
await page.check('[data-testid="toggle-temperature"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="upload-result"]').length === 2, null, { timeout: 60_000 })
  .catch(() => fail('the two uploads did not show'));
await kept();
const explore = page.url();
await check(explore.includes('temperature'), `the defense is not in the URL: ${explore}`);
t0 = Date.now();
await page.click('[data-testid="nav-lab"]');
await page.waitForSelector('[data-testid="lab-view"]:not([hidden])', { timeout: 10_000 }).catch(() => fail('the lab did not show'));
results.switch_back_ms = Date.now() - t0;
await check(await page.evaluate(() => window.__stayed === true), 'switching reloaded the page');
await check(page.url().includes('view=lab'), `the URL does not say lab: ${page.url()}`);
const switched = await labState();
await check(JSON.stringify(switched) === JSON.stringify(before), `the lab changed across a switch: ${JSON.stringify(switched)}`);
await page.goBack();
await page.waitForSelector('[data-testid="explore-view"]:not([hidden])', { timeout: 10_000 }).catch(() => fail('back did not return to explore'));
await check(await page.evaluate(() => window.__stayed === true), 'back reloaded the page');
await page.goForward();
await page.waitForSelector('[data-testid="lab-view"]:not([hidden])', { timeout: 10_000 }).catch(() => fail('forward did not return to the lab'));

// A reload brings everything back.
t0 = Date.now();
await page.reload();
await page.waitForSelector('[data-testid="lab-interval-lira-online"]', { timeout: 120_000 }).catch(() => fail('the results did not come back after a reload'));
results.restore_ms = Date.now() - t0;
const reloaded = await labState();
await check(JSON.stringify(reloaded) === JSON.stringify(before), `the lab changed across a reload: ${JSON.stringify(reloaded)} vs ${JSON.stringify(before)}`);
await page.screenshot({ path: path.join(outDir, 'persist-reloaded-lab.png'), fullPage: true });
await page.click('[data-testid="nav-explore"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="upload-result"]').length === 2, null, { timeout: 60_000 })
  .catch(() => fail('the uploads did not come back after a reload'));
await check(await page.isChecked('[data-testid="toggle-temperature"]'), 'the defense did not come back after a reload');
await page.click('[data-testid="nav-lab"]');

// Export carries the results and the table into a fresh browser.
const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="lab-export"]')]);
const file = path.join(outDir, 'persist-lab.json');
await download.saveAs(file);
const exported = JSON.parse(fs.readFileSync(file, 'utf8'));
await check(exported.result && exported.history?.length === 1 && exported.network, 'the export lacks the run, the table or the network');
const other = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
current = other;
await other.goto(`${url}/?view=lab&backend=flex`);
await other.waitForSelector('[data-testid="lab-import"]', { timeout: 120_000 });
await other.setInputFiles('[data-testid="lab-import"]', file);
await other.waitForSelector('[data-testid="lab-interval-lira-online"]', { timeout: 60_000 }).catch(() => fail('the imported lab shows no results'));
const imported = await labState(other);
await check(JSON.stringify(imported) === JSON.stringify(before), `the imported lab differs: ${JSON.stringify(imported)}`);
await other.close();
current = page;

// Leaving: no question when everything is kept, a question during a run (navigating away
// shows Chromium's beforeunload dialog; closing a headless page does not).
const leave = async (p) => {
  let asked = null;
  p.on('dialog', (d) => { asked = d.type(); d.dismiss().catch(() => {}); });
  await Promise.race([p.goto('about:blank').catch(() => {}), new Promise((r) => setTimeout(r, 8000))]);
  await new Promise((r) => setTimeout(r, 500));
  return asked;
};
const leaving = await context.newPage();
current = leaving;
await leaving.goto(`${url}/?view=lab&backend=flex`);
await leaving.waitForSelector('[data-testid="lab-interval-lira-online"]', { timeout: 120_000 }).catch(() => fail('a second tab did not restore the lab'));
await leaving.click('[data-testid="lab-redraw"]'); // a click: Chromium asks only pages the user touched
// The change is written 0.3 s after it: wait past that before reading "kept".
await leaving.waitForTimeout(800);
await leaving.waitForSelector('[data-testid="saved"][data-state="saved"]', { timeout: 30_000 });
const kept_asked = await leave(leaving);
await check(kept_asked === null, `asked before leaving with everything kept (${kept_asked})`);
await leaving.close();
const running = await context.newPage();
current = running;
await running.goto(`${url}/?view=lab&backend=flex`);
await running.waitForSelector('[data-testid="lab-interval-lira-online"]', { timeout: 120_000 });
await running.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 });
// A run long enough (65 models × 500 epochs: tens of seconds) to still be training when the
// page is left.
for (const [id, v] of [['lab-shadows', 64], ['lab-epochs', 500]]) {
  await running.fill(`[data-testid="${id}"]`, String(v));
  await running.dispatchEvent(`[data-testid="${id}"]`, 'change');
}
await running.click('[data-testid="lab-train"]');
await running.waitForSelector('[data-testid="lab-progress"]', { timeout: 30_000 });
results.leave_prompt = await leave(running);
results.still_training = await running.$('[data-testid="lab-progress"]').then((e) => e !== null).catch(() => false);
await check(results.leave_prompt === 'beforeunload', `no question before leaving during a run (${results.leave_prompt})`);
await running.close().catch(() => {});
current = page;

// Clear everything.
page.once('dialog', (d) => d.accept());
await page.click('[data-testid="clear-everything"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 0, null, { timeout: 10_000 })
  .catch(() => fail('clear everything left images'));
await check((await labState()).rows === 0, 'clear everything left the table');
await kept();
await page.reload();
await page.waitForSelector('[data-testid="lab-sample"]', { timeout: 120_000 });
await page.waitForSelector('[data-testid="saved"][data-state="saved"]', { timeout: 30_000 });
const cleared = await labState();
await check(cleared.thumbs === '' && cleared.rows === 0, `cleared work came back: ${JSON.stringify(cleared)}`);
await page.click('[data-testid="nav-explore"]');
await check((await page.$$('[data-testid="upload-result"]')).length === 0, 'cleared uploads came back');
await check(!(await page.isChecked('[data-testid="toggle-temperature"]')), 'a cleared defense came back');

// A full storage is reported, and the lab keeps working.
const full = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
const small = await full.newPage();
current = small;
const cdp = await full.newCDPSession(small);
await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(url).origin, quotaSize: 100_000 });
await small.goto(`${url}/?view=lab&backend=flex`);
await small.waitForSelector('[data-testid="lab-sample"]', { timeout: 120_000 });
await small.click('[data-testid="lab-sample"]');
await small.waitForSelector('[data-testid="saved"][data-state="failed"]', { timeout: 30_000 })
  .catch(() => fail('a full storage was not reported'));
results.full_storage = await small.textContent('[data-testid="saved"]');
await check(/full/.test(results.full_storage) && /Export/.test(results.full_storage), `the message says neither why nor what to do: ${results.full_storage}`);
await small.screenshot({ path: path.join(outDir, 'persist-storage-full.png') });
await small.fill('[data-testid="lab-shadows"]', '6');
await small.dispatchEvent('[data-testid="lab-shadows"]', 'change');
await train(small);
await full.close();

await check(errors.length === 0, `page errors: ${errors.join('; ')}`);
results.lira = before.lira;
console.log(JSON.stringify(results));
await browser.close();
