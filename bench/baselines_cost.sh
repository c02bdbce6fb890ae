#!/usr/bin/env bash
# The ten-recipe table's training-cost column, timed quietly: each recipe's target of bench/baselines.sh
# trained once more, one after another, into runs/baselines-cost/NAME (the same flags, split
# and seed, so the same model), and a table of the seconds and their ratio to ERM's.
# The harness's own targets and shadows are trained while other jobs share the cores (two
# shadows at a time, attacks, builds), so their seconds are not comparable across recipes; run
# this on an otherwise idle machine.
# Usage: bash bench/baselines_cost.sh [CIFAR10_DIR] [RECIPE ...]   (default ../shared/data/cifar-10,
# the ten recipes). MIA=path/to/mia picks the binary (default: cargo run --release).
# A finished recipe is kept (delete its folder to time it again); `python3
# bench/baselines_table.py --cost runs/baselines-cost ...` puts these seconds in the table.
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:-../shared/data/cifar-10}"
shift || true
MIA="${MIA:-cargo run --release -q -p mia-cli --}"
MODEL="${MODEL:-small-cnn}"
suffix=""
[[ $MODEL == small-cnn ]] || suffix="-$MODEL"
OUT=runs/baselines-cost$suffix
# The recipes' one home is bench/baselines.sh: read its `common` flags and `recipe` table.
eval "$(sed -n '/^common=(/,/)$/p; /^\[\[ -z "\${DEVICE/p; /^declare -A recipe=(/,/^)$/p' bench/baselines.sh |
  sed "s|\"\$D\"|\"$D\"|; s|\$OUT/|runs/baselines$suffix/|g")"
order=(erm relaxloss hamp distillation advreg mixup-mmd selena dp-eps8 dp-eps4 dp-eps1)
(($#)) && order=("$@")
mkdir -p "$OUT"
for name in "${order[@]}"; do
  [[ -n "${recipe[$name]:-}" ]] || { echo "error: no recipe named $name" >&2; exit 2; }
  run="$OUT/$name"
  [[ -f $run/summary.json ]] && continue
  rm -rf "$run"
  # shellcheck disable=SC2086  # the recipe is a list of flags
  $MIA train "${common[@]}" ${recipe[$name]} --out "$run"
done
python3 - "$OUT" "${order[@]}" <<'EOF'
import json, sys
from pathlib import Path
out, names = Path(sys.argv[1]), sys.argv[2:]
seconds = {n: json.loads((out / n / "summary.json").read_text())["wall_seconds"] for n in names}
erm = seconds.get("erm")
print("| recipe | train s | × ERM |\n|---|---|---|")
for n in names:
    ratio = f"{seconds[n] / erm:.1f}×" if erm else "–"
    print(f"| {n} | {seconds[n]:.0f} | {ratio} |")
EOF
