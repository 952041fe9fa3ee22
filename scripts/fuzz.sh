#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz/), built with clang-14, ASan and UBSan in the sanitizer
# build (build-address-undefined/, made by scripts/sanitize.sh), each for SECONDS (default 20)
# from a seed corpus of the repository's own fixtures plus what earlier runs found. A crash leaves
# its input in build-address-undefined/crashes/<target>/ and fails the script; every crash found
# so far has become a regular test.
#
#   scripts/fuzz.sh            # 20 s per target
#   scripts/fuzz.sh 10         # what scripts/test.sh runs
#   scripts/fuzz.sh 600        # the long run documented in README "Tests"
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
build_dir=build-address-undefined
BUILD_ONLY=1 scripts/sanitize.sh address,undefined

declare -A seeds=(
  [fuzz_admission_review]="tests/fixtures/upstream"
  [fuzz_rules]="rules"
  [fuzz_kubeconfig]="tests/fuzz/corpus/kubeconfig"
  [fuzz_list_watch]="tests/fixtures/nodes tests/fixtures/upstream"
  [fuzz_versions]="tests/fixtures/host-facts"
)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
fuzz_one() {
  local target=$1 corpus="$build_dir/corpus/$1" crashes="$build_dir/crashes/$1"
  mkdir -p "$corpus" "$crashes"
  # shellcheck disable=SC2086  # seed directories are a word list
  if "$build_dir/tests/fuzz/$target" -max_total_time="$seconds" -max_len=262144 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$crashes/" -print_final_stats=1 \
      "$corpus" ${seeds[$target]} >"$build_dir/$target.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build_dir/$target.log")
    echo "fuzz: $target: ${runs:-?} inputs in ${seconds}s, no crash"
  else
    echo "fuzz: $target FAILED; input in $crashes, log $build_dir/$target.log" >&2
    tail -30 "$build_dir/$target.log" >&2
    return 1
  fi
}
# One target per core at a time: each fuzzer is single-threaded.
failed=0
running=0
for target in fuzz_admission_review fuzz_rules fuzz_kubeconfig fuzz_list_watch fuzz_versions; do
  if ((running >= $(nproc))); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
