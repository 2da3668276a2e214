#!/usr/bin/env bash
# Notifications: emails per second to a loopback SMTP server (run by the benchmark) from a
# burst of 5,000 reminder events, and commit-to-delivered latency per email; release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_notifications
EVENTS="${EVENTS:-5000}"

cargo build --release --locked -p polyclinic -p polyclinic-bench >&2
BIN="$CARGO_TARGET_DIR/release"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000
export POLYCLINIC_GATEWAY_PORT=18080 POLYCLINIC_IDENTITY_PORT=18081 \
  POLYCLINIC_APPOINTMENTS_PORT=18083 POLYCLINIC_PAYMENTS_PORT=18084 \
  POLYCLINIC_NOTIFICATIONS_PORT=18085 POLYCLINIC_PRESCRIPTIONS_PORT=18086 POLYCLINIC_WEB_PORT=18090
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:18080
export POLYCLINIC_EMAIL=smtp POLYCLINIC_SMTP_URL="smtp://127.0.0.1:18025?tls=none"
# The benchmark's SMTP server starts after the platform; the first emails retry until it is up.
export POLYCLINIC_EMAIL_RETRY_BASE_MS=200

"$BIN/polyclinic" all 2>/tmp/polyclinic-bench-notifications.log &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null' EXIT
for port in 18080 18081 18083 18084 18085; do
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$pid" 2>/dev/null || { cat /tmp/polyclinic-bench-notifications.log >&2; exit 1; }
    sleep 0.05
  done
done

${PERF:-} "$BIN/polyclinic-bench" notifications --gateway http://127.0.0.1:18080 --database "$DATABASE_URL" \
  --smtp-port 18025 --events "$EVENTS"
