#!/usr/bin/env bash
# Writes crates/vendor/burn-flex.diff: the patched copy against burn-flex 0.22.1 as published.
set -euo pipefail
cd "$(dirname "$0")"
upstream=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/burn-flex-0.22.1 2>/dev/null | head -1)
if [[ -z "$upstream" ]]; then
  echo "error: burn-flex 0.22.1 is not in cargo's registry cache" >&2
  echo "hint: run 'cargo fetch' in a checkout without the [patch.crates-io] entry" >&2
  exit 1
fi
# diff exits 1 when the trees differ (expected) and 2 on trouble.
rc=0
diff -ruN -x Cargo.lock -x Cargo.toml.orig -x .cargo-ok -x .cargo_vcs_info.json \
  -x ARCHITECTURE.md -x BENCHMARKS.md -x COMPARISON.md -x PATCH.md \
  "$upstream" burn-flex > burn-flex.diff.tmp || rc=$?
if ((rc > 1)); then
  rm -f burn-flex.diff.tmp
  echo "error: diff failed ($rc)" >&2
  exit 1
fi
sed -e "s#$upstream#burn-flex-0.22.1#g" -e "s#^\(---\|+++\) \([^\t]*\)\t.*#\1 \2#" burn-flex.diff.tmp > burn-flex.diff
rm -f burn-flex.diff.tmp
echo "wrote crates/vendor/burn-flex.diff ($(grep -c '^+++' burn-flex.diff) files)"
