#!/usr/bin/env bash
# `make cluster-build`: every binary and image of pgdrill's one-node live cluster, built here
# from Go modules, Debian packages, PyPI and npm (no registry is reachable), cached under
# $PGDRILL_HOME/cluster/cache keyed by cluster/versions.env and the sources. A second run with
# nothing changed does nothing and says so.
#
#   k8s      etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#            kubectl, crictl (cluster/k8s/go.mod)
#   tools    mkimage, pause, volumes (cluster/tools/go.mod)
#   cnpg     the CloudNativePG operator's cmd/manager and its release manifest
#   plugin   the barman-cloud plugin's cmd/manager and its manifest
#   coredns  CoreDNS (github.com/coredns/coredns), cluster DNS as a host process
#   images   cluster/images.sh (root: debootstrap and chroot)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
command -v go >/dev/null 2>&1 || die "go not found: the live cluster is built from Go modules (Go 1.26)"

# go_build DEST DESCRIPTION CMD...: run CMD (which writes into DEST) unless DEST/.done exists.
go_build() {
  local dest=$1 what=$2
  shift 2
  phase "$what"
  if [[ -f $dest/.done ]]; then
    done_phase "cached in $dest"
    return
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  "$@"
  touch "$dest/.done"
  done_phase "built into $dest"
}

k8s_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local p flags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build_tools() {
  (cd "$CLUSTER_SRC/tools" && go build -trimpath -ldflags "-s -w" -o "$TOOLS_BIN/" ./cmd/...)
}

# require_pin MODULE_DIR MODULE VERSION: the wrapper module's go.mod must pin what versions.env says.
require_pin() {
  grep -qE "^(require )?[[:space:]]*$2 $3( |$)" "$CLUSTER_SRC/$1/go.mod" ||
    die "cluster/$1/go.mod does not require $2 $3 (cluster/versions.env): keep them equal"
}

# module_dir WRAPPER MODULE: where the Go module cache holds MODULE as WRAPPER resolves it.
module_dir() {
  (cd "$CLUSTER_SRC/$1" && go list -m -f '{{.Dir}}' "$2")
}

# The operator with its release's own requirements (cluster/cnpg requires nothing else), and its
# release manifest from the same module.
build_cnpg() {
  local mod=github.com/cloudnative-pg/cloudnative-pg
  require_pin cnpg "$mod" "v$CNPG_VERSION"
  (cd "$CLUSTER_SRC/cnpg" && go build -trimpath -o "$CNPG_BIN/" \
    -ldflags "-s -w -X $mod/pkg/versions.buildVersion=$CNPG_VERSION -X $mod/pkg/versions.buildCommit=v$CNPG_VERSION" tool)
  local manifest
  manifest="$(module_dir cnpg "$mod")/releases/cnpg-$CNPG_VERSION.yaml"
  [[ -f $manifest ]] || die "$mod@v$CNPG_VERSION has no releases/cnpg-$CNPG_VERSION.yaml"
  cp "$manifest" "$CNPG_BIN/operator.yaml"
}

build_plugin() {
  local mod=github.com/cloudnative-pg/plugin-barman-cloud
  require_pin plugin "$mod" "$PLUGIN_VERSION"
  (cd "$CLUSTER_SRC/plugin" && go build -trimpath -ldflags "-s -w" -o "$PLUGIN_BIN/" tool)
  cp "$(module_dir plugin "$mod")/manifest.yaml" "$PLUGIN_BIN/manifest.yaml"
}

build_k8s() {
  require_pin k8s k8s.io/kubernetes "$KUBERNETES_VERSION"
  (cd "$CLUSTER_SRC/k8s" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$K8S_BIN/" tool ./cmd/etcd)
}

total=$SECONDS
go_build "$K8S_BIN" "Kubernetes $KUBERNETES_VERSION components (cluster/k8s)" build_k8s
go_build "$TOOLS_BIN" "cluster tools (cluster/tools)" build_tools
go_build "$CNPG_BIN" "CloudNativePG operator $CNPG_VERSION" build_cnpg
go_build "$PLUGIN_BIN" "barman-cloud plugin $PLUGIN_VERSION" build_plugin
go_build "$COREDNS_BIN" "CoreDNS $COREDNS_VERSION" \
  env GOBIN="$COREDNS_BIN" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
bash "$CLUSTER_SRC/images.sh"

# Builds of other versions or sources are never used again: remove them.
pruned=0
for current in "${K8S_BIN%/bin}" "${TOOLS_BIN%/bin}" "$CNPG_BIN" "$PLUGIN_BIN" "$COREDNS_BIN" "$ROOTFS" "$IMAGES"; do
  base=$(basename "$current")
  for d in "$CACHE/${base%%-*}-"*; do
    [[ -e $d && $d != "$current" ]] || continue
    rm -rf "$d"
    pruned=$((pruned + 1))
  done
done
((pruned == 0)) || info "removed $pruned stale build(s) from $CACHE"
printf '==> build complete (%ss)\n' "$((SECONDS - total))"
