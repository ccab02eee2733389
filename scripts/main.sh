#!/usr/bin/env bash
# The main job: generate the benchmark traces, evaluate every available agent on the held-out test split,
# print the leaderboard and write the report under artifacts/leaderboard/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1  # the LLM entry loads its local base model only
exec .venv/bin/python -m eval.leaderboard --suite tcb-v1 --split test --agents all --out artifacts/leaderboard "$@"
