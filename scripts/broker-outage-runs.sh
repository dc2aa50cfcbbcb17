#!/usr/bin/env bash
# Repeats the broker-outage tests (test/integration/kafka-faults.test.ts, pubsub-faults.test.ts)
# and prints each run's figures: /ready 503 after the loss, first error log after the loss, every
# change of the outage acknowledged after the broker's return. Not part of CI.
# Usage: scripts/broker-outage-runs.sh [runs=5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for broker in kafka pubsub; do
  for run in $(seq 1 "$runs"); do
    out=$(node --import tsx --test --test-name-pattern='killed and restarted' "test/integration/${broker}-faults.test.ts" 2>&1) || { echo "$out" | tail -40; exit 1; }
    echo "run $run: $(echo "$out" | grep -o '[a-z_]* outage: .*' | head -1)"
  done
done
