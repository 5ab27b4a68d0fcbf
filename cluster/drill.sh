#!/usr/bin/env bash
# `make drill-cluster`: `pgdrill run --backend kube` against the live cluster, with its
# kubeconfig (never the current context), its S3 endpoint (the same address for pgdrill and for
# the pods) and its credentials. Usage: cluster/drill.sh PGDRILL [run flags and paths...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pgdrill=$1
shift
[[ -f $RUN/ready ]] || die "the live cluster is not up (make cluster-up)"
set -a
source "$RUN/s3.env"
set +a
export KUBECONFIG="$KUBECONFIG_ADMIN"
cmd=("$pgdrill" run --backend kube --skip-unsupported
  --s3-endpoint "$PGDRILL_CLUSTER_S3_ENDPOINT" --cluster-s3-endpoint "$PGDRILL_CLUSTER_S3_ENDPOINT"
  --s3-bucket "$PGDRILL_CLUSTER_S3_BUCKET" "$@")
echo "KUBECONFIG=$KUBECONFIG ${cmd[*]}"
exec "${cmd[@]}"
