#!/usr/bin/env bash
# The main job: generate the tcb-v3 traces, evaluate every available agent on the held-out test and test-ood splits,
# print the leaderboard and write the report under artifacts/leaderboard/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1  # the LLM entry loads its local base model only
exec .venv/bin/python -m eval.leaderboard --suite tcb-v3 --split test test-ood --agents all --out artifacts/leaderboard "$@"
