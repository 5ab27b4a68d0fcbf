# Shared by cluster/build.sh, cluster/up.sh and cluster/down.sh: paths, versions, logging,
# polling. Sourced, never run. Nothing here starts or stops anything.

CLUSTER_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_SRC/.." && pwd)"
# shellcheck source=cluster/versions.env
source "$CLUSTER_SRC/versions.env"

# The pgdrill home, as pgdrill itself chooses it (src/backend/local/toolchain.rs).
if [[ -n ${PGDRILL_HOME:-} ]]; then
  HOME_DIR="$PGDRILL_HOME"
elif [[ $(id -u) == 0 ]]; then
  HOME_DIR=/var/tmp/pgdrill
else
  HOME_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/pgdrill"
fi
CLUSTER_HOME="$HOME_DIR/cluster"
# Build results, keyed by what they were built from; kept by `cluster-down`.
CACHE="$CLUSTER_HOME/cache"
# containerd's content store and snapshots (the imported images); kept by `cluster-down`.
CONTAINERD_ROOT="$CLUSTER_HOME/containerd"
# Everything of the running cluster: certificates, etcd, logs, PIDs, volumes, the S3 data.
# `cluster-down` removes it.
RUN="$CLUSTER_HOME/run"
# Sockets and containerd's state (tmpfs).
STATE=/run/pgdrill-cluster
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"
KUBECONFIG_ADMIN="$RUN/admin.kubeconfig"

# Cgroups (v1) the cluster's processes live in: host processes in $CG_HOST, pods under
# $CG_PODS (the kubelet's cgroupRoot). `cluster-down` kills what is left in them.
CG_HOST=pgdrill-cluster
CG_PODS=pgdrill-pods

phase_start=0
phase() {
  phase_start=$SECONDS
  printf '==> %s\n' "$*"
}
# done_phase TEXT: the phase's outcome, with the seconds it took.
done_phase() {
  printf '    %s (%ss)\n' "$*" "$((SECONDS - phase_start))"
}
info() { printf '    %s\n' "$*"; }
die() {
  printf 'cluster: %s\n' "$*" >&2
  exit 3
}

# poll SECONDS WHAT CMD...: run CMD every second until it succeeds; on the deadline, say WHAT
# did not happen and return 1.
poll() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf 'cluster: %s: not within %ss\n' "$what" "$timeout" >&2
      return 1
    fi
    sleep 1
  done
}

# key FILES...: a short content hash of files and directories (sorted, names included).
key() {
  local f
  for f in "$@"; do
    if [[ -d $f ]]; then
      (cd "$f" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    else
      sha256sum "$f"
    fi
  done | sha256sum | cut -c1-12
}

need_root() {
  [[ $(id -u) == 0 ]] || die "$1 needs root (it runs containerd, the kubelet and a network bridge)"
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

K8S_KEY="${KUBERNETES_VERSION}-$(key "$CLUSTER_SRC/k8s")"
K8S_BIN="$CACHE/k8s-$K8S_KEY/bin"
TOOLS_BIN="$CACHE/tools-$(key "$CLUSTER_SRC/tools")/bin"
CNPG_BIN="$CACHE/cnpg-$CNPG_VERSION-$(key "$CLUSTER_SRC/cnpg")"
PLUGIN_BIN="$CACHE/plugin-barman-cloud-$PLUGIN_VERSION-$(key "$CLUSTER_SRC/plugin")"
COREDNS_BIN="$CACHE/coredns-$COREDNS_VERSION"
# Image layers (directories) and image tarballs, see cluster/images.sh.
ROOTFS="$CACHE/rootfs-$(key "$CLUSTER_SRC/versions.env" "$CLUSTER_SRC/rootfs.sh")"
IMAGES="$CACHE/images-$(key "$CLUSTER_SRC/versions.env" "$CLUSTER_SRC/rootfs.sh" "$CLUSTER_SRC/images.sh" \
  "$CLUSTER_SRC/tools" "$CLUSTER_SRC/cnpg" "$CLUSTER_SRC/plugin")"
