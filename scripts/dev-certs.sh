#!/usr/bin/env bash
# Makes a throwaway CA and a serving certificate for local runs, unless they already exist.
#
#   scripts/dev-certs.sh DIR [SAN ...]
#
# Writes DIR/ca.crt, DIR/tls.crt, DIR/tls.key. The certificate always carries DNS:localhost and
# IP:127.0.0.1; extra SANs (e.g. DNS:cgpu-guard.cgpu-guard.svc) may be added. Not for production:
# the CA key is left next to it, unprotected.
set -euo pipefail
dir="${1:?usage: dev-certs.sh DIR [SAN ...]}"
shift
mkdir -p "$dir"
if [[ -s "$dir/tls.crt" && -s "$dir/tls.key" && -s "$dir/ca.crt" ]]; then
  exit 0
fi
sans="DNS:localhost,IP:127.0.0.1"
for san in "$@"; do sans+=",$san"; done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=cgpu-guard local CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=cgpu-guard" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 90 -out "$dir/tls.crt" \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans") 2>/dev/null
rm -f "$dir/tls.csr" "$dir/ca.srl"
echo "dev-certs: wrote $dir/{ca.crt,tls.crt,tls.key} for $sans" >&2
