#!/usr/bin/env bash
# Try bingo with no Bing account and no network: the gateway on 127.0.0.1:8000,
# pointed at the local upstream (bingo.sandbox) on 127.0.0.1:8765.
# Usage: bash scripts/demo.sh      (Ctrl-C stops both)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=sandbox source scripts/venv.sh
"$venv/bin/python" -m bingo.sandbox --port 8765 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null || true' EXIT INT TERM
export BINGO_CREATE_URL=http://127.0.0.1:8765/turing/conversation/create
export BINGO_CHATHUB_URL=ws://127.0.0.1:8765/sydney/ChatHub
export BINGO_COPILOT_URL=http://127.0.0.1:8765
echo "bingo on http://127.0.0.1:8000 -> local upstream on 127.0.0.1:8765. Try:"
echo "  curl -N http://127.0.0.1:8000/v1/chat/completions -d '{\"model\":\"Creative\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'"
"$venv/bin/gunicorn" app:app --bind 127.0.0.1:8000
