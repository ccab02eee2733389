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
# numba's on-disk cache checks only the stamp of the file holding each compiled function, not of the functions it
# calls in other files (the env's fused step inlines the engine): after any source change, drop every cached kernel
# so nothing runs stale machine code. Recompiling takes a minute once.
src=.venv/.tensorcache-sources
have=$(find envs agents eval training app -name '*.py' -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)
if [ ! -f "$src" ] || [ "$(cat "$src")" != "$have" ]; then
  find envs agents eval training app -name '*.nbi' -delete -o -name '*.nbc' -delete
  echo "$have" > "$src"
fi
