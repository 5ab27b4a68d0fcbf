#!/usr/bin/env bash
# `make promtool`: Prometheus's promtool, built from the Prometheus Go module that
# scripts/promtool/go.mod pins (cmd/promtool with that release's requirements), cached under the
# pgdrill home keyed by scripts/promtool/go.mod, go.sum and this script. Prints the binary's path (the only
# thing on stdout); with the build cached it does nothing else. tests/local_prometheus.rs runs it.
#   exit 3: go is not installed (Go 1.26 builds it; no other toolchain is downloaded)
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/promtool" && pwd)"

# The pgdrill home, as pgdrill chooses it (src/backend/local/toolchain.rs, cluster/lib.sh).
if [[ -n ${PGDRILL_HOME:-} ]]; then home="$PGDRILL_HOME"
elif [[ $(id -u) == 0 ]]; then home=/var/tmp/pgdrill
else home="${XDG_CACHE_HOME:-$HOME/.cache}/pgdrill"; fi

mod=github.com/prometheus/prometheus
version=$(sed -nE "s|^(require )?[[:space:]]*$mod (v[^ ]+).*|\2|p" "$src/go.mod")
[[ -n $version ]] || { echo "promtool: $src/go.mod does not require $mod" >&2; exit 3; }
key=$(cat "$src/go.mod" "$src/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
cache="$home/tools"
dest="$cache/promtool-$version-$key"
if [[ -x $dest/promtool ]]; then
  echo "$dest/promtool"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "promtool: go not found (Go 1.26 builds promtool from $mod)" >&2; exit 3; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
# v0.3XX.Y of the Go module is Prometheus 3.XX.Y; `promtool --version` says so.
release=${version#v0.}
release="${release:0:1}.$((10#${release:1:2})).${release#*.}"
vpkg=github.com/prometheus/common/version
ldflags="-s -w -X $vpkg.Version=$release -X $vpkg.Revision=$version -X $vpkg.Branch=HEAD"
ldflags+=" -X $vpkg.BuildUser=pgdrill -X $vpkg.BuildDate=19700101-00:00:00"

echo "promtool: building $mod/cmd/promtool $version (Prometheus $release) into $dest" >&2
tmp="$dest.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
start=$SECONDS
# remove_all_sd: Prometheus's own build tag that leaves out the service-discovery plugins
# (cloud SDKs, client-go): promtool's rule tests and metric checks need none of them, and
# they are most of the build.
(cd "$src" && go build -tags remove_all_sd -trimpath -ldflags "$ldflags" -o "$tmp/" tool) >&2
[[ -x $tmp/promtool ]] || { echo "promtool: the build wrote no $tmp/promtool" >&2; exit 1; }
# A concurrent run may have finished first; either build is the same.
mv -T "$tmp" "$dest" 2>/dev/null || [[ -x $dest/promtool ]]
echo "promtool: built in $((SECONDS - start))s" >&2
# Builds from other versions or sources are never used again.
for d in "$cache"/promtool-*; do
  [[ $d == "$dest" || $d == *.tmp.* ]] || rm -rf "$d"
done
echo "$dest/promtool"
