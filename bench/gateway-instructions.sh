#!/usr/bin/env bash
# The gateway's instructions per proxied request, counted by valgrind's callgrind: the same
# authenticated `GET /api/users/me` as bench/gateway.sh, at 8 connections for 20 s, with the
# gateway's process under callgrind (the identity service runs natively). Unlike CPU time,
# the count does not move with the machine's load, so two builds compare on any machine, one
# after the other. Prints the count a request and the functions that spend the most of it
# themselves. Not part of the suite (callgrind runs the gateway some 50 times slower).
# Release build; valgrind and wrk come from Debian (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_bench_instructions
SECONDS_MEASURED="${SECONDS_MEASURED:-20}"
TOP="${TOP:-25}"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

cargo build --release --locked -p polyclinic >&2
BIN="$CARGO_TARGET_DIR/release"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=warn
export POLYCLINIC_ADMIN_PASSWORD="bench first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000
export POLYCLINIC_GATEWAY_PORT=18280 POLYCLINIC_IDENTITY_PORT=18281 \
  POLYCLINIC_APPOINTMENTS_PORT=18283 POLYCLINIC_PAYMENTS_PORT=18284 \
  POLYCLINIC_NOTIFICATIONS_PORT=18285 POLYCLINIC_PRESCRIPTIONS_PORT=18286 POLYCLINIC_WEB_PORT=18290
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:18280

work="$(mktemp -d)"
pids=()
cleanup() {
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
    sleep 0.2
  done
}
"$BIN/polyclinic" identity 2>"$work/identity.log" &
pids+=($!)
ready 18281 "${pids[-1]}" "$work/identity.log"
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  "$BIN/polyclinic" gateway 2>"$work/gateway.log" &
gateway=$!; pids+=("$gateway")
ready 18280 "$gateway" "$work/gateway.log"

token=$(curl -fs -X POST "http://127.0.0.1:18281/api/auth/token" \
  --data-urlencode grant_type=password --data-urlencode username=admin@polyclinic.local \
  --data-urlencode "password=$POLYCLINIC_ADMIN_PASSWORD" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
url=http://127.0.0.1:18280/api/users/me

# Warm up (connections, caches), zero the counts, measure, and dump what was counted since.
wrk -t1 -c8 -d5s -H "Authorization: Bearer $token" "$url" >/dev/null
callgrind_control -z "$gateway" >/dev/null 2>&1
wrk -t1 -c8 -d"${SECONDS_MEASURED}s" -H "Authorization: Bearer $token" "$url" >"$work/wrk.out"
callgrind_control -d "$gateway" >/dev/null 2>&1
until ls "$work"/callgrind.out.* >/dev/null 2>&1; do sleep 0.2; done
sleep 1

python3 - "$(ls "$work"/callgrind.out.* | head -1)" "$work/wrk.out" "$TOP" <<'PY'
import collections, re, sys
profile, wrk, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = open(wrk).read()
requests = int(re.search(r"(\d+) requests in", out).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"{errors.group(1)} requests failed: the count would not be of proxied requests")

# A function's own cost is the cost lines under its `fn=`, less those that follow a `calls=`
# (the cost of the call, counted again in the callee). Names are compressed as `(id) name`.
names, own, function, call = {}, collections.Counter(), None, False
def name(token):
    found = re.match(r"\((\d+)\)(?: (.*))?", token)
    if not found:
        return token
    if found.group(2):
        names[found.group(1)] = found.group(2)
    return names.get(found.group(1), token)
for line in open(profile):
    line = line.rstrip("\n")
    if line.startswith("fn="):
        function = name(line[3:])
    elif line.startswith("cfn="):
        name(line[4:])
    elif line.startswith("calls="):
        call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        fields = line.split()
        if call:
            call = False
        elif function is not None and len(fields) > 1:
            own[function] += int(fields[1])
total = sum(own.values())
print(f"{requests} proxied requests of `GET /api/users/me` under callgrind; "
      f"**{total / requests:,.0f} instructions a request** in the gateway's process (user space).")
print()
print("| instructions a request | share | function (its own, callees apart) |")
print("|---:|---:|---|")
for function, cost in own.most_common(top):
    print(f"| {cost / requests:,.0f} | {100 * cost / total:.1f}% | `{function[:100]}` |")
PY
