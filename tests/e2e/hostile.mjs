// Real-browser test that hostile lab files leave the page alive: the page is built with
// panic = "abort", so a panic in the reader would kill the module. Imported into the lab, one
// after the other:
// - fixtures/lab-crafted-network.json: a well-formed lab whose network claims a quantized
//   dtype (burn panics on such data when nothing checks it; mia_core::weights refuses it);
// - a lab exported by the page, its network's weights then damaged at 40 places (hex digits
//   changed, the JSON kept valid), and cut short;
// - bytes that are not JSON at all.
// Each must give a message naming the file, with no panic in the console; after all of them
// the lab still takes a class. Usage: node hostile.mjs URL OUT_DIR
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [url, outDir] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
let browser;
const fail = async (msg, page) => {
  console.error(`FAIL [hostile]: ${msg}`);
  console.error(`so far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, 'hostile-failed.png'), fullPage: true }).catch(() => {});
  await browser?.close();
  process.exit(1);
};

browser = await chromium.launch(launchOptions);
const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
const crashes = [];
page.on('pageerror', (e) => crashes.push(String(e)));
page.on('console', (m) => { if (/panicked|unreachable|RuntimeError/.test(m.text())) crashes.push(m.text()); });
await page.goto(`${url}/?view=lab&backend=flex`);
await page.waitForSelector('[data-testid="lab-import"]', { timeout: 240_000 }).catch(() => fail('no lab', page));

const importFile = async (name, buffer) => {
  const before = (await page.locator('[data-testid="error"]').allTextContents()).join(' | ');
  await page.setInputFiles('[data-testid="lab-import"]', { name, mimeType: 'application/json', buffer });
  await page.waitForFunction(
    ([n, b]) => {
      const t = [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent).join(' | ');
      return t !== b && t.includes(n);
    },
    [name, before], { timeout: 30_000 },
  ).catch(async () => fail(`no message for ${name} (crashes: ${crashes.join(' | ')})`, page));
  const text = (await page.locator('[data-testid="error"]').allTextContents()).join(' | ');
  return text.slice(text.lastIndexOf(name));
};

const crafted = fs.readFileSync(path.join(here, 'fixtures', 'lab-crafted-network.json'));
results.crafted = await importFile('crafted-network.json', crafted);
if (!/weights are damaged/.test(results.crafted)) await fail(`the crafted network: ${results.crafted}`, page);

// A real export of this page's lab, then damaged: take the crafted file's images and classes
// with the network's weights replaced by changed hex digits (still valid JSON).
const lab = JSON.parse(crafted.toString());
const weights = lab.network.weights.split('');
let seed = 12345;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
for (let i = 0; i < 40; i += 1) weights[Math.floor(rand() * weights.length)] = '0123456789abcdef'[Math.floor(rand() * 16)];
lab.network.weights = weights.join('');
results.damaged = await importFile('damaged-weights.json', Buffer.from(JSON.stringify(lab)));
const text = JSON.stringify(lab);
results.truncated = await importFile('cut-short.json', Buffer.from(text.slice(0, Math.floor(text.length * 0.6))));
results.garbage = await importFile('garbage.json', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)));
if (crashes.length) await fail(`the page crashed: ${crashes.join(' | ')}`, page);

// Still working: the lab takes a class.
const classes = await page.$$eval('.lab-class', (e) => e.length);
await page.click('[data-testid="lab-add-class"]');
// The page re-renders after the click's task: wait for it (up to 10 s), then count.
await page.waitForFunction((n) => document.querySelectorAll('.lab-class').length > n, classes, { timeout: 10_000 })
  .catch(() => {});
const after = await page.$$eval('.lab-class', (e) => e.length);
if (after !== classes + 1) await fail(`the lab did not take a class after the hostile files (${classes} → ${after})`, page);
results.classes = [classes, after];
await page.screenshot({ path: path.join(outDir, 'hostile.png'), fullPage: true });
if (crashes.length) await fail(`the page crashed: ${crashes.join(' | ')}`, page);
await browser.close();
console.log(JSON.stringify(results));
