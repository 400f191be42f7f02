# Streamed chat completion with curl (-N: print each event as it arrives).
curl -sN "${BINGO_URL:-http://127.0.0.1:8000/v1}/chat/completions" \
  -H "Authorization: Bearer ${BINGO_API_KEY:-dummy}" \
  -d '{"model": "Creative", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}'
