#!/usr/bin/env bash
# The ten-recipe table (docs/results.md, "Ten training recipes, 16 adaptive shadows each"): CIFAR-10,
# small CNN, 2 500 members, 20 epochs, seed 0, the same split for every recipe (a validation
# part of 2 500 is the reference set of MMD and AdvReg and the transfer set of
# distillation; SELENA at K = 5, L = 2: the paper's L/K at a quarter of its cost); 16
# adaptive shadows per recipe (each trained with that recipe), 4 queries, a population of
# 500; every attack; one report.
# The recipes of the 16-shadow defense table (pruning, SynthShield, PPB, AdaMixup, mixup) share the same split and ERM.
# Usage: bash bench/baselines.sh [CIFAR10_DIR] [RECIPE ...]   (default ../shared/data/cifar-10,
# every recipe). MIA=path/to/mia picks the binary (default: cargo run --release); SHADOWS=N
# trains N shadows per recipe instead of 16 (a later run with more reuses them; 0: the targets
# and the attacks that need no shadows only). NETWORK_EPOCHS and NETWORK_ROWS set the neural
# attack models' budget (default 30 epochs on 10 000 shadow rows, i.e. SAMIA on the first 2
# shadows: about 3.5 min of SAMIA per recipe on 2 cores; mia attack's own defaults, the paper's
# 100 epochs on 20 000 rows, take about 23 min). MODEL=resnet20 (default small-cnn) runs the
# same table for another architecture into runs/baselines-MODEL and
# bench/results/baselines-MODEL; DEVICE=wgpu (or cuda) trains the targets, and so their
# shadows, on a GPU.
# Finished targets, shadows and attack tables in runs/baselines/ are reused and an interrupted
# target resumes, so it can be re-run after a stop (FORCE_ATTACK=1 reruns every attack).
# A recipe attacked with 16 or more shadows is also archived in
# bench/results/baselines/NAME.tar.gz: what the report reads (summary, config, metrics, the
# candidates' indices and labels, the attack outputs), without weights, checkpoints, split,
# logits or shadows; 0.4–1.1 MB. Commit it: a later run on a fresh machine unpacks it instead of
# training again, and skips a recipe so unpacked (no weights). Delete it to redo the recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:-../shared/data/cifar-10}"
shift || true
MIA="${MIA:-cargo run --release -q -p mia-cli --}"
MODEL="${MODEL:-small-cnn}"
suffix=""
[[ $MODEL == small-cnn ]] || suffix="-$MODEL"
OUT=runs/baselines$suffix
SHADOWS="${SHADOWS:-16}"
NETWORK=(--network-epochs "${NETWORK_EPOCHS:-30}" --max-network-rows "${NETWORK_ROWS:-10000}")
common=(--dataset cifar10 --data-dir "$D" --model "$MODEL" --members 2500 --epochs 20 --seed 0
  --val 2500)
[[ -z "${DEVICE:-}" ]] || common+=(--device "$DEVICE")
declare -A recipe=(
  [erm]="--defense erm"
  # λ 30: with the MMD term in every training step, MLHospital's λ 3 left the model as mixup
  # alone leaves it (train / test accuracy 0.941 / 0.501 against 0.952 / 0.501).
  [mixup-mmd]="--mixup 1 --mmd 30"
  [distillation]="--distill 4"
  [advreg]="--advreg 1"
  [selena]="--selena 5 --selena-excluded 2"
  [relaxloss]="--defense relaxloss --alpha 1.0"
  [hamp]="--defense hamp --hamp-gamma 0.9 --alpha 0.01"
  [dp-eps8]="--dp-clip 1 --target-epsilon 8"
  [dp-eps4]="--dp-clip 1 --target-epsilon 4"
  [dp-eps1]="--dp-clip 1 --target-epsilon 1"
  # Pruning (global L1) then 10 fine-tuning epochs at a tenth of the learning rate,
  # on the members (mia_prune's baseline) or on synthetic images (SynthShield) from MIA Lab's
  # generator, trained on the ERM run's shadow pool.
  [prune50-members]="--prune 0.5 --finetune-epochs 10"
  [prune75-members]="--prune 0.75 --finetune-epochs 10"
  [synthshield50]="--prune 0.5 --finetune-epochs 10 --synthetic-dir $OUT/synthetic"
  [synthshield75]="--prune 0.75 --finetune-epochs 10 --synthetic-dir $OUT/synthetic"
  [ppb]="--defense ppb --lambda 4"
  [adamixup]="--adamixup 0.4"
  [mixup]="--mixup 1"
)
# HAMP is both halves: its training, then its output modification at attack time (the
# report's inference rows, naive and adaptive attacker).
declare -A attack_extra=(
  [hamp]="--inference-defense hamp"
)
order=(erm mixup-mmd distillation advreg selena hamp relaxloss dp-eps8 dp-eps4 dp-eps1
  prune50-members prune75-members synthshield50 synthshield75 ppb adamixup mixup)
(($#)) && order=("$@")

ARCHIVE=bench/results/baselines$suffix
mkdir -p "$ARCHIVE"
for name in "${order[@]}"; do
  [[ -n "${recipe[$name]:-}" ]] || { echo "error: no recipe named $name" >&2; exit 2; }
  run="$OUT/$name"
  if [[ -f $ARCHIVE/$name.tar.gz && ! -f $run/model.bpk ]]; then
    if [[ ! -f $run/summary.json ]]; then
      echo "== $name: unpacking $ARCHIVE/$name.tar.gz (delete it to train and attack again)"
      mkdir -p "$OUT"
      tar -xzf "$ARCHIVE/$name.tar.gz" -C "$OUT"
    fi
    continue
  fi
  if [[ $name == synthshield* && ! -f $OUT/synthetic/generator.json ]]; then
    [[ -f $OUT/erm/summary.json ]] || { echo "error: $name needs the erm run first" >&2; exit 2; }
    $MIA generate --run "$OUT/erm" --out "$OUT/synthetic" --images 5000 --epochs 10
  fi
  if [[ ! -f $run/summary.json ]]; then
    resume=()
    [[ -f $run/config.json ]] && resume=(--resume)
    # shellcheck disable=SC2086  # the recipe is a list of flags
    $MIA train "${common[@]}" ${recipe[$name]} --out "$run" "${resume[@]}"
  fi
  if ((SHADOWS > 0)); then
    $MIA shadows --run "$run" --count "$SHADOWS" --queries 4 --population 500
  fi
  # An attack table newer than the run's shadows is kept (FORCE_ATTACK=1 redoes it); the table
  # is written to a temporary file first, so an interrupted attack leaves none.
  if [[ -z "${FORCE_ATTACK:-}" && -s $run.attack.txt && $run.attack.txt -nt $run/shadows
    && $run.attack.txt -nt $run/summary.json ]]; then
    continue
  fi
  # shellcheck disable=SC2086  # the extras are a list of flags
  $MIA attack --run "$run" "${NETWORK[@]}" ${attack_extra[$name]:-} > "$run.attack.txt.part"
  mv "$run.attack.txt.part" "$run.attack.txt"
  if ((SHADOWS >= 16)); then
    tar -czf "$ARCHIVE/$name.tar.gz.part" -C "$OUT" --exclude='*.bpk' --exclude=checkpoint \
      --exclude=shadows --exclude=split.json --exclude=logits.npy "$name" "$name.attack.txt"
    mv "$ARCHIVE/$name.tar.gz.part" "$ARCHIVE/$name.tar.gz"
  fi
done
runs=()
for name in "${order[@]}"; do runs+=("$OUT/$name"); done
$MIA report "${runs[@]}" --out "$OUT/report"
