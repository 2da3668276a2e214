#!/usr/bin/env bash
# Event backbone: burst throughput, a backlog drained and paced commit-to-handler latency on
# the postgres bus and the kafka bus, one run, release build. The kafka bus runs twice: on
# librdkafka's mock cluster (in the benchmark's process, batching as Apache Kafka does) and on
# the test broker, tansu, with the one record per batch the tests need of it. Needs PostgreSQL
# and the Kafka-protocol test broker on loopback (scripts/test.sh starts one).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyclinic/target}"
cargo build --release --locked -p polyclinic-bench >&2
"$CARGO_TARGET_DIR/release/polyclinic-bench" events \
  --kafka "${POLYCLINIC_TEST_KAFKA:-127.0.0.1:9092}" \
  --kafka-properties "${POLYCLINIC_TEST_KAFKA_PROPERTIES:-batch.num.messages=1}" "$@"
