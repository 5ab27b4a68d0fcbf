#!/usr/bin/env bash
# `make cluster-down`: stop pgdrill's live cluster and remove its state, leaving nothing it
# started behind. Processes are stopped by the PIDs cluster/up.sh recorded (never by name), pods
# through containerd's CRI (so their network is torn down by CNI), then whatever is still in the
# cluster's cgroups is killed, its mounts are undone, the bridge and kube-proxy's rules removed,
# and $RUN deleted. The build cache and containerd's image store stay, so the next
# `make cluster-up` starts in seconds. Safe to run when nothing is up.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
need_root "make cluster-down"

if [[ ! -d $RUN && ! -d $STATE ]] && ! ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
  echo "==> no cluster to stop"
  exit 0
fi
total=$SECONDS

# stop NAME...: SIGTERM to each recorded PID at once, SIGKILL to those alive after 20 s.
stop() {
  local name pids=() names=()
  for name in "$@"; do
    [[ -f $RUN/pids/$name ]] || continue
    pids+=("$(cat "$RUN/pids/$name")")
    names+=("$name")
    kill -TERM "${pids[-1]}" 2>/dev/null
  done
  local deadline=$((SECONDS + 20)) i
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "${pids[i]}" 2>/dev/null && info "${names[i]} (pid ${pids[i]}) did not stop on SIGTERM: killed"
    rm -f "$RUN/pids/${names[i]}"
  done
}

phase "control plane and node processes"
# The kubelet first, so it does not restart containers while the rest goes.
stop kubelet
stop s3 coredns volumes kube-proxy kube-scheduler kube-controller-manager kube-apiserver
stop etcd
done_phase "stopped"

phase "pods (through containerd's CRI: containers stopped, CNI torn down)"
crictl_() { "$K8S_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"; }
pods=0
if [[ -S $CONTAINERD_SOCK && -f $RUN/pids/containerd ]] && kill -0 "$(cat "$RUN/pids/containerd")" 2>/dev/null; then
  for pod in $(crictl_ pods -q 2>/dev/null); do
    crictl_ stopp "$pod" >/dev/null 2>&1
    crictl_ rmp -f "$pod" >/dev/null 2>&1
    pods=$((pods + 1))
  done
fi
stop containerd
done_phase "$pods pod sandboxes removed; containerd stopped"

phase "leftover processes, mounts, network"
# Whatever is still in the cluster's cgroups (shims, containers of a crashed containerd).
cgroup_pids() {
  local g
  for g in "$CG_HOST" "$CG_PODS"; do
    find "/sys/fs/cgroup/pids/$g" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
}
killed=0
for _ in 1 2 3 4 5; do
  pids=$(cgroup_pids)
  [[ -z $pids ]] && break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  killed=$((killed + $(wc -w <<<"$pids")))
  sleep 0.5
done
[[ -z $(cgroup_pids) ]] || info "processes still in the cluster's cgroups: $(cgroup_pids | tr '\n' ' ')"
# Mounts under the cluster's directories, deepest first.
unmounted=0
while read -r mp; do
  umount -l "$mp" 2>/dev/null && unmounted=$((unmounted + 1))
done < <(awk -v run="$RUN" -v state="$STATE" -v root="$CONTAINERD_ROOT" \
  'index($5, run"/") == 1 || index($5, state"/") == 1 || $5 == state || index($5, root"/") == 1 {print $5}' \
  /proc/self/mountinfo | sort -r)
for h in /sys/fs/cgroup/*/; do
  for g in "$CG_PODS" "$CG_HOST"; do
    [[ -d $h$g ]] && find "$h$g" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done
# kube-proxy's Service rules, and the CNI bridge plugin's masquerade rules of pods whose
# sandboxes could not be removed through the CRI.
[[ -x $K8S_BIN/kube-proxy ]] && "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1
iptables -t nat -S POSTROUTING 2>/dev/null | grep -F 'name: \"pgdrill\"' | while read -r rule; do
  chain=$(sed -n 's/.* -j \(CNI-[0-9a-f]*\).*/\1/p' <<<"$rule")
  eval "iptables -t nat ${rule/-A /-D }" 2>/dev/null
  [[ -n $chain ]] && iptables -t nat -F "$chain" 2>/dev/null && iptables -t nat -X "$chain" 2>/dev/null
done
ip link del "$CLUSTER_BRIDGE" 2>/dev/null
done_phase "$killed leftover processes killed, $unmounted mounts undone, bridge $CLUSTER_BRIDGE removed"

rm -rf "$RUN" "$STATE"
printf '==> cluster down in %ss (images stay in %s, builds in %s)\n' "$((SECONDS - total))" "$CONTAINERD_ROOT" "$CACHE"
