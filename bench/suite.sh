#!/usr/bin/env bash
# The performance suite: every benchmark in one run, release build, on this machine, each
# table written into README.md between its markers (`<!-- bench:NAME -->` ...
# `<!-- /bench:NAME -->`), so the README's figures are the suite's output, never typed.
# Needs PostgreSQL, Redis and the Kafka-protocol test broker on loopback (.ci/run starts them).
set -euo pipefail
cd "$(dirname "$0")/.."
readme=README.md

write() {
  local name=$1 output=$2
  python3 - "$readme" "$name" "$output" <<'PY'
import sys
path, name, output = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
start, stop = text.find(begin), text.find(end)
if start < 0 or stop < 0:
    sys.exit(f"README.md has no {begin} ... {end} section")
text = text[: start + len(begin)] + "\n" + output.strip() + "\n" + text[stop:]
open(path, "w").write(text)
PY
}

# BENCHES="memory web" runs (and rewrites) only those.
for bench in ${BENCHES:-startup memory gateway booking events notifications web fhir scale}; do
  echo "==> bench/$bench.sh" >&2
  output=$(bash "bench/$bench.sh")
  echo "$output"
  write "$bench" "$output"
done
echo "README.md updated with this run's figures ($(date -u +%Y-%m-%d), $(nproc) cores)" >&2
