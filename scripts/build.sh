#!/usr/bin/env bash
# Configures and builds cgpu-guard into build/ (or $BUILD_DIR), with its tests and benchmark
# unless BUILD_TESTS=OFF (the binary alone: what serving needs). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DCGPU_GUARD_BUILD_TESTS="${BUILD_TESTS:-ON}" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
