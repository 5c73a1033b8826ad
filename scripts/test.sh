#!/usr/bin/env bash
# The whole test suite, with lint and type checks, from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check fedsage tests bench
.venv/bin/mypy
# Runtimes are built once per run and shared by every test that needs one.
export FEDSAGE_TEST_RUNTIME_CACHE="${FEDSAGE_TEST_RUNTIME_CACHE:-$PWD/.fedsage-ci/runtimes}"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"; exit 1
fi
exit "$status"
