#!/usr/bin/env bash
# make bench: measures, never asserts. Runs a fixed set of drills one at a time (so figures do
# not depend on --jobs) under /usr/bin/time, then prints per-scenario wall time, RTO and its
# phases, archive lag and the run's peak memory from the reports pgdrill wrote.
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
print(f"run wall time: {run['seconds']:.1f} s" + (f" (/usr/bin/time: {wall.group(1)})" if wall else ""))
if rss:
    print(f"pgdrill peak RSS: {int(rss.group(1)) / 1024:.1f} MiB (pgdrill itself; PostgreSQL and barman run as other processes)")
PY
