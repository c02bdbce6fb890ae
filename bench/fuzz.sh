#!/usr/bin/env bash
# Long fuzzing run of every reader of untrusted bytes (tests/fuzz.rs): SECONDS per target
# (default 60), seed SEED (default: the time), in the test profile (dependencies optimised).
# The test fuzzes in a child process under an 8 GiB address-space limit, so an unbounded
# allocation fails the run instead of exhausting memory; the last "fuzzing TARGET" line on
# stderr names the target. Prints one line per target (executions, executions/s, share
# accepted). A crash saves its input under tests/fuzz/crashers/TARGET/ (commit it: the test
# command replays every saved crasher).
# MIA_FUZZ_TARGETS=lab-file,weights (names as printed) fuzzes only those.
# Usage: bash bench/fuzz.sh [SECONDS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export MIA_FUZZ_SECONDS="${1:-60}"
export MIA_FUZZ_SEED="${2:-$(date +%s)}"
echo "fuzz: ${MIA_FUZZ_SECONDS} s per target, seed ${MIA_FUZZ_SEED}"
cargo test --locked --test fuzz -- --nocapture --test-threads 1
