"""PyTorch reference for lab mode's training (docs/benchmarks.md): what the page does after
computing features, in PyTorch on the CPU. 33 linear heads (128 features -> 2 classes, the
target and 32 shadows), each trained for 60 epochs with SGD (lr 0.1, momentum 0.9, batch 16)
on 50 of 100 images, then logits of all 100 images. Random features stand in for the trunk's
(the cost does not depend on their values).

Usage: python3 bench/lab_head_torch.py [--images 100] [--heads 33] [--epochs 60] [--threads N]
Prints one JSON object. Exit status 3 when PyTorch is not installed.
"""

import argparse
import json
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("PyTorch is not installed (pip install torch)", file=sys.stderr)
    sys.exit(3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--heads", type=int, default=33)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.images, 128)
    x = x / x.norm(dim=1, keepdim=True) * 128 ** 0.5
    y = torch.arange(a.images) % 2
    start = time.perf_counter()
    for h in range(a.heads):
        idx = torch.randperm(a.images)[: a.images // 2]
        head = nn.Linear(128, 2)
        opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
        for _ in range(a.epochs):
            order = idx[torch.randperm(len(idx))]
            for b in order.split(16):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(head(x[b]), y[b])
                loss.backward()
                opt.step()
        with torch.no_grad():
            head(x)
    seconds = time.perf_counter() - start
    print(json.dumps({"heads": a.heads, "epochs": a.epochs, "images": a.images,
                      "seconds": round(seconds, 3), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
