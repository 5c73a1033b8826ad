#!/usr/bin/env bash
# The whole test suite, with lint and type checks, from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check fedsage tests bench
.venv/bin/mypy
# The code that runs under a runtime's own interpreter, as its own package root.
.venv/bin/mypy --config-file mypy-inside.ini
# Runtimes are built once per run and shared by every test that needs one.
export FEDSAGE_TEST_RUNTIME_CACHE="${FEDSAGE_TEST_RUNTIME_CACHE:-$PWD/.fedsage-ci/runtimes}"
# The main job once more as a Debian user runs it: Debian's own python3 (3.11.2, whose
# tarfile has no extraction filters), a fresh home, the shared runtime cache.
if [ -x /usr/bin/python3 ]; then
  echo "main job on $(/usr/bin/python3 --version) (/usr/bin/python3)"
  debian_venv=.fedsage-ci/debian-venv
  [ -x "$debian_venv/bin/python" ] || /usr/bin/python3 -m venv "$debian_venv"
  "$debian_venv/bin/python" -m pip install -q --upgrade uv
  "$debian_venv/bin/python" -m uv pip install --python "$debian_venv/bin/python" -q --reinstall-package fedsage .
  debian_home=$(mktemp -d)
  FEDSAGE_HOME="$debian_home" FEDSAGE_RUNTIMES_DIR="$FEDSAGE_TEST_RUNTIME_CACHE" \
    "$debian_venv/bin/fedsage" demo
  rm -rf "$debian_home"
fi
status=0
# One pytest worker per core: most tests wait on real subprocesses and servers, and the
# run's long tail (runtime builds, fuzzing) is spread by work stealing.
.venv/bin/python -m pytest -n auto --dist worksteal "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"; exit 1
fi
exit "$status"
