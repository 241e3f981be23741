#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build the release preset and run every test
# (labels "unit" and "stress"). Extra arguments go to ctest, e.g. `./scripts/test.sh -L unit`.
#
#   CTEST_PARALLEL  parallel test jobs (default 2)
#   CTEST_TIMEOUT   default per-test timeout in seconds for tests without their own (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== configure + build (preset release)"
cmake --preset release
cmake --build --preset release

echo "== ctest (preset release)"
ctest --preset release -j "${CTEST_PARALLEL:-2}" --timeout "${CTEST_TIMEOUT:-600}" "$@"
