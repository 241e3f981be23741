#!/usr/bin/env bash
# scripts/main.sh: the main job. Installs what is missing, builds the release preset, runs the
# headline example (skynet over a million fibers) and then the micro-benchmarks against their
# peers (Go, Boost.Fiber, raw Boost.Context), all measured in this run: see bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== configure + build (preset release)"
cmake --preset release
cmake --build --preset release

echo "== example: build/release/examples/colony_hello"
build/release/examples/colony_hello

echo "== benchmarks: bench/run.sh"
bench/run.sh build/release
