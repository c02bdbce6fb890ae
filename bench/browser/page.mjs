// Runs the small CNN (crates/mia-core/src/models/small_cnn.rs) in TensorFlow.js with the
// parameters burn exported, on the normalised reference sample, in chunks of the same size as
// the lab (50 on CPU backends, 250 on WebGPU), reading each chunk back asynchronously and
// yielding to the page as the lab does (a MessageChannel message once per 30 ms). Writes
// {backend, images, ms, msPerImage, warmMs, maxAbsDiff, threads, isolated} as JSON into #result.
const out = document.getElementById('result');
const backend = new URLSearchParams(location.search).get('backend') || 'wasm';
const f32 = async (name) => new Float32Array(await (await fetch(`fixture/${name}`)).arrayBuffer());

try {
  if (backend === 'wasm') tf.wasm.setWasmPaths(new URL('tfjs/', location.href).href);
  // Cross-origin isolated, the wasm backend runs its threaded build, by default on half the
  // cores: give it every core, as the lab's helper threads have.
  if (backend === 'wasm' && globalThis.crossOriginIsolated) tf.wasm.setThreadsCount(navigator.hardwareConcurrency || 1);
  if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js backend ${backend} is unavailable`);
  await tf.ready();
  const meta = await (await fetch('fixture/model.json')).json();
  const [params, inputs, reference] = await Promise.all(['params.bin', 'inputs.bin', 'logits.bin'].map(f32));
  const [c, h, w] = meta.input;
  const n = meta.examples;
  const k = meta.classes;
  const p = meta.params.map(({ shape, offset }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(params.subarray(offset, offset + size), shape);
  });
  // burn: conv weight [out, in, kh, kw], linear weight [in, out]; TF.js wants [kh, kw, in, out].
  const [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b] = p;
  const k1 = tf.transpose(c1w, [2, 3, 1, 0]);
  const k2 = tf.transpose(c2w, [2, 3, 1, 0]);
  const forward = (x) => tf.tidy(() => {
    let y = tf.transpose(x, [0, 2, 3, 1]); // NCHW → NHWC
    y = tf.maxPool(tf.relu(tf.add(tf.conv2d(y, k1, 1, 'same'), c1b)), 2, 2, 'valid');
    y = tf.maxPool(tf.relu(tf.add(tf.conv2d(y, k2, 1, 'same'), c2b)), 2, 2, 'valid');
    y = tf.reshape(tf.transpose(y, [0, 3, 1, 2]), [y.shape[0], -1]); // flatten in CHW order as burn
    y = tf.relu(tf.add(tf.matMul(y, f1w), f1b));
    return tf.add(tf.matMul(y, f2w), f2b);
  });
  const chunk = backend === 'webgpu' ? 250 : 50;
  const numel = c * h * w;
  const run = async (count) => {
    const logits = new Float32Array(count * k);
    let slice = performance.now();
    for (let s = 0; s < count; s += chunk) {
      const e = Math.min(count, s + chunk);
      const x = tf.tensor4d(inputs.subarray(s * numel, e * numel), [e - s, c, h, w]);
      const y = forward(x);
      logits.set(await y.data(), s * k);
      x.dispose();
      y.dispose();
      // Yield as the lab does: a message to itself (no setTimeout clamp), once per 30 ms slice.
      if (performance.now() - slice > 30) {
        await new Promise((r) => { const ch = new MessageChannel(); ch.port1.onmessage = r; ch.port2.postMessage(null); });
        slice = performance.now();
      }
    }
    return logits;
  };
  let t0 = performance.now();
  await run(Math.min(n, chunk)); // warm-up: shader compilation, wasm instantiation
  const warmMs = performance.now() - t0;
  t0 = performance.now();
  const logits = await run(n);
  const ms = performance.now() - t0;
  let maxAbsDiff = 0;
  for (let i = 0; i < logits.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(logits[i] - reference[i]));
  const threads = backend === 'wasm' ? tf.wasm.getThreadsCount() : null;
  out.textContent = JSON.stringify({
    backend: `tfjs-${backend}`, images: n, ms, msPerImage: ms / n, warmMs, maxAbsDiff, threads, isolated: globalThis.crossOriginIsolated === true,
  });
  out.dataset.done = '1';
} catch (e) {
  out.textContent = JSON.stringify({ backend: `tfjs-${backend}`, error: String(e) });
  out.dataset.done = '1';
}
