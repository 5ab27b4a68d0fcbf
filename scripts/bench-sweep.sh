#!/usr/bin/env bash
# make bench, second half: RTO at size. Measures, never asserts.
# For each point SIZE:WAL of BENCH_SWEEP, a drill with a bulk table of SIZE, a base backup,
# then WAL bulk writes, recovered to latest. Each drill is its own pgdrill run under
# /usr/bin/time (pgdrill's peak RSS at that size), against one standalone `pgdrill serve-s3`
# kept for the whole sweep, with --keep so the archive stays. Then the same recovery by hand
# (scripts/raw-recovery.sh: barman-cloud-restore, PostgreSQL replay, no pgdrill) from the same
# archive. Prints per point the RTO, its phases' throughput, verification against the RTO,
# pgdrill's peak RSS and pgdrill's recovery as a ratio to the raw one; then the RTO model
# fitted over the sweep (`pgdrill rto-model`) with a prediction for BENCH_PREDICT. Then the
# knobs CNPG users turn, at BENCH_KNOBS (SIZE:WAL; empty skips): base backup jobs 1 vs 4 and
# WAL fetched 1 vs 8 at a time during recovery, each pair in one drill.
# Usage: scripts/bench-sweep.sh PGDRILL
set -euo pipefail
pgdrill=$(realpath "$1")
sweep=${BENCH_SWEEP:-64MiB:32MiB 64MiB:512MiB 512MiB:128MiB 2GiB:64MiB}
predict=${BENCH_PREDICT:---size 50GiB --wal 8GiB --objective 5m}
knobs=${BENCH_KNOBS-512MiB:256MiB}
compression=${BENCH_COMPRESSION:-gzip}
home=${PGDRILL_HOME:-/var/tmp/pgdrill}
out=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-sweep.XXXXXX")
chmod 755 "$out"  # the raw recovery runs as the PostgreSQL user under it
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
trap "exit 130" INT TERM  # so that the EXIT trap cleans up

mkdir -p "$out/s3" "$out/scenarios"
"$pgdrill" serve-s3 --dir "$out/s3" --port "$port" >"$out/s3.log" 2>&1 &
s3_pid=$!
for _ in $(seq 100); do  # listening: the named condition, within 10 s
  curl -s -o /dev/null "$endpoint" && break
  kill -0 "$s3_pid" 2>/dev/null || { cat "$out/s3.log"; exit 1; }
  sleep 0.1
done

