#!/usr/bin/env bash
# The README's test command: on a brand-new machine it sets up everything the tests need,
# then runs every test. Run again, it only checks that each piece is still there.
#
#   - PostgreSQL on 127.0.0.1:5432 (started if down; max_connections raised to 300, as the
#     tests run side by side with a platform each), Redis on 127.0.0.1:6379;
#   - the test Kafka broker, tansu, built from crates.io (about 15 minutes once per machine)
#     and started on 127.0.0.1:9092;
#   - cargo-nextest; Debian's Chromium for the browser tests and their Node packages;
#     schemathesis, kubernetes-validate and PyYAML in a virtual environment of their own
#     (never the system Python);
#   - then every test: `cargo nextest run` (arguments are passed on to it), the deployment
#     files' offline checks and the schemathesis security suite.
#
# Cargo's target directory and the installed tools live under ~/.cache/polyclinic
# (POLYCLINIC_CACHE), so repeated runs are fast; nothing there is required.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${POLYCLINIC_CACHE:-$HOME/.cache/polyclinic}"
mkdir -p "$CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Debian's packages are installed as root, or through sudo.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_install() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL on 127.0.0.1:5432"
command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p 5432
# (A failing psql stops the script here, rather than hiding in the comparison below.)
connections="$(psql -h 127.0.0.1 -U postgres -Atc 'show max_connections')"
if [ "$connections" -lt 300 ]; then
  psql -h 127.0.0.1 -U postgres -qc "alter system set max_connections = 300"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main restart
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
echo "max_connections $(psql -h 127.0.0.1 -U postgres -Atc 'show max_connections')"

step "Redis on 127.0.0.1:6379"
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 60); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
redis-cli -h 127.0.0.1 -p 6379 ping

step "Build tools: a C toolchain, OpenSSL's and libcurl's headers for librdkafka"
# rdkafka builds librdkafka from source, with TLS (OpenSSL) and SASL OAUTHBEARER (libcurl).
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
pkg-config --exists libcurl 2>/dev/null || need+=(libcurl4-openssl-dev)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
echo "cc $(cc -dumpversion), openssl $(pkg-config --modversion openssl), libcurl $(pkg-config --modversion libcurl)"

step "Kafka-protocol broker (tansu) on 127.0.0.1:9092"
# Kafka itself is not installed here; tansu speaks the Kafka protocol and builds from
# crates.io. `--locked` keeps its dependencies at their released versions; `dynostore`
# enables the memory storage engine.
TANSU="$CACHE/tools/bin/tansu"
if [ ! -x "$TANSU" ]; then
  CARGO_TARGET_DIR="$CACHE/tansu-build" cargo install tansu --version 0.6.0 --locked \
    --features dynostore --root "$CACHE/tools"
  rm -rf "$CACHE/tansu-build"
fi
kafka_up() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }
if ! kafka_up; then
  nohup "$TANSU" broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
    >"$CACHE/tansu.log" 2>&1 &
fi
for _ in $(seq 1 60); do kafka_up && break; sleep 0.5; done
kafka_up || { cat "$CACHE/tansu.log"; exit 1; }
echo "broker on 127.0.0.1:9092"
# tansu 0.6.0 loses the rest of a multi-record batch when a consumer resumes inside it;
# one record per batch avoids that. Production code has no broker-specific branch.
export POLYCLINIC_TEST_KAFKA=127.0.0.1:9092
# Tests that pause a broker, or put one behind TLS, start a private one from this binary.
export POLYCLINIC_TEST_TANSU="$TANSU"
export POLYCLINIC_TEST_KAFKA_PROPERTIES=batch.num.messages=1

step "cargo-nextest"
export PATH="$CACHE/tools/bin:$PATH"
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked --root "$CACHE/tools"
fi
cargo nextest --version

step "Python tools in a virtual environment (never the system Python)"
# schemathesis for security/fuzz.sh, kubernetes-validate for deploy/check.sh, PyYAML for
# deploy/render.py (which a test runs), Authlib (with requests) for the SMART launch test,
# icalendar to read the invites and feeds the calendar tests receive.
VENV="$CACHE/venv"
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
  "schemathesis==4.32.5" "kubernetes-validate==1.37.0" "PyYAML==6.0.3" \
  "Authlib==1.9.10" "requests==2.34.2" "icalendar==7.3.2"
export PATH="$VENV/bin:$PATH"
python3 -c 'import yaml, sys; print(sys.prefix, "PyYAML", yaml.__version__)'

step "Browser tests: Debian's Chromium, and Playwright from npm"
# playwright-core drives /usr/bin/chromium headless (no browser download).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_install chromium chromium-driver fonts-dejavu-core
fi
/usr/bin/chromium --version
node --version
(cd services/web/tests/browser && npm ci --no-audit --no-fund --loglevel=error)

step "FHIR validators from npm: FHIR.js and HL7's R4 JSON schema"
(cd crates/fhir/tests/validator && npm ci --no-audit --no-fund --loglevel=error)

step "Tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"

step "Deployment files (offline checks)"
deploy/check.sh

step "Security suite: schemathesis over the OpenAPI document, every role"
security/fuzz.sh
