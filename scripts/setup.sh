#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install fedsage into it.
#   scripts/setup.sh          the package and the command line
#   scripts/setup.sh dev      + test tools, and the Debian servers the tests start
set -euo pipefail
cd "$(dirname "$0")/.."

want_dev=${1:-}
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "fedsage needs Python >= 3.10; set PYTHON=/path/to/python" >&2; exit 1; }

if [ "$want_dev" = "dev" ]; then
  # Real servers for the tests: PostgreSQL, an OCI registry, nginx, and wrk for benchmarks.
  packages="postgresql docker-registry skopeo nginx-light wrk"
  missing=""
  for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "installing Debian packages:$missing"
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade uv
extras=""
[ "$want_dev" = "dev" ] && extras="[dev,aws,kyma,datasphere]"
# --compile-bytecode: pip writes the .pyc files at install, uv only when asked.  Without them
# every process (the CLI, a host-runtime worker, which runs with PYTHONDONTWRITEBYTECODE=1
# as the image does) compiles what it imports again: seconds for scikit-learn.
# editable_mode=compat: the editable install is a plain path in a .pth file instead of
# setuptools' import finder, which imported pathlib, importlib.util and re at every start
# of every Python process of this venv (`python -c pass` 0.058 s -> 0.027 s, bench/cli.py).
.venv/bin/python -m uv pip install --python .venv/bin/python -q --compile-bytecode \
  --config-settings editable_mode=compat -e ".${extras}"

if [ "$want_dev" = "dev" ]; then
  # fedml-aws 2.0.2's wheel, whose source the compatibility tests read (never import):
  # downloaded once from PyPI, never committed.
  fedml_dir=.fedsage-ci/fedml-aws
  if ! ls "$fedml_dir"/fedml_aws-2.0.2-*.whl >/dev/null 2>&1; then
    echo "downloading the fedml-aws 2.0.2 wheel into $fedml_dir"
    .venv/bin/python -m pip download -q --no-deps fedml-aws==2.0.2 -d "$fedml_dir"
  fi
fi
