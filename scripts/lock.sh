#!/usr/bin/env bash
# Refresh requirements.lock: resolve pyproject.toml's ranges afresh in a throw-away venv
# (torch pinned to the CPU 2.13.0 build first, as every install does), then freeze the result.
# Run after changing a dependency in pyproject.toml; commit the new lock with that change.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet torch==2.13.0
"$tmp/venv/bin/python" -m pip install --quiet -e '.[test]'
{
  echo "# Exact versions every install uses (make install, .ci/run). Refresh: scripts/lock.sh"
  echo "# torch is not listed: the install step pins torch==2.13.0 (CPU build) before this file."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -viE '^(torch|nvidia-|triton)=='
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
