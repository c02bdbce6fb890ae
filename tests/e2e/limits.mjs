// Real-browser test of what the page does at its limits, where it used to refuse or ignore
// silently:
//   node limits.mjs URL OUT_DIR
// - a 54-megapixel JPEG (9000 × 6000, made by the browser's own canvas) is decoded smaller and
//   gets a prediction and a verdict, not "too large";
// - a HEIC photo (an iPhone's default, which Chromium cannot decode) gets advice on converting
//   it to JPEG, not "not an image";
// - in the lab, out-of-range settings (epochs 0, 1000 shadow models, an odd shadow count) and
//   an 11th class are said in a notice, with the value used instead;
// and the page keeps working after each. Prints one JSON line of measurements.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
let browser;
const fail = async (msg, page) => {
  console.error(`FAIL [limits]: ${msg}`);
  console.error(`so far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, 'limits-failed.png'), fullPage: true }).catch(() => {});
  await browser?.close();
  process.exit(1);
};
const check = async (ok, msg, page) => { if (!ok) await fail(msg, page); };

browser = await chromium.launch(launchOptions);
const page = await browser.newPage();
await page.goto(`${url}/?backend=flex`);
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail('no distributions', page));

// A 54-megapixel photo: a smooth scene the canvas encodes as JPEG at quality 0.8.
const made = Date.now();
const b64 = await page.evaluate(async () => {
  const c = new OffscreenCanvas(9000, 6000);
  const g = c.getContext('2d');
  const sky = g.createLinearGradient(0, 0, 0, 6000);
  sky.addColorStop(0, '#6ab'); sky.addColorStop(1, '#dc8');
  g.fillStyle = sky; g.fillRect(0, 0, 9000, 6000);
  g.fillStyle = '#833'; g.beginPath(); g.arc(4500, 3600, 1500, 0, 2 * Math.PI); g.fill();
  const blob = await c.convertToBlob({ type: 'image/jpeg', quality: 0.8 });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
});
const big = Buffer.from(b64, 'base64');
results.big_jpeg = { megapixels: 54, bytes: big.length, made_s: (Date.now() - made) / 1000 };
const decoded = Date.now();
await page.setInputFiles('[data-testid="upload-input"]', { name: 'phone-54mp.jpg', mimeType: 'image/jpeg', buffer: big });
await page.waitForSelector('[data-testid="upload-summary"], [data-testid="error"]', { timeout: 120_000 })
  .catch(() => fail('the 54-megapixel photo got neither a verdict nor a message', page));
results.big_jpeg.decoded_s = (Date.now() - decoded) / 1000;
const error = async () => (await page.locator('[data-testid="error"]').allTextContents()).join(' ');
await check(await page.locator('[data-testid="upload-summary"]').count() === 1,
  `the 54-megapixel photo was refused: ${await error()}`, page);
results.big_prediction = await page.textContent('[data-testid="prediction"]');
await check(/%/.test(results.big_prediction), `no prediction for the big photo: ${results.big_prediction}`, page);

// A HEIC photo: the start of an iPhone's file (an ftyp box of brand heic).
const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic'), Buffer.alloc(4000, 7)]);
await page.setInputFiles('[data-testid="upload-input"]', { name: 'IMG_0001.HEIC', mimeType: 'image/heic', buffer: heic });
await page.waitForFunction(() => /HEIC/.test(document.querySelector('[data-testid="error"]')?.textContent ?? ''), null, { timeout: 30_000 })
  .catch(() => fail('no HEIC advice', page));
results.heic_message = await error();
await check(/IMG_0001\.HEIC/.test(results.heic_message) && /JPEG/.test(results.heic_message),
  `the HEIC message does not say to convert to JPEG: ${results.heic_message}`, page);
await check(!/not an image/.test(results.heic_message), 'the HEIC photo was called not an image', page);

// Still working: the big photo's result is still there after the HEIC message.
await check(await page.locator('[data-testid="upload-result"]').count() === 1, 'the big photo\'s result was lost', page);
await page.screenshot({ path: path.join(outDir, 'photos.png') });

// The lab: settings out of range and an 11th class are said, not silently changed or ignored.
await page.goto(`${url}/?view=lab&backend=flex`);
await page.waitForSelector('[data-testid="lab-epochs"]', { timeout: 120_000 }).catch(() => fail('no lab', page));
const notice = async () => page.textContent('[data-testid="lab-notice"]', { timeout: 10_000 }).catch(() => '');
const typeIn = async (id, value) => {
  await page.fill(`[data-testid="${id}"]`, String(value));
  await page.dispatchEvent(`[data-testid="${id}"]`, 'change');
};
results.notices = {};
await typeIn('lab-epochs', 0);
results.notices.epochs = await notice();
await check(/epochs: 0 is outside 1–500, so 1 is used/.test(results.notices.epochs), `epochs 0: ${results.notices.epochs}`, page);
await typeIn('lab-shadows', 1000);
results.notices.shadows = await notice();
await check(/shadow models: 1000 is outside 6–64, so 64 is used/.test(results.notices.shadows), `1000 shadows: ${results.notices.shadows}`, page);
await typeIn('lab-shadows', 7);
results.notices.odd = await notice();
await check(/shadow models: 7 is odd .*so 8 is used/.test(results.notices.odd), `7 shadows: ${results.notices.odd}`, page);
await page.click('[data-testid="lab-notice-ok"]');
await check(await page.locator('[data-testid="lab-notice"]').count() === 0, 'the notice stays after OK', page);
await typeIn('lab-epochs', 30);
await check(await page.locator('[data-testid="lab-notice"]').count() === 0, 'a setting in range gave a notice', page);
for (let k = 2; k < 10; k += 1) await page.click('[data-testid="lab-add-class"]');
await check(await page.locator('[data-testid="lab-notice"]').count() === 0, 'ten classes gave a notice', page);
await page.click('[data-testid="lab-add-class"]');
results.notices.classes = await notice();
await check(/at most 10 classes/.test(results.notices.classes), `an 11th class: ${results.notices.classes}`, page);
await page.screenshot({ path: path.join(outDir, 'lab-notice.png') });
await browser.close();
console.log(JSON.stringify(results));
