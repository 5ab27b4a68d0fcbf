#!/usr/bin/env bash
# The container images of pgdrill's live cluster, built without a registry (run by
# cluster/build.sh, as root: debootstrap and chroot need it). Each is tagged as the real one, so
# CNPG's release manifest and pgdrill's default image template work unchanged:
#
#   registry.k8s.io/pause                          the pod sandbox (cluster/tools/cmd/pause)
#   ghcr.io/cloudnative-pg/cloudnative-pg          the operator's /manager
#   ghcr.io/cloudnative-pg/postgresql:N-system-bookworm    Debian + PostgreSQL N + barman-cloud
#   ghcr.io/cloudnative-pg/postgresql:N-standard-bookworm  Debian + PostgreSQL N
#   ghcr.io/cloudnative-pg/plugin-barman-cloud     the plugin's /manager
#   ghcr.io/cloudnative-pg/plugin-barman-cloud-sidecar     Debian + barman-cloud + /manager
#
# Layers come from cluster/rootfs.sh (directories under $CACHE/rootfs-<key>) plus one-binary
# layers made here. Image tarballs go to $CACHE/images-<key>/ with an `index` of what to import.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "building the images"

bash "$CLUSTER_SRC/rootfs.sh"
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# bin_layer NAME SRC DEST: a layer holding one binary.
bin_layer() {
  local dir="$ROOTFS/bin-$1"
  rm -rf "$dir" && mkdir -p "$dir/$(dirname "$3")"
  install -m 0755 "$2" "$dir/$3"
}

phase "images"
if [[ -f $IMAGES/index ]]; then
  done_phase "cached in $IMAGES"
  exit 0
fi
rm -rf "$IMAGES" && mkdir -p "$IMAGES"
bin_layer pause "$TOOLS_BIN/pause" pause
# As the operator's own image lays it out: CNPG finds the architectures it can run instances on
# from /operator/manager_<arch> (relative to the working directory /).
bin_layer operator "$CNPG_BIN/manager" operator/manager_amd64
ln -s operator/manager_amd64 "$ROOTFS/bin-operator/manager"
bin_layer plugin "$PLUGIN_BIN/manager" manager

# image FILE ARGS...: one image tarball; its line in the index names the file and the tags.
image() {
  local file=$1
  shift
  local out
  out=$("$TOOLS_BIN/mkimage" -o "$IMAGES/$file.tar" "$@")
  echo "$file.tar ${out#* }" >>"$IMAGES/index.part"
  info "$file: ${out#* }"
}
image pause -tag "$PAUSE_IMAGE" -layer "$ROOTFS/bin-pause" \
  -entrypoint '["/pause"]' -user 65535:65535
image operator -tag "ghcr.io/cloudnative-pg/cloudnative-pg:$CNPG_VERSION" -layer "$ROOTFS/bin-operator" \
  -entrypoint '["/manager"]' -user 65532:65532 -workdir /
image plugin -tag "ghcr.io/cloudnative-pg/plugin-barman-cloud:$PLUGIN_VERSION" -layer "$ROOTFS/bin-plugin" \
  -entrypoint '["/manager"]' -user 65532:65532
image sidecar -tag "ghcr.io/cloudnative-pg/plugin-barman-cloud-sidecar:$PLUGIN_VERSION" \
  -layer "$ROOTFS/base" -layer "$ROOTFS/barman" -layer "$ROOTFS/bin-plugin" \
  -entrypoint '["/manager"]' -user 26:26 -env "PATH=/opt/barman/bin:$DEFAULT_PATH"
for major in $POSTGRES_MAJORS; do
  pg=(-layer "$ROOTFS/base" -layer "$ROOTFS/pg$major" -user 26 -env "PATH=$DEFAULT_PATH:/usr/lib/postgresql/$major/bin"
    -env LANG=C.UTF-8 -env PG_MAJOR="$major")
  image "postgresql-$major-standard" -tag "ghcr.io/cloudnative-pg/postgresql:$major-standard-$DEBIAN_SUITE" "${pg[@]}"
  image "postgresql-$major-system" -tag "ghcr.io/cloudnative-pg/postgresql:$major-system-$DEBIAN_SUITE" \
    "${pg[@]}" -layer "$ROOTFS/barman"
done
mv "$IMAGES/index.part" "$IMAGES/index"
done_phase "$(du -sh "$IMAGES" | cut -f1) in $IMAGES"
