#!/usr/bin/env bash
# Memory per service: every service as its own process (as containers run them), its resident
# set when idle after start-up, then its peak (VmHWM) after a booking load through the
# gateway (the booking benchmark, 5 s per target). Release build. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_memory

cargo build --release --locked -p polyclinic -p polyclinic-bench >&2
BIN="$CARGO_TARGET_DIR/release"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000 POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000
export POLYCLINIC_BOOKING_MAX_PENDING_PER_PATIENT=1000000
export POLYCLINIC_GATEWAY_PORT=18080 POLYCLINIC_IDENTITY_PORT=18081 \
  POLYCLINIC_APPOINTMENTS_PORT=18083 POLYCLINIC_PAYMENTS_PORT=18084 \
  POLYCLINIC_NOTIFICATIONS_PORT=18085 POLYCLINIC_PRESCRIPTIONS_PORT=18086 POLYCLINIC_WEB_PORT=18090
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:18080
export POLYCLINIC_GATEWAY_URL=http://127.0.0.1:18080 POLYCLINIC_IDENTITY_URL=http://127.0.0.1:18081 \
  POLYCLINIC_APPOINTMENTS_URL=http://127.0.0.1:18083 POLYCLINIC_PAYMENTS_URL=http://127.0.0.1:18084 \
  POLYCLINIC_NOTIFICATIONS_URL=http://127.0.0.1:18085 POLYCLINIC_PRESCRIPTIONS_URL=http://127.0.0.1:18086

"$BIN/polyclinic" migrate 2>/dev/null
declare -A pids ports=([gateway]=18080 [identity]=18081 [appointments]=18083 [payments]=18084 [notifications]=18085 [prescriptions]=18086 [web]=18090)
order=(identity appointments payments notifications prescriptions gateway web)
cleanup() {
  for service in "${order[@]}"; do kill -TERM "${pids[$service]:-0}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
}
trap cleanup EXIT
for service in "${order[@]}"; do
  "$BIN/polyclinic" "$service" 2>"/tmp/polyclinic-bench-memory-$service.log" &
  pids[$service]=$!
  until curl -fs -o /dev/null "http://127.0.0.1:${ports[$service]}/health/ready"; do
    kill -0 "${pids[$service]}" 2>/dev/null || { cat "/tmp/polyclinic-bench-memory-$service.log" >&2; exit 1; }
    sleep 0.05
  done
done
sleep 3
kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }
declare -A idle
for service in "${order[@]}"; do idle[$service]=$(kib "${pids[$service]}" VmRSS); done

"$BIN/polyclinic-bench" booking --gateway http://127.0.0.1:18080 --appointments http://127.0.0.1:18083 \
  --database "$DATABASE_URL" --concurrency 64 --seconds 5 --no-steady >/dev/null
"$BIN/polyclinic-bench" web --gateway http://127.0.0.1:18080 --web http://127.0.0.1:18090 \
  --concurrency 16 --seconds 4 >/dev/null

echo "| service | idle RSS (MiB) | peak RSS under load (MiB) |"
echo "|---|---:|---:|"
for service in gateway identity appointments payments notifications prescriptions web; do
  printf '| %s | %.1f | %.1f |\n' "$service" \
    "$(awk -v k="${idle[$service]}" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$(kib "${pids[$service]}" VmHWM)" 'BEGIN { print k / 1024 }')"
done
echo
echo "each service its own process; peak after the booking benchmark's load (64 clients, 5 s per target) and the web benchmark's (16 clients, 4 s per page)"
