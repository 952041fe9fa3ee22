#!/usr/bin/env bash
# Builds cgpu-guard and its tests with sanitizers into their own build directory and runs the
# test suite there. Part of scripts/test.sh.
#
#   scripts/sanitize.sh address,undefined   # ASan + UBSan: memory errors, leaks, undefined behaviour
#   scripts/sanitize.sh thread              # TSan: data races, lock-order inversions
#
# The benchmark smoke run and the chart tests (Node.js) are left to the plain build: they drive
# the same binary and would only be slower here. A sanitizer report aborts the process that
# made it (-fno-sanitize-recover, halt_on_error), so it fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers="${1:?usage: scripts/sanitize.sh address,undefined|thread}"
build_dir="build-$(tr ',' '-' <<<"$sanitizers")"
# -O0: the build is most of the time here, and unoptimised stacks read best.
BUILD_DIR="$build_dir" BUILD_TYPE=RelWithDebInfo scripts/build.sh -DCGPU_SANITIZE="$sanitizers" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" --timeout 300 -E '^(bench|deploy)\.'
