// Writes FILE.gz (gzip -9) and FILE.br (brotli, quality 11) next to every file of a built site
// that compresses by at least 5 %, for static hosts that serve precompressed files
// (nginx gzip_static/brotli_static, Caddy's precompressed, Netlify and GitHub Pages compress
// on their own). Node's zlib has both, so no tool is installed for it.
//   node web/precompress.mjs DIR
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dir = process.argv[2];
if (!dir) { console.error('error: no folder given\nhint: node web/precompress.mjs DIR'); process.exit(2); }
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
for (const file of walk(dir)) {
  if (file.endsWith('.gz') || file.endsWith('.br')) continue;
  const raw = fs.readFileSync(file);
  const gz = zlib.gzipSync(raw, { level: 9 });
  const br = zlib.brotliCompressSync(raw, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
    },
  });
  if (gz.length <= 0.95 * raw.length) fs.writeFileSync(`${file}.gz`, gz);
  if (br.length <= 0.95 * raw.length) fs.writeFileSync(`${file}.br`, br);
}
