// The CPU path's helper threads (crates/mia-web/src/pool.rs, web/worker.js), in headless
// Chromium against the built site. Usage: node threads.mjs URL OUT_DIR
// - the CPU page splits the reference sample between one helper thread per core (up to four)
//   and says so; the helpers start with the page, before the model's weights arrive;
// - what it shows (AUCs of the first model, of the second model after a switch, and the
//   readout with HAMP on, which reads the helpers' random-input outputs) is what the same page
//   shows on its own thread (?threads=1), to the last digit;
// - where the helpers cannot start (worker.js missing on the host, a device reporting one
//   core), the page computes on its own thread, says so and why, and shows the same.
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
const readout = '[data-testid="attack-confidence"] .readout';
const timing = '[data-testid="inference-ms"]';

// Waits for the text at `selector` to differ from `before`.
const changed = (page, selector, before, what) => page.waitForFunction(
  ([s, b]) => { const e = document.querySelector(s); return e && e.textContent !== b; },
  [selector, before], { timeout: 120_000 },
).catch(() => fail(`${what} did not change`));

// Opens the CPU page (`query` added), waits for the distributions and reads what it shows:
// the first model, the second model, then the second with HAMP on.
async function visit(query, { blockWorker = false, oneCore = false } = {}) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  if (blockWorker) await page.route('**/worker.js', (r) => r.fulfill({ status: 404, body: 'not here' }));
  if (oneCore) await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => 1 }));
  await page.goto(`${url}/?backend=flex${query}`);
  const label = `${query || 'default'}${blockWorker ? ', no worker.js' : ''}${oneCore ? ', one core' : ''}`;
  await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
    .catch(() => fail(`no distributions within 240 s (${label}; ${errors.join(' | ')})`));
  const aucs = () => page.$$eval('[data-testid^="auc-"]', (els) => els.map((e) => `${e.dataset.testid} ${e.textContent}`));
  const shown = {
    text: await page.textContent(timing),
    why: await page.locator(timing).getAttribute('title'),
    cores: await page.evaluate(() => navigator.hardwareConcurrency),
    first: await aucs(),
    requests,
  };
  const options = await page.$$eval('[data-testid="model-select"] option', (o) => o.map((x) => x.value));
  const before = await page.textContent(timing);
  await page.selectOption('[data-testid="model-select"]', options[1]);
  await changed(page, timing, before, `the timing after switching to ${options[1]} (${label})`);
  shown.second = await aucs();
  const plain = await page.textContent(readout);
  await page.click('[data-testid="toggle-hamp"]');
  await changed(page, readout, plain, `the confidence readout with HAMP on (${label})`);
  shown.hamp = await page.textContent(readout);
  if (errors.length) fail(`page errors (${label}): ${errors.join(' | ')}`);
  await page.close();
  return shown;
}

// Everything a visit shows that must not depend on where it was computed.
const same = (a, b, what) => {
  for (const k of ['first', 'second', 'hamp']) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) fail(`${what}, ${k} differs:\n${a[k]}\n${b[k]}`);
  }
};

const helpers = await visit('');
const expected = Math.min(helpers.cores, 4);
if (expected >= 2 && !helpers.text.includes(`on ${expected} threads`)) {
  fail(`with ${helpers.cores} cores the page should run on ${expected} threads: "${helpers.text}"`);
}
if (helpers.first.length < 3) fail(`too few AUCs shown: ${helpers.first.join(', ')}`);
const workerAt = helpers.requests.findIndex((p) => p.endsWith('/worker.js'));
const weightsAt = helpers.requests.findIndex((p) => p.endsWith('.bpk'));
if (expected >= 2 && !(workerAt >= 0 && workerAt < weightsAt)) {
  fail(`the helpers should start before the model's weights are fetched (worker.js request ${workerAt}, weights ${weightsAt})`);
}

const alone = await visit('&threads=1');
if (!alone.text.includes('on one thread') || !(alone.why || '').includes('?threads=1')) {
  fail(`?threads=1 should run on one thread and say so: "${alone.text}" (${alone.why})`);
}
same(helpers, alone, 'helper threads against ?threads=1');

const blocked = await visit('', { blockWorker: true });
if (!blocked.text.includes('on one thread') || !/worker|helper/i.test(blocked.why || '')) {
  fail(`without worker.js the page should say it runs on one thread and why: "${blocked.text}" (${blocked.why})`);
}
same(helpers, blocked, 'without worker.js');

const oneCore = await visit('', { oneCore: true });
if (!oneCore.text.includes('on one thread') || !(oneCore.why || '').includes('one processor core')) {
  fail(`a device reporting one core should run on one thread and say why: "${oneCore.text}" (${oneCore.why})`);
}
same(helpers, oneCore, 'on a device reporting one core');

await browser.close();
console.log(JSON.stringify({
  cores: helpers.cores, helpers: helpers.text, alone: alone.text, blocked: [blocked.text, blocked.why],
  oneCore: [oneCore.text, oneCore.why], aucs: helpers.first.length, hamp: helpers.hamp,
}));
