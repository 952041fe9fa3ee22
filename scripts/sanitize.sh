#!/usr/bin/env bash
# Builds cgpu-guard and its tests with sanitizers into their own build directory and runs the
# whole test suite there (the benchmark smoke run and the chart tests drive the plain build's
# binary and are left to it). Part of scripts/test.sh.
#
#   scripts/sanitize.sh address,undefined   # ASan + UBSan (clang-14): memory errors, leaks,
#                                           # undefined behaviour; also builds the fuzz targets
#   scripts/sanitize.sh thread              # TSan (clang-14): data races, lock-order inversions
#   BUILD_ONLY=1 scripts/sanitize.sh ...    # configure and build, run nothing
#
# A sanitizer report aborts the process that made it (-fno-sanitize-recover, halt_on_error), so
# it fails its test. -O0 and line tables only (-g1): the build is most of the time here, and
# -O1 (what the sanitizers and libFuzzer recommend) triples the compile time of the heaviest
# files for tests that mostly wait on sockets and child processes; the fuzzers run fewer
# inputs a second for it.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers="${1:?usage: scripts/sanitize.sh address,undefined|thread}"
build_dir="build-$(tr ',' '-' <<<"$sanitizers")"
# clang for both: it compiles the test programs at -O0 about 30% faster than gcc, and the
# ASan + UBSan build has the libFuzzer targets too (scripts/fuzz.sh runs them).
export CC=clang-14 CXX=clang++-14
extra=()
if [[ $sanitizers == address,undefined ]]; then extra=(-DCGPU_FUZZ=ON); fi
# A build directory configured with another compiler cannot be switched over: start it again.
if [[ -f $build_dir/CMakeCache.txt ]] &&
  ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=.*${CXX:-c++}" "$build_dir/CMakeCache.txt"; then
  rm -rf "$build_dir"
fi
BUILD_DIR="$build_dir" BUILD_TYPE=RelWithDebInfo scripts/build.sh -DCGPU_SANITIZE="$sanitizers" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1" "${extra[@]}"
if [[ -n ${BUILD_ONLY:-} ]]; then exit 0; fi
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
cd "$build_dir"
ctest --output-on-failure -j "$((3 * $(nproc)))" --timeout 300
