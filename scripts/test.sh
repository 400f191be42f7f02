#!/usr/bin/env bash
# Set up a virtual environment (once) and run the whole test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test source scripts/venv.sh
if command -v npm >/dev/null 2>&1 && [ ! -d tests/node/node_modules ]; then
  (cd tests/node && npm ci --silent --no-audit --no-fund) || echo "npm install failed: the Node SDK test will be skipped"
fi
# The seed's snippets use the legacy openai 0.28 package, which cannot share a venv
# with openai 1.x: it lives in its own directory, put first on the snippets' path.
if [ ! -d tests/.openai028/openai ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --target tests/.openai028 "openai==0.28.1"
fi
# openai-agents pins an older websockets than the sandbox uses, and pydantic-ai brings
# a tree of its own: each gets a directory beside the venv (tests/test_agents.py,
# tests/test_pydantic_ai.py run them in a subprocess).
if [ ! -d tests/.agents/agents ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --target tests/.agents "openai-agents>=0.2"
fi
if [ ! -d tests/.pydantic_ai/pydantic_ai ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --target tests/.pydantic_ai "pydantic-ai-slim[openai]>=1.0"
fi
exec "$venv/bin/python" -m pytest "$@"
