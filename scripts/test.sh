#!/usr/bin/env bash
# Runs the test suite (fast tests; add --slow for the slow ones) in the project-local .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker=""; shift; fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -m "$marker" "$@"
