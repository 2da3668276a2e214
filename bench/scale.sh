#!/usr/bin/env bash
# Cost as the data grows: the reference clinic (20 doctors, 2,000 patients, 5,000
# appointments over two years, 20,000 audit rows, 5,000 notifications, 20,000 events) seeded
# at 1x, 10x and 100x on fresh databases, and at each size the night's jobs and the routes a
# clinic reads all day, through the gateway, release build. Prints markdown tables: each
# route's p50/p99 per size with its p99 growth, and each job's rows and time per size.
# SCALE_FACTORS="1 10" runs fewer sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_scale
FACTORS="${SCALE_FACTORS:-1 10 100}"
CONCURRENCY="${CONCURRENCY:-4}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-5}"
LOG=/tmp/polyclinic-bench-scale.log

cargo build --release --locked -p polyclinic -p polyclinic-bench >&2
BIN="$CARGO_TARGET_DIR/release"

export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000 POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000
export POLYCLINIC_GATEWAY_PORT=18080 POLYCLINIC_IDENTITY_PORT=18081 \
  POLYCLINIC_APPOINTMENTS_PORT=18083 POLYCLINIC_PAYMENTS_PORT=18084 \
  POLYCLINIC_NOTIFICATIONS_PORT=18085 POLYCLINIC_PRESCRIPTIONS_PORT=18086 POLYCLINIC_WEB_PORT=18090
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:18080
results=$(mktemp -d)
pid=

stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null; rm -rf "$results"' EXIT

start() {
  "$BIN/polyclinic" all 2>>"$LOG" &
  pid=$!
  for port in 18080 18081 18083 18085 18086; do
    until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
      kill -0 "$pid" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
      sleep 0.1
    done
  done
}

: >"$LOG"
for factor in $FACTORS; do
  psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
  # The first start migrates and makes the administrator whose password the seed shares.
  start
  stop
  echo "==> ${factor}x: seeding and the night's jobs" >&2
  "$BIN/polyclinic-bench" scale-prepare --factor "$factor" --out "$results/prepared-$factor.json"
  psql "$DATABASE_URL" -qc "vacuum analyze" >/dev/null
  start
  echo "==> ${factor}x: routes" >&2
  "$BIN/polyclinic-bench" scale-measure --gateway http://127.0.0.1:18080 --factor "$factor" \
    --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_TARGET" --out "$results/measured-$factor.json"
  stop
done

"$BIN/polyclinic-bench" scale-report --dir "$results" --factors "$(echo $FACTORS | tr ' ' ',')"
