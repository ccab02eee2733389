#!/usr/bin/env bash
# Runs the test suite (fast tests; add --slow for the slow ones) in the project-local .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# the browser test drives Debian's Chromium; install it when it is missing and apt can (root, as in CI)
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker=""; shift; fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q -m "$marker" "$@"
