#!/usr/bin/env bash
# Property-based fuzzing of the whole platform's OpenAPI document with schemathesis, through
# the gateway, as each kind of caller: anonymous, a patient, a doctor, a nurse, an admin
# (least privileged first, so that nothing an admin's requests change spoils the others).
# Every check of schemathesis runs, in every phase: no 5xx; answers match their documented
# status codes, schemas, headers and content types; schema-valid requests are accepted and
# invalid ones refused; undocumented methods get 405 with `Allow`; authentication is not
# ignored; deleted resources stay gone. Any failure of any check fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
SERVER="${POLYCLINIC_FUZZ_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
DB=polyclinic_fuzz
EXAMPLES="${FUZZ_EXAMPLES:-10}"
# Which operations' cross-field rules may refuse schema-valid data (see the file).
CONFIG="$PWD/security/schemathesis.toml"

# Python tools live in a virtual environment of their own, never in the system Python.
VENV="${POLYCLINIC_CACHE:-$HOME/.cache/polyclinic}/venv"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  [ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
export PATH="$VENV/bin:$PATH"
cargo build --locked -p polyclinic >&2
BIN="$CARGO_TARGET_DIR/debug/polyclinic"

psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null
export DATABASE_URL="$SERVER/$DB"
export POLYCLINIC_LOG_FILTER=error
export POLYCLINIC_ADMIN_PASSWORD="fuzzing first passphrase"
export POLYCLINIC_RATE_LIMIT_USER_PER_MINUTE=100000000 POLYCLINIC_RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000
# The five runs take a few minutes; the tokens must outlive them.
export POLYCLINIC_AUTH_ACCESS_TOKEN_TTL_SECS=900
export POLYCLINIC_GATEWAY_PORT=19080 POLYCLINIC_IDENTITY_PORT=19081 \
  POLYCLINIC_APPOINTMENTS_PORT=19083 POLYCLINIC_PAYMENTS_PORT=19084 \
  POLYCLINIC_NOTIFICATIONS_PORT=19085 POLYCLINIC_PRESCRIPTIONS_PORT=19086
export POLYCLINIC_PUBLIC_URL=http://127.0.0.1:19080
GATEWAY=http://127.0.0.1:19080

"$BIN" all 2>/tmp/polyclinic-fuzz.log &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "${work:-}"; psql "$SERVER/postgres" -qc "drop database if exists $DB with (force)" >/dev/null' EXIT
for port in 19080 19081 19083 19084 19085 19086; do
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$pid" 2>/dev/null || { cat /tmp/polyclinic-fuzz.log >&2; exit 1; }
    sleep 0.1
  done
done

token() {
  curl -fsS -X POST "$GATEWAY/api/auth/token" -d grant_type=password --data-urlencode "username=$1" \
    --data-urlencode "password=$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
post() {
  curl -fsS -X POST "$GATEWAY$1" -H "authorization: Bearer $2" -H 'content-type: application/json' -d "$3"
}
admin=$(token admin@polyclinic.local "$POLYCLINIC_ADMIN_PASSWORD")
department=$(post /api/departments "$admin" '{"name": "Fuzzing"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
post /api/users/staff "$admin" "{\"role\": \"DOCTOR\", \"first_name\": \"F\", \"last_name\": \"Doc\", \"email\": \"doctor@fuzz.example\", \"password\": \"fuzzing staff passphrase\", \"department_id\": \"$department\", \"specialization\": \"GP\", \"years_of_experience\": 1, \"consultation_fee\": {\"amount\": 5000, \"currency\": \"EUR\"}}" >/dev/null
post /api/users/staff "$admin" "{\"role\": \"NURSE\", \"first_name\": \"F\", \"last_name\": \"Nurse\", \"email\": \"nurse@fuzz.example\", \"password\": \"fuzzing staff passphrase\", \"department_id\": \"$department\"}" >/dev/null
curl -fsS -X POST "$GATEWAY/api/users/patients" -H 'content-type: application/json' \
  -d '{"first_name": "F", "last_name": "Patient", "email": "patient@fuzz.example", "password": "fuzzing patient passphrase"}' >/dev/null
patient=$(token patient@fuzz.example "fuzzing patient passphrase")
doctor=$(token doctor@fuzz.example "fuzzing staff passphrase")
nurse=$(token nurse@fuzz.example "fuzzing staff passphrase")

# One worker: schemathesis 4.32 with two threads has been seen to fail inside CPython's AST
# compiler. It keeps a cache in its working directory: give it one outside the repository.
work=$(mktemp -d)
failed=0
for role in anonymous patient doctor nurse admin; do
  case $role in
    anonymous) auth=() ;;
    *) auth=(-H "Authorization: Bearer ${!role}") ;;
  esac
  echo "==> schemathesis as $role"
  # The token endpoint is fuzzed anonymously only: an authenticated run could lock the
  # accounts the later runs use out with failed logins.
  exclude=()
  [ "$role" = anonymous ] || exclude=(--exclude-path /api/auth/token --exclude-path /api/auth/revoke)
  if ! (cd "$work" && schemathesis --config-file "$CONFIG" run "$GATEWAY/docs/openapi.json" "${auth[@]}" "${exclude[@]}" \
      --checks all --phases examples,coverage,fuzzing,stateful \
      --max-examples "$EXAMPLES" --workers 1 --seed 1 --warnings off --no-color \
      --report junit --report-junit-path "$work/$role.xml"); then
    failed=1
  fi
  python3 - "$work/$role.xml" "$role" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
cases = sum(int(suite.get("tests", 0)) for suite in suites)
failures = sum(int(suite.get("failures", 0)) + int(suite.get("errors", 0)) for suite in suites)
print(f"schemathesis as {sys.argv[2]}: {cases} operations tested, {failures} failing")
PY
done
if [ "$failed" -ne 0 ]; then
  echo "schemathesis found answers that break the contract (above)" >&2
  exit 1
fi
echo "schemathesis: every check passed in every phase, for every role"
