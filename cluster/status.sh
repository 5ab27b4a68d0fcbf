#!/usr/bin/env bash
# `make cluster-status`: is pgdrill's live cluster up? One line per process (by PID file), then
# the API server, the node and the operator. Exit 0 only when all of it is healthy.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ -d $RUN/pids ]] || {
  echo "no cluster (nothing under $RUN)"
  exit 1
}
ok=0
for f in "$RUN"/pids/*; do
  name=$(basename "$f")
  if kill -0 "$(cat "$f")" 2>/dev/null; then
    printf '%-24s running (pid %s)\n' "$name" "$(cat "$f")"
  else
    printf '%-24s NOT RUNNING (log: %s)\n' "$name" "$RUN/logs/$name.log"
    ok=1
  fi
done
if kubectl_ get --raw /readyz >/dev/null 2>&1; then
  echo "api server               ready"
else
  echo "api server               NOT READY"
  exit 1
fi
ready=$(kubectl_ get node "$CLUSTER_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
echo "node $CLUSTER_NODE_NAME       Ready=$ready"
[[ $ready == True ]] || ok=1
for d in cnpg-controller-manager barman-cloud; do
  avail=$(kubectl_ -n cnpg-system get deployment "$d" -o jsonpath='{.status.availableReplicas}' 2>/dev/null)
  echo "deployment $d   available=${avail:-0}"
  [[ ${avail:-0} -ge 1 ]] || ok=1
done
exit $ok
