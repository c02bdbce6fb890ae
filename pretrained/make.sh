#!/usr/bin/env bash
# Regenerates the shipped bundle in pretrained/ with MIA Lab's own trainer on real CIFAR-10:
# five small-CNN targets on the same split (2 500 members), their shadows, the native attacks,
# then `mia export`. CPU-feasible: about 75 s per model on 2 cores (flex), ~45 min in all.
# Usage: bash pretrained/make.sh [CIFAR10_DIR]   (default ../shared/data/cifar-10)
# Finished models and shadows in runs/bundle/ are reused, so it can be re-run after a stop.
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:-../shared/data/cifar-10}"
MIA="${MIA:-cargo run --release -q -p mia-cli --}"
common=(--dataset cifar10 --data-dir "$D" --model small-cnn --members 2500 --epochs 20 --seed 0)
train() {
  local name=$1; shift
  [[ -f runs/bundle/$name/summary.json ]] || $MIA train "${common[@]}" "$@" --out "runs/bundle/$name"
}
train erm --defense erm
train label-smoothing --defense label-smoothing --epsilon 0.1
train confidence-penalty --defense confidence-penalty --beta 1.0
train relaxloss --defense relaxloss --alpha 1.0
train dropout --defense erm --dropout 0.5
# LiRA statistics from 16 shadows for ERM, 4 for the others (adaptive: same defense).
$MIA shadows --run runs/bundle/erm --count 16 --queries 1 --population 500
for m in label-smoothing confidence-penalty relaxloss dropout; do
  $MIA shadows --run "runs/bundle/$m" --count 4 --queries 1 --population 500
done
for m in erm label-smoothing confidence-penalty relaxloss dropout; do
  $MIA attack --run "runs/bundle/$m" > "runs/bundle/$m.attack.txt"
done
rm -rf pretrained/*.bpk pretrained/*.bin pretrained/manifest.json
$MIA export --run runs/bundle/erm --run runs/bundle/label-smoothing \
  --run runs/bundle/confidence-penalty --run runs/bundle/relaxloss --run runs/bundle/dropout \
  --out pretrained --reference 1000 \
  --provenance "bash pretrained/make.sh: CIFAR-10 (official binary), small-cnn, 2500 members, 20 epochs, Adam 1e-3, batch 32, seed 0, flex CPU; shadows: 16 (erm) / 4 (others), adaptive"
