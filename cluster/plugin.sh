#!/usr/bin/env bash
# The barman-cloud plugin on pgdrill's live cluster (run by cluster/up.sh). Its module's
# manifest.yaml is the development build of the release manifest: the release points the
# Deployment and the SIDECAR_IMAGE at the tagged images, and so does this. cert-manager is not
# built here: the two certificates its Issuer would sign (self-signed, like its selfSigned
# issuer: server `barman-cloud`, client `barman-cloud-client`) are made with openssl into the
# same Secrets, and the Certificate and Issuer objects are left out.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tls=$(mktemp -d)
trap 'rm -rf "$tls"' EXIT
selfsigned() { # NAME CN USAGE [SAN]
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
    -keyout "$tls/$1.key" -out "$tls/$1.crt" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=$3" ${4:+-addext "subjectAltName=$4"} 2>/dev/null
  kubectl_ -n cnpg-system create secret generic "$1-tls" --type kubernetes.io/tls \
    --from-file "tls.crt=$tls/$1.crt" --from-file "tls.key=$tls/$1.key" --from-file "ca.crt=$tls/$1.crt" \
    --dry-run=client -o yaml | kubectl_ apply --server-side --force-conflicts -f - >/dev/null
}
selfsigned barman-cloud-server barman-cloud serverAuth DNS:barman-cloud
selfsigned barman-cloud-client barman-cloud-client clientAuth

# The manifest without cert-manager's objects, with the release images.
python3 - "$PLUGIN_BIN/manifest.yaml" "$RUN/plugin-manifest.yaml" "$PLUGIN_VERSION" <<'PY'
import base64, re, sys
src, dst, version = sys.argv[1:]
docs = open(src).read().split("\n---\n")
keep = [d for d in docs if not re.search(r"^kind: (Certificate|Issuer)$", d, re.M)]
text = "\n---\n".join(keep)
image = "ghcr.io/cloudnative-pg/plugin-barman-cloud"
text, n = re.subn(re.escape(image) + r"-testing:main", f"{image}:{version}", text)
assert n == 1, f"plugin image: {n} matches"
sidecar = base64.b64encode(f"{image}-sidecar:{version}".encode()).decode()
text, n = re.subn(r"SIDECAR_IMAGE: \|\n(    \S+\n)+", f"SIDECAR_IMAGE: {sidecar}\n", text)
assert n == 1, f"SIDECAR_IMAGE: {n} matches"
open(dst, "w").write(text)
PY
kubectl_ apply --server-side --force-conflicts -f "$RUN/plugin-manifest.yaml" >/dev/null
kubectl_ wait --for=condition=Established --timeout=60s crd/objectstores.barmancloud.cnpg.io >/dev/null
kubectl_ -n cnpg-system rollout status deployment/barman-cloud --timeout=180s >/dev/null ||
  die "the barman-cloud plugin did not roll out (kubectl -n cnpg-system describe pods -l app=barman-cloud)"
