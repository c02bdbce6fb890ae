"""PyTorch reference for `mia bench`: one training epoch of the same architectures MIA Lab
trains (small-cnn, resnet20), on synthetic CIFAR-10-sized data, with the same batch size,
optimiser (Adam, lr 1e-3) and loss (cross-entropy). Prints one JSON object per line:
{"model": ..., "device": ..., "images_per_s": ..., "seconds": ..., "images": ...,
 "threads": ..., "torch": ...}.

With --phases STEPS it instead times STEPS training steps (after two warm-up steps) phase by
phase, as `mia bench --only phases` does, and prints
{"model": ..., "forward_ms": ..., "backward_ms": ..., "optimizer_ms": ..., "steps": ...}.

Usage: python3 bench/torch_train.py --models small-cnn,resnet20 --batch 128 --images 2048
       [--device cpu|cuda] [--threads N] [--phases STEPS]
Exit status 3 (and a message on stderr) when PyTorch is not installed.
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


class SmallCnn(nn.Module):
    """crates/mia-core/src/models/small_cnn.rs: conv3x3(16)-relu-pool, conv3x3(32)-relu-pool,
    fc(128)-relu, fc(classes)."""

    def __init__(self, channels=3, size=32, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * (size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = None
        if stride != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(out + skip)


class ResNet20(nn.Module):
    """crates/mia-core/src/models/resnet.rs: option-B shortcuts."""

    def __init__(self, channels=3, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, width = [], 16
        for stage, out in enumerate([16, 32, 64]):
            for b in range(3):
                blocks.append(Block(width, out, 2 if stage > 0 and b == 0 else 1))
                width = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def epoch(model, opt, xs, ys, batch, device):
    loss_fn = nn.CrossEntropyLoss()
    for s in range(0, xs.shape[0], batch):
        x, y = xs[s:s + batch].to(device), ys[s:s + batch].to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def phases(model, opt, xs, ys, batch, steps):
    """Milliseconds per step of forward + loss (read back), backward and the optimiser."""
    loss_fn = nn.CrossEntropyLoss()
    total = {"forward_ms": 0.0, "backward_ms": 0.0, "optimizer_ms": 0.0}
    for step in range(steps + 2):
        s = step * batch % xs.shape[0]
        idx = torch.arange(s, s + batch) % xs.shape[0]
        x, y = xs[idx], ys[idx]
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter()
        loss = loss_fn(model(x), y)
        loss.item()
        forward = time.perf_counter() - t
        t = time.perf_counter()
        loss.backward()
        backward = time.perf_counter() - t
        t = time.perf_counter()
        opt.step()
        optimizer = time.perf_counter() - t
        if step >= 2:
            total["forward_ms"] += forward * 1e3
            total["backward_ms"] += backward * 1e3
            total["optimizer_ms"] += optimizer * 1e3
    return {k: v / max(steps, 1) for k, v in total.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="small-cnn,resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--phases", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available to PyTorch", file=sys.stderr)
        sys.exit(3)
    torch.manual_seed(0)
    xs = torch.randn(a.images, 3, 32, 32)
    ys = torch.randint(0, 10, (a.images,))
    for name in a.models.split(","):
        model = {"small-cnn": SmallCnn, "resnet20": ResNet20}[name]().to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if a.phases > 0:
            row = phases(model, opt, xs, ys, a.batch, a.phases)
            print(json.dumps({"model": name, "steps": a.phases, **row,
                              "threads": torch.get_num_threads(), "torch": torch.__version__}),
                  flush=True)
            continue
        warm = min(xs.shape[0], 2 * a.batch)
        epoch(model, opt, xs[:warm], ys[:warm], a.batch, device)
        start = time.perf_counter()
        epoch(model, opt, xs, ys, a.batch, device)
        seconds = time.perf_counter() - start
        print(json.dumps({
            "model": name, "device": a.device, "images_per_s": a.images / seconds,
            "seconds": seconds, "images": a.images, "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
