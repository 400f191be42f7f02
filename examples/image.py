"""Show bingo an image with the official openai package (needs a signed-in account)."""
import base64
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("BINGO_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("BINGO_API_KEY", "dummy"),  # any string when BINGO_API_KEYS is unset
)

# A 1x1 PNG; the bytes of any PNG, JPEG, GIF or WebP file go the same way.
png = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
reply = client.chat.completions.create(
    model="copilot",
    messages=[{
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
        ],
    }],
)
print(reply.choices[0].message.content)
