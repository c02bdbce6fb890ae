#!/usr/bin/env bash
# Builds the prepared labs the page ships (web/labs/NAME.json from NAME.toml) with
# `mia prepare-lab`: images drawn from the bundle's reference non-members (CIFAR-10 images
# the shipped models never trained on). web/build.sh copies them into the site's labs/.
# Usage: bash web/labs/make.sh [path/to/mia]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -gt 0 ]; then mia=("$1"); else mia=(cargo run --quiet --locked --bin mia --); fi
for spec in web/labs/*.toml; do
  "${mia[@]}" prepare-lab "$spec" --bundle pretrained --out "${spec%.toml}.json"
done
