"""Ask bingo a question with the official openai package, one-shot and streamed."""
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("BINGO_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("BINGO_API_KEY", "dummy"),  # any string when BINGO_API_KEYS is unset
)

reply = client.chat.completions.create(
    model="Creative",
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)

stream = client.chat.completions.create(
    model="Precise",
    messages=[{"role": "user", "content": "Hello again"}],
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
