// How every real-browser script of MIA Lab starts Debian's Chromium (playwright-core's
// `chromium.launch` options): headless, WebGPU on (SwiftShader's software adapter where there
// is no GPU), and none of Chromium's background connections, which this project's machines
// refuse. Used by tests/e2e/lab.mjs and bench/browser/bench.mjs.
export const launchOptions = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--enable-unsafe-webgpu',
    '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
};
