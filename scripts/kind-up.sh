#!/usr/bin/env bash
# `make kind-up`: a one-node kind cluster for the Kubernetes backend (docs/kube-backend.md).
#
#   1. checks docker, kind, kubectl and curl and prints their versions
#   2. creates the kind cluster from kind-config.yaml (reuses it when it already exists)
#   3. installs the CloudNativePG operator (server-side apply) and waits for its rollout
#   4. with KIND_PLUGIN=1: cert-manager, then the barman-cloud plugin, each waited for
#   5. deploys LocalStack (fixtures/kube/localstack.yaml) and waits until the bucket answers
#      through the host port
#
# Every wait polls a named condition against a deadline; nothing sleeps blindly. Re-running it is
# safe: every apply is idempotent. Only the kind-<cluster> context is ever used.
set -euo pipefail

cd "$(dirname "$0")/.."

# ---- pinned versions (docs/kube-backend.md lists them with their sources) ---------------------
# The operator and plugin versions are the live cluster's (cluster/versions.env), so kind and the
# local live cluster run the same CNPG; the environment can still override them.
pins() { (source cluster/versions.env && echo "${!1}"); }
CNPG_VERSION="${CNPG_VERSION:-$(pins CNPG_VERSION)}"
CNPG_MINOR="${CNPG_VERSION%.*}"
CNPG_MANIFEST="https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-${CNPG_MINOR}/releases/cnpg-${CNPG_VERSION}.yaml"
PLUGIN_VERSION="${PLUGIN_VERSION:-$(pins PLUGIN_VERSION)}"
PLUGIN_MANIFEST="https://github.com/cloudnative-pg/plugin-barman-cloud/releases/download/${PLUGIN_VERSION}/manifest.yaml"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.1}"
CERT_MANAGER_MANIFEST="https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
# The tool versions this was written for (the CI workflow installs exactly these).
SUGGESTED_KIND="v0.32.0"
SUGGESTED_KUBECTL="v1.36.1"

# ---- settings (the Makefile passes them) -------------------------------------------------------
CLUSTER="${KIND_CLUSTER:-pgdrill}"
PLUGIN="${KIND_PLUGIN:-0}"
NODE_IMAGE="${KIND_NODE_IMAGE:-}"
BUCKET="${KIND_S3_BUCKET:-pgdrill}"
S3_ENDPOINT="${KIND_S3_ENDPOINT:-http://127.0.0.1:4566}"
KIND_CONFIG="kind-config.yaml"
LOCALSTACK_MANIFEST="fixtures/kube/localstack.yaml"
ROLLOUT_TIMEOUT="${KIND_ROLLOUT_TIMEOUT:-600s}"  # image pulls included (the LocalStack image is large)
BUCKET_TIMEOUT_SECONDS="${KIND_BUCKET_TIMEOUT_SECONDS:-120}"
WEBHOOK_TIMEOUT_SECONDS="${KIND_WEBHOOK_TIMEOUT_SECONDS:-180}"

CONTEXT="kind-${CLUSTER}"
k() { kubectl --context "$CONTEXT" "$@"; }

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'kind-up: %s\n' "$*" >&2
  exit 3
}

# poll TIMEOUT_SECONDS CMD...: run CMD every 2 s until it succeeds; 1 once the deadline passed.
poll() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 2
  done
}

# ---- 1. prerequisites --------------------------------------------------------------------------
step "Prerequisites"
missing=""
for tool in docker kind kubectl curl; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [[ -n $missing ]]; then
  die "missing:${missing}. Install docker (Engine 24+ or Docker Desktop), kind ${SUGGESTED_KIND} \
(https://kind.sigs.k8s.io/docs/user/quick-start/#installation), kubectl ${SUGGESTED_KUBECTL} or within \
one minor of it (https://kubernetes.io/docs/tasks/tools/), and curl; then run make kind-up again."
fi
if ! docker_version="$(docker version --format '{{.Server.Version}}' 2>/dev/null)"; then
  die "docker is installed but its daemon does not answer ('docker version' failed): start Docker, \
or add your user to the docker group, then run make kind-up again."
fi
kind_version="$(kind version 2>/dev/null | awk '{print $2}')"
kubectl_version="$(kubectl version --client 2>/dev/null | awk '/^Client Version:/ {print $3}')"
info "docker  ${docker_version} (server)"
info "kind    ${kind_version:-unknown} (written for ${SUGGESTED_KIND})"
info "kubectl ${kubectl_version:-unknown} (written for ${SUGGESTED_KUBECTL})"
info "curl    $(curl --version | awk 'NR==1 {print $2}')"
if [[ $kind_version != "$SUGGESTED_KIND" ]]; then
  info "note: the pinned node image is the one kind ${SUGGESTED_KIND} was released with; other kind"
  info "      releases may not boot it (override with KIND_NODE_IMAGE=kindest/node:<tag>@sha256:<digest>)."
fi
[[ -f $KIND_CONFIG ]] || die "$KIND_CONFIG not found (run from the repository root)"
[[ -f $LOCALSTACK_MANIFEST ]] || die "$LOCALSTACK_MANIFEST not found (run from the repository root)"

