// Reads a bundle's reference sample (the file manifest.json names: magic, n, channels, height,
// width, then (label, member) byte pairs, then per image its CHW u8 pixels (MIAREF01) or their
// MED-prediction residuals in HWC order (MIAREF02, mia-core's bundle.rs)) and writes chosen
// images as PNG files, so the real-browser test can upload reference images exactly as a
// student would upload files.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
};

/** An RGB PNG of CHW pixels (grayscale repeated). */
export function png(chw, channels, h, w) {
  const rows = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    rows[y * (1 + 3 * w)] = 0;
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const src = channels === 1 ? 0 : c;
        rows[y * (1 + 3 * w) + 1 + 3 * x + c] = chw[src * h * w + y * w + x];
      }
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** JPEG-LS's MED predictor (as mia-core's). */
const med = (a, b, c) => (c >= Math.max(a, b) ? Math.min(a, b) : c <= Math.min(a, b) ? Math.max(a, b) : a + b - c);

/** CHW pixels of one image stored as MED residuals in HWC order. */
function medPixels(res, channels, h, w) {
  const img = new Uint8Array(res.length);
  const at = (c, y, x) => (c * h + y) * w + x;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        const a = x > 0 ? img[at(c, y, x - 1)] : 0;
        const b = y > 0 ? img[at(c, y - 1, x)] : 0;
        const d = x > 0 && y > 0 ? img[at(c, y - 1, x - 1)] : 0;
        img[at(c, y, x)] = (res[(y * w + x) * channels + c] + med(a, b, d)) & 0xff;
      }
    }
  }
  return img;
}

/** The reference sample of the bundle in folder `bundle`: {n, channels, h, w, labels, member, image(i)}. */
export function readReference(bundle) {
  const manifest = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
  const b = fs.readFileSync(path.join(bundle, manifest.reference.file.path));
  const magic = b.subarray(0, 8).toString('latin1');
  if (magic !== 'MIAREF01' && magic !== 'MIAREF02') throw new Error(`not a reference sample: ${magic}`);
  const u32 = (o) => b.readUInt32LE(o);
  const [n, channels, h, w] = [u32(8), u32(12), u32(16), u32(20)];
  const meta = 24;
  const px = meta + 2 * n;
  const numel = channels * h * w;
  const stored = (i) => b.subarray(px + i * numel, px + (i + 1) * numel);
  return {
    n, channels, h, w,
    labels: Array.from({ length: n }, (_, i) => b[meta + 2 * i]),
    member: Array.from({ length: n }, (_, i) => b[meta + 2 * i + 1] !== 0),
    image: (i) => (magic === 'MIAREF01' ? stored(i) : medPixels(stored(i), channels, h, w)),
  };
}

/** Writes reference images `indices` of the bundle in folder `bundle` as PNGs into `dir`;
 * returns [{file, index, label, member}]. */
export function writeReferencePngs(bundle, indices, dir) {
  const r = readReference(bundle);
  fs.mkdirSync(dir, { recursive: true });
  return indices.map((i) => {
    const file = path.join(dir, `ref-${i}.png`);
    fs.writeFileSync(file, png(r.image(i), r.channels, r.h, r.w));
    return { file, index: i, label: r.labels[i], member: r.member[i] };
  });
}
