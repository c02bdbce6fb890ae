// Developer tool: where the page spends its time when a defense is toggled. Samples the main
// thread with Chromium's profiler (CDP) for 3 s after clicking the toggle and prints the 25
// functions with the most self time (wasm names come from the dev build's name section).
//   node tests/e2e/profile.mjs URL [TOGGLE]   e.g. http://127.0.0.1:8765 temperature
// This is how the constructor re-run on every wasm export was found (crates/mia-web/src/main.rs).
import { chromium } from 'playwright-core';
import { launchOptions } from './chromium.mjs';

const [url, toggle = 'temperature'] = process.argv.slice(2);
const browser = await chromium.launch(launchOptions);
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
await page.goto(`${url}/?backend=flex`);
await page.waitForSelector('[data-testid="auc-loss"]', { timeout: 240_000 });
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
await page.click(`[data-testid="toggle-${toggle}"]`);
await page.waitForTimeout(3000);
const { profile } = await cdp.send('Profiler.stop');
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
profile.samples.forEach((id, i) => {
  const f = nodes.get(id).callFrame;
  const key = f.functionName || f.url || '(anonymous)';
  self.set(key, (self.get(key) || 0) + (profile.timeDeltas[i] || 0));
});
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms  ${name.slice(0, 150)}`);
}
await browser.close();
