# What the gateway's benchmarks share, sourced by bench/gateway.sh and
# bench/gateway-instructions.sh (not run on its own): the Debian packages the caller lists in
# `need` (command:package pairs, installed when the command is missing), the release build,
# a database of its own (`$DB`), the identity service and the gateway each its own process
# (the gateway under `$GATEWAY_UNDER` when set: callgrind, say), and the admin's token in
# `$token`. Leaves `$work` (a scratch directory), `$gateway` (its process id) and a cleanup
# on exit that first calls the caller's `cleanup_more`, if it defines one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for pair in "${need[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

cargo build --release --locked -p polyclinic >&2
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

work="$(mktemp -d)"
pids=()
cleanup() {
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ready() {
  local port=$1 pid=$2 log=$3
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
  done
}
"$BIN/polyclinic" identity 2>"$work/identity.log" &
identity=$!; pids+=("$identity")
ready 18081 "$identity" "$work/identity.log"
# shellcheck disable=SC2086
${GATEWAY_UNDER:-} "$BIN/polyclinic" gateway 2>"$work/gateway.log" &
gateway=$!; pids+=("$gateway")
ready 18080 "$gateway" "$work/gateway.log"

token=$(curl -fs -X POST "http://127.0.0.1:18081/api/auth/token" \
  --data-urlencode grant_type=password --data-urlencode username=admin@polyclinic.local \
  --data-urlencode "password=$POLYCLINIC_ADMIN_PASSWORD" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