# ---- 2. the kind cluster -----------------------------------------------------------------------
step "kind cluster '${CLUSTER}'"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  info "already exists: reusing it (make kind-down deletes it)"
else
  # The host port of the S3 mapping must be free, or kind fails half-way with a docker error.
  host_port="${S3_ENDPOINT##*:}"
  host_port="${host_port%%/*}"
  rc=0
  curl -s -o /dev/null --max-time 2 "$S3_ENDPOINT" || rc=$?
  if [[ $rc != 7 ]]; then
    die "something already listens on ${S3_ENDPOINT} (127.0.0.1:${host_port}); kind-config.yaml maps \
LocalStack there. Stop it (another LocalStack? 'docker ps'), then run make kind-up again."
  fi
  create=(kind create cluster --config "$KIND_CONFIG" --name "$CLUSTER" --wait 5m)
  if [[ -n $NODE_IMAGE ]]; then
    create+=(--image "$NODE_IMAGE")
  fi
  info "${create[*]}"
  "${create[@]}"
fi
k wait --for=condition=Ready node --all --timeout="$ROLLOUT_TIMEOUT"
info "context: ${CONTEXT} ($(k version 2>/dev/null | awk '/^Server Version:/ {print "server " $3}'))"

# ---- 3. CloudNativePG operator -----------------------------------------------------------------
step "CloudNativePG operator ${CNPG_VERSION}"
info "$CNPG_MANIFEST"
k apply --server-side --force-conflicts -f "$CNPG_MANIFEST" >/dev/null
k wait --for=condition=Established --timeout=60s \
  crd/clusters.postgresql.cnpg.io crd/backups.postgresql.cnpg.io
k -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout="$ROLLOUT_TIMEOUT"

# ---- 4. cert-manager + barman-cloud plugin (optional) ------------------------------------------
if [[ $PLUGIN == 1 ]]; then
  step "cert-manager ${CERT_MANAGER_VERSION}"
  info "$CERT_MANAGER_MANIFEST"
  k apply --server-side --force-conflicts -f "$CERT_MANAGER_MANIFEST" >/dev/null
  k wait --for=condition=Established --timeout=60s \
    crd/certificates.cert-manager.io crd/issuers.cert-manager.io
  for d in cert-manager cert-manager-cainjector cert-manager-webhook; do
    k -n cert-manager rollout status "deployment/$d" --timeout="$ROLLOUT_TIMEOUT"
  done

  step "barman-cloud plugin ${PLUGIN_VERSION}"
  info "$PLUGIN_MANIFEST"
  # The manifest holds an Issuer and two Certificates: their admission goes through
  # cert-manager's webhook, which may still be getting its CA injected after the rollout. The
  # apply is idempotent, so it is retried until the webhook accepts it or the deadline passes.
  apply_plugin() { k apply --server-side --force-conflicts -f "$PLUGIN_MANIFEST" >/dev/null 2>&1; }
  if ! poll "$WEBHOOK_TIMEOUT_SECONDS" apply_plugin; then
    k apply --server-side --force-conflicts -f "$PLUGIN_MANIFEST" >/dev/null ||
      die "the barman-cloud plugin manifest was not accepted within ${WEBHOOK_TIMEOUT_SECONDS}s (see above)"
  fi
  k wait --for=condition=Established --timeout=60s crd/objectstores.barmancloud.cnpg.io
  k -n cnpg-system wait --for=condition=Ready --timeout="$ROLLOUT_TIMEOUT" \
    certificate/barman-cloud-server certificate/barman-cloud-client
  k -n cnpg-system rollout status deployment/barman-cloud --timeout="$ROLLOUT_TIMEOUT"
else
  step "barman-cloud plugin: skipped (in-tree flavour only; make kind-up KIND_PLUGIN=1 adds it)"
fi

# ---- 5. LocalStack and the bucket --------------------------------------------------------------
step "LocalStack (S3) in namespace pgdrill-system"
k apply --server-side --force-conflicts -f "$LOCALSTACK_MANIFEST" >/dev/null
k -n pgdrill-system rollout status deployment/localstack --timeout="$ROLLOUT_TIMEOUT"

# HEAD on the bucket through the host port, which also proves the extraPortMappings work. Signed
# with curl's --aws-sigv4 when this curl has it (7.75+), else unsigned (LocalStack takes both).
# (${a[@]+"${a[@]}"} expands an empty array under set -u in macOS's bash 3.2 too.)
sign=()
if curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
  sign=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "test:test")
fi
bucket_ready() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -I ${sign[@]+"${sign[@]}"} "${S3_ENDPOINT}/${BUCKET}")" || return 1
  [[ $code == 200 ]]
}
if ! poll "$BUCKET_TIMEOUT_SECONDS" bucket_ready; then
  printf 'kind-up: bucket s3://%s did not answer at %s within %ss.\n' "$BUCKET" "$S3_ENDPOINT" "$BUCKET_TIMEOUT_SECONDS" >&2
  printf '  init hooks: %s\n' "$(curl -s --max-time 5 "${S3_ENDPOINT}/_localstack/init/ready" || echo unreachable)" >&2
  k -n pgdrill-system logs deployment/localstack --tail=50 >&2 || true
  exit 3
fi
info "s3://${BUCKET} answers at ${S3_ENDPOINT}"

step "Ready"
info "cluster:      ${CONTEXT}"
info "operator:     CloudNativePG ${CNPG_VERSION}$([[ $PLUGIN == 1 ]] && echo ", barman-cloud plugin ${PLUGIN_VERSION}, cert-manager ${CERT_MANAGER_VERSION}")"
info "S3 (host):    ${S3_ENDPOINT}  bucket ${BUCKET}"
info "S3 (cluster): http://localstack.pgdrill-system.svc.cluster.local:4566"
info "next:         make drill-kind$([[ $PLUGIN == 1 ]] && echo " FLAVOUR=plugin")"
