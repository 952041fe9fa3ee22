#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang-14, ASan and UBSan into build-fuzz/ and
# runs each for SECONDS (default 20) from a seed corpus of the repository's own fixtures.
# A crash leaves its input in build-fuzz/crashes/<target>/ and fails the script; every crash found
# so far has become a regular test.
#
#   scripts/fuzz.sh            # 20 s per target (what the test suite runs)
#   scripts/fuzz.sh 600        # the long run documented in README "Tests"
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
build_dir="${FUZZ_BUILD_DIR:-build-fuzz}"
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCGPU_FUZZ=ON -DCGPU_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target fuzz_targets

declare -A seeds=(
  [fuzz_admission_review]="tests/fixtures/upstream"
  [fuzz_rules]="rules"
  [fuzz_kubeconfig]="tests/fuzz/corpus/kubeconfig"
  [fuzz_list_watch]="tests/fixtures/nodes tests/fixtures/upstream"
  [fuzz_versions]="tests/fixtures/host-facts"
)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
failed=0
for target in fuzz_admission_review fuzz_rules fuzz_kubeconfig fuzz_list_watch fuzz_versions; do
  corpus="$build_dir/corpus/$target"
  crashes="$build_dir/crashes/$target"
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
    failed=1
  fi
done
exit "$failed"
