#!/usr/bin/env bash
# Event backbone: burst throughput and paced commit-to-handler latency on the postgres bus and
# the kafka bus (the test broker, tansu, with the test broker's batch setting), one run,
# release build. Needs PostgreSQL and a Kafka-protocol broker on loopback (.ci/run starts one).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
cargo build --release --locked -p polyclinic-bench >&2
"$CARGO_TARGET_DIR/release/polyclinic-bench" events \
  --kafka "${POLYCLINIC_TEST_KAFKA:-127.0.0.1:9092}" \
  --kafka-properties "${POLYCLINIC_TEST_KAFKA_PROPERTIES:-batch.num.messages=1}" "$@"
