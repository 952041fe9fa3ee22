#!/usr/bin/env bash
# Gives the webhook of deploy/cgpu-guard.yaml its serving certificate: makes a CA and a
# certificate for <name>.<namespace>.svc, stores them in the kubernetes.io/tls Secret
# <name>-tls that the pods mount, and puts the CA into the caBundle of every webhook of the
# ValidatingWebhookConfiguration <name>. The CA's private key is thrown away.
#
#   deploy/tls.sh [--namespace NS] [--name NAME] [--days N] [--rotate]
#   deploy/tls.sh --print DIR [--namespace NS] [--name NAME]   # write files only, no cluster
#
# Run it after `kubectl apply -f deploy/`. Again later, it keeps the Secret and only refreshes
# caBundle (a re-apply of the manifests leaves caBundle alone). --rotate makes a new CA and
# certificate: caBundle then trusts the old and the new CA while the pods re-read the Secret
# (the kubelet updates the files within about a minute, the server re-reads them every 10s);
# run the script once more without --rotate afterwards to drop the old CA.
# Needs openssl, base64 and kubectl ($KUBECTL) with rights on the namespace's Secrets and on
# ValidatingWebhookConfigurations.
set -euo pipefail

namespace=cgpu-guard
name=cgpu-guard
days=3650
rotate=false
print_dir=""
while (($#)); do
  case "$1" in
    --namespace | -n) namespace="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --rotate) rotate=true; shift ;;
    --print) print_dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tls.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
kubectl="${KUBECTL:-kubectl}"
secret="$name-tls"
service_dns="$name.$namespace.svc"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The CA already trusted, from the Secret in the cluster, if there is one.
old_ca=""
if [[ -z "$print_dir" ]]; then
  old_ca=$("$kubectl" -n "$namespace" get secret "$secret" --ignore-not-found \
    -o 'jsonpath={.data.ca\.crt}' | base64 -d)
fi

if [[ -n "$old_ca" ]] && ! $rotate; then
  echo "tls.sh: Secret $namespace/$secret exists; keeping it (--rotate replaces it)" >&2
  printf '%s\n' "$old_ca" >"$work/bundle.crt"
else
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=$name-ca" -keyout "$work/ca.key" -out "$work/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$service_dns" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf '%s\n' \
    "subjectAltName=DNS:$name,DNS:$name.$namespace,DNS:$service_dns,DNS:$service_dns.cluster.local" \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$work/ext.cnf"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days "$days" -extfile "$work/ext.cnf" -out "$work/tls.crt" 2>/dev/null
  rm -f "$work/ca.key"
  # During a rotation both CAs are trusted, so neither certificate is refused in between.
  { [[ -n "$old_ca" ]] && printf '%s\n' "$old_ca"; cat "$work/ca.crt"; } >"$work/bundle.crt"
  "$kubectl" create secret generic "$secret" --namespace "$namespace" --type kubernetes.io/tls \
    --from-file=tls.crt="$work/tls.crt" --from-file=tls.key="$work/tls.key" \
    --from-file=ca.crt="$work/ca.crt" --dry-run=client -o yaml >"$work/secret.yaml"
fi
ca_bundle=$(base64 -w 0 <"$work/bundle.crt")

if [[ -n "$print_dir" ]]; then
  mkdir -p "$print_dir"
  cp "$work/secret.yaml" "$work/ca.crt" "$work/tls.crt" "$print_dir/"
  printf '%s\n' "$ca_bundle" >"$print_dir/ca-bundle.b64"
  echo "tls.sh: wrote $print_dir/{secret.yaml,ca.crt,tls.crt,ca-bundle.b64} for $service_dns" >&2
  exit 0
fi

count=$("$kubectl" get validatingwebhookconfiguration "$name" \
  -o 'jsonpath={range .webhooks[*]}{.name}{"\n"}{end}' | grep -c .)
patch="["
for ((i = 0; i < count; i++)); do
  if ((i > 0)); then patch+=","; fi
  patch+="{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}"
done
patch+="]"
# caBundle first, then the Secret: the API server trusts the new CA before any pod can serve a
# certificate from it (with --rotate it still trusts the old one the pods serve until then).
"$kubectl" patch validatingwebhookconfiguration "$name" --type=json -p "$patch"
if [[ -f "$work/secret.yaml" ]]; then
  "$kubectl" apply -f "$work/secret.yaml"
fi
echo "tls.sh: $namespace/$secret serves $service_dns; caBundle set on $count webhooks of $name" >&2
