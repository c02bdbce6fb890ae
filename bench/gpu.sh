#!/usr/bin/env bash
# The GPU check of the burn-flex patch, ready for a machine with an NVIDIA GPU and a Vulkan driver:
#   1. builds the `mia` CLI (release, wgpu backend; with CUDA=1 also burn's CUDA backend),
#   2. trains one ResNet-20 epoch on real CIFAR-10 on wgpu (when $MIA_SHARED_DATA or
#      ../shared/data holds cifar-10/), and prints the run's summary,
#   3. runs `mia bench --only training --devices flex,wgpu[,cuda]` on both models, which times
#      PyTorch on CUDA in the same run when `python3 -c 'import torch'` works and a CUDA device
#      is visible to it (the rows say "reference unavailable" otherwise).
# Everything it writes goes under $OUT (default: runs/gpu): build.log, train/, bench.json,
# bench.md. Target: under 10 minutes on a 16-core machine with a warm cargo registry.
#
# Usage: bash bench/gpu.sh            (OUT=/somewhere IMAGES=4096 CUDA=1 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
IMAGES="${IMAGES:-4096}"
mkdir -p "$OUT"
started=$SECONDS
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

echo "== GPU and Vulkan"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || {
  echo "error: nvidia-smi found no NVIDIA GPU" >&2
  exit 1
}
if ! ldconfig -p | grep -q libvulkan; then
  echo "error: no Vulkan loader (libvulkan1); wgpu cannot reach the GPU" >&2
  echo "hint: apt-get install libvulkan1, or see the device notes on bringing the loaders" >&2
  exit 1
fi

echo "== build (release)"
features=()
devices="flex,wgpu"
if [[ "${CUDA:-0}" == 1 ]]; then
  features=(--features cuda)
  devices="flex,wgpu,cuda"
fi
cargo build --release --locked -p mia-cli "${features[@]}" >"$OUT/build.log" 2>&1 || {
  tail -30 "$OUT/build.log" >&2
  exit 1
}
MIA="${CARGO_TARGET_DIR:-target}/release/mia"
echo "   $((SECONDS - started)) s"

data="${MIA_SHARED_DATA:-../shared/data}"
if [[ -d "$data/cifar-10" ]]; then
  # 20 000 members + 20 000 non-members + 5 000 test fit CIFAR-10's 50 000 training images.
  echo "== one ResNet-20 epoch on CIFAR-10 (20 000 members), wgpu"
  rm -rf "$OUT/train"
  t=$SECONDS
  "$MIA" train --dataset cifar10 --data-dir "$data/cifar-10" --model resnet20 \
    --members 20000 --epochs 1 --batch-size 128 --device wgpu --out "$OUT/train"
  echo "   $((SECONDS - t)) s (summary: $OUT/train/summary.json)"
else
  echo "== no CIFAR-10 under $data: skipping the real-data epoch"
fi

echo "== mia bench --devices $devices"
"$MIA" bench --only training --devices "$devices" --models small-cnn,resnet20 \
  --images "$IMAGES" --batch 128 --json "$OUT/bench.json" | tee "$OUT/bench.md"
echo "== done in $((SECONDS - started)) s"
