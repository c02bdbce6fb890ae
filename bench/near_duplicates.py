"""Draws the pairs `mia index --check` lists: each non-member that the index of the shipped
model's training images matches, beside the member it matches (mirrored back where the match
was mirrored), with the mean absolute pixel difference. Evidence that such matches are the same
photo, held twice in CIFAR-10's training set, not false recognitions.

Usage: mia index ... --check 2000 > check.txt
       python3 bench/near_duplicates.py check.txt CIFAR10_DIR docs/img/cifar10-near-duplicates.png
Needs numpy and pillow.
"""
import re
import sys

import numpy as np
from PIL import Image


def main(check, data, out):
    raw = np.concatenate([
        np.fromfile(f"{data}/cifar-10-batches-bin/data_batch_{i}.bin", np.uint8).reshape(-1, 3073)
        for i in range(1, 6)
    ])
    px = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    pat = re.compile(r"non-member (\d+) ~ member (\d+) \((\d+) bits(, mirrored)?\)")
    pairs = sorted((int(m[3]), int(m[1]), int(m[2]), bool(m[4]))
                   for m in map(pat.search, open(check, encoding="utf-8")) if m)
    tiles = []
    for bits, a, b, mirrored in pairs:
        twin = px[b][:, ::-1] if mirrored else px[b]
        diff = np.abs(px[a].astype(int) - twin.astype(int)).mean()
        print(f"{bits:3d} bits  non-member {a:5d}  member {b:5d}{' (mirrored)' if mirrored else '':11s}"
              f"  mean |pixel difference| {diff:5.1f}")
        tiles.append(np.concatenate([px[a], np.full((32, 2, 3), 255, np.uint8), twin], 1))
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate([np.pad(t, ((2, 2), (4, 4), (0, 0))) for t in tiles[r:r + cols]], 1)
            for r in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, 0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    print(f"{len(pairs)} pairs drawn to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
