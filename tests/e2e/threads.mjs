// The CPU path's helper threads (crates/mia-web/src/pool.rs, web/worker.js), in headless
// Chromium against the built site. Usage: node threads.mjs URL OUT_DIR
// - the CPU page splits the reference sample between one helper thread per core (up to four)
//   and says so;
// - its AUCs are those of the same page on its own thread (?threads=1), to the last digit shown;
// - where the helpers cannot start (worker.js missing on the host), the page computes on its
//   own thread, says so and why, with the same AUCs.
// Prints one JSON line; exits non-zero on any failed check.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';

const [url, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const fail = (msg) => {
  console.error(`FAIL [threads]: ${msg}`);
  process.exit(1);
};

const browser = await chromium.launch(launchOptions);

// Opens the CPU page (`query` added), waits for the distributions and reads what it shows.
async function visit(query, { blockWorker = false } = {}) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (blockWorker) await page.route('**/worker.js', (r) => r.fulfill({ status: 404, body: 'not here' }));
  await page.goto(`${url}/?backend=flex${query}`);
  await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
    .catch(() => fail(`no distributions within 240 s (${query || 'default'}; ${errors.join(' | ')})`));
  const timing = page.locator('[data-testid="inference-ms"]');
  const shown = {
    text: await timing.textContent(),
    why: await timing.getAttribute('title'),
    cores: await page.evaluate(() => navigator.hardwareConcurrency),
    aucs: await page.$$eval('[data-testid^="auc-"]', (els) => els.map((e) => `${e.dataset.testid} ${e.textContent}`)),
  };
  if (errors.length) fail(`page errors (${query || 'default'}): ${errors.join(' | ')}`);
  await page.close();
  return shown;
}

const helpers = await visit('');
const expected = Math.min(helpers.cores, 4);
if (expected >= 2 && !helpers.text.includes(`on ${expected} threads`)) {
  fail(`with ${helpers.cores} cores the page should run on ${expected} threads: "${helpers.text}"`);
}
if (helpers.aucs.length < 3) fail(`too few AUCs shown: ${helpers.aucs.join(', ')}`);

const alone = await visit('&threads=1');
if (!alone.text.includes('on one thread') || !(alone.why || '').includes('?threads=1')) {
  fail(`?threads=1 should run on one thread and say so: "${alone.text}" (${alone.why})`);
}
if (JSON.stringify(alone.aucs) !== JSON.stringify(helpers.aucs)) {
  fail(`AUCs differ between helper threads and one thread:\n${helpers.aucs}\n${alone.aucs}`);
}

const blocked = await visit('', { blockWorker: true });
if (!blocked.text.includes('on one thread') || !/worker|helper/i.test(blocked.why || '')) {
  fail(`without worker.js the page should say it runs on one thread and why: "${blocked.text}" (${blocked.why})`);
}
if (JSON.stringify(blocked.aucs) !== JSON.stringify(helpers.aucs)) {
  fail(`AUCs differ without worker.js:\n${helpers.aucs}\n${blocked.aucs}`);
}

await browser.close();
console.log(JSON.stringify({ cores: helpers.cores, helpers: helpers.text, alone: alone.text, blocked: [blocked.text, blocked.why], aucs: helpers.aucs.length }));
