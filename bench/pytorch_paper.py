#!/usr/bin/env python3
"""A membership-inference paper's PyTorch side, made small: trains a target and shadow models
of one architecture on CIFAR-10 in PyTorch and writes what such a paper has at hand — the
target's state_dict (`.pt` and `.safetensors`), the .npy contract of `mia attack --logits`
and the reference images — so that `mia import` and `mia export --logits` can turn it into a
companion site without retraining (docs/import.md walks through it).

    python3 bench/pytorch_paper.py --data ../shared/data --arch resnet20 --out /tmp/paper
    python3 bench/pytorch_paper.py --data ../shared/data --fixtures tests/fixtures/pytorch
    python3 bench/pytorch_paper.py --check-zoo /tmp/zoo

Writes into OUT/<arch>/:
  target.pt, target.safetensors   the target's state_dict (keys of the public implementation)
  logits.npy    float32 [N, 10]   the target's logits on the N population images
  labels.npy    int64 [N]         their labels
  member.npy    bool [N]          whether the target trained on each
  shadows.npy   float32 [S, N, 10] every shadow's logits on them
  keep.npy      bool [S, N]       whether each shadow trained on each
  images.npy    uint8 [N, 32, 32, 3] the images themselves (HWC, as stored)
  preprocess.toml                  the normalisation the models were trained with

--fixtures DIR writes the test fixtures CI reads (tests/fixtures/pytorch/): paper/, the above
for a small CNN with 4 shadows on the first 400 images of data_batch_5 (target.safetensors,
no images: the tests read them from the shared data), and a ResNet-20 trained briefly on the
same images as `resnet20.pt` with its logits on the first 64.

--checkpoint-fixture FILE writes tests/fixtures/pytorch/checkpoint.pt: a small CNN's state_dict
inside {"epoch": 3, "state_dict": …}, as training scripts save checkpoints.

--check-zoo DIR writes every architecture of the zoo (randomly initialised, with random
batch-norm statistics) under the public implementations' key names, with its logits on 100
random images, for `cargo test -- --ignored pytorch_zoo` to compare (not committed: VGG-16 is
60 MB).

Models: names are those of the common public implementations — ResNet-20 as in
akamaster/pytorch_resnet_cifar10 with option-B shortcuts (conv1, bn1, layer1.0.conv1, …,
linear), VGG-16-BN as in kuangliu/pytorch-cifar (features.N, classifier), MobileNetV2 as
torchvision's (features.N.conv.…, classifier.1) with the CIFAR strides, and the small CNN,
ML-Leaks CNN and MLP as MIA Lab defines them. Needs torch, numpy and safetensors (pip install
torch numpy safetensors); not a CI dependency.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import torch
    from torch import nn
    from safetensors.torch import save_file
except ImportError:
    print("needs torch and safetensors (pip install torch numpy safetensors)", file=sys.stderr)
    sys.exit(3)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class SmallCnn(nn.Module):
    def __init__(self, channels=3, size=32, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * (size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class MlLeaksCnn(nn.Module):
    def __init__(self, channels=3, size=32, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        side = ((size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's BasicBlock with option='B'."""

    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = nn.Sequential()
        if stride != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, channels=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        width = 16
        for stage, out in enumerate([16, 32, 64]):
            blocks = []
            for b in range(3):
                blocks.append(BasicBlock(width, out, 2 if stage > 0 and b == 0 else 1))
                width = out
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class Vgg16Bn(nn.Module):
    """kuangliu/pytorch-cifar's VGG('VGG16')."""

    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, channels=3, classes=10):
        super().__init__()
        layers, width = [], channels
        for c in self.CFG:
            if c == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(True)]
                width = c
        layers.append(nn.AvgPool2d(1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def conv_bn(i, o, k, stride, groups=1):
    return nn.Sequential(nn.Conv2d(i, o, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(o), nn.ReLU6(True))


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual (same module names)."""

    def __init__(self, i, o, stride, t):
        super().__init__()
        hidden = i * t
        self.use_res_connect = stride == 1 and i == o
        layers = [] if t == 1 else [conv_bn(i, hidden, 1, 1)]
        layers += [conv_bn(hidden, hidden, 3, stride, hidden),
                   nn.Conv2d(hidden, o, 1, 1, 0, bias=False), nn.BatchNorm2d(o)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 with the CIFAR strides (stem and second stage stride 1)."""

    STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, channels=3, classes=10):
        super().__init__()
        features, width = [conv_bn(channels, 32, 3, 1)], 32
        for t, c, n, s in self.STAGES:
            for r in range(n):
                features.append(InvertedResidual(width, c, s if r == 0 else 1, t))
                width = c
        features.append(conv_bn(320, 1280, 1, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


class Mlp(nn.Module):
    """An nn.Sequential of Linear/Tanh pairs (keys 0, 2, 4, 6, 8)."""

    def __init__(self, features, classes):
        super().__init__()
        layers, width = [], features
        for h in (1024, 512, 256, 128):
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))

    def state_dict(self, *args, **kwargs):
        # As `torch.save(nn.Sequential(...).state_dict())` writes it: keys 0.weight, 2.weight, …
        return self.net.state_dict(*args, **kwargs)


ZOO = {
    "small-cnn": lambda: SmallCnn(),
    "ml-leaks-cnn": lambda: MlLeaksCnn(),
    "resnet20": lambda: ResNet20(),
    "vgg16-bn": lambda: Vgg16Bn(),
    "mobilenet-v2": lambda: MobileNetV2(),
    "mlp": lambda: Mlp(3 * 32 * 32, 10),
}


def load_cifar(data, n, offset):
    raw = np.fromfile(f"{data}/cifar-10/cifar-10-batches-bin/data_batch_5.bin", np.uint8)
    raw = raw.reshape(-1, 3073)[offset:offset + n]
    labels = raw[:, 0].astype(np.int64)
    chw = raw[:, 1:].reshape(-1, 3, 32, 32)
    return chw, labels


def normalise(chw):
    x = torch.from_numpy(chw.astype(np.float32) / 255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train(arch, x, y, idx, epochs, seed):
    torch.manual_seed(seed)
    model = ZOO[arch]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    idx = torch.from_numpy(np.flatnonzero(idx))
    model.train()
    for _ in range(epochs):
        order = idx[torch.randperm(len(idx), generator=g)]
        for s in range(0, len(order), 64):
            b = order[s:s + 64]
            xb = x[b]
            # The usual CIFAR augmentation: random horizontal flips.
            flip = torch.rand(len(b), generator=g) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), y[b]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def logits(model, x):
    return torch.cat([model(x[s:s + 250]) for s in range(0, len(x), 250)]).numpy()


def save_weights(model, path_pt, path_st):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path_pt:
        torch.save(state, path_pt)
    if path_st:
        save_file(state, path_st)


def paper(a):
    chw, labels = load_cifar(a.data, a.population, a.offset)
    x, y = normalise(chw), torch.from_numpy(labels)
    rng = np.random.default_rng(a.seed)
    member = rng.random(a.population) < 0.5
    keep = rng.random((a.shadows, a.population)) < 0.5
    out = os.path.join(a.out, a.arch)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    target = train(a.arch, x, y, member, a.epochs, a.seed)
    save_weights(target, f"{out}/target.pt", f"{out}/target.safetensors")
    np.save(f"{out}/logits.npy", logits(target, x).astype(np.float32))
    shadows = []
    for s in range(a.shadows):
        shadows.append(logits(train(a.arch, x, y, keep[s], a.epochs, a.seed + 1 + s), x))
        print(f"{a.arch}: shadow {s + 1}/{a.shadows} ({time.time() - t0:.0f} s)", file=sys.stderr)
    np.save(f"{out}/shadows.npy", np.stack(shadows).astype(np.float32))
    np.save(f"{out}/keep.npy", keep)
    np.save(f"{out}/labels.npy", labels)
    np.save(f"{out}/member.npy", member)
    np.save(f"{out}/images.npy", np.ascontiguousarray(chw.transpose(0, 2, 3, 1)))
    with open(f"{out}/preprocess.toml", "w") as f:
        f.write(f"input = \"3x32x32\"\nclasses = 10\nmean = {list(MEAN)}\nstd = {list(STD)}\n"
                f"dataset = \"CIFAR-10\"\nclass_names = {json.dumps(CLASSES)}\n")
    pred = logits(target, x).argmax(1)
    acc_in = float((pred[member] == labels[member]).mean())
    acc_out = float((pred[~member] == labels[~member]).mean())
    print(json.dumps({"arch": a.arch, "population": a.population, "shadows": a.shadows,
                      "epochs": a.epochs, "train_acc": acc_in, "test_acc": acc_out,
                      "seconds": round(time.time() - t0, 1), "torch": torch.__version__}))


def fixtures(a):
    """The test fixtures: a small paper (a small CNN target and 4 shadows on the first 400
    images of data_batch_5, saved as safetensors with the .npy contract) and a ResNet-20
    trained briefly on the same images, saved as .pt with its logits on the first 64. The
    images themselves are not committed: the tests read them from the shared data."""
    a.population, a.offset, a.shadows, a.epochs, a.arch, a.out = 400, 0, 4, 15, "small-cnn", a.fixtures
    paper(a)
    out = os.path.join(a.fixtures, "small-cnn")
    os.replace(out, os.path.join(a.fixtures, "paper"))
    out = os.path.join(a.fixtures, "paper")
    for f in ("target.pt", "images.npy"):
        os.remove(f"{out}/{f}")
    chw, labels = load_cifar(a.data, 400, 0)
    x, y = normalise(chw), torch.from_numpy(labels)
    resnet = train("resnet20", x, y, np.ones(400, bool), 3, 1)
    save_weights(resnet, f"{a.fixtures}/resnet20.pt", None)
    np.save(f"{a.fixtures}/resnet20.logits.npy", logits(resnet, x[:64]).astype(np.float32))
    print(json.dumps({"fixtures": a.fixtures, "torch": torch.__version__}))


def checkpoint_fixture(path):
    """A training checkpoint as many papers save it: the state_dict of a small CNN (1 x 4 x 4
    inputs, 3 classes, 9 k parameters) inside a dictionary with the epoch, for the test of
    `mia import --top-level-key`."""
    torch.manual_seed(5)
    model = SmallCnn(channels=1, size=4, classes=3)
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)


def check_zoo(a):
    """Every architecture, random weights and batch-norm statistics, its logits on 100 images."""
    os.makedirs(a.check_zoo, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, 32, 32, generator=g)
    np.save(f"{a.check_zoo}/inputs.npy", x.numpy())
    for arch, make in ZOO.items():
        torch.manual_seed(1)
        model = make()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.data.uniform_(0.5, 1.5, generator=g)
                m.bias.data.normal_(0, 0.2, generator=g)
        model.eval()
        save_weights(model, f"{a.check_zoo}/{arch}.pt", f"{a.check_zoo}/{arch}.safetensors")
        np.save(f"{a.check_zoo}/{arch}.logits.npy", logits(model, x).astype(np.float32))
        print(f"{arch}: {len(model.state_dict())} tensors", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--arch", default="resnet20", choices=sorted(ZOO))
    p.add_argument("--out")
    p.add_argument("--population", type=int, default=2000)
    p.add_argument("--offset", type=int, default=0, help="first image of data_batch_5")
    p.add_argument("--shadows", type=int, default=8)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--fixtures")
    p.add_argument("--check-zoo")
    p.add_argument("--checkpoint-fixture", metavar="FILE")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.checkpoint_fixture:
        checkpoint_fixture(a.checkpoint_fixture)
    elif a.fixtures:
        fixtures(a)
    elif a.check_zoo:
        check_zoo(a)
    elif a.out:
        paper(a)
    else:
        p.error("give --out, --fixtures or --check-zoo")


if __name__ == "__main__":
    main()
