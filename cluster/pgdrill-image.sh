#!/usr/bin/env bash
# The pgdrill image for the CronJobs of deploy/kubernetes, built from a pgdrill binary of this
# checkout without a registry or Docker (as cluster/images.sh builds the operand images): the
# Debian base layer plus the binary, tagged pgdrill.local/pgdrill:<hash of the binary>, and
# imported into the live cluster's containerd. Prints the image reference.
# Usage: cluster/pgdrill-image.sh PGDRILL_BINARY
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "importing an image into the cluster's containerd"
binary=${1:?usage: cluster/pgdrill-image.sh PGDRILL_BINARY}
[[ -x $binary ]] || die "$binary: not an executable"
[[ -d $ROOTFS/base && -x $TOOLS_BIN/mkimage ]] || die "the cluster's base layer is not built (make cluster-build)"
[[ -S $CONTAINERD_SOCK ]] || die "the live cluster is not up (make cluster-up)"

tag="pgdrill.local/pgdrill:$(sha256sum "$binary" | cut -c1-12)"
ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
if ctr_ images ls -q "name==$tag" | grep -qx "$tag"; then
  echo "$tag"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/layer/usr/local/bin"
install -m 0755 "$binary" "$work/layer/usr/local/bin/pgdrill"
"$TOOLS_BIN/mkimage" -o "$work/pgdrill.tar" -tag "$tag" \
  -layer "$ROOTFS/base" -layer "$work/layer" \
  -entrypoint '["/usr/local/bin/pgdrill"]' -user 65532:65532 -workdir / \
  -env "PATH=/usr/local/bin:/usr/bin:/bin" >/dev/null
ctr_ images import --no-unpack=false "$work/pgdrill.tar" >/dev/null
# Labelled as up.sh labels the images it imports.
ctr_ images label "$tag" "pgdrill.image=$(sha256sum "$binary" | cut -c1-16)" >/dev/null
echo "$tag"
