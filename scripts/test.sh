#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. This is what CI runs:
#   0. the C++ sources formatted as .clang-format says (scripts/format-check.sh);
#   1. the plain build (what ships) and the whole suite, with the benchmark smoke run and the
#      chart tests;
#   2. the suite again built with ASan + UBSan (clang-14), and the libFuzzer targets of that
#      build for FUZZ_SECONDS (default 10) each;
#   3. the suite again built with TSan (clang-14; the test programs whose code runs on several
#      threads).
# Each step prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
  local name=$1 start=$SECONDS
  shift
  echo "== $name" >&2
  "$@"
  echo "== $name: $((SECONDS - start)) s" >&2
}
plain_suite() {
  scripts/build.sh
  # Three times as many tests as cores: most of them wait on a child process or a socket, and
  # none depends on how long anything takes.
  (cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "$((3 * $(nproc)))" --timeout 300)
}
step "install" scripts/install-deps.sh
step "format" scripts/format-check.sh
step "plain build and suite" plain_suite
step "ASan + UBSan build and suite" scripts/sanitize.sh address,undefined
step "fuzzing" scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
step "TSan build and suite" scripts/sanitize.sh thread