# drill NAME SIZE WAL JOBS MAX_PARALLEL: one bulk drill, kept; sets $reports and $hwm.
drill() {
  local name=$1 size=$2 wal=$3 jobs=$4 maxpar=$5
  local file=$out/scenarios/$name.yaml
  cat >"$file" <<EOF
name: $name
description: bench point, $size of bulk data and $wal of WAL after the base backup
postgres: 15
backup: { compression: $compression, jobs: $jobs }
seed_data:
  tables:
    - { name: blobs, size: $size }
steps:
  - base_backup: { id: base1 }
  - write: { id: w1, table: blobs, size: $wal }
recovery: { target: latest, wal_max_parallel: $maxpar }
expect:
  recovered:
    data_loss: { rows: 0 }
timeouts: { archive_seconds: 3600, backup_seconds: 3600, recovery_seconds: 3600 }
EOF
  reports=$out/reports/$name
  /usr/bin/time -v -o "$out/$name.time" "$pgdrill" run --keep --s3-endpoint "$endpoint" \
    --report-dir "$reports" "$file" >"$out/$name.log" 2>&1 &
  local tpid=$! pid h
  # pgdrill's own peak RSS (VmHWM): /usr/bin/time's maximum also counts the children it
  # reaped (barman-cloud, PostgreSQL), so read pgdrill's own until it exits.
  hwm=0
  while kill -0 "$tpid" 2>/dev/null; do
    pid=$(pgrep -P "$tpid" -x pgdrill || true)
    h=$( [ -n "$pid" ] && awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$h" ] && hwm=$h
    sleep 1
  done
  wait "$tpid" || { cat "$out/$name.log"; echo "bench-sweep: $name did not pass"; exit 1; }
  run=$(basename "$(readlink -f "$reports/latest")")
  kept_runs+=("$run")
  stop_run "$run"  # the drill's kept servers, before anything else is timed
}

printf '%-16s %8s %8s %7s %9s %9s %9s %8s %8s %8s %7s %11s %13s\n' point 'drill s' 'RTO s' 'raw s' ratio 'check s' \
  'restore' 'replay' 'WAL MB' 'verify s' 'of RTO' 'pgdrill RSS' 'with children'
for point in $sweep; do
  size=${point%%:*} wal=${point##*:}
  name=sweep-$(echo "$size-$wal" | tr 'A-Z' 'a-z')
  drill "$name" "$size" "$wal" 2 1
  archive=$(grep -o 'archiving to s3://[^ ]*' "$out/$name.log" | head -1 | cut -d' ' -f3)
  dest=${archive%/*} server=${archive##*/}
  read -r backup target < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
print(s["backup_id"], s["resolved_target"])' "$reports/latest/rto.json")
  raw=$(bash "$(dirname "$0")/raw-recovery.sh" "$endpoint" "$dest" "$server" "$backup" "$target" 15 "$out/raw-$name")
  python3 - "$reports/latest/rto.json" "$out/$name.time" "$raw" "$point" "$hwm" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
timing = open(sys.argv[2]).read()
raw = dict(kv.split("=") for kv in sys.argv[3].split())
rto = s["rto"]
v = s["verification"]
tree = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
rss = int(sys.argv[5]) / 1024
def rate(x):
    return f"{x:.1f}" if isinstance(x, (int, float)) else "-"
raw_rto = float(raw["raw_rto"])
print(f"{sys.argv[4]:16} {s['seconds']:8.1f} {rto['seconds']:8.2f} {raw_rto:7.2f} {rto['seconds'] / raw_rto:9.3f} {float(raw['raw_check']):9.2f} "
      f"{rate(rto.get('base_backup_mb_per_second')):>9} {rate(rto.get('wal_replayed_mb_per_second')):>8} "
      f"{(rto.get('wal_replayed_bytes') or 0) / 1e6:8.0f} {v['seconds']:8.2f} {v['share_of_rto'] * 100:6.1f}% "
      f"{rss:7.1f} MiB {tree:8.1f} MiB")
PY
done
echo
echo "restore, replay: MB/s of the base backup restore and of WAL replay; pgdrill RSS: its own peak (VmHWM);"
echo "with children: /usr/bin/time's maximum, which includes the PostgreSQL and barman-cloud processes pgdrill reaped"
echo "ratio = pgdrill's RTO / the same check, restore and replay by hand (scripts/raw-recovery.sh), same archive, one after the other;"
echo "check s: barman-cloud-check-wal-archive of the new cluster's archive, which CloudNativePG and pgdrill run first, inside both RTOs"
echo
if [ -n "$knobs" ]; then
  size=${knobs%%:*} wal=${knobs##*:}
  echo "Knobs at $knobs: base backup jobs (barman-cloud-backup --jobs) and WAL fetched in parallel during recovery (wal_max_parallel)"
  printf '%-28s %10s %8s %10s %10s %10s\n' drill 'backup s' 'RTO s' 'fetch MB/s' 'fetches' 'spool hits'
  for setting in "1 1" "4 8"; do
    read -r jobs maxpar <<<"$setting"
    name=knobs-jobs$jobs-wal$maxpar
    drill "$name" "$size" "$wal" "$jobs" "$maxpar"
    python3 - "$reports/latest/rto.json" "$out/$name.log" "$name" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
backup = re.search(r"step base1 \(base_backup\) ([0-9.]+)s", open(sys.argv[2]).read()).group(1)
rto = s["rto"]
pf = rto.get("wal_prefetch") or {}
fetch = rto.get("wal_fetched_mb_per_second")
print(f"{sys.argv[3]:28} {float(backup):10.2f} {rto['seconds']:8.2f} {fetch if fetch is None else round(fetch, 1)!s:>10} "
      f"{pf.get('fetches', '-')!s:>10} {pf.get('spool_hits', '-')!s:>10}")
PY
  done
  echo
fi
echo "RTO model over the sweep: $pgdrill rto-model <the sweep's reports> $predict"
# shellcheck disable=SC2086
"$pgdrill" rto-model "$out"/reports/sweep-*/latest $predict || true
