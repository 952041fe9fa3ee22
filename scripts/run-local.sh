#!/usr/bin/env bash
# Installs what is missing, builds, makes a throwaway certificate, and serves the webhook on
# loopback: https://127.0.0.1:8443/validate, metrics on http://127.0.0.1:9090/metrics, with the
# built-in rules and the demo cluster state in scripts/local/cluster-state.json.
# Extra arguments go to `cgpu-guard serve` (see build/cgpu-guard serve --help).
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what building the binary and serving need; scripts/test.sh installs and builds the rest.
scripts/install-deps.sh --serve
BUILD_TESTS=OFF scripts/build.sh
certs=.local/certs
scripts/dev-certs.sh "$certs"
exec build/cgpu-guard serve \
  --listen 127.0.0.1:8443 --metrics-listen 127.0.0.1:9090 \
  --tls-cert "$certs/tls.crt" --tls-key "$certs/tls.key" \
  --cluster-state scripts/local/cluster-state.json "$@"
