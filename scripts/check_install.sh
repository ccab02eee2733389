#!/usr/bin/env bash
# Follows the README's "Install as a library" section in a clean virtual environment outside the checkout (a
# regular, non-editable install), then uses the installed commands: trace, simulate (a built-in, a learned entry and
# the bound), score (the LLM entry's shipped rows must be in the package). CI runs it; it needs the network or a
# warm pip cache.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PY=${PYTHON:-python3}
"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0" .
cd "$work"
export XDG_CACHE_HOME="$work/cache" HF_HUB_OFFLINE=1
venv/bin/tensorcache-trace generate --workload transformer-train --preset gpt2-small --layers 1 --iterations 2 --out t.npz
venv/bin/tensorcache-simulate --trace t.npz --policy lru ppo lower-bound --headroom 0.3
venv/bin/python - <<'PY'
from eval.leaderboard.entries import discover
import envs, sys, pathlib
found = discover()
assert not found.refused, found.refused
assert (found.entries["llm"].directory / "results.csv").is_file(), "the llm entry's shipped rows are missing"
site = pathlib.Path(envs.__file__).parent
assert not list(site.rglob("*.nbi")), "numba wrote its kernel cache into site-packages"
print(f"installed package OK: {len(found.entries)} entries, envs from {site}")
PY
