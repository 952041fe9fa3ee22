#!/usr/bin/env bash
# Installs everything cgpu-guard needs to build, test and run, from Debian's packages.
# Idempotent: packages already present are skipped, so a second run costs one dpkg query.
# Used by the README's commands, .ci/run and the Dockerfile alike.
#
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --runtime  only the shared libraries the binary loads
set -euo pipefail

build_packages=(
  build-essential cmake pkg-config ca-certificates openssl
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  prometheus            # promtool, for checking the /metrics exposition
  curl
)
runtime_packages=(
  ca-certificates libssl3 libcpp-httplib0.11 libyaml-cpp0.7 libprometheus-cpp-core1.0
)

packages=("${build_packages[@]}")
if [[ "${1:-}" == "--runtime" ]]; then packages=("${runtime_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # --no-install-recommends keeps prometheus from pulling in a web UI stack we do not use.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all packages present" >&2
fi
