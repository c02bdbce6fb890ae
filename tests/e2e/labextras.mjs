// Real-browser test of lab mode's camera, early stopping, fine-tuning and the network kept in
// an exported lab file: node labextras.mjs URL OUT_DIR BACKEND
// - camera: Chromium's fake camera (a generated test pattern, no permission prompt); two
//   snaps add two images to the class;
// - early stopping: every model sets a fifth of its images aside; the page marks the target's
//   set-aside members (V), counts them as held out, and says which epoch it kept;
// - the per-image scores as JSON agree with the page;
// - export/import: the file carries the trained network; a fresh page imports it, rebuilds
//   the network and reports its accuracy on the images;
// - fine-tuning: refused with DP-SGD (with the reason shown), then a short fine-tuned run
//   at its defaults beside a head run of the same epochs and shadows (the time ratio);
// - no request leaves the page's origin.
// Prints one JSON line; screenshots to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir, backend] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const results = { backend };
const browser = await chromium.launch({
  ...launchOptions,
  args: [...launchOptions.args, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
const fail = async (msg, page) => {
  console.error(`FAIL [lab extras, ${backend}]: ${msg}\nso far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, `labextras-failed-${backend}.png`), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};
const context = await browser.newContext({ viewport: { width: 1300, height: 1000 }, acceptDownloads: true });
await context.grantPermissions(['camera'], { origin: new URL(url).origin });
const origin = new URL(url).origin;
const requests = [];
context.on('request', (r) => requests.push(r.url()));
// `ctx`: another browser profile (its own kept lab) where a test must not see this one's.
const open = async (ctx = context) => {
  const page = await ctx.newPage();
  await page.goto(`${url}/?view=lab&backend=${backend}`);
  await page.waitForSelector('[data-testid="lab-sample"]', { timeout: 120_000 }).catch(() => fail('no lab view', page));
  return page;
};
const page = await open();
const thumbs = (k) => page.$$eval(`[data-testid="lab-class-${k}"] [data-testid="lab-thumb"]`, (e) => e.length);
const set = async (id, value) => {
  await page.fill(`[data-testid="${id}"]`, String(value));
  await page.dispatchEvent(`[data-testid="${id}"]`, 'change');
};
const enabled = () => page.waitForFunction(() => !document.querySelector('[data-testid="lab-train"]').disabled, null, { timeout: 120_000 })
  .catch(() => fail('the train button stayed disabled', page));
async function train(label) {
  await enabled();
  const before = await page.$eval('[data-testid="lab-summary"]', (e) => e.dataset.ms).catch(() => null);
  await page.click('[data-testid="lab-train"]');
  // Done when a new result replaces the old one (or the run stops with an error).
  await page.waitForFunction((b) => document.querySelector('[data-testid="lab-error"]') ||
    (!document.querySelector('[data-testid="lab-progress"]') && document.querySelector('[data-testid="lab-summary"]')?.dataset.ms !== b &&
     !document.querySelector('[data-testid="lab-results"] .warning')), before, { timeout: 540_000, polling: 100 });
  if (await page.$('[data-testid="lab-error"]')) await fail(`${label}: ${await page.textContent('[data-testid="lab-error"]')}`, page);
  await page.waitForSelector('[data-testid="lab-results"]:not(:has(.warning))', { timeout: 30_000 }).catch(() => fail(`no results for ${label}`, page));
  const aucs = Object.fromEntries(await page.$$eval('[data-testid^="lab-auc-"]', (els) =>
    els.map((e) => [e.dataset.testid.replace('lab-auc-', ''), parseFloat(e.textContent)])));
  const ms = +(await page.$eval('[data-testid="lab-summary"]', (e) => e.dataset.ms));
  return { ms, aucs, summary: await page.textContent('[data-testid="lab-summary"]') };
}

// The CIFAR-10 sample: three classes of 20.
await page.click('[data-testid="lab-sample"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-thumb"]').length === 60, null, { timeout: 60_000 })
  .catch(() => fail('the sample did not fill three classes of 20', page));

// Camera.
await page.click('[data-testid="lab-camera-0"]');
await page.waitForFunction(() => document.querySelector('.lab-video')?.videoWidth > 0, null, { timeout: 30_000 })
  .catch(async () => fail(`the camera showed no picture: ${await page.textContent('.lab-camera')}`, page));
await page.click('[data-testid="lab-snap-0"]');
await page.click('[data-testid="lab-snap-0"]');
await page.waitForFunction(() => document.querySelectorAll('[data-testid="lab-class-0"] [data-testid="lab-thumb"]').length === 22, null, { timeout: 10_000 })
  .catch(async () => fail(`two snaps gave ${await thumbs(0)} images in class 0, expected 22`, page));
results.camera = { class0: await thumbs(0) };
await page.screenshot({ path: path.join(outDir, `labextras-camera-${backend}.png`) });
await page.click('.lab-camera button:has-text("close the camera")');

// Early stopping, 8 shadows.
await set('lab-shadows', 8);
await page.check('[data-testid="lab-early"]');
results.early = await train('early stopping');
const marked = await page.$$eval('[data-testid="lab-validation"]', (e) => e.length);
const members = await page.$$eval('[data-testid="lab-thumb"]', (e) => e.filter((t) => t.dataset.member === 'true').length);
results.early.setAside = marked;
results.early.members = members;
if (marked !== Math.round(members * 0.2)) await fail(`${marked} set-aside members marked, expected a fifth of ${members}`, page);
const kept = /Early stopping kept epoch (\d+) of (\d+)/.exec(results.early.summary);
if (!kept || !(+kept[1] >= 1 && +kept[1] <= +kept[2])) await fail(`no kept epoch in "${results.early.summary}"`, page);
await page.screenshot({ path: path.join(outDir, `labextras-early-${backend}.png`), fullPage: true });
// The per-image scores as JSON: every image, its role as scored, every attack's AUC.
const [scoresDl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="lab-json"]')]);
const scoresFile = path.join(outDir, `scores-${backend}.json`);
await scoresDl.saveAs(scoresFile);
const scores = JSON.parse(fs.readFileSync(scoresFile, 'utf8'));
const setAside = scores.images.filter((im) => im.set_aside_for_early_stopping);
if (scores.images.length !== 62 || setAside.length !== marked || setAside.some((im) => im.member)
  || Math.abs(scores.auc['lira-online'] - results.early.aucs['lira-online']) > 0.0005)
  await fail(`the scores JSON disagrees with the page: ${scores.images.length} images, ${setAside.length} set aside, AUC ${scores.auc['lira-online']}`, page);

// Export with the network, import into a fresh page.
const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="lab-export"]')]);
const file = path.join(outDir, `lab-${backend}.json`);
await download.saveAs(file);
const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
if (saved.version !== 3 || !saved.network?.weights || saved.network.shape.classes !== 3 || saved.settings.early_stopping !== 5
  || saved.result?.images?.length !== 62 || saved.history?.length !== 1)
  await fail(`the exported file lacks the network, the recipe or the run: ${JSON.stringify({ ...saved, images: saved.images.length, network: saved.network?.shape, result: !!saved.result })}`, page);
results.exported = { bytes: fs.statSync(file).size, shape: saved.network.shape };
// The run comes back as it was (its scores recomputed from the stored logits), in a browser
// profile that has not kept this lab.
const elsewhere = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
const fresh = await open(elsewhere);
await fresh.setInputFiles('[data-testid="lab-import"]', file);
await fresh.waitForSelector('[data-testid="lab-interval-lira-online"]', { timeout: 60_000 })
  .catch(async () => fail('the imported lab shows no results', fresh));
const again = await fresh.$eval('[data-testid="lab-auc-lira-online"]', (e) => +e.textContent);
if (Math.abs(again - results.early.aucs['lira-online']) > 0.0005) await fail(`the imported run's LiRA AUC ${again} is not the exported ${results.early.aucs['lira-online']}`, fresh);
if (await fresh.$$eval('[data-testid="lab-thumb"]', (e) => e.length) !== 62) await fail('the imported lab lost images', fresh);
if (await fresh.$$eval('[data-testid="lab-validation"]', (e) => e.length) !== marked) await fail('the imported run lost its set-aside members', fresh);
await fresh.close();
// Without its run (a version-2 file), the network is rebuilt and checked on the images.
const bare = path.join(outDir, `lab-${backend}-network-only.json`);
fs.writeFileSync(bare, JSON.stringify({ ...saved, version: 2, result: undefined, history: undefined }));
const older = await open(elsewhere);
await older.setInputFiles('[data-testid="lab-import"]', bare);
await older.waitForSelector('[data-testid="lab-imported"]:has-text("is right on")', { timeout: 60_000 })
  .catch(async () => fail(`the imported network was not checked: ${await older.textContent('.lab-run')}`, older));
results.imported = await older.textContent('[data-testid="lab-imported"]');
await older.close();

// Fine-tuning: refused with DP-SGD, then a run at its defaults beside a head run of the same
// epochs and shadows.
await page.uncheck('[data-testid="lab-early"]');
await page.check('[data-testid="lab-fine-tune"]');
await page.selectOption('[data-testid="lab-defense"]', 'dp-sgd');
await page.waitForSelector('[data-testid="lab-refused"]', { timeout: 10_000 }).catch(() => fail('DP-SGD with fine-tuning was not refused', page));
if (!(await page.isDisabled('[data-testid="lab-train"]'))) await fail('train stays enabled for a refused recipe', page);
await page.selectOption('[data-testid="lab-defense"]', 'erm');
results.fineTuneDefaults = await page.$eval('[data-testid="lab-epochs"]', (e) => e.value) + ' epochs, ' +
  await page.$eval('[data-testid="lab-shadows"]', (e) => e.value) + ' shadows';
if (results.fineTuneDefaults !== '10 epochs, 16 shadows') await fail(`fine-tuning's defaults: ${results.fineTuneDefaults}`, page);
// The ratio is measured at the same epochs and shadows as the head run below.
await set('lab-shadows', 8);
results.fineTune = await train('fine-tuning');
await page.screenshot({ path: path.join(outDir, `labextras-fine-tune-${backend}.png`), fullPage: true });
await page.uncheck('[data-testid="lab-fine-tune"]');
await set('lab-epochs', 10);
await set('lab-shadows', 8);
results.head10 = await train('head, 10 epochs');
results.fineTuneOverHead = +(results.fineTune.ms / results.head10.ms).toFixed(1);

const foreign = requests.filter((r) => !r.startsWith(origin) && !r.startsWith('data:') && !r.startsWith('blob:'));
if (foreign.length) await fail(`requests left the page's origin: ${foreign.join(', ')}`);
await browser.close();
console.log(JSON.stringify(results));
