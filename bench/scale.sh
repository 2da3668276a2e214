#!/usr/bin/env bash
# Cost as the data grows: the reference clinic (20 doctors, 2,000 patients, 5,000
# appointments over two years, 20,000 audit rows, 5,000 notifications, 20,000 events) seeded
# at 1x, 10x and 100x, each size on a database of its own, and at each size the night's jobs
# and the routes a clinic reads all day, through the gateway, release build. The sizes are
# measured side by side: a platform runs on each at once, and the sizes take turns on each
# route in rounds, so that a pause of the machine lands on every size alike. Prints markdown
# tables: each route's p50/p99 per size with its p99 growth, and each job's rows and time
# per size. SCALE_FACTORS="1 10" runs fewer sizes; ROUNDS and SECONDS_PER_TARGET set how
# long each route runs at each size.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_scale
read -r -a factors <<<"${SCALE_FACTORS:-1 10 100}"
CONCURRENCY="${CONCURRENCY:-4}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-4}"
ROUNDS="${ROUNDS:-3}"
LOG=/tmp/polyclinic-bench-scale.log

cargo build --release --locked -p polyclinic -p polyclinic-bench >&2
BIN="$CARGO_TARGET_DIR/release"

export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000 POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000
results=$(mktemp -d)
pids=()

database() { echo "$SERVER/${DB}_$1"; }
# The size at position $1 listens on 181xx, the next on 182xx and so on (its gateway on xx=80).
base_port() { echo $((18100 + 100 * $1)); }

stop_all() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
drop_all() {
  for factor in "${factors[@]}"; do
    psql "$SERVER/postgres" -qc "drop database if exists ${DB}_$factor with (force)" >/dev/null
  done
}
trap 'stop_all; drop_all; rm -rf "$results"' EXIT

# Starts a platform on the database of the size at position $1.
start() {
  local index=$1 base
  base=$(base_port "$1")
  DATABASE_URL="$(database "${factors[$index]}")" \
    POLYCLINIC_REDIS_KEY_PREFIX="polyclinic-bench-scale-$index:" \
    POLYCLINIC_GATEWAY_PORT=$((base + 80)) POLYCLINIC_IDENTITY_PORT=$((base + 81)) \
    POLYCLINIC_APPOINTMENTS_PORT=$((base + 83)) POLYCLINIC_PAYMENTS_PORT=$((base + 84)) \
    POLYCLINIC_NOTIFICATIONS_PORT=$((base + 85)) POLYCLINIC_PRESCRIPTIONS_PORT=$((base + 86)) \
    POLYCLINIC_WEB_PORT=$((base + 90)) POLYCLINIC_PUBLIC_URL="http://127.0.0.1:$((base + 80))" \
    "$BIN/polyclinic" all 2>>"$LOG" &
  local pid=$!
  pids+=("$pid")
  for offset in 80 81 83 85 86; do
    until curl -fs -o /dev/null "http://127.0.0.1:$((base + offset))/health/ready"; do
      kill -0 "$pid" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
      sleep 0.1
    done
  done
}

: >"$LOG"
drop_all
for index in "${!factors[@]}"; do
  factor=${factors[$index]}
  # The first start migrates and makes the administrator whose password the seed shares.
  start "$index"
  stop_all
  echo "==> ${factor}x: seeding and the night's jobs" >&2
  "$BIN/polyclinic-bench" scale-prepare --database "$(database "$factor")" --factor "$factor" \
    --out "$results/prepared-$factor.json"
  psql "$(database "$factor")" -qc "vacuum analyze" >/dev/null
done

echo "==> the routes at every size, side by side" >&2
gateways=() databases=()
for index in "${!factors[@]}"; do
  start "$index"
  gateways+=("http://127.0.0.1:$(($(base_port "$index") + 80))")
  databases+=("$(database "${factors[$index]}")")
done
join() { local IFS=,; echo "$*"; }
"$BIN/polyclinic-bench" scale-measure --factors "$(join "${factors[@]}")" \
  --gateways "$(join "${gateways[@]}")" --databases "$(join "${databases[@]}")" \
  --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_TARGET" --rounds "$ROUNDS" \
  --dir "$results"
stop_all

"$BIN/polyclinic-bench" scale-report --dir "$results" --factors "$(join "${factors[@]}")"
