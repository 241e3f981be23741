#!/usr/bin/env bash
# scripts/main.sh: the main job. Installs what is missing, builds the release preset, runs the
# headline example (skynet over a million fibers), then the comparison suite in its quick mode:
# fibers versus thread pools and Go, each workload in its own process (bench/run.sh suite).
# The table is printed at the end; the chart and the JSON go to build/compare-results/.
#
#   COLONY_COMPARE_MODE=--full ./scripts/main.sh    the issue's sizes (about 20 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== configure + build (preset release)"
cmake --preset release
cmake --build --preset release

echo "== example: build/release/examples/colony_hello"
build/release/examples/colony_hello

echo "== comparison suite: bench/run.sh suite ${COLONY_COMPARE_MODE:---quick}"
bench/run.sh suite "${COLONY_COMPARE_MODE:---quick}" --build build/release \
  --out build/compare-results
echo "== chart: build/compare-results/chart.svg (table: build/compare-results/table.txt)"
