#!/usr/bin/env bash
# make bench: measures, never asserts. Runs a fixed set of drills one at a time (so figures do
# not depend on --jobs) under /usr/bin/time, then prints per-scenario wall time, RTO and its
# phases, archive lag, throughput per phase, the slowest phase, what verification cost and the
# run's peak memory from the reports pgdrill wrote.
# Usage: scripts/bench.sh PGDRILL [SCENARIO...]
set -euo pipefail
pgdrill=$1; shift
if [ $# -eq 0 ]; then
  set -- scenarios/01-clean-restore-latest.yaml scenarios/06-pitr-lsn.yaml \
         scenarios/19-object-store-latency.yaml
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
timing="$out/time.txt"
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v -o "$timing" "$pgdrill" run --jobs 1 --report-dir "$out/reports" "$@" >"$out/log.txt" 2>&1 \
    || { cat "$out/log.txt"; echo "bench: a drill did not pass"; exit 1; }
else
  "$pgdrill" run --jobs 1 --report-dir "$out/reports" "$@" >"$out/log.txt" 2>&1 \
    || { cat "$out/log.txt"; echo "bench: a drill did not pass"; exit 1; }
  : >"$timing"
fi
python3 - "$out/reports/latest/rto.json" "$timing" <<'PY'
import json, re, sys
run = json.load(open(sys.argv[1]))
timing = open(sys.argv[2]).read()
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing)
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", timing)
print(f"pgdrill bench: {len(run['scenarios'])} drill(s), one at a time")
print(f"{'scenario':32} {'drill s':>8} {'RTO s':>7} {'restore':>8} {'consist.':>8} {'promote':>8} {'query':>6} {'WAL':>4} {'lag mean':>9} {'lag max':>8}")
for s in run["scenarios"]:
    rto = s.get("rto") or {}
    ph = {p["name"]: p["seconds"] for p in rto.get("phases", [])}
    waits = [w["seconds"] for w in s.get("archive_waits", [])]
    mean = sum(waits) / len(waits) if waits else 0.0
    print(f"{s['name']:32} {s['seconds']:8.2f} {rto.get('seconds', 0):7.2f} "
          f"{ph.get('restore_base_backup', 0):8.2f} {ph.get('replay_until_consistent', 0):8.2f} "
          f"{ph.get('replay_and_promotion', 0):8.2f} {ph.get('first_query', 0):6.2f} "
          f"{rto.get('wal_segments_replayed', 0):4d} {mean:9.2f} {max(waits, default=0):8.2f}")
print()
print(f"{'scenario':32} {'restore MB/s':>12} {'fetch MB/s':>10} {'replay MB/s':>11} {'slowest phase':>24} {'verify s':>9} {'rows read':>9} {'of RTO':>7}")
def rate(x):
    return f"{x:.1f}" if isinstance(x, (int, float)) else "-"
for s in run["scenarios"]:
    rto = s.get("rto") or {}
    v = s.get("verification") or {}
    share = v.get("share_of_rto")
    print(f"{s['name']:32} {rate(rto.get('base_backup_mb_per_second')):>12} "
          f"{rate(rto.get('wal_fetched_mb_per_second')):>10} {rate(rto.get('wal_replayed_mb_per_second')):>11} "
          f"{rto.get('slowest_phase') or '-':>24} {v.get('seconds', 0):9.3f} {v.get('rows_read', 0):9d} "
          f"{(f'{share * 100:.1f} %' if share is not None else '-'):>7}")
print(f"run wall time: {run['seconds']:.1f} s" + (f" (/usr/bin/time: {wall.group(1)})" if wall else ""))
if rss:
    print(f"pgdrill peak RSS: {int(rss.group(1)) / 1024:.1f} MiB (pgdrill itself; PostgreSQL and barman run as other processes)")
PY
