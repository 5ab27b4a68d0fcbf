#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster `make kind-up` created (and with it the operator,
# LocalStack and every archived object in it). Deleting a cluster that is not there is not an error.
set -euo pipefail

CLUSTER="${KIND_CLUSTER:-pgdrill}"

if ! command -v kind >/dev/null 2>&1; then
  printf 'kind-down: kind is not installed, so there is no kind cluster to delete\n' >&2
  exit 0
fi
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  printf 'kind-down: no kind cluster named %s\n' "$CLUSTER"
  exit 0
fi
kind delete cluster --name "$CLUSTER"
