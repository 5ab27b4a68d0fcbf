#!/usr/bin/env bash
# The filesystem layers of the live cluster's images (run by cluster/build.sh via images.sh, as
# root: debootstrap, overlayfs and chroot need it), as directories under
# $CACHE/rootfs-<key of versions.env and this file>:
#
#   base    debootstrap minbase of $DEBIAN_SUITE with Python and psycopg2, and the postgres
#           user as uid 26 as in CNPG's images
#   pg15    Debian's postgresql-15 (an overlayfs upper directory over base)
#   pg16    PostgreSQL 16 from the pinned npm and PyPI packages (see versions.env)
#   barman  barman-cloud at pgdrill's pin in /opt/barman (an overlayfs upper directory over base)
#
# Each layer is built once; a .done-<layer> file marks it complete.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "building the image layers"

DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOST_CA="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"

# Mounts made by `in_overlay`, undone on any exit.
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -l "${mounts[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

# in_overlay LAYER SCRIPT LOWER...: run SCRIPT (bash, in a chroot) on an overlay of the LOWER
# layers (bottom first); what it changes becomes the directory LAYER.
in_overlay() {
  local layer=$1 script=$2
  shift 2
  local lower="" l
  for l in "$@"; do lower="$ROOTFS/$l${lower:+:$lower}"; done
  local upper="$ROOTFS/$layer" work="$ROOTFS/.work-$layer" merged="$ROOTFS/.merged-$layer"
  rm -rf "$upper" "$work" "$merged"
  mkdir -p "$upper" "$work" "$merged"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
  mounts+=("$merged")
  for d in proc sys dev; do
    mount --rbind "/$d" "$merged/$d"
    mounts+=("$merged/$d")
  done
  cp /etc/resolv.conf "$merged/etc/resolv.conf"
  # The build uses this machine's trust store (a TLS-intercepting proxy's CA may be in it); it is
  # mounted for the build only and never part of a layer.
  touch "$merged/tmp/host-ca.crt"
  mount --bind "$HOST_CA" "$merged/tmp/host-ca.crt"
  mounts+=("$merged/tmp/host-ca.crt")
  chroot "$merged" /usr/bin/env -i PATH="$DEFAULT_PATH" HOME=/root DEBIAN_FRONTEND=noninteractive \
    PIP_CERT=/tmp/host-ca.crt SSL_CERT_FILE=/tmp/host-ca.crt REQUESTS_CA_BUNDLE=/tmp/host-ca.crt \
    /bin/bash -euo pipefail -c "$script"
  cleanup
  mounts=()
  rm -rf "$work" "$merged"
  # The host's resolver configuration and trust store are not part of any image.
  rm -f "$upper/etc/resolv.conf" "$upper/tmp/host-ca.crt"
  rmdir "$upper/tmp" 2>/dev/null || true
}

layer() {
  local name=$1
  shift
  phase "layer $name"
  if [[ -f $ROOTFS/.done-$name ]]; then
    done_phase "cached in $ROOTFS/$name"
    return
  fi
  "$@"
  touch "$ROOTFS/.done-$name"
  done_phase "$(du -sh "$ROOTFS/$name" | cut -f1) in $ROOTFS/$name"
}

build_base() {
  command -v debootstrap >/dev/null || die "debootstrap not found (make cluster-deps installs it)"
  rm -rf "$ROOTFS/base"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-psycopg2,ca-certificates \
    "$DEBIAN_SUITE" "$ROOTFS/base" "$DEBIAN_MIRROR" >"$ROOTFS/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $ROOTFS/debootstrap.log"
  chroot "$ROOTFS/base" /bin/bash -euo pipefail -c '
    # uid 26 as in CNPG'"'"'s images (gid 26 is Debian'"'"'s tape group, as there).
    groupadd --system postgres
    useradd --system --uid 26 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mkdir -p /var/lib/postgresql /var/run/postgresql
    chown postgres:postgres /var/lib/postgresql /var/run/postgresql
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/debconf/*-old'
  rm -f "$ROOTFS/base/etc/resolv.conf" "$ROOTFS/base/etc/hostname"
}

build_pg15() {
  in_overlay pg15 '
    printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/pgdrill.conf
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
    rm -f /usr/sbin/policy-rc.d
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/debconf/*-old' base
}

build_pg16() {
  local tmp="$ROOTFS/.pg16" dest="$ROOTFS/pg16"
  rm -rf "$tmp" "$dest"
  mkdir -p "$tmp" "$dest/usr/lib/postgresql/16" "$dest/opt"
  (cd "$tmp" && npm pack --silent "$PG16_SERVER_NPM" >/dev/null && tar xzf ./*.tgz)
  cp -a "$tmp/package/native/." "$dest/usr/lib/postgresql/16/"
  rm -f "$dest/usr/lib/postgresql/16/pg-symlinks.json"
  # The npm package stores its library symlinks as a list; make them real again.
  python3 - "$tmp/package/native/pg-symlinks.json" "$dest/usr/lib/postgresql/16" <<'EOF'
import json, os, sys
for link in json.load(open(sys.argv[1])):
    src, dst = (os.path.relpath(link[k], "native") for k in ("source", "target"))
    path = os.path.join(sys.argv[2], dst)
    os.path.lexists(path) or os.symlink(os.path.relpath(src, os.path.dirname(dst)), path)
EOF
  python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 3.11 \
    --platform manylinux2014_x86_64 -d "$tmp/wheel" "$PG16_TOOLS_PYPI"
  mkdir -p "$tmp/pgserver" && python3 -m zipfile -e "$tmp"/wheel/*.whl "$tmp/pgserver"
  mkdir -p "$dest/opt/pgserver"
  cp -a "$tmp/pgserver/pgserver" "$tmp/pgserver/pgserver.libs" "$dest/opt/pgserver/"
  local bin="$dest/usr/lib/postgresql/16/bin" tool
  chmod 0755 "$bin"/* "$dest"/opt/pgserver/pgserver/pginstall/bin/*
  for tool in "$dest"/opt/pgserver/pgserver/pginstall/bin/*; do
    tool=$(basename "$tool")
    [[ -e $bin/$tool ]] || ln -s "/opt/pgserver/pgserver/pginstall/bin/$tool" "$bin/$tool"
  done
  chown -R 0:0 "$dest"
  rm -rf "$tmp"
}

build_barman() {
  in_overlay barman "
    python3 -m venv --system-site-packages /opt/barman
    /opt/barman/bin/pip install --quiet --disable-pip-version-check --no-input --no-cache-dir \
      'barman[cloud,azure]==$BARMAN_VERSION' 'python-snappy==$PYTHON_SNAPPY_VERSION'
    for t in /opt/barman/bin/barman-cloud-*; do ln -s \"\$t\" /usr/local/bin/; done
    barman-cloud-backup --version
    rm -rf /root/.cache" base
}


mkdir -p "$ROOTFS"
layer base build_base
layer pg15 build_pg15
layer pg16 build_pg16
layer barman build_barman
