#!/usr/bin/env bash
# The Copilot: sets up .venv like the other commands, starts the API (uvicorn) and the dashboard (Streamlit) on
# 127.0.0.1, prints both URLs, and stops both on Ctrl-C. Ports: TENSORCACHE_API_PORT (8000), TENSORCACHE_UI_PORT (8501).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
API_PORT=${TENSORCACHE_API_PORT:-8000}
UI_PORT=${TENSORCACHE_UI_PORT:-8501}
HOST=${TENSORCACHE_HOST:-127.0.0.1}
export TENSORCACHE_API_URL="http://${HOST}:${API_PORT}"
.venv/bin/python -m uvicorn --factory app.api:create_app --host "$HOST" --port "$API_PORT" --log-level warning &
api=$!
.venv/bin/python -m streamlit run app/dashboard.py --server.address "$HOST" --server.port "$UI_PORT" \
  --server.headless true --browser.gatherUsageStats false --global.developmentMode false &
ui=$!
trap 'kill $api $ui 2>/dev/null; wait $api $ui 2>/dev/null; exit 0' INT TERM
for _ in $(seq 1 240); do
  if .venv/bin/python - "$TENSORCACHE_API_URL" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/health", timeout=1)
PY
  kill -0 $api 2>/dev/null || { echo "the API did not start" >&2; kill $ui 2>/dev/null; exit 1; }
  sleep 0.5
done
echo "TensorCache Copilot:  dashboard http://${HOST}:${UI_PORT}   API http://${HOST}:${API_PORT}/docs   (Ctrl-C stops both)"
wait
