#!/usr/bin/env bash
# `make drill-cluster`: `pgdrill run --backend kube` against the live cluster, with its
# kubeconfig (never the current context), its S3 endpoint (the same address for pgdrill and for
# the pods) and its credentials, and its Azurite (azure.env) for `object_store: azure` drills when
# cluster-up started one. Usage: cluster/drill.sh PGDRILL [run flags and paths...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pgdrill=$1
shift
[[ -f $RUN/ready ]] || die "the live cluster is not up (make cluster-up)"
set -a
source "$RUN/s3.env"
set +a
azure=()
if [[ -f $RUN/azure.env ]]; then
  set -a
  source "$RUN/azure.env"
  set +a
  azure=(--azure-endpoint "$PGDRILL_CLUSTER_AZURE_ENDPOINT")
fi
export KUBECONFIG="$KUBECONFIG_ADMIN"
cmd=("$pgdrill" run --backend kube --skip-unsupported
  --s3-endpoint "$PGDRILL_CLUSTER_S3_ENDPOINT" --cluster-s3-endpoint "$PGDRILL_CLUSTER_S3_ENDPOINT"
  --s3-bucket "$PGDRILL_CLUSTER_S3_BUCKET" "${azure[@]}" "$@")
echo "KUBECONFIG=$KUBECONFIG ${cmd[*]}"
exec "${cmd[@]}"
