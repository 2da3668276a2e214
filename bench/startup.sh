#!/usr/bin/env bash
# Start-up time and idle memory of `polyclinic all` (release build).
#
# For each run: exec the binary, poll /health/ready of all six services until every one
# answers 200 (that is "ready"), let it idle two seconds, read VmRSS from /proc, send
# SIGTERM. Run 1 starts against a database that does not exist yet (create + migrate); the
# others start against an up-to-date schema, as a restart does. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
RUNS="${RUNS:-5}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_startup

cargo build --release --locked -p polyclinic >&2
BIN="$CARGO_TARGET_DIR/release/polyclinic"

export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
# Ports of their own, so a platform already running on 8080-8086 does not interfere.
export POLYCLINIC_GATEWAY_PORT=18080 POLYCLINIC_IDENTITY_PORT=18081 \
  POLYCLINIC_APPOINTMENTS_PORT=18083 POLYCLINIC_PAYMENTS_PORT=18084 \
  POLYCLINIC_NOTIFICATIONS_PORT=18085 POLYCLINIC_PRESCRIPTIONS_PORT=18086 POLYCLINIC_WEB_PORT=18090
PORTS="18080 18081 18083 18084 18085 18086"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "| run | database | ready (ms) | idle RSS (MiB) |"
echo "|---|---|---:|---:|"
for run in $(seq 1 "$RUNS"); do
  state=$([ "$run" = 1 ] && echo "created + migrated" || echo "up to date")
  start=$(now_ms)
  "$BIN" all 2>"/tmp/polyclinic-bench-startup.log" &
  pid=$!
  for port in $PORTS; do
    until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
      kill -0 "$pid" 2>/dev/null || { cat /tmp/polyclinic-bench-startup.log >&2; exit 1; }
      sleep 0.005
    done
  done
  ready=$(( $(now_ms) - start ))
  sleep 2
  rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid"
  printf '| %s | %s | %s | %.1f |\n' "$run" "$state" "$ready" "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')"
done

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
