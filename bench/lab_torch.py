#!/usr/bin/env python3
"""Trains the lab's heads in PyTorch on the very inputs `mia lab --dump DIR` wrote, and
compares what the attacks see with the native (burn) run.

    mia lab --bundle pretrained --defense label-smoothing --strength 0.1 --runs 1 --dump /tmp/ls
    python3 bench/lab_torch.py /tmp/ls --smoothing 0.1 [--json out.json]

The same recipe as the page (mia_core::lab): a linear head on the given features, SGD with
momentum 0.9 (dampening 0), learning rate 0.1, batch 16 with the order reshuffled every epoch,
60 epochs, PyTorch's CrossEntropyLoss(label_smoothing=ε) (ε spread uniformly over the C
classes, as `--smoothing-form uniform`), burn's default initialisation (uniform ±1/√fan_in for
weights and bias). The target and every shadow train on the rows their keep flags name. The
initialisation and batch order differ from burn's, so the heads are not identical; what must
agree is what the attacks see: the fingerprint (the members' confidence at 1 − ε + ε/C) and
online LiRA's AUC (fixed variance, median centre: mia_core::lira's default), computed here
from both the native and the PyTorch logits by the same NumPy code.

Needs torch and numpy (pip install torch numpy); not a CI dependency. Prints one JSON object.
"""

import argparse
import json
import math
import sys

import numpy as np
import torch


def train_head(x, y, classes, smoothing, seed, epochs=60, lr=0.1, batch=16, wd=0.0):
    g = torch.Generator().manual_seed(seed)
    dim = x.shape[1]
    bound = 1.0 / math.sqrt(dim)
    head = torch.nn.Linear(dim, classes)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=g)
        head.bias.uniform_(-bound, bound, generator=g)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, dampening=0.0, weight_decay=wd)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), batch):
            rows = order[s:s + batch]
            opt.zero_grad()
            loss_fn(head(xt[rows]), yt[rows]).backward()
            opt.step()
    return head


def log_odds(logits, y):
    """log(p_y / (1 - p_y)) per row, stable: z_y - logsumexp_{c != y} z_c."""
    z = logits.astype(np.float64)
    n = len(y)
    zy = z[np.arange(n), y]
    others = z.copy()
    others[np.arange(n), y] = -np.inf
    m = others.max(axis=1)
    return zy - (m + np.log(np.exp(others - m[:, None]).sum(axis=1)))


def auc(scores, member):
    pos, neg = scores[member], scores[~member]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def lira_online(phi_target, phi_shadows, keep):
    """Median centres per example, one pooled within-example deviation per side."""
    n = phi_target.shape[0]
    def side(inside):
        mean = np.full(n, np.nan)
        var = np.full(n, np.nan)
        for i in range(n):
            v = phi_shadows[keep[:, i] == inside, i]
            if len(v) >= 1:
                mean[i] = np.median(v)
            if len(v) >= 2:
                var[i] = v.var(ddof=1)
        mean = np.where(np.isnan(mean), np.nanmean(mean), mean)
        std = max(math.sqrt(np.nanmean(var)), 1e-6)
        return mean, std
    (mi, si), (mo, so) = side(True), side(False)
    lp = lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s)
    return lp(phi_target, mi, si) - lp(phi_target, mo, so)


def attacks(logits, labels, keep, smoothing, classes):
    phi = np.stack([log_odds(l, labels) for l in logits])
    member = keep[0]
    scores = lira_online(phi[0], phi[1:], keep[1:])
    p = np.exp(phi[0]) / (1 + np.exp(phi[0]))
    target = 1 - smoothing + smoothing / classes
    near = np.abs(p - target) <= 0.01
    return {
        "lira_online_auc": auc(scores, member),
        "members_at_target": float(near[member].mean()),
        "held_out_at_target": float(near[~member].mean()),
        "member_phi_median": float(np.median(phi[0][member])),
        "member_phi_iqr": float(np.subtract(*np.percentile(phi[0][member], [75, 25]))),
        "held_out_phi_median": float(np.median(phi[0][~member])),
        "lira_member_median": float(np.median(scores[member])),
        "lira_held_out_median": float(np.median(scores[~member])),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--smoothing", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    d = a.dump.rstrip("/")
    x = np.load(f"{d}/features.npy").astype(np.float32)
    labels = np.load(f"{d}/labels.npy").astype(np.int64)
    keep = np.load(f"{d}/keep.npy").astype(bool)
    native = np.load(f"{d}/logits.npy").astype(np.float32)
    classes = native.shape[2]
    torch.set_num_threads(2)
    logits = []
    for m in range(keep.shape[0]):
        rows = np.nonzero(keep[m])[0]
        head = train_head(x[rows], labels[rows], classes, a.smoothing, seed=1000 + m,
                          epochs=a.epochs, lr=a.lr, batch=a.batch_size, wd=a.weight_decay)
        with torch.no_grad():
            logits.append(head(torch.from_numpy(x)).numpy())
    out = {
        "images": int(len(labels)),
        "models": int(keep.shape[0]),
        "smoothing": a.smoothing,
        "lr": a.lr,
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "weight_decay": a.weight_decay,
        # Largest difference between a native and a PyTorch logit, over every model and image:
        # small only where the optimum is unique and reached (full batches, weight decay, long
        # training); elsewhere the two initialisations and batch orders end apart.
        "max_logit_difference": float(np.abs(np.stack(logits) - native).max()),
        "torch": torch.__version__,
        "native": attacks(native, labels, keep, a.smoothing, classes),
        "pytorch": attacks(np.stack(logits), labels, keep, a.smoothing, classes),
    }
    text = json.dumps(out, indent=2)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
