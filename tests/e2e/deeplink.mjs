// Real-browser test of the paper-companion deployment: the site built by
// `web/build.sh --bundle … --public-url …` served under a sub-path, opened from a deep link.
//   node deeplink.mjs SITE_URL PUBLIC_URL OUT_DIR
// SITE_URL is the sub-path the site is served under (http://127.0.0.1:PORT/my-paper); the
// built site's canonical link must be PUBLIC_URL and its bundle carries a citation.
// Checks: the link's model, defenses (with a parameter), attacker and threshold are applied;
// every request stays under the sub-path; the URL follows a change in the page; the "about"
// panel shows the citation and a link to the view; a link with bad parts says so and the page
// still works. Prints one JSON line; screenshots go to OUT_DIR.
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [siteUrl, publicUrl, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const results = {};
const browser = await chromium.launch(launchOptions);
const fail = async (msg, page) => {
  console.error(`FAIL [deeplink]: ${msg}`);
  console.error(`so far: ${JSON.stringify(results)}`);
  if (page) await page.screenshot({ path: path.join(outDir, 'deeplink-failed.png'), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
};
const check = async (ok, msg, page) => { if (!ok) await fail(msg, page); };

const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
const requests = [];
page.on('request', (r) => requests.push(new URL(r.url()).pathname));
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));

const link = '?backend=flex&model=relaxloss&defenses=temperature:t=4&attacker=adaptive&thresholds=loss:-0.5';
const t0 = Date.now();
await page.goto(`${siteUrl}/${link}`);
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail(`no distributions within 240 s (errors: ${errors.join(' | ')})`, page));
results.first_distributions_ms = Date.now() - t0;

const prefix = new URL(siteUrl).pathname.replace(/\/$/, '') + '/';
const outside = requests.filter((p) => !p.startsWith(prefix) && p !== '/favicon.ico');
await check(outside.length === 0, `requests outside ${prefix}: ${outside.join(', ')}`, page);
results.requests = requests.length;

await check(await page.$eval('[data-testid="model-select"]', (s) => s.value) === 'relaxloss', 'the link\'s model is not selected', page);
await check(await page.isChecked('[data-testid="toggle-temperature"]'), 'the link\'s defense is not on', page);
const tParam = await page.$eval('[data-testid="toggle-temperature"]', (el) =>
  el.closest('.toggle').querySelector('.param input').value);
await check(tParam === '4', `temperature t is ${tParam}, the link says 4`, page);
await check(await page.isChecked('[data-testid="attacker-adaptive"]'), 'the link\'s attacker is not chosen', page);
const readout = await page.textContent('[data-testid="attack-loss"] .readout');
await check(readout.includes('at threshold -0.50'), `the loss threshold is not the link's: ${readout}`, page);
await check(await page.$eval('link[rel="canonical"]', (l) => l.href) === publicUrl, 'no canonical link to the public URL', page);

// The about panel: citation and a link to this very view.
await page.click('[data-testid="about"] summary');
const citation = await page.textContent('[data-testid="citation"]').catch(() => '');
await check(citation.includes('MIA Lab test bundle'), `no citation in the about panel: ${citation}`, page);
const viewHref = await page.$eval('[data-testid="view-link"]', (a) => a.href);
await check(viewHref.includes('model=relaxloss') && viewHref.includes('defenses=temperature:t=4'),
  `the about panel's link is not this view: ${viewHref}`, page);
await page.screenshot({ path: path.join(outDir, 'deeplink.png'), fullPage: true });

// The URL follows the page: switch label-only on.
await page.click('[data-testid="toggle-label"]');
await page.waitForFunction(() => decodeURIComponent(location.search).includes('label'), null, { timeout: 10_000 })
  .catch(() => fail(`the URL did not follow the toggle: ${page.url()}`, page));
const url = new URL(page.url());
await check(url.pathname === prefix, `the URL left the sub-path: ${url.pathname}`, page);
await check(url.searchParams.get('backend') === 'flex', `the URL lost backend=: ${page.url()}`, page);
results.url_after_toggle = url.search;

// A link with parts that cannot be used: messages, and the page still works.
const bad = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
await bad.goto(`${siteUrl}/?backend=flex&model=nope&thresholds=loss:abc&defenses=bogus`);
await bad.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 })
  .catch(() => fail('a bad link stopped the page', bad));
const messages = await bad.textContent('div.messages[role="alert"]').catch(() => '');
for (const part of ['nope', 'abc', 'bogus']) {
  await check(messages.includes(part), `no message about \`${part}\`: ${messages}`, bad);
}
await check(await bad.$eval('[data-testid="model-select"]', (s) => s.value) === 'erm', 'a bad model id changed the model', bad);
await check(errors.length === 0, `page errors: ${errors.join(' | ')}`, page);
console.log(JSON.stringify(results));
await browser.close();
