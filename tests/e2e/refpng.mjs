// Reads the bundle's reference sample (reference.bin: magic, n, channels, height, width, then
// (label, member) byte pairs, then CHW u8 pixels) and writes chosen images as PNG files, so the
// real-browser test can upload reference images exactly as a student would upload files.
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

/** The reference sample: {n, channels, h, w, labels, member, image(i)}. */
export function readReference(file) {
  const b = fs.readFileSync(file);
  const u32 = (o) => b.readUInt32LE(o);
  const [n, channels, h, w] = [u32(8), u32(12), u32(16), u32(20)];
  const meta = 24;
  const px = meta + 2 * n;
  const numel = channels * h * w;
  return {
    n, channels, h, w,
    labels: Array.from({ length: n }, (_, i) => b[meta + 2 * i]),
    member: Array.from({ length: n }, (_, i) => b[meta + 2 * i + 1] !== 0),
    image: (i) => b.subarray(px + i * numel, px + (i + 1) * numel),
  };
}

/** Writes reference images `indices` as PNGs into `dir`; returns [{file, index, label, member}]. */
export function writeReferencePngs(referenceFile, indices, dir) {
  const r = readReference(referenceFile);
  fs.mkdirSync(dir, { recursive: true });
  return indices.map((i) => {
    const file = path.join(dir, `ref-${i}.png`);
    fs.writeFileSync(file, png(r.image(i), r.channels, r.h, r.w));
    return { file, index: i, label: r.labels[i], member: r.member[i] };
  });
}
