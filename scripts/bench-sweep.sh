#!/usr/bin/env bash
# make bench, second half: RTO at size. Measures, never asserts.
# For each point SIZE:WAL of BENCH_SWEEP, a drill with a bulk table of SIZE, a base backup,
# then WAL bulk writes, recovered to latest. Each drill is its own pgdrill run under
# /usr/bin/time (pgdrill's peak RSS at that size), against one standalone `pgdrill serve-s3`
# kept for the whole sweep, with --keep so the archive stays. Then the same recovery by hand
# (scripts/raw-recovery.sh: barman-cloud-restore, PostgreSQL replay, no pgdrill) from the same
# archive. Prints per point the RTO, its phases' throughput, verification against the RTO,
# pgdrill's peak RSS and pgdrill's recovery as a ratio to the raw one; then the RTO model
# fitted over the sweep (`pgdrill rto-model`) with a prediction for BENCH_PREDICT.
# Usage: scripts/bench-sweep.sh PGDRILL
set -euo pipefail
pgdrill=$(realpath "$1")
sweep=${BENCH_SWEEP:-64MiB:32MiB 64MiB:512MiB 512MiB:128MiB 2GiB:64MiB}
predict=${BENCH_PREDICT:---size 50GiB --wal 8GiB --objective 5m}
compression=${BENCH_COMPRESSION:-gzip}
home=${PGDRILL_HOME:-/var/tmp/pgdrill}
out=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-sweep.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=sweep AWS_SECRET_ACCESS_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
pg_ctl=/usr/lib/postgresql/15/bin/pg_ctl
kept_runs=()
s3_pid=
# Stop a kept run's servers, each by its data directory.
stop_run() {
  while IFS= read -r pid; do
    runuser -u "${PGDRILL_PG_USER:-postgres}" -- "$pg_ctl" -D "$(dirname "$pid")" -m fast stop >/dev/null 2>&1 || true
  done < <(find "$home/runs/$1" -name postmaster.pid 2>/dev/null)
}
cleanup() {
  for run in "${kept_runs[@]}"; do
    stop_run "$run"
    rm -rf "${home:?}/runs/$run"
  done
  [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null && wait "$s3_pid" 2>/dev/null
  rm -rf "$out"
}
trap cleanup EXIT

mkdir -p "$out/s3" "$out/scenarios"
"$pgdrill" serve-s3 --dir "$out/s3" --port "$port" >"$out/s3.log" 2>&1 &
s3_pid=$!
until curl -s -o /dev/null "$endpoint"; do
  kill -0 "$s3_pid" 2>/dev/null || { cat "$out/s3.log"; exit 1; }
done

printf '%-16s %8s %8s %7s %9s %9s %8s %8s %8s %7s %10s\n' point 'drill s' 'RTO s' 'raw s' ratio \
  'restore' 'replay' 'WAL MB' 'verify s' 'of RTO' 'peak RSS'
for point in $sweep; do
  size=${point%%:*} wal=${point##*:}
  name=sweep-$(echo "$size-$wal" | tr 'A-Z' 'a-z')
  file=$out/scenarios/$name.yaml
  cat >"$file" <<EOF
name: $name
description: bench sweep point, $size of bulk data and $wal of WAL after the base backup
postgres: 15
backup: { compression: $compression }
seed_data:
  tables:
    - { name: blobs, size: $size }
steps:
  - base_backup: { id: base1 }
  - write: { id: w1, table: blobs, size: $wal }
expect:
  recovered:
    data_loss: { rows: 0 }
timeouts: { archive_seconds: 3600, backup_seconds: 3600, recovery_seconds: 3600 }
EOF
  reports=$out/reports/$name
  /usr/bin/time -v -o "$out/$name.time" "$pgdrill" run --keep --s3-endpoint "$endpoint" \
    --report-dir "$reports" "$file" >"$out/$name.log" 2>&1 \
    || { cat "$out/$name.log"; echo "bench-sweep: $name did not pass"; exit 1; }
  run=$(basename "$(readlink -f "$reports/latest")")
  kept_runs+=("$run")
  archive=$(grep -o 'archiving to s3://[^ ]*' "$out/$name.log" | head -1 | cut -d' ' -f3)
  dest=${archive%/*} server=${archive##*/}
  read -r backup target < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
print(s["backup_id"], s["resolved_target"])' "$reports/latest/rto.json")
  stop_run "$run"  # the drill's kept servers, before the raw recovery is timed
  raw=$(bash "$(dirname "$0")/raw-recovery.sh" "$endpoint" "$dest" "$server" "$backup" "$target" 15 "$out/raw-$name")
  python3 - "$reports/latest/rto.json" "$out/$name.time" "$raw" "$point" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
timing = open(sys.argv[2]).read()
raw = dict(kv.split("=") for kv in sys.argv[3].split())
rto = s["rto"]
v = s["verification"]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
def rate(x):
    return f"{x:.1f}" if isinstance(x, (int, float)) else "-"
raw_rto = float(raw["raw_rto"])
# restore and replay: MB/s of the base backup restore and of WAL replay
print(f"{sys.argv[4]:16} {s['seconds']:8.1f} {rto['seconds']:8.2f} {raw_rto:7.2f} {rto['seconds'] / raw_rto:9.3f} "
      f"{rate(rto.get('base_backup_mb_per_second')):>9} {rate(rto.get('wal_replayed_mb_per_second')):>8} "
      f"{(rto.get('wal_replayed_bytes') or 0) / 1e6:8.0f} {v['seconds']:8.2f} {v['share_of_rto'] * 100:6.1f}% "
      f"{rss:7.1f} MiB")
PY
done
echo
echo "ratio = pgdrill's RTO / the same restore and replay by hand (scripts/raw-recovery.sh), same archive, one after the other"
echo
echo "RTO model over the sweep: $pgdrill rto-model <the sweep's reports> $predict"
# shellcheck disable=SC2086
"$pgdrill" rto-model "$out"/reports/*/latest $predict || true
