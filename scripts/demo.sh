#!/usr/bin/env bash
# The main job on the embedded default: sample data -> DbConnection -> train -> deploy -> predict.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fedsage demo "$@"
