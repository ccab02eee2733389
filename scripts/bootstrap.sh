#!/usr/bin/env bash
# Creates (or refreshes) the project-local virtual environment .venv with every pinned dependency.
# Exact versions come from constraints.txt (pyproject.toml holds ranges). Re-installs only when either file changed
# since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.tensorcache-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned in this same command so pip never pulls a CUDA build.
  .venv/bin/python -m pip install --quiet -c constraints.txt "torch==2.13.0" -e ".[dev,llm,app,ray]"
  echo "$want" > "$stamp"
fi
