#!/usr/bin/env bash
# The physical limit, without pgdrill: the same recovery a drill measured, by hand.
# barman-cloud-check-wal-archive of the new cluster's (empty) archive, as CloudNativePG runs it
# before a restore, barman-cloud-restore of one backup, then PostgreSQL replaying WAL through
# barman-cloud-wal-restore to the same target and promoting, then one query. Prints the
# seconds from the start of the restore to the answer of that query (pgdrill's RTO measures
# the same span), the check's and the restore's, as `raw_rto=S raw_check=S raw_restore=S`.
#
# Usage: scripts/raw-recovery.sh ENDPOINT DESTINATION SERVER_NAME BACKUP_ID TARGET MAJOR WORKDIR
#   TARGET: `latest`, `time <timestamp>` or `lsn <lsn>` (rto.json's `resolved_target`).
#   Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never from arguments.
# Runs PostgreSQL as PGDRILL_PG_USER (default postgres) when started as root. Measures only;
# WORKDIR is removed at the end.
set -euo pipefail
endpoint=$1 dest=$2 server=$3 backup=$4 target=$5 major=$6 work=$7
home=${PGDRILL_HOME:-/var/tmp/pgdrill}
venv=$(ls -d "$home"/venv-barman-* | tail -n 1)
bin=/usr/lib/postgresql/$major/bin
[ -x "$bin/postgres" ] || bin=$(pg_config --bindir)
user=${PGDRILL_PG_USER:-postgres}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- env "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" "$@"; else "$@"; fi; }

mkdir -p "$work/sock"
[ "$(id -u)" = 0 ] && chown -R "$user" "$work"
data=$work/data
cleanup() {
  as_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
t0=$(now)
# As CloudNativePG (and pgdrill) do first: the new cluster's own archive must be empty.
as_pg "$venv/bin/barman-cloud-check-wal-archive" --endpoint-url "$endpoint" "$dest" "$server-raw-$$"
t_checked=$(now)
as_pg "$venv/bin/barman-cloud-restore" --endpoint-url "$endpoint" "$dest" "$server" "$backup" "$data"
t_restored=$(now)
{
  echo "listen_addresses = ''"
  echo "unix_socket_directories = '$work/sock'"
  echo "port = 5432"
  echo "max_connections = 20"
  echo "shared_buffers = '32MB'"
  echo "archive_mode = off"
  echo "restore_command = '$venv/bin/barman-cloud-wal-restore --endpoint-url $endpoint $dest $server %f %p'"
  echo "recovery_target_action = 'promote'"
  echo "recovery_target_timeline = 'latest'"
  case $target in
    latest) ;;
    time\ *) echo "recovery_target_time = '${target#time }'" ;;
    lsn\ *) echo "recovery_target_lsn = '${target#lsn }'" ;;
    *) echo "raw-recovery: target \`$target\` is not latest, time or lsn" >&2; exit 2 ;;
  esac
} | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
as_pg touch "$data/recovery.signal"
as_pg "$bin/pg_ctl" -D "$data" -l "$work/postgres.log" -W start >/dev/null
# Promoted: PostgreSQL logs this line once recovery has ended (a hot standby says "read-only
# connections" instead). Polled in its log, with a deadline: a query per poll would compete
# with replay for the CPU. Then the first query, as pgdrill's RTO ends with one.
deadline=$(( $(date +%s) + 3600 ))
until grep -q "database system is ready to accept connections" "$work/postgres.log"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "raw-recovery: not promoted within an hour" >&2; exit 1; fi
  sleep 0.05
done
promoted=$(as_pg "$bin/psql" -h "$work/sock" -U postgres -d postgres -XAtc 'SELECT NOT pg_is_in_recovery()')
t_ready=$(now)
[ "$promoted" = t ] || { echo "raw-recovery: the server says it is still in recovery" >&2; exit 1; }
awk -v a="$t0" -v k="$t_checked" -v b="$t_restored" -v c="$t_ready" \
  'BEGIN { printf "raw_rto=%.3f raw_check=%.3f raw_restore=%.3f\n", c - a, k - a, b - k }'
