#!/usr/bin/env bash
# The FHIR API's heaviest reads beside their REST equivalents, through the gateway, same
# concurrency, same run, release build: a Slot search over 31 days for one practitioner and
# a 50-entry Appointment search. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_fhir
CONCURRENCY="${CONCURRENCY:-8}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-10}"

cargo build --release --locked -p polyclinic -p polyclinic-bench >&2
BIN="$CARGO_TARGET_DIR/release"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000 POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000
export POLYCLINIC_GATEWAY_PORT=18080 POLYCLINIC_IDENTITY_PORT=18081 \
  POLYCLINIC_APPOINTMENTS_PORT=18083 POLYCLINIC_PAYMENTS_PORT=18084 \
  POLYCLINIC_NOTIFICATIONS_PORT=18085 POLYCLINIC_PRESCRIPTIONS_PORT=18086 POLYCLINIC_WEB_PORT=18090
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:18080

"$BIN/polyclinic" all 2>/tmp/polyclinic-bench-fhir.log &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null' EXIT
for port in 18080 18081 18083 18086; do
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$pid" 2>/dev/null || { cat /tmp/polyclinic-bench-fhir.log >&2; exit 1; }
    sleep 0.05
  done
done

"$BIN/polyclinic-bench" fhir --gateway http://127.0.0.1:18080 \
  --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_TARGET"
